//! The channel ops (Concat, ChannelShuffle, SliceChannels) and Pad. Channel `Concat`: the CNN families that join branches (SqueezeNet, GoogLeNet, Inception-v3,
//! DenseNet) against PyTorch's logits on the reference interpreter; the memory plan writing
//! producers into their channel slices (checked against liveness computed here, for batches 1–3);
//! the emitted code, whose producers run item by item into those slices, against PyTorch.
//! Every emitted model of this file is a module of one crate, built once (`common::emitted`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use resnext_compiler::interp;
use resnext_compiler::ir::{
    self, Conv, ConvKernel, Epilogue, Graph, NodeId, Op, Shape, TensorType,
};
use resnext_compiler::passes::{self, MemoryPlan, PassOptions, PlanOptions, Slot, plan_memory};
use resnext_runtime_core::formats::npy;
use resnext_runtime_core::kernels::reference;

use common::emitted::{self, Crate, Model, Opt, workspace};

fn family(file: &str) -> PathBuf {
    workspace().join("testdata/families").join(file)
}

/// `max |got − want|` and `max |want|`; NaN anywhere makes the error NaN, which fails `<=`.
fn max_err(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    (err, scale)
}

/// Imports `NAME.EXPORTER.onnx`, runs the whole pipeline and the interpreter on the fixture's
/// input and compares with PyTorch's logits.
fn family_on_interp(name: &str, exporter: &str) {
    let path = family(&format!("{name}.{exporter}.onnx"));
    let mut g = resnext_compiler::front::onnx::load(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        g.op_counts().get("Concat").is_some_and(|&n| n > 0),
        "{name} has no Concat"
    );
    passes::optimize(&mut g, &PassOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let info = ir::validate(&g).unwrap();
    let (shape, input) = npy::read_f32(family(&format!("{name}.input.npy"))).unwrap();
    let (_, want) = npy::read_f32(family(&format!("{name}.output.npy"))).unwrap();
    let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
    let (err, scale) = max_err(&got[0], &want);
    assert!(
        err <= 1e-4 * scale,
        "{name}: max abs err {err} > 1e-4 × {scale}"
    );
    let plan = plan_memory(&g, &info, &in_place()).unwrap();
    check_plan(&g, &plan);
}

macro_rules! families {
    ($($test:ident: $name:literal $exporter:literal;)*) => {$(
        #[test]
        fn $test() {
            family_on_interp($name, $exporter);
        }
    )*};
}

// The ts17 exports (opset 17); the dynamo (opset 20) and ts9 (opset 9) ones wait for the front end
// to accept their opsets.
families! {
    squeezenet1_0_ts17: "squeezenet1_0_mini" "ts17";
    squeezenet1_1_ts17: "squeezenet1_1_mini" "ts17";
    googlenet_ts17: "googlenet_mini" "ts17";
    inception_v3_ts17: "inception_v3_mini" "ts17";
    densenet_ts17: "densenet_mini" "ts17";
}

fn in_place() -> PlanOptions {
    PlanOptions {
        concat_in_place: true,
        ..PlanOptions::default()
    }
}

/// The arena ranges item after item of every planned value occupies for `batch` items.
fn ranges(plan: &MemoryPlan, id: NodeId, batch: usize) -> Vec<(usize, usize)> {
    let s = plan.slot(id).expect("every non-input value is planned");
    (0..batch)
        .map(|n| {
            let start = batch * s.base + n * s.item_stride + s.at;
            (start, start + s.len)
        })
        .collect()
}

/// Checks a plan against liveness computed here, for batches 1–3: every value lies in the arena;
/// a value written into a concat lies inside the concat's block, at the sum of the lengths of the
/// inputs before it; two values live at the same step never overlap, unless one is written into
/// the other (a concat's slice).
fn check_plan(graph: &Graph, plan: &MemoryPlan) {
    let order = graph.topo_order().unwrap();
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut inside: HashMap<NodeId, NodeId> = HashMap::new();
    for &id in &order {
        if !matches!(graph.node(id).op, Op::Concat { .. }) {
            continue;
        }
        let c = plan.slot(id).unwrap();
        let mut at = c.at;
        for p in graph.inputs_of(id) {
            let len = graph.node(p).output.shape.item_len().unwrap();
            if let Some(s) = plan.slices.get(&p) {
                assert_eq!(
                    *s,
                    Slot { at, len, ..c },
                    "`{}` is not at its slice of `{}`",
                    graph.node(p).name,
                    graph.node(id).name
                );
                assert_eq!(graph.consumers(p), vec![(id, graph.consumers(p)[0].1)]);
                inside.insert(p, id);
            }
            at += len;
        }
    }
    // Whether `a` is written into `b` (directly or through nested concats).
    let within = |mut a: NodeId, b: NodeId| {
        while let Some(&c) = inside.get(&a) {
            if c == b {
                return true;
            }
            a = c;
        }
        false
    };
    let mut live = Vec::new();
    for &id in &order {
        if matches!(graph.node(id).op, Op::Input) {
            continue;
        }
        let s = plan.slot(id).unwrap();
        assert_eq!(s.len, graph.node(id).output.shape.item_len().unwrap());
        let last = if graph.is_output(id) {
            order.len()
        } else {
            graph
                .consumers(id)
                .iter()
                .map(|(c, _)| pos[c])
                .max()
                .unwrap_or(pos[&id])
        };
        live.push((id, pos[&id], last));
    }
    for batch in 1..=3 {
        for (i, &(a, a0, a1)) in live.iter().enumerate() {
            for r in ranges(plan, a, batch) {
                assert!(r.1 <= batch * plan.arena_len_per_item);
            }
            for &(b, b0, b1) in &live[i + 1..] {
                // A concat's block is written from its first producer's step on.
                let first = |x: NodeId, x0: usize| {
                    live.iter()
                        .filter(|&&(p, _, _)| within(p, x))
                        .map(|&(_, p0, _)| p0)
                        .min()
                        .unwrap_or(x0)
                        .min(x0)
                };
                let (a0, b0) = (first(a, a0), first(b, b0));
                if a0 > b1 || b0 > a1 || within(a, b) || within(b, a) {
                    continue;
                }
                for ra in ranges(plan, a, batch) {
                    for rb in ranges(plan, b, batch) {
                        assert!(
                            ra.1 <= rb.0 || rb.1 <= ra.0,
                            "batch {batch}: `{}` and `{}` are live together but overlap",
                            graph.node(a).name,
                            graph.node(b).name
                        );
                    }
                }
            }
        }
    }
}

/// A graph builder for hand-made concat patterns: 1×1 convs of random weights.
struct Builder {
    g: Graph,
    seed: u32,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            g: Graph::new(),
            seed: 1,
        }
    }

    fn input(&mut self, c: usize, hw: usize) -> NodeId {
        let t = TensorType::f32(Shape::nchw(c, hw, hw));
        self.g.add_input("x", t)
    }

    fn conv(&mut self, name: &str, x: NodeId, cout: usize) -> NodeId {
        let (cin, _, _) = self.g.node(x).output.shape.chw().unwrap();
        let data = (0..cout * cin)
            .map(|_| {
                self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (self.seed >> 16) as f32 / 32768.0 - 1.0
            })
            .collect();
        let weight = self
            .g
            .weights
            .add(format!("{name}.w"), vec![cout, cin, 1, 1], data);
        let op = Op::Conv(Conv {
            weight,
            bias: None,
            in_channels: cin,
            out_channels: cout,
            group: 1,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            epilogue: Epilogue::default(),
            kernel_choice: ConvKernel::Reference,
        });
        self.op(name, op, &[x])
    }

    fn op(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        self.g.add_node(name, op, inputs).unwrap()
    }

    fn concat(&mut self, name: &str, inputs: &[NodeId]) -> NodeId {
        let op = Op::Concat {
            inputs: inputs.len(),
        };
        self.op(name, op, inputs)
    }

    fn output(mut self, x: NodeId) -> Graph {
        self.g.outputs.push((x, "y".into()));
        self.g
    }
}

