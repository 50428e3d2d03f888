//! The Rust back end: emits `lib.rs` (the model struct, a straight-line `forward`), a CLI `main.rs`,
//! a `Cargo.toml` and the weights file, all tied together by a model hash.
//!
//! Public surface: [`Options`], [`Error`], [`emit`] (in memory) and the [`Emitted`] writers
//! ([`Emitted::write_crate`] for `resnextc compile`, [`Emitted::write_module`] for build scripts).
//! Code is built with `quote!` and formatted with `prettyplease`. Weights are never literals: each op
//! reads them by index from the weights file, which [`Emitted`] writes beside the code.
//!
//! To support a new op or kernel, add one arm to `ops::emit_node` and one function beside it.

mod cli;
mod ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use resnext_runtime_core::formats::hash::Fnv64;
use resnext_runtime_core::formats::weights::{WeightsWriter, WriteError};

use crate::ir::{Graph, GraphInfo, Layout, NodeId, Op, WeightId, WeightSource};
use crate::passes::{MemoryPlan, PlanOptions, plan_memory};

/// What the emitted code shares: concat inputs written in place (`ops::emit_per_item`); views and
/// elementwise ops in place are not emitted yet.
const PLAN: PlanOptions = PlanOptions {
    views: false,
    in_place: false,
    concat_in_place: true,
};

/// Where the emitted `Cargo.toml` gets `resnext-runtime` from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeDep {
    /// A path dependency on a checkout of the runtime crate (absolute, so the crate can move).
    Path(PathBuf),
    /// A published version, e.g. `0.1`.
    Version(String),
}

impl Default for RuntimeDep {
    /// This workspace's runtime crate.
    fn default() -> Self {
        let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
        RuntimeDep::Path(runtime.canonicalize().unwrap_or(runtime))
    }
}

/// How to emit a model.
#[derive(Clone, Debug)]
pub struct Options {
    /// Package name of the emitted crate, base name of the weights file and of the module a build
    /// script writes (`resnext_small` → `resnext_small.rs`, `resnext_small.weights`).
    pub name: String,
    /// Name of the model struct.
    pub struct_name: String,
    pub runtime: RuntimeDep,
    /// The model's source, for the generated file's header comment.
    pub source: Option<String>,
    /// Accept weights without values (a `resnext!` model's state_dict tensors and their recipes):
    /// the code is the same, the weights file holds only the tensors with values, and
    /// [`Emitted::weight_order`] says which weight each index of the code reads, for a loader.
    pub deferred_weights: bool,
    /// Devices the crate runs on. A CUDA target makes `Cargo.toml` enable resnext-runtime's `cuda`
    /// feature and the CLI take `--device`; the caller appends `back::cuda`'s `pub mod cuda`.
    pub target: crate::back::cuda::Target,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "model".into(),
            struct_name: "Model".into(),
            runtime: RuntimeDep::default(),
            source: None,
            deferred_weights: false,
            target: crate::back::cuda::Target::Cpu,
        }
    }
}

