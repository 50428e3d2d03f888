//! Whole-model benchmark: our compiled crates vs tract vs onnxruntime, interleaved in one run, and
//! the GFLOP/s of every distinct conv layer of ResNeXt-50 against the machine's measured FMA peak.
//!
//! `cargo bench -p resnext-compiler --bench models -- [--rounds R] [--runs K] [--threads 1,2]
//! [--batch 1,8] [--models a.onnx,b.onnx] [--families DIR [--only a,b]] [--no-ort] [--no-tract]
//! [--no-layers]`
//!
//! `--families DIR` adds the `NAME.dynamo.onnx` file of every model of a directory written by
//! `testdata/make_fixtures.py --full DIR` (in its manifest's order; `--only` picks models by
//! name) and, without `--models`, replaces the defaults. A model we cannot compile or run, or
//! tract cannot load, is reported (why, in the table's note column) and the run goes on. The
//! weights file of a family model's crate is removed once its rows are done (every run rewrites
//! it; there are gigabytes of them). Models default to `$RESNEXT_MODELS/resnext50_32x4d_bn.onnx`, `testdata/mobilenet_v2_bn.onnx` and
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
    /// The models that came from `--families`, whose weights files are removed after use.
    family_models: Vec<PathBuf>,
    ort: bool,
    tract: bool,
    layers: bool,
}

fn default_models(root: &Path) -> Vec<PathBuf> {
    let mut models = Vec::new();
    match std::env::var_os("RESNEXT_MODELS") {
        // Cargo runs benches in the package directory: a relative path means the workspace root.
        Some(dir) => models.push(root.join(dir).join("resnext50_32x4d_bn.onnx")),
        None => eprintln!("note: RESNEXT_MODELS is not set: ResNeXt-50 is left out"),
    }
    models.push(root.join("testdata/mobilenet_v2_bn.onnx"));
    models.push(root.join("target/bench/resnet50.onnx"));
    models
}

/// The `NAME.dynamo.onnx` files of a `make_fixtures.py --full` directory: the manifest's dynamo
/// entries in its order (all such files, by name, without a manifest), restricted to `only`.
fn family_models(dir: &Path, only: Option<&[String]>) -> Result<Vec<PathBuf>, String> {
    const SUFFIX: &str = ".dynamo.onnx";
    let manifest = dir.join("manifest.json");
    let mut names: Vec<String> = if manifest.exists() {
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", manifest.display()))?;
        let files = json["files"]
            .as_array()
            .ok_or_else(|| format!("{} has no `files` list", manifest.display()))?;
        files
            .iter()
            .filter(|f| f["exporter"] == "dynamo")
            .filter_map(|f| f["model"].as_str().map(str::to_owned))
            .filter(|m| dir.join(format!("{m}{SUFFIX}")).exists())
            .collect()
    } else {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(SUFFIX).map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    };
    if let Some(only) = only {
        let unknown: Vec<&str> = only
            .iter()
            .filter(|o| !names.contains(o))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "--only: no {SUFFIX} file in {} for {}; there are: {}",
                dir.display(),
                unknown.join(", "),
                names.join(", ")
            ));
        }
        names.retain(|n| only.contains(n));
    }
    if names.is_empty() {
        return Err(format!("no *{SUFFIX} file in {}", dir.display()));
    }
    Ok(names
        .iter()
        .map(|n| dir.join(format!("{n}{SUFFIX}")))
        .collect())
}

