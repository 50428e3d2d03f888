//! The activation and broadcasting rewrites of `fuse-epilogue` (SiLU, HardSwish and GELU spelled out
//! as several nodes, per-channel constant arithmetic to ScaleShift, squeeze-excite): each keeps the
//! reference interpreter's outputs, and the ONNX families that use them match PyTorch's logits.

use std::path::{Path, PathBuf};

use resnext_compiler::front::onnx;
use resnext_compiler::interp;
use resnext_compiler::ir::{
    self, Activation, Binary, BinaryKind, Conv, ConvKernel, Epilogue, Graph, NodeId, Op, Shape,
    TensorType,
};
use resnext_compiler::passes::{self, PassOptions, fuse_epilogue};
use resnext_runtime_core::formats::npy;

/// Deterministic values in [-2, 2) (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        2.0 * (bits as f32 / (1u64 << 23) as f32 - 1.0)
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn run(graph: &Graph, input: &[f32], batch: usize) -> Vec<f32> {
    let info = ir::validate(graph).unwrap_or_else(|e| panic!("{e}\n{}", passes::graph_text(graph)));
    interp::run(graph, &info, &[input], batch)
        .expect("interpreter runs")
        .remove(0)
}

/// `max |a − b| ≤ tol · max(1, max |b|)`; a NaN anywhere fails.
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).fold(
        0f32,
        |m, (a, b)| if (a - b).abs() <= m { m } else { (a - b).abs() },
    );
    let nan = got.iter().chain(want).any(|v| v.is_nan());
    assert!(
        !nan && err <= tol * scale,
        "{what}: max abs error {err:e} > {tol:e} × {scale} (NaN: {nan})"
    );
}

struct Builder {
    graph: Graph,
    rng: Rng,
}

impl Builder {
    fn new(c: usize, hw: usize) -> (Builder, NodeId) {
        let mut graph = Graph::new();
        let x = graph.add_input("x", TensorType::f32(Shape::nchw(c, hw, hw)));
        (
            Builder {
                graph,
                rng: Rng(11),
            },
            x,
        )
    }

