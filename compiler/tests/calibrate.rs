//! Int8 by our own calibration (`passes::calibrate`, `resnextc compile --precision int8
//! --calibrate`), against the fp32 model on the reference interpreter:
//!
//! - one conv (grouped, strided, padded, with bias) and one dense layer, each alone, within the
//!   error bound derived from the quantization grids (below), element by element;
//! - the ResNet/ResNeXt family fixtures, within twice onnxruntime's own int8 error on the same
//!   fixture (`testdata/qdq/manifest.json`), with every conv and dense layer on packed int8 kernels;
//! - `resnextc compile --check` output at fp32, bf16 and int8, and the error cases.
//!
//! The single-layer bound: calibrating on the very items checked, no activation is clipped, so
//! each input is off by at most half its step, `|x̂ − x| ≤ s_x / 2` (0 and the zero padding exactly),
//! each weight by `|ŵ − w| ≤ s_w[c] / 2`, the bias by `s_x · s_w[c] / 2`, and the integer sums are
//! exact; so an output of channel `c` with taps `k` is off by at most
//! `Σ_k (|w_k| · s_x / 2 + |x_k| · s_w[c] / 2 + s_x · s_w[c] / 4) + s_x · s_w[c] / 2`, plus f32
//! rounding of the epilogue (1e-5 relative). A wrong zero point moves outputs by `Σ |w| · s_x`, a
//! wrong scale or weight layout by far more: both fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use resnext_compiler::ir::quant::QConv;
use resnext_compiler::ir::{
    self, Conv, ConvKernel, Dense, DenseKernel, Epilogue, Graph, NodeId, Op, Shape, TensorType,
};
use resnext_compiler::passes::{Calibration, CalibrationMethod, PassOptions, Precision, Samples};
use resnext_compiler::{driver, interp};
use resnext_runtime_core::formats::npy;
use resnext_runtime_core::kernels::{ConvShape, Epilogue as KEpilogue, reference};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

/// A deterministic generator (xorshift), uniform in `[-1, 1)` and standard normal (Box–Muller).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn normal(&mut self) -> f32 {
        let u = (self.uniform() + 1.0) / 2.0 + 1e-7;
        let v = self.uniform() * std::f32::consts::PI;
        (-2.0 * u.ln()).sqrt() * v.cos()
    }

    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (self.uniform() + 1.0) / 2.0 * (hi - lo))
            .collect()
    }
}

fn int8_options(samples: Samples, method: CalibrationMethod) -> driver::Options {
    driver::Options {
        passes: Some(PassOptions {
            precision: Precision::Int8,
            calibration: Some(Calibration {
                samples: Arc::new(samples),
                method,
            }),
            ..PassOptions::default()
        }),
        ..driver::Options::default()
    }
}

fn run(graph: &Graph, x: &[f32], batch: usize) -> Vec<f32> {
    let info = ir::validate(graph).expect("valid graph");
    interp::run(graph, &info, &[x], batch)
        .expect("interpreter")
        .remove(0)
}

/// The packed int8 layers of a compiled graph.
fn packed_qconvs(graph: &Graph) -> Vec<&QConv> {
    graph
        .nodes
        .node_weights()
        .filter_map(|n| match &n.op {
            Op::QConv(q) => Some(q),
            _ => None,
        })
        .inspect(|q| assert!(q.packed, "an int8 layer was not packed"))
        .collect()
}

