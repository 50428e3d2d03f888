//! Int8 models in the ONNX QDQ form, end to end: each `testdata/qdq/NAME.qdq.onnx` (onnxruntime's
//! `quantize_static` of a family fixture, `testdata/make_qdq_fixtures.py`) is compiled, run on
//! `testdata/families/NAME.input.npy` and compared with onnxruntime's output on the same file
//! (`NAME.ort.npy`), through the reference interpreter on the imported graph, on the graph stopped
//! after `fuse-requant` (fused epilogues and residual steps on unpacked weights) and on the
//! optimised one, and through one emitted crate holding every model.
//!
//! Criterion: at most one quantization step of the output per element. The logits are themselves
//! `DequantizeLinear(QuantizeLinear(·))` values, so both results lie on the output's grid, and the
//! integer convs are exact; what may differ is rounding of the ops onnxruntime runs in integers and
//! we in fp32 between quantization points (its QLinearGlobalAveragePool; the residual Adds of the
//! optimised graph round as its QLinearAdd, `SumArith::OnnxRuntime`, but the imported graph's
//! unfused Adds as ONNX defines them), where a tie can round the other way, which moves a logit by
//! one step. Measured: 0 steps for every fixture. A wrong zero point, scale,
//! padding or weight layout moves logits by many steps (the int8 results differ from the fp32
//! model's by up to ~0.5, ~20 steps: `manifest.json`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use resnext_compiler::back::rust as back_rust;
use resnext_compiler::front::onnx;
use resnext_compiler::{driver, interp, ir};
use resnext_runtime_core::formats::npy;
use tract_onnx::pb;

const MODELS: [&str; 3] = [
    "resnet_basic_mini",
    "resnet_bottleneck_mini",
    "resnext_mini",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

fn qdq(file: &str) -> PathBuf {
    workspace().join("testdata/qdq").join(file)
}

fn input(model: &str) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(workspace().join(format!("testdata/families/{model}.input.npy")))
        .expect("read the input")
}

/// Asserts `got` is within one output step of onnxruntime's output for `model`, NaN failing.
fn compare(model: &str, what: &str, got: &[f32], step: f32) {
    let (_, want) = npy::read_f32(qdq(&format!("{model}.ort.npy"))).expect("read the oracle");
    common::quant::assert_within_one_step("int8", model, what, got, &want, step);
}

