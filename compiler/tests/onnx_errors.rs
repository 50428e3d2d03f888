//! Bad ONNX inputs give clear errors, never panics: broken files, unsupported ops and attributes,
//! inconsistent convs, missing values and unsupported graph inputs, each named in the message.
//! Models are built here from tract-onnx's protobuf types and encoded with prost.

use std::path::Path;

use prost::Message;
use resnext_compiler::front::onnx::{self, OnnxError};
use resnext_compiler::ir;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

fn dim_value(v: i64) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(v)),
        ..Default::default()
    }
}

fn dim_param(p: &str) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam(p.into())),
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: Vec<Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn nchw(c: i64, h: i64, w: i64) -> Vec<Dimension> {
    vec![dim_param("batch"), dim_value(c), dim_value(h), dim_value(w)]
}

fn float_tensor(name: &str, dims: &[i64], f: impl Fn(usize) -> f32) -> pb::TensorProto {
    let len = dims.iter().product::<i64>() as usize;
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        raw_data: (0..len).flat_map(|i| f(i).to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The parameters of a one-conv model `x: [batch, c_in, hw, hw] -> Conv(+bias) -> Relu -> y`.
struct ConvModel {
    c_in: i64,
    c_out: i64,
    group: i64,
    kernel: i64,
    hw: i64,
    pads: i64,
    stride: i64,
    opset: i64,
}

impl Default for ConvModel {
    fn default() -> Self {
        ConvModel {
            c_in: 8,
            c_out: 16,
            group: 1,
            kernel: 3,
            hw: 10,
            pads: 1,
            stride: 1,
            opset: 17,
        }
    }
}

impl ConvModel {
    fn model(&self) -> pb::ModelProto {
        let w_in = (self.c_in / self.group).max(1);
        let conv = pb::NodeProto {
            attribute: vec![
                int_attr("group", self.group),
                ints_attr("kernel_shape", &[self.kernel, self.kernel]),
                ints_attr("pads", &[self.pads; 4]),
                ints_attr("strides", &[self.stride, self.stride]),
            ],
            ..node(
                "/layer1/conv/Conv",
                "Conv",
                &["x", "conv.weight", "conv.bias"],
                &["c"],
            )
        };
        let graph = pb::GraphProto {
            name: "test".into(),
            node: vec![conv, node("/layer1/relu/Relu", "Relu", &["c"], &["y"])],
            initializer: vec![
                float_tensor(
                    "conv.weight",
                    &[self.c_out, w_in, self.kernel, self.kernel],
                    |i| ((i % 7) as f32 - 3.0) / 8.0,
                ),
                float_tensor("conv.bias", &[self.c_out], |i| i as f32 / 16.0),
            ],
            input: vec![value_info("x", FLOAT, nchw(self.c_in, self.hw, self.hw))],
            output: vec![value_info("y", FLOAT, vec![])],
            ..Default::default()
        };
        model_of(graph, self.opset)
    }

    fn bytes(&self) -> Vec<u8> {
        self.model().encode_to_vec()
    }
}

fn model_of(graph: pb::GraphProto, opset: i64) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        producer_name: "onnx_errors test".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

fn import(bytes: &[u8]) -> Result<ir::Graph, OnnxError> {
    onnx::from_bytes(bytes, None)
}

fn error_of(bytes: &[u8]) -> String {
    match import(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            eprintln!("error: {e}");
            e.to_string()
        }
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(
            message.contains(p),
            "error {message:?} should mention {p:?}"
        );
    }
}

#[test]
fn the_generated_conv_model_imports_and_validates() {
    let graph = import(&ConvModel::default().bytes()).expect("valid model");
    ir::validate(&graph).expect("validates");
    let counts = graph.op_counts();
    assert_eq!(counts.get("Conv"), Some(&1));
    assert_eq!(counts.get("Relu"), Some(&1));
    assert_eq!(graph.batch_name, "batch");
    let out = &graph.node(graph.outputs[0].0).output;
    assert_eq!(out.shape, ir::Shape::nchw(16, 10, 10));
}

#[test]
fn truncated_file_is_a_decode_error() {
    let bytes = ConvModel::default().bytes();
    for cut in [bytes.len() / 2, bytes.len() - 3, 7] {
        let message = error_of(&bytes[..cut]);
        assert_mentions(&message, &["not an ONNX model"]);
    }
}

#[test]
fn truncated_testdata_model_is_a_decode_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/resnext_small_8x4d_bn.onnx");
    let bytes = std::fs::read(path).expect("testdata model");
    let message = error_of(&bytes[..bytes.len() * 2 / 3]);
    assert_mentions(&message, &["not an ONNX model: protobuf decode failed"]);
}

