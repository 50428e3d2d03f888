#!/usr/bin/env python3
"""Int8 QOperator fixtures: the models of ``make_qdq_fixtures.py`` quantized in onnxruntime's
QOperator form (QLinearConv, QGemm, QLinearAdd, QLinearGlobalAveragePool, … on uint8 tensors).

For every model NAME this writes into ``testdata/qop/`` (next to this script):

* ``NAME.qop.onnx``: ``onnxruntime.quantization.quantize_static`` of ``families/NAME.ts17.onnx``
  with ``quant_format=QuantFormat.QOperator`` and otherwise exactly the settings and calibration
  batches of ``make_qdq_fixtures.py`` (so its scales and zero points are those of the QDQ twin);
* ``NAME.qop.ort.npy``: onnxruntime's output on ``NAME.qop.onnx`` for ``families/NAME.input.npy``:
  the oracle;
* ``NAME.qdq.onnx`` for models that ``testdata/qdq/`` lacks: the QDQ twin.

Also ``manifest.json`` with the versions, the op types of each file, and the distance between
onnxruntime's outputs on the two forms. Run with the repository's Python venv::

    python testdata/make_qop_fixtures.py
"""

import json
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from make_qdq_fixtures import FAMILIES, HERE, MODELS as QDQ_MODELS, RandomBatches, run

OUT = os.path.join(HERE, "qop")
QDQ = os.path.join(HERE, "qdq")
# The QDQ fixtures' models, and MobileNetV2 (depthwise convs, ReLU6, residual Adds without ReLU).
MODELS = QDQ_MODELS + ["mobilenet_v2_mini"]


def quantize(src, dst, x, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(src, pre)
        input_name = onnx.load(pre).graph.input[0].name
        quantize_static(
            pre,
            dst,
            RandomBatches(input_name, x.shape, seed=len(os.path.basename(src).split(".")[0])),
            quant_format=fmt,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def op_types(path):
    return sorted(
        {(f"{n.domain}." if n.domain else "") + n.op_type for n in onnx.load(path).graph.node}
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {
        "generator": "testdata/make_qop_fixtures.py",
        "versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "models": [],
    }
    for name in MODELS:
        src = os.path.join(FAMILIES, f"{name}.ts17.onnx")
        x = np.load(os.path.join(FAMILIES, f"{name}.input.npy"))
        dst = os.path.join(OUT, f"{name}.qop.onnx")
        quantize(src, dst, x, QuantFormat.QOperator)
        twin = os.path.join(QDQ, f"{name}.qdq.onnx")
        if not os.path.exists(twin):
            twin = os.path.join(OUT, f"{name}.qdq.onnx")
            quantize(src, twin, x, QuantFormat.QDQ)
        got = run(dst, x)
        np.save(os.path.join(OUT, f"{name}.qop.ort.npy"), got)
        entry = {
            "model": name,
            "file": f"{name}.qop.onnx",
            "qdq_twin": os.path.relpath(twin, OUT),
            "input": f"../families/{name}.input.npy",
            "op_types": op_types(dst),
            "max_abs_logit": float(np.abs(got).max()),
            "qop_vs_qdq_ort_max_abs_diff": float(np.abs(got - run(twin, x)).max()),
        }
        manifest["models"].append(entry)
        print(entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
