//! Int8 models in onnxruntime's QOperator form (`QLinearConv`, `QGemm`, `QLinearAdd`,
//! `QLinearGlobalAveragePool`, MaxPool and Flatten on uint8 tensors), end to end: each
//! `testdata/qop/NAME.qop.onnx` (`testdata/make_qop_fixtures.py`: `quantize_static` with
//! `QuantFormat.QOperator`, the QDQ fixtures' settings and calibration) is compiled, run on
//! `testdata/families/NAME.input.npy` (or `testdata/qop/NAME.input.npy`) and compared with onnxruntime's output on that file
//! (`NAME.qop.ort.npy`), with the criterion of `int8.rs` (at most one output quantization step per
//! element, a NaN failing); and compiled beside its QDQ twin (same scales and zero points), which
//! it must match node for node after the passes, with bit-identical outputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use resnext_compiler::front::onnx;
use resnext_compiler::{driver, interp, ir};
use resnext_runtime_core::formats::npy;
use tract_onnx::pb;

/// The QDQ fixtures' models, MobileNetV2, and `ops_mini` (QLinearLeakyRelu, QLinearAveragePool,
/// QLinearSigmoid, QLinearMul, QLinearConcat, QLinearMatMul).
const MODELS: [&str; 5] = [
    "resnet_basic_mini",
    "resnet_bottleneck_mini",
    "resnext_mini",
    "mobilenet_v2_mini",
    "ops_mini",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

fn testdata(path: &str) -> PathBuf {
    workspace().join("testdata").join(path)
}

fn qop(model: &str) -> PathBuf {
    testdata(&format!("qop/{model}.qop.onnx"))
}

/// The QDQ form of the same quantized network: `testdata/qdq/` has the first three, and
/// `make_qop_fixtures.py` writes the others beside their QOperator files.
fn qdq_twin(model: &str) -> PathBuf {
    let shared = testdata(&format!("qdq/{model}.qdq.onnx"));
    if shared.exists() {
        shared
    } else {
        testdata(&format!("qop/{model}.qdq.onnx"))
    }
}

fn input_path(model: &str) -> PathBuf {
    let own = testdata(&format!("qop/{model}.input.npy"));
    if own.exists() {
        own
    } else {
        testdata(&format!("families/{model}.input.npy"))
    }
}

fn input(model: &str) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(input_path(model)).expect("read the input")
}

