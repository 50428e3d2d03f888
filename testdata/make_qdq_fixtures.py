#!/usr/bin/env python3
"""Int8 QDQ fixtures: reduced CNNs of ``testdata/families`` quantized by onnxruntime.

For every model NAME this writes into ``testdata/qdq/`` (next to this script):

* ``NAME.qdq.onnx``: ``onnxruntime.quantization.quantize_static`` of ``families/NAME.ts17.onnx``
  in the QDQ format, per-channel int8 (``QInt8``) weights, uint8 (``QUInt8``) activations, MinMax
  calibration on 4 seeded random batches of the family's input shape (normal, clamped to [-4, 4]);
  the model is first run through ``quant_pre_process`` (shape inference, BatchNorm folding);
* ``NAME.ort.npy``: onnxruntime's output on ``NAME.qdq.onnx`` for ``families/NAME.input.npy``
  (default session options, so its QDQ fusions run its int8 kernels): the oracle;
* ``NAME.fp32.npy``: the fp32 model's output on the same input, for the size of the quantization
  error.

Also ``manifest.json`` with the versions and, per model, the largest logit and the distances
between the three outputs. Run with the repository's Python venv::

    python testdata/make_qdq_fixtures.py
"""

import json
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = os.path.join(HERE, "families")
OUT = os.path.join(HERE, "qdq")
# CNNs with residual Adds, max pooling, global average pooling and a Gemm head; ResNeXt adds
# grouped 3x3 convs.
MODELS = ["resnet_basic_mini", "resnet_bottleneck_mini", "resnext_mini"]


class RandomBatches(CalibrationDataReader):
    def __init__(self, name, shape, batches=4, seed=0):
        rng = np.random.default_rng(seed)
        self.items = iter(
            [
                {name: np.clip(rng.standard_normal(shape), -4, 4).astype(np.float32)}
                for _ in range(batches)
            ]
        )

    def get_next(self):
        return next(self.items, None)


def run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {
        "generator": "testdata/make_qdq_fixtures.py",
        "versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "models": [],
    }
    for name in MODELS:
        src = os.path.join(FAMILIES, f"{name}.ts17.onnx")
        x = np.load(os.path.join(FAMILIES, f"{name}.input.npy"))
        dst = os.path.join(OUT, f"{name}.qdq.onnx")
        with tempfile.TemporaryDirectory() as tmp:
            pre = os.path.join(tmp, "pre.onnx")
            quant_pre_process(src, pre)
            input_name = onnx.load(pre).graph.input[0].name
            quantize_static(
                pre,
                dst,
                RandomBatches(input_name, x.shape, seed=len(name)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        got = run(dst, x)
        fp32 = run(src, x)
        np.save(os.path.join(OUT, f"{name}.ort.npy"), got)
        np.save(os.path.join(OUT, f"{name}.fp32.npy"), fp32)
        ops = sorted({n.op_type for n in onnx.load(dst).graph.node})
        entry = {
            "model": name,
            "file": f"{name}.qdq.onnx",
            "input": f"../families/{name}.input.npy",
            "op_types": ops,
            "max_abs_logit": float(np.abs(got).max()),
            "int8_vs_fp32_max_abs_diff": float(np.abs(got - fp32).max()),
        }
        manifest["models"].append(entry)
        print(entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