#[test]
fn empty_file_is_an_error() {
    assert_mentions(&error_of(&[]), &["not an ONNX model", "empty"]);
}

#[test]
fn random_bytes_are_an_error() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 16, 1000, 100_000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_mentions(&error_of(&bytes), &["not an ONNX model"]);
    }
}

#[test]
fn a_text_file_is_an_error() {
    let text = b"# resnext-rs\n\nThis is a README, not a model.\n";
    assert_mentions(&error_of(text), &["not an ONNX model"]);
    assert_mentions(&error_of(b"{\"nodes\": []}"), &["not an ONNX model"]);
}

#[test]
fn a_missing_file_names_the_path() {
    let err = onnx::load(Path::new("/nonexistent/model.onnx")).expect_err("no such file");
    assert_mentions(&err.to_string(), &["/nonexistent/model.onnx"]);
}

#[test]
fn unsupported_opsets_are_rejected() {
    for opset in [1, 6, 29, 100] {
        let bytes = ConvModel {
            opset,
            ..Default::default()
        }
        .bytes();
        assert_mentions(&error_of(&bytes), &["opset", &opset.to_string(), "7 to 28"]);
    }
    for opset in [7, 11, 18, 20, 28] {
        let bytes = ConvModel {
            opset,
            ..Default::default()
        }
        .bytes();
        import(&bytes).unwrap_or_else(|e| panic!("opset {opset} is supported: {e}"));
    }
}

#[test]
fn every_unsupported_op_is_listed_at_once() {
    let mut model = ConvModel::default().model();
    let graph = model.graph.as_mut().unwrap();
    graph.node[1] = node("/layer1/act/Gelu", "LSTM", &["c"], &["g"]);
    graph.node.push(node("", "TopK", &["g", "idx"], &["y"]));
    let message = error_of(&model.encode_to_vec());
    assert_mentions(
        &message,
        &[
            "unsupported ops (2)",
            "node `/layer1/act/Gelu` op LSTM (opset 17)",
            "node `TopK_2` op TopK (opset 17)",
        ],
    );
}

#[test]
fn custom_domain_ops_are_unsupported() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().node[1].domain = "com.microsoft".into();
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["unsupported ops (1)", "op com.microsoft.Relu"],
    );
}

#[test]
fn custom_domain_ops_name_their_domain_opset_and_the_reason() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().node[1].domain = "com.microsoft".into();
    model.opset_import.push(pb::OperatorSetIdProto {
        domain: "com.microsoft".into(),
        version: 1,
    });
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &[
            "node `/layer1/relu/Relu` op com.microsoft.Relu (opset 1)",
            "outside the default ONNX domain",
        ],
    );
}

#[test]
fn a_form_of_another_opset_names_node_op_and_versions() {
    // Clip's bounds are inputs from opset 11; at 10 they are attributes.
    let mut model = ConvModel {
        opset: 10,
        ..Default::default()
    }
    .model();
    let graph = model.graph.as_mut().unwrap();
    graph.node[1] = node("/layer1/act/Clip", "Clip", &["c", "lo"], &["y"]);
    graph.initializer.push(float_tensor("lo", &[], |_| 0.0));
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &[
            "Clip node `/layer1/act/Clip`",
            "`min` is an input from opset 11; this file declares opset 10",
        ],
    );
    // ...and at 11 an attribute is the old form.
    let mut model = ConvModel {
        opset: 11,
        ..Default::default()
    }
    .model();
    let graph = model.graph.as_mut().unwrap();
    graph.node[1] = pb::NodeProto {
        attribute: vec![pb::AttributeProto {
            name: "max".into(),
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            f: 6.0,
            ..Default::default()
        }],
        ..node("/layer1/act/Clip", "Clip", &["c"], &["y"])
    };
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &[
            "Clip node `/layer1/act/Clip`",
            "`max` is an attribute only before opset 11",
            "this file declares opset 11",
        ],
    );
}

