//! The ONNX front end at every opset it accepts (7 to 28): small graphs in each opset's forms of
//! the ops (`testdata/opsets/`, written by `testdata/make_opset_fixtures.py`) are imported, run on
//! the reference interpreter and compared with onnxruntime's outputs; a tiny ResNeXt exported by
//! PyTorch's dynamo exporter (opset 20) and its TorchScript exporter (opset 9) with PyTorch's
//! logits; and forms an op has only at other opsets than the file's (`testdata/opsets/bad/`) are
//! errors that name the node and the reason.
#![cfg(feature = "onnx")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prost::Message;
use resnext_compiler::front::onnx;
use resnext_compiler::{interp, ir};
use resnext_runtime_core::formats::npy;
use tract_onnx::pb;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/opsets")
}

/// The opset and IR version the file declares, read independently of the front end.
fn declared_versions(model: &Path) -> (i64, i64) {
    let bytes = std::fs::read(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let m = pb::ModelProto::decode(bytes.as_slice()).expect("a model");
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .expect("a default-domain opset")
        .version;
    (opset, m.ir_version)
}

/// Largest absolute difference; NaN anywhere makes it NaN, so `!(err <= tol)` catches it.
fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, |m, d| if d.is_nan() || d > m { d } else { m })
}

/// Whether the error is within the tolerance; false for a NaN error.
fn within(err: f32, tol: f32) -> bool {
    err <= tol
}

/// Imports `NAME.onnx`, runs it on `NAME.input.npy` and compares it with `NAME.output.npy`
/// (max abs error ≤ 1e-4 × max |output|). Returns the graph for further checks.
fn check(name: &str) -> ir::Graph {
    let dir = fixtures();
    let model = dir.join(format!("{name}.onnx"));
    let graph = onnx::load(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
    let info = ir::validate(&graph).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (in_shape, x) = npy::read_f32(dir.join(format!("{name}.input.npy"))).expect("input");
    let (out_shape, want) = npy::read_f32(dir.join(format!("{name}.output.npy"))).expect("output");
    let got = interp::run(&graph, &info, &[&x], in_shape[0])
        .unwrap_or_else(|e| panic!("{name}: interpreter: {e}"));
    assert_eq!(got.len(), 1, "{name}: one output");
    assert_eq!(
        got[0].len(),
        want.len(),
        "{name}: output size vs {out_shape:?}"
    );
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale.is_finite() && scale > 0.0,
        "{name}: the oracle's output is degenerate"
    );
    let err = max_abs_diff(&got[0], &want);
    eprintln!("{name}: max |err| = {err:e}, max |output| = {scale}");
    assert!(
        within(err, 1e-4 * scale),
        "{name}: max abs error {err} > 1e-4 × max |output| {scale}"
    );
    graph
}

#[test]
fn the_comparison_fails_on_nan_and_on_a_wrong_value() {
    let want = [1.0f32, -2.0, 3.0];
    assert!(within(max_abs_diff(&want, &want), 0.0));
    assert!(!within(max_abs_diff(&[1.0, f32::NAN, 3.0], &want), 1e-4));
    assert!(!within(max_abs_diff(&[f32::NAN, -2.0, 3.0], &want), 1e-4));
    assert!(!within(max_abs_diff(&[1.0, -2.0, 3.1], &want), 1e-4 * 3.0));
}

/// Every opset from 7 to 28 that some op's version changed at has both graphs, and every one
/// matches onnxruntime.
#[test]
fn every_opset_fixture_matches_onnxruntime() {
    let dir = fixtures();
    let mut opsets = BTreeSet::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(name) = file.strip_suffix(".onnx") else {
            continue;
        };
        if !(name.starts_with("conv_net_") || name.starts_with("shape_net_")) {
            continue;
        }
        let (opset, ir_version) = declared_versions(&path);
        assert!(
            name.ends_with(&format!("_opset{opset}")),
            "{name} declares opset {opset}"
        );
        eprintln!("{name}: IR version {ir_version}");
        check(name);
        opsets.insert(opset);
        count += 1;
    }
    // The opsets where one of the imported ops has a new version, and the ends of the range.
    for want in [7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 22, 28] {
        assert!(
            opsets.contains(&want),
            "no fixture at opset {want}: {opsets:?}"
        );
    }
    assert_eq!(count, 2 * opsets.len(), "both graphs at each opset");
}

#[test]
fn fixtures_span_the_ir_versions() {
    let (opset, ir) = declared_versions(&fixtures().join("conv_net_opset7.onnx"));
    assert_eq!((opset, ir), (7, 3), "opset 7 as its era wrote it");
    let (opset, ir) = declared_versions(&fixtures().join("conv_net_opset28.onnx"));
    assert_eq!(opset, 28);
    assert_eq!(ir, 14, "opset 28 with the IR version onnx 1.23 writes");
}

