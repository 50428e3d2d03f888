#!/usr/bin/env python3
"""Int8 QOperator fixtures: the models of ``make_qdq_fixtures.py`` quantized in onnxruntime's
QOperator form (QLinearConv, QGemm, QLinearAdd, QLinearGlobalAveragePool, … on uint8 tensors).

For every model NAME this writes into ``testdata/qop/`` (next to this script):

* ``NAME.qop.onnx``: ``onnxruntime.quantization.quantize_static`` of ``families/NAME.ts17.onnx``
  with ``quant_format=QuantFormat.QOperator`` and otherwise exactly the settings and calibration
  batches of ``make_qdq_fixtures.py`` (so its scales and zero points are those of the QDQ twin);
* ``NAME.qop.ort.npy``: onnxruntime's output on ``NAME.qop.onnx`` for ``families/NAME.input.npy``:
  the oracle;
* ``NAME.qdq.onnx`` for models that ``testdata/qdq/`` lacks: the QDQ twin (same scales and zero
  points; not for ``ops_mini``, whose QDQ form onnxruntime quantizes differently: its AveragePool
  output there shares the input's scale, while the QOperator form calibrates its own).

``ops_mini`` is a small network defined here (seeded random weights, exported by PyTorch's
TorchScript exporter at opset 17, input ``qop/ops_mini.input.npy``) whose QOperator form has the
ops the family models lack: QLinearLeakyRelu, QLinearAveragePool, QLinearSigmoid, QLinearMul,
QLinearConcat and QLinearMatMul.

Also ``manifest.json`` with the versions, the op types of each file, and the distance between
onnxruntime's outputs on the two forms. Run with the repository's Python venv::

    python testdata/make_qop_fixtures.py
"""

import json
import os
import tempfile

import numpy as np
import onnx
import torch
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from make_qdq_fixtures import FAMILIES, HERE, MODELS as QDQ_MODELS, RandomBatches, run

OUT = os.path.join(HERE, "qop")
QDQ = os.path.join(HERE, "qdq")
# The QDQ fixtures' models, and MobileNetV2 (depthwise convs, ReLU6, residual Adds without ReLU).
MODELS = QDQ_MODELS + ["mobilenet_v2_mini", "ops_mini"]
NO_TWIN = ["ops_mini"]


class OpsMini(torch.nn.Module):
    """LeakyReLU, average pooling, a sigmoid gate (Mul), a channel concat and a MatMul head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.a = torch.nn.Conv2d(8, 8, 1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Parameter(torch.randn(16, 10) * 0.3)

    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.stem(x), 0.1)
        x = torch.nn.functional.avg_pool2d(x, 2)
        a, b = self.a(x), self.b(x)
        y = torch.cat([a * torch.sigmoid(b), b], 1)
        return torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1) @ self.head


def source(name, tmp):
    """The fp32 ONNX file and the input of model ``name``."""
    if name != "ops_mini":
        x = np.load(os.path.join(FAMILIES, f"{name}.input.npy"))
        return os.path.join(FAMILIES, f"{name}.ts17.onnx"), x
    x = np.random.default_rng(7).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.save(os.path.join(OUT, "ops_mini.input.npy"), x)
    src = os.path.join(tmp, "ops_mini.onnx")
    torch.onnx.export(
        OpsMini().eval(),
        torch.from_numpy(x),
        src,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}},
        dynamo=False,
    )
    return src, x


def quantize(name, src, dst, x, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(src, pre)
        input_name = onnx.load(pre).graph.input[0].name
        quantize_static(
            pre,
            dst,
            RandomBatches(input_name, x.shape, seed=len(name)),
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
        dst = os.path.join(OUT, f"{name}.qop.onnx")
        twin = os.path.join(QDQ, f"{name}.qdq.onnx")
        with tempfile.TemporaryDirectory() as tmp:
            src, x = source(name, tmp)
            quantize(name, src, dst, x, QuantFormat.QOperator)
            if name in NO_TWIN:
                twin = None
            elif not os.path.exists(twin):
                twin = os.path.join(OUT, f"{name}.qdq.onnx")
                quantize(name, src, twin, x, QuantFormat.QDQ)
        got = run(dst, x)
        np.save(os.path.join(OUT, f"{name}.qop.ort.npy"), got)
        entry = {
            "model": name,
            "file": f"{name}.qop.onnx",
            "qdq_twin": twin and os.path.relpath(twin, OUT),
            "input": "ops_mini.input.npy" if name == "ops_mini" else f"../families/{name}.input.npy",
            "op_types": op_types(dst),
            "max_abs_logit": float(np.abs(got).max()),
        }
        if twin:
            entry["qop_vs_qdq_ort_max_abs_diff"] = float(np.abs(got - run(twin, x)).max())
        manifest["models"].append(entry)
        print(entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