#[test]
fn conv_group_must_divide_channels() {
    let bytes = ConvModel {
        c_in: 8,
        group: 3,
        ..Default::default()
    }
    .bytes();
    let message = error_of(&bytes);
    assert_mentions(&message, &["Conv node `/layer1/conv/Conv`", "group 3"]);
}

#[test]
fn conv_with_3d_kernel_is_rejected() {
    let mut model = ConvModel::default().model();
    let conv = &mut model.graph.as_mut().unwrap().node[0];
    conv.attribute[1] = ints_attr("kernel_shape", &[3, 3, 3]);
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["Conv node `/layer1/conv/Conv`", "kernel_shape", "2-D"],
    );
}

#[test]
fn unknown_attributes_are_rejected() {
    let mut model = ConvModel::default().model();
    let relu = &mut model.graph.as_mut().unwrap().node[1];
    relu.attribute.push(int_attr("alpha_mode", 1));
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["Relu node `/layer1/relu/Relu`", "`alpha_mode`"],
    );
}

#[test]
fn missing_initializer_names_node_and_value() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().initializer.remove(0);
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &[
            "Conv node `/layer1/conv/Conv`",
            "`conv.weight`",
            "not defined",
        ],
    );
}

#[test]
fn dangling_input_names_node_and_value() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().node[1].input[0] = "nowhere".into();
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["Relu node `/layer1/relu/Relu`", "`nowhere`"],
    );
}

#[test]
fn independent_problems_are_all_reported() {
    let mut model = ConvModel {
        group: 3,
        ..Default::default()
    }
    .model();
    let graph = model.graph.as_mut().unwrap();
    graph
        .node
        .push(node("/head/TopK", "TopK", &["y", "idx"], &["z"]));
    graph
        .node
        .push(node("/head/relu", "Relu", &["missing"], &["w"]));
    let err = import(&model.encode_to_vec()).expect_err("three problems");
    let message = err.to_string();
    assert!(err.problems().len() >= 3, "{message}");
    assert_mentions(
        &message,
        &["group 3", "op TopK", "Relu node `/head/relu`", "`missing`"],
    );
}

#[test]
fn non_4d_input_is_rejected() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().input[0] =
        value_info("x", FLOAT, vec![dim_param("batch"), dim_value(80)]);
    assert_mentions(&error_of(&model.encode_to_vec()), &["input `x`", "rank 2"]);
}

#[test]
fn non_float_input_is_rejected() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().input[0] = value_info(
        "x",
        pb::tensor_proto::DataType::Uint8 as i32,
        nchw(8, 10, 10),
    );
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["input `x`", "UINT8", "FLOAT"],
    );
}

#[test]
fn symbolic_spatial_dims_are_rejected() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().input[0] = value_info(
        "x",
        FLOAT,
        vec![
            dim_param("batch"),
            dim_value(8),
            dim_param("height"),
            dim_param("width"),
        ],
    );
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["input `x`", "`height`", "symbolic"],
    );
}

#[test]
fn fixed_batch_dimension_is_the_batch() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().input[0] = value_info(
        "x",
        FLOAT,
        vec![dim_value(1), dim_value(8), dim_value(10), dim_value(10)],
    );
    let graph = import(&model.encode_to_vec()).expect("batch-1 export");
    assert_eq!(
        graph.node(graph.inputs[0]).output.shape,
        ir::Shape::nchw(8, 10, 10)
    );
}

#[test]
fn non_float_weight_is_named() {
    let mut model = ConvModel::default().model();
    let w = &mut model.graph.as_mut().unwrap().initializer[0];
    w.data_type = pb::tensor_proto::DataType::Double as i32;
    w.raw_data = vec![0; w.raw_data.len() * 2];
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["Conv node `/layer1/conv/Conv`", "`conv.weight`", "DOUBLE"],
    );
}

