"""Batch-1 latency of every full-size family model, ours against onnxruntime, interleaved.

Usage: target/bench-venv/bin/python bench/family_latency.py FAMILIES_DIR CRATES_DIR[,CRATES_DIR...] THREADS ROUNDS RUNS [a,b,...]

FAMILIES_DIR is the output of `testdata/make_fixtures.py --full DIR --one-per-family` (its
manifest.json, MODEL.dynamo.onnx, MODEL.input.npy); CRATES_DIR/MODEL is each model's crate from
`resnextc compile DIR/MODEL.dynamo.onnx -o CRATES_DIR/MODEL --name MODEL`, built `--release` with
CARGO_TARGET_DIR=CRATES_DIR/target (one shared target dir: the runtime builds once). Several
comma-separated CRATES_DIRs (say, two builds of the compiler) each get a column, the first one's
the ratio's numerator, and every further one a ratio to the first. Each round runs ours (each
emitted CLI in turn, `--bench RUNS --threads THREADS`) then onnxruntime (`bench/ort_peer.py`, RUNS
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

families = os.path.abspath(sys.argv[1])
crates = [os.path.abspath(c) for c in sys.argv[2].split(",")]
threads, rounds, runs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
only = sys.argv[6].split(",") if len(sys.argv) > 6 else None
out_npy = os.path.join(tempfile.mkdtemp(), "logits.npy")
peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_peer.py")
models = sorted({f["model"] for f in json.load(open(os.path.join(families, "manifest.json")))["files"]})
names = ["ours"] if len(crates) == 1 else [f"ours ({os.path.basename(c)})" for c in crates]
extra = [f"{n}/{names[0]}" for n in names[1:]]
head = ["model"] + [f"{n} ms" for n in names] + ["onnxruntime ms", f"{names[0]}/ORT"] + extra
print("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
for m in models:
    if only and m not in only:
        continue
    binaries = [os.path.join(c, "target", "release", m) for c in crates]
    missing = [b for b in binaries if not os.path.exists(b)]
    if missing:
        print(f"| {m} | no binary: build {missing[0]} |", flush=True)
        continue
    ort = subprocess.Popen([sys.executable, peer, os.path.join(families, f"{m}.dynamo.onnx"), str(threads), "1"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if ort.stdout.readline().strip() != "ready":
        print(f"| {m} | onnxruntime failed |", flush=True)
        continue
    ours, theirs = [[] for _ in crates], []
    failed = False
    for _ in range(rounds):
        for c, binary, times in zip(crates, binaries, ours):
            out = subprocess.run([binary, os.path.join(families, f"{m}.input.npy"), out_npy,
                                  "--bench", str(runs), "--threads", str(threads)],
                                 capture_output=True, text=True, cwd=os.path.join(c, m))
            if out.returncode != 0:
                print(f"| {m} | failed: {out.stderr.strip()[-200:]} |", flush=True)
                failed = True
                break
            times.append(float(re.findall(r"median_ms=([0-9.]+)", out.stdout)[-1]))
        if failed:
            break
        ort.stdin.write(f"run {runs}\n")
        ort.stdin.flush()
        theirs.append(statistics.median(float(x) for x in ort.stdout.readline().split()))
    ort.stdin.write("quit\n")
    ort.stdin.flush()
    if not failed and theirs:
        o = [statistics.median(t) for t in ours]
        r = statistics.median(theirs)
        cells = [f"{x:.2f}" for x in o] + [f"{r:.2f}", f"{o[0] / r:.2f}"] + [f"{x / o[0]:.2f}" for x in o[1:]]
        print(f"| {m} | " + " | ".join(cells) + " |", flush=True)
