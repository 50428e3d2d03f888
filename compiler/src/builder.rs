//! The build-script API, in the style of `prost-build`: compile an ONNX model from `build.rs` into
//! `OUT_DIR` as a module the crate `include!`s, plus the weights file it loads.
//!
//! ```no_run
//! // build.rs
//! resnext_compiler::Builder::new("../testdata/resnext_small_8x4d_bn.onnx")
//!     .name("resnext_small")
//!     .compile()
//!     .expect("compile the model");
//! // src/main.rs
//! // mod resnext_small { include!(concat!(env!("OUT_DIR"), "/resnext_small.rs")); }
//! // let model = resnext_small::Model::load(resnext_small::WEIGHTS_PATH)?;
//! ```

use std::path::{Path, PathBuf};

use crate::back::rust as back_rust;
use crate::driver::{self, Error};
use crate::passes::{LayoutChoice, Precision};

/// Configures and runs one model compilation from a build script.
#[derive(Clone, Debug)]
pub struct Builder {
    model: PathBuf,
    options: driver::Options,
    rerun_if_changed: bool,
}

impl Builder {
    /// A builder for the ONNX model at `model` (relative paths are relative to the crate being built).
    pub fn new(model: impl AsRef<Path>) -> Builder {
        let mut options = driver::Options::default();
        let model = model.as_ref().to_path_buf();
        options.back.name = driver::default_name(&model);
        options.back.source = Some(model.display().to_string());
        Builder {
            model,
            options,
            rerun_if_changed: true,
        }
    }

    /// Name of the module file (`<name>.rs`) and the weights file (`<name>.weights`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.options.back.name = name.into();
        self
    }

    /// Name of the model struct (default `Model`).
    pub fn struct_name(mut self, name: impl Into<String>) -> Builder {
        self.options.back.struct_name = name.into();
        self
    }

    /// Whether to print `cargo:rerun-if-changed=<model>` (default true).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Builder {
        self.rerun_if_changed = yes;
        self
    }

    /// The activation layouts the compiler may use (default [`LayoutChoice::Auto`]: decided by the
    /// kernel tier of the machine running the build script, `RESNEXT_ISA` included: NCHW on
    /// AVX-512, otherwise NCHW8c regions where their 1×1 convs pay for the reorders).
    pub fn layout(mut self, layout: LayoutChoice) -> Builder {
        if let Some(p) = &mut self.options.passes {
            p.layout = layout;
        }
        self
    }

    /// The arithmetic of the layers that have a reduced-precision kernel (default
    /// [`Precision::F32`]; [`Precision::Bf16`]: bf16 1×1 convs and dense layers, fp32 sums).
    pub fn precision(mut self, precision: Precision) -> Builder {
        if let Some(p) = &mut self.options.passes {
            p.precision = precision;
        }
        self
    }

    /// Print each stage and its time (visible with `cargo build -vv`).
    pub fn verbose(mut self, yes: bool) -> Builder {
        self.options.verbose = yes;
        self
    }

    /// Compiles into `$OUT_DIR`; returns the path of the module to `include!`.
    pub fn compile(self) -> Result<PathBuf, Error> {
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Emit(back_rust::Error::Io {
                    path: PathBuf::from("$OUT_DIR"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "OUT_DIR is not set: call compile() from a build script, or use compile_to",
                    ),
                })
            })?;
        self.compile_to(out_dir)
    }

    /// Compiles into `out_dir`: writes `<name>.rs` and `<name>.weights`; returns the module's path.
    /// The module finds its weights through `WEIGHTS_PATH`, which reads `OUT_DIR` at compile time,
    /// so `out_dir` should be the build script's `OUT_DIR`.
    pub fn compile_to(self, out_dir: impl AsRef<Path>) -> Result<PathBuf, Error> {
        if self.rerun_if_changed {
            println!("cargo:rerun-if-changed={}", self.model.display());
        }
        let graph = driver::load(&self.model, &self.options)?;
        let compiled = driver::compile(graph, &self.options)?;
        let emitted = compiled.emit(&self.options.back)?;
        emitted
            .write_module(out_dir.as_ref(), &self.options.back.name)
            .map_err(Error::Emit)
    }
}
