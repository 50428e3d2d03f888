//! Differential test: our front end + reference interpreter against tract-onnx (its own ONNX loader
//! and optimiser, an independent implementation) on the same models and seeded random inputs.

use std::path::{Path, PathBuf};

use resnext_compiler::front::onnx;
use resnext_compiler::{interp, ir};
use resnext_test_support::{assert_close, compare, models_dir};
use tract_onnx::prelude::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

/// Seeded N(0,1)-ish inputs without a rand crate: a 64-bit LCG (Knuth's MMIX constants), the sum of
/// four uniforms recentred and rescaled to unit variance (Irwin–Hall), like the images PyTorch saw.
fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64
    };
    (0..len)
        .map(|_| {
            let s: f64 = (0..4).map(|_| uniform()).sum();
            ((s - 2.0) * 3f64.sqrt()) as f32
        })
        .collect()
}

fn run_tract(model: &Path, chw: (usize, usize, usize), batch: usize, x: &[f32]) -> Vec<f32> {
    let (c, h, w) = chw;
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .and_then(|m| m.with_input_fact(0, f32::fact([batch, c, h, w]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract on {}: {e:?}", model.display()));
    let input =
        tract_ndarray::Array4::from_shape_vec((batch, c, h, w), x.to_vec()).expect("input shape");
    let out = plan
        .run(tvec!(Tensor::from(input).into()))
        .expect("tract runs");
    out[0]
        .to_plain_array_view::<f32>()
        .expect("f32 output")
        .iter()
        .copied()
        .collect()
}

fn differential(model: &Path, batch: usize, seed: u64) {
    let graph = onnx::load(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let info = ir::validate(&graph).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let chw = graph
        .node(graph.inputs[0])
        .output
        .shape
        .chw()
        .expect("4-D input");
    let x = random_input(batch * chw.0 * chw.1 * chw.2, seed);
    let ours = interp::run(&graph, &info, &[&x], batch).expect("interpreter runs");
    let theirs = run_tract(model, chw, batch, &x);
    assert_eq!(ours[0].len(), theirs.len(), "output sizes");
    let what = format!("{}: batch {batch}, ours vs tract", model.display());
    let diff = compare(&ours[0], &theirs).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: max |ours - tract| = {:e}, max |output| = {}",
        diff.max_abs_diff, diff.scale
    );
    // Both sides compute the same fp32 math in different orders (tract folds BatchNorm, reorders
    // sums, may use FMA; the reference kernels accumulate in f64). Rounding differences then grow
    // with depth like a few ulps per layer relative to the activations, far below 1e-4 of the
    // largest output, while any real import mistake (a wrong pad, group, transpose or epsilon)
    // moves the logits by percent. This is the PyTorch criterion of the end-to-end tests too.
    assert!(diff.scale > 0.0, "outputs are not all zero");
    assert_close(&ours[0], &theirs, 1e-4, &what);
}

#[test]
fn resnext_small_agrees_with_tract() {
    differential(&testdata("resnext_small_8x4d_bn.onnx"), 2, 17);
}

#[test]
fn mobilenet_v2_agrees_with_tract() {
    differential(&testdata("mobilenet_v2_bn.onnx"), 1, 42);
}

mod with_models {
    use super::*;

    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_agrees_with_tract() {
        let dir = models_dir();
        differential(&dir.join("resnext50_32x4d_bn.onnx"), 1, 7);
    }
}

/// Builders for hand-made models covering the ops and attribute forms the torchvision exports do
/// not use.
mod zoo {
    use tract_onnx::pb;
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

    pub const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
    pub const INT64: i32 = pb::tensor_proto::DataType::Int64 as i32;

    pub fn input(name: &str, c: i64, h: i64, w: i64) -> pb::ValueInfoProto {
        let dim = |v: dimension::Value| Dimension {
            value: Some(v),
            ..Default::default()
        };
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: FLOAT,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            dim(dimension::Value::DimParam("batch".into())),
                            dim(dimension::Value::DimValue(c)),
                            dim(dimension::Value::DimValue(h)),
                            dim(dimension::Value::DimValue(w)),
                        ],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn output(name: &str) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: FLOAT,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A float tensor with deterministic, varied values (`float_data` storage).
    pub fn floats(name: &str, dims: &[i64], seed: u64) -> pb::TensorProto {
        let len = dims.iter().product::<i64>() as usize;
        let data = super::random_input(len, seed)
            .into_iter()
            .map(|v| v * 0.3)
            .collect();
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: FLOAT,
            float_data: data,
            ..Default::default()
        }
    }

    pub fn scalar(name: &str, v: f32) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            data_type: FLOAT,
            raw_data: v.to_le_bytes().to_vec(),
            ..Default::default()
        }
    }

    pub fn int64s(name: &str, v: &[i64]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: vec![v.len() as i64],
            data_type: INT64,
            int64_data: v.to_vec(),
            ..Default::default()
        }
    }

    pub enum A {
        I(i64),
        F(f32),
        Is(Vec<i64>),
        S(&'static str),
        T(Box<pb::TensorProto>),
    }

    pub fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, A)>) -> pb::NodeProto {
        pb::NodeProto {
            name: format!("/zoo/{output}/{op}"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: attrs
                .into_iter()
                .map(|(name, a)| {
                    let mut p = pb::AttributeProto {
                        name: name.into(),
                        ..Default::default()
                    };
                    match a {
                        A::I(i) => (p.r#type, p.i) = (AttributeType::Int as i32, i),
                        A::F(f) => (p.r#type, p.f) = (AttributeType::Float as i32, f),
                        A::Is(v) => (p.r#type, p.ints) = (AttributeType::Ints as i32, v),
                        A::S(s) => (p.r#type, p.s) = (AttributeType::String as i32, s.into()),
                        A::T(t) => (p.r#type, p.t) = (AttributeType::Tensor as i32, Some(*t)),
                    }
                    p
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn model(graph: pb::GraphProto, opset: i64) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(graph),
            ..Default::default()
        }
    }
}

/// A model through every op and attribute form the torchvision exports leave out: Conv with
/// auto_pad SAME_LOWER and stride 2, Clip with a Constant-node min and an initializer max,
/// AveragePool (pads, count_include_pad, ceil_mode), MaxPool SAME_UPPER, residual Add,
/// (sizes chosen so that SAME pads are asymmetric and ceil_mode adds a window),
/// ReduceMean (axes as attribute, or as input at opset 18), Reshape from a Constant with 0 and -1,
/// Dropout, Identity, Gemm with transB = 0 and alpha/beta and a [1, M] bias, MatMul, Flatten.
fn zoo_model(opset: i64) -> Vec<u8> {
    use zoo::{A, floats, int64s, node, scalar};
    let mut nodes = vec![
        node(
            "Conv",
            &["x", "w1", "b1"],
            "c1",
            vec![
                ("auto_pad", A::S("SAME_LOWER")),
                ("strides", A::Is(vec![2, 2])),
                ("kernel_shape", A::Is(vec![3, 3])),
            ],
        ),
        node(
            "Constant",
            &[],
            "clip_min",
            vec![("value", A::T(Box::new(scalar("", -0.5))))],
        ),
        node("Clip", &["c1", "clip_min", "clip_max"], "c2", vec![]),
        node(
            "AveragePool",
            &["c2"],
            "p1",
            vec![
                ("kernel_shape", A::Is(vec![3, 3])),
                ("strides", A::Is(vec![1, 1])),
                ("pads", A::Is(vec![1, 1, 1, 1])),
                ("count_include_pad", A::I(1)),
            ],
        ),
        node(
            "AveragePool",
            &["c2"],
            "p2",
            vec![
                ("kernel_shape", A::Is(vec![3, 3])),
                ("strides", A::Is(vec![2, 2])),
                ("ceil_mode", A::I(1)),
            ],
        ),
        node(
            "MaxPool",
            &["p1"],
            "p3",
            vec![
                ("kernel_shape", A::Is(vec![3, 3])),
                ("strides", A::Is(vec![2, 2])),
                ("auto_pad", A::S("SAME_UPPER")),
            ],
        ),
        node("Add", &["p3", "p2"], "s1", vec![]),
        node("Relu", &["s1"], "r1", vec![]),
    ];
    let mut initializers = vec![
        floats("w1", &[6, 4, 3, 3], 1),
        floats("b1", &[6], 2),
        scalar("clip_max", 0.8),
        floats("gemm_b", &[6, 5], 3),
        floats("gemm_c", &[1, 5], 4),
        floats("mm_b", &[5, 3], 5),
    ];
    if opset >= 18 {
        initializers.push(int64s("axes", &[-1, -2]));
        nodes.push(node("ReduceMean", &["r1", "axes"], "m1", vec![]));
    } else {
        nodes.push(node(
            "ReduceMean",
            &["r1"],
            "m1",
            vec![("axes", A::Is(vec![2, 3])), ("keepdims", A::I(1))],
        ));
    }
    nodes.extend([
        node(
            "Constant",
            &[],
            "shape",
            vec![("value", A::T(Box::new(int64s("", &[0, -1]))))],
        ),
        node("Reshape", &["m1", "shape"], "f1", vec![]),
        node("Dropout", &["f1"], "d1", vec![]),
        node("Identity", &["d1"], "i1", vec![]),
        node(
            "Gemm",
            &["i1", "gemm_b", "gemm_c"],
            "g1",
            vec![("alpha", A::F(0.5)), ("beta", A::F(2.0))],
        ),
        node("Relu", &["g1"], "r2", vec![]),
        node("MatMul", &["r2", "mm_b"], "mm", vec![]),
        node("Flatten", &["mm"], "y", vec![("axis", A::I(1))]),
    ]);
    let graph = tract_onnx::pb::GraphProto {
        name: "zoo".into(),
        node: nodes,
        initializer: initializers,
        input: vec![zoo::input("x", 4, 12, 12)],
        output: vec![zoo::output("y")],
        ..Default::default()
    };
    prost::Message::encode_to_vec(&zoo::model(graph, opset))
}

#[test]
fn op_zoo_agrees_with_tract() {
    let dir = tempfile::tempdir().expect("tempdir");
    for opset in [13, 18] {
        let path = dir.path().join(format!("zoo{opset}.onnx"));
        std::fs::write(&path, zoo_model(opset)).expect("write model");
        let graph = onnx::load(&path).unwrap_or_else(|e| panic!("opset {opset}: {e}"));
        let counts = graph.op_counts();
        for op in [
            "Conv",
            "Clip",
            "AveragePool",
            "MaxPool",
            "Add",
            "GlobalAveragePool",
            "Reshape",
            "Identity",
            "Dense",
            "Flatten",
        ] {
            assert!(
                counts.contains_key(op),
                "opset {opset}: no {op} in {counts:?}"
            );
        }
        assert_eq!(counts["Dense"], 2, "Gemm and MatMul");
        differential(&path, 3, 100 + opset as u64);
    }
}

/// The dynamo exporter's `x.view(x.size(0), -1)`: Shape → Gather(0) → Unsqueeze → Concat([·, -1])
/// → Reshape, folded at import into one Reshape that keeps the batch (opset 13: Unsqueeze axes as an
/// input; opset 11: as an attribute).
fn shape_subgraph_model(opset: i64) -> Vec<u8> {
    use zoo::{A, floats, int64s, node};
    let idx = tract_onnx::pb::TensorProto {
        name: "idx0".into(),
        data_type: zoo::INT64,
        int64_data: vec![0],
        ..Default::default()
    };
    let unsqueeze = if opset >= 13 {
        node("Unsqueeze", &["n", "axes0"], "n1", vec![])
    } else {
        node("Unsqueeze", &["n"], "n1", vec![("axes", A::Is(vec![0]))])
    };
    let nodes = vec![
        node(
            "Conv",
            &["x", "w1", "b1"],
            "c1",
            vec![("kernel_shape", A::Is(vec![3, 3]))],
        ),
        node("Relu", &["c1"], "r1", vec![]),
        node("Shape", &["r1"], "s", vec![]),
        node("Gather", &["s", "idx0"], "n", vec![("axis", A::I(0))]),
        unsqueeze,
        node(
            "Concat",
            &["n1", "minus1"],
            "target",
            vec![("axis", A::I(0))],
        ),
        node("Reshape", &["r1", "target"], "flat", vec![]),
        node(
            "Gemm",
            &["flat", "fc_w", "fc_b"],
            "y",
            vec![("transB", A::I(1))],
        ),
    ];
    let graph = tract_onnx::pb::GraphProto {
        name: "shape_subgraph".into(),
        node: nodes,
        initializer: vec![
            floats("w1", &[6, 3, 3, 3], 1),
            floats("b1", &[6], 2),
            idx,
            int64s("axes0", &[0]),
            int64s("minus1", &[-1]),
            floats("fc_w", &[5, 6 * 5 * 5], 3),
            floats("fc_b", &[5], 4),
        ],
        input: vec![zoo::input("x", 3, 7, 7)],
        output: vec![zoo::output("y")],
        ..Default::default()
    };
    prost::Message::encode_to_vec(&zoo::model(graph, opset))
}

#[test]
fn shape_subgraph_folds_into_reshape() {
    let dir = tempfile::tempdir().expect("tempdir");
    for opset in [11, 13] {
        let path = dir.path().join(format!("shape{opset}.onnx"));
        std::fs::write(&path, shape_subgraph_model(opset)).expect("write model");
        let graph = onnx::load(&path).unwrap_or_else(|e| panic!("opset {opset}: {e}"));
        let counts = graph.op_counts();
        assert_eq!(counts.get("Reshape"), Some(&1), "opset {opset}: {counts:?}");
        assert_eq!(
            counts.len(),
            5,
            "only Input, Conv, Relu, Reshape, Dense remain: {counts:?}"
        );
        differential(&path, 3, 200 + opset as u64);
    }
}