/// Checks the calibrated int8 `graph` (one conv or dense layer reading the input) against fp32
/// on `x` with the bound of the module docs; `shape` is the layer's as a conv.
fn check_single_layer(graph: &Graph, shape: ConvShape, batch: usize, x: &[f32]) {
    let (w, b) = match &graph.node(graph.outputs[0].0).op {
        Op::Conv(c) => (c.weight, c.bias),
        Op::Dense(d) => (d.weight, d.bias),
        op => panic!("unexpected {}", op.name()),
    };
    let (w, b) = (
        graph.weights.data(w).to_vec(),
        b.map(|b| graph.weights.data(b).to_vec()),
    );
    let want = run(graph, x, batch);
    let samples = Samples::new(
        std::iter::once(batch)
            .chain(graph.node(graph.inputs[0]).output.shape.per_item().unwrap())
            .collect(),
        x.to_vec(),
    )
    .expect("samples");
    let compiled = driver::compile(
        graph.clone(),
        &int8_options(samples, CalibrationMethod::MinMax),
    )
    .expect("compile at int8");
    let q = packed_qconvs(&compiled.graph);
    assert_eq!(q.len(), 1, "{:?}", compiled.graph.op_counts());
    let q = q[0];
    // The documented grids: u8 activations over the items' range widened to 0, symmetric int8
    // weights per output channel.
    let (lo, hi) = x
        .iter()
        .fold((0.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
    let s_x = q.input.scale;
    assert!(
        (s_x - (hi - lo) / 255.0).abs() <= 1e-6 * s_x,
        "input scale {s_x}"
    );
    assert_eq!(q.input.zero_point, (-lo / s_x).round() as i32);
    let k = w.len() / shape.out_c;
    for (c, &s_w) in q.weight_scale.iter().enumerate() {
        let max = w[c * k..][..k].iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        assert!(
            (s_w - max / 127.0).abs() <= 1e-6 * s_w,
            "channel {c}: {s_w}"
        );
    }
    let got = run(&compiled.graph, x, batch);
    // Σ|w|·|x| and Σ|x| per output, by the reference conv.
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let none = KEpilogue {
        bias: None,
        residual: None,
        activation: Default::default(),
    };
    let mut wx = vec![0.0; want.len()];
    reference::conv2d(&shape, batch, &abs(x), &abs(&w), &none, &mut wx).expect("conv");
    let mut sx = vec![0.0; want.len()];
    reference::conv2d(&shape, batch, &abs(x), &vec![1.0; w.len()], &none, &mut sx).expect("conv");
    let plane = shape.out_h * shape.out_w;
    let mut worst = 0.0f32;
    for i in 0..want.len() {
        let c = i / plane % shape.out_c;
        let s_w = q.weight_scale[c];
        let bias = b.as_ref().map_or(0.0, |b| b[c].abs());
        let bound = wx[i] * s_x / 2.0
            + sx[i] * s_w / 2.0
            + k as f32 * s_x * s_w / 4.0
            + s_x * s_w / 2.0
            + 1e-5 * (wx[i] + bias);
        let err = (got[i] - want[i]).abs();
        assert!(
            err <= bound,
            "output {i} (channel {c}): int8 {} vs fp32 {}, error {err:e} over the bound {bound:e}",
            got[i],
            want[i]
        );
        worst = worst.max(err / bound);
    }
    eprintln!("[calibrate] single layer {shape:?}: worst error {worst:.3} of its bound");
}

#[test]
fn calibrated_conv_is_within_the_derived_bound() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (batch, cin, cout, hw, group) = (3, 8, 12, 9, 2);
    let mut g = Graph::new();
    let x_id = g.add_input("x", TensorType::f32(Shape::nchw(cin, hw, hw)));
    let w = rng.vec(cout * cin / group * 9, -0.5, 0.5);
    let weight = g.weights.add("w", vec![cout, cin / group, 3, 3], w);
    let bias = g.weights.add("b", vec![cout], rng.vec(cout, -1.0, 1.0));
    let conv = Conv {
        weight,
        bias: Some(bias),
        in_channels: cin,
        out_channels: cout,
        group,
        kernel: [3, 3],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [1, 1, 1, 1],
        epilogue: Epilogue::default(),
        kernel_choice: ConvKernel::Reference,
    };
    let y = g.add_node("conv", Op::Conv(conv), &[x_id]).expect("conv");
    g.outputs.push((y, "y".into()));
    let out = g.node(y).output.shape.chw().unwrap();
    let shape = ConvShape {
        in_c: cin,
        in_h: hw,
        in_w: hw,
        out_c: cout,
        out_h: out.1,
        out_w: out.2,
        kernel: [3, 3],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [1, 1, 1, 1],
        group,
    };
    let x = rng.vec(batch * cin * hw * hw, -2.0, 3.0);
    check_single_layer(&g, shape, batch, &x);
}

#[test]
fn calibrated_dense_is_within_the_derived_bound() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (batch, k, m) = (4, 40, 10);
    let mut g = Graph::new();
    let x_id = g.add_input("x", TensorType::f32(Shape::nc(k)));
    let weight = g.weights.add("w", vec![m, k], rng.vec(m * k, -0.3, 0.3));
    let bias = g.weights.add("b", vec![m], rng.vec(m, -1.0, 1.0));
    let dense = Dense {
        weight,
        bias: Some(bias),
        in_features: k,
        out_features: m,
        epilogue: Epilogue::default(),
        kernel: DenseKernel::Reference,
    };
    let y = g.add_node("fc", Op::Dense(dense), &[x_id]).expect("dense");
    g.outputs.push((y, "y".into()));
    // The dense layer as the int8 kernels see it: a 1×1 conv on a 1×1 map.
    let shape = ConvShape::square(k, 1, m, 1, 1, 0, 1);
    // Non-negative inputs, as after a ReLU: zero point 0.
    let x = rng.vec(batch * k, 0.0, 4.0);
    check_single_layer(&g, shape, batch, &x);
}

