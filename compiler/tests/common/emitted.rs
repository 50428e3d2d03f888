//! One emitted crate per test binary: models compiled with the library pipeline into one module
//! each of a single binary that dispatches on the model's name (`CRATE MODEL INPUT.npy OUTPUT.npy`),
//! built once per test process with cargo in `target/emitted`.
//!
//! Every emitted binary links the runtime with thin LTO (the release profile `back::rust` writes),
//! the largest part of a small model's build: so a test binary builds one crate for all its
//! models, and every such crate shares `target/emitted` (and the workspace's `Cargo.lock`), where
//! the runtime is compiled once. [`Opt`] says whether the crate's own code is optimised.
//! A model the compiler rejects is left out of the binary; its error is kept for its test.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use resnext_compiler::back::rust as back_rust;
use resnext_compiler::driver;
use resnext_compiler::passes::{LayoutChoice, Precision};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

/// A model of the shared crate.
pub struct Model {
    /// The module's name and the name [`Crate::run`] takes: a Rust identifier.
    pub name: String,
    pub onnx: PathBuf,
    /// `None`: the pipeline's default (`auto`, as `resnextc compile`).
    pub layout: Option<LayoutChoice>,
    /// `--precision`; fp32 by default.
    pub precision: Precision,
    /// Whether the build writes the weights file (else [`write_weights`] does, when needed).
    pub weights: bool,
}

impl Model {
    /// `name` compiled from `onnx` with the default options, as `resnextc compile` does.
    pub fn new(name: impl Into<String>, onnx: impl Into<PathBuf>) -> Model {
        Model {
            name: name.into(),
            onnx: onnx.into(),
            layout: None,
            precision: Precision::F32,
            weights: true,
        }
    }

    /// The same with the build writing only the code: [`write_weights`] writes the weights when
    /// a test runs the model (large models, whose weights together would fill the disk).
    pub fn code_only(self) -> Model {
        Model {
            weights: false,
            ..self
        }
    }

    /// The same with `--precision precision`.
    pub fn with_precision(self, precision: Precision) -> Model {
        Model { precision, ..self }
    }

    /// The same with `--layout layout`.
    pub fn with_layout(self, layout: LayoutChoice) -> Model {
        Model {
            layout: Some(layout),
            ..self
        }
    }
}

/// The built crate: its binary, and for each model whether it is in it.
pub struct Crate {
    pub binary: PathBuf,
    /// The crate's directory, where the models' weights files are.
    pub dir: PathBuf,
    /// Per model: `Ok` when it is a module of the binary, else the compile error.
    pub models: BTreeMap<String, Result<(), String>>,
}

/// How the crate's own code is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// As `resnextc` writes it: opt-level 3. The thin-LTO link that joins the models to the
    /// runtime runs at the binary's opt-level, so this is the setting for runs that take time.
    Release,
    /// Models and the LTO link unoptimised: the crate builds several times faster, and the runtime's
    /// kernels run unoptimised too (ResNeXt-50 on the generic tier: 4.6 s → 139 s an image, on a
    /// loaded 2-core Zen 4), which costs nothing measurable on the mini models (milliseconds each).
    /// No opt-level changes a float result in Rust.
    Quick,
}

/// Builds `crate_name` from `models()` the first time `cell` is asked for, and panics (in every
/// test that asks) if that build failed.
pub fn shared(
    cell: &'static OnceLock<Result<Crate, String>>,
    crate_name: &str,
    opt: Opt,
    models: impl FnOnce() -> Vec<Model>,
) -> &'static Crate {
    match cell.get_or_init(|| Crate::build(crate_name, opt, models())) {
        Ok(built) => built,
        Err(e) => panic!("the shared build of the `{crate_name}` models failed:\n{e}"),
    }
}

impl Crate {
    /// Compiles every model into `CARGO_TARGET_TMPDIR/crate_name` and builds it.
    pub fn build(crate_name: &str, opt: Opt, models: Vec<Model>) -> Result<Crate, String> {
        let started = Instant::now();
        let crate_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(crate_name);
        std::fs::create_dir_all(crate_dir.join("src"))
            .map_err(|e| format!("cannot create {}: {e}", crate_dir.display()))?;
        let mut compiled = BTreeMap::new();
        for model in &models {
            let result = compile_model(model, &crate_dir);
            if compiled.insert(model.name.clone(), result).is_some() {
                return Err(format!("two models named `{}`", model.name));
            }
        }
        let modules: Vec<&str> = compiled
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(m, _)| m.as_str())
            .collect();
        eprintln!(
            "[{crate_name}] compiled {} of {} models in {:.2} s",
            modules.len(),
            compiled.len(),
            started.elapsed().as_secs_f64()
        );
        write_if_changed(&crate_dir.join("Cargo.toml"), &cargo_toml(crate_name, opt))?;
        write_if_changed(
            &crate_dir.join("src/main.rs"),
            &main_rs(crate_name, &modules),
        )?;
        // Pin the crate's dependencies to the versions this workspace already built.
        let lock = std::fs::read_to_string(workspace().join("Cargo.lock"))
            .map_err(|e| format!("cannot read the workspace's Cargo.lock: {e}"))?;
        write_if_changed(&crate_dir.join("Cargo.lock"), &lock)?;

