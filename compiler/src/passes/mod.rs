//! The optimisation pipeline: one explicit list of graph-to-graph passes ([`optimize`]), each reporting
//! whether it changed the graph, optionally verified after each, and a memory plan at the end.
//!
//! The order is fixed and reads top to bottom in [`optimize`]: `simplify` removes no-ops so the
//! patterns below see producer → consumer directly; `fold-batch-norm` folds BatchNorm into the conv
//! or dense before it (or turns it into a ScaleShift); `calibrate` (fp32 models compiled to int8
//! with calibration items) quantizes the convs and dense layers to the IR a QDQ model imports as;
//! `fuse-epilogue` folds residual Adds and activations into the node that produces their input;
//! `fuse-requant` moves the ReLU and the quantize-dequantize after an int8 conv into it; `simplify`
//! runs again to drop what the fusions left dead or redundant; `select-kernels` and `pack-int8`
//! pack weights for the runtime's kernels; `plan-memory` places every activation in one arena.
//! `stop_after` and `print_after` take these names ([`PASSES`]) to bisect a miscompile.

mod calibrate;
mod fold_batch_norm;
mod fuse_elementwise;
mod fuse_epilogue;
mod fuse_squeeze_excite;
mod lower_int8;
mod plan_memory;
mod print;
mod select_kernels;
mod simplify;

use std::time::{Duration, Instant};

pub use calibrate::{
    CALIBRATION_CHUNK, CalibrateError, Calibration, CalibrationMethod, CalibrationReport,
    DEFAULT_PERCENTILE, Samples, activation_quant, calibrate,
};
pub use fold_batch_norm::fold_batch_norm;
pub use fuse_epilogue::fuse_epilogue;
pub use plan_memory::{MemoryPlan, PlanOptions, Slot, plan_memory};
pub use print::graph_text;
pub use select_kernels::{
    WinogradChoice, select_kernels, select_kernels_nchw, select_kernels_nchw_with,
    select_kernels_with,
};
pub use simplify::simplify;

use crate::ir::{self, Graph, IrError, IrErrors};

/// Every pass name, in pipeline order, as the CLI spells them (`--stop-after`, `--print-after`).
pub const PASSES: &[&str] = &[
    "simplify",
    "fold-batch-norm",
    "calibrate",
    "fuse-epilogue",
    "fuse-requant",
    "select-kernels",
    "pack-int8",
    "int8-codes",
    "plan-memory",
];

/// How to run the pipeline. The default runs every pass, kernel selection included, without
/// verification.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// Run the validator after every pass and fail with the pass's name if it broke the graph.
    pub verify: bool,
    /// Stop after the first run of the named pass (one of [`PASSES`]).
    pub stop_after: Option<String>,
    /// Record the graph's text after every run of the named pass in [`PassStat::printed`].
    pub print_after: Option<String>,
    /// How `plan-memory` places values.
    pub plan: PlanOptions,
    /// The arithmetic of the layers that have a reduced-precision kernel (see [`Precision`]).
    pub precision: Precision,
    /// With [`Precision::Int8`] for an fp32 model: the items `calibrate` quantizes it with (see
    /// [`calibrate()`]). Refused with another precision, or for a model already quantized.
    pub calibration: Option<Calibration>,
    /// Run `select-kernels` (fast, prepacked kernels). Off, every layer runs on the reference
    /// kernels: slow, but the oracle the fast path is checked against.
    pub select_kernels: bool,
    /// Whether `select-kernels` may move regions of convs onto the NCHW8c layout (see
    /// [`select_kernels`]); [`LayoutChoice::Auto`] is decided when the pipeline runs.
    pub layout: LayoutChoice,
}

