"""The bf16 oracle of the end-to-end tests: `MODEL.bf16.output.npy`, onnxruntime's fp32 run of
`MODEL.onnx` rewritten to compute what `resnextc compile --precision bf16` computes.

`--precision bf16` folds each BatchNormalization into the conv before it, then runs on bf16
operands with fp32 sums every 1×1 conv without padding or groups, every Gemm (the classifier) and
the other convs `direct_bf16::preferred` takes (runtime-core/src/kernels/direct_bf16.rs: at least
two input channels a group and 16 output pixels, not a grouped conv of stride 2 with fewer than 32
channels a group). Here: the same folding (in numpy, fp32), the folded weights of those layers
rounded to bf16 (to nearest even), and their data inputs rounded by a Cast to BFLOAT16 and back.
Every other layer (depthwise convs, thin strided grouped ones) is left as it is (fp32). The kernels differ from this only in the order of their fp32 sums (and subnormals,
which they flush), so a test can hold the compiled model to it far more tightly than to the fp32
logits, whose distance from bf16's is the network's own sensitivity to bf16.

Run: `/work/venv/bin/python testdata/make_bf16_outputs.py testdata/resnext_small_8x4d_bn testdata/mobilenet_v2_bn`
(each argument a model path without `.onnx`; reads `.input.npy`, writes `.bf16.output.npy`).
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def round_bf16(w: np.ndarray) -> np.ndarray:
    """fp32 → nearest bf16 (ties to even) → fp32; NaN stays NaN."""
    bits = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(w), w, out).astype(np.float32)


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def direct_bf16(n, w, out_shape) -> bool:
    """Whether `direct_bf16::preferred` takes this (non-1×1) conv."""
    group = attr(n, "group", 1)
    cin_g = w.shape[1]
    strides = attr(n, "strides", [1, 1])
    pixels = int(np.prod(out_shape[2:])) if out_shape else 0
    thin_strided_group = group > 1 and any(s != 1 for s in strides) and cin_g < 32
    return cin_g >= 2 and pixels >= 16 and not thin_strided_group


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in onnx.shape_inference.infer_shapes(model).graph.value_info
    }
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    arr = lambda name: numpy_helper.to_array(inits[name]).astype(np.float32)

    def set_init(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    bf16_nodes, dropped = [], set()
    for n in g.node:
        if n.op_type == "Conv":
            w = arr(n.input[1])
            one_by_one = w.shape[2:] == (1, 1) and not any(attr(n, "pads", [0, 0, 0, 0]))
            if one_by_one:
                if attr(n, "group", 1) != 1:
                    continue
            elif not direct_bf16(n, w, shapes.get(n.output[0])):
                continue
            users = consumers.get(n.output[0], [])
            if len(users) == 1 and users[0].op_type == "BatchNormalization":
                bn = users[0]
                gamma, beta, mean, var = (arr(x) for x in bn.input[1:5])
                scale = (gamma / np.sqrt(var + np.float32(attr(bn, "epsilon", 1e-5)))).astype(np.float32)
                bias = arr(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros_like(mean)
                w = (w * scale[:, None, None, None]).astype(np.float32)
                bias = ((bias - mean) * scale + beta).astype(np.float32)
                bias_name = n.output[0] + "_folded_bias"
                g.initializer.append(numpy_helper.from_array(bias, bias_name))
                inits[bias_name] = g.initializer[-1]
                del n.input[2:]
                n.input.append(bias_name)
                n.output[0] = bn.output[0]
                dropped.add(id(bn))
            set_init(n.input[1], round_bf16(w))
            bf16_nodes.append(n)
        elif n.op_type == "Gemm" and n.input[1] in inits:
            set_init(n.input[1], round_bf16(arr(n.input[1])))
            bf16_nodes.append(n)
    kept = [n for n in g.node if id(n) not in dropped]
    nodes, rounded = [], set()
    for n in kept:
        if any(n is b for b in bf16_nodes):
            x = n.input[0]
            if x not in rounded:
                rounded.add(x)
                nodes.append(helper.make_node("Cast", [x], [x + "_bf16"], to=TensorProto.BFLOAT16))
                nodes.append(helper.make_node("Cast", [x + "_bf16"], [x + "_rounded"], to=TensorProto.FLOAT))
            n.input[0] = x + "_rounded"
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    return model


def main() -> None:
    for stem in sys.argv[1:]:
        model = rewrite(onnx.load(stem + ".onnx"))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        x = np.load(stem + ".input.npy")
        (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
        np.save(stem + ".bf16.output.npy", y.astype(np.float32))
        fp32 = np.load(stem + ".output.npy")
        print(f"{stem}: max |bf16 − fp32| {np.abs(y - fp32).max():.3e}, max |logit| {np.abs(fp32).max():.3e}")


if __name__ == "__main__":
    main()
