#!/usr/bin/env bash
# Creates the venv with onnxruntime that the benchmark's peer runs in (target/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "onnxruntime==1.32.0" numpy onnx
"$venv/bin/python" -c 'import onnxruntime, numpy; print("onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'
