//! Declaring models with `resnext!`: the generated type reads exactly the PyTorch state_dict's tensors,
//! reports every mismatch of a wrong file at once, and its forward pass matches PyTorch's logits
//! under every ISA tier (each in a child process: the tier is chosen once per process; one test per
//! tier, a tier the CPU lacks reported as ignored).

use std::path::Path;
use std::process::Command;

use resnext_runtime::exec::isa::Isa;
use resnext_test_support::{assert_close, models_dir};

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
    let diff = assert_close(&got, &expected, 1e-4, "logits vs PyTorch");
    let isa = resnext_runtime::exec::isa::isa();
    eprintln!(
        "max |diff| {:e}, max |logit| {} (kernels: {})",
        diff.max_abs_diff,
        diff.scale,
        isa.name()
    );
    // Rerun under a tier (`on_tier`), the tier is forced: it must be the one that ran.
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

resnext_macros::resnext! {
    /// The shared small network with bf16 1×1 convs and classifier.
    model SmallBf16 {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 8,
        width: 4,
        classes: 10,
        precision: bf16,
    }
}

/// `precision: bf16` reads the same state_dict and matches the bf16 oracle of the same network
/// (`testdata/make_bf16_outputs.py`; the tolerance is `compiler/tests/e2e.rs`'s), and not fp32's.
#[test]
fn small_bf16_matches_the_bf16_oracle() {
    let model =
        SmallBf16::load_safetensors(testdata("resnext_small_8x4d.safetensors")).expect("loads");
    let read = |name: &str| resnext_runtime::formats::npy::read_f32(testdata(name)).expect(name);
    let (_, input) = read("resnext_small_8x4d_bn.input.npy");
    let (shape, bf16) = read("resnext_small_8x4d_bn.bf16.output.npy");
    let (_, fp32) = read("resnext_small_8x4d_bn.output.npy");
    let got = model.forward(&input, shape[0]).expect("forward");
    let diff = assert_close(&got, &bf16, 1.5e-2, "bf16 logits vs the bf16 oracle");
    // bf16 must actually have run: fp32 kernels agree with PyTorch to ~1e-6 of the scale.
    let from_fp32 = resnext_test_support::max_abs_diff(&got, &fp32);
    assert!(
        from_fp32 > 1e-3 * diff.scale,
        "bf16 logits are fp32's ({from_fp32:e} from them)"
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

/// Reruns `test` (an exact name; `ignored`: it is an ignored test) in a child process of this test
/// binary with `RESNEXT_ISA` set to `isa`: the kernels fix their tier once per process. The child
/// asserts the tier in process, and its `RESNEXT_LOG` line must name it too.
fn on_tier(isa: Isa, test: &str, ignored: bool) {
    let tier = isa.name();
    assert!(
        isa.supported(),
        "this test needs the {tier} tier, which this CPU lacks"
    );
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(&exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    if ignored {
        cmd.arg("--ignored");
    }
    let out = cmd
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
    let logged = format!("resnext-runtime: kernels use {tier}");
    assert!(
        stderr.lines().any(|l| l.trim() == logged),
        "{test}: RESNEXT_ISA={tier} did not log {logged:?}:\n{stderr}"
    );
    let diff = stderr.lines().find(|l| l.starts_with("max |diff|"));
    eprintln!("{test} on {tier}: {}", diff.unwrap_or("(no diff line)"));
}

// The small network's PyTorch comparison under each tier, one test per tier.
macro_rules! tier_tests {
    ($tier:ident, $isa:expr $(, $ignore:meta)?) => {
        mod $tier {
            use super::*;

            #[test]
            $(#[$ignore])?
            fn small_matches_pytorch() {
                on_tier($isa, "small_matches_pytorch", false);
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

    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_matches_pytorch() {
        let dir = models_dir();
        let model = ResNeXt50::load_safetensors(dir.join("resnext50_32x4d.safetensors"))
            .expect("torchvision resnext50_32x4d loads");
        assert_matches_pytorch(
            |x, batch| model.forward(x, batch).expect("forward"),
            &dir.join("resnext50_32x4d_bn.input.npy"),
            &dir.join("resnext50_32x4d_bn.output.npy"),
        );
    }

    /// ResNeXt-50 under every tier this CPU has (as the build script probed it).
    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_matches_pytorch_on_every_tier() {
        models_dir();
        let mut tiers = vec![Isa::Generic];
        if cfg!(host_avx2) {
            tiers.push(Isa::Avx2);
        }
        if cfg!(host_avx512) {
            tiers.push(Isa::Avx512);
        }
        for isa in tiers {
            on_tier(isa, "with_models::resnext50_matches_pytorch", true);
        }
    }
}
