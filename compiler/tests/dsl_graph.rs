//! The DSL front end against independent oracles: the PyTorch state_dict's keys and shapes, the
//! PyTorch logits (`.output.npy`), the ONNX export of the same network, and the paper's parameter counts.

use std::path::{Path, PathBuf};

use resnext_compiler::front::dsl::{self, ModelSpec, Stem};
use resnext_compiler::front::onnx;
use resnext_compiler::ir::{self, Graph};
use resnext_compiler::{interp, passes};
use resnext_runtime_core::formats::npy;
use resnext_runtime_core::formats::safetensors::StateDict;
use resnext_test_support::models_dir;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

fn small() -> ModelSpec {
    ModelSpec::new("Small", [3, 64, 64], vec![1, 1, 1, 1], 8, 4, 10)
}

fn resnext50() -> ModelSpec {
    ModelSpec::new("ResNeXt50", [3, 224, 224], vec![3, 4, 6, 3], 32, 4, 1000)
}

/// The DSL graph of `spec` with its weights read from a safetensors state_dict.
fn loaded(spec: &ModelSpec, weights: &Path) -> Graph {
    let dict = StateDict::open(weights).expect("state_dict opens");
    let mut graph = dsl::build(spec).expect("spec builds");
    let keys = dsl::state_dict_keys(&graph).unwrap();
    dict.check(keys.iter().map(|(k, d)| (k.as_str(), d.as_slice())))
        .expect("the DSL reads exactly the PyTorch state_dict's tensors");
    dsl::load_weights(&mut graph, |key, _| {
        dict.tensor(key).map_err(|e| e.to_string())
    })
    .expect("weights load");
    graph
}

fn run(graph: &Graph, input: &[f32], batch: usize) -> Vec<f32> {
    let info = ir::validate(graph).expect("graph validates");
    interp::run(graph, &info, &[input], batch)
        .expect("interpreter runs")
        .remove(0)
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    let diff = resnext_test_support::assert_close(actual, expected, 1e-4, what);
    eprintln!(
        "{what}: max abs error {:e} (max |logit| {})",
        diff.max_abs_diff, diff.scale
    );
}

#[test]
fn small_network_has_torchvision_names_and_shapes() {
    let graph = dsl::build(&small()).unwrap();
    let counts = graph.op_counts();
    assert_eq!(counts["Conv"], 17);
    assert_eq!(counts["BatchNormalization"], 17);
    assert_eq!(counts["Add"], 4);
    let names: Vec<_> = graph
        .nodes
        .node_weights()
        .map(|n| n.name.as_str())
        .collect();
    for n in [
        "conv1",
        "bn1",
        "maxpool",
        "layer1.0.conv2",
        "layer4.0.downsample.0",
        "fc",
    ] {
        assert!(names.contains(&n), "no node `{n}`");
    }
    let info = ir::validate(&graph).expect("deferred-weight graph validates");
    // The ONNX export of the same network counts 4.0 M parameters (shared/models/README.md).
    assert!(
        (3.9e6..4.1e6).contains(&(info.params() as f64)),
        "{}",
        info.params()
    );
}

#[test]
fn small_network_matches_pytorch_logits() {
    let graph = loaded(&small(), &testdata("resnext_small_8x4d.safetensors"));
    let (shape, input) = npy::read_f32(testdata("resnext_small_8x4d_bn.input.npy")).unwrap();
    let (_, expected) = npy::read_f32(testdata("resnext_small_8x4d_bn.output.npy")).unwrap();
    let logits = run(&graph, &input, shape[0]);
    assert_close(&logits, &expected, "DSL graph, unoptimised");

    let mut optimized = graph.clone();
    let opts = passes::PassOptions {
        verify: true,
        ..Default::default()
    };
    passes::optimize(&mut optimized, &opts).expect("passes run on the DSL graph");
    assert_eq!(optimized.op_counts().get("BatchNormalization"), None);
    assert_close(
        &run(&optimized, &input, shape[0]),
        &expected,
        "DSL graph, optimised",
    );
}

#[test]
fn small_network_gives_the_onnx_export_logits() {
    let dsl_graph = loaded(&small(), &testdata("resnext_small_8x4d.safetensors"));
    let onnx_graph = onnx::load(&testdata("resnext_small_8x4d_bn.onnx")).expect("ONNX loads");
    let (shape, input) = npy::read_f32(testdata("resnext_small_8x4d_bn.input.npy")).unwrap();
    let a = run(&dsl_graph, &input, shape[0]);
    let b = run(&onnx_graph, &input, shape[0]);
    assert_eq!(
        a, b,
        "DSL and ONNX graphs must compute bit-identical logits"
    );
}

