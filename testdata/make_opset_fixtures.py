"""Builds the per-opset ONNX fixtures of `compiler/tests/onnx_opsets.rs` in `testdata/opsets/`.

For each opset it writes small graphs with `onnx.helper` in the form of the ops that opset
defines (Clip's bounds as attributes before 11 and as inputs from 11, ReduceMean's axes as an
attribute before 18 and an input from 18, ...), a seeded input `NAME.input.npy` and the oracle's
output `NAME.output.npy`: onnxruntime's, or `onnx.reference.ReferenceEvaluator`'s for the opsets
onnxruntime does not implement (both are run, and must agree from opset 14, where the
reference evaluator's BatchNormalization is the inference one). It also exports a
tiny ResNeXt (grouped bottlenecks, seeded weights rounded to multiples of 1/64) with PyTorch's
dynamo exporter at its default opset and with the TorchScript exporter at opset 9, with
PyTorch's own logits as the oracle (checked against onnxruntime too).

`bad/*.onnx` are models using a form of an op at an opset that does not define it; the test
asserts the error names the node and the reason.

Run with the venv that has onnx, onnxruntime and torch:
    /work/venv/bin/python testdata/make_opset_fixtures.py
"""

import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "opsets")
OPSETS = [7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 22, 28]


def rounded(rng, shape, scale=1.0):
    """Seeded weights on a 1/64 grid, so every oracle reads exactly the same values."""
    return (np.round(rng.standard_normal(shape) * scale * 64) / 64).astype(np.float32)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


class Builder:
    """Accumulates nodes and initializers of one graph at one opset."""

    def __init__(self, opset, rng):
        self.opset = opset
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.count = 0

    def node(self, op, inputs, outputs=None, **attrs):
        self.count += 1
        name = f"/{op.lower()}{self.count}/{op}"
        outputs = outputs or [f"v{self.count}"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def const(self, name, array):
        self.inits.append(init(name, array))
        return name

    def conv_bn(self, x, c_in, c_out, k, stride=1, group=1):
        n = len(self.inits)
        w = self.const(f"w{n}", rounded(self.rng, (c_out, c_in // group, k, k), 0.5))
        b = self.const(f"b{n}", rounded(self.rng, (c_out,), 0.1))
        y = self.node("Conv", [x, w, b], kernel_shape=[k, k], pads=[k // 2] * 4,
                      strides=[stride, stride], group=group)
        scale = self.const(f"s{n}", (1 + np.abs(rounded(self.rng, (c_out,), 0.2))))
        bias = self.const(f"bb{n}", rounded(self.rng, (c_out,), 0.1))
        mean = self.const(f"m{n}", rounded(self.rng, (c_out,), 0.1))
        var = self.const(f"vv{n}", (1 + np.abs(rounded(self.rng, (c_out,), 0.3))))
        attrs = {"epsilon": 1e-5}
        if self.opset < 9:
            attrs["spatial"] = 1
        if self.opset >= 14:
            attrs["training_mode"] = 0
        return self.node("BatchNormalization", [y, scale, bias, mean, var], **attrs)

    def clip(self, x, lo, hi):
        if self.opset < 11:
            return self.node("Clip", [x], min=lo, max=hi)
        lo_t = self.const(f"clip_min{self.count}", np.array(lo, np.float32))
        hi_t = self.const(f"clip_max{self.count}", np.array(hi, np.float32))
        return self.node("Clip", [x, lo_t, hi_t])

    def max_pool(self, x):
        attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
        outputs = None
        if self.opset >= 8:
            # The Indices output named but unused, as the old exporters wrote it.
            attrs["storage_order"] = 0
            outputs = [f"mp{self.count}", f"mp_indices{self.count}"]
        if self.opset >= 10:
            attrs["ceil_mode"] = 0
            attrs["dilations"] = [1, 1]
        return self.node("MaxPool", [x], outputs, **attrs)

    def average_pool(self, x):
        attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1],
                 "count_include_pad": 1 if self.opset % 2 else 0}
        if self.opset >= 10:
            attrs["ceil_mode"] = 1
        if self.opset >= 19:
            attrs["dilations"] = [1, 1]
        return self.node("AveragePool", [x], **attrs)

    def dropout(self, x):
        if self.opset < 12:
            return self.node("Dropout", [x], [f"d{self.count}", f"mask{self.count}"], ratio=0.3)
        ratio = self.const(f"ratio{self.count}", np.array(0.3, np.float32))
        training = self.const(f"training{self.count}", np.array(False))
        return self.node("Dropout", [x, ratio, training], [f"d{self.count}", f"mask{self.count}"],
                         seed=7)

    def reduce_mean(self, x, axes):
        if self.opset < 18:
            return self.node("ReduceMean", [x], axes=axes, keepdims=1)
        a = self.const(f"axes{self.count}", np.array(axes, np.int64))
        return self.node("ReduceMean", [x, a], keepdims=1, noop_with_empty_axes=0)

    def gemm(self, x, k, n, with_bias=True):
        w = self.const(f"fc_w{self.count}", rounded(self.rng, (n, k), 0.3))
        inputs = [x, w]
        if with_bias:
            inputs.append(self.const(f"fc_b{self.count}", rounded(self.rng, (n,), 0.1)))
        return self.node("Gemm", inputs, alpha=1.0, beta=1.0, transB=1)

    def model(self, name, x_shape, y, classes):
        batch = "batch"
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *x_shape[1:]])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, classes])],
            self.inits,
        )
        # The IR version each opset's onnx release wrote, as the files of that time have it.
        m = helper.make_model_gen_version(
            graph, producer_name="make_opset_fixtures",
            opset_imports=[helper.make_opsetid("", self.opset)])
        if m.ir_version < 4:
            # IR 3 lists every initializer among the graph inputs too.
            m.graph.input.extend(
                helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in self.inits)
        onnx.checker.check_model(m, full_check=True)
        return m