fn parse_args() -> Result<Args, String> {
    let root = workspace_root();
    let mut a = Args {
        rounds: 5,
        runs: 5,
        threads: vec![1, 2],
        batches: vec![1, 8],
        models: Vec::new(),
        family_models: Vec::new(),
        ort: true,
        tract: true,
        layers: true,
    };
    let mut models = None;
    let mut families = None;
    let mut only = None;
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
                models = Some(
                    it.next()
                        .unwrap_or_default()
                        .split(',')
                        .map(|p| root.join(p))
                        .collect::<Vec<_>>(),
                )
            }
            "--families" => families = it.next().map(|d| root.join(d)),
            "--only" => {
                only = it.next().map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                })
            }
            "--no-ort" => a.ort = false,
            "--no-tract" => a.tract = false,
            "--no-layers" => a.layers = false,
            "--bench" => {} // cargo bench passes this
            other => eprintln!("ignoring unknown argument `{other}`"),
        }
    }
    if only.is_some() && families.is_none() {
        return Err("--only picks models of --families DIR; give that too".into());
    }
    if let Some(dir) = &families {
        a.family_models = family_models(dir, only.as_deref())?;
    }
    a.models = match models {
        Some(m) => m,
        None if families.is_some() => Vec::new(),
        None => default_models(&root),
    };
    a.models.extend(a.family_models.iter().cloned());
    Ok(a)
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

/// An error and its sources on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Our build of one model.
struct Ours {
    binary: PathBuf,
    graph: ir::Graph,
    /// Multiply-accumulates per batch item.
    macs: u64,
    weights_file: PathBuf,
}

/// Compiles `model` with resnextc's pipeline and builds the emitted crate.
fn build_ours(model: &Path, root: &Path) -> Result<Ours, String> {
    let name = driver::default_name(model).replace('-', "_");
    let dir = root.join("target/bench/crates").join(&name);
    let mut options = driver::Options::default();
    options.back.name = name.clone();
    let graph = driver::load(model, &options).map_err(|e| chain(&e))?;
    let compiled = driver::compile_to_crate(graph, &dir, &options).map_err(|e| chain(&e))?;
    let target = root.join("target/emitted");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stderr}");
        return Err(format!(
            "cargo build of {} failed ({}): {}",
            dir.display(),
            out.status,
            stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("")
        ));
    }
    Ok(Ours {
        binary: target.join("release").join(&name),
        macs: compiled.info.macs(),
        graph: compiled.graph,
        weights_file: dir.join(format!("{name}.weights")),
    })
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
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
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