const MODELS: [&str; 3] = [
    "resnet_basic_mini",
    "resnet_bottleneck_mini",
    "resnext_mini",
];

/// onnxruntime's int8-vs-fp32 max abs logit difference for `model` (its `quantize_static` of the
/// same fixture, MinMax on 4 random batches: `testdata/make_qdq_fixtures.py`).
fn onnxruntime_error(model: &str) -> f32 {
    let text = std::fs::read_to_string(workspace().join("testdata/qdq/manifest.json"))
        .expect("read the manifest");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("parse the manifest");
    doc["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["model"] == model)
        .and_then(|m| m["int8_vs_fp32_max_abs_diff"].as_f64())
        .unwrap_or_else(|| panic!("{model} is not in the manifest")) as f32
}

/// Calibration items as the QDQ fixtures' calibration: standard normal, clamped to [-4, 4].
fn random_items(rng: &mut Rng, item: &[usize], n: usize) -> Samples {
    let len = n * item.iter().product::<usize>();
    let data = (0..len).map(|_| rng.normal().clamp(-4.0, 4.0)).collect();
    Samples::new(
        std::iter::once(n).chain(item.iter().copied()).collect(),
        data,
    )
    .expect("items")
}

/// The family fixtures calibrated (min-max and percentile): every conv and dense layer on packed
/// int8 kernels, and logits on the fixture's input within twice onnxruntime's own int8 error
/// (another calibration set of the same distribution and another weight grid move the error by
/// tens of percent; a wrong scale, zero point or layout by multiples). These fixtures have random
/// weights and logits a few tenths apart, so a top-1 flip is expected now and then; the check
/// asks for agreement on most of 16 noisy copies of the input.
#[test]
fn calibrated_family_models_stay_near_fp32() {
    let mut rng = Rng(7);
    for model in MODELS {
        let path = workspace().join(format!("testdata/families/{model}.ts17.onnx"));
        let graph = driver::load(&path, &driver::Options::default()).expect("load");
        let layers = graph
            .nodes
            .node_weights()
            .filter(|n| matches!(n.op, Op::Conv(_) | Op::Dense(_)))
            .count();
        let (shape, x) =
            npy::read_f32(workspace().join(format!("testdata/families/{model}.input.npy")))
                .expect("input");
        let want = run(&graph, &x, shape[0]);
        // 16 noisy copies of the input for top-1 agreement.
        let copies: Vec<f32> = (0..8)
            .flat_map(|_| {
                x.iter()
                    .map(|&v| v + 0.5 * rng.normal())
                    .collect::<Vec<_>>()
            })
            .collect();
        let want_copies = run(&graph, &copies, 8 * shape[0]);
        let samples = random_items(&mut rng, &shape[1..], 8);
        for method in [
            CalibrationMethod::MinMax,
            CalibrationMethod::Percentile(99.99),
        ] {
            let compiled = driver::compile(graph.clone(), &int8_options(samples.clone(), method))
                .unwrap_or_else(|e| panic!("{model}: {e}"));
            let counts = compiled.graph.op_counts();
            assert_eq!(
                packed_qconvs(&compiled.graph).len(),
                layers,
                "{model}: every conv and dense layer should be int8: {counts:?}"
            );
            assert!(
                !counts.contains_key("Conv") && !counts.contains_key("Dense"),
                "{counts:?}"
            );
            let report = compiled.calibration.as_ref().expect("a calibration report");
            assert_eq!((report.quantized.len(), report.items), (layers, 8));
            let got = run(&compiled.graph, &x, shape[0]);
            let err = resnext_test_support::max_abs_diff(&got, &want);
            let ort = onnxruntime_error(model);
            let max = resnext_test_support::max_abs(&want);
            let got_copies = run(&compiled.graph, &copies, 8 * shape[0]);
            let classes = want.len() / shape[0];
            let argmax = |v: &[f32]| {
                (0..v.len())
                    .max_by(|&a, &b| v[a].total_cmp(&v[b]))
                    .expect("non-empty")
            };
            let agree = got_copies
                .chunks(classes)
                .zip(want_copies.chunks(classes))
                .filter(|(g, w)| argmax(g) == argmax(w))
                .count();
            let items = want_copies.len() / classes;
            eprintln!(
                "[calibrate] {model} {method:?}: max abs err {err:.4} (onnxruntime int8 {ort:.4}), \
                 max |logit| {max:.3}, top-1 {agree}/{items}"
            );
            assert!(
                err <= 2.0 * ort,
                "{model} {method:?}: max abs err {err} is over twice onnxruntime's {ort}"
            );
            assert!(
                agree * 4 >= items * 3,
                "{model} {method:?}: top-1 agrees on {agree} of {items}"
            );
        }
    }
}

fn resnextc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnextc"))
        .args(args)
        .output()
        .expect("run resnextc")
}

