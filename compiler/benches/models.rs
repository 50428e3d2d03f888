//! Whole-model benchmark: our compiled crates vs tract vs onnxruntime, interleaved in one run, and
//! the GFLOP/s of every distinct conv layer of ResNeXt-50 against the machine's measured FMA peak.
//!
//! `cargo bench -p resnext-compiler --bench models -- [--rounds R] [--runs K] [--threads 1,2]
//! [--batch 1,8] [--models a.onnx,b.onnx] [--no-ort] [--no-tract] [--no-layers]`
//!
//! Models default to `$RESNEXT_MODELS/resnext50_32x4d_bn.onnx`, `testdata/mobilenet_v2_bn.onnx` and
//! `target/bench/resnet50.onnx` (written by `bench/make_resnet.py` when the venv of
//! `bench/setup.sh` exists). onnxruntime runs in `bench/ort_peer.py` inside that venv; without it the
//! ORT column is skipped with a message. Every configuration runs R rounds; each round runs ours
//! (one process of the emitted CLI, `--bench K`), tract (K runs) and ORT (K runs) back to back, so
//! load on this shared machine hits all three alike. Reported: the median over rounds of each
//! round's median, and ours/peer ratios.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use resnext_compiler::{driver, interp, ir};
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg::multithread::{Executor, set_default_executor};

// The FMA-peak probe is benchmark code, not runtime API: shared with `bench_gemm` as a module.
#[path = "../../runtime-core/examples/fma_peak/mod.rs"]
mod fma_peak;

struct Args {
    rounds: usize,
    runs: usize,
    threads: Vec<usize>,
    batches: Vec<usize>,
    models: Vec<PathBuf>,
    ort: bool,
    tract: bool,
    layers: bool,
}

fn parse_args() -> Args {
    let root = workspace_root();
    let mut models = Vec::new();
    match std::env::var_os("RESNEXT_MODELS") {
        // Cargo runs benches in the package directory: a relative path means the workspace root.
        Some(dir) => models.push(root.join(dir).join("resnext50_32x4d_bn.onnx")),
        None => eprintln!("note: RESNEXT_MODELS is not set: ResNeXt-50 is left out"),
    }
    models.push(root.join("testdata/mobilenet_v2_bn.onnx"));
    models.push(root.join("target/bench/resnet50.onnx"));
    let mut a = Args {
        rounds: 5,
        runs: 5,
        threads: vec![1, 2],
        batches: vec![1, 8],
        models,
        ort: true,
        tract: true,
        layers: true,
    };
    let mut it = std::env::args().skip(1);
    let list = |v: Option<String>| -> Vec<usize> {
        v.unwrap_or_default()
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rounds" => a.rounds = list(it.next()).first().copied().unwrap_or(5).max(1),
            "--runs" => a.runs = list(it.next()).first().copied().unwrap_or(5).max(1),
            "--threads" => a.threads = list(it.next()),
            "--batch" => a.batches = list(it.next()),
            // Relative paths are taken from the workspace root (cargo bench runs in compiler/).
            "--models" => {
                a.models = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| root.join(p))
                    .collect()
            }
            "--no-ort" => a.ort = false,
            "--no-tract" => a.tract = false,
            "--no-layers" => a.layers = false,
            "--bench" => {} // cargo bench passes this
            other => eprintln!("ignoring unknown argument `{other}`"),
        }
    }
    a
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A deterministic N(0,1)-ish input (sum of uniforms), no RNG crate needed.
fn input(len: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32;
            }
            (acc - 2.0) * 1.732
        })
        .collect()
}

/// Compiles `model` with resnextc's pipeline and builds the emitted crate; returns its binary.
fn build_ours(model: &Path, root: &Path) -> Result<(PathBuf, ir::Graph), String> {
    let name = driver::default_name(model).replace('-', "_");
    let dir = root.join("target/bench/crates").join(&name);
    let mut options = driver::Options::default();
    options.back.name = name.clone();
    let graph = driver::load(model, &options).map_err(|e| format!("{e:?}"))?;
    let compiled = driver::compile_to_crate(graph, &dir, &options).map_err(|e| format!("{e:?}"))?;
    let target = root.join("target/emitted");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("building {} failed", dir.display()));
    }
    Ok((target.join("release").join(&name), compiled.graph))
}

