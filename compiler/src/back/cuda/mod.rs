//! The CUDA back end: emits CUDA C source with one kernel specialised per node (shapes as compile-time
//! constants, fused epilogues) and the host-side launch plan (`resnext_runtime_core::cuda::plan`).
//!
//! Public surface: [`Options`], [`Error`], [`emit`] and [`Emitted`]. The graph must come from
//! `passes::optimize` with `select_kernels: false` (the GPU kernels read weights in ONNX layout, not
//! the CPU kernels' prepacked forms). Activations live in one device arena at the offsets of
//! `plan-memory`; weights in the device layout of `cuda::plan` (the weights file's tensors, in file
//! order, each aligned to `WEIGHT_ALIGN` floats). Every kernel takes `(x, w, b, r, y, batch)`.
//!
//! To support a new op, add one arm to `kernels::emit_node` and one function beside it.

mod cli;
mod kernels;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use resnext_runtime_core::cuda::plan::{self, Buf, CudaPlan};
use resnext_runtime_core::formats::hash::Fnv64;
use resnext_runtime_core::formats::weights::{WeightsWriter, WriteError};

use crate::ir::{ConvKernel, DenseKernel, Graph, GraphInfo, Layout, NodeId, Op, WeightId};
use crate::passes::{MemoryPlan, PlanOptions, plan_memory};

pub use cli::{CliTokens, cli_tokens};
pub use kernels::{ConvStrategy, conv_strategy};

/// Which devices an emitted crate can run on (`resnextc compile --target`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// The CPU only (the crate does not depend on CUDA in any way).
    #[default]
    Cpu,
    /// The GPU by default: the crate embeds the CUDA model, its CLI defaults to `--device cuda`
    /// (the CPU code stays, for `--device cpu`).
    Cuda,
    /// Both, CPU by default.
    All,
}

impl Target {
    /// Whether the crate embeds the CUDA model.
    pub fn has_cuda(self) -> bool {
        self != Target::Cpu
    }
}

/// How to emit a model for CUDA.
#[derive(Clone, Debug)]
pub struct Options {
    /// Model name, for the source's header comment.
    pub name: String,
    /// The model's source file, for the header comment.
    pub source: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "model".into(),
            source: None,
        }
    }
}

/// Why the CUDA back end could not emit a graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} node `{node}`: the CUDA back end does not support {message}")]
    Unsupported {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error(
        "the CUDA back end supports one input and one output; the model has {inputs} and {outputs}"
    )]
    Signature { inputs: usize, outputs: usize },
    #[error("weight `{name}` has no values at compile time ({len} of {expected})")]
    NoWeightData {
        name: String,
        len: usize,
        expected: usize,
    },
    #[error("a graph the memory planner rejects: {0}")]
    Plan(String),
    #[error("cannot write the CUDA weights file: {0}")]
    Weights(#[from] WriteError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An emitted model: CUDA source, launch plan, and the weights file in the device layout's order.
#[derive(Debug)]
pub struct Emitted<'g> {
    /// The CUDA C source (compiled by NVRTC at load, or by g++ over the emulation header in tests).
    pub source: String,
    pub plan: CudaPlan,
    /// Hash of the source, the plan and the weights' names and dims; the weights file carries it.
    pub model_hash: u64,
    /// The weight each tensor of the weights file is, in file order.
    pub weight_order: Vec<WeightId>,
    /// How each conv node is computed, in plan order (for reports and tests).
    pub conv_strategies: Vec<(String, ConvStrategy)>,
    graph: &'g Graph,
    weights: WeightsWriter<'g>,
}