/// tract's optimised plan of `model` for a batch of `shape` (our input shape, batch first). A
/// panic inside tract is an error like any other: the run goes on without tract for this model.
/// The file's value infos and output shapes are ignored: the dynamo exporter gives every
/// intermediate tensor a symbolic batch, which tract refuses to unify with the fixed one.
fn tract_model(model: &Path, shape: &[usize]) -> Result<TractPlan, String> {
    let load = || -> TractResult<TractPlan> {
        tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_path(model)?
            .with_input_fact(0, f32::fact(shape).into())?
            .into_optimized()?
            .into_runnable()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)) {
        Ok(Ok(plan)) => Ok(plan),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(format!(
            "tract panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    }
}

/// tract's median ms over `runs` runs after one warm-up, or why it failed.
fn run_tract(plan: &TractPlan, x: &Tensor, runs: usize) -> Result<f64, String> {
    let run = || {
        plan.run(tvec!(x.clone().into()))
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    };
    run()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        run()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

/// One line of the table: a model at one batch and thread count.
struct Row {
    name: String,
    /// GMAC per batch item, NaN when we could not compile the model.
    gmac: f64,
    batch: usize,
    threads: usize,
    ours: f64,
    tract: f64,
    ort: f64,
    /// Why a column is empty.
    notes: Vec<String>,
}

/// First line of an error, shortened for a table cell.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").replace('|', "/");
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(120).collect::<String>())
    } else {
        line
    }
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let root = workspace_root();
    let python = root.join("target/bench-venv/bin/python");
    let have_venv = python.exists();
    if !have_venv {
        eprintln!("note: no target/bench-venv (run bench/setup.sh): onnxruntime is skipped");
    }
    let resnet50 = root.join("target/bench/resnet50.onnx");
    if have_venv && args.models.contains(&resnet50) && !resnet50.exists() {
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
        let started = Instant::now();
        let ours = match build_ours(model, &root) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: we fail to compile it, going on: {e}");
                rows.push(Row {
                    name,
                    gmac: f64::NAN,
                    batch: 0,
                    threads: 0,
                    ours: f64::NAN,
                    tract: f64::NAN,
                    ort: f64::NAN,
                    notes: vec![format!("ours: {}", short(&e))],
                });
                continue;
            }
        };
        eprintln!(
            "{name}: compiled and built in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let graph = &ours.graph;
        let per_item = graph
            .node(graph.inputs[0])
            .output
            .shape
            .per_item()
            .unwrap_or_default();
        let item_len: usize = per_item.iter().product();
        for &batch in &args.batches {
            let data = input(batch * item_len);
            let npy = std::env::temp_dir().join(format!("resnext-bench-{name}-{batch}.npy"));
            let mut shape = vec![batch];
            shape.extend(&per_item);
            resnext_runtime_core::formats::npy::write_f32(&npy, &shape, &data)
                .expect("write input");
            let mut batch_notes = Vec::new();
            let tract = if args.tract {
                tract_model(model, &shape)
                    .map_err(|e| {
                        eprintln!("{name} batch {batch}: tract cannot load it, going on: {e}");
                        batch_notes.push(format!("tract: {}", short(&e)));
                    })
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
                let mut notes = batch_notes.clone();
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
                    .map_err(|e| {
                        eprintln!("{name}: onnxruntime skipped: {e}");
                        notes.push(format!("onnxruntime: {}", short(&e)));
                    })
                    .ok()
                } else {
                    None
                };
                let mut tract_ok = tract.is_some();
                let mut ours_ok = true;
                let (mut o_ms, mut t_ms, mut r_ms) = (Vec::new(), Vec::new(), Vec::new());
                let mut trips = Vec::new();
                for _ in 0..args.rounds {
                    if threads > 1 {
                        trips.push(core_round_trip_ns());
                    }
                    if ours_ok {
                        match run_ours(&ours.binary, &npy, threads, args.runs) {
                            Ok(t) => o_ms.push(t),
                            Err(e) => {
                                eprintln!("{name}: our run failed, going on without it: {e}");
                                notes.push(format!("ours: {}", short(&e)));
                                ours_ok = false;
                            }
                        }
                    }
                    if let (true, Some(plan), Some(x)) = (tract_ok, &tract, &tensor) {
                        match run_tract(plan, x, args.runs) {
                            Ok(t) => t_ms.push(t),
                            Err(e) => {
                                eprintln!("{name}: tract's run failed, going on without it: {e}");
                                notes.push(format!("tract: {}", short(&e)));
                                tract_ok = false;
                            }
                        }
                    }
                    match ort.as_mut().map(|o| o.round(args.runs)) {
                        Some(Ok(t)) if !t.is_nan() => r_ms.push(t),
                        Some(Ok(_)) | Some(Err(_)) => {
                            eprintln!("{name}: onnxruntime's run failed, going on without it");
                            notes.push("onnxruntime: a run failed".into());
                            ort = None;
                        }
                        None => {}
                    }
                }
                if !trips.is_empty() {
                    notes.push(format!(
                        "core round trip {:.0}–{:.0} ns",
                        trips.iter().copied().fold(f64::INFINITY, f64::min),
                        trips.iter().copied().fold(0.0, f64::max)
                    ));
                }
                let (o, t, r) = (median(&mut o_ms), median(&mut t_ms), median(&mut r_ms));
                eprintln!(
                    "{name} batch {batch} threads {threads}: ours {o:.2} ms, tract {t:.2} ms, onnxruntime {r:.2} ms"
                );
                rows.push(Row {
                    name: name.clone(),
                    gmac: ours.macs as f64 * 1e-9,
                    batch,
                    threads,
                    ours: o,
                    tract: t,
                    ort: r,
                    notes,
                });
            }
        }
        if args.family_models.contains(model)
            && let Err(e) = std::fs::remove_file(&ours.weights_file)
        {
            eprintln!("note: cannot remove {}: {e}", ours.weights_file.display());
        }
        if name.starts_with("resnext50") {
            resnext50 = Some(ours.graph);
        }
    }
    println!();
    print_table(&rows);
    if let (true, Some(graph)) = (args.layers, resnext50) {
        // Measured here, right before the layers, so both see the same load on a shared machine.
        let peak = fma_peak::fma_peak_gflops(&Threads::new(1), isa(), Duration::from_secs(2))
            .unwrap_or(f64::NAN);
        println!("\nmeasured FMA peak: {peak:.0} GFLOP/s on one thread");
        layer_table(&graph, peak, &args.threads);
    }
    std::process::ExitCode::SUCCESS
}

