"""Which arithmetic onnxruntime's QLinearAdd uses: every pair of u8 operands (65536) through a
QDQ `DequantizeLinear ×2 → Add → QuantizeLinear` model (which onnxruntime runs as its QLinearAdd),
for random scale sets and, if given, those of the residual Adds of QDQ models; prints, per
candidate formula, how many results differ from onnxruntime's.

    target/bench-venv/bin/python bench/qladd_probe.py [MODEL.qdq.onnx ...]

`ort` is the formula of `kernels::int8::SumArith::OnnxRuntime`; `onnx` is the ONNX definition in
f32 (`SumArith::Onnx`). f32 fused multiply-adds are computed in f64 and rounded once (exact here:
the products of a u8 and an f32 fit in f64's significand).
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32


def r32(x):
    """Rounds to f32 (and back to f64 for the next step)."""
    return np.asarray(x, dtype=np.float64).astype(F32).astype(np.float64)


def add_model(sa, za, sb, zb, sc, zc):
    consts = [("sa", sa, F32), ("za", za, np.uint8), ("sb", sb, F32), ("zb", zb, np.uint8),
              ("sc", sc, F32), ("zc", zc, np.uint8)]
    inits = [numpy_helper.from_array(np.array(v, dtype=t), n) for n, v, t in consts]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["da"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["db"]),
             helper.make_node("Add", ["da", "db"], ["s"]),
             helper.make_node("QuantizeLinear", ["s", "sc", "zc"], ["c"])]
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.UINT8, [65536])
    g = helper.make_graph(nodes, "add", [io("a"), io("b")], [io("c")], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def model_add_scales(path):
    """(s_a, z_a, s_b, z_b, s_c, z_c) of every Add between DequantizeLinears and a QuantizeLinear
    (after a Relu, if any)."""
    g = onnx.load(path).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = []
    for n in g.node:
        if n.op_type != "Add":
            continue
        deq = [producer.get(i) for i in n.input]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in deq):
            continue
        after = readers.get(n.output[0], [])
        if len(after) == 1 and after[0].op_type == "Relu":
            after = readers.get(after[0].output[0], [])
        q = [x for x in after if x.op_type == "QuantizeLinear"]
        if not q:
            continue
        ops = [(float(init[d.input[1]]), int(init[d.input[2]])) for d in deq]
        out.append((*ops[0], *ops[1], float(init[q[0].input[1]]), int(init[q[0].input[2]])))
    return out


def main():
    rng = np.random.default_rng(0)
    cases = [(rng.uniform(0.005, 2), int(rng.integers(0, 256)), rng.uniform(0.005, 2),
              int(rng.integers(0, 256)), rng.uniform(0.01, 3), int(rng.integers(0, 256)))
             for _ in range(40)]
    for path in sys.argv[1:]:
        cases += model_add_scales(path)
    a = np.repeat(np.arange(256, dtype=np.uint8), 256)
    b = np.tile(np.arange(256, dtype=np.uint8), 256)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    differ = {"ort": 0, "onnx": 0}
    for sa, za, sb, zb, sc, zc in cases:
        sa, sb, sc = F32(sa), F32(sb), F32(sc)
        sess = ort.InferenceSession(add_model(sa, za, sb, zb, sc, zc),
                                    providers=["CPUExecutionProvider"])
        want = sess.run(None, {"a": a, "b": b})[0].astype(np.int64)
        ra, rb = float(F32(sa / sc)), float(F32(sb / sc))
        fixed = r32(zc - r32(ra * za + r32(rb * zb)))
        formulas = {
            "ort": np.rint(r32(af * ra + r32(bf * rb + fixed))),
            "onnx": np.rint(r32(r32(r32((af - za) * float(sa)) + r32((bf - zb) * float(sb)))
                                / float(sc))) + zc,
        }
        for name, got in formulas.items():
            differ[name] += int((np.clip(got, 0, 255).astype(np.int64) != want).sum())
    print(f"onnxruntime {ort.__version__}, {len(cases)} scale sets × 65536 operand pairs; "
          f"results differing from onnxruntime's: {differ}")


if __name__ == "__main__":
    main()