/// Why the back end could not emit a graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad model name `{0}`: use ASCII letters, digits, `_` and `-`, starting with a letter")]
    BadName(String),
    #[error("bad struct name `{0}`: it must be a Rust identifier starting with a letter")]
    BadStructName(String),
    #[error("{op} node `{node}`: the Rust back end does not support {message}")]
    Unsupported {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error(
        "the Rust back end supports one input and one output; the model has {inputs} and {outputs}"
    )]
    Signature { inputs: usize, outputs: usize },
    #[error(
        "weight `{name}` has no values at compile time ({len} of {expected}); load its values before emitting"
    )]
    NoWeightData {
        name: String,
        len: usize,
        expected: usize,
    },
    #[error("the generated code does not parse (a compiler bug): {0}")]
    Syntax(#[from] syn::Error),
    #[error("cannot write the weights file: {0}")]
    Weights(#[from] WriteError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An emitted model, in memory: the sources and what the weights file will hold.
#[derive(Debug)]
pub struct Emitted<'g> {
    /// The crate's `src/lib.rs`.
    pub lib_rs: String,
    /// The items of `lib_rs` alone (no inner attributes), for a module in another crate (`resnext!`).
    pub items_rs: String,
    /// The same code as a module for `include!` (no inner attributes, weights path from `OUT_DIR`).
    pub module_rs: String,
    /// The crate's `src/main.rs`.
    pub main_rs: String,
    pub cargo_toml: String,
    /// Ties the weights file to the code; also `MODEL_HASH` in the code.
    pub model_hash: u64,
    /// `<name>.weights`.
    pub weights_file: String,
    /// The weight each index of the code reads (`Weights::tensor(i)` is `weight_order[i]`).
    pub weight_order: Vec<WeightId>,
    weights: WeightsWriter<'g>,
}

/// Emits `graph`. Only a validated graph has a [`GraphInfo`], so only a validated graph gets here.
pub fn emit<'g>(
    graph: &'g Graph,
    info: &GraphInfo,
    options: &Options,
) -> Result<Emitted<'g>, Error> {
    check_name(&options.name)?;
    if syn::parse_str::<syn::Ident>(&options.struct_name).is_err()
        || !options
            .struct_name
            .starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(Error::BadStructName(options.struct_name.clone()));
    }
    let model = Model::new(graph, info)?;
    // Weights the ops refer to, in first-use order; passes may leave dead ones in the store. The
    // model hash covers their names and dims and the code, so it changes with either.
    let mut hasher = Fnv64::new();
    for &id in &model.weight_order {
        let w = graph.weights.get(id).ok_or_else(|| Error::Unsupported {
            node: String::new(),
            op: "",
            message: format!("a missing weight {id:?}"),
        })?;
        let expected = w.dims.iter().product::<usize>();
        let deferred = options.deferred_weights && w.source != WeightSource::Data;
        if w.data.len() != expected && !deferred {
            return Err(Error::NoWeightData {
                name: w.name.clone(),
                len: w.data.len(),
                expected,
            });
        }
        hasher.update_str(&w.name);
        hasher.update_u64(w.dims.len() as u64);
        for &d in &w.dims {
            hasher.update_u64(d as u64);
        }
    }
    let file = format!("{}.weights", options.name);
    let crate_path = quote!(concat!(env!("CARGO_MANIFEST_DIR"), "/", #file));
    hasher.update_str(&format_file(model.lib_tokens(options, 0, &crate_path))?);
    let model_hash = hasher.finish();
    let mut weights = WeightsWriter::new(model_hash);
    for &id in &model.weight_order {
        let w = graph.weights.get(id).ok_or_else(|| Error::Unsupported {
            node: String::new(),
            op: "",
            message: format!("a missing weight {id:?}"),
        })?;
        if w.source == WeightSource::Data || !options.deferred_weights {
            weights.add(w.name.clone(), &w.dims, &w.data)?;
        }
    }

    let header = header_comment(options);
    let lib_rs = format!(
        "{header}{}",
        format_file(model.lib_tokens(options, model_hash, &crate_path))?
    );
    let out_path = quote!(concat!(env!("OUT_DIR"), "/", #file));
    let items_rs = format_file(model.items(options, model_hash, &crate_path))?;
    let module_rs = format!(
        "{}{}",
        header.replace("//!", "//"),
        format_file(model.module_tokens(options, model_hash, &out_path))?
    );
    let main_rs = format!(
        "{header}{}",
        format_file(cli::main_tokens(
            &lib_ident(&options.name),
            &options.struct_name,
            options.target,
        ))?
    );
    Ok(Emitted {
        lib_rs,
        items_rs,
        module_rs,
        main_rs,
        cargo_toml: cargo_toml(options),
        model_hash,
        weights_file: file,
        weight_order: model.weight_order.clone(),
        weights,
    })
}

impl Emitted<'_> {
    /// Writes a standalone crate: `Cargo.toml`, `src/lib.rs`, `src/main.rs`, `<name>.weights`.
    pub fn write_crate(&self, dir: &Path) -> Result<(), Error> {
        write(&dir.join("src/lib.rs"), &self.lib_rs)?;
        write(&dir.join("src/main.rs"), &self.main_rs)?;
        write(&dir.join("Cargo.toml"), &self.cargo_toml)?;
        self.write_weights(&dir.join(&self.weights_file))
    }

    /// Writes `<name>.rs` (for `include!`) and `<name>.weights` into `dir`, a build script's
    /// `OUT_DIR`. Returns the path of the module.
    pub fn write_module(&self, dir: &Path, name: &str) -> Result<PathBuf, Error> {
        let module = dir.join(format!("{name}.rs"));
        write(&module, &self.module_rs)?;
        self.write_weights(&dir.join(&self.weights_file))?;
        Ok(module)
    }

    /// Writes the weights file alone.
    pub fn write_weights(&self, path: &Path) -> Result<(), Error> {
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        let file = std::fs::File::create(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.weights.write_to(file)?)
    }

    /// How many tensors the weights file holds.
    pub fn weight_count(&self) -> usize {
        self.weights.table().len()
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// The Rust identifier of a crate named `name`.
fn lib_ident(name: &str) -> syn::Ident {
    format_ident!("{}", name.replace('-', "_"))
}

fn header_comment(options: &Options) -> String {
    let from = options
        .source
        .as_deref()
        .map(|s| format!(" from `{s}`"))
        .unwrap_or_default();
    format!(
        "//! Model `{}` compiled by resnextc{from}.\n//! Generated code: do not edit; recompile the model instead.\n\n",
        options.name
    )
}

fn format_file(tokens: TokenStream) -> Result<String, Error> {
    Ok(prettyplease::unparse(&syn::parse2(tokens)?))
}

fn cargo_toml(options: &Options) -> String {
    let runtime = match &options.runtime {
        RuntimeDep::Path(p) => format!("{{ path = {:?} }}", p.display().to_string()),
        RuntimeDep::Version(v) => format!("{v:?}"),
    };
    let runtime = match (&options.runtime, options.target.has_cuda()) {
        (_, false) => runtime,
        (RuntimeDep::Path(_), true) => format!(
            "{}, features = [\"cuda\"] }}",
            runtime.trim_end_matches('}').trim_end()
        ),
        (RuntimeDep::Version(_), true) => {
            format!("{{ version = {runtime}, features = [\"cuda\"] }}")
        }
    };
    format!(
        r#"# Generated by resnextc: the compiled model `{name}`.
[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
resnext-runtime = {runtime}

[profile.release]
opt-level = 3
codegen-units = 1
lto = "thin"
debug = false

# A standalone crate, even when generated inside another workspace.
[workspace]
"#,
        name = options.name
    )
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What the code generator knows about the graph: the node order, where every value lives in the
/// activation arena, and each weight's index in the weights file.
struct Model<'g> {
    graph: &'g Graph,
    order: Vec<NodeId>,
    output: NodeId,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    weight_index: HashMap<WeightId, usize>,
    weight_order: Vec<WeightId>,
    /// Every value but the model input in one arena, allocated once per model (`plan-memory`).
    plan: MemoryPlan,
}

impl<'g> Model<'g> {
    fn new(graph: &'g Graph, info: &GraphInfo) -> Result<Model<'g>, Error> {
        let (&[input], [(output, _)]) = (graph.inputs.as_slice(), graph.outputs.as_slice()) else {
            return Err(Error::Signature {
                inputs: graph.inputs.len(),
                outputs: graph.outputs.len(),
            });
        };
        let output = *output;
        let per_item = |id: NodeId| {
            let node = graph.node(id);
            node.output
                .shape
                .per_item()
                .ok_or_else(|| Error::Unsupported {
                    node: node.name.clone(),
                    op: node.op.name(),
                    message: format!("a value of shape {} (not batch-first)", node.output.shape),
                })
        };
        let mut weight_index = HashMap::new();
        let mut weight_order = Vec::new();
        for &id in info.order() {
            let node = graph.node(id);
            per_item(id)?;
            if !matches!(
                node.output.layout,
                Layout::Nchw | Layout::Nchw8c | Layout::RowMajor
            ) {
                return Err(Error::Unsupported {
                    node: node.name.clone(),
                    op: node.op.name(),
                    message: format!("the {} layout", node.output.layout.name()),
                });
            }
            for w in node.op.weights() {
                weight_index.entry(w).or_insert_with(|| {
                    weight_order.push(w);
                    weight_order.len() - 1
                });
            }
        }
        if input == output {
            return Err(Error::Signature {
                inputs: 1,
                outputs: 1,
            });
        }
        Ok(Model {
            graph,
            order: info.order().to_vec(),
            output,
            input_shape: per_item(input)?,
            output_shape: per_item(output)?,
            weight_index,
            weight_order,
            plan: plan_memory(graph, info, &PLAN).map_err(|e| Error::Unsupported {
                node: String::new(),
                op: "",
                message: format!("a graph the memory planner rejects: {e}"),
            })?,
        })
    }

    /// `lib.rs` of the crate: crate docs and attributes, then the items.
    fn lib_tokens(&self, options: &Options, hash: u64, weights_path: &TokenStream) -> TokenStream {
        let items = self.items(options, hash, weights_path);
        quote! {
            #![allow(clippy::all, unused_mut)]
            #items
        }
    }

    /// The module a build script writes: the same items, no inner attributes.
    fn module_tokens(
        &self,
        options: &Options,
        hash: u64,
        weights_path: &TokenStream,
    ) -> TokenStream {
        self.items(options, hash, weights_path)
    }

    fn items(&self, options: &Options, hash: u64, weights_path: &TokenStream) -> TokenStream {
        let name = format_ident!("{}", options.struct_name);
        let hash = syn::LitInt::new(&format!("{hash:#018x}"), proc_macro2::Span::call_site());
        let input_shape = ops::usizes(&self.input_shape);
        let output_shape = ops::usizes(&self.output_shape);
        let (in_rank, out_rank) = (
            ops::lit(self.input_shape.len()),
            ops::lit(self.output_shape.len()),
        );
        let weight_count = ops::lit(self.weight_order.len());
        let body = ops::forward_body(self);
        let scratch_lens: Vec<TokenStream> = self
            .order
            .iter()
            .filter_map(|&id| ops::scratch_len(self, id))
            .collect();
        let out_len = ops::lit(self.output_shape.iter().product());
        let arena_len = ops::lit(self.plan.arena_len_per_item);
        quote! {
            /// Ties this code to its weights file: `load` refuses a file written for another model.
            pub const MODEL_HASH: u64 = #hash;
            /// Shape of one input item.
            pub const INPUT_SHAPE: [usize; #in_rank] = [#(#input_shape),*];
            /// Shape of one output item.
            pub const OUTPUT_SHAPE: [usize; #out_rank] = [#(#output_shape),*];
            /// The weights file the compiler wrote beside this code.
            pub const WEIGHTS_PATH: &str = #weights_path;
            const WEIGHT_COUNT: usize = #weight_count;
            const OUTPUT_LEN: usize = #out_len;
            /// Floats of activation arena per batch item (the memory plan's peak).
            pub const ARENA_LEN_PER_ITEM: usize = #arena_len;

            /// The compiled model: its weights, and a forward pass over NCHW f32 batches.
            pub struct #name {
                weights: ::resnext_runtime::Weights,
                threads: ::resnext_runtime::exec::threads::Threads,
                kernel_scratch: ::resnext_runtime::exec::arena::Scratch,
                /// Every intermediate value, at the offsets the memory plan chose.
                activations: ::resnext_runtime::exec::arena::Scratch,
            }

            /// Floats of scratch the kernels need for `batch` items on `threads` threads (the most any
            /// one layer needs: layers run one after another).
            #[allow(unused_variables)]
            fn kernel_scratch_len(batch: usize, threads: usize) -> usize {
                let mut len = 0usize;
                #(len = len.max(#scratch_lens);)*
                len
            }

            impl #name {
                /// Loads the weights file, checking that it was written for this code.
                pub fn load(path: impl AsRef<::std::path::Path>) -> Result<Self, ::resnext_runtime::LoadError> {
                    Self::from_weights(::resnext_runtime::Weights::load(path, MODEL_HASH)?)
                }

                /// A model over weights already in memory, written for this code (`MODEL_HASH`).
                pub fn from_weights(weights: ::resnext_runtime::Weights) -> Result<Self, ::resnext_runtime::LoadError> {
                    if weights.model_hash() != MODEL_HASH {
                        return Err(::resnext_runtime::LoadError::HashMismatch { expected: MODEL_HASH, found: weights.model_hash() });
                    }
                    let weights = weights.expect_count(WEIGHT_COUNT)?;
                    Ok(Self {
                        weights,
                        threads: ::resnext_runtime::exec::threads::Threads::available(),
                        kernel_scratch: ::resnext_runtime::exec::arena::Scratch::new(),
                        activations: ::resnext_runtime::exec::arena::Scratch::new(),
                    })
                }

                /// Runs the kernels on `threads` threads (at least 1; the default is one per core).
                pub fn set_threads(&mut self, threads: usize) {
                    self.threads = ::resnext_runtime::exec::threads::Threads::new(threads);
                }

                /// How many threads the kernels use.
                pub fn threads(&self) -> usize {
                    self.threads.count()
                }

                /// Runs the model on `batch` items laid out as `[batch, INPUT_SHAPE..]` and returns
                /// `[batch, OUTPUT_SHAPE..]`.
                pub fn forward(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, ::resnext_runtime::RunError> {
                    ::resnext_runtime::RunError::check_input(&INPUT_SHAPE, batch, input.len())?;
                    let mut output = vec![0.0f32; batch * OUTPUT_LEN];
                    self.forward_into(input, batch, &mut output)?;
                    Ok(output)
                }

                /// As [`Self::forward`], writing into `output` (`batch * OUTPUT_SHAPE` floats).
                pub fn forward_into(&self, input: &[f32], batch: usize, output: &mut [f32]) -> Result<(), ::resnext_runtime::RunError> {
                    ::resnext_runtime::RunError::check_input(&INPUT_SHAPE, batch, input.len())?;
                    ::resnext_runtime::RunError::check_output(OUTPUT_LEN, batch, output.len())?;
                    let ctx = ::resnext_runtime::exec::Ctx::new(&self.threads);
                    self.kernel_scratch.with(kernel_scratch_len(batch, ctx.threads.count()), |scratch| {
                        #body
                        Ok(())
                    })
                }
            }
        }
    }

    fn is_input(&self, id: NodeId) -> bool {
        matches!(self.graph.node(id).op, Op::Input)
    }
}
