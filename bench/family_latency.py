"""Batch-1 latency of every full-size family model, ours against onnxruntime, interleaved.

Usage: target/bench-venv/bin/python bench/family_latency.py FAMILIES_DIR CRATES_DIR THREADS ROUNDS RUNS [a,b,...]

FAMILIES_DIR is the output of `testdata/make_fixtures.py --full DIR --one-per-family` (its
manifest.json, MODEL.dynamo.onnx, MODEL.input.npy); CRATES_DIR/MODEL is each model's crate from
`resnextc compile DIR/MODEL.dynamo.onnx -o CRATES_DIR/MODEL --name MODEL`, built `--release` with
CARGO_TARGET_DIR=CRATES_DIR/target (one shared target dir: the runtime builds once). Each round runs
ours (the emitted CLI, `--bench RUNS --threads THREADS`) then onnxruntime (`bench/ort_peer.py`, RUNS
runs); prints a markdown row per model: medians over ROUNDS of each round's median, in ms. Lighter
than `cargo bench --bench models -- --families DIR` (no tract, no bench build).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

families, crates = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
threads, rounds, runs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
only = sys.argv[6].split(",") if len(sys.argv) > 6 else None
out_npy = os.path.join(tempfile.mkdtemp(), "logits.npy")
peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_peer.py")
models = sorted({f["model"] for f in json.load(open(os.path.join(families, "manifest.json")))["files"]})
print("| model | ours ms | onnxruntime ms | ours/ORT |\n| --- | --- | --- | --- |")
for m in models:
    if only and m not in only:
        continue
    binary = os.path.join(crates, "target", "release", m)
    if not os.path.exists(binary):
        print(f"| {m} | no binary: build {binary} | | |", flush=True)
        continue
    ort = subprocess.Popen([sys.executable, peer, os.path.join(families, f"{m}.dynamo.onnx"), str(threads), "1"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if ort.stdout.readline().strip() != "ready":
        print(f"| {m} | | onnxruntime failed | |", flush=True)
        continue
    ours, theirs = [], []
    for _ in range(rounds):
        out = subprocess.run([binary, os.path.join(families, f"{m}.input.npy"), out_npy,
                              "--bench", str(runs), "--threads", str(threads)],
                             capture_output=True, text=True, cwd=os.path.join(crates, m))
        if out.returncode != 0:
            print(f"| {m} | failed: {out.stderr.strip()[-200:]} | | |", flush=True)
            break
        ours.append(float(re.findall(r"median_ms=([0-9.]+)", out.stdout)[-1]))
        ort.stdin.write(f"run {runs}\n")
        ort.stdin.flush()
        theirs.append(statistics.median(float(x) for x in ort.stdout.readline().split()))
    ort.stdin.write("quit\n")
    ort.stdin.flush()
    if ours and len(ours) == len(theirs):
        o, r = statistics.median(ours), statistics.median(theirs)
        print(f"| {m} | {o:.2f} | {r:.2f} | {o / r:.2f} |", flush=True)