        let started = Instant::now();
        let target = workspace().join("target/emitted");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(crate_dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .map_err(|e| format!("cannot start cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build of {} failed ({}):\n{}",
                crate_dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "[{crate_name}] cargo build --release of {} models: {:.2} s",
            modules.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Crate {
            binary: target.join("release").join(crate_name),
            dir: crate_dir,
            models: compiled,
        })
    }

    /// The binary set to run `model` (add `INPUT.npy OUTPUT.npy`); panics with the compile error
    /// if `model` is not in it.
    pub fn command(&self, model: &str) -> Command {
        match self.models.get(model) {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("{model} does not compile: {e}"),
            None => panic!("no model `{model}` in {}", self.binary.display()),
        }
        let mut cmd = Command::new(&self.binary);
        cmd.arg(model);
        cmd
    }

    /// Runs `model` on `input` into `output`; panics, with its stderr, unless it succeeds.
    pub fn run(&self, model: &str, input: &Path, output: &Path) -> Output {
        let out = self
            .command(model)
            .arg(input)
            .arg(output)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        assert!(
            out.status.success(),
            "{model}: the model failed to run ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// An error and its sources on one line.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        write!(text, ": {s}").expect("writing to a String");
        source = s.source();
    }
    text
}

/// Writes `text` to `path` unless it already holds it, so that an unchanged model does not make
/// cargo rebuild the crate.
fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Compiles `model` into `crate_dir`: `src/NAME.rs` and, if `model.weights`, `NAME.weights`.
fn compile_model(model: &Model, crate_dir: &Path) -> Result<(), String> {
    emit(model, |emitted| {
        write_if_changed(
            &crate_dir.join("src").join(format!("{}.rs", model.name)),
            &emitted.items_rs,
        )?;
        if model.weights {
            emitted
                .write_weights(&crate_dir.join(&emitted.weights_file))
                .map_err(|e| chain(&e))?;
        }
        Ok(())
    })
}

/// Compiles `model` again and writes its weights file into `built`'s directory, for a model built
/// [`Model::code_only`]; returns the file's path.
pub fn write_weights(model: &Model, built: &Crate) -> Result<PathBuf, String> {
    emit(model, |emitted| {
        let path = built.dir.join(&emitted.weights_file);
        emitted.write_weights(&path).map_err(|e| chain(&e))?;
        Ok(path)
    })
}

/// `then` of the model compiled with its options and emitted (in memory).
fn emit<T>(
    model: &Model,
    then: impl FnOnce(&back_rust::Emitted) -> Result<T, String>,
) -> Result<T, String> {
    if !model.onnx.exists() {
        return Err(format!("the model {} is missing", model.onnx.display()));
    }
    let mut options = driver::Options::default();
    if let Some(passes) = options.passes.as_mut() {
        if let Some(layout) = model.layout {
            passes.layout = layout;
        }
        passes.precision = model.precision;
    }
    let graph = driver::load(&model.onnx, &options).map_err(|e| chain(&e))?;
    let compiled = driver::compile(graph, &options).map_err(|e| chain(&e))?;
    let source = model
        .onnx
        .strip_prefix(workspace())
        .unwrap_or(&model.onnx)
        .display()
        .to_string();
    let emitted = compiled
        .emit(&back_rust::Options {
            name: model.name.clone(),
            source: Some(source),
            ..back_rust::Options::default()
        })
        .map_err(|e| chain(&e))?;
    then(&emitted)
}

/// The binary's `main.rs`: one module per compiled model, `CRATE MODEL INPUT.npy OUTPUT.npy`.
fn main_rs(crate_name: &str, modules: &[&str]) -> String {
    let mut text = format!(
        "//! The models of the `{crate_name}` tests of resnext-compiler, one module each (generated).\n\
         #![allow(clippy::all, dead_code, unused_mut)]\n\n",
    );
    for m in modules {
        writeln!(text, "mod {m};").expect("writing to a String");
    }
    text.push_str(
        r#"
/// Runs one model on an `.npy` batch and writes its logits.
macro_rules! run {
    ($m:ident, $input:expr, $output:expr) => {{
        let model = $m::Model::load($m::WEIGHTS_PATH).map_err(|e| e.to_string())?;
        let (shape, data) = ::resnext_runtime::formats::npy::read_f32($input).map_err(|e| e.to_string())?;
        let batch = match shape.split_first() {
            Some((&batch, item)) if item == $m::INPUT_SHAPE => batch,
            _ => return Err(format!("input shape {shape:?} is not [batch, {:?}]", $m::INPUT_SHAPE)),
        };
        let logits = model.forward(&data, batch).map_err(|e| e.to_string())?;
        let mut out_shape = vec![batch];
        out_shape.extend($m::OUTPUT_SHAPE);
        ::resnext_runtime::formats::npy::write_f32($output, &out_shape, &logits).map_err(|e| e.to_string())
    }};
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, input, output] = args.as_slice() else {
        return Err("usage: MODEL INPUT.npy OUTPUT.npy".into());
    };
    match model.as_str() {
"#,
    );
    for m in modules {
        writeln!(text, "        {m:?} => run!({m}, input, output),").expect("writing to a String");
    }
    text.push_str(
        r#"        other => Err(format!("no model `{other}` in this build")),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
"#,
    );
    text
}

fn cargo_toml(crate_name: &str, opt: Opt) -> String {
    let runtime = workspace().join("runtime");
    let runtime = runtime.canonicalize().unwrap_or(runtime);
    // The release profile is the one `back::rust` writes, so one build of the runtime in
    // `target/emitted` serves every such crate; `Opt::Quick` lowers the crate's own opt-level
    // alone (about 2.5 s to 0.5 s a mini model on 2 shared cores), which the runtime's build
    // does not depend on.
    let quick = match opt {
        Opt::Release => String::new(),
        Opt::Quick => format!("\n[profile.release.package.{crate_name}]\nopt-level = 0\n"),
    };
    format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
resnext-runtime = {{ path = {:?} }}

[profile.release]
opt-level = 3
codegen-units = 1
lto = "thin"
debug = false
{quick}
[workspace]
"#,
        runtime.display().to_string()
    )
}