    fn op(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        self.graph
            .add_node(name, op, inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn conv(&mut self, name: &str, x: NodeId, cout: usize, k: usize) -> NodeId {
        let shape = &self.graph.node(x).output.shape;
        let cin = shape.per_item().unwrap()[0];
        let data = self.rng.vec(cout * cin * k * k);
        let weight = self
            .graph
            .weights
            .add(format!("{name}.weight"), vec![cout, cin, k, k], data);
        let bias_data = self.rng.vec(cout);
        let bias = self
            .graph
            .weights
            .add(format!("{name}.bias"), vec![cout], bias_data);
        let op = Op::Conv(Conv {
            weight,
            bias: Some(bias),
            in_channels: cin,
            out_channels: cout,
            group: 1,
            kernel: [k, k],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [k / 2; 4],
            epilogue: Epilogue::default(),
            kernel_choice: ConvKernel::Reference,
        });
        self.op(name, op, &[x])
    }

    fn constant(
        &mut self,
        name: &str,
        kind: BinaryKind,
        x: NodeId,
        dims: Vec<usize>,
        data: Vec<f32>,
        first: bool,
    ) -> NodeId {
        let w = self.graph.weights.add(format!("{name}.c"), dims, data);
        let op = Op::Binary(Binary {
            kind,
            constant: Some(w),
            constant_first: first,
        });
        self.op(name, op, &[x])
    }

    fn output(mut self, y: NodeId) -> Graph {
        self.graph.outputs.push((y, "y".into()));
        ir::validate(&self.graph).unwrap_or_else(|e| panic!("{e}"));
        self.graph
    }
}

fn mul() -> Op {
    Op::Binary(Binary {
        kind: BinaryKind::Mul,
        constant: None,
        constant_first: false,
    })
}

/// Runs `fuse-epilogue` and checks the interpreter's outputs before and after on random inputs.
fn fuse_and_compare(graph: &mut Graph, batch: usize) {
    let len = batch * graph.node(graph.inputs[0]).output.shape.item_len().unwrap();
    let input = Rng(5).vec(len);
    let before = run(graph, &input, batch);
    assert!(
        fuse_epilogue(graph).unwrap(),
        "fuse-epilogue changed nothing"
    );
    ir::validate(graph).unwrap_or_else(|e| panic!("invalid after fuse-epilogue: {e}"));
    let after = run(graph, &input, batch);
    assert_close(&after, &before, 1e-5, "fuse-epilogue");
}

fn ops(graph: &Graph) -> Vec<&'static str> {
    let order = graph.topo_order().unwrap();
    order
        .into_iter()
        .map(|id| graph.node(id).op.name())
        .filter(|&n| n != "Input")
        .collect()
}

fn conv_activation(graph: &Graph) -> Activation {
    graph
        .nodes
        .node_weights()
        .find_map(|n| match &n.op {
            Op::Conv(c) => Some(c.epilogue.activation),
            _ => None,
        })
        .expect("a conv")
}

#[test]
fn sigmoid_times_its_input_is_one_silu_fused_into_the_conv() {
    let (mut b, x) = Builder::new(3, 5);
    let c = b.conv("conv", x, 4, 3);
    let s = b.op("sigmoid", Op::Activation(Activation::Sigmoid), &[c]);
    let y = b.op("mul", mul(), &[s, c]);
    let mut g = b.output(y);
    fuse_and_compare(&mut g, 2);
    assert_eq!(ops(&g), ["Conv"]);
    assert_eq!(conv_activation(&g), Activation::Silu);
}

#[test]
fn hard_sigmoid_gate_is_hard_swish_but_other_slopes_are_not() {
    let (mut b, x) = Builder::new(3, 4);
    let c = b.conv("conv", x, 2, 1);
    let hs = Activation::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };
    let s = b.op("hs", Op::Activation(hs), &[c]);
    let y = b.op("mul", mul(), &[c, s]);
    let mut g = b.output(y);
    fuse_and_compare(&mut g, 3);
    assert_eq!(ops(&g), ["Conv"]);
    assert_eq!(conv_activation(&g), Activation::HardSwish);

    // ONNX's default HardSigmoid (alpha 0.2) times x is not HardSwish: Mul stays.
    let (mut b, x) = Builder::new(3, 4);
    let c = b.conv("conv", x, 2, 1);
    let hs = Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    let s = b.op("hs", Op::Activation(hs), &[c]);
    let y = b.op("mul", mul(), &[c, s]);
    let mut g = b.output(y);
    let input = Rng(3).vec(3 * 3 * 16);
    let before = run(&g, &input, 3);
    fuse_epilogue(&mut g).unwrap();
    assert_close(&run(&g, &input, 3), &before, 1e-6, "unchanged");
    assert!(ops(&g).contains(&"Mul"), "{:?}", ops(&g));
}

/// TorchScript's exact GELU: `(x · (1 + erf(x / √2))) · 0.5`, and the other association.
#[test]
fn erf_gelu_pattern_is_one_gelu_in_both_associations() {
    for half_first in [false, true] {
        let (mut b, x) = Builder::new(2, 3);
        let c = b.conv("conv", x, 3, 3);
        let d = b.constant(
            "div",
            BinaryKind::Div,
            c,
            vec![],
            vec![std::f32::consts::SQRT_2],
            false,
        );
        let e = b.op("erf", Op::Activation(Activation::Erf), &[d]);
        let p = b.constant("add", BinaryKind::Add, e, vec![], vec![1.0], true);
        let y = if half_first {
            let h = b.constant("half", BinaryKind::Mul, c, vec![1], vec![0.5], false);
            b.op("mul", mul(), &[h, p])
        } else {
            let m = b.op("mul", mul(), &[c, p]);
            b.constant("half", BinaryKind::Mul, m, vec![], vec![0.5], false)
        };
        let mut g = b.output(y);
        fuse_and_compare(&mut g, 2);
        assert_eq!(ops(&g), ["Conv"], "half first: {half_first}");
        assert_eq!(conv_activation(&g), Activation::Gelu);
    }
}

