#!/usr/bin/env python3
"""Writes small ONNX seed models for the `onnx_import` fuzzer (no dependencies: a minimal protobuf
encoder), and a small weights file for `weights_load`. Usage: python3 fuzz/make_seeds.py OUT_DIR"""
import random, struct, sys, os, zlib

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def key(field, wire):
    return varint(field << 3 | wire)

def f_int(field, v):
    return key(field, 0) + varint(v)

def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b

def f_float(field, v):
    return key(field, 5) + struct.pack("<f", v)

def tensor(name, dims, data):
    out = b"".join(f_int(1, d) for d in dims) + f_int(2, 1) + f_bytes(8, name)
    return out + f_bytes(9, struct.pack("<%df" % len(data), *data))

def attr_int(name, v):
    return f_bytes(1, name) + f_int(3, v) + f_int(20, 2)

def attr_ints(name, vs):
    return f_bytes(1, name) + b"".join(f_int(8, v) for v in vs) + f_int(20, 7)

def attr_float(name, v):
    return f_bytes(1, name) + f_float(2, v) + f_int(20, 1)

def node(op, inputs, outputs, attrs=(), name=None):
    out = b"".join(f_bytes(1, i) for i in inputs) + b"".join(f_bytes(2, o) for o in outputs)
    out += f_bytes(3, name or outputs[0]) + f_bytes(4, op)
    return out + b"".join(f_bytes(5, a) for a in attrs)

def value_info(name, dims):
    shape = b"".join(f_bytes(1, f_int(1, d) if isinstance(d, int) else f_bytes(2, d)) for d in dims)
    tensor_type = f_int(1, 1) + f_bytes(2, shape)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, tensor_type))

def model(nodes, inits, inputs, outputs, opset=13):
    graph = b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, "seed")
    graph += b"".join(f_bytes(5, t) for t in inits)
    graph += b"".join(f_bytes(11, value_info(*i)) for i in inputs)
    graph += b"".join(f_bytes(12, value_info(*o)) for o in outputs)
    opset_id = f_bytes(1, "") + f_int(2, opset)
    return f_int(1, 8) + f_bytes(2, "make_seeds") + f_bytes(7, graph) + f_bytes(8, opset_id)

rng = random.Random(7)
def rand(n):
    return [rng.uniform(-1, 1) for _ in range(n)]

def bn(prefix, c):
    return [tensor(prefix + ".s", [c], rand(c)), tensor(prefix + ".b", [c], rand(c)),
            tensor(prefix + ".m", [c], rand(c)), tensor(prefix + ".v", [c], [rng.uniform(0.5, 2) for _ in range(c)])]

def resnext_block():
    """stem conv 3x3 → BN → Relu → MaxPool; a grouped bottleneck with residual; GAP → Flatten → Gemm."""
    c = 8
    inits = [tensor("stem.w", [c, 3, 3, 3], rand(c * 27))] + bn("bn0", c)
    inits += [tensor("c1.w", [c, c, 1, 1], rand(c * c))] + bn("bn1", c)
    inits += [tensor("c2.w", [c, 2, 3, 3], rand(c * 18))] + bn("bn2", c)
    inits += [tensor("c3.w", [c, c, 1, 1], rand(c * c))] + bn("bn3", c)
    inits += [tensor("fc.w", [4, c], rand(4 * c)), tensor("fc.b", [4], rand(4))]
    def bnn(x, p, y):
        return node("BatchNormalization", [x, p + ".s", p + ".b", p + ".m", p + ".v"], [y], [attr_float("epsilon", 1e-5)])
    nodes = [
        node("Conv", ["x", "stem.w"], ["s"], [attr_ints("kernel_shape", [3, 3]), attr_ints("pads", [1, 1, 1, 1]), attr_ints("strides", [1, 1])]),
        bnn("s", "bn0", "s_bn"), node("Relu", ["s_bn"], ["s_r"]),
        node("MaxPool", ["s_r"], ["p"], [attr_ints("kernel_shape", [3, 3]), attr_ints("pads", [1, 1, 1, 1]), attr_ints("strides", [2, 2])]),
        node("Conv", ["p", "c1.w"], ["a"], [attr_ints("kernel_shape", [1, 1])]), bnn("a", "bn1", "a_bn"), node("Relu", ["a_bn"], ["a_r"]),
        node("Conv", ["a_r", "c2.w"], ["b"], [attr_ints("kernel_shape", [3, 3]), attr_ints("pads", [1, 1, 1, 1]), attr_int("group", 4)]),
        bnn("b", "bn2", "b_bn"), node("Relu", ["b_bn"], ["b_r"]),
        node("Conv", ["b_r", "c3.w"], ["c"], [attr_ints("kernel_shape", [1, 1])]), bnn("c", "bn3", "c_bn"),
        node("Add", ["c_bn", "p"], ["sum"]), node("Relu", ["sum"], ["out"]),
        node("GlobalAveragePool", ["out"], ["g"]), node("Flatten", ["g"], ["f"], [attr_int("axis", 1)]),
        node("Gemm", ["f", "fc.w", "fc.b"], ["y"], [attr_int("transB", 1)]),
    ]
    return model(nodes, inits, [("x", ["N", 3, 8, 8])], [("y", ["N", 4])])