fn find(graph: &Graph, name: &str) -> NodeId {
    graph
        .nodes
        .node_indices()
        .find(|&n| graph.node(n).name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

#[test]
fn producers_write_into_their_slices_and_shared_values_are_copied() {
    let mut b = Builder::new();
    let x = b.input(3, 5);
    let a = b.conv("a", x, 4);
    let c1 = b.conv("c1", a, 5);
    let c2 = b.conv("c2", a, 3);
    // Nested: `inner` is written into `outer`, and its producers into it.
    let i1 = b.conv("i1", a, 2);
    let i2 = b.conv("i2", a, 6);
    let inner = b.concat("inner", &[i1, i2]);
    // `shared` feeds two concats; `x` is the model input; `c2` is concatenated twice.
    let shared = b.conv("shared", a, 2);
    let side = b.concat("side", &[shared, x]);
    let outer = b.concat("outer", &[c1, inner, shared, x, c2, c2]);
    let tail = b.conv("tail", side, 2);
    let head = b.conv("head", outer, 4);
    let sum = b.concat("sum", &[head, tail]);
    let g = b.output(sum);
    let info = ir::validate(&g).unwrap();
    let plan = plan_memory(&g, &info, &in_place()).unwrap();
    check_plan(&g, &plan);
    let hw = 25;
    let slice = |name: &str| plan.slices.get(&find(&g, name)).copied();
    let outer_slot = plan.slot(find(&g, "outer")).unwrap();
    assert!(outer_slot.is_contiguous());
    assert_eq!(
        slice("c1"),
        Some(Slot {
            at: 0,
            len: 5 * hw,
            ..outer_slot
        })
    );
    assert_eq!(
        slice("inner"),
        Some(Slot {
            at: 5 * hw,
            len: 8 * hw,
            ..outer_slot
        })
    );
    assert_eq!(
        slice("i2"),
        Some(Slot {
            at: 7 * hw,
            len: 6 * hw,
            ..outer_slot
        })
    );
    for copied in ["shared", "c2", "a", "x"] {
        assert_eq!(
            slice(copied),
            None,
            "`{copied}` must be copied:\n{}",
            plan.text(&g)
        );
    }
    // `head` and `tail` are written into the model output's block.
    assert!(slice("head").is_some() && slice("tail").is_some());
    // Without the option every value has a block of its own.
    let plain = plan_memory(&g, &info, &PlanOptions::default()).unwrap();
    assert!(plain.slices.is_empty());
    check_plan(&g, &plain);
}

#[test]
fn concat_off_the_channel_axis_is_an_error_naming_the_node() {
    let mut b = Builder::new();
    let x = b.input(2, 4);
    let y = b.input(2, 3);
    let bad = b.g.add_node("cat_h", Op::Concat { inputs: 2 }, &[x, y]);
    let message = bad.unwrap_err().to_string();
    assert!(
        message.contains("cat_h") && message.contains("channel"),
        "{message}"
    );
}

/// The reference concat against an independent copy by index arithmetic.
fn concat_by_index(batch: usize, parts: &[Vec<f32>], out_len: usize) -> Vec<f32> {
    let item = out_len / batch;
    let mut out = vec![f32::NAN; out_len];
    let mut before = 0;
    for p in parts {
        let len = p.len() / batch;
        for (i, &v) in p.iter().enumerate() {
            out[(i / len) * item + before + i % len] = v;
        }
        before += len;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reference_concat_matches_index_arithmetic(
        batch in 1usize..4,
        channels in prop::collection::vec(1usize..7, 1..5),
        h in 1usize..6,
        w in 1usize..6,
    ) {
        let parts: Vec<Vec<f32>> = channels
            .iter()
            .enumerate()
            .map(|(k, &c)| (0..batch * c * h * w).map(|i| (k * 1000 + i) as f32).collect())
            .collect();
        let total: usize = parts.iter().map(Vec::len).sum();
        let want = concat_by_index(batch, &parts, total);
        let refs: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
        let mut got = vec![f32::NAN; total];
        reference::concat_channels(batch, &refs, &mut got).unwrap();
        prop_assert!(got.iter().zip(&want).all(|(a, b)| a == b));
    }

    /// Random channel splits of random concat trees: the plan is sound for batches 1–3.
    #[test]
    fn plans_of_random_concats_are_sound(
        splits in prop::collection::vec(prop::collection::vec(1usize..6, 1..4), 1..4),
        hw in 1usize..5,
    ) {
        let mut b = Builder::new();
        let x = b.input(3, hw);
        let mut joined = Vec::new();
        for (k, split) in splits.iter().enumerate() {
            let parts: Vec<NodeId> = split
                .iter()
                .enumerate()
                .map(|(j, &c)| b.conv(&format!("p{k}_{j}"), x, c))
                .collect();
            joined.push(b.concat(&format!("cat{k}"), &parts));
        }
        let all = b.concat("all", &joined);
        let g = b.output(all);
        let info = ir::validate(&g).unwrap();
        let plan = plan_memory(&g, &info, &in_place()).unwrap();
        check_plan(&g, &plan);
        prop_assert_eq!(plan.slices.len(), joined.len() + splits.iter().map(Vec::len).sum::<usize>());
    }
}

/// The emitted models of these tests, in one crate built once per process (`common::emitted`):
/// module `NAME` is `testdata/families/NAME.ts17.onnx` or `testdata/channels/NAME.onnx`.
fn emitted() -> &'static Crate {
    static BUILD: OnceLock<Result<Crate, String>> = OnceLock::new();
    emitted::shared(&BUILD, "channels", Opt::Quick, || {
        let families = ["inception_v3_mini", "densenet_mini", "squeezenet1_1_mini"]
            .map(|name| Model::new(name, family(&format!("{name}.ts17.onnx"))));
        let channels = ["shuffle_split", "pads", "softmax", "split", "lrn"]
            .map(|name| Model::new(name, channels_fixture(&format!("{name}.onnx"))));
        families.into_iter().chain(channels).collect()
    })
}

/// Runs the emitted family fixture `name` (its ts17 export) on the fixture's batch of 2
/// and compares with PyTorch's logits: the producers written item by item into their concat
/// slices, the copies, and nested concats, in emitted code.
fn emitted_matches_pytorch(name: &str) {
    let input = family(&format!("{name}.input.npy"));
    let want = family(&format!("{name}.output.npy"));
    emitted_matches(name, &input, &want);
}

/// Runs the emitted model `name` on `input` and compares with `want` (max abs err ≤ 1e-4 ×
/// max |want|).
fn emitted_matches(name: &str, input: &Path, want: &Path) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = tmp.path().join("logits.npy");
    emitted().run(name, input, &output);
    let (_, got) = npy::read_f32(&output).unwrap();
    let (_, want) = npy::read_f32(want).unwrap();
    let (err, scale) = max_err(&got, &want);
    eprintln!("{name} emitted: max abs err {err:e}, max |logit| {scale}");
    assert!(
        err <= 1e-4 * scale,
        "{name}: max abs err {err} > 1e-4 × {scale}"
    );
}

#[test]
fn emitted_inception_v3_matches_pytorch() {
    emitted_matches_pytorch("inception_v3_mini");
}

#[test]
fn emitted_densenet_and_squeezenet_match_pytorch() {
    emitted_matches_pytorch("densenet_mini");
    emitted_matches_pytorch("squeezenet1_1_mini");
}

fn channels_fixture(file: &str) -> PathBuf {
    workspace().join("testdata/channels").join(file)
}

/// `testdata/channels/shuffle_split.onnx` (`make_shuffle.py`): a conv, the channel shuffle, two
/// channel slices concatenated in swapped order, a conv; onnxruntime's output for a batch of 3.
#[test]
fn shuffle_and_slices_match_onnxruntime_on_the_interpreter() {
    let mut g = resnext_compiler::front::onnx::load(&channels_fixture("shuffle_split.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    passes::optimize(&mut g, &PassOptions::default()).unwrap();
    let counts = g.op_counts();
    assert_eq!(counts.get("ChannelShuffle"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("Reshape"),
        None,
        "the shuffle's reshapes cancel: {counts:?}"
    );
    let info = ir::validate(&g).unwrap();
    let (shape, input) = npy::read_f32(channels_fixture("shuffle_split.input.npy")).unwrap();
    let (_, want) = npy::read_f32(channels_fixture("shuffle_split.output.npy")).unwrap();
    let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
    let (err, scale) = max_err(&got[0], &want);
    assert!(err <= 1e-5 * scale, "max abs err {err} > 1e-5 × {scale}");
    let plan = plan_memory(&g, &info, &in_place()).unwrap();
    check_plan(&g, &plan);
    // Both slices write straight into the concat.
    assert_eq!(plan.slices.len(), 2, "{}", plan.text(&g));
}

#[test]
fn emitted_shuffle_and_slices_match_onnxruntime() {
    emitted_matches(
        "shuffle_split",
        &channels_fixture("shuffle_split.input.npy"),
        &channels_fixture("shuffle_split.output.npy"),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The shuffle against the definition: `[N, g, C/g, S]` with the two middle axes swapped.
    #[test]
    fn reference_channel_shuffle_matches_the_transpose(
        batch in 1usize..4,
        groups in 1usize..5,
        per_group in 1usize..5,
        spatial in 1usize..7,
    ) {
        let c = groups * per_group;
        let input: Vec<f32> = (0..batch * c * spatial).map(|i| i as f32).collect();
        let mut want = vec![f32::NAN; input.len()];
        for n in 0..batch {
            for g in 0..groups {
                for k in 0..per_group {
                    for s in 0..spatial {
                        let from = ((n * groups + g) * per_group + k) * spatial + s;
                        let to = ((n * per_group + k) * groups + g) * spatial + s;
                        want[to] = input[from];
                    }
                }
            }
        }
        let mut got = vec![f32::NAN; input.len()];
        let args = resnext_runtime_core::kernels::PlanesArgs {
            batch, channels: c, spatial, input: &input, output: &mut got,
        };
        reference::channel_shuffle(args, groups).unwrap();
        prop_assert!(got.iter().zip(&want).all(|(a, b)| a == b));
    }

    #[test]
    fn reference_slice_channels_matches_index_arithmetic(
        batch in 1usize..4,
        c in 1usize..9,
        cut in (0usize..8, 1usize..9),
        spatial in 1usize..7,
    ) {
        let start = cut.0 % c;
        let len = 1 + (cut.1 - 1) % (c - start);
        let input: Vec<f32> = (0..batch * c * spatial).map(|i| i as f32).collect();
        let want: Vec<f32> = (0..batch)
            .flat_map(|n| input[(n * c + start) * spatial..(n * c + start + len) * spatial].to_vec())
            .collect();
        let mut got = vec![f32::NAN; batch * len * spatial];
        let args = resnext_runtime_core::kernels::PlanesArgs {
            batch, channels: c, spatial, input: &input, output: &mut got,
        };
        reference::slice_channels(args, start).unwrap();
        prop_assert_eq!(got, want);
    }
}

/// `testdata/channels/pads.onnx`: zero pads that fold into an AveragePool, a conv and a MaxPool of
/// ReLU outputs, and one before a MaxPool of values of either sign that must stay a Pad.
#[test]
fn pads_fold_where_equivalent_and_match_onnxruntime() {
    let mut g = resnext_compiler::front::onnx::load(&channels_fixture("pads.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.op_counts().get("Pad"), Some(&4));
    let (shape, input) = npy::read_f32(channels_fixture("pads.input.npy")).unwrap();
    let (_, want) = npy::read_f32(channels_fixture("pads.output.npy")).unwrap();
    for optimize in [false, true] {
        if optimize {
            passes::optimize(&mut g, &PassOptions::default()).unwrap();
            assert_eq!(
                g.op_counts().get("Pad"),
                Some(&1),
                "{}",
                passes::graph_text(&g)
            );
        }
        let info = ir::validate(&g).unwrap();
        let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
        let (err, scale) = max_err(&got[0], &want);
        assert!(
            err <= 1e-5 * scale,
            "optimized {optimize}: max abs err {err} > 1e-5 × {scale}"
        );
    }
}

#[test]
fn emitted_pads_match_onnxruntime() {
    emitted_matches(
        "pads",
        &channels_fixture("pads.input.npy"),
        &channels_fixture("pads.output.npy"),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reference_pad_matches_index_arithmetic(
        batch in 1usize..3,
        c in 1usize..4,
        h in 1usize..6,
        w in 1usize..6,
        pads in prop::array::uniform4(0usize..3),
    ) {
        let input: Vec<f32> = (0..batch * c * h * w).map(|i| i as f32 + 1.0).collect();
        let (ho, wo) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        let mut want = vec![0.0; batch * c * ho * wo];
        for p in 0..batch * c {
            for y in 0..h {
                for x in 0..w {
                    want[(p * ho + y + pads[0]) * wo + x + pads[1]] = input[(p * h + y) * w + x];
                }
            }
        }
        let mut got = vec![f32::NAN; want.len()];
        reference::pad2d(batch, c, [h, w], pads, &input, &mut got).unwrap();
        prop_assert_eq!(got, want);
    }
}

/// `testdata/channels/softmax.onnx`: Gemm, Softmax, Gemm, LogSoftmax, against onnxruntime.
#[test]
fn softmax_and_log_softmax_match_onnxruntime() {
    let mut g = resnext_compiler::front::onnx::load(&channels_fixture("softmax.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    passes::optimize(&mut g, &PassOptions::default()).unwrap();
    let counts = g.op_counts();
    assert_eq!(
        (counts.get("Softmax"), counts.get("LogSoftmax")),
        (Some(&1), Some(&1))
    );
    let info = ir::validate(&g).unwrap();
    let (shape, input) = npy::read_f32(channels_fixture("softmax.input.npy")).unwrap();
    let (_, want) = npy::read_f32(channels_fixture("softmax.output.npy")).unwrap();
    let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
    let (err, scale) = max_err(&got[0], &want);
    assert!(err <= 1e-5 * scale, "max abs err {err} > 1e-5 × {scale}");
}

#[test]
fn emitted_softmax_matches_onnxruntime() {
    emitted_matches(
        "softmax",
        &channels_fixture("softmax.input.npy"),
        &channels_fixture("softmax.output.npy"),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against the textbook formula in f64 (no max shift: the inputs are small).
    #[test]
    fn reference_softmax_matches_the_formula(
        rows in prop::collection::vec(prop::collection::vec(-20.0f32..20.0, 1..9), 1..4),
    ) {
        let k = rows[0].len();
        let rows: Vec<Vec<f32>> = rows.into_iter().filter(|r| r.len() == k).collect();
        let input: Vec<f32> = rows.concat();
        for log in [false, true] {
            let mut got = vec![f32::NAN; input.len()];
            reference::softmax(rows.len(), k, log, &input, &mut got).unwrap();
            for (x, y) in input.chunks(k).zip(got.chunks(k)) {
                let sum: f64 = x.iter().map(|&v| (v as f64).exp()).sum();
                for (&v, &o) in x.iter().zip(y) {
                    let want = if log { v as f64 - sum.ln() } else { (v as f64).exp() / sum };
                    prop_assert!((o as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "{o} vs {want}");
                }
            }
        }
    }
}

/// `testdata/channels/split.onnx`: a ShuffleNet unit with both forms of Split, against
/// onnxruntime; the first half is written straight into the concat.
#[test]
fn split_matches_onnxruntime() {
    let mut g = resnext_compiler::front::onnx::load(&channels_fixture("split.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    passes::optimize(&mut g, &PassOptions::default()).unwrap();
    let info = ir::validate(&g).unwrap();
    let (shape, input) = npy::read_f32(channels_fixture("split.input.npy")).unwrap();
    let (_, want) = npy::read_f32(channels_fixture("split.output.npy")).unwrap();
    let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
    let (err, scale) = max_err(&got[0], &want);
    assert!(err <= 1e-5 * scale, "max abs err {err} > 1e-5 × {scale}");
    let plan = plan_memory(&g, &info, &in_place()).unwrap();
    check_plan(&g, &plan);
    assert_eq!(plan.slices.len(), 2, "{}", plan.text(&g));
}

#[test]
fn emitted_split_matches_onnxruntime() {
    emitted_matches(
        "split",
        &channels_fixture("split.input.npy"),
        &channels_fixture("split.output.npy"),
    );
}

/// A shuffle read only by convs disappears into their weights; the interpreter on the graph before
/// (the shuffle kernel) is the oracle.
#[test]
fn shuffle_read_by_convs_folds_into_their_weights() {
    let mut b = Builder::new();
    let x = b.input(3, 4);
    let a = b.conv("a", x, 6);
    let shuffled = b.op("shuffle", Op::ChannelShuffle { groups: 3 }, &[a]);
    let c1 = b.conv("c1", shuffled, 4);
    let c2 = b.conv("c2", shuffled, 5);
    let cat = b.concat("cat", &[c1, c2]);
    let mut g = b.output(cat);
    let batch = 2;
    let input: Vec<f32> = (0..batch * 3 * 16)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let before = interp::run(&g, &ir::validate(&g).unwrap(), &[&input], batch).unwrap();
    assert!(passes::simplify(&mut g).unwrap());
    assert_eq!(g.op_counts().get("ChannelShuffle"), None);
    let after = interp::run(&g, &ir::validate(&g).unwrap(), &[&input], batch).unwrap();
    let (err, scale) = max_err(&after[0], &before[0]);
    assert!(err <= 1e-6 * scale, "max abs err {err} > 1e-6 × {scale}");
    // Read by anything else, it stays.
    let mut b = Builder::new();
    let x = b.input(4, 3);
    let shuffled = b.op("shuffle", Op::ChannelShuffle { groups: 2 }, &[x]);
    let c = b.conv("c", shuffled, 4);
    let cat = b.concat("cat", &[c, shuffled]);
    let mut g = b.output(cat);
    passes::simplify(&mut g).unwrap();
    assert_eq!(g.op_counts().get("ChannelShuffle"), Some(&1));
}

/// `testdata/channels/lrn.onnx`: conv, LRN, conv, against onnxruntime.
#[test]
fn lrn_matches_onnxruntime() {
    let mut g = resnext_compiler::front::onnx::load(&channels_fixture("lrn.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    passes::optimize(&mut g, &PassOptions::default()).unwrap();
    assert_eq!(g.op_counts().get("LRN"), Some(&1));
    let info = ir::validate(&g).unwrap();
    let (shape, input) = npy::read_f32(channels_fixture("lrn.input.npy")).unwrap();
    let (_, want) = npy::read_f32(channels_fixture("lrn.output.npy")).unwrap();
    let got = interp::run(&g, &info, &[&input], shape[0]).unwrap();
    let (err, scale) = max_err(&got[0], &want);
    assert!(err <= 1e-5 * scale, "max abs err {err} > 1e-5 × {scale}");
}

#[test]
fn emitted_lrn_matches_onnxruntime() {
    emitted_matches(
        "lrn",
        &channels_fixture("lrn.input.npy"),
        &channels_fixture("lrn.output.npy"),
    );
}

/// A pad before a ceil_mode pool stays: folded, the pool would drop a last window that starts in
/// the right padding.
#[test]
fn pad_before_a_ceil_mode_pool_stays() {
    let mut b = Builder::new();
    let x = b.input(2, 5);
    let padded = b.op("pad", Op::Pad { pads: [1, 1, 1, 1] }, &[x]);
    let pool = ir::Pool {
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0; 4],
        ceil_mode: true,
        count_include_pad: false,
    };
    let pooled = b.op("pool", Op::AveragePool(pool), &[padded]);
    let mut g = b.output(pooled);
    let before = g.node(pooled).output.shape.clone();
    passes::simplify(&mut g).unwrap();
    assert_eq!(g.op_counts().get("Pad"), Some(&1));
    assert_eq!(g.node(g.outputs[0].0).output.shape, before);
}