fn write_npy(dir: &Path, name: &str, shape: &[usize], data: &[f32]) -> String {
    let path = dir.join(name);
    npy::write_f32(&path, shape, data).expect("write npy");
    path.to_str().expect("utf-8").to_string()
}

/// The `check` line of `output` for the model output, parsed: (max abs err, relative err, agree, items).
fn check_line(stdout: &str) -> (f32, f32, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("output `"))
        .unwrap_or_else(|| panic!("no output line in: {stdout}"));
    let number = |after: &str| -> f32 {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after} in {line}"))
            + after.len()..];
        rest.split([',', ' '])
            .find(|s| !s.is_empty())
            .expect("a number")
            .parse()
            .expect("a float")
    };
    let agreement = line.split("top-1 agreement ").nth(1).expect("agreement");
    let (agree, rest) = agreement.split_once('/').expect("a fraction");
    let items = rest.split(' ').next().expect("items");
    (
        number("max abs err "),
        number("err / max |reference| "),
        agree.parse().expect("agree"),
        items.parse().expect("items"),
    )
}

#[test]
fn cli_check_reports_each_precision() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = workspace().join("testdata/families/resnext_mini.ts17.onnx");
    let model = model.to_str().expect("utf-8");
    let (shape, x) =
        npy::read_f32(workspace().join("testdata/families/resnext_mini.input.npy")).expect("input");
    let mut rng = Rng(11);
    let calib = random_items(&mut rng, &shape[1..], 8);
    let calib = write_npy(dir.path(), "calib.npy", &calib.shape, &calib.data);
    let inputs = write_npy(dir.path(), "inputs.npy", &shape, &x);
    let out_dir = dir.path().join("out");
    let out_dir = out_dir.to_str().expect("utf-8");
    // (precision, extra args, largest relative error allowed): fp32 is the same arithmetic in
    // another order; bf16 rounds each operand to 8 significant bits (2^-9 relative) through a
    // dozen layers; int8 as in `calibrated_family_models_stay_near_fp32`.
    let cases: [(&str, &[&str], f32); 4] = [
        ("fp32", &[], 1e-4),
        ("bf16", &[], 0.1),
        ("int8", &["--calibrate", &calib], 0.5),
        (
            "int8",
            &["--calibrate", &calib, "--calibrate-method", "percentile"],
            0.5,
        ),
    ];
    for (precision, extra, tol) in cases {
        let mut args = vec![
            "compile",
            model,
            "-o",
            out_dir,
            "--precision",
            precision,
            "--check",
            &inputs,
        ];
        args.extend_from_slice(extra);
        let out = resnextc(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        eprintln!("{precision} {extra:?}: {stdout}");
        assert!(
            stdout.contains(&format!("compiled ({precision})")),
            "{stdout}"
        );
        let (err, rel, agree, items) = check_line(&stdout);
        assert_eq!(items, shape[0]);
        assert!(err.is_finite() && rel <= tol, "{precision}: {stdout}");
        if precision == "int8" {
            assert!(stderr.contains("calibrated on 8 items"), "{stderr}");
            assert!(err > 0.0, "int8 should differ from fp32 a little: {stdout}");
        } else {
            assert_eq!(agree, items, "{stdout}");
        }
    }
}