#[test]
fn dynamo_export_at_its_default_opset_matches_pytorch() {
    let name = "resnext_tiny_dynamo";
    let (opset, _) = declared_versions(&fixtures().join(format!("{name}.onnx")));
    assert_eq!(opset, 20, "the exporter's default opset");
    let graph = check(name);
    let counts = graph.op_counts();
    assert_eq!(counts.get("Conv"), Some(&9), "{counts:?}");
    assert_eq!(counts.get("Add"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("Dense"), Some(&1), "{counts:?}");
    assert_eq!(graph.batch_name, "batch");
}

#[test]
fn torchscript_export_at_opset_9_matches_pytorch() {
    let name = "resnext_tiny_opset9";
    let (opset, _) = declared_versions(&fixtures().join(format!("{name}.onnx")));
    assert_eq!(opset, 9);
    let graph = check(name);
    let counts = graph.op_counts();
    assert_eq!(counts.get("Conv"), Some(&9), "{counts:?}");
    assert_eq!(counts.get("BatchNormalization"), Some(&9), "{counts:?}");
    assert_eq!(counts.get("GlobalAveragePool"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("Dense"), Some(&1), "{counts:?}");
}

/// Each model of `bad/` and what its error must say: the node, the op, and the reason.
const BAD: &[(&str, &[&str])] = &[
    (
        "clip_inputs_at_10",
        &[
            "Clip node `/clip2/Clip`",
            "`min` is an input from opset 11; this file declares opset 10",
        ],
    ),
    (
        "clip_attributes_at_11",
        &[
            "Clip node `/clip2/Clip`",
            "`min` is an attribute only before opset 11 (an optional input from then on); this \
             file declares opset 11",
        ],
    ),
    (
        "reduce_mean_axes_input_at_17",
        &[
            "ReduceMean node `/reducemean2/ReduceMean`",
            "`axes` is an input from opset 18; this file declares opset 17",
        ],
    ),
    (
        "reduce_mean_axes_attribute_at_18",
        &[
            "ReduceMean node `/reducemean2/ReduceMean`",
            "`axes` is an attribute only before opset 18",
            "this file declares opset 18",
        ],
    ),
    (
        "batch_norm_non_spatial_at_8",
        &[
            "BatchNormalization node `/batchnormalization2/BatchNormalization`",
            "spatial = 0",
            "only spatial = 1",
        ],
    ),
    (
        "batch_norm_spatial_at_9",
        &[
            "BatchNormalization node",
            "`spatial` is an attribute only before opset 9",
            "declares opset 9",
        ],
    ),
    (
        "batch_norm_is_test_at_7",
        &[
            "BatchNormalization node",
            "`is_test` is an attribute only before opset 7",
            "declares opset 7",
        ],
    ),
    (
        "batch_norm_training_mode_at_13",
        &[
            "BatchNormalization node",
            "`training_mode` is an attribute from opset 14; this file declares opset 13",
        ],
    ),
    (
        "batch_norm_training_mode_1_at_15",
        &[
            "BatchNormalization node",
            "training_mode = 1 is not supported",
        ],
    ),
    (
        "batch_norm_training_outputs_at_9",
        &[
            "BatchNormalization node",
            "output 1 is named",
            "before opset 14",
            "training mode",
        ],
    ),
    (
        "max_pool_ceil_mode_at_9",
        &[
            "MaxPool node `/maxpool2/MaxPool`",
            "`ceil_mode` is an attribute from opset 10; this file declares opset 9",
        ],
    ),
    (
        "max_pool_storage_order_at_7",
        &[
            "MaxPool node",
            "`storage_order` is an attribute from opset 8; this file declares opset 7",
        ],
    ),
    (
        "max_pool_indices_at_7",
        &[
            "MaxPool node",
            "`Indices` is an output from opset 8; this file declares opset 7",
        ],
    ),
    (
        "max_pool_indices_used_at_12",
        &[
            "Relu node `/relu3/Relu`",
            "input `mp_i`",
            "output 1 of MaxPool node `/maxpool2/MaxPool`",
        ],
    ),
    (
        "average_pool_dilations_at_18",
        &[
            "AveragePool node",
            "`dilations` is an attribute from opset 19; this file declares opset 18",
        ],
    ),
    (
        "dropout_mask_used_at_11",
        &[
            "Relu node `/relu3/Relu`",
            "input `d_mask`",
            "output 1 of Dropout node `/dropout2/Dropout`",
        ],
    ),
    (
        "dropout_ratio_attribute_at_12",
        &[
            "Dropout node",
            "`ratio` is an attribute only before opset 12 (an optional input from then on)",
        ],
    ),
    (
        "reshape_allowzero_at_13",
        &[
            "Reshape node",
            "`allowzero` is an attribute from opset 14; this file declares opset 13",
        ],
    ),
    (
        "gemm_without_c_at_10",
        &[
            "Gemm node `/gemm3/Gemm`",
            "input C (bias) is required before opset 11",
            "declares opset 10",
        ],
    ),
    (
        "flatten_negative_axis_at_10",
        &[
            "Flatten node",
            "negative `axis` (-3) counts from the back only from opset 11",
        ],
    ),
    (
        "unsqueeze_axes_attribute_at_13",
        &[
            "Unsqueeze node `/unsqueeze2/Unsqueeze`",
            "`axes` is an attribute only before opset 13 (a required input from then on)",
        ],
    ),
    (
        "shape_start_at_14",
        &[
            "Shape node `/shape1/Shape`",
            "`start` is an attribute from opset 15; this file declares opset 14",
        ],
    ),
    (
        "constant_value_ints_at_11",
        &[
            "Constant node",
            "`value_ints` is an attribute from opset 12; this file declares opset 11",
        ],
    ),
    (
        "opset_6",
        &["unsupported opset 6", "opsets 7 to 28 are supported"],
    ),
    (
        "opset_29",
        &["unsupported opset 29", "opsets 7 to 28 are supported"],
    ),
];

#[test]
fn forms_of_other_opsets_are_errors_naming_node_and_reason() {
    let dir = fixtures().join("bad");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".onnx")?.to_string())
        })
        .collect();
    let listed: BTreeSet<String> = BAD.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed, "every bad model has its expected message");
    for (name, parts) in BAD {
        let err = onnx::load(&dir.join(format!("{name}.onnx")))
            .map(|_| ())
            .expect_err(name);
        let message = err.to_string();
        eprintln!("{name}: {message}");
        for p in *parts {
            assert!(
                message.contains(p),
                "{name}: error {message:?} should mention {p:?}"
            );
        }
    }
}