mod with_models {
    use super::*;

    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_matches_pytorch_logits() {
        let dir = models_dir();
        let graph = loaded(&resnext50(), &dir.join("resnext50_32x4d.safetensors"));
        // torchvision's resnext50_32x4d has 25,028,904 parameters (plus BN running statistics).
        let info = ir::validate(&graph).unwrap();
        let bn_stats: u64 = graph
            .weights
            .iter()
            .filter(|(_, w)| w.name.ends_with("running_mean") || w.name.ends_with("running_var"))
            .map(|(_, w)| w.dims[0] as u64)
            .sum();
        assert_eq!(info.params() - bn_stats, 25_028_904);
        let (shape, input) = npy::read_f32(dir.join("resnext50_32x4d_bn.input.npy")).unwrap();
        let (_, expected) = npy::read_f32(dir.join("resnext50_32x4d_bn.output.npy")).unwrap();
        let mut graph = graph;
        passes::optimize(&mut graph, &passes::PassOptions::default()).unwrap();
        assert_close(&run(&graph, &input, shape[0]), &expected, "ResNeXt-50 DSL");
    }
}

/// Parameters without BatchNorm running statistics, as papers and torchvision count them.
fn trainable_params(spec: &ModelSpec) -> u64 {
    let graph = dsl::build(spec).unwrap();
    graph
        .weights
        .iter()
        .filter(|(_, w)| !w.name.contains("running_"))
        .map(|(_, w)| w.dims.iter().product::<usize>() as u64)
        .sum()
}

#[test]
fn templates_have_the_published_parameter_counts() {
    // torchvision: resnet50 25,557,032; resnext50_32x4d 25,028,904; resnext101_32x8d 88,791,336;
    // resnext101_64x4d 83,455,272.
    let imagenet =
        |stages: Vec<usize>, c, d| ModelSpec::new("M", [3, 224, 224], stages, c, d, 1000);
    assert_eq!(
        trainable_params(&imagenet(vec![3, 4, 6, 3], 1, 64)),
        25_557_032
    );
    assert_eq!(
        trainable_params(&imagenet(vec![3, 4, 6, 3], 32, 4)),
        25_028_904
    );
    assert_eq!(
        trainable_params(&imagenet(vec![3, 4, 23, 3], 32, 8)),
        88_791_336
    );
    assert_eq!(
        trainable_params(&imagenet(vec![3, 4, 23, 3], 64, 4)),
        83_455_272
    );
    // The paper (Table 7): CIFAR ResNeXt-29 8×64d 34.4 M, 16×64d 68.1 M parameters.
    let cifar = |c| ModelSpec {
        stem: Stem::Cifar,
        ..ModelSpec::new("M", [3, 32, 32], vec![3, 3, 3], c, 64, 10)
    };
    let (p8, p16) = (trainable_params(&cifar(8)), trainable_params(&cifar(16)));
    assert!((34.3e6..34.5e6).contains(&(p8 as f64)), "8×64d: {p8}");
    assert!((68.0e6..68.2e6).contains(&(p16 as f64)), "16×64d: {p16}");
}

#[test]
fn invalid_specs_list_every_problem() {
    let mut spec = small();
    spec.stages = vec![1, 0, 1];
    spec.cardinality = 0;
    spec.input = [3, 8, 8]; // three stages reduce by 16
    let problems = spec.problems();
    let text: Vec<_> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(problems.len(), 3, "{text:?}");
    assert!(text.iter().any(|m| m.contains("stage 2 has 0 blocks")));
    assert!(text.iter().any(|m| m.contains("too small for the strides")));
    assert!(matches!(dsl::build(&spec), Err(dsl::DslError::Spec { .. })));
}

#[test]
fn load_weights_reports_every_bad_tensor() {
    let mut graph = dsl::build(&small()).unwrap();
    let err = dsl::load_weights(&mut graph, |key, dims| {
        if key.starts_with("layer1") {
            Err(format!("`{key}` is missing"))
        } else {
            Ok(vec![
                0.0;
                dims.iter().product::<usize>()
                    + usize::from(key == "fc.bias")
            ])
        }
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("layer1.0.conv1.weight") && err.contains("layer1.0.downsample.1.running_var")
    );
    assert!(err.contains("`fc.bias` has 11 values"), "{err}");
}
