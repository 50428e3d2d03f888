//! `resnextc`: the command line. `compile` turns an ONNX model into a standalone Rust crate;
//! `inspect` prints the graph (text, JSON or graphviz dot) with shapes, parameters and MACs.
//!
//! Exit codes: 0 success, 1 bad model or input, 2 usage, 3 I/O.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand, ValueEnum};
use resnext_compiler::back::cuda::Target;
use resnext_compiler::back::rust::RuntimeDep;
use resnext_compiler::driver::{self, Compiled};
use resnext_compiler::ir::Op;
use resnext_compiler::passes::{
    self, Calibration, CalibrationMethod, LayoutChoice, PassOptions, Precision,
};

#[derive(Parser)]
#[command(
    name = "resnextc",
    version,
    about = "Ahead-of-time compiler for ResNeXt-style CNNs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile an ONNX model into a standalone Rust crate.
    Compile {
        /// The ONNX model.
        model: PathBuf,
        /// Directory of the crate to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Package name (default: the model file's name).
        #[arg(long)]
        name: Option<String>,
        /// Depend on this published version of resnext-runtime instead of this checkout's.
        #[arg(long)]
        runtime_version: Option<String>,
        /// Skip the optimisation passes.
        #[arg(long)]
        no_opt: bool,
        /// Stop the pass pipeline after this pass (to bisect a miscompile).
        #[arg(long, value_name = "PASS", value_parser = PossibleValuesParser::new(passes::PASSES))]
        stop_after: Option<String>,
        /// Print the graph (on stdout) after this pass.
        #[arg(long, value_name = "PASS", value_parser = PossibleValuesParser::new(passes::PASSES))]
        print_after: Option<String>,
        /// Run the validator after every pass.
        #[arg(long)]
        verify: bool,
        /// Activation layout of the emitted CPU code, fixed at compile time: `auto` is `nchw` if
        /// the kernel tier of this machine (RESNEXT_ISA if set and supported, else detected) is
        /// AVX-512 and `nchw8c` otherwise. Ignored with `--no-opt`; the CUDA kernels always read
        /// NCHW.
        #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
        layout: LayoutArg,
        /// Arithmetic of the layers that have a reduced-precision kernel: `bf16` runs the NCHW
        /// 1×1 convs and the dense layers with bf16 weights and activations (fp32 sums and
        /// epilogue); `int8` runs convs and dense layers on u8 activations × i8 weights, for a
        /// model in the ONNX QDQ form or an fp32 model with `--calibrate`. Other layers stay fp32.
        #[arg(long, default_value = "fp32", value_parser = Precision::parse)]
        precision: Precision,
        /// With `--precision int8`, quantize this fp32 model with activation ranges observed on
        /// these items (f32 `.npy` of shape [N, model input shape…]): per-tensor u8 activations,
        /// per-output-channel symmetric int8 weights.
        #[arg(long, value_name = "ITEMS.npy", conflicts_with = "no_opt")]
        calibrate: Option<PathBuf>,
        /// How `--calibrate` picks each activation's range: `minmax` (the extremes seen) or
        /// `percentile` (the `--percentile` P-th and (100 − P)-th percentiles, clipping outliers).
        #[arg(long, value_enum, default_value_t = MethodArg::Minmax, requires = "calibrate")]
        calibrate_method: MethodArg,
        /// The percentile of `--calibrate-method percentile`, above 50 and at most 100.
        #[arg(long, default_value_t = passes::DEFAULT_PERCENTILE, requires = "calibrate")]
        percentile: f32,
        /// After compiling, run the compiled graph (its kernels, at its precision) and the model
        /// as imported (reference kernels) on these items (f32 `.npy`, [N, input shape…]) and
        /// print per output the max abs error, the error relative to max |reference| and the
        /// fraction of items whose top-1 agrees.
        #[arg(long, value_name = "INPUTS.npy")]
        check: Option<PathBuf>,
        /// Print each stage and its time (and each pass's time and node counts).
        #[arg(short, long)]
        verbose: bool,
        /// Devices the crate runs on: `cuda` and `all` also embed CUDA kernels (NVRTC-compiled at
        /// load) and give its CLI `--device cpu|cuda` (default `cuda` for `cuda`, `cpu` for `all`).
        #[arg(long, value_enum, default_value_t = TargetArg::Cpu)]
        target: TargetArg,
    },
    /// Print the model's graph: one row per node, and totals.
    Inspect {
        model: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show the graph after the optimisation passes (and the memory plan's peak).
        #[arg(long)]
        after_passes: bool,
        /// With `--after-passes`: the precision to compile for (as `compile --precision`); the
        /// layers that run bf16 show `[pointwise-bf16]`, `[direct-bf16]` or `[bf16]`.
        #[arg(long, default_value = "fp32", value_parser = Precision::parse)]
        precision: Precision,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    /// `nchw` if this machine's kernel tier (RESNEXT_ISA if set and supported, else detected) is
    /// AVX-512, where NCHW measured faster; `nchw8c` on AVX2 and generic. The emitted crate keeps
    /// the choice on whatever CPU runs it
    Auto,
    /// Every activation NCHW
    Nchw,
    /// Each connected region of 1×1 and grouped convs (channels in whole blocks of 8) runs on
    /// NCHW8c when its 1×1 convs do at least 1024 multiply-adds per float reordered at its edges,
    /// with reorders inserted there; everything else NCHW
    Nchw8c,
}

impl From<LayoutArg> for LayoutChoice {
    fn from(l: LayoutArg) -> LayoutChoice {
        match l {
            LayoutArg::Auto => LayoutChoice::Auto,
            LayoutArg::Nchw => LayoutChoice::Nchw,
            LayoutArg::Nchw8c => LayoutChoice::Nchw8c,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// The minimum and maximum seen
    Minmax,
    /// The (100 − P)-th and P-th percentiles (`--percentile P`, default 99.99)
    Percentile,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Cpu,
    Cuda,
    All,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::Cpu => Target::Cpu,
            TargetArg::Cuda => Target::Cuda,
            TargetArg::All => Target::All,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Dot,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version exit 0, usage errors exit 2.
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Compile {
            model,
            out,
            name,
            runtime_version,
            no_opt,
            stop_after,
            print_after,
            verify,
            layout,
            precision,
            calibrate,
            calibrate_method,
            percentile,
            check,
            verbose,
            target,
        } => {
            let passes = (!no_opt).then(|| PassOptions {
                verify,
                stop_after,
                print_after,
                layout: layout.into(),
                precision,
                ..PassOptions::default()
            });
            let method = match calibrate_method {
                MethodArg::Minmax => CalibrationMethod::MinMax,
                MethodArg::Percentile => CalibrationMethod::Percentile(percentile),
            };
            compile(
                model,
                out,
                name,
                runtime_version,
                passes,
                verbose,
                target.into(),
                Items {
                    calibrate: calibrate.map(|c| (c, method)),
                    check,
                },
            )
        }
        Command::Inspect {
            model,
            format,
            after_passes,
            precision,
        } => inspect(model, format, after_passes, precision),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                // Some errors print their source inline too; do not repeat it.
                let text = cause.to_string();
                if !message.ends_with(&text) {
                    message.push_str(&format!("\n  caused by: {text}"));
                }
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The `.npy` items of `compile`: for calibration (with its method) and for `--check`.
struct Items {
    calibrate: Option<(PathBuf, CalibrationMethod)>,
    check: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
fn compile(
    model: PathBuf,
    out: PathBuf,
    name: Option<String>,
    runtime_version: Option<String>,
    passes: Option<PassOptions>,
    verbose: bool,
    target: Target,
    items: Items,
) -> Result<(), driver::Error> {
    let mut options = driver::Options {
        verbose,
        passes,
        ..driver::Options::default()
    };
    options.back.name = name.unwrap_or_else(|| driver::default_name(&model));
    options.back.target = target;
    options.back.source = model.file_name().map(|f| f.to_string_lossy().into_owned());
    if let Some(v) = runtime_version {
        options.back.runtime = RuntimeDep::Version(v);
    }
    let graph = driver::load(&model, &options)?;
    // Both item files are read and checked against the model before anything is written.
    let check = match &items.check {
        Some(path) => Some((path, driver::read_samples(path, &graph)?)),
        None => None,
    };
    if let (Some((path, method)), Some(passes)) = (&items.calibrate, &mut options.passes) {
        passes.calibration = Some(Calibration {
            samples: Arc::new(driver::read_samples(path, &graph)?),
            method: *method,
        });
    }
    let reference = check.as_ref().map(|_| graph.clone());
    let compiled = driver::compile_to_crate(graph, &out, &options)?;
    if let Some(c) = compiled.calibration.as_ref().filter(|_| !verbose) {
        eprintln!(
            "calibrated on {} items: {} layers int8, {} kept fp32{}",
            c.items,
            c.quantized.len(),
            c.kept_fp32.len(),
            if c.kept_fp32.is_empty() {
                ""
            } else {
                " (-v lists them)"
            }
        );
    }
    eprintln!(
        "wrote {}: build and run it with `cargo run --release --manifest-path {}/Cargo.toml -- INPUT.npy OUTPUT.npy`",
        out.display(),
        out.display()
    );
    let bf16 = options
        .passes
        .as_ref()
        .is_some_and(|p| p.precision == Precision::Bf16);
    if bf16 && !resnext_runtime_core::kernels::gemm::bf16::dot_supported() {
        eprintln!(
            "note: this CPU has no AVX512_BF16: bf16 layers run here on operands widened to fp32, \
             1.3–1.5× the time of `--precision fp32` (ARCHITECTURE.md, \"Precision\")"
        );
    }
    if let (Some((path, samples)), Some(reference)) = (check, reference) {
        let report = driver::check(&reference, &compiled, &samples)?;
        let precision = options
            .passes
            .as_ref()
            .map_or("fp32, no passes", |p| p.precision.name());
        println!(
            "check on {} items of {}: compiled ({precision}) vs the model as imported on the \
             reference kernels",
            report.items,
            path.display()
        );
        print!("{report}");
    }
    Ok(())
}

/// One row of `inspect`.
struct Row {
    op: &'static str,
    name: String,
    shape: String,
    detail: String,
    params: u64,
    macs: u64,
    inputs: Vec<usize>,
    index: usize,
}

fn inspect(
    model: PathBuf,
    format: Format,
    after_passes: bool,
    precision: Precision,
) -> Result<(), driver::Error> {
    let mut options = driver::Options::default();
    if !after_passes {
        options.passes = None;
    }
    if let Some(p) = &mut options.passes {
        p.precision = precision;
    }
    let graph = driver::load(&model, &options)?;
    let compiled = driver::compile(graph, &options)?;
    let rows = rows(&compiled);
    let peak = compiled.memory.as_ref().map(|m| m.peak_bytes_per_item);
    let (params, macs) = (compiled.info.params(), compiled.info.macs());
    match format {
        Format::Text => {
            println!(
                "{:<4} {:<18} {:<44} {:<22} {:>10} {:>14}  detail",
                "#", "op", "name", "output", "params", "MACs"
            );
            for r in &rows {
                println!(
                    "{:<4} {:<18} {:<44} {:<22} {:>10} {:>14}  {}",
                    r.index, r.op, r.name, r.shape, r.params, r.macs, r.detail
                );
            }
            println!(
                "total: {} nodes, {params} params, {:.3} GMACs per item, peak activation {}",
                rows.len(),
                macs as f64 * 1e-9,
                peak.map_or("not planned (use --after-passes)".into(), |p| format!(
                    "{p} bytes per item"
                ))
            );
        }
        Format::Json => {
            let nodes: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "index": r.index, "op": r.op, "name": r.name, "output_shape": r.shape,
                        "detail": r.detail, "params": r.params, "macs": r.macs, "inputs": r.inputs,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "model": model.display().to_string(),
                "after_passes": after_passes,
                "nodes": nodes,
                "totals": {
                    "nodes": rows.len(),
                    "params": params,
                    "macs": macs,
                    "gmacs": macs as f64 * 1e-9,
                    "peak_activation_bytes": peak,
                },
            });
            println!("{doc:#}");
        }
        Format::Dot => {
            println!("digraph model {{\n  node [shape=box, fontname=monospace];");
            for r in &rows {
                let label = format!("{}\\n{}\\n{}", r.op, r.name, r.shape).replace('"', "'");
                println!("  n{} [label=\"{label}\"];", r.index);
                for i in &r.inputs {
                    println!("  n{i} -> n{};", r.index);
                }
            }
            println!("}}");
        }
    }
    Ok(())
}

fn rows(compiled: &Compiled) -> Vec<Row> {
    let graph = &compiled.graph;
    let position: std::collections::HashMap<_, _> = compiled
        .info
        .order()
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    compiled
        .info
        .order()
        .iter()
        .enumerate()
        .map(|(index, &id)| {
            let node = graph.node(id);
            let params = node
                .op
                .weights()
                .iter()
                .filter_map(|&w| graph.weights.get(w))
                .map(|w| w.dims.iter().product::<usize>() as u64)
                .sum();
            Row {
                op: node.op.name(),
                name: node.name.clone(),
                shape: node.output.shape.to_string(),
                detail: detail(&node.op),
                params,
                macs: node.op.macs(&node.output),
                inputs: graph
                    .inputs_of(id)
                    .iter()
                    .filter_map(|i| position.get(i).copied())
                    .collect(),
                index,
            }
        })
        .collect()
}

/// The attributes worth a glance: kernel, stride, group, fused epilogue.
fn detail(op: &Op) -> String {
    let epilogue = |e: &resnext_compiler::ir::Epilogue| {
        let mut s = String::new();
        if e.residual {
            s.push_str(" +residual");
        }
        match e.activation {
            resnext_compiler::ir::Activation::None => {}
            a => s.push_str(&format!(" +{a:?}")),
        }
        s
    };
    match op {
        Op::Conv(c) => format!(
            "{}x{} /{} group {} pads {:?}{} [{}]",
            c.kernel[0],
            c.kernel[1],
            c.stride[0],
            c.group,
            c.pads,
            epilogue(&c.epilogue),
            c.kernel_choice.name()
        ),
        Op::Reorder { to } => format!("to {}", to.name()),
        Op::Dense(d) => format!(
            "{} -> {}{}{}",
            d.in_features,
            d.out_features,
            epilogue(&d.epilogue),
            if d.kernel == resnext_compiler::ir::DenseKernel::PackedBf16 {
                " [bf16]"
            } else {
                ""
            }
        ),
        Op::MaxPool(p) | Op::AveragePool(p) => {
            format!(
                "{}x{} /{} pads {:?}",
                p.kernel[0], p.kernel[1], p.stride[0], p.pads
            )
        }
        Op::QConv(q) => q.summary(),
        Op::Clip { min, max } => format!("[{min}, {max}]"),
        Op::Add { activation } if *activation != Default::default() => format!("+{activation:?}"),
        Op::ScaleShift(s) if s.activation != Default::default() => format!("+{:?}", s.activation),
        _ => String::new(),
    }
}
