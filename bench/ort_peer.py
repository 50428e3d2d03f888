"""onnxruntime as a benchmark peer, driven over stdin so that the Rust bench can interleave it with its own runs.

Usage: ort_peer.py MODEL.onnx THREADS BATCH
Protocol: it prints `ready` once the session is built and warmed up; then for each line `run N` on stdin it runs the
model N times and prints the N latencies in ms on one line; `quit` ends it.
"""
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, threads, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch] + [int(d) for d in inp.shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    for _ in range(3):
        sess.run(None, {inp.name: x})
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        times = []
        for _ in range(int(words[1])):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append((time.perf_counter() - t0) * 1e3)
        print(" ".join(f"{t:.4f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