#[test]
fn initializer_with_wrong_data_length_is_named() {
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().initializer[1]
        .raw_data
        .truncate(10);
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &["initializer `conv.bias`", "bytes"],
    );
}

#[test]
fn initializers_listed_as_inputs_are_weights() {
    let mut model = ConvModel::default().model();
    let graph = model.graph.as_mut().unwrap();
    graph.input.push(value_info(
        "conv.weight",
        FLOAT,
        vec![dim_value(16), dim_value(8), dim_value(3), dim_value(3)],
    ));
    let graph = import(&model.encode_to_vec()).expect("old-exporter style");
    assert_eq!(graph.inputs.len(), 1);
}

#[test]
fn auto_pad_same_upper_keeps_the_size() {
    let mut model = ConvModel {
        stride: 2,
        hw: 9,
        ..Default::default()
    }
    .model();
    let conv = &mut model.graph.as_mut().unwrap().node[0];
    conv.attribute.retain(|a| a.name != "pads");
    conv.attribute.push(pb::AttributeProto {
        name: "auto_pad".into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: b"SAME_UPPER".to_vec(),
        ..Default::default()
    });
    let graph = import(&model.encode_to_vec()).expect("auto_pad");
    // ceil(9 / 2) = 5.
    assert_eq!(
        graph.node(graph.outputs[0].0).output.shape,
        ir::Shape::nchw(16, 5, 5)
    );
}

#[test]
fn external_data_is_read_with_bounds_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ConvModel::default();
    let mut model = spec.model();
    let w = &mut model.graph.as_mut().unwrap().initializer[0];
    let payload = std::mem::take(&mut w.raw_data);
    let mut file = vec![0xAAu8; 64];
    file.extend_from_slice(&payload);
    std::fs::write(dir.path().join("weights.bin"), &file).unwrap();
    let entry = |k: &str, v: String| pb::StringStringEntryProto {
        key: k.into(),
        value: v,
    };
    w.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
    w.external_data = vec![
        entry("location", "weights.bin".into()),
        entry("offset", "64".into()),
        entry("length", payload.len().to_string()),
    ];
    let bytes = model.encode_to_vec();
    let graph = onnx::from_bytes(&bytes, Some(dir.path())).expect("external data");
    let reference = import(&spec.bytes()).expect("inline model");
    let weight = |g: &ir::Graph| {
        g.weights
            .iter()
            .find(|(_, w)| w.name == "conv.weight")
            .map(|(_, w)| w.data.clone())
            .unwrap()
    };
    assert_eq!(weight(&graph), weight(&reference));

    // Through `load`, the directory of the model file is the base.
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, &bytes).unwrap();
    onnx::load(&path).expect("load finds weights.bin beside the model");

    assert_mentions(&error_of(&bytes), &["`conv.weight`", "no base directory"]);

    let w = &mut model.graph.as_mut().unwrap().initializer[0];
    w.external_data[2] = entry("length", (payload.len() + 4).to_string());
    let message = onnx::from_bytes(&model.encode_to_vec(), Some(dir.path()))
        .expect_err("range past the end")
        .to_string();
    assert_mentions(&message, &["initializer `conv.weight`", "outside"]);

    let w = &mut model.graph.as_mut().unwrap().initializer[0];
    w.external_data[0] = entry("location", "../secret.bin".into());
    let message = onnx::from_bytes(&model.encode_to_vec(), Some(dir.path()))
        .expect_err("escaping path")
        .to_string();
    assert_mentions(&message, &["initializer `conv.weight`", "relative path"]);
}

