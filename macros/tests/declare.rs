//! Declaring models with `resnext!`: the generated type reads exactly the PyTorch state_dict's tensors,
//! reports every mismatch of a wrong file at once, and its forward pass matches PyTorch's logits
//! under every ISA tier the CPU supports (each in a child process: the tier is chosen once per process).

use std::path::{Path, PathBuf};
use std::process::Command;

use resnext_runtime::exec::isa::Isa;

mod common;
use common::{Small, testdata};

resnext_macros::resnext! {
    /// ResNeXt-50 (32×4d), the paper's Table 1, with the total width instead of `width`.
    pub model ResNeXt50 {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 32,
        bottleneck: 128,
        classes: 1000,
        stem: imagenet,
        bn_epsilon: 1e-5,
    }
}

resnext_macros::resnext! {
    /// The paper's CIFAR ResNeXt-29 (8×64d).
    model ResNeXt29 {
        input: [3, 32, 32],
        stages: [3, 3, 3],
        cardinality: 8,
        width: 64,
        classes: 10,
        stem: cifar,
    }
}

/// Runs `forward` on the PyTorch input and compares with PyTorch's logits (the oracle), within
/// 1e-4 of the largest logit.
fn assert_matches_pytorch(
    forward: impl Fn(&[f32], usize) -> Vec<f32>,
    input: &Path,
    output: &Path,
) {
    let (in_shape, input) = resnext_runtime::formats::npy::read_f32(input).expect("input .npy");
    let (out_shape, expected) =
        resnext_runtime::formats::npy::read_f32(output).expect("output .npy");
    let batch = in_shape[0];
    assert_eq!(out_shape[0], batch);
    let got = forward(&input, batch);
    assert_eq!(got.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let isa = resnext_runtime::exec::isa::isa();
    eprintln!(
        "max |diff| {worst:e}, max |logit| {scale} (kernels: {})",
        isa.name()
    );
    assert!(worst <= 1e-4 * scale, "max |diff| {worst} > 1e-4 × {scale}");
    // Under `every_tier_matches_pytorch` the tier is forced: it must be the one that ran.
    if let Ok(forced) = std::env::var("RESNEXT_ISA") {
        assert_eq!(
            isa.name(),
            forced,
            "RESNEXT_ISA={forced} was not the tier used"
        );
    }
}

#[test]
fn small_matches_pytorch() {
    let model = Small::load_safetensors(testdata("resnext_small_8x4d.safetensors")).expect("loads");
    assert_matches_pytorch(
        |x, batch| model.forward(x, batch).expect("forward"),
        &testdata("resnext_small_8x4d_bn.input.npy"),
        &testdata("resnext_small_8x4d_bn.output.npy"),
    );
}

#[test]
fn small_declares_the_pytorch_state_dict() {
    let path = testdata("resnext_small_8x4d.safetensors");
    let dict = resnext_runtime::formats::safetensors::StateDict::open(&path).unwrap();
    let mut file_keys: Vec<_> = dict
        .keys()
        .filter(|k| !resnext_runtime::formats::safetensors::is_bookkeeping(k))
        .collect();
    let mut declared: Vec<_> = Small::STATE_DICT.iter().map(|&(k, _)| k).collect();
    file_keys.sort();
    declared.sort();
    assert_eq!(declared, file_keys);
    assert_eq!(Small::INPUT_SHAPE, [3, 64, 64]);
    assert_eq!(Small::CLASSES, 10);
}

#[test]
fn a_wrong_state_dict_lists_every_mismatch() {
    let err = ResNeXt50::load_safetensors(testdata("resnext_small_8x4d.safetensors"))
        .err()
        .expect("the small network's weights do not fit ResNeXt-50")
        .to_string();
    assert!(
        err.contains("missing") && err.contains("layer3.5.conv2.weight"),
        "{err}"
    );
    assert!(
        err.contains("fc.weight is [10, 2048], expected [1000, 2048]"),
        "{err}"
    );
    assert!(ResNeXt29::load_safetensors("/nonexistent.safetensors").is_err());
}

#[test]
fn resnext50_matches_pytorch() {
    let Some(dir) = std::env::var_os("RESNEXT_MODELS") else {
        eprintln!("skipping: RESNEXT_MODELS not set");
        return;
    };
    let dir = PathBuf::from(dir);
    let model = ResNeXt50::load_safetensors(dir.join("resnext50_32x4d.safetensors"))
        .expect("torchvision resnext50_32x4d loads");
    assert_matches_pytorch(
        |x, batch| model.forward(x, batch).expect("forward"),
        &dir.join("resnext50_32x4d_bn.input.npy"),
        &dir.join("resnext50_32x4d_bn.output.npy"),
    );
}

#[test]
fn random_weights_are_deterministic_and_finite() {
    let (a, b, c) = (Small::random(1), Small::random(1), Small::random(2));
    let input: Vec<f32> = (0..3 * 64 * 64)
        .map(|i| (i % 17) as f32 / 17.0 - 0.5)
        .collect();
    let (ya, yb, yc) = (
        a.forward(&input, 1).unwrap(),
        b.forward(&input, 1).unwrap(),
        c.forward(&input, 1).unwrap(),
    );
    assert_eq!(ya, yb);
    assert_ne!(ya, yc);
    assert_eq!(ya.len(), Small::CLASSES);
    assert!(ya.iter().all(|v| v.is_finite()));
    let mut out = vec![0.0; Small::CLASSES];
    a.forward_into(&input, 1, &mut out).unwrap();
    assert_eq!(out, ya);
    assert!(a.forward(&input[1..], 1).is_err());
}

/// The PyTorch comparisons again under each supported tier. The kernels fix their tier once per
/// process, so each tier reruns them in a child process of this test binary with `RESNEXT_ISA` set;
/// the child asserts the tier in process, and its `RESNEXT_LOG` line must name it too.
#[test]
fn every_tier_matches_pytorch() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let all = [Isa::Generic, Isa::Avx2, Isa::Avx512];
    for isa in all.iter().filter(|i| !i.supported()) {
        eprintln!("skipping tier {}: this CPU lacks it", isa.name());
    }
    let tests = ["small_matches_pytorch", "resnext50_matches_pytorch"];
    for isa in all.into_iter().filter(|i| i.supported()) {
        let tier = isa.name();
        for test in tests {
            let out = Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env("RESNEXT_ISA", tier)
                .env("RESNEXT_LOG", "1")
                .output()
                .expect("rerun the test binary");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{test} on {tier} failed ({}):\n{stdout}\n{stderr}",
                out.status
            );
            if stderr.contains("skipping: RESNEXT_MODELS not set") {
                eprintln!("{test} on {tier}: skipped (RESNEXT_MODELS not set)");
                continue;
            }
            let logged = format!("resnext-runtime: kernels use {tier}");
            assert!(
                stderr.lines().any(|l| l.trim() == logged),
                "{test}: RESNEXT_ISA={tier} did not log {logged:?}:\n{stderr}"
            );
            let diff = stderr.lines().find(|l| l.starts_with("max |diff|"));
            eprintln!("{test} on {tier}: {}", diff.unwrap_or("(no diff line)"));
        }
    }
}
