//! End to end: each shared test model compiled with the library pipeline (as `resnextc compile`
//! does) for a given activation layout, built with cargo, run under each ISA tier (`RESNEXT_ISA`)
//! on the PyTorch input batch, its logits compared with PyTorch's (max abs err ≤ 1e-4 × max
//! |logit|). The small models have one test per tier (the modules `generic`, `avx2`, `avx512`; a
//! tier the CPU lacks is reported as ignored), sharing one build.
//!
//! Every model of a run is a module of one emitted crate (`common::emitted`), built once a
//! process in `target/emitted`, where the runtime is compiled once for every test's crate.
//! resnext50 (`with_models`) is ignored unless requested, needs `RESNEXT_MODELS` to name the
//! directory of the unpacked shared models, and has a crate of its own (so the ordinary run does
//! not compile it). The emitted CLI (`resnextc compile`'s crate, `--bench`) is tested by
//! `cuda_backend`'s `emitted_cli_takes_device`.
//! Each run sets `RESNEXT_LOG=1` and must log the tier it was asked for, so a tier that silently fell
//! back to another cannot pass for it.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use common::emitted::{self, Crate, Model, Opt, workspace};
use resnext_compiler::passes::LayoutChoice;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::formats::npy;
use resnext_test_support::{assert_close, models_dir};

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

/// The tiers this CPU has, as the build script probed them; each must also be detected at run time.
fn host_tiers() -> Vec<Isa> {
    let mut tiers = vec![Isa::Generic];
    if cfg!(host_avx2) {
        tiers.push(Isa::Avx2);
    }
    if cfg!(host_avx512) {
        tiers.push(Isa::Avx512);
    }
    for isa in &tiers {
        require_tier(*isa);
    }
    tiers
}

/// Fails the test when this CPU lacks `isa` (a test of that tier runs only when asked for).
fn require_tier(isa: Isa) {
    assert!(
        isa.supported(),
        "this test needs the {} tier, which this CPU lacks",
        isa.name()
    );
}

/// The small test models (`testdata/STEM.onnx`), one module `STEM_LAYOUT` each of one crate, built
/// once a process (the per-tier tests share it).
fn small_models() -> &'static Crate {
    static BUILD: OnceLock<Result<Crate, String>> = OnceLock::new();
    emitted::shared(&BUILD, "e2e", Opt::Release, || {
        let dir = workspace().join("testdata");
        vec![
            model(&dir, "resnext_small_8x4d_bn", LayoutChoice::Nchw8c),
            model(&dir, "resnext_small_8x4d_bn", LayoutChoice::Nchw),
            model(&dir, "mobilenet_v2_bn", LayoutChoice::Auto),
        ]
    })
}

/// ResNeXt-50 from `RESNEXT_MODELS` on both layouts, in a crate of its own (`with_models`).
fn large_models() -> &'static Crate {
    static BUILD: OnceLock<Result<Crate, String>> = OnceLock::new();
    emitted::shared(&BUILD, "e2e_models", Opt::Release, || {
        let dir = models_dir();
        vec![
            model(&dir, "resnext50_32x4d_bn", LayoutChoice::Nchw8c),
            model(&dir, "resnext50_32x4d_bn", LayoutChoice::Nchw),
        ]
    })
}

/// `dir/stem.onnx` compiled for `layout`, as module `STEM_LAYOUT`.
fn model(dir: &Path, stem: &str, layout: LayoutChoice) -> Model {
    Model::new(module(stem, layout), dir.join(format!("{stem}.onnx"))).with_layout(layout)
}

fn module(stem: &str, layout: LayoutChoice) -> String {
    let layout = match layout {
        LayoutChoice::Auto => "auto",
        LayoutChoice::Nchw => "nchw",
        LayoutChoice::Nchw8c => "nchw8c",
    };
    format!("{stem}_{layout}")
}

/// Runs the model `dir/stem.onnx` compiled for `layout` (a module of `built`) on
/// `stem.input.npy` under `isa` and compares the result with `stem.output.npy`.
fn end_to_end(built: &Crate, dir: &Path, stem: &str, layout: LayoutChoice, isa: Isa) {
    require_tier(isa);
    let (want_shape, want) =
        npy::read_f32(dir.join(format!("{stem}.output.npy"))).expect("read PyTorch logits");
    let tier = isa.name();
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = tmp.path().join("logits.npy");
    let (_, stderr) = step(&format!("{stem}: run on {tier}"), || {
        let mut cmd = built.command(&module(stem, layout));
        cmd.arg(dir.join(format!("{stem}.input.npy")))
            .arg(&output)
            .env("RESNEXT_ISA", tier)
            .env("RESNEXT_LOG", "1");
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

    let (shape, got) = npy::read_f32(&output).expect("read our logits");
    assert_eq!(shape, want_shape, "{stem} on {tier}: logits shape");
    let diff = assert_close(&got, &want, 1e-4, &format!("{stem} ({layout:?}) on {tier}"));
    eprintln!(
        "[e2e] {stem} on {tier}: max abs err {:e}, max |logit| {}",
        diff.max_abs_diff, diff.scale
    );
}

// The ResNeXts on both layouts (`auto` picks one per machine; each must be right everywhere), one
// test per tier.
macro_rules! tier_tests {
    ($tier:ident, $isa:expr $(, $ignore:meta)?) => {
        mod $tier {
            use super::*;

            #[test]
            $(#[$ignore])?
            fn resnext_small_matches_pytorch() {
                let dir = workspace().join("testdata");
                end_to_end(small_models(), &dir, "resnext_small_8x4d_bn", LayoutChoice::Nchw8c, $isa);
            }

            #[test]
            $(#[$ignore])?
            fn resnext_small_on_nchw_matches_pytorch() {
                let dir = workspace().join("testdata");
                end_to_end(small_models(), &dir, "resnext_small_8x4d_bn", LayoutChoice::Nchw, $isa);
            }

            #[test]
            $(#[$ignore])?
            fn mobilenet_v2_matches_pytorch() {
                let dir = workspace().join("testdata");
                end_to_end(small_models(), &dir, "mobilenet_v2_bn", LayoutChoice::Auto, $isa);
            }
        }
    };
}

tier_tests!(generic, Isa::Generic);
tier_tests!(
    avx2,
    Isa::Avx2,
    cfg_attr(not(host_avx2), ignore = "CPU lacks AVX2+FMA")
);
tier_tests!(
    avx512,
    Isa::Avx512,
    cfg_attr(not(host_avx512), ignore = "CPU lacks AVX-512")
);

mod with_models {
    use super::*;

    /// ResNeXt-50 on both layouts under every tier this CPU has.
    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_matches_pytorch() {
        let dir = models_dir();
        for layout in [LayoutChoice::Nchw8c, LayoutChoice::Nchw] {
            for isa in host_tiers() {
                end_to_end(large_models(), &dir, "resnext50_32x4d_bn", layout, isa);
            }
        }
    }
}
