//! The ONNX front end on the real torchvision exports: the imported graph validates, has the ops the
//! export holds, and the reference interpreter on it reproduces PyTorch's logits (`.output.npy`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use resnext_compiler::front::onnx;
use resnext_compiler::{interp, ir};
use resnext_runtime_core::formats::npy;
use resnext_test_support::{assert_close, models_dir};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

/// Imports `model`, checks its op counts, runs it on `input` and compares with PyTorch's `output`.
fn check_against_pytorch(
    model: &Path,
    input: &Path,
    output: &Path,
    expected_ops: &[(&str, usize)],
) -> ir::Graph {
    let graph = onnx::load(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let info = ir::validate(&graph).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let counts = graph.op_counts();
    for &(op, n) in expected_ops {
        assert_eq!(
            counts.get(op).copied().unwrap_or(0),
            n,
            "{op} count in {}: {counts:?}",
            model.display()
        );
    }
    assert_eq!(graph.inputs.len(), 1);
    assert_eq!(graph.outputs.len(), 1);
    assert_eq!(graph.outputs[0].1, "logits");
    assert_eq!(graph.batch_name, "batch");

    let (in_shape, x) = npy::read_f32(input).expect("input .npy");
    let (out_shape, want) = npy::read_f32(output).expect("output .npy");
    let batch = in_shape[0];
    let start = Instant::now();
    let got = interp::run(&graph, &info, &[&x], batch).expect("interpreter runs");
    eprintln!(
        "{}: interpreter, batch {batch}: {:.2?}",
        model.display(),
        start.elapsed()
    );
    assert_eq!(got[0].len(), want.len(), "output size vs {out_shape:?}");
    let what = format!("{}: logits", model.display());
    let diff = assert_close(&got[0], &want, 1e-4, &what);
    eprintln!(
        "max |err| = {:e}, max |logit| = {}",
        diff.max_abs_diff, diff.scale
    );
    graph
}

#[test]
fn resnext_small_matches_pytorch() {
    let graph = check_against_pytorch(
        &testdata("resnext_small_8x4d_bn.onnx"),
        &testdata("resnext_small_8x4d_bn.input.npy"),
        &testdata("resnext_small_8x4d_bn.output.npy"),
        &[
            ("Input", 1),
            ("Conv", 17),
            ("BatchNormalization", 17),
            ("Add", 4),
            ("MaxPool", 1),
            ("GlobalAveragePool", 1),
            ("Flatten", 1),
            ("Dense", 1),
        ],
    );
    let input = &graph.node(graph.inputs[0]);
    assert_eq!(input.name, "input");
    assert_eq!(input.output.shape, ir::Shape::nchw(3, 64, 64));
    // Node names are the exporter's, so errors and `inspect` can point into the ONNX file.
    assert!(
        graph
            .nodes
            .node_weights()
            .any(|n| n.name == "/layer2/layer2.0/conv2/Conv"),
        "ONNX node names are kept"
    );
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    let graph = check_against_pytorch(
        &testdata("mobilenet_v2_bn.onnx"),
        &testdata("mobilenet_v2_bn.input.npy"),
        &testdata("mobilenet_v2_bn.output.npy"),
        &[("Input", 1), ("Clip", 35), ("Dense", 1)],
    );
    // ReLU6 arrives as Clip with constant min/max inputs.
    assert!(
        graph
            .nodes
            .node_weights()
            .any(|n| n.op == ir::Op::Clip { min: 0.0, max: 6.0 })
    );
    // Depthwise convs: group = channels.
    assert!(graph.nodes.node_weights().any(|n| matches!(
        &n.op,
        ir::Op::Conv(c) if c.group > 1 && c.group == c.in_channels
    )));
}

mod with_models {
    use super::*;

    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_matches_pytorch() {
        let dir = models_dir();
        check_against_pytorch(
            &dir.join("resnext50_32x4d_bn.onnx"),
            &dir.join("resnext50_32x4d_bn.input.npy"),
            &dir.join("resnext50_32x4d_bn.output.npy"),
            &[
                ("Conv", 53),
                ("BatchNormalization", 53),
                ("Add", 16),
                ("Dense", 1),
            ],
        );
    }
}
