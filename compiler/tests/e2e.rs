//! End to end: `resnextc compile` each test model, build the emitted crate with cargo, run its binary
//! on the PyTorch input batch and compare its logits with PyTorch's (max abs err ≤ 1e-4 × max |logit|).
//!
//! The emitted crates share one target dir (`target/emitted`), so the runtime is compiled once.
//! resnext50 runs only when `RESNEXT_MODELS` names the directory of the unpacked shared models.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use resnext_runtime::npy;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

fn step<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    eprintln!("[e2e] {what}: {:.2} s", started.elapsed().as_secs_f64());
    out
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compiles `dir/stem.onnx`, builds and runs the emitted crate on `stem.input.npy` and compares with
/// `stem.output.npy`. With `bench`, also checks the `--bench 1` output (it costs three passes).
fn end_to_end(dir: &Path, stem: &str, bench: bool) {
    let model = dir.join(format!("{stem}.onnx"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let crate_dir = tmp.path().join(stem);
    let name = format!("e2e_{stem}");
    step(&format!("{stem}: resnextc compile"), || {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_resnextc"))
                .arg("compile")
                .arg(&model)
                .arg("-o")
                .arg(&crate_dir)
                .args(["--name", &name, "-v"]),
            "resnextc compile",
        )
    });
    // Pin the emitted crate's dependencies to the versions this workspace already built (and
    // fetched): cargo drops the lock entries it does not need.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).expect("copy lock");
    let target = workspace().join("target/emitted");
    step(&format!("{stem}: cargo build --release"), || {
        run_ok(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--quiet", "--manifest-path"])
                .arg(crate_dir.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target),
            "cargo build of the emitted crate",
        )
    });
    let output = tmp.path().join("logits.npy");
    let stdout = step(&format!("{stem}: run (bench: {bench})"), || {
        let mut cmd = Command::new(target.join("release").join(&name));
        cmd.arg(dir.join(format!("{stem}.input.npy"))).arg(&output);
        if bench {
            cmd.args(["--bench", "1"]);
        }
        run_ok(&mut cmd, "the emitted binary")
    });
    let last = stdout.lines().last().unwrap_or_default().to_string();
    if bench {
        assert!(last.starts_with("median_ms="), "last line {last:?}");
    }

    let (shape, got) = npy::read_f32(&output).expect("read our logits");
    let (want_shape, want) =
        npy::read_f32(dir.join(format!("{stem}.output.npy"))).expect("read PyTorch logits");
    assert_eq!(shape, want_shape);
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("[e2e] {stem}: max abs err {err:e}, max |logit| {scale}, {last}");
    assert!(
        err <= 1e-4 * scale,
        "{stem}: max abs err {err} > 1e-4 × {scale}"
    );
}

#[test]
fn resnext_small_matches_pytorch() {
    end_to_end(&workspace().join("testdata"), "resnext_small_8x4d_bn", true);
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    end_to_end(&workspace().join("testdata"), "mobilenet_v2_bn", false);
}

#[test]
fn resnext50_matches_pytorch() {
    let Some(dir) = std::env::var_os("RESNEXT_MODELS") else {
        eprintln!("skipping: RESNEXT_MODELS not set");
        return;
    };
    end_to_end(Path::new(&dir), "resnext50_32x4d_bn", false);
}