/// One round of ours: a process of the emitted CLI running `runs` timed passes; its median in ms.
fn run_ours(bin: &Path, input: &Path, threads: usize, runs: usize) -> Result<f64, String> {
    let out = Command::new(bin)
        .arg(input)
        .arg(std::env::temp_dir().join("resnext-bench-out.npy"))
        .args([
            "--bench",
            &runs.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("median_ms="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{}: no median_ms in {text:?} {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

struct Ort {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Ort {
    fn start(
        python: &Path,
        script: &Path,
        model: &Path,
        threads: usize,
        batch: usize,
    ) -> Result<Ort, String> {
        let mut child = Command::new(python)
            .arg(script)
            .arg(model)
            .args([threads.to_string(), batch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!("onnxruntime peer did not start: {line:?}"));
        }
        Ok(Ort {
            child,
            stdin,
            stdout,
        })
    }

    fn round(&mut self, runs: usize) -> Result<f64, String> {
        writeln!(self.stdin, "run {runs}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let mut times: Vec<f64> = line
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        Ok(median(&mut times))
    }
}

impl Drop for Ort {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

type TractPlan = Arc<TypedRunnableModel>;

/// tract's optimised plan of `model` for a batch of `shape` (our input shape, batch first).
fn tract_model(model: &Path, shape: &[usize]) -> TractResult<TractPlan> {
    tract_onnx::onnx()
        .model_for_path(model)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()
}

fn main() {
    let args = parse_args();
    let root = workspace_root();
    let python = root.join("target/bench-venv/bin/python");
    let have_venv = python.exists();
    if !have_venv {
        eprintln!("note: no target/bench-venv (run bench/setup.sh): onnxruntime is skipped");
    }
    let resnet50 = root.join("target/bench/resnet50.onnx");
    if have_venv && !resnet50.exists() {
        // A fresh clone has no target/bench yet: make_resnet.py would fail to save into it.
        let made = resnet50
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                Command::new(&python)
                    .arg(root.join("bench/make_resnet.py"))
                    .arg(&resnet50)
                    .status()
                    .map_err(|e| e.to_string())
            });
        match made {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("note: bench/make_resnet.py failed ({status}): no ResNet-50"),
            Err(e) => eprintln!("note: could not run bench/make_resnet.py ({e}): no ResNet-50"),
        }
    }
    println!(
        "# resnext-rs benchmark, ISA {}, {} cores",
        isa().name(),
        Threads::available().count()
    );

    let mut resnext50 = None;
    let mut rows = Vec::new();
    for model in &args.models {
        if !model.exists() {
            eprintln!("skipping {}: not found", model.display());
            continue;
        }
        let name = driver::default_name(model);
        let (bin, graph) = match build_ours(model, &root) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        let per_item = graph
            .node(graph.inputs[0])
            .output
            .shape
            .per_item()
            .unwrap_or_default();
        let item_len: usize = per_item.iter().product();
        if name.starts_with("resnext50") {
            resnext50 = Some(graph);
        }
        for &batch in &args.batches {
            let data = input(batch * item_len);
            let npy = std::env::temp_dir().join(format!("resnext-bench-{name}-{batch}.npy"));
            let mut shape = vec![batch];
            shape.extend(&per_item);
            resnext_runtime_core::formats::npy::write_f32(&npy, &shape, &data)
                .expect("write input");
            let tract = if args.tract {
                tract_model(model, &shape)
                    .map_err(|e| eprintln!("tract skipped: {e:?}"))
                    .ok()
            } else {
                None
            };
            let tensor: Option<Tensor> = tract
                .as_ref()
                .and_then(|_| {
                    tract_ndarray::ArrayD::from_shape_vec(shape.clone(), data.clone()).ok()
                })
                .map(Tensor::from);
            for &threads in &args.threads {
                set_default_executor(if threads > 1 {
                    Executor::multithread(threads)
                } else {
                    Executor::SingleThread
                });
                let mut ort = if args.ort && have_venv {
                    Ort::start(
                        &python,
                        &root.join("bench/ort_peer.py"),
                        model,
                        threads,
                        batch,
                    )
                    .map_err(|e| eprintln!("onnxruntime skipped: {e}"))
                    .ok()
                } else {
                    None
                };
                let (mut ours, mut tr, mut or) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..args.rounds {
                    match run_ours(&bin, &npy, threads, args.runs) {
                        Ok(t) => ours.push(t),
                        Err(e) => eprintln!("{e}"),
                    }
                    if let (Some(plan), Some(x)) = (&tract, &tensor) {
                        let _ = plan.run(tvec!(x.clone().into()));
                        let mut times = Vec::new();
                        for _ in 0..args.runs {
                            let t0 = Instant::now();
                            let _ = plan.run(tvec!(x.clone().into()));
                            times.push(t0.elapsed().as_secs_f64() * 1e3);
                        }
                        tr.push(median(&mut times));
                    }
                    if let Some(Ok(t)) = ort.as_mut().map(|o| o.round(args.runs)) {
                        or.push(t);
                    }
                }
                let (o, t, r) = (median(&mut ours), median(&mut tr), median(&mut or));
                eprintln!(
                    "{name} batch {batch} threads {threads}: ours {o:.2} ms, tract {t:.2} ms, onnxruntime {r:.2} ms"
                );
                rows.push((name.clone(), batch, threads, o, t, r));
            }
        }
    }
    println!();
    println!(
        "| model | batch | threads | ours ms | tract ms | onnxruntime ms | ours/ORT | ours/tract |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, batch, threads, o, t, r) in &rows {
        println!(
            "| {name} | {batch} | {threads} | {o:.2} | {} | {} | {} | {} |",
            fmt(*t),
            fmt(*r),
            ratio(*o, *r),
            ratio(*o, *t)
        );
    }
    if let (true, Some(graph)) = (args.layers, resnext50) {
        // Measured here, right before the layers, so both see the same load on a shared machine.
        let peak = fma_peak::fma_peak_gflops(&Threads::new(1), isa(), Duration::from_secs(2))
            .unwrap_or(f64::NAN);
        println!("\nmeasured FMA peak: {peak:.0} GFLOP/s on one thread");
        layer_table(&graph, peak, &args.threads);
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

/// GFLOP/s of each distinct conv layer (as compiled) of a graph, at batch 1.
fn layer_table(graph: &ir::Graph, peak: f64, thread_counts: &[usize]) {
    let mut seen = Vec::new();
    for id in graph.topo_order().unwrap_or_default() {
        let node = graph.node(id);
        let ir::Op::Conv(c) = &node.op else { continue };
        let ir::ConvKernel::Fast(algo) = c.kernel_choice else {
            continue;
        };
        let shape = interp::conv_shape(c, &graph.node(graph.inputs_of(id)[0]).output, &node.output);
        let key = (shape, algo);
        if let Some(entry) = seen.iter_mut().find(|(k, _, _)| *k == key) {
            entry.1 += 1;
            continue;
        }
        seen.push((key, 1usize, node.name.clone()));
    }
    println!();
    println!(
        "ResNeXt-50 conv layers, batch 1 (distinct shapes; FMA peak {peak:.0} GFLOP/s per thread)"
    );
    print!("| layer | algo | count | in → out | MMAC |");
    for t in thread_counts {
        print!(" µs ({t}T) | GFLOP/s ({t}T) | % peak ({t}T) |");
    }
    println!();
    println!("|{}", " --- |".repeat(5 + 3 * thread_counts.len()));
    let mut totals = vec![0.0; thread_counts.len()];
    for ((shape, algo), count, name) in &seen {
        let macs = shape.macs() as f64;
        print!(
            "| {name} | {} | {count} | {}×{}×{} → {}×{}×{} /{} g{} | {:.1} |",
            algo.name(),
            shape.in_c,
            shape.in_h,
            shape.in_w,
            shape.out_c,
            shape.out_h,
            shape.out_w,
            shape.stride[0],
            shape.group,
            macs / 1e6
        );
        for (i, &t) in thread_counts.iter().enumerate() {
            let us = time_layer(shape, *algo, t);
            totals[i] += us * *count as f64;
            let gflops = 2.0 * macs / us / 1e3;
            print!(
                " {us:.0} | {gflops:.0} | {:.0}% |",
                100.0 * gflops / (peak * t as f64)
            );
        }
        println!();
    }
    for (i, t) in thread_counts.iter().enumerate() {
        println!(
            "sum of conv layers at {t} thread(s): {:.2} ms",
            totals[i] / 1e3
        );
    }
}

/// Median µs of one conv layer on random data.
fn time_layer(shape: &ConvShape, algo: ConvAlgo, threads: usize) -> f64 {
    let pool = Threads::new(threads);
    let x = input(shape.input_len());
    let w = input(shape.weight_len());
    let bias = input(shape.out_c);
    let packed = conv::pack(algo, shape, &w).expect("pack");
    let mut out = vec![0.0; shape.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(algo, shape, 1, threads)];
    let epi = Epilogue {
        bias: Some(&bias),
        residual: None,
        activation: Activation::Relu,
    };
    let mut run = || {
        let args = ConvArgs {
            shape: *shape,
            batch: 1,
            input: &x,
            packed: &packed,
            epilogue: epi,
            output: &mut out,
            scratch: &mut scratch,
        };
        conv::conv2d(&Ctx::new(&pool), algo, args).expect("conv")
    };
    for _ in 0..3 {
        run();
    }
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t0 = Instant::now();
            run();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&mut times)
}
