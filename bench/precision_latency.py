"""Latency of one model at fp32, bf16 and int8, ours against onnxruntime's fp32 and int8, interleaved.

Usage: target/bench-venv/bin/python bench/precision_latency.py NAME FP32.onnx QDQ.onnx INPUT.npy ROUNDS RUNS \
           OURS_FP32 OURS_BF16 OURS_INT8 [BATCHES=1,8] [THREADS=1,2]

OURS_* are emitted CLIs (`resnextc compile FP32.onnx [--precision bf16]`, `resnextc compile QDQ.onnx`,
built `--release`); QDQ.onnx comes from `bench/make_qdq.py FP32.onnx QDQ.onnx`. INPUT.npy is one image
(its first item is repeated to the batch). For each batch and thread count, each round runs the three
builds (`--bench RUNS`) and then onnxruntime (`bench/ort_peer.py`) on FP32.onnx and QDQ.onnx (RUNS
runs each), so all five see the same stretch of a shared machine's load; prints one markdown row per
batch and thread count: the medians over ROUNDS of each round's median in ms, int8 against
onnxruntime's int8 and bf16 against onnxruntime's fp32.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

name, fp32_onnx, qdq_onnx, image, rounds, runs = sys.argv[1:7]
rounds, runs = int(rounds), int(runs)
ours = {"fp32": sys.argv[7], "bf16": sys.argv[8], "int8": sys.argv[9]}
batches = [int(b) for b in (sys.argv[10] if len(sys.argv) > 10 else "1,8").split(",")]
thread_counts = [int(t) for t in (sys.argv[11] if len(sys.argv) > 11 else "1,2").split(",")]
peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_peer.py")
tmp = tempfile.mkdtemp()
out_npy = os.path.join(tmp, "logits.npy")
first = np.load(image)[:1]


def start_peer(model, threads, batch):
    p = subprocess.Popen([sys.executable, peer, model, str(threads), str(batch)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise SystemExit(f"onnxruntime failed on {model}")
    return p


def run_ours(binary, inp, threads):
    out = subprocess.run([binary, inp, out_npy, "--bench", str(runs), "--threads", str(threads)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.findall(r"median_ms=([0-9.]+)", out)[-1])


print("| model | batch | threads | ours fp32 | ours bf16 | ours int8 | ORT fp32 | ORT int8 | int8/ORT int8 | bf16/ORT fp32 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for batch in batches:
    inp = os.path.join(tmp, f"input{batch}.npy")
    np.save(inp, np.repeat(first, batch, axis=0))
    for threads in thread_counts:
        peers = {"ort_fp32": start_peer(fp32_onnx, threads, batch), "ort_int8": start_peer(qdq_onnx, threads, batch)}
        times = {k: [] for k in list(ours) + list(peers)}
        for _ in range(rounds):
            for k, binary in ours.items():
                times[k].append(run_ours(binary, inp, threads))
            for k, p in peers.items():
                p.stdin.write(f"run {runs}\n")
                p.stdin.flush()
                times[k].append(statistics.median(float(x) for x in p.stdout.readline().split()))
        for p in peers.values():
            p.stdin.write("quit\n")
            p.stdin.flush()
        m = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {name} | {batch} | {threads} | {m['fp32']:.2f} | {m['bf16']:.2f} | {m['int8']:.2f} | "
              f"{m['ort_fp32']:.2f} | {m['ort_int8']:.2f} | {m['int8'] / m['ort_int8']:.2f} | "
              f"{m['bf16'] / m['ort_fp32']:.2f} |", flush=True)