fn load(path: &Path) -> ir::Graph {
    driver::load(path, &driver::Options::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compile(graph: ir::Graph) -> driver::Compiled {
    driver::compile(graph, &driver::Options::default()).expect("compile")
}

fn run(graph: &ir::Graph, x: &[f32], batch: usize) -> Vec<f32> {
    let info = ir::validate(graph).unwrap_or_else(|e| panic!("{e:?}"));
    let mut out = interp::run(graph, &info, &[x], batch).expect("interpreter");
    out.swap_remove(0)
}

/// Asserts `got` is within one output step of onnxruntime's output for `model`, NaN failing.
fn compare(model: &str, what: &str, got: &[f32], step: f32) {
    let (_, want) =
        npy::read_f32(testdata(&format!("qop/{model}.qop.ort.npy"))).expect("read the oracle");
    common::quant::assert_within_one_step("qop", model, what, got, &want, step);
}

/// The reference interpreter on the imported graph and on the optimised one (packed weights, the
/// runtime's int8 kernels, u8 codes between convs).
#[test]
fn qoperator_models_match_onnxruntime() {
    for model in MODELS {
        let (shape, x) = input(model);
        let graph = load(&qop(model));
        let compiled = compile(graph.clone());
        let step = common::quant::output_step(&compiled.graph);
        for (what, g) in [("imported", &graph), ("optimised", &compiled.graph)] {
            compare(model, what, &run(g, &x, shape[0]), step);
        }
        let counts = compiled.graph.op_counts();
        assert!(
            counts.get("QConv").is_some_and(|&n| n > 0) && !counts.contains_key("Conv"),
            "{model}: every conv should be int8: {counts:?}"
        );
        assert!(
            !counts.contains_key("Dense"),
            "{model}: the QGemm should be int8: {counts:?}"
        );
    }
}

/// One node of a graph with its inputs as positions in the topological order, so two graphs that
/// differ only in node names and ids describe alike.
fn describe(graph: &ir::Graph) -> Vec<String> {
    let order = graph.topo_order().expect("acyclic");
    let position = |id| order.iter().position(|&o| o == id).expect("in order");
    order
        .iter()
        .map(|&id| {
            let node = graph.node(id);
            let inputs: Vec<usize> = graph.inputs_of(id).into_iter().map(position).collect();
            format!("{:?} {inputs:?} -> {:?}", node.op, node.output)
        })
        .collect()
}

/// The QOperator file and its QDQ twin compile to the same graph (ops, parameters, weights) and
/// give bit-identical outputs. (`ops_mini` has no twin: onnxruntime quantizes its AveragePool
/// differently in the two forms.)
#[test]
fn qoperator_and_qdq_twin_compile_alike() {
    for model in &MODELS[..4] {
        let (shape, x) = input(model);
        let ours = compile(load(&qop(model)));
        let twin = compile(load(&qdq_twin(model)));
        assert_eq!(
            describe(&ours.graph),
            describe(&twin.graph),
            "{model}: the optimised graphs differ"
        );
        let weights = |g: &ir::Graph| -> Vec<(Vec<usize>, Vec<u32>)> {
            g.weights
                .iter()
                .map(|(id, w)| {
                    let bits = g.weights.data(id).iter().map(|v| v.to_bits()).collect();
                    (w.dims.clone(), bits)
                })
                .collect()
        };
        assert!(
            weights(&ours.graph) == weights(&twin.graph),
            "{model}: the weights differ"
        );
        let a = run(&ours.graph, &x, shape[0]);
        let b = run(&twin.graph, &x, shape[0]);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{model}: outputs are not bit-identical"
        );
    }
}

/// `resnextc compile MODEL.qop.onnx --precision int8 --check INPUTS.npy`: compiles and reports the
/// compiled graph against the imported one.
#[test]
fn resnextc_compiles_a_qoperator_model() {
    let model = "resnext_mini";
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_resnextc"))
        .arg("compile")
        .arg(qop(model))
        .arg("-o")
        .arg(dir.path().join("crate"))
        .args(["--precision", "int8", "--check"])
        .arg(input_path(model))
        .output()
        .expect("run resnextc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resnextc failed:\n{stdout}\n{stderr}");
    let written = std::fs::read_dir(dir.path().join("crate"))
        .expect("the crate directory")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    assert!(
        written.iter().any(|f| f.ends_with(".weights")) && written.contains(&"src".to_string()),
        "resnextc wrote {written:?}"
    );
}

/// A QOperator fixture with one edit, imported: the error message.
fn import_edited(edit: impl FnOnce(&mut pb::GraphProto)) -> String {
    let bytes = std::fs::read(qop("resnet_basic_mini")).expect("read the fixture");
    let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("decode the fixture");
    edit(model.graph.as_mut().expect("a graph"));
    match onnx::from_bytes(&model.encode_to_vec(), None) {
        Ok(_) => panic!("the edited model should be refused"),
        Err(e) => e.to_string(),
    }
}

fn node<'a>(g: &'a mut pb::GraphProto, name: &str) -> &'a mut pb::NodeProto {
    g.node
        .iter_mut()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for want in parts {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

/// A QOperator op we do not import is listed with its node and domain.
#[test]
fn unsupported_qoperator_op_names_the_node() {
    let err = import_edited(|g| {
        node(g, "/avgpool/GlobalAveragePool_quant").op_type = "QLinearReduceMean".into();
    });
    assert_mentions(
        &err,
        &[
            "/avgpool/GlobalAveragePool_quant",
            "com.microsoft.QLinearReduceMean",
        ],
    );
}

/// Malformed or unsupported forms of the QOperator ops are errors naming the node, never panics.
#[test]
fn malformed_qoperator_nodes_are_clear_errors() {
    // A QLinearConv missing its output zero point and bias (7 inputs).
    let err = import_edited(|g| node(g, "/conv1/Conv_quant").input.truncate(7));
    assert_mentions(
        &err,
        &["/conv1/Conv_quant", "QLinearConv", "has 7 inputs", "8 or 9"],
    );
    // A QLinearAdd with only six inputs.
    let err = import_edited(|g| node(g, "/layer1/layer1.0/Add_quant").input.truncate(6));
    assert_mentions(
        &err,
        &["/layer1/layer1.0/Add_quant", "QLinearAdd", "has 6 inputs"],
    );
    // onnxruntime's NHWC pooling.
    let err = import_edited(|g| {
        node(g, "/avgpool/GlobalAveragePool_quant").attribute[0].i = 1;
    });
    assert_mentions(
        &err,
        &["/avgpool/GlobalAveragePool_quant", "channels_last = 1"],
    );
    // Codes read under another quantization than they were made with: ONNX would reinterpret
    // them (an affine map of the value), which is refused.
    let err = import_edited(|g| {
        node(g, "/layer1/layer1.0/conv1/Conv_quant").input[1] = "input_scale".into();
    });
    assert_mentions(
        &err,
        &[
            "/layer1/layer1.0/conv1/Conv_quant",
            "reading codes under another quantization",
        ],
    );
    // A float op reading uint8 codes.
    let err = import_edited(|g| {
        let flatten = node(g, "/Flatten");
        flatten.op_type = "Relu".into();
        flatten.attribute.clear();
    });
    assert_mentions(&err, &["/Flatten", "Relu", "8-bit tensor"]);
    // A uint8 weight (onnxruntime's U8U8 form).
    let err = import_edited(|g| {
        let w = g
            .initializer
            .iter_mut()
            .find(|t| t.name == "onnx::Conv_136_quantized")
            .expect("the stem's weight");
        w.data_type = pb::tensor_proto::DataType::Uint8 as i32;
    });
    assert_mentions(&err, &["/conv1/Conv_quant", "only INT8 weights"]);
    // The graph's output left as uint8 codes.
    let err = import_edited(|g| {
        g.node.retain(|n| n.op_type != "DequantizeLinear");
        g.output[0].name = "logits_quantized".into();
    });
    assert_mentions(
        &err,
        &["logits_quantized", "8-bit tensor", "DequantizeLinear"],
    );
}
