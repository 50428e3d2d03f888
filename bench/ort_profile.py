"""Where onnxruntime spends its time on a model, per node and per kind of layer, from its own profiler.

Usage: target/bench-venv/bin/python bench/ort_profile.py MODEL.onnx [THREADS] [RUNS] [--nodes] [--batch B]

Runs the model RUNS times (default 30; batch B, default 1, random input) with `enable_profiling`, drops
the first five runs, and prints the median and fastest µs of each node (with --nodes) and the sums of
those per kind (the fastest run of each node is the steadier figure on a shared machine whose neighbours
slow whole stretches of runs): 1×1 convs, depthwise convs, other grouped convs, other convs (3×3, 7×7
stems...), layout reorders, and the other op types. Any model with one float input whose dimensions
after the first are fixed works (every `make_fixtures.py` model, either exporter). Conv kinds come from
the weight shape ORT records for each node, not from node names, so fused nodes (ORT names them after
their outputs) are classified too. Compare with our per-layer table: `RESNEXT_PROFILE=1` on the
emitted CLI with `--bench N` (README, Runtime knobs).
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def kind(event) -> str:
    args = event.get("args", {})
    op = args.get("op_name", "")
    if op in ("Conv", "FusedConv"):
        shapes = [list(s.values())[0] for s in args.get("input_type_shape", [])]
        if len(shapes) >= 2 and len(shapes[1]) == 4 and len(shapes[0]) >= 2:
            # The weight is [out, in/group, kh, kw]; NCHWc convs record a blocked input
            # [N, C/c, H, W, c] (and NCHWc depthwise convs a blocked weight, whose in/group is 1).
            out_c, in_per_group, kh, kw = shapes[1]
            in_c = shapes[0][1] * (shapes[0][4] if len(shapes[0]) == 5 else 1)
            groups = in_c // in_per_group if in_per_group else 1
            if groups > 1 and in_per_group == 1:
                return "depthwise conv"
            if groups > 1:
                return "grouped conv"
            if kh == 1 and kw == 1:
                return "1x1 conv"
        return "other conv"
    if op.startswith("Reorder"):
        return "reorder"
    return op or "?"


def main() -> None:
    args = sys.argv[1:]
    batch = 1
    if "--batch" in args:
        i = args.index("--batch")
        batch = int(args[i + 1])
        del args[i : i + 2]
    show_nodes = "--nodes" in args
    argv = [a for a in args if not a.startswith("--")]
    if not argv:
        sys.exit(__doc__)
    model = argv[0]
    threads = int(argv[1]) if len(argv) > 1 else 2
    runs = int(argv[2]) if len(argv) > 2 else 30
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if any(not isinstance(d, int) for d in inp.shape[1:]):
        sys.exit(f"{model}: input {inp.name} has shape {inp.shape}: only the first dimension may be symbolic")
    x = np.random.default_rng(0).standard_normal([batch] + list(inp.shape[1:]), dtype=np.float32)
    for _ in range(runs):
        sess.run(None, {inp.name: x})
    profile = sess.end_profiling()
    with open(profile) as f:
        events = json.load(f)
    os.remove(profile)
    durations = collections.defaultdict(list)
    kinds = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            durations[e["name"]].append(e["dur"])
            kinds[e["name"]] = kind(e)
    per_kind = collections.defaultdict(float)
    per_kind_min = collections.defaultdict(float)
    total = total_min = 0.0
    for name, ds in durations.items():
        ds = sorted(ds[5:] or ds)
        med = ds[len(ds) // 2]
        total += med
        total_min += ds[0]
        per_kind[kinds[name]] += med
        per_kind_min[kinds[name]] += ds[0]
        if show_nodes:
            print(f"{name.removesuffix('_kernel_time'):70} {kinds[name]:13} {med:8.0f} µs  min {ds[0]:8.0f} µs")
    print(f"onnxruntime {ort.__version__}, {os.path.basename(model)}, {threads} thread(s), batch {batch}, median of {runs - 5} runs")
    for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {k:14} {v / 1e3:8.2f} ms  {100 * v / total:5.1f}%   fastest {per_kind_min[k] / 1e3:8.2f} ms")
    print(f"  {'sum of nodes':14} {total / 1e3:8.2f} ms           fastest {total_min / 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
