"""Writes a torchvision-style ResNet/ResNeXt as ONNX with random weights, for benchmarks.

No PyTorch needed: the graph is built with onnx.helper in torchvision's structure (Bottleneck v1.5, stride on the
3x3 conv, BatchNormalization kept as its own node, opset 17, dynamic batch axis `batch`, input `input`, output
`logits`). Usage: make_resnet.py OUT.onnx [--groups 1] [--width-per-group 64] [--layers 3,4,6,3]
ResNet-50 is the default; `--groups 32 --width-per-group 4` gives ResNeXt-50 32x4d.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def conv(self, name, x, cin, cout, k, stride, pad, groups=1):
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(name + ".weight", w)], [name + ".out"], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=groups))
        return name + ".out"

    def bn(self, name, x, c):
        ins = [x] + [self.const(f"{name}.{p}", v) for p, v in [
            ("weight", self.rng.uniform(0.6, 1.4, c)), ("bias", self.rng.uniform(-0.3, 0.3, c)),
            ("running_mean", self.rng.normal(0, 0.2, c)), ("running_var", self.rng.uniform(0.5, 1.5, c))]]
        self.nodes.append(helper.make_node("BatchNormalization", ins, [name + ".out"], name=name, epsilon=1e-5))
        return name + ".out"

    def op(self, kind, name, ins, **attrs):
        self.nodes.append(helper.make_node(kind, ins, [name + ".out"], name=name, **attrs))
        return name + ".out"


def build(layers, groups, width_per_group, classes=1000, seed=0):
    b = Builder(seed)
    x = b.conv("conv1", "input", 3, 64, 7, 2, 3)
    x = b.op("Relu", "relu", [b.bn("bn1", x, 64)])
    x = b.op("MaxPool", "maxpool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    inplanes = 64
    for li, (planes, blocks) in enumerate(zip([64, 128, 256, 512], layers)):
        for bi in range(blocks):
            stride = 2 if (li > 0 and bi == 0) else 1
            p = f"layer{li + 1}.{bi}"
            width = int(planes * (width_per_group / 64.0)) * groups
            y = b.op("Relu", p + ".relu1", [b.bn(p + ".bn1", b.conv(p + ".conv1", x, inplanes, width, 1, 1, 0), width)])
            y = b.op("Relu", p + ".relu2", [b.bn(p + ".bn2", b.conv(p + ".conv2", y, width, width, 3, stride, 1, groups), width)])
            y = b.bn(p + ".bn3", b.conv(p + ".conv3", y, width, planes * 4, 1, 1, 0), planes * 4)
            identity = x
            if stride != 1 or inplanes != planes * 4:
                identity = b.bn(p + ".downsample.1", b.conv(p + ".downsample.0", x, inplanes, planes * 4, 1, stride, 0), planes * 4)
            x = b.op("Relu", p + ".relu3", [b.op("Add", p + ".add", [y, identity])])
            inplanes = planes * 4
    x = b.op("GlobalAveragePool", "avgpool", [x])
    x = b.op("Flatten", "flatten", [x], axis=1)
    fc_w = b.const("fc.weight", b.rng.standard_normal((classes, inplanes)) / np.sqrt(inplanes))
    fc_b = b.const("fc.bias", b.rng.uniform(-0.1, 0.1, classes))
    b.nodes.append(helper.make_node("Gemm", [x, fc_w, fc_b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes, "resnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--width-per-group", type=int, default=64)
    ap.add_argument("--layers", default="3,4,6,3")
    a = ap.parse_args()
    model = build([int(v) for v in a.layers.split(",")], a.groups, a.width_per_group)
    onnx.save(model, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