#[test]
fn per_channel_constants_become_one_scale_shift() {
    let (mut b, x) = Builder::new(4, 3);
    let r = b.op("relu", Op::Relu, &[x]);
    let scale: Vec<f32> = vec![0.5, -2.0, 3.0, 1.5];
    let m = b.constant("mul", BinaryKind::Mul, r, vec![4, 1, 1], scale, false);
    let a = b.constant(
        "add",
        BinaryKind::Add,
        m,
        vec![1, 4, 1, 1],
        vec![0.1, 0.2, 0.3, 0.4],
        true,
    );
    let s = b.constant("sub", BinaryKind::Sub, a, vec![], vec![0.25], true);
    let d = b.constant("div", BinaryKind::Div, s, vec![1], vec![4.0], false);
    let mut g = b.output(d);
    fuse_and_compare(&mut g, 2);
    assert_eq!(ops(&g), ["Relu", "ScaleShift"]);
}

#[test]
fn constants_that_are_not_per_channel_stay_binary() {
    // A constant varying along W, and a constant divided by x: neither is a ScaleShift.
    let (mut b, x) = Builder::new(2, 3);
    let m = b.constant(
        "mul",
        BinaryKind::Mul,
        x,
        vec![3],
        vec![1.0, 2.0, 3.0],
        false,
    );
    let d = b.constant("div", BinaryKind::Div, m, vec![], vec![2.0], true);
    let g = b.output(d);
    let mut after = g.clone();
    fuse_epilogue(&mut after).unwrap();
    assert_eq!(ops(&after), ["Mul", "Div"]);
}

/// Squeeze-excite: pool → 1×1 conv → ReLU → 1×1 conv → HardSigmoid → Mul with the block input,
/// checked against a hand-written computation of the same block.
#[test]
fn squeeze_excite_block_matches_a_hand_computed_oracle() {
    let (c, hw, batch) = (6, 5, 2);
    let (mut b, x) = Builder::new(c, hw);
    let p = b.op("pool", Op::GlobalAveragePool { keep_dims: true }, &[x]);
    let f1 = b.conv("fc1", p, 3, 1);
    let r = b.op("relu", Op::Relu, &[f1]);
    let f2 = b.conv("fc2", r, c, 1);
    let gate = Activation::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };
    let s = b.op("gate", Op::Activation(gate), &[f2]);
    let y = b.op("scale", mul(), &[x, s]);
    let mut g = b.output(y);
    let weights = |g: &Graph, name: &str| {
        g.weights
            .iter()
            .find(|(_, w)| w.name == name)
            .map(|(_, w)| w.data.clone())
            .unwrap()
    };
    let (w1, b1, w2, b2) = (
        weights(&g, "fc1.weight"),
        weights(&g, "fc1.bias"),
        weights(&g, "fc2.weight"),
        weights(&g, "fc2.bias"),
    );
    let input = Rng(9).vec(batch * c * hw * hw);
    let mut want = vec![0.0f32; input.len()];
    for n in 0..batch {
        let plane = |ch: usize| &input[(n * c + ch) * hw * hw..][..hw * hw];
        let pooled: Vec<f64> = (0..c)
            .map(|ch| plane(ch).iter().map(|&v| v as f64).sum::<f64>() / (hw * hw) as f64)
            .collect();
        let hidden: Vec<f64> = (0..3)
            .map(|o| {
                let v: f64 = (0..c)
                    .map(|i| w1[o * c + i] as f64 * pooled[i])
                    .sum::<f64>()
                    + b1[o] as f64;
                v.max(0.0)
            })
            .collect();
        for ch in 0..c {
            let v: f64 = (0..3)
                .map(|i| w2[ch * 3 + i] as f64 * hidden[i])
                .sum::<f64>()
                + b2[ch] as f64;
            let gate = ((v + 3.0) / 6.0).clamp(0.0, 1.0);
            for (i, &xv) in plane(ch).iter().enumerate() {
                want[(n * c + ch) * hw * hw + i] = (xv as f64 * gate) as f32;
            }
        }
    }
    assert_close(&run(&g, &input, batch), &want, 1e-5, "interpreter");
    // The whole pipeline, with fast kernels, keeps it.
    passes::optimize(
        &mut g,
        &PassOptions {
            verify: true,
            ..PassOptions::default()
        },
    )
    .unwrap();
    assert_close(&run(&g, &input, batch), &want, 1e-5, "after the passes");
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/families")
        .join(name)
}