#[test]
fn absurd_attribute_values_are_errors_not_overflows() {
    for (name, value) in [
        ("pads", vec![i64::MAX; 4]),
        ("strides", vec![i64::MAX, 1]),
        ("pads", vec![-1, 0, 0, 0]),
    ] {
        let mut model = ConvModel::default().model();
        let conv = &mut model.graph.as_mut().unwrap().node[0];
        conv.attribute.retain(|a| a.name != name);
        conv.attribute.push(ints_attr(name, &value));
        assert_mentions(
            &error_of(&model.encode_to_vec()),
            &["Conv node `/layer1/conv/Conv`", name],
        );
    }
    let mut model = ConvModel::default().model();
    model.graph.as_mut().unwrap().input[0] = value_info("x", FLOAT, nchw(8, 1 << 40, 1 << 40));
    assert_mentions(&error_of(&model.encode_to_vec()), &["input `x`", "large"]);
}

/// Every prefix and many single-byte corruptions of a valid model: each import returns (an error or,
/// for harmless corruptions, a graph) and never panics.
#[test]
fn corrupted_models_never_panic() {
    let bytes = ConvModel::default().bytes();
    for cut in 0..bytes.len() {
        let _ = import(&bytes[..cut]);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut corrupt = bytes.clone();
        let at = (state >> 33) as usize % corrupt.len();
        corrupt[at] = (state >> 16) as u8;
        if let Ok(graph) = import(&corrupt) {
            let _ = ir::validate(&graph);
        }
    }
}

/// Two nodes feeding each other (`a` reads `b`'s output and `b` reads `a`'s): an error naming a
/// node of the cycle, not a hang.
#[test]
fn a_cyclic_graph_is_an_error_naming_a_node() {
    let mut model = ConvModel::default().model();
    let graph = model.graph.as_mut().unwrap();
    graph.node.push(node("/cycle/a", "Relu", &["cb"], &["ca"]));
    graph.node.push(node("/cycle/b", "Relu", &["ca"], &["cb"]));
    graph.node.push(pb::NodeProto {
        ..node("/cycle/sum", "Add", &["y", "ca"], &["z"])
    });
    graph.output = vec![value_info("z", FLOAT, vec![])];
    let message = error_of(&model.encode_to_vec());
    assert!(
        message.contains("/cycle/a") || message.contains("/cycle/b"),
        "{message}"
    );
    assert!(message.contains("Relu node"), "{message}");
    assert!(message.contains("cycle"), "{message}");
}

/// A kernel larger than the padded input, for a conv and a pool: the node and op are named.
#[test]
fn a_kernel_larger_than_the_padded_input_is_named() {
    let conv = ConvModel {
        kernel: 5,
        hw: 2,
        pads: 1,
        ..ConvModel::default()
    };
    assert_mentions(
        &error_of(&conv.bytes()),
        &[
            "Conv node `/layer1/conv/Conv`",
            "larger than the padded input",
        ],
    );
    let mut model = ConvModel::default().model();
    let graph = model.graph.as_mut().unwrap();
    graph.node[1].output[0] = "r".into();
    graph.node.push(pb::NodeProto {
        attribute: vec![ints_attr("kernel_shape", &[13, 13])],
        ..node("/pool/MaxPool", "MaxPool", &["r"], &["y"])
    });
    assert_mentions(
        &error_of(&model.encode_to_vec()),
        &[
            "MaxPool node `/pool/MaxPool`",
            "larger than the padded input",
        ],
    );
}

/// Pool pads as large as the kernel put a whole window in the padding: rejected, node named.
#[test]
fn pool_pads_not_smaller_than_the_kernel_are_named() {
    for op in ["MaxPool", "AveragePool"] {
        let mut model = ConvModel::default().model();
        let graph = model.graph.as_mut().unwrap();
        graph.node[1].output[0] = "r".into();
        graph.node.push(pb::NodeProto {
            attribute: vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("pads", &[0, 2, 0, 0]),
            ],
            ..node("/pool/P", op, &["r"], &["y"])
        });
        assert_mentions(
            &error_of(&model.encode_to_vec()),
            &[&format!("{op} node `/pool/P`"), "smaller than the kernel"],
        );
    }
}

