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
use std::sync::Arc;

use crate::passes::{Calibration, CalibrationMethod, LayoutChoice, Precision, Samples};

/// Configures and runs one model compilation from a build script.
#[derive(Clone, Debug)]
pub struct Builder {
    model: PathBuf,
    options: driver::Options,
    rerun_if_changed: bool,
    calibration: Option<CalibrationItems>,
    calibration_method: CalibrationMethod,
}

/// Where [`Builder::calibrate`]'s items come from.
#[derive(Clone, Debug)]
enum CalibrationItems {
    File(PathBuf),
    Memory(Arc<Samples>),
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
            calibration: None,
            calibration_method: CalibrationMethod::MinMax,
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
    /// [`Precision::F32`]; [`Precision::Bf16`]: bf16 1×1 convs and dense layers, fp32 sums;
    /// [`Precision::Int8`]: int8 convs and dense layers of a QDQ model, or of an fp32 model with
    /// [`Builder::calibrate`]).
    pub fn precision(mut self, precision: Precision) -> Builder {
        if let Some(p) = &mut self.options.passes {
            p.precision = precision;
        }
        self
    }

    /// Quantizes an fp32 model to int8 with activation ranges observed on the items of this f32
    /// `.npy` file (`[N, …]`, the model input's shape; read when compiling), as
    /// `resnextc compile --precision int8 --calibrate`; needs [`Precision::Int8`] (see
    /// [`crate::passes::calibrate()`]).
    pub fn calibrate(mut self, items: impl AsRef<Path>) -> Builder {
        self.calibration = Some(CalibrationItems::File(items.as_ref().to_path_buf()));
        self
    }

    /// [`Builder::calibrate`] with items in memory.
    pub fn calibrate_with(mut self, items: Samples) -> Builder {
        self.calibration = Some(CalibrationItems::Memory(Arc::new(items)));
        self
    }

    /// How calibration picks each activation's range (default [`CalibrationMethod::MinMax`]).
    pub fn calibration_method(mut self, method: CalibrationMethod) -> Builder {
        self.calibration_method = method;
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
        let mut options = self.options;
        if let (Some(items), Some(passes)) = (self.calibration, &mut options.passes) {
            let samples = match items {
                CalibrationItems::File(path) => {
                    if self.rerun_if_changed {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                    Arc::new(driver::read_samples(&path, &graph)?)
                }
                CalibrationItems::Memory(samples) => samples,
            };
            passes.calibration = Some(Calibration {
                samples,
                method: self.calibration_method,
            });
        }
        let compiled = driver::compile(graph, &options)?;
        let emitted = compiled.emit(&options.back)?;
        emitted
            .write_module(out_dir.as_ref(), &options.back.name)
            .map_err(Error::Emit)
    }
}