/// Imports a family fixture, runs the interpreter before and after the pass pipeline (fast kernels
/// selected) and compares both with PyTorch's logits (1e-4 × max |logit|).
fn check_family(model: &str, exporter: &str) {
    let file = testdata(&format!("{model}.{exporter}.onnx"));
    let mut graph = onnx::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (in_shape, x) = npy::read_f32(testdata(&format!("{model}.input.npy"))).unwrap();
    let (_, want) = npy::read_f32(testdata(&format!("{model}.output.npy"))).unwrap();
    let batch = in_shape[0];
    let imported = run(&graph, &x, batch);
    assert_close(
        &imported,
        &want,
        1e-4,
        &format!("{model}.{exporter} imported"),
    );
    let opts = PassOptions {
        verify: true,
        ..PassOptions::default()
    };
    passes::optimize(&mut graph, &opts).unwrap_or_else(|e| panic!("{model}.{exporter}: {e}"));
    let optimised = run(&graph, &x, batch);
    assert_close(
        &optimised,
        &want,
        1e-4,
        &format!("{model}.{exporter} optimised"),
    );
}

macro_rules! family_tests {
    ($($(#[$attr:meta])* $name:ident: $model:literal, $exporter:literal;)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                check_family($model, $exporter);
            }
        )*
    };
}

// Every exporter's file of the families whose activations these are.
family_tests! {
    lenet5_tanh_ts17: "lenet5_tanh", "ts17";
    lenet5_tanh_ts9: "lenet5_tanh", "ts9";
    lenet5_tanh_dynamo: "lenet5_tanh", "dynamo";
    lenet5_sigmoid_ts17: "lenet5_sigmoid", "ts17";
    lenet5_sigmoid_ts9: "lenet5_sigmoid", "ts9";
    lenet5_sigmoid_dynamo: "lenet5_sigmoid", "dynamo";
    mobilenet_v3_mini_ts17: "mobilenet_v3_mini", "ts17";
    mobilenet_v3_mini_ts9: "mobilenet_v3_mini", "ts9";
    mobilenet_v3_mini_dynamo: "mobilenet_v3_mini", "dynamo";
    efficientnet_v1_mini_ts17: "efficientnet_v1_mini", "ts17";
    efficientnet_v1_mini_ts9: "efficientnet_v1_mini", "ts9";
    efficientnet_v1_mini_dynamo: "efficientnet_v1_mini", "dynamo";
    efficientnet_v2_mini_ts17: "efficientnet_v2_mini", "ts17";
    efficientnet_v2_mini_ts9: "efficientnet_v2_mini", "ts9";
    efficientnet_v2_mini_dynamo: "efficientnet_v2_mini", "dynamo";
    regnet_y_mini_ts17: "regnet_y_mini", "ts17";
    regnet_y_mini_ts9: "regnet_y_mini", "ts9";
    regnet_y_mini_dynamo: "regnet_y_mini", "dynamo";
    mnasnet_mini_ts17: "mnasnet_mini", "ts17";
    mnasnet_mini_ts9: "mnasnet_mini", "ts9";
    mnasnet_mini_dynamo: "mnasnet_mini", "dynamo";
}