def conv_net(opset):
    """Conv+BN+Relu, grouped Conv+BN+Clip, MaxPool, AveragePool, Dropout, ReduceMean, Flatten, Gemm."""
    b = Builder(opset, np.random.default_rng(opset))
    y = b.conv_bn("x", 3, 8, 3)
    y = b.node("Relu", [y])
    y = b.conv_bn(y, 8, 8, 3, group=2)
    y = b.clip(y, 0.0, 6.0)
    y = b.max_pool(y)
    y = b.average_pool(y)
    y = b.dropout(y)
    y = b.reduce_mean(y, [2, 3])
    y = b.node("Flatten", [y], axis=1 if opset < 11 else -3)
    y = b.gemm(y, 8, 5)
    return b.model("conv_net", [2, 3, 9, 9], y, 5)


def shape_net(opset):
    """`x.view(x.size(0), -1)` spelled with Shape, Gather, Unsqueeze, Concat and Reshape in the
    opset's forms, a one-sided Clip, a ReduceMean at keepdims, and a Gemm (without C from 11)."""
    b = Builder(opset, np.random.default_rng(100 + opset))
    y = b.conv_bn("x", 4, 6, 1, stride=2)
    y = b.clip(y, -1.0, float(np.finfo(np.float32).max) if opset < 11 else 1.5)
    if opset >= 18:
        # No axes and noop_with_empty_axes = 1: no reduction at all.
        y = b.node("ReduceMean", [y], keepdims=1, noop_with_empty_axes=1)
    if opset >= 15:
        batch = b.node("Shape", [y], start=0, end=1)
    else:
        shape = b.node("Shape", [y])
        index = b.const("index0", np.array(0, np.int64))
        gathered = b.node("Gather", [shape, index], axis=0)
        if opset < 13:
            batch = b.node("Unsqueeze", [gathered], axes=[0])
        else:
            axes = b.const("unsqueeze_axes", np.array([0], np.int64))
            batch = b.node("Unsqueeze", [gathered, axes])
    if opset >= 12:
        rest = b.node("Constant", [], value_ints=[-1])
    elif opset >= 9:
        rest = b.node("Constant", [], value=init("rest", np.array([-1], np.int64)))
    else:
        # Constant 1 holds only floats.
        rest = b.const("rest", np.array([-1], np.int64))
    target = b.node("Concat", [batch, rest], axis=0 if opset < 11 else -1)
    attrs = {"allowzero": 0} if opset >= 14 else {}
    y = b.node("Reshape", [y, target], **attrs)
    y = b.gemm(y, 6 * 3 * 3, 4, with_bias=opset < 11)
    return b.model("shape_net", [3, 4, 6, 6], y, 4)


def run_oracles(model, x):
    """onnxruntime's output (None where it refuses the opset) and the reference evaluator's."""
    data = model.SerializeToString()
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got_ort = sess.run(None, {"x": x})[0]
    except Exception as e:  # an opset newer than onnxruntime implements
        print(f"    onnxruntime refuses it: {str(e).splitlines()[0][:120]}")
        got_ort = None
    try:
        got_ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    except Exception as e:
        print(f"    ReferenceEvaluator refuses it: {str(e).splitlines()[0][:120]}")
        got_ref = None
    return got_ort, got_ref


