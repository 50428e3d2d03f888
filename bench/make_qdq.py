#!/usr/bin/env python3
"""Quantizes an fp32 ONNX model to onnxruntime's int8 QDQ form, the input of `resnextc compile`
for int8 models: ``quant_pre_process`` then ``quantize_static`` (QDQ, per-channel QInt8 weights,
QUInt8 activations, MinMax calibration on N seeded standard-normal images clamped to [-4, 4]).

    python bench/make_qdq.py MODEL.onnx OUT.onnx [N=8]
"""

import sys
import tempfile
import os

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Images(CalibrationDataReader):
    def __init__(self, name, shape, count):
        rng = np.random.default_rng(0)
        self.items = iter(
            [{name: np.clip(rng.standard_normal(shape), -4, 4).astype(np.float32)} for _ in range(count)]
        )

    def get_next(self):
        return next(self.items, None)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(src, pre)
        graph = onnx.load(pre).graph
        inp = graph.input[0]
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
        quantize_static(
            pre,
            dst,
            Images(inp.name, shape, count),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


if __name__ == "__main__":
    main()
