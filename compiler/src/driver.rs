//! The compile pipeline as one function: load a model, (optimise), validate, emit, write; shared by
//! `resnextc`, [`crate::Builder`] and tests, with timings reported on stderr when verbose.

use std::path::Path;
use std::time::Instant;

use crate::back::rust as back_rust;
#[cfg(feature = "onnx")]
use crate::front::onnx::{self, OnnxError};
use crate::ir::{self, Graph, GraphInfo, IrErrors};
use crate::passes::{self, MemoryPlan, PassError, PassOptions, Samples};
use resnext_runtime_core::formats::npy::NpyError;

/// How to compile.
#[derive(Clone, Debug)]
pub struct Options {
    pub back: back_rust::Options,
    /// The optimisation pipeline's settings; `None` skips it (the graph as the front end built it).
    pub passes: Option<PassOptions>,
    /// Print each stage and its time on stderr.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            back: back_rust::Options::default(),
            passes: Some(PassOptions::default()),
            verbose: false,
        }
    }
}

/// Why compilation failed. Each variant says the stage; the sources name the node at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[cfg(feature = "onnx")]
    #[error("cannot load the model {}", path.display())]
    Load {
        path: std::path::PathBuf,
        #[source]
        source: OnnxError,
    },
    #[error("optimisation failed")]
    Passes(#[source] PassError),
    #[error("the model is invalid")]
    Invalid(#[source] IrErrors),
    #[error("code generation failed")]
    Emit(#[source] back_rust::Error),
    #[error("CUDA code generation failed")]
    EmitCuda(#[source] crate::back::cuda::Error),
    #[error("cannot use the items {}", path.display())]
    Samples {
        path: std::path::PathBuf,
        #[source]
        source: Box<passes::CalibrateError>,
    },
    #[error("the check could not run")]
    Check(#[source] Box<crate::check::CheckError>),
}

impl Error {
    /// The process exit code `resnextc` uses: 1 for a bad model, 3 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            #[cfg(feature = "onnx")]
            Error::Load {
                source: OnnxError::Io { .. },
                ..
            }
            | Error::Emit(back_rust::Error::Io { .. }) => 3,
            Error::EmitCuda(crate::back::cuda::Error::Io { .. }) => 3,
            Error::Samples { source, .. }
                if matches!(**source, passes::CalibrateError::Npy(NpyError::Io { .. })) =>
            {
                3
            }
            _ => 1,
        }
    }
}

/// A graph ready for the back ends: optimised, validated, with its info.
#[derive(Debug)]
pub struct Compiled {
    pub graph: Graph,
    pub info: GraphInfo,
    /// The memory plan, when the passes ran.
    pub memory: Option<MemoryPlan>,
    /// What `calibrate` did, when it ran.
    pub calibration: Option<passes::CalibrationReport>,
}

impl Compiled {
    /// Emits the model with the Rust back end, in memory.
    pub fn emit(&self, options: &back_rust::Options) -> Result<back_rust::Emitted<'_>, Error> {
        back_rust::emit(&self.graph, &self.info, options).map_err(Error::Emit)
    }
}

/// Reads an ONNX model.
#[cfg(feature = "onnx")]
pub fn load(path: &Path, options: &Options) -> Result<Graph, Error> {
    let started = Instant::now();
    let graph = onnx::load(path).map_err(|source| Error::Load {
        path: path.to_path_buf(),
        source,
    })?;
    report_stage(
        options,
        "load",
        started,
        &format!(
            "{} nodes, {} weights",
            graph.nodes.node_count(),
            graph.weights.len()
        ),
    );
    Ok(graph)
}

/// Reads items (`[N, …]` f32 `.npy`) for calibration or `--check`, checked against `graph`'s input.
pub fn read_samples(path: &Path, graph: &Graph) -> Result<Samples, Error> {
    let err = |source| Error::Samples {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let samples = Samples::from_npy(path).map_err(err)?;
    samples.check_against(graph).map_err(err)?;
    Ok(samples)
}

/// Runs the compiled graph and `reference` (the graph as loaded) on `samples` and compares their
/// outputs ([`crate::check`]).
pub fn check(
    reference: &Graph,
    compiled: &Compiled,
    samples: &Samples,
) -> Result<crate::check::CheckReport, Error> {
    crate::check::check(reference, &compiled.graph, samples).map_err(|e| Error::Check(Box::new(e)))
}

/// Runs the pipeline on a graph: the passes (unless `options.passes` is `None`), then validation.
pub fn compile(mut graph: Graph, options: &Options) -> Result<Compiled, Error> {
    let mut memory = None;
    let mut calibration = None;
    if let Some(pass_options) = &options.passes {
        let started = Instant::now();
        let report = passes::optimize(&mut graph, pass_options).map_err(Error::Passes)?;
        if options.verbose {
            eprint!("{}", report.summary());
        }
        for pass in &report.passes {
            if let Some(text) = &pass.printed {
                println!("// graph after {}\n{text}", pass.name);
            }
        }
        report_stage(
            options,
            "passes",
            started,
            &format!(
                "{} nodes, layout {} ({:?})",
                graph.nodes.node_count(),
                if pass_options.layout.allows_nchw8c() {
                    "NCHW8c where it pays"
                } else {
                    "NCHW"
                },
                pass_options.layout
            ),
        );
        memory = report.memory;
        calibration = report.calibration;
    }
    let started = Instant::now();
    let info = ir::validate(&graph).map_err(Error::Invalid)?;
    report_stage(
        options,
        "validate",
        started,
        &format!(
            "{} nodes, {:.3} GMAC per item, {} params",
            info.order().len(),
            info.macs() as f64 * 1e-9,
            info.params()
        ),
    );
    Ok(Compiled {
        graph,
        info,
        memory,
        calibration,
    })
}

/// The pipeline for the CUDA back end: the same passes without the CPU kernel selection (the GPU
/// kernels read weights in ONNX layout), then validation.
pub fn compile_cuda(graph: Graph, options: &Options) -> Result<Compiled, Error> {
    let mut cuda = options.clone();
    if let Some(p) = &mut cuda.passes {
        p.select_kernels = false;
        p.print_after = None;
    }
    cuda.verbose = false;
    compile(graph, &cuda)
}

/// `compile`, then writes the emitted crate into `dir`; for a CUDA `options.back.target`, also the
/// CUDA source, plan and weights (`back::cuda`) with `pub mod cuda` appended to `lib.rs`.
pub fn compile_to_crate(graph: Graph, dir: &Path, options: &Options) -> Result<Compiled, Error> {
    let cuda_graph = options.back.target.has_cuda().then(|| graph.clone());
    let compiled = compile(graph, options)?;
    let started = Instant::now();
    let mut emitted = compiled.emit(&options.back)?;
    if let Some(graph) = cuda_graph {
        let cuda = compile_cuda(graph, options)?;
        let cuda_options = crate::back::cuda::Options {
            name: options.back.name.clone(),
            source: options.back.source.clone(),
        };
        let module = crate::back::cuda::emit(&cuda.graph, &cuda.info, &cuda_options)
            .and_then(|e| e.write_into_crate(dir, &options.back.name))
            .map_err(Error::EmitCuda)?;
        emitted.lib_rs.push_str(&module);
    }
    report_stage(
        options,
        "emit",
        started,
        &format!("model hash {:#018x}", emitted.model_hash),
    );
    let started = Instant::now();
    emitted.write_crate(dir).map_err(Error::Emit)?;
    report_stage(
        options,
        "write",
        started,
        &format!(
            "{} ({} weight tensors)",
            dir.display(),
            emitted.weight_count()
        ),
    );
    drop(emitted);
    Ok(compiled)
}

fn report_stage(options: &Options, stage: &str, started: Instant, what: &str) {
    if options.verbose {
        eprintln!(
            "[resnextc] {stage:<9} {:>9.1} ms  {what}",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// A crate name derived from a model file's name: `resnext50_32x4d_bn.onnx` → `resnext50_32x4d_bn`.
pub fn default_name(model: &Path) -> String {
    model
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"))
        .filter(|s| s.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| "model".into())
}