def save(name, model, x, y):
    onnx.save(model, os.path.join(OUT, f"{name}.onnx"))
    np.save(os.path.join(OUT, f"{name}.input.npy"), x.astype(np.float32))
    np.save(os.path.join(OUT, f"{name}.output.npy"), np.asarray(y, np.float32))


def write_graph_fixtures():
    for opset in OPSETS:
        for make, shape in [(conv_net, (2, 3, 9, 9)), (shape_net, (3, 4, 6, 6))]:
            name = f"{make.__name__}_opset{opset}"
            model = make(opset)
            x = np.random.default_rng(opset).standard_normal(shape).astype(np.float32)
            got_ort, got_ref = run_oracles(model, x)
            # The reference evaluator's BatchNormalization 9 applies `momentum` as in training
            # mode; from 14 (`training_mode` = 0) the two must agree.
            if got_ort is not None and got_ref is not None and opset >= 14:
                err = np.abs(got_ort - got_ref).max()
                assert err <= 1e-5 * np.abs(got_ort).max(), (name, err)
            y = got_ort if got_ort is not None else got_ref
            assert y is not None and np.isfinite(y).all(), name
            print(f"{name}: oracle {'onnxruntime' if got_ort is not None else 'reference'}, "
                  f"output {y.shape}")
            save(name, model, x, y)


def bad_models():
    """Forms an op has only at other opsets than the file's, and what the error must say."""

    def one(opset, name, build):
        b = Builder(opset, np.random.default_rng(0))
        y = build(b)
        m = helper.make_model(
            helper.make_graph(
                b.nodes, name,
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 6, 6])],
                [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], b.inits),
            opset_imports=[helper.make_opsetid("", opset)],
            ir_version=8)
        onnx.save(m, os.path.join(OUT, "bad", f"{name}.onnx"))

    def relu_then(b, f):
        return f(b, b.node("Relu", ["x"]))

    def clip_inputs(b, y):
        lo = b.const("lo", np.array(0, np.float32))
        return b.node("Clip", [y, lo])

    def reduce_axes_input(b, y):
        a = b.const("axes", np.array([2, 3], np.int64))
        return b.node("ReduceMean", [y, a])

    def bn(b, y, **attrs):
        c = [b.const(n, np.ones(4, np.float32)) for n in ["s", "bb", "m", "v"]]
        return b.node("BatchNormalization", [y, *c], **attrs)

    def bn_training_outputs(b, y):
        c = [b.const(n, np.ones(4, np.float32)) for n in ["s", "bb", "m", "v"]]
        return b.node("BatchNormalization", [y, *c], ["bn_y", "bn_mean", "bn_var"])

    def maxpool_indices_used(b, y):
        b.node("MaxPool", [y], ["mp_y", "mp_i"], kernel_shape=[2, 2])
        return b.node("Relu", ["mp_i"])

    def dropout_mask_used(b, y):
        b.node("Dropout", [y], ["d_y", "d_mask"], ratio=0.5)
        return b.node("Relu", ["d_mask"])

    one(10, "clip_inputs_at_10", lambda b: relu_then(b, clip_inputs))
    one(11, "clip_attributes_at_11",
        lambda b: relu_then(b, lambda b, y: b.node("Clip", [y], min=0.0)))
    one(17, "reduce_mean_axes_input_at_17", lambda b: relu_then(b, reduce_axes_input))
    one(18, "reduce_mean_axes_attribute_at_18",
        lambda b: relu_then(b, lambda b, y: b.node("ReduceMean", [y], axes=[2, 3])))
    one(8, "batch_norm_non_spatial_at_8", lambda b: relu_then(b, lambda b, y: bn(b, y, spatial=0)))
    one(9, "batch_norm_spatial_at_9", lambda b: relu_then(b, lambda b, y: bn(b, y, spatial=1)))
    one(13, "batch_norm_training_mode_at_13",
        lambda b: relu_then(b, lambda b, y: bn(b, y, training_mode=0)))
    one(15, "batch_norm_training_mode_1_at_15",
        lambda b: relu_then(b, lambda b, y: bn(b, y, training_mode=1)))
    one(9, "batch_norm_training_outputs_at_9", lambda b: relu_then(b, bn_training_outputs))
    one(9, "max_pool_ceil_mode_at_9",
        lambda b: relu_then(b, lambda b, y: b.node("MaxPool", [y], kernel_shape=[2, 2],
                                                      ceil_mode=1)))
    one(18, "average_pool_dilations_at_18",
        lambda b: relu_then(b, lambda b, y: b.node("AveragePool", [y], kernel_shape=[2, 2],
                                                      dilations=[1, 1])))
    one(7, "max_pool_storage_order_at_7",
        lambda b: relu_then(b, lambda b, y: b.node("MaxPool", [y], kernel_shape=[2, 2],
                                                      storage_order=0)))
    one(12, "max_pool_indices_used_at_12", lambda b: relu_then(b, maxpool_indices_used))
    one(11, "dropout_mask_used_at_11", lambda b: relu_then(b, dropout_mask_used))
    one(12, "dropout_ratio_attribute_at_12",
        lambda b: relu_then(b, lambda b, y: b.node("Dropout", [y], ratio=0.5)))
    one(13, "reshape_allowzero_at_13",
        lambda b: relu_then(b, lambda b, y: b.node(
            "Reshape", [y, b.const("shape", np.array([0, -1], np.int64))], allowzero=0)))
    one(7, "max_pool_indices_at_7",
        lambda b: relu_then(b, lambda b, y: b.node("MaxPool", [y], ["mp_y", "mp_i"],
                                                      kernel_shape=[2, 2])))
    one(7, "batch_norm_is_test_at_7", lambda b: relu_then(b, lambda b, y: bn(b, y, is_test=1)))
    one(10, "gemm_without_c_at_10",
        lambda b: relu_then(b, lambda b, y: b.node(
            "Gemm", [b.node("Flatten", [y]), b.const("w", np.ones((144, 2), np.float32))])))
    one(10, "flatten_negative_axis_at_10",
        lambda b: relu_then(b, lambda b, y: b.node("Flatten", [y], axis=-3)))
    one(13, "unsqueeze_axes_attribute_at_13",
        lambda b: b.node("Unsqueeze", [b.node("Shape", ["x"])], axes=[0]))
    one(14, "shape_start_at_14", lambda b: b.node("Shape", ["x"], start=1))
    one(11, "constant_value_ints_at_11", lambda b: b.node("Constant", [], value_ints=[1]))
    one(6, "opset_6", lambda b: b.node("Relu", ["x"]))
    one(29, "opset_29", lambda b: b.node("Relu", ["x"]))