/// The arithmetic `select-kernels` gives the layers that have a reduced-precision kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// fp32 everywhere.
    #[default]
    F32,
    /// bf16 weights and activations, fp32 accumulation and epilogue, for the NCHW 1×1 convs
    /// (`ConvAlgo::PointwiseBf16`), the other convs of at least two input channels a group that
    /// `direct_bf16::preferred` takes (`ConvAlgo::DirectBf16`: dense and most grouped 3×3 convs,
    /// stems) and the dense layers (`DenseKernel::PackedBf16`); every other layer (depthwise
    /// convs, thin stride-2 grouped convs, convs inside an NCHW8c region) stays fp32.
    Bf16,
    /// u8 activations × i8 weights (`kernels::int8`) for the convs and dense layers of a model in
    /// the ONNX QDQ form (which run int8 at any precision) or of an fp32 model quantized by
    /// `calibrate` ([`PassOptions::calibration`]); an fp32 model without calibration is refused.
    Int8,
}

impl Precision {
    /// Parses `fp32`, `bf16` or `int8`.
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s {
            "fp32" | "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "int8" => Ok(Precision::Int8),
            other => Err(format!(
                "unknown precision `{other}`; use `fp32`, `bf16` or `int8`"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

/// The activation layouts `select-kernels` may choose from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayoutChoice {
    /// Decided when the passes run, by the kernel tier of the compiling process
    /// (`resnext_runtime_core::exec::isa::isa()`: `RESNEXT_ISA` if set and this CPU supports it, else the
    /// best tier detected): [`LayoutChoice::Nchw`] on AVX-512, where the NCHW kernels measured
    /// faster (ARCHITECTURE.md, "Activation layout"), [`LayoutChoice::Nchw8c`] on AVX2 and on the
    /// generic tier. The emitted code keeps the choice whatever CPU later runs it, like
    /// `-C target-cpu=native`: a model compiled for another machine should name its layout.
    #[default]
    Auto,
    /// Every value NCHW, every conv on its NCHW kernel.
    Nchw,
    /// Each connected region of convs that have an NCHW8c kernel (1×1 convs, and grouped convs
    /// whose channels are whole blocks of 8) runs on NCHW8c when its 1×1 convs do at least 1024
    /// multiply-adds per float reordered at the region's edges, with `Reorder` nodes inserted
    /// there; every other value stays NCHW (see [`select_kernels`]).
    Nchw8c,
}

impl LayoutChoice {
    /// Whether NCHW8c regions are allowed, with `Auto` decided for this machine.
    pub fn allows_nchw8c(self) -> bool {
        match self {
            LayoutChoice::Auto => {
                resnext_runtime_core::exec::isa::isa()
                    != resnext_runtime_core::exec::isa::Isa::Avx512
            }
            LayoutChoice::Nchw => false,
            LayoutChoice::Nchw8c => true,
        }
    }
}

impl Default for PassOptions {
    fn default() -> PassOptions {
        PassOptions {
            verify: false,
            stop_after: None,
            print_after: None,
            plan: PlanOptions::default(),
            select_kernels: true,
            layout: LayoutChoice::Auto,
            precision: Precision::F32,
            calibration: None,
        }
    }
}

/// What one run of one pass did.
#[derive(Clone, Debug)]
pub struct PassStat {
    pub name: &'static str,
    pub changed: bool,
    pub time: Duration,
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// The graph's text after this pass, when `print_after` named it.
    pub printed: Option<String>,
}

/// What the pipeline did, pass by pass, and the memory plan if it got that far.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub passes: Vec<PassStat>,
    pub memory: Option<MemoryPlan>,
    /// What `calibrate` did, when it ran.
    pub calibration: Option<CalibrationReport>,
}

impl PassReport {
    /// One line per pass run, for `resnextc -v`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for p in &self.passes {
            s.push_str(&format!(
                "{:<16} {:>9.3} ms  nodes {:>4} -> {:<4} {}\n",
                p.name,
                p.time.as_secs_f64() * 1e3,
                p.nodes_before,
                p.nodes_after,
                if p.changed { "changed" } else { "unchanged" }
            ));
        }
        if let Some(c) = &self.calibration {
            s.push_str(&format!(
                "calibrated on {} items: {} layers int8, {} kept fp32\n",
                c.items,
                c.quantized.len(),
                c.kept_fp32.len()
            ));
            for (layer, why) in &c.kept_fp32 {
                s.push_str(&format!("  fp32: {layer}: {why}\n"));
            }
        }
        if let Some(m) = &self.memory {
            s.push_str(&format!(
                "peak activation memory: {} bytes per batch item ({} values, lower bound {} bytes)\n",
                m.peak_bytes_per_item,
                m.offsets.len(),
                m.lower_bound_per_item * 4
            ));
        }
        s
    }
}

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("unknown pass `{0}`; the passes are: {passes}", passes = PASSES.join(", "))]
    UnknownPass(String),
    #[error("the graph given to the passes is invalid: {0}")]
    Input(IrErrors),
    #[error("the graph is invalid after pass `{pass}`: {errors}")]
    Verify {
        pass: &'static str,
        errors: IrErrors,
    },
    #[error("pass `{pass}`: {source}")]
    Ir {
        pass: &'static str,
        #[source]
        source: IrError,
    },
    #[error("pass `calibrate`: {0}")]
    Calibrate(#[source] Box<CalibrateError>),
    #[error(
        "calibration items (`--calibrate`) quantize a model to int8: give them with precision \
         `int8`, not `{0}`"
    )]
    CalibrationWithoutInt8(&'static str),
    #[error(
        "precision `int8` needs a quantized model (the ONNX QDQ form) or calibration items for \
         this fp32 model (`resnextc compile --calibrate ITEMS.npy`, `Builder::calibrate`)"
    )]
    Int8WithoutQuantization,
}

