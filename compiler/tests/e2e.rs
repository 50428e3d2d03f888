//! End to end: `resnextc compile` each shared test model, build the emitted crate once with cargo, run
//! its binary under every ISA tier this CPU supports (`RESNEXT_ISA`) on the PyTorch input batch and
//! compare its logits with PyTorch's (max abs err ≤ 1e-4 × max |logit|) for every tier.
//!
//! The emitted crates share one target dir (`target/emitted`), so the runtime is compiled once.
//! resnext50 runs only when `RESNEXT_MODELS` names the directory of the unpacked shared models.
//! Each run sets `RESNEXT_LOG=1` and must log the tier it was asked for, so a tier that silently fell
//! back to another cannot pass for it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use resnext_runtime::exec::isa::Isa;
use resnext_runtime::formats::npy;

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

/// Runs `cmd` to success; returns its (stdout, stderr).
fn run_ok(cmd: &mut Command, what: &str) -> (String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stderr}",
        out.status
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The tiers to test: every one this CPU supports; the others are skipped with a line on stderr.
fn tiers() -> Vec<Isa> {
    let all = [Isa::Generic, Isa::Avx2, Isa::Avx512];
    for isa in all.iter().filter(|i| !i.supported()) {
        eprintln!("[e2e] skipping tier {}: this CPU lacks it", isa.name());
    }
    all.into_iter().filter(|i| i.supported()).collect()
}

/// Compiles `dir/stem.onnx` with `--layout layout`, builds the emitted crate once, runs it on
/// `stem.input.npy` under every supported tier and compares each result with `stem.output.npy`.
/// With `bench`, also checks the `--bench 1` output on the best tier (it costs three passes).
fn end_to_end(dir: &Path, stem: &str, layout: &str, bench: bool) {
    let model = dir.join(format!("{stem}.onnx"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let crate_dir = tmp.path().join(stem);
    let name = format!("e2e_{stem}_{layout}");
    step(&format!("{stem}: resnextc compile"), || {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_resnextc"))
                .arg("compile")
                .arg(&model)
                .arg("-o")
                .arg(&crate_dir)
                .args(["--name", &name, "--layout", layout, "-v"]),
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
    let (want_shape, want) =
        npy::read_f32(dir.join(format!("{stem}.output.npy"))).expect("read PyTorch logits");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let tiers = tiers();
    assert!(!tiers.is_empty(), "the generic tier is always supported");
    for isa in tiers {
        let tier = isa.name();
        let output = tmp.path().join(format!("logits_{tier}.npy"));
        // The benchmark's extra passes cost time: one tier (the best, run last) is enough.
        let bench = bench && isa == Isa::detect();
        let (stdout, stderr) = step(&format!("{stem}: run on {tier} (bench: {bench})"), || {
            let mut cmd = Command::new(target.join("release").join(&name));
            cmd.arg(dir.join(format!("{stem}.input.npy")))
                .arg(&output)
                .env("RESNEXT_ISA", tier)
                .env("RESNEXT_LOG", "1");
            if bench {
                cmd.args(["--bench", "1"]);
            }
            run_ok(
                &mut cmd,
                &format!("the emitted binary (RESNEXT_ISA={tier})"),
            )
        });
        let logged = format!("resnext-runtime: kernels use {tier}");
        assert!(
            stderr.lines().any(|l| l.trim() == logged),
            "{stem}: RESNEXT_ISA={tier} did not select {tier}; stderr:\n{stderr}"
        );
        let last = stdout.lines().last().unwrap_or_default().to_string();
        if bench {
            assert!(last.starts_with("median_ms="), "last line {last:?}");
        }

        let (shape, got) = npy::read_f32(&output).expect("read our logits");
        assert_eq!(shape, want_shape, "{stem} on {tier}: logits shape");
        let err = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("[e2e] {stem} on {tier}: max abs err {err:e}, max |logit| {scale}, {last}");
        assert!(
            err <= 1e-4 * scale,
            "{stem} on {tier}: max abs err {err} > 1e-4 × {scale}"
        );
    }
}

// The ResNeXts on both layouts (`auto` picks one per machine; each must be right everywhere).

#[test]
fn resnext_small_matches_pytorch() {
    end_to_end(
        &workspace().join("testdata"),
        "resnext_small_8x4d_bn",
        "nchw8c",
        true,
    );
}

#[test]
fn resnext_small_on_nchw_matches_pytorch() {
    end_to_end(
        &workspace().join("testdata"),
        "resnext_small_8x4d_bn",
        "nchw",
        false,
    );
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    end_to_end(
        &workspace().join("testdata"),
        "mobilenet_v2_bn",
        "auto",
        false,
    );
}

#[test]
fn resnext50_matches_pytorch() {
    let Some(dir) = std::env::var_os("RESNEXT_MODELS") else {
        eprintln!("skipping: RESNEXT_MODELS not set");
        return;
    };
    for layout in ["nchw8c", "nchw"] {
        end_to_end(Path::new(&dir), "resnext50_32x4d_bn", layout, false);
    }
}