def export_resnext():
    """A tiny ResNeXt (torchvision's bottleneck with cardinality 8, width 4 per group, two
    stages), exported by the dynamo exporter at its default opset and by the TorchScript exporter
    at opset 9; the oracle is PyTorch (and onnxruntime must agree with it)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in, width, c_out, stride, groups=8):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + self.downsample(x))

    class TinyResNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = Block(16, 32, 64, 1)
            self.layer2 = Block(64, 64, 128, 2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer2(self.layer1(x))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    torch.manual_seed(0)
    model = TinyResNeXt()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 64) / 64)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.round(torch.randn_like(m.running_mean) * 8) / 64)
                m.running_var.copy_(1 + torch.round(torch.rand_like(m.running_var) * 32) / 64)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    for name, kwargs in [
        # As `torch.onnx.export(m, x, path)` writes it: BatchNormalization folded into the convs,
        # the weights in `NAME.onnx.data`.
        ("resnext_tiny_dynamo", {"dynamic_shapes": {"x": {0: torch.export.Dim("batch")}}}),
        # Eval mode, BatchNormalization kept (PRESERVE does not fold it into the convs).
        ("resnext_tiny_opset9", {"dynamo": False, "opset_version": 9,
                                 "training": torch.onnx.TrainingMode.PRESERVE,
                                 "dynamic_axes": {"x": {0: "batch"}}}),
    ]:
        path = os.path.join(OUT, f"{name}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["logits"],
                              **kwargs)
        m = onnx.load(path)
        got, _ = run_oracles(m, x.numpy())
        err = np.abs(got - want).max()
        assert err <= 1e-4 * np.abs(want).max(), (name, err)
        print(f"{name}: opset {m.opset_import[0].version}, IR {m.ir_version}, "
              f"{os.path.getsize(path)} bytes, onnxruntime vs torch {err:.2e}")
        np.save(os.path.join(OUT, f"{name}.input.npy"), x.numpy())
        np.save(os.path.join(OUT, f"{name}.output.npy"), want)


if __name__ == "__main__":
    os.makedirs(os.path.join(OUT, "bad"), exist_ok=True)
    write_graph_fixtures()
    bad_models()
    export_resnext()