/// Runs the pass pipeline on `graph`. Each pass returns whether it changed the graph; with
/// `opts.verify` the validator runs after each, so a broken pass is named, not found later.
pub fn optimize(graph: &mut Graph, opts: &PassOptions) -> Result<PassReport, PassError> {
    for name in [&opts.stop_after, &opts.print_after].into_iter().flatten() {
        if !PASSES.contains(&name.as_str()) {
            return Err(PassError::UnknownPass(name.clone()));
        }
    }
    // The passes assume a well-formed graph (acyclic, every slot filled, sane windows): a malformed
    // one is rejected before any pass can trip over it or rewrite it into something valid.
    ir::validate(graph).map_err(PassError::Input)?;
    let quantized = graph
        .nodes
        .node_weights()
        .any(|n| matches!(n.op, ir::Op::QConv(_) | ir::Op::FakeQuant(_)));
    match (&opts.calibration, opts.precision) {
        (Some(_), Precision::Int8) | (None, Precision::F32 | Precision::Bf16) => {}
        (Some(_), p) => return Err(PassError::CalibrationWithoutInt8(p.name())),
        (None, Precision::Int8) if !quantized => return Err(PassError::Int8WithoutQuantization),
        (None, Precision::Int8) => {}
    }
    let mut run = Pipeline {
        graph,
        opts,
        report: PassReport::default(),
        stopped: false,
    };
    run.pass("simplify", simplify)?;
    run.pass("fold-batch-norm", fold_batch_norm)?;
    run.calibrate(opts.calibration.as_ref())?;
    run.pass("fuse-epilogue", fuse_epilogue)?;
    run.pass("fuse-requant", lower_int8::fuse_requant)?;
    run.pass("simplify", simplify)?;
    if opts.select_kernels {
        // bf16 1×1 convs exist on NCHW only, so `Auto` keeps everything NCHW for bf16.
        let precision = opts.precision;
        let nchw8c = opts.layout.allows_nchw8c()
            && !(opts.layout == LayoutChoice::Auto && precision == Precision::Bf16);
        run.pass("select-kernels", |g| {
            select_kernels_with(g, nchw8c, precision)
        })?;
        run.pass("pack-int8", lower_int8::pack_int8)?;
        run.pass("int8-codes", lower_int8::int8_codes)?;
    }
    if !run.stopped {
        let started = Instant::now();
        let nodes = run.graph.nodes.node_count();
        let info = ir::validate(run.graph).map_err(|errors| PassError::Verify {
            pass: "plan-memory",
            errors,
        })?;
        let plan = plan_memory(run.graph, &info, &opts.plan).map_err(|source| PassError::Ir {
            pass: "plan-memory",
            source,
        })?;
        run.report.passes.push(PassStat {
            name: "plan-memory",
            changed: false,
            time: started.elapsed(),
            nodes_before: nodes,
            nodes_after: nodes,
            printed: (opts.print_after.as_deref() == Some("plan-memory"))
                .then(|| format!("{}{}", graph_text(run.graph), plan.text(run.graph))),
        });
        run.report.memory = Some(plan);
    }
    Ok(run.report)
}