def mobile_block():
    """depthwise 3x3 conv + Clip(0, 6) + pointwise conv + AveragePool + ReduceMean-free Reshape + MatMul."""
    c = 4
    inits = [tensor("dw.w", [c, 1, 3, 3], rand(c * 9)), tensor("dw.b", [c], rand(c))]
    inits += [tensor("pw.w", [6, c, 1, 1], rand(6 * c))] + bn("bn", 6)
    inits += [tensor("lo", [], [0.0]), tensor("hi", [], [6.0])]
    inits += [tensor("fc.w", [6, 3], rand(18))]
    shape = f_int(1, 2) + f_int(2, 7) + f_bytes(8, "shape") + f_bytes(9, struct.pack("<2q", 0, -1))
    inits.append(shape)
    nodes = [
        node("Conv", ["x", "dw.w", "dw.b"], ["d"], [attr_ints("kernel_shape", [3, 3]), attr_ints("pads", [1, 1, 1, 1]), attr_int("group", c), attr_ints("strides", [2, 2])]),
        node("Clip", ["d", "lo", "hi"], ["d6"]),
        node("Conv", ["d6", "pw.w"], ["p"], [attr_ints("kernel_shape", [1, 1])]),
        node("BatchNormalization", ["p", "bn.s", "bn.b", "bn.m", "bn.v"], ["pb"]),
        node("AveragePool", ["pb"], ["a"], [attr_ints("kernel_shape", [2, 2]), attr_ints("strides", [2, 2])]),
        node("GlobalAveragePool", ["a"], ["g"]),
        node("Reshape", ["g", "shape"], ["f"]),
        node("MatMul", ["f", "fc.w"], ["y"]),
    ]
    return model(nodes, inits, [("x", [1, c, 8, 8])], [("y", [1, 3])])

def weights_file(model_hash, tensors):
    """The runtime's weights format (runtime-core/src/formats/weights.rs)."""
    header_len = 32
    table_len = sum(4 + len(n) + 4 + 8 * len(d) + 16 for n, d, _ in tensors)
    offset = -(-(header_len + table_len) // 64) * 64
    table, offsets = b"", []
    for n, d, data in tensors:
        offsets.append(offset)
        table += struct.pack("<I", len(n)) + n.encode() + struct.pack("<I", len(d))
        table += b"".join(struct.pack("<Q", x) for x in d) + struct.pack("<QQ", offset, len(data))
        offset = -(-(offset + 4 * len(data)) // 64) * 64
    out = bytearray(b"RNXTWGT\0" + struct.pack("<IIQQ", 2, 0, model_hash, len(tensors)) + table)
    for off, (_, _, data) in zip(offsets, tensors):
        out += bytes(off - len(out)) + struct.pack("<%df" % len(data), *data)
    out += bytes(-(-len(out) // 64) * 64 - len(out))
    return bytes(out) + struct.pack("<I", zlib.crc32(out))

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in [("resnext_block.onnx", resnext_block()), ("mobile_block.onnx", mobile_block())]:
        open(os.path.join(out, name), "wb").write(data)
    w = weights_file(0x1234_5678_9abc_def0, [("conv.weight", [2, 3, 1, 1], rand(6)), ("fc.bias", [3], rand(3)), ("empty", [0], [])])
    open(os.path.join(out, "small.weights"), "wb").write(w)
