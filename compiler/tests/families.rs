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

use std::path::PathBuf;
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

/// onnxruntime's max abs error against PyTorch on `file`, from `manifest.json`.
fn ort_max_abs_err(file: &str) -> f32 {
    let path = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let entry = manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file"] == file))
        .unwrap_or_else(|| panic!("{} has no entry for {file}", path.display()));
    entry["ort_max_abs_err"]
        .as_f64()
        .unwrap_or_else(|| panic!("{file}: no number `ort_max_abs_err` in the manifest")) as f32
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
    let ort = ort_max_abs_err(&format!("{model}.{exporter}.onnx"));
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