/// The state threaded through [`optimize`]: runs one pass, verifies, records, honours `stop_after`.
struct Pipeline<'a> {
    graph: &'a mut Graph,
    opts: &'a PassOptions,
    report: PassReport,
    stopped: bool,
}

impl Pipeline<'_> {
    /// `calibrate`, recorded like any pass (unchanged without items, so `stop_after` can name it);
    /// its report goes to [`PassReport::calibration`].
    fn calibrate(&mut self, calibration: Option<&Calibration>) -> Result<(), PassError> {
        let mut report = None;
        let mut result = Ok(());
        self.pass("calibrate", |g| {
            match calibration.map(|c| calibrate(g, c)) {
                None => Ok(false),
                Some(Ok(r)) => {
                    let changed = !r.quantized.is_empty();
                    report = Some(r);
                    Ok(changed)
                }
                Some(Err(e)) => {
                    result = Err(PassError::Calibrate(Box::new(e)));
                    Ok(false)
                }
            }
        })?;
        result?;
        self.report.calibration = report;
        Ok(())
    }

    fn pass(
        &mut self,
        name: &'static str,
        pass: impl FnOnce(&mut Graph) -> Result<bool, IrError>,
    ) -> Result<(), PassError> {
        if self.stopped {
            return Ok(());
        }
        let nodes_before = self.graph.nodes.node_count();
        let started = Instant::now();
        let changed = pass(self.graph).map_err(|source| PassError::Ir { pass: name, source })?;
        let time = started.elapsed();
        if self.opts.verify {
            ir::validate(self.graph).map_err(|errors| PassError::Verify { pass: name, errors })?;
        }
        self.report.passes.push(PassStat {
            name,
            changed,
            time,
            nodes_before,
            nodes_after: self.graph.nodes.node_count(),
            printed: (self.opts.print_after.as_deref() == Some(name))
                .then(|| graph_text(self.graph)),
        });
        self.stopped = self.opts.stop_after.as_deref() == Some(name);
        Ok(())
    }
}

/// The node that alone reads `id`'s value, if exactly one node reads it (on one slot) and it is not a
/// model output: the condition for merging `id` into that reader.
pub(crate) fn sole_consumer(graph: &Graph, id: ir::NodeId) -> Option<ir::NodeId> {
    match graph.consumers(id).as_slice() {
        [(consumer, _)] if !graph.is_output(id) => Some(*consumer),
        _ => None,
    }
}

/// Removes a single-input node that computes its input unchanged, rewiring its readers to the input.
/// Returns false (and leaves the graph alone) where that would make a model input a model output.
pub(crate) fn bypass(graph: &mut Graph, id: ir::NodeId) -> bool {
    let Some(&input) = graph.inputs_of(id).first() else {
        return false;
    };
    if graph.is_output(id) && matches!(graph.node(input).op, ir::Op::Input) {
        return false;
    }
    graph.replace_uses(id, input);
    graph.remove_node(id);
    true
}