/// Emits `graph` for CUDA. Only a validated graph has a [`GraphInfo`].
pub fn emit<'g>(
    graph: &'g Graph,
    info: &GraphInfo,
    options: &Options,
) -> Result<Emitted<'g>, Error> {
    let model = Model::new(graph, info)?;
    let mut source = header(options);
    source.push_str(kernels::PRELUDE);
    let mut launches = Vec::new();
    let mut conv_strategies = Vec::new();
    for (index, &id) in model.order.iter().enumerate() {
        if matches!(graph.node(id).op, Op::Input) {
            continue;
        }
        let kernel = kernels::emit_node(&model, index, id)?;
        source.push_str(&kernel.source);
        if let Some(s) = kernel.strategy {
            conv_strategies.push((graph.node(id).name.clone(), s));
        }
        launches.push(kernel.launch);
    }
    let input_len_per_item = graph
        .node(graph.inputs[0])
        .output
        .shape
        .item_len()
        .unwrap_or(0);
    let output = model
        .plan
        .offsets
        .get(&model.output)
        .copied()
        .unwrap_or((0, 0));
    let plan = CudaPlan {
        arena_len_per_item: model.plan.arena_len_per_item,
        input_len_per_item,
        output,
        weights: model.weight_slots.clone(),
        weights_len: model.weights_len,
        launches,
    };
    plan.check().map_err(|e| Error::Plan(e.to_string()))?;

    let mut hasher = Fnv64::new();
    hasher.update_str(&source);
    hasher.update_str(&plan.to_text());
    let mut tensors = Vec::new();
    for &id in &model.weight_order {
        let w = graph.weights.get(id).ok_or_else(|| Error::Unsupported {
            node: String::new(),
            op: "",
            message: format!("a missing weight {id:?}"),
        })?;
        let expected = w.dims.iter().product::<usize>();
        if w.data.len() != expected {
            return Err(Error::NoWeightData {
                name: w.name.clone(),
                len: w.data.len(),
                expected,
            });
        }
        hasher.update_str(&w.name);
        for &d in &w.dims {
            hasher.update_u64(d as u64);
        }
        tensors.push(w);
    }
    let model_hash = hasher.finish();
    let mut weights = WeightsWriter::new(model_hash);
    for w in tensors {
        weights.add(w.name.clone(), &w.dims, &w.data)?;
    }
    Ok(Emitted {
        source,
        plan,
        model_hash,
        weight_order: model.weight_order,
        conv_strategies,
        graph,
        weights,
    })
}

impl Emitted<'_> {
    /// Writes the weights file (the format of `resnext_runtime_core::Weights`, hash [`Self::model_hash`]).
    pub fn write_weights(&self, path: &Path) -> Result<(), Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let file = std::fs::File::create(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.weights.write_to(file)?)
    }

    /// Writes `src/model.cu`, `src/model.cuplan` and `<name>.cuda.weights` into the crate at `dir`
    /// and returns the `pub mod cuda` items its `lib.rs` ends with ([`Self::rust_module`]).
    pub fn write_into_crate(&self, dir: &Path, name: &str) -> Result<String, Error> {
        let write = |path: PathBuf, text: &str| {
            std::fs::write(&path, text).map_err(|source| Error::Io { path, source })
        };
        std::fs::create_dir_all(dir.join("src")).map_err(|source| Error::Io {
            path: dir.join("src"),
            source,
        })?;
        write(dir.join("src/model.cu"), &self.source)?;
        write(dir.join("src/model.cuplan"), &self.plan.to_text())?;
        let weights = format!("{name}.cuda.weights");
        self.write_weights(&dir.join(&weights))?;
        Ok(self.rust_module(&weights))
    }

    /// The Rust module an emitted crate gets for the GPU: the source and plan (`include_str!` of the
    /// files [`Self::write_into_crate`] writes), the hash and a `load` over `resnext_runtime_core::cuda`.
    pub fn rust_module(&self, weights_file: &str) -> String {
        format!(
            r#"
/// The model on an NVIDIA GPU (`resnextc compile --target cuda|all`): CUDA C kernels that NVRTC
/// compiles at load, launched by `resnext_runtime_core::cuda` from the plan.
pub mod cuda {{
    /// The generated CUDA C source.
    pub const SOURCE: &str = include_str!("model.cu");
    /// The launch plan (`resnext_runtime_core::cuda::plan` text form).
    pub const PLAN: &str = include_str!("model.cuplan");
    /// Ties this code to its weights file (the GPU weights, in ONNX layout).
    pub const MODEL_HASH: u64 = {hash:#018x};
    /// The GPU weights file the compiler wrote beside this code.
    pub const WEIGHTS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/{weights_file}");

    /// Compiles the kernels and uploads the weights to GPU `ordinal`; a clear error where there is
    /// no CUDA driver or device.
    pub fn load(
        path: impl AsRef<::std::path::Path>,
        ordinal: usize,
    ) -> Result<::resnext_runtime::cuda::runner::CudaModel, ::resnext_runtime::cuda::runner::CudaError> {{
        ::resnext_runtime::cuda::runner::CudaModel::load(SOURCE, PLAN, path, MODEL_HASH, ordinal)
    }}
}}
"#,
            hash = self.model_hash
        )
    }

    /// The device weight buffer as the runtime uploads it (tests feed it to the CPU emulation).
    pub fn device_weights(&self) -> Vec<f32> {
        let mut buffer = vec![0.0f32; self.plan.weights_len];
        for (&id, &(offset, len)) in self.weight_order.iter().zip(&self.plan.weights) {
            if let Some(w) = self.graph.weights.get(id) {
                buffer[offset..offset + len].copy_from_slice(&w.data[..len]);
            }
        }
        buffer
    }
}

