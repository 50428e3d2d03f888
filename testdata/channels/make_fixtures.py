"""Small opset-17 models of the channel ops, each with onnxruntime's output for a batch of 3
(NAME.input.npy, NAME.output.npy) as the oracle:
- shuffle_split.onnx: conv -> channel shuffle (Reshape, Transpose(0,2,1,3,4), Reshape) -> two
  channel Slices concatenated in swapped order -> conv;
- pads.onnx: zero Pads before an AveragePool, a conv, a MaxPool of ReLU outputs (all foldable) and
  a MaxPool of values of either sign (not foldable: a Pad kernel);
- split.onnx (opset 18): a ShuffleNet unit: conv -> Split (num_outputs=2) -> conv of the second
  half -> Concat -> channel shuffle -> Split (sizes input [3, 5]) -> the second part, by a conv;
- lrn.onnx: conv -> LRN (size 5, AlexNet's constants) -> conv;
- softmax.onnx: Flatten -> Gemm -> Softmax -> Gemm -> LogSoftmax on [N, K].
Run: /work/venv/bin/python testdata/channels/make_fixtures.py"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)
C, H, W = 8, 3, 5
w1 = rng.standard_normal((C, 3, 3, 3)).astype(np.float32)
w2 = rng.standard_normal((4, C, 1, 1)).astype(np.float32)
ints = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
inits = [
    numpy_helper.from_array(w1, "w1"),
    numpy_helper.from_array(w2, "w2"),
    ints("shape5", [0, 2, C // 2, H, W]),
    ints("shape4", [0, C, H, W]),
    ints("s0", [0]), ints("e0", [3]), ints("s1", [3]), ints("e1", [2**62]), ints("ax", [1]),
]
nodes = [
    helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
    helper.make_node("Reshape", ["a", "shape5"], ["r5"]),
    helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
    helper.make_node("Reshape", ["t5", "shape4"], ["s"]),
    helper.make_node("Slice", ["s", "s0", "e0", "ax"], ["lo"]),
    helper.make_node("Slice", ["s", "s1", "e1", "ax"], ["hi"]),
    helper.make_node("Concat", ["hi", "lo"], ["cat"], axis=1),
    helper.make_node("Conv", ["cat", "w2"], ["y"]),
]
graph = helper.make_graph(
    nodes,
    "shuffle_split",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, H, W])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, H, W])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "shuffle_split.onnx"))
x = rng.standard_normal((3, 3, H, W)).astype(np.float32)
y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
np.save(os.path.join(here, "shuffle_split.input.npy"), x)
np.save(os.path.join(here, "shuffle_split.output.npy"), y)


def pads(name, v):
    return ints(name, [0, 0, v[0], v[1], 0, 0, v[2], v[3]])


w3 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
w4 = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
w5 = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
inits = [
    numpy_helper.from_array(w3, "w3"),
    numpy_helper.from_array(w4, "w4"),
    numpy_helper.from_array(w5, "w5"),
    pads("p_avg", [1, 1, 1, 1]),
    pads("p_conv", [1, 0, 0, 2]),
    pads("p_max", [1, 1, 1, 1]),
    pads("p_kernel", [1, 0, 0, 1]),
    numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
]
nodes = [
    helper.make_node("Conv", ["x", "w3"], ["a"]),
    helper.make_node("Pad", ["a", "p_avg"], ["pa"]),
    helper.make_node("AveragePool", ["pa"], ["b"], kernel_shape=[3, 3]),
    helper.make_node("Pad", ["b", "p_conv", "zero"], ["pb"]),
    helper.make_node("Conv", ["pb", "w4"], ["c"]),
    helper.make_node("Relu", ["c"], ["r"]),
    helper.make_node("Pad", ["r", "p_max"], ["pr"]),
    helper.make_node("MaxPool", ["pr"], ["d"], kernel_shape=[3, 3]),
    helper.make_node("Conv", ["d", "w5"], ["e"]),
    helper.make_node("Pad", ["e", "p_kernel"], ["pe"]),
    helper.make_node("MaxPool", ["pe"], ["f"], kernel_shape=[2, 2]),
    helper.make_node("Conv", ["f", "w5"], ["y"]),
]
graph = helper.make_graph(
    nodes,
    "pads",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 7])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3, 5])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "pads.onnx"))
x = rng.standard_normal((3, 3, 6, 7)).astype(np.float32)
y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
np.save(os.path.join(here, "pads.input.npy"), x)
np.save(os.path.join(here, "pads.output.npy"), y)


wa = rng.standard_normal((7, 6)).astype(np.float32) * 3
wb = rng.standard_normal((5, 7)).astype(np.float32) * 3
inits = [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(wb, "wb")]
nodes = [
    helper.make_node("Flatten", ["x"], ["flat"]),
    helper.make_node("Gemm", ["flat", "wa"], ["a"], transB=1),
    helper.make_node("Softmax", ["a"], ["s"], axis=-1),
    helper.make_node("Gemm", ["s", "wb"], ["b"], transB=1),
    helper.make_node("LogSoftmax", ["b"], ["y"], axis=1),
]
graph = helper.make_graph(
    nodes,
    "softmax",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 1, 1])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "softmax.onnx"))
x = rng.standard_normal((3, 6, 1, 1)).astype(np.float32)
y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
np.save(os.path.join(here, "softmax.input.npy"), x)
np.save(os.path.join(here, "softmax.output.npy"), y)


wc = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
wh = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
wo = rng.standard_normal((2, 5, 1, 1)).astype(np.float32)
inits = [
    numpy_helper.from_array(wc, "wc"),
    numpy_helper.from_array(wh, "wh"),
    numpy_helper.from_array(wo, "wo"),
    ints("shape5", [0, 2, 4, 4, 4]),
    ints("shape4", [0, 8, 4, 4]),
    ints("sizes", [3, 5]),
]
nodes = [
    helper.make_node("Conv", ["x", "wc"], ["a"], pads=[1, 1, 1, 1]),
    helper.make_node("Split", ["a"], ["h0", "h1"], axis=1, num_outputs=2),
    helper.make_node("Conv", ["h1", "wh"], ["h1c"]),
    helper.make_node("Concat", ["h0", "h1c"], ["cat"], axis=1),
    helper.make_node("Reshape", ["cat", "shape5"], ["r5"]),
    helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
    helper.make_node("Reshape", ["t5", "shape4"], ["s"]),
    helper.make_node("Split", ["s", "sizes"], ["p0", "p1"], axis=1),
    helper.make_node("Conv", ["p1", "wo"], ["y"]),
]
graph = helper.make_graph(
    nodes,
    "split",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 4])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "split.onnx"))
x = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
np.save(os.path.join(here, "split.input.npy"), x)
np.save(os.path.join(here, "split.output.npy"), y)


wl = rng.standard_normal((7, 3, 3, 3)).astype(np.float32)
wm = rng.standard_normal((2, 7, 1, 1)).astype(np.float32)
inits = [numpy_helper.from_array(wl, "wl"), numpy_helper.from_array(wm, "wm")]
nodes = [
    helper.make_node("Conv", ["x", "wl"], ["a"], pads=[1, 1, 1, 1]),
    helper.make_node("LRN", ["a"], ["n"], size=5, alpha=1e-2, beta=0.75, bias=2.0),
    helper.make_node("Conv", ["n", "wm"], ["y"]),
]
graph = helper.make_graph(
    nodes,
    "lrn",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 5])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "lrn.onnx"))
x = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
np.save(os.path.join(here, "lrn.input.npy"), x)
np.save(os.path.join(here, "lrn.output.npy"), y)