/// `x: [N, 4, 3, 3]`, `Transpose(perm_in)`, then `middle` (a node from `t` to `m`), then
/// `Transpose [0, 3, 1, 2]` to `y`.
fn channels_last_model(perm_in: &[i64], middle: pb::NodeProto) -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "test".into(),
        node: vec![
            pb::NodeProto {
                attribute: vec![ints_attr("perm", perm_in)],
                ..node("/block/Transpose", "Transpose", &["x"], &["t"])
            },
            middle,
            pb::NodeProto {
                attribute: vec![ints_attr("perm", &[0, 3, 1, 2])],
                ..node("/block/Transpose_1", "Transpose", &["m"], &["y"])
            },
        ],
        initializer: vec![
            float_tensor("ln.weight", &[4], |i| 1.0 + i as f32),
            float_tensor("ln.bias", &[4], |i| i as f32),
            float_tensor("fc.weight", &[4, 6], |i| i as f32 / 8.0),
        ],
        input: vec![value_info("x", FLOAT, nchw(4, 3, 3))],
        output: vec![value_info("y", FLOAT, vec![])],
        ..Default::default()
    };
    model_of(graph, 17).encode_to_vec()
}

#[test]
fn a_transpose_other_than_to_or_from_nhwc_names_the_supported_patterns() {
    let bytes = channels_last_model(&[0, 3, 2, 1], node("/block/Relu", "Relu", &["t"], &["m"]));
    assert_mentions(
        &error_of(&bytes),
        &[
            "/block/Transpose",
            "[0, 3, 2, 1]",
            "[0, 2, 3, 1]",
            "[0, 3, 1, 2]",
        ],
    );
}

#[test]
fn channels_last_layer_norm_and_matmul_import_as_nchw_ops() {
    let ln = pb::NodeProto {
        attribute: vec![int_attr("axis", -1)],
        ..node(
            "/block/LayerNormalization",
            "LayerNormalization",
            &["t", "ln.weight", "ln.bias"],
            &["n"],
        )
    };
    let graph = pb::GraphProto {
        name: "test".into(),
        node: vec![
            pb::NodeProto {
                attribute: vec![ints_attr("perm", &[0, 2, 3, 1])],
                ..node("/block/Transpose", "Transpose", &["x"], &["t"])
            },
            ln,
            node("/block/MatMul", "MatMul", &["n", "fc.weight"], &["m"]),
            pb::NodeProto {
                attribute: vec![ints_attr("perm", &[0, 3, 1, 2])],
                ..node("/block/Transpose_1", "Transpose", &["m"], &["y"])
            },
        ],
        initializer: vec![
            float_tensor("ln.weight", &[4], |i| 1.0 + i as f32),
            float_tensor("ln.bias", &[4], |i| i as f32),
            float_tensor("fc.weight", &[4, 6], |i| i as f32 / 8.0),
        ],
        input: vec![value_info("x", FLOAT, nchw(4, 3, 3))],
        output: vec![value_info("y", FLOAT, vec![])],
        ..Default::default()
    };
    let g = import(&model_of(graph, 17).encode_to_vec()).expect("imports");
    let counts = g.op_counts();
    assert_eq!(counts.get("LayerNormChannels"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("Conv"), Some(&1), "{counts:?}");
    let (y, _) = g.outputs[0];
    assert_eq!(g.node(y).output.shape.chw(), Some((6, 3, 3)));
}

#[test]
fn an_unsupported_op_on_an_nhwc_view_names_the_node_and_what_is_supported() {
    let bytes = channels_last_model(
        &[0, 2, 3, 1],
        pb::NodeProto {
            attribute: vec![int_attr("axis", 1)],
            ..node("/block/Softmax", "Softmax", &["t"], &["m"])
        },
    );
    assert_mentions(
        &error_of(&bytes),
        &["/block/Softmax", "NHWC", "LayerNormalization", "MatMul"],
    );
}

#[test]
fn layer_norm_over_another_axis_is_an_error() {
    let bytes = channels_last_model(
        &[0, 2, 3, 1],
        pb::NodeProto {
            attribute: vec![int_attr("axis", 1)],
            ..node(
                "/block/LayerNormalization",
                "LayerNormalization",
                &["t", "ln.weight", "ln.bias"],
                &["m"],
            )
        },
    );
    assert_mentions(
        &error_of(&bytes),
        &["/block/LayerNormalization", "axis 1", "last axis"],
    );
}