/// The round trip of a cache line between two threads, in ns (median of 9 batches of 2000):
/// about 50–150 ns where the cores share a last-level cache, 300–600 ns on VMs whose two vCPUs are
/// at times placed far apart, where every multi-threaded run is slower (onnxruntime's too), so
/// the table says which kind of stretch its rounds ran in.
fn core_round_trip_ns() -> f64 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const TRIPS: u32 = 2000;
    let flag = AtomicU32::new(0);
    let mut batches: Vec<f64> = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..9 * TRIPS {
                while flag.load(Ordering::Acquire) != 1 {
                    std::hint::spin_loop();
                }
                flag.store(0, Ordering::Release);
            }
        });
        for _ in 0..9 {
            let t0 = Instant::now();
            for _ in 0..TRIPS {
                flag.store(1, Ordering::Release);
                while flag.load(Ordering::Acquire) != 0 {
                    std::hint::spin_loop();
                }
            }
            batches.push(t0.elapsed().as_nanos() as f64 / f64::from(TRIPS));
        }
    });
    median(&mut batches)
}

/// The results as a markdown table, one row per model × batch × threads, then the geometric mean
/// of ours/ORT and ours/tract per batch and thread count over the models that have both.
fn print_table(rows: &[Row]) {
    println!(
        "| model | GMAC | batch | threads | ours ms | tract ms | onnxruntime ms | ours/ORT | ours/tract | note |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let (batch, threads) = if r.batch == 0 {
            ("–".to_string(), "–".to_string())
        } else {
            (r.batch.to_string(), r.threads.to_string())
        };
        println!(
            "| {} | {} | {batch} | {threads} | {} | {} | {} | {} | {} | {} |",
            r.name,
            if r.gmac.is_nan() {
                "–".into()
            } else {
                format!("{:.2}", r.gmac)
            },
            fmt(r.ours),
            fmt(r.tract),
            fmt(r.ort),
            ratio(r.ours, r.ort),
            ratio(r.ours, r.tract),
            r.notes.join("; ")
        );
    }
    let mut configs: Vec<(usize, usize)> = rows
        .iter()
        .filter(|r| r.batch > 0)
        .map(|r| (r.batch, r.threads))
        .collect();
    configs.sort_unstable();
    configs.dedup();
    let names: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    if names.len() < 2 {
        return;
    }
    println!();
    println!("| batch | threads | models | geomean ours/ORT | models | geomean ours/tract |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (batch, threads) in configs {
        let sel: Vec<&Row> = rows
            .iter()
            .filter(|r| r.batch == batch && r.threads == threads)
            .collect();
        let geomean = |peer: fn(&Row) -> f64| {
            let logs: Vec<f64> = sel
                .iter()
                .map(|r| r.ours / peer(r))
                .filter(|q| q.is_finite() && *q > 0.0)
                .map(f64::ln)
                .collect();
            let n = logs.len();
            let mean = (logs.iter().sum::<f64>() / n as f64).exp();
            (
                n,
                if n == 0 {
                    "–".into()
                } else {
                    format!("{mean:.2}")
                },
            )
        };
        let (n_ort, g_ort) = geomean(|r| r.ort);
        let (n_tract, g_tract) = geomean(|r| r.tract);
        println!("| {batch} | {threads} | {n_ort} | {g_ort} | {n_tract} | {g_tract} |");
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
