//! `resnextc` on bad input: a truncated model, random bytes, an unsupported op and a Conv whose group
//! does not divide its channels each give a clear `error:` and a non-zero exit, never a panic; and
//! `inspect --format json` describes the small model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

fn small_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/resnext_small_8x4d_bn.onnx")
}

fn resnextc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnextc"))
        .args(args)
        .output()
        .expect("run resnextc")
}

/// Runs `resnextc compile` on `bytes` and checks a clean failure whose message mentions `parts`.
fn compile_fails(bytes: &[u8], parts: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("bad.onnx");
    std::fs::write(&model, bytes).expect("write model");
    let out_dir = dir.path().join("out");
    let out = resnextc(&[
        "compile",
        model.to_str().expect("utf-8 path"),
        "-o",
        out_dir.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for p in parts {
        assert!(stderr.contains(p), "stderr should mention {p:?}: {stderr}");
    }
    assert!(!out_dir.exists(), "nothing is written for a bad model");
}

fn dim(v: i64) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(v)),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64], kind: pb::attribute_proto::AttributeType) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: kind as i32,
        ints: v.to_vec(),
        i: v[0],
        ..Default::default()
    }
}

/// `x: [1, channels, 8, 8]` through `nodes` to `y`, opset 17.
fn model(channels: i64, nodes: Vec<pb::NodeProto>, initializer: Vec<pb::TensorProto>) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "cli".into(),
            node: nodes,
            initializer,
            input: vec![value_info("x", vec![dim(1), dim(channels), dim(8), dim(8)])],
            output: vec![value_info("y", vec![])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn truncated_model() {
    let bytes = std::fs::read(small_model()).expect("read the small model");
    compile_fails(&bytes[..bytes.len() / 3], &["ONNX"]);
}

#[test]
fn random_bytes() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    compile_fails(&bytes, &["ONNX"]);
}

#[test]
fn unsupported_op() {
    let bytes = model(
        4,
        vec![
            node("/act/Softplus", "Softplus", &["x"], "h"),
            node("/act/Softsign", "Softsign", &["h"], "y"),
        ],
        vec![],
    );
    compile_fails(&bytes, &["Softplus", "/act/Softplus", "Softsign"]);
}

#[test]
fn conv_group_does_not_divide_channels() {
    // 6 input channels, group 4: 6 is not a multiple of 4.
    let weight = pb::TensorProto {
        name: "w".into(),
        dims: vec![4, 1, 3, 3],
        data_type: FLOAT,
        raw_data: vec![0; 4 * 9 * 4],
        ..Default::default()
    };
    use pb::attribute_proto::AttributeType::{Int, Ints};
    let conv = pb::NodeProto {
        attribute: vec![
            ints("group", &[4], Int),
            ints("kernel_shape", &[3, 3], Ints),
        ],
        ..node("/bad/Conv", "Conv", &["x", "w"], "y")
    };
    compile_fails(&model(6, vec![conv], vec![weight]), &["/bad/Conv", "group"]);
}

#[test]
fn missing_model_is_an_io_error_and_bad_usage_is_2() {
    let out = resnextc(&["compile", "/nonexistent/model.onnx", "-o", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.onnx"));
    let out = resnextc(&["compile"]);
    assert_eq!(out.status.code(), Some(2));
    let out = resnextc(&["inspect", "x.onnx", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_json_lists_nodes_with_ops() {
    let model = small_model();
    for extra in [None, Some("--after-passes")] {
        let mut args = vec![
            "inspect",
            model.to_str().expect("utf-8"),
            "--format",
            "json",
        ];
        args.extend(extra);
        let out = resnextc(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        let nodes = doc["nodes"].as_array().expect("a nodes list");
        assert!(nodes.len() > 10);
        let ops: Vec<&str> = nodes
            .iter()
            .map(|n| n["op"].as_str().expect("every node has an op"))
            .collect();
        assert!(ops.contains(&"Conv") && ops.contains(&"Dense"), "{ops:?}");
        let params = doc["totals"]["params"].as_u64().expect("total params");
        assert!(params > 3_000_000, "{params}");
        if extra.is_some() {
            assert!(doc["totals"]["peak_activation_bytes"].as_u64().is_some());
            assert!(!ops.contains(&"BatchNormalization"), "BN is folded");
        } else {
            assert_eq!(
                ops.iter().filter(|&&o| o == "BatchNormalization").count(),
                17
            );
        }
    }
    for format in ["text", "dot"] {
        let out = resnextc(&[
            "inspect",
            model.to_str().expect("utf-8"),
            "--format",
            format,
        ]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/conv1/Conv"), "{text}");
    }
}

#[test]
fn precision_bf16_shows_in_inspect_and_int8_needs_calibration() {
    let model = small_model();
    let model = model.to_str().expect("utf-8");
    let out = resnextc(&["inspect", model, "--after-passes", "--precision", "bf16"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[pointwise-bf16]"), "{text}");
    assert!(
        text.contains("3x3 /1 group 8 pads [1, 1, 1, 1] +Relu [direct-bf16]"),
        "stride-1 grouped convs run bf16: {text}"
    );
    assert!(
        text.contains("3x3 /2 group 8 pads [1, 1, 1, 1] +Relu [grouped]"),
        "stride-2 grouped convs of 8 channels a group stay fp32: {text}"
    );
    assert!(text.contains(" [bf16]"), "the classifier runs bf16: {text}");
    let out = resnextc(&["inspect", model, "--after-passes"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bf16"));
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("out");
    let out_dir = out_dir.to_str().expect("utf-8");
    // An fp32 model at int8 needs calibration items.
    let out = resnextc(&["compile", model, "-o", out_dir, "--precision", "int8"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`int8` needs a quantized model") && err.contains("--calibrate"),
        "{err}"
    );
    assert!(!Path::new(out_dir).exists());
}