fn header(options: &Options) -> String {
    let from = options
        .source
        .as_deref()
        .map(|s| format!(" from `{s}`"))
        .unwrap_or_default();
    format!(
        "// Model `{}` compiled by resnextc (back::cuda){from}.\n// Generated code: do not edit; recompile the model instead.\n",
        options.name
    )
}

/// What the kernel generator knows about the graph: the node order, where every value lives, and
/// where every weight lives in the device buffer.
pub(crate) struct Model<'g> {
    graph: &'g Graph,
    order: Vec<NodeId>,
    output: NodeId,
    plan: MemoryPlan,
    weight_order: Vec<WeightId>,
    weight_offset: HashMap<WeightId, usize>,
    weight_slots: Vec<(usize, usize)>,
    weights_len: usize,
}

impl<'g> Model<'g> {
    fn new(graph: &'g Graph, info: &GraphInfo) -> Result<Model<'g>, Error> {
        let (&[input], [(output, _)]) = (graph.inputs.as_slice(), graph.outputs.as_slice()) else {
            return Err(Error::Signature {
                inputs: graph.inputs.len(),
                outputs: graph.outputs.len(),
            });
        };
        if input == *output {
            return Err(Error::Signature {
                inputs: 1,
                outputs: 1,
            });
        }
        let mut weight_order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &id in info.order() {
            let node = graph.node(id);
            let unsupported = |message: String| Error::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                message,
            };
            if node.output.shape.item_len().is_none() {
                return Err(unsupported(format!(
                    "a value of shape {} (not batch-first)",
                    node.output.shape
                )));
            }
            if !matches!(node.output.layout, Layout::Nchw | Layout::RowMajor) {
                return Err(unsupported(format!(
                    "the {} layout",
                    node.output.layout.name()
                )));
            }
            match &node.op {
                Op::Conv(c) if c.kernel_choice != ConvKernel::Reference => {
                    return Err(unsupported(format!(
                        "the CPU-prepacked `{}` weights (compile with kernel selection off)",
                        c.kernel_choice.name()
                    )));
                }
                Op::Dense(d) if d.kernel != DenseKernel::Reference => {
                    return Err(unsupported(
                        "CPU-prepacked dense weights (compile with kernel selection off)".into(),
                    ));
                }
                _ => {}
            }
            for w in node.op.weights() {
                if seen.insert(w) {
                    weight_order.push(w);
                }
            }
        }
        let lens: Vec<usize> = weight_order
            .iter()
            .map(|&w| graph.weights.get(w).map_or(0, |t| t.dims.iter().product()))
            .collect();
        let (weight_slots, weights_len) = plan::weight_offsets(lens);
        let weight_offset = weight_order
            .iter()
            .zip(&weight_slots)
            .map(|(&w, &(o, _))| (w, o))
            .collect();
        let plan = plan_memory(graph, info, &PlanOptions::default())
            .map_err(|e| Error::Plan(e.to_string()))?;
        Ok(Model {
            graph,
            order: info.order().to_vec(),
            output: *output,
            plan,
            weight_order,
            weight_offset,
            weight_slots,
            weights_len,
        })
    }

    /// The buffer holding node `id`'s output value.
    fn value(&self, id: NodeId) -> Buf {
        if matches!(self.graph.node(id).op, Op::Input) {
            Buf::Input
        } else {
            Buf::Arena(self.plan.offsets.get(&id).map_or(0, |&(o, _)| o))
        }
    }

    fn weight(&self, id: WeightId) -> Buf {
        Buf::Weight(self.weight_offset.get(&id).copied().unwrap_or(usize::MAX))
    }
}