/// Runs a failing `resnextc compile` and checks a clean error mentioning `parts`.
fn fails(args: &[&str], code: i32, parts: &[&str]) {
    let out = resnextc(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for p in parts {
        assert!(
            stderr.contains(p),
            "{args:?}: stderr should mention {p:?}: {stderr}"
        );
    }
}

#[test]
fn cli_calibration_and_check_errors_are_clear() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = workspace().join("testdata/families/resnext_mini.ts17.onnx");
    let model = model.to_str().expect("utf-8");
    let qdq = workspace().join("testdata/qdq/resnext_mini.qdq.onnx");
    let qdq = qdq.to_str().expect("utf-8");
    let out_dir = dir.path().join("out");
    let out = out_dir.to_str().expect("utf-8");
    let good = write_npy(
        dir.path(),
        "good.npy",
        &[2, 3, 64, 64],
        &[0.5; 2 * 3 * 64 * 64],
    );
    let wrong = write_npy(
        dir.path(),
        "wrong.npy",
        &[2, 3, 32, 32],
        &[0.5; 2 * 3 * 32 * 32],
    );
    let empty = write_npy(dir.path(), "empty.npy", &[0, 3, 64, 64], &[]);
    let missing = dir.path().join("missing.npy");
    let missing = missing.to_str().expect("utf-8");
    let int8 = ["compile", model, "-o", out, "--precision", "int8"];
    let calibrate = |items: &str| [&int8[..], &["--calibrate", items]].concat().join("\u{0}");
    let split = |s: &str| s.split('\u{0}').map(str::to_string).collect::<Vec<_>>();
    let run = |args: &str, code: i32, parts: &[&str]| {
        let args = split(args);
        fails(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            code,
            parts,
        );
    };
    run(
        &calibrate(&wrong),
        1,
        &["wrong.npy", "[2, 3, 32, 32]", "[N, 3, 64, 64]"],
    );
    run(&calibrate(&empty), 1, &["empty.npy", "no items"]);
    run(&calibrate(missing), 3, &["missing.npy"]);
    fails(
        &["compile", model, "-o", out, "--calibrate", &good],
        1,
        &["--calibrate", "`int8`", "not `fp32`"],
    );
    fails(&int8, 1, &["needs a quantized model", "--calibrate"]);
    fails(
        &[
            "compile",
            qdq,
            "-o",
            out,
            "--precision",
            "int8",
            "--calibrate",
            &good,
        ],
        1,
        &["already quantized", "QDQ"],
    );
    fails(
        &["compile", model, "-o", out, "--check", &wrong],
        1,
        &["wrong.npy", "[N, 3, 64, 64]"],
    );
    fails(
        &[
            "compile",
            model,
            "-o",
            out,
            "--no-opt",
            "--calibrate",
            &good,
        ],
        2,
        &["--no-opt"],
    );
    assert!(!out_dir.exists(), "nothing is written on an error");
    // The QDQ model compiles at int8 without calibration.
    let out = resnextc(&[
        "compile",
        qdq,
        "-o",
        out,
        "--precision",
        "int8",
        "--check",
        &good,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The interpreter drops values no reader needs any more but keeps every model output.
#[test]
fn observed_run_sees_every_value_once() {
    let path = workspace().join("testdata/families/resnext_mini.ts17.onnx");
    let graph = driver::load(&path, &driver::Options::default()).expect("load");
    let (shape, x) =
        npy::read_f32(workspace().join("testdata/families/resnext_mini.input.npy")).expect("input");
    let info = ir::validate(&graph).expect("valid");
    let mut seen: Vec<NodeId> = Vec::new();
    let out = interp::run_observed(&graph, &info, &[&x], shape[0], &mut |id, v| {
        assert_eq!(
            v.len(),
            shape[0] * graph.node(id).output.shape.item_len().unwrap()
        );
        seen.push(id);
    })
    .expect("run");
    assert_eq!(seen.len(), graph.nodes.node_count());
    let (_, want) =
        npy::read_f32(workspace().join("testdata/families/resnext_mini.output.npy")).expect("out");
    resnext_test_support::assert_close(&out[0], &want, 1e-4, "resnext_mini");
}

/// `Builder::calibrate_with` reaches the same pass: the emitted module calls the int8 kernels, and
/// an fp32 model at int8 without items is refused.
#[test]
fn builder_calibrates() {
    let model = workspace().join("testdata/families/resnet_basic_mini.ts17.onnx");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(5);
    let items = random_items(&mut rng, &[3, 64, 64], 4);
    let module = resnext_compiler::Builder::new(&model)
        .name("calibrated")
        .emit_rerun_if_changed(false)
        .precision(Precision::Int8)
        .calibrate_with(items)
        .calibration_method(CalibrationMethod::Percentile(99.9))
        .compile_to(dir.path())
        .expect("compile");
    let source = std::fs::read_to_string(module).expect("read the module");
    assert!(source.contains("kernels::int8::qconv2d"), "no int8 kernel");
    let err = resnext_compiler::Builder::new(&model)
        .emit_rerun_if_changed(false)
        .precision(Precision::Int8)
        .compile_to(dir.path())
        .expect_err("int8 without items");
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err).expect("a cause")
    );
    assert!(text.contains("needs a quantized model"), "{text}");
}
