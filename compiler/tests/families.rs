//! Every CNN family from every exporter, end to end: each `testdata/families/NAME.EXPORTER.onnx`
//! is compiled with the library pipeline, run on `NAME.input.npy` and compared with PyTorch's
//! logits (`NAME.output.npy`): max abs err ≤ 1e-4 × max |logit|, or onnxruntime's own error on the
//! same file (`ort_max_abs_err` in `manifest.json`) where that is larger; NaN or infinity fails
//! (`resnext_test_support::max_abs_diff`).
//!
//! One build serves every test: the first test to need it compiles every fixture the compiler
//! accepts into one module each of a single `families` binary (`common::emitted`), built once with
//! cargo in `target/emitted` beside the other tests' crates, so the runtime is shared too.
//! A fixture the compiler rejects is left out of that binary, and its test fails with the
//! compile error: tests of fixtures that do not compile yet are `#[ignore = "needs …"]`, so
//! `cargo test -- --ignored` shows which of them have started to work.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::emitted::{self, Crate, Model, Opt, workspace};
use resnext_runtime_core::formats::npy;
use resnext_test_support::max_abs_diff;

const EXPORTERS: [&str; 3] = ["dynamo", "ts17", "ts9"];

/// One `#[test]` per fixture; the test's name is `NAME_EXPORTER`, and names the fixture.
macro_rules! families {
    ($($(#[$attr:meta])* $test:ident,)*) => {
        /// Every fixture the tests name, as `NAME_EXPORTER`.
        const FIXTURES: &[&str] = &[$(stringify!($test)),*];
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                check(stringify!($test));
            }
        )*
    };
}

families! {
    alexnet_mini_dynamo,
    alexnet_mini_ts17,
    alexnet_mini_ts9,
    convnext_mini_dynamo,
    convnext_mini_ts17,
    convnext_mini_ts9,
    densenet_mini_dynamo,
    densenet_mini_ts17,
    densenet_mini_ts9,
    efficientnet_v1_mini_dynamo,
    efficientnet_v1_mini_ts17,
    efficientnet_v1_mini_ts9,
    efficientnet_v2_mini_dynamo,
    efficientnet_v2_mini_ts17,
    efficientnet_v2_mini_ts9,
    googlenet_mini_dynamo,
    googlenet_mini_ts17,
    googlenet_mini_ts9,
    inception_v3_mini_dynamo,
    inception_v3_mini_ts17,
    inception_v3_mini_ts9,
    lenet5_sigmoid_dynamo,
    lenet5_sigmoid_ts17,
    lenet5_sigmoid_ts9,
    lenet5_tanh_dynamo,
    lenet5_tanh_ts17,
    lenet5_tanh_ts9,
    mnasnet_mini_dynamo,
    mnasnet_mini_ts17,
    mnasnet_mini_ts9,
    mobilenet_v2_mini_dynamo,
    mobilenet_v2_mini_ts17,
    mobilenet_v2_mini_ts9,
    mobilenet_v3_mini_dynamo,
    mobilenet_v3_mini_ts17,
    mobilenet_v3_mini_ts9,
    regnet_x_mini_dynamo,
    regnet_x_mini_ts17,
    regnet_x_mini_ts9,
    regnet_y_mini_dynamo,
    regnet_y_mini_ts17,
    regnet_y_mini_ts9,
    resnet_basic_mini_dynamo,
    resnet_basic_mini_ts17,
    resnet_basic_mini_ts9,
    resnet_bottleneck_mini_dynamo,
    resnet_bottleneck_mini_ts17,
    resnet_bottleneck_mini_ts9,
    resnext_mini_dynamo,
    resnext_mini_ts17,
    resnext_mini_ts9,
    shufflenet_v2_mini_dynamo,
    shufflenet_v2_mini_ts17,
    shufflenet_v2_mini_ts9,
    squeezenet1_0_mini_dynamo,
    squeezenet1_0_mini_ts17,
    squeezenet1_0_mini_ts9,
    squeezenet1_1_mini_dynamo,
    squeezenet1_1_mini_ts17,
    squeezenet1_1_mini_ts9,
    vgg11_bn_mini_dynamo,
    vgg11_bn_mini_ts17,
    vgg11_bn_mini_ts9,
    vgg11_mini_dynamo,
    vgg11_mini_ts17,
    vgg11_mini_ts9,
    wide_resnet_mini_dynamo,
    wide_resnet_mini_ts17,
    wide_resnet_mini_ts9,
    xception_mini_dynamo,
    xception_mini_ts17,
    xception_mini_ts9,
}