fn load(model: &str) -> ir::Graph {
    let options = driver::Options::default();
    driver::load(&qdq(&format!("{model}.qdq.onnx")), &options)
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

/// The reference interpreter on the imported graph (the reference int8 conv) and on the optimised
/// one (fused requantization, packed weights, the runtime's kernels).
#[test]
fn interpreter_matches_onnxruntime() {
    for model in MODELS {
        let (shape, x) = input(model);
        let graph = load(model);
        let compiled = driver::compile(graph.clone(), &driver::Options::default())
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let step = common::quant::output_step(&compiled.graph);
        // Stopped after `fuse-requant`: the fused epilogues (requantization, residual steps) on
        // unpacked weights, which the interpreter runs on the reference kernel.
        let fused = driver::compile(
            graph.clone(),
            &driver::Options {
                passes: Some(resnext_compiler::passes::PassOptions {
                    stop_after: Some("fuse-requant".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        for (what, g) in [
            ("imported", &graph),
            ("fused, unpacked", &fused.graph),
            ("optimised", &compiled.graph),
        ] {
            let info = ir::validate(g).unwrap_or_else(|e| panic!("{model}: {e:?}"));
            let out = interp::run(g, &info, &[&x], shape[0]).expect("interpreter");
            compare(model, what, &out[0], step);
        }
        let counts = compiled.graph.op_counts();
        assert!(
            counts.get("QConv").is_some_and(|&n| n > 0) && !counts.contains_key("Conv"),
            "{model}: every conv should be int8: {counts:?}"
        );
        // Every residual Add (and its QuantizeDequantize) is in a conv's epilogue.
        assert!(
            !counts.contains_key("Add"),
            "{model}: a residual Add was not fused: {counts:?}"
        );
        // Every residual step sums as onnxruntime's QLinearAdd does (both operands are on known
        // grids in these QDQ models), with the conv's place in the Add as in the model.
        for id in compiled.graph.nodes.node_indices() {
            if let ir::Op::QConv(q) = &compiled.graph.node(id).op
                && q.residual.is_some()
            {
                let ir::quant::SumArith::OnnxRuntime { conv, .. } = q.residual_arith else {
                    panic!("{model}: a residual step with ONNX's arithmetic");
                };
                assert!(
                    matches!(q.output, ir::quant::QConvOutput::Requant(f) if f.quant == conv),
                    "{model}: the residual step's conv quantization is not the conv's"
                );
                assert!(q.summary().contains("+residual(ort)"));
            }
        }
        // Int8 convs hand their requantized outputs to the next ones as u8 codes (so the
        // optimised run above went through the codes path), and every reader of codes takes them.
        let nodes: Vec<_> = compiled.graph.nodes.node_indices().collect();
        let coded: Vec<_> = nodes
            .iter()
            .filter(
                |&&id| matches!(&compiled.graph.node(id).op, ir::Op::QConv(q) if q.codes.output),
            )
            .collect();
        assert!(!coded.is_empty(), "{model}: no int8 conv writes u8 codes");
        for &&id in &coded {
            // `resnextc inspect` and the printed graph say so.
            if let ir::Op::QConv(q) = &compiled.graph.node(id).op {
                assert!(q.summary().contains(" codes ") && q.summary().contains("out"));
            }
            for (reader, slot) in compiled.graph.consumers(id) {
                assert!(
                    matches!(&compiled.graph.node(reader).op,
                        ir::Op::QConv(q) if (slot == 0 && q.codes.input)
                            || (slot == 1 && q.codes.residual.is_some())),
                    "{model}: a reader of u8 codes does not take codes"
                );
            }
        }
    }
}

/// Every model compiled into one crate with the emitted code (`back::rust`), built once, run per model.
#[test]
fn emitted_crate_matches_onnxruntime() {
    let crate_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("int8_models");
    std::fs::create_dir_all(crate_dir.join("src")).expect("create the crate");
    let mut main = String::from("#![allow(clippy::all, dead_code, unused_mut)]\n");
    let mut arms = String::new();
    let mut steps = Vec::new();
    // Every model optimised, and the first also without the passes (`--no-opt`: the reference
    // int8 kernel on unpacked weights), as module `MODEL_noopt`.
    let builds = MODELS.iter().map(|&m| (m, m.to_string(), true)).chain([(
        MODELS[0],
        format!("{}_noopt", MODELS[0]),
        false,
    )]);
    let mut runs = Vec::new();
    for (source, model, optimise) in builds {
        let model = model.as_str();
        let options = driver::Options {
            passes: if optimise {
                driver::Options::default().passes
            } else {
                None
            },
            ..driver::Options::default()
        };
        let optimised = driver::compile(load(source), &driver::Options::default())
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        steps.push(common::quant::output_step(&optimised.graph));
        runs.push((source, model.to_string()));
        let compiled =
            driver::compile(load(source), &options).unwrap_or_else(|e| panic!("{model}: {e}"));
        let emitted = compiled
            .emit(&back_rust::Options {
                name: model.into(),
                source: Some(format!("testdata/qdq/{model}.qdq.onnx")),
                ..back_rust::Options::default()
            })
            .expect("emit");
        std::fs::write(crate_dir.join(format!("src/{model}.rs")), &emitted.items_rs)
            .expect("write the module");
        emitted
            .write_weights(&crate_dir.join(&emitted.weights_file))
            .expect("write the weights");
        main.push_str(&format!("mod {model};\n"));
        arms.push_str(&format!(
            "        {model:?} => {{ let m = {model}::Model::load({model}::WEIGHTS_PATH).unwrap(); \
             m.forward(&data, batch).unwrap() }}\n"
        ));
    }
    main.push_str(&format!(
        r#"
fn main() {{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (_, data) = ::resnext_runtime::formats::npy::read_f32(&args[1]).unwrap();
    let batch: usize = args[3].parse().unwrap();
    let out = match args[0].as_str() {{
{arms}        other => panic!("no model {{other}}"),
    }};
    ::resnext_runtime::formats::npy::write_f32(&args[2], &[out.len()], &out).unwrap();
}}
"#
    ));
    std::fs::write(crate_dir.join("src/main.rs"), main).expect("write main.rs");
    let runtime = workspace().join("runtime");
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"int8_models\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\nresnext-runtime = {{ path = {:?} }}\n\n\
             [profile.release]\nopt-level = 3\ncodegen-units = 1\nlto = \"thin\"\ndebug = false\n\n\
             [profile.release.package.int8_models]\nopt-level = 0\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )
    .expect("write Cargo.toml");
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock"))
        .expect("copy Cargo.lock");
    let target = workspace().join("target/emitted");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("start cargo");
    assert!(
        out.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = target.join("release/int8_models");
    let tmp = tempfile::tempdir().expect("temp dir");
    for ((source, model), step) in runs.iter().zip(steps) {
        let (shape, _) = input(source);
        let output = tmp.path().join(format!("{model}.npy"));
        let input = workspace().join(format!("testdata/families/{source}.input.npy"));
        let run = Command::new(&binary)
            .arg(model)
            .arg(&input)
            .arg(&output)
            .arg(shape[0].to_string())
            .output()
            .expect("run the model");
        assert!(
            run.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (_, got) = npy::read_f32(&output).expect("read our output");
        compare(source, &format!("emitted {model}"), &got, step);
    }
}

/// A QDQ fixture with one edit, imported: the error message, which must name the node at fault.
fn import_edited(edit: impl FnOnce(&mut pb::GraphProto)) -> String {
    let bytes = std::fs::read(qdq("resnet_basic_mini.qdq.onnx")).expect("read the fixture");
    let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("decode the fixture");
    edit(model.graph.as_mut().expect("a graph"));
    match onnx::from_bytes(&model.encode_to_vec(), None) {
        Ok(_) => panic!("the edited model should be refused"),
        Err(e) => e.to_string(),
    }
}

fn initializer<'a>(g: &'a mut pb::GraphProto, name: &str) -> &'a mut pb::TensorProto {
    g.initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no initializer {name}"))
}

/// Unsupported QDQ forms are errors naming the node and the supported form.
#[test]
fn unsupported_qdq_forms_are_clear_errors() {
    // Asymmetric weights (a non-zero weight zero point).
    let err = import_edited(|g| {
        initializer(g, "onnx::Conv_136_zero_point").int32_data[0] = 3;
    });
    for want in ["/conv1/Conv", "non-zero zero point", "symmetric"] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
    // An activation dequantized with another scale than it was quantized with.
    let err = import_edited(|g| {
        let dq = g
            .node
            .iter_mut()
            .find(|n| {
                n.op_type == "DequantizeLinear" && n.input[0] == "input_QuantizeLinear_Output"
            })
            .expect("the input's DequantizeLinear");
        dq.input[1] = "/relu/Relu_output_0_scale".into();
    });
    for want in ["DequantizeLinear", "only the QDQ pair of one quantization"] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
    // A float bias on an int8 conv.
    let err = import_edited(|g| {
        let conv = g
            .node
            .iter_mut()
            .find(|n| n.op_type == "Conv")
            .expect("a conv");
        conv.input[2] = "input_scale".into();
    });
    for want in ["/conv1/Conv", "float constant", "INT32"] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}