fn fixtures_dir() -> PathBuf {
    workspace().join("testdata/families")
}

/// `resnext_mini_ts17` → (`resnext_mini`, `ts17`).
fn split_test_name(test: &str) -> (&str, &str) {
    match test.rsplit_once('_') {
        Some((model, exporter)) if EXPORTERS.contains(&exporter) => (model, exporter),
        _ => panic!("test `{test}` is not named MODEL_EXPORTER with an exporter of {EXPORTERS:?}"),
    }
}

/// `NAME.EXPORTER.onnx` of a test.
fn onnx_path(test: &str) -> PathBuf {
    let (model, exporter) = split_test_name(test);
    fixtures_dir().join(format!("{model}.{exporter}.onnx"))
}

/// The shared build of every fixture, one module per test name.
fn build() -> &'static Crate {
    static BUILD: OnceLock<Result<Crate, String>> = OnceLock::new();
    emitted::shared(&BUILD, "families", Opt::Quick, || {
        FIXTURES
            .iter()
            .map(|&test| Model::new(test, onnx_path(test)))
            .collect()
    })
}

/// The numbers `keys` of `file`'s entry in `dir/manifest.json`, read once.
fn manifest_numbers<const N: usize>(dir: &Path, file: &str, keys: [&str; N]) -> [f32; N] {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let entry = manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file"] == file))
        .unwrap_or_else(|| panic!("{} has no entry for {file}", path.display()));
    keys.map(|key| {
        entry[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{file}: no number `{key}` in the manifest")) as f32
    })
}

/// Compiles (through the shared build), runs and compares the fixture of `test`.
fn check(test: &'static str) {
    let (model, exporter) = split_test_name(test);
    let onnx = onnx_path(test);
    let input = fixtures_dir().join(format!("{model}.input.npy"));
    let expected = fixtures_dir().join(format!("{model}.output.npy"));
    for path in [&onnx, &input, &expected] {
        assert!(
            path.exists(),
            "{test}: the fixture {} is missing",
            path.display()
        );
    }

    let build = build();
    if let Err(e) = &build.models[test] {
        panic!("{test}: {} does not compile: {e}", onnx.display());
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = tmp.path().join("logits.npy");
    build.run(test, &input, &output);

    let (want_shape, want) = npy::read_f32(&expected).expect("read PyTorch's logits");
    let (shape, got) = npy::read_f32(&output).expect("read our logits");
    assert_eq!(shape, want_shape, "{test}: logits shape");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(
        scale.is_finite() && scale > 0.0,
        "{test}: PyTorch's logits have max |logit| {scale}"
    );
    let ours = 1e-4 * scale;
    let [ort] = manifest_numbers(
        &fixtures_dir(),
        &format!("{model}.{exporter}.onnx"),
        ["ort_max_abs_err"],
    );
    let tol = ours.max(ort);
    let err = max_abs_diff(&got, &want);
    eprintln!(
        "[families] {test}: max abs err {err:e}, tolerance {tol:e} (1e-4 × max |logit| {ours:e}, onnxruntime {ort:e})"
    );
    assert!(
        err <= tol,
        "{test}: max abs err {err:e} > tolerance {tol:e} (1e-4 × max |logit| {scale} = {ours:e}; \
         onnxruntime's own error {ort:e})"
    );
}

#[test]
fn every_fixture_has_a_test() {
    let dir = fixtures_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut untested = Vec::new();
    for entry in entries {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".onnx") {
            let test = stem.replace('.', "_");
            if !FIXTURES.contains(&test.as_str()) {
                untested.push(name.into_owned());
            }
        }
    }
    assert!(untested.is_empty(), "fixtures without a test: {untested:?}");
}

/// The standard-size models, one per family (`testdata/make_fixtures.py --full DIR
/// --one-per-family`: torchvision's architectures, 1000 classes, 224×224 or 299×299, a batch of
/// one), not committed: `RESNEXT_FAMILIES_FULL` names their directory. One shared binary for all
/// of them. Run on request without the variable, the directory or a listed file, a test fails.
///
/// The reference is PyTorch's logits of the same model and input in float64
/// (`NAME.output_fp64.npy`): max abs err ≤ 1e-4 × max |logit|, or onnxruntime's own distance from
/// them (`ort_fp64_max_abs_err` in the manifest) where that is larger. Deep random-weight nets
/// (ResNet-50, Wide ResNet-50, ResNeXt-50, Inception-v3) have float32 logits 0.5–0.7e-4 × max
/// |logit| from their float64 ones, PyTorch's own float32 logits included, so against PyTorch's
/// float32 logits two such errors add up and onnxruntime itself comes to 0.8–1.01e-4. The error
/// against PyTorch's float32 logits is printed beside it.
/// Not named `with_models`: CI has no such models.
///
/// The weights (1.8 GB per exporter) are written only while a test runs its model and removed
/// after it: the build writes the code alone and each test recompiles its model (a second or
/// two) for the weights, so a run holds at most one weights file per test thread.
mod with_full_models {
    use std::time::Instant;

    use super::*;

    const ENV: &str = "RESNEXT_FAMILIES_FULL";

    /// One ignored `#[test]` per file, named `NAME_EXPORTER` like the reduced fixtures' tests.
    macro_rules! full_models {
        ($($test:ident,)*) => {
            /// Every file the tests name, as `NAME_EXPORTER`.
            const MODELS: &[&str] = &[$(stringify!($test)),*];
            $(
                #[test]
                #[ignore = "needs RESNEXT_FAMILIES_FULL"]
                fn $test() {
                    check(stringify!($test));
                }
            )*
        };
    }

    full_models! {
        alexnet_dynamo,
        alexnet_ts17,
        convnext_tiny_dynamo,
        convnext_tiny_ts17,
        densenet121_dynamo,
        densenet121_ts17,
        efficientnet_b0_dynamo,
        efficientnet_b0_ts17,
        efficientnet_v2_s_dynamo,
        efficientnet_v2_s_ts17,
        googlenet_dynamo,
        googlenet_ts17,
        inception_v3_dynamo,
        inception_v3_ts17,
        lenet5_tanh_dynamo,
        lenet5_tanh_ts17,
        mnasnet1_0_dynamo,
        mnasnet1_0_ts17,
        mobilenet_v2_dynamo,
        mobilenet_v2_ts17,
        mobilenet_v3_large_dynamo,
        mobilenet_v3_large_ts17,
        mobilenet_v3_small_dynamo,
        mobilenet_v3_small_ts17,
        regnet_x_400mf_dynamo,
        regnet_x_400mf_ts17,
        regnet_y_400mf_dynamo,
        regnet_y_400mf_ts17,
        resnet18_dynamo,
        resnet18_ts17,
        resnet50_dynamo,
        resnet50_ts17,
        resnext50_32x4d_dynamo,
        resnext50_32x4d_ts17,
        shufflenet_v2_x1_0_dynamo,
        shufflenet_v2_x1_0_ts17,
        squeezenet1_1_dynamo,
        squeezenet1_1_ts17,
        vgg11_bn_dynamo,
        vgg11_bn_ts17,
        wide_resnet50_2_dynamo,
        wide_resnet50_2_ts17,
        xception_dynamo,
        xception_ts17,
    }

    /// `$RESNEXT_FAMILIES_FULL` (relative to the workspace root); fails when unset or not a directory.
    fn full_dir() -> PathBuf {
        let dir = match std::env::var_os(ENV) {
            Some(dir) if !dir.is_empty() => workspace().join(dir),
            _ => panic!(
                "this test needs the full-size family models: set {ENV} to the directory of \
                 `python testdata/make_fixtures.py --full DIR --one-per-family --exporters \
                 dynamo,ts17 --batch 1`"
            ),
        };
        assert!(
            dir.is_dir(),
            "{ENV}={} is not a directory (generate the models there)",
            dir.display()
        );
        dir
    }

    fn onnx_path(dir: &Path, test: &str) -> PathBuf {
        let (model, exporter) = split_test_name(test);
        dir.join(format!("{model}.{exporter}.onnx"))
    }

    fn full_model(dir: &Path, test: &str) -> Model {
        Model::new(test, onnx_path(dir, test)).code_only()
    }

    /// The shared binary of the full-size models (`common::emitted`, code only: each test writes
    /// its model's weights).
    fn build() -> &'static Crate {
        static BUILD: OnceLock<Result<Crate, String>> = OnceLock::new();
        emitted::shared(&BUILD, "families_full", Opt::Release, || {
            let dir = full_dir();
            MODELS.iter().map(|&test| full_model(&dir, test)).collect()
        })
    }

    /// Removes a file when dropped, also when the test panics.
    struct Remove(PathBuf);

    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn check(test: &'static str) {
        let dir = full_dir();
        let (model, exporter) = split_test_name(test);
        let onnx = onnx_path(&dir, test);
        let input = dir.join(format!("{model}.input.npy"));
        let expected = dir.join(format!("{model}.output.npy"));
        let expected64 = dir.join(format!("{model}.output_fp64.npy"));
        for path in [&onnx, &input, &expected, &expected64] {
            assert!(
                path.exists(),
                "{test}: {} is missing (testdata/make_fixtures.py --full DIR --one-per-family \
                 [--references-only])",
                path.display()
            );
        }
        let file = format!("{model}.{exporter}.onnx");
        let [ort, ort32, torch32] = manifest_numbers(
            &dir,
            &file,
            [
                "ort_fp64_max_abs_err",
                "ort_max_abs_err",
                "torch_fp64_max_abs_diff",
            ],
        );

        let build = build();
        if let Err(e) = &build.models[test] {
            panic!("{test}: {} does not compile: {e}", onnx.display());
        }
        let weights = emitted::write_weights(&full_model(&dir, test), build)
            .unwrap_or_else(|e| panic!("{test}: recompiling for the weights: {e}"));
        let weights = Remove(weights);
        let tmp = tempfile::tempdir().expect("temp dir");
        let output = tmp.path().join("logits.npy");
        let started = Instant::now();
        let out = build
            .command(test)
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", build.binary.display()));
        let seconds = started.elapsed().as_secs_f64();
        drop(weights);
        assert!(
            out.status.success(),
            "{test}: the model failed to run ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );

        let (want_shape, want) = npy::read_f32(&expected64).expect("read PyTorch's float64 logits");
        let (_, want32) = npy::read_f32(&expected).expect("read PyTorch's float32 logits");
        let (shape, got) = npy::read_f32(&output).expect("read our logits");
        assert_eq!(shape, want_shape, "{test}: logits shape");
        assert_eq!(
            want32.len(),
            want.len(),
            "{test}: float32 and float64 logits differ in length"
        );
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            scale.is_finite() && scale > 0.0,
            "{test}: PyTorch's logits have max |logit| {scale}"
        );
        let ours = 1e-4 * scale;
        let tol = ours.max(ort);
        let err = max_abs_diff(&got, &want);
        let err32 = max_abs_diff(&got, &want32);
        let versus = format!(
            "against PyTorch float32 ours {err32:e}, onnxruntime {ort32:e}; PyTorch float32 \
             against float64 {torch32:e}"
        );
        eprintln!(
            "[families_full] {test}: max abs err from float64 {err:e}, tolerance {tol:e} (1e-4 × \
             max |logit| {ours:e}, onnxruntime {ort:e}); {versus}; load and run {seconds:.2} s"
        );
        assert!(
            err <= tol,
            "{test}: max abs err from PyTorch's float64 logits {err:e} > tolerance {tol:e} (1e-4 × \
             max |logit| {scale} = {ours:e}; onnxruntime's own {ort:e}); {versus}"
        );
    }
}
