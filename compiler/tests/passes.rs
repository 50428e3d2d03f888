//! Tests of the optimisation passes: each pass fires on the shared models and keeps their outputs (the
//! reference interpreter before vs after, on random inputs), plus hand-built graphs for tricky cases.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use resnext_compiler::interp;
use resnext_compiler::ir::{
    self, Activation, BatchNorm, Conv, ConvKernel, Dense, Epilogue, Graph, NodeId, Op, Pool, Shape,
    TensorType,
};
use resnext_compiler::passes::{
    self, LayoutChoice, MemoryPlan, PassError, PassOptions, PlanOptions, fold_batch_norm,
    fuse_epilogue, plan_memory, select_kernels_nchw, simplify,
};
use resnext_test_support::models_dir;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Deterministic values in [-1, 1) (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// `max |a − b| / max |b|` over all outputs; NaN where any value is NaN or infinite.
fn rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
    }
    resnext_test_support::rel_diff(&a.concat(), &b.concat())
}

/// Runs the reference interpreter on a valid graph.
fn run(graph: &Graph, inputs: &[Vec<f32>], batch: usize) -> Vec<Vec<f32>> {
    let info = ir::validate(graph).unwrap_or_else(|e| panic!("{e}\n{}", passes::graph_text(graph)));
    let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
    interp::run(graph, &info, &refs, batch).expect("interpreter runs")
}

fn random_inputs(graph: &Graph, batch: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    graph
        .inputs
        .iter()
        .map(|&i| rng.vec(batch * graph.node(i).output.shape.item_len().unwrap()))
        .collect()
}

fn count(graph: &Graph, op: &str) -> usize {
    graph.op_counts().get(op).copied().unwrap_or(0)
}

type Pass = fn(&mut Graph) -> Result<bool, ir::IrError>;

/// Applies `pass`, requires it to keep the graph valid and the outputs within 1e-5 relative, and
/// returns whether it changed the graph.
fn check_pass(
    graph: &mut Graph,
    name: &str,
    pass: Pass,
    inputs: &[Vec<f32>],
    batch: usize,
) -> bool {
    let before = run(graph, inputs, batch);
    check_pass_from(graph, name, pass, inputs, batch, &before).0
}

/// [`check_pass`] given the graph's outputs on `inputs` before the pass (`before`); also returns
/// the outputs after it, which are the next pass's `before`.
fn check_pass_from(
    graph: &mut Graph,
    name: &str,
    pass: Pass,
    inputs: &[Vec<f32>],
    batch: usize,
    before: &[Vec<f32>],
) -> (bool, Vec<Vec<f32>>) {
    let changed = pass(graph).unwrap_or_else(|e| panic!("{name}: {e}"));
    ir::validate(graph).unwrap_or_else(|e| panic!("invalid after {name}: {e}"));
    let after = run(graph, inputs, batch);
    let rel = rel_diff(&after, before);
    assert!(
        rel <= 1e-5,
        "{name} changed the outputs: relative difference {rel:e}"
    );
    (changed, after)
}

struct Builder {
    graph: Graph,
    rng: Rng,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            graph: Graph::new(),
            rng: Rng(7),
        }
    }

    fn input(&mut self, c: usize, hw: usize) -> NodeId {
        self.graph
            .add_input("x", TensorType::f32(Shape::nchw(c, hw, hw)))
    }

    fn weight(&mut self, name: &str, dims: Vec<usize>) -> ir::WeightId {
        let data = self.rng.vec(dims.iter().product());
        self.graph.weights.add(name, dims, data)
    }

    fn conv(&mut self, name: &str, x: NodeId, cout: usize, k: usize, stride: usize) -> NodeId {
        let cin = self.graph.node(x).output.shape.chw().unwrap().0;
        let weight = self.weight(&format!("{name}.weight"), vec![cout, cin, k, k]);
        let op = Op::Conv(Conv {
            weight,
            bias: None,
            in_channels: cin,
            out_channels: cout,
            group: 1,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [k / 2; 4],
            epilogue: Epilogue::default(),
            kernel_choice: ConvKernel::Reference,
        });
        self.graph.add_node(name, op, &[x]).unwrap()
    }

    fn bn(&mut self, name: &str, x: NodeId) -> NodeId {
        let c = self.graph.node(x).output.shape.per_item().unwrap()[0];
        let scale = self.weight(&format!("{name}.gamma"), vec![c]);
        let bias = self.weight(&format!("{name}.beta"), vec![c]);
        let mean = self.weight(&format!("{name}.mean"), vec![c]);
        let var_data: Vec<f32> = (0..c).map(|_| 0.5 + self.rng.next().abs()).collect();
        let var = self
            .graph
            .weights
            .add(format!("{name}.var"), vec![c], var_data);
        let op = Op::BatchNorm(BatchNorm {
            scale,
            bias,
            mean,
            var,
            epsilon: 1e-5,
        });
        self.graph.add_node(name, op, &[x]).unwrap()
    }

    fn op(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        self.graph.add_node(name, op, inputs).unwrap()
    }

    fn output(mut self, x: NodeId) -> Graph {
        self.graph.outputs.push((x, "y".into()));
        ir::validate(&self.graph).unwrap();
        self.graph
    }
}

fn relu() -> Op {
    Op::Relu
}

fn add() -> Op {
    Op::Add {
        activation: Activation::None,
    }
}

fn conv_of(graph: &Graph, name: &str) -> Conv {
    let id = find(graph, name);
    match &graph.node(id).op {
        Op::Conv(c) => c.clone(),
        other => panic!("{name} is {}", other.name()),
    }
}

fn find(graph: &Graph, name: &str) -> NodeId {
    graph
        .nodes
        .node_indices()
        .find(|&n| graph.node(n).name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// Runs the whole pipeline pass by pass through `check_pass`, as the pipeline orders them. The
/// interpreter runs once per pass and once before the first: each pass is checked against the
/// outputs the previous one was checked with.
fn check_pipeline(graph: &mut Graph, batch: usize, seed: u64) -> Vec<(&'static str, bool)> {
    let inputs = random_inputs(graph, batch, seed);
    let list: [(&'static str, Pass); 4] = [
        ("simplify", simplify),
        ("fold-batch-norm", fold_batch_norm),
        ("fuse-epilogue", fuse_epilogue),
        ("simplify", simplify),
    ];
    let mut outputs = run(graph, &inputs, batch);
    list.iter()
        .map(|&(name, pass)| {
            let (changed, after) = check_pass_from(graph, name, pass, &inputs, batch, &outputs);
            outputs = after;
            (name, changed)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Hand-built graphs

/// A ResNet bottleneck with a downsample conv listed AFTER the main path (as torchvision exports it):
/// the Add must fuse into the main path's last conv, the downsample becoming its residual.
#[test]
fn residual_add_fuses_into_the_main_path_conv_not_the_downsample() {
    let mut b = Builder::new();
    let x = b.input(8, 8);
    let c1 = b.conv("conv1", x, 4, 1, 1);
    let n1 = b.bn("bn1", c1);
    let r1 = b.op("relu1", relu(), &[n1]);
    let c2 = b.conv("conv2", r1, 4, 3, 2);
    let n2 = b.bn("bn2", c2);
    let r2 = b.op("relu2", relu(), &[n2]);
    let c3 = b.conv("conv3", r2, 16, 1, 1);
    let n3 = b.bn("bn3", c3);
    let ds = b.conv("downsample", x, 16, 1, 2);
    let nd = b.bn("downsample.bn", ds);
    let sum = b.op("add", add(), &[n3, nd]);
    let out = b.op("relu3", relu(), &[sum]);
    let mut g = b.output(out);

    let fired = check_pipeline(&mut g, 2, 1);
    assert_eq!(
        fired,
        [
            ("simplify", false),
            ("fold-batch-norm", true),
            ("fuse-epilogue", true),
            ("simplify", false)
        ]
    );
    assert_eq!(count(&g, "Conv"), 4);
    assert_eq!(g.nodes.node_count(), 5, "{}", passes::graph_text(&g));
    let conv3 = conv_of(&g, "conv3");
    assert_eq!(
        conv3.epilogue,
        Epilogue {
            residual: true,
            activation: Activation::Relu
        }
    );
    assert!(conv3.bias.is_some());
    assert_eq!(
        g.inputs_of(find(&g, "conv3")),
        [find(&g, "conv2"), find(&g, "downsample")]
    );
    assert_eq!(conv_of(&g, "downsample").epilogue, Epilogue::default());
    assert_eq!(conv_of(&g, "conv1").epilogue.activation, Activation::Relu);
    assert_eq!(g.outputs[0].0, find(&g, "conv3"));
}

/// A conv whose value is also read by another node cannot take the Relu (the other reader needs the
/// value before it); a Relu read by two nodes can be fused, both readers then read the conv.
#[test]
fn activation_fuses_only_into_a_single_reader_producer() {
    let mut b = Builder::new();
    let x = b.input(4, 6);
    let shared = b.conv("shared", x, 4, 3, 1);
    let r = b.op("relu_of_shared", relu(), &[shared]);
    let side = b.conv("side", shared, 4, 1, 1); // a second reader of `shared`
    let lone = b.conv("lone", r, 4, 3, 1);
    let r2 = b.op("relu_of_lone", relu(), &[lone]); // read twice below
    let left = b.conv("left", r2, 4, 1, 1);
    let right = b.conv("right", r2, 4, 1, 1);
    let s1 = b.op("add1", add(), &[left, right]);
    let s2 = b.op("add2", add(), &[s1, side]);
    let mut g = b.output(s2);

    check_pipeline(&mut g, 2, 2);
    assert_eq!(conv_of(&g, "shared").epilogue.activation, Activation::None);
    assert_eq!(count(&g, "Relu"), 1, "{}", passes::graph_text(&g));
    assert_eq!(conv_of(&g, "lone").epilogue.activation, Activation::Relu);
    assert_eq!(g.consumers(find(&g, "lone")).len(), 2);
}

/// BatchNorm with no conv to fold into (after the input, or after a conv read twice) becomes a
/// ScaleShift, which then takes the following Relu.
#[test]
fn batch_norm_without_a_foldable_conv_becomes_scale_shift() {
    let mut b = Builder::new();
    let x = b.input(3, 5);
    let pre = b.bn("pre_bn", x);
    let pre_relu = b.op("pre_relu", relu(), &[pre]);
    let c = b.conv("conv", pre_relu, 6, 3, 1);
    let n = b.bn("bn_of_read_twice_conv", c);
    let side = b.op(
        "pool",
        Op::MaxPool(Pool {
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        }),
        &[c],
    );
    let s = b.op("add", add(), &[n, side]);
    let r = b.op("relu", relu(), &[s]);
    let mut g = b.output(r);

    check_pipeline(&mut g, 2, 3);
    assert_eq!(count(&g, "BatchNormalization"), 0);
    assert_eq!(count(&g, "ScaleShift"), 2);
    assert_eq!(count(&g, "Relu"), 0, "{}", passes::graph_text(&g));
    let pre = find(&g, "pre_bn");
    assert!(matches!(
        &g.node(pre).op,
        Op::ScaleShift(s) if s.activation == Activation::Relu
    ));
    assert!(matches!(
        g.node(find(&g, "add")).op,
        Op::Add {
            activation: Activation::Relu
        }
    ));
}

/// BN after Dense folds; Identity and GAP(keep_dims) → Flatten simplify; a dead branch goes; a Relu
/// after a ReLU-fused node goes; Clip fuses as the activation.
#[test]
fn simplify_and_dense_fold() {
    let mut b = Builder::new();
    let x = b.input(4, 4);
    let c = b.conv("conv", x, 8, 3, 1);
    let clip = b.op("relu6", Op::Clip { min: 0.0, max: 6.0 }, &[c]);
    let again = b.op("relu_again", relu(), &[clip]);
    let id = b.op("dropout", Op::Identity, &[again]);
    let _dead = b.conv("dead", id, 2, 1, 1);
    let gap = b.op("gap", Op::GlobalAveragePool { keep_dims: true }, &[id]);
    let flat = b.op("flatten", Op::Flatten { axis: 1 }, &[gap]);
    let w = b.weight("fc.weight", vec![5, 8]);
    let fc = b.op(
        "fc",
        Op::Dense(Dense {
            weight: w,
            bias: None,
            in_features: 8,
            out_features: 5,
            epilogue: Epilogue::default(),
            kernel: resnext_compiler::ir::DenseKernel::Reference,
        }),
        &[flat],
    );
    let n = b.bn("fc.bn", fc);
    let mut g = b.output(n);

    check_pipeline(&mut g, 3, 4);
    let ops: BTreeMap<&str, usize> = g.op_counts();
    assert_eq!(
        ops,
        BTreeMap::from([
            ("Conv", 1),
            ("Dense", 1),
            ("GlobalAveragePool", 1),
            ("Input", 1)
        ]),
        "{}",
        passes::graph_text(&g)
    );
    assert_eq!(
        conv_of(&g, "conv").epilogue.activation,
        Activation::Clip { min: 0.0, max: 6.0 }
    );
    assert!(matches!(
        g.node(find(&g, "gap")).op,
        Op::GlobalAveragePool { keep_dims: false }
    ));
    assert!(matches!(&g.node(find(&g, "fc")).op, Op::Dense(d) if d.bias.is_some()));
}

#[test]
fn pipeline_options_stop_print_and_reject_unknown_passes() {
    let graph = || {
        let mut b = Builder::new();
        let x = b.input(2, 4);
        let c = b.conv("conv", x, 2, 1, 1);
        let n = b.bn("bn", c);
        let r = b.op("relu", relu(), &[n]);
        b.output(r)
    };
    let mut g = graph();
    let opts = PassOptions {
        verify: true,
        stop_after: Some("fold-batch-norm".into()),
        print_after: Some("fold-batch-norm".into()),
        ..PassOptions::default()
    };
    let report = passes::optimize(&mut g, &opts).unwrap();
    let names: Vec<_> = report.passes.iter().map(|p| p.name).collect();
    assert_eq!(names, ["simplify", "fold-batch-norm"]);
    assert!(report.memory.is_none());
    let printed = report.passes[1].printed.as_deref().unwrap();
    assert!(printed.contains("%relu = Relu(%conv)"), "{printed}");
    assert_eq!(count(&g, "Relu"), 1);

    let mut g = graph();
    let opts = PassOptions {
        verify: true,
        ..PassOptions::default()
    };
    let report = passes::optimize(&mut g, &opts).unwrap();
    assert_eq!(report.passes.len(), passes::PASSES.len() + 1);
    assert_eq!(
        (report.passes[4].nodes_before, report.passes[4].nodes_after),
        (2, 2)
    );
    assert!(report.memory.is_some());
    assert!(report.summary().contains("peak activation memory"));

    let bad = PassOptions {
        stop_after: Some("fold-bn".into()),
        ..PassOptions::default()
    };
    let err = passes::optimize(&mut graph(), &bad).unwrap_err();
    assert!(matches!(err, PassError::UnknownPass(_)));
    assert!(err.to_string().contains("fold-batch-norm"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Memory plan

/// Checks a plan against liveness computed here: every non-input value has a slot inside the arena,
/// and two values live at the same step never overlap unless the plan says one reuses the other.
fn check_plan(graph: &Graph, plan: &MemoryPlan) {
    let order = graph.topo_order().unwrap();
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut live: Vec<(NodeId, usize, usize)> = Vec::new();
    for &id in &order {
        if matches!(graph.node(id).op, Op::Input) {
            continue;
        }
        let (offset, len) = plan.offsets[&id];
        assert_eq!(len, graph.node(id).output.shape.item_len().unwrap());
        assert!(offset + len <= plan.arena_len_per_item);
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
    let root = |mut n: NodeId| {
        while let Some(&a) = plan.aliases.get(&n) {
            n = a;
        }
        n
    };
    for (i, &(a, a0, a1)) in live.iter().enumerate() {
        for &(b, b0, b1) in &live[i + 1..] {
            if a0 > b1 || b0 > a1 || root(a) == root(b) {
                continue;
            }
            let ((oa, la), (ob, lb)) = (plan.offsets[&a], plan.offsets[&b]);
            assert!(
                oa + la <= ob || ob + lb <= oa,
                "`{}` and `{}` are live together but overlap",
                graph.node(a).name,
                graph.node(b).name
            );
        }
    }
    assert_eq!(plan.peak_bytes_per_item, 4 * plan.arena_len_per_item);
}

/// The largest `(sum of the two largest values live at one step)` and `(sum of all values live at one
/// step)`, elements per item, computed independently of the planner.
fn liveness_bounds(graph: &Graph) -> (usize, usize) {
    let order = graph.topo_order().unwrap();
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut intervals = Vec::new();
    for &id in &order {
        if matches!(graph.node(id).op, Op::Input) {
            continue;
        }
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
        intervals.push((
            pos[&id],
            last,
            graph.node(id).output.shape.item_len().unwrap(),
        ));
    }
    let mut pair = 0;
    let mut total = 0;
    for step in 0..=order.len() {
        let mut sizes: Vec<usize> = intervals
            .iter()
            .filter(|(a, b, _)| *a <= step && step <= *b)
            .map(|i| i.2)
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        pair = pair.max(sizes.iter().take(2).sum());
        total = total.max(sizes.iter().sum());
    }
    (pair, total)
}

#[test]
fn memory_plan_reuses_dead_values_and_never_overlaps_live_ones() {
    let mut b = Builder::new();
    let x = b.input(4, 8);
    let mut v = b.conv("c0", x, 8, 3, 1);
    let first = v;
    for i in 1..6 {
        let c = b.conv(&format!("c{i}"), v, 8, 3, 1);
        v = b.op(&format!("r{i}"), relu(), &[c]);
    }
    let s = b.op("skip", add(), &[v, first]); // keeps c0 live to the end
    let f = b.op("flat", Op::Flatten { axis: 1 }, &[s]);
    let g = b.output(f);
    let info = ir::validate(&g).unwrap();
    let each = 8 * 8 * 8;
    for opts in [
        PlanOptions::default(),
        PlanOptions {
            views: true,
            in_place: true,
            concat_in_place: true,
        },
    ] {
        let plan = plan_memory(&g, &info, &opts).unwrap();
        check_plan(&g, &plan);
        // 13 values of 512 elements; at most three are live at once (c0, the current input and
        // output), plus the flattened copy at the end when views are off.
        assert!(plan.arena_len_per_item <= 3 * each, "{}", plan.text(&g));
        assert_eq!(plan.lower_bound_per_item, 3 * each);
        if opts.in_place {
            assert!(plan.aliases.contains_key(&find(&g, "r1")));
            assert_eq!(plan.aliases.get(&find(&g, "flat")), Some(&s));
        } else {
            assert!(plan.aliases.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared models

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

fn load(path: &Path) -> Graph {
    resnext_compiler::front::onnx::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shared-model check: every pass keeps the outputs; BN, Relu/Clip and Add are all gone; the
/// final graph still matches PyTorch's logits; the memory plan is sound.
fn check_model(file: &str, activation_op: &str, batch: usize) {
    let mut g = load(&testdata(&format!("{file}.onnx")));
    let before = g.op_counts();
    println!("{file} before: {before:?}");
    assert!(before["BatchNormalization"] > 0 && before[activation_op] > 0);
    let fired = check_pipeline(&mut g, batch, 11);
    let after = g.op_counts();
    println!("{file} after: {after:?}");
    assert!(
        fired[1].1 && fired[2].1,
        "fold and fuse must fire: {fired:?}"
    );
    for op in [
        "BatchNormalization",
        "Relu",
        "Clip",
        "Add",
        "ScaleShift",
        "Identity",
    ] {
        assert_eq!(
            count(&g, op),
            0,
            "{op} left in {file}:\n{}",
            passes::graph_text(&g)
        );
    }
    assert_eq!(after["Conv"], before["Conv"]);

    // Independent oracle: PyTorch's logits for the shipped input.
    let (shape, input) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.input.npy")))
            .unwrap();
    let (_, expected) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.output.npy")))
            .unwrap();
    let got = run(&g, &[input], shape[0]);
    let rel = rel_diff(&got, &[expected]);
    assert!(rel <= 1e-4, "{file} after passes vs PyTorch: {rel:e}");

    let info = ir::validate(&g).unwrap();
    let plan = plan_memory(&g, &info, &PlanOptions::default()).unwrap();
    check_plan(&g, &plan);
    let (pair, total) = liveness_bounds(&g);
    println!(
        "{file}: arena {} elements/item, live lower bound {total}, largest live pair {pair}",
        plan.arena_len_per_item
    );
    assert!(plan.arena_len_per_item as f64 <= 1.5 * pair as f64);
}

#[test]
fn passes_keep_resnext_small_outputs() {
    check_model("resnext_small_8x4d_bn", "Relu", 2);
}

#[test]
fn passes_keep_mobilenet_v2_outputs() {
    check_model("mobilenet_v2_bn", "Clip", 1);
}

/// Every squeeze-excite block of torchvision's EfficientNet, MobileNetV3 and RegNetY (both exporters'
/// spellings) becomes one node in `select-kernels`, keeping the outputs; the result still matches
/// PyTorch's logits.
#[test]
fn squeeze_excite_blocks_fuse_into_one_node() {
    for (file, blocks) in [
        ("efficientnet_v1_mini.dynamo", 7),
        ("mobilenet_v3_mini.ts9", 9),
        ("regnet_y_mini.ts17", 6),
    ] {
        let mut g = load(&testdata(&format!("families/{file}.onnx")));
        check_pipeline(&mut g, 2, 5);
        let pools = count(&g, "GlobalAveragePool");
        let inputs = random_inputs(&g, 2, 9);
        assert!(check_pass(
            &mut g,
            "select-kernels",
            select_kernels_nchw,
            &inputs,
            2
        ));
        assert_eq!(
            count(&g, "SqueezeExcite"),
            blocks,
            "{file}:\n{}",
            passes::graph_text(&g)
        );
        assert_eq!(count(&g, "Mul"), 0, "{file}:\n{}", passes::graph_text(&g));
        assert_eq!(count(&g, "GlobalAveragePool"), pools - blocks, "{file}");

        let model = file.split('.').next().unwrap();
        let read = |suffix: &str| {
            resnext_runtime_core::formats::npy::read_f32(testdata(&format!(
                "families/{model}.{suffix}.npy"
            )))
            .unwrap()
        };
        let ((shape, input), (_, expected)) = (read("input"), read("output"));
        let rel = rel_diff(&run(&g, &[input], shape[0]), &[expected]);
        assert!(
            rel <= 1e-4,
            "{file} after select-kernels vs PyTorch: {rel:e}"
        );
    }
}

mod with_models {
    use super::*;

    /// The headline model: nothing but convs, pools and the classifier left; peak activation memory
    /// within 1.5× the largest pair of values that must be live together.
    #[test]
    #[ignore = "needs RESNEXT_MODELS"]
    fn resnext50_after_passes() {
        let dir = models_dir();
        let path = dir.join("resnext50_32x4d_bn.onnx");
        let mut g = load(&path);
        assert_eq!(count(&g, "BatchNormalization"), 53);
        let opts = PassOptions {
            verify: true,
            layout: LayoutChoice::Nchw8c,
            ..PassOptions::default()
        };
        let report = passes::optimize(&mut g, &opts).unwrap();
        println!("{}", report.summary());
        let ops = g.op_counts();
        println!("resnext50 after passes: {ops:?}");
        for op in [
            "BatchNormalization",
            "Relu",
            "Add",
            "ScaleShift",
            "Identity",
        ] {
            assert_eq!(count(&g, op), 0, "{op} left");
        }
        assert_eq!(ops["Conv"], 53);
        // Every conv after the stem on NCHW8c: one reorder after the max pool, one before the pool.
        assert_eq!(nchw8c_convs(&g), (52, 2));
        let residual = g
            .nodes
            .node_weights()
            .filter(|n| matches!(&n.op, Op::Conv(c) if c.epilogue.residual))
            .count();
        assert_eq!(residual, 16);
        let plan = report.memory.expect("plan-memory ran");
        check_plan(&g, &plan);
        let (pair, total) = liveness_bounds(&g);
        println!(
            "resnext50: peak {} bytes/item, live lower bound {} bytes, largest pair {} bytes",
            plan.peak_bytes_per_item,
            total * 4,
            pair * 4
        );
        assert!(plan.arena_len_per_item as f64 <= 1.5 * pair as f64);

        // The same through the CLI: `inspect --after-passes --format json`.
        let out = resnextc(&[
            "inspect",
            path.to_str().unwrap(),
            "--after-passes",
            "--format",
            "json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let nodes = doc["nodes"].as_array().unwrap();
        for op in ["BatchNormalization", "Relu", "Add"] {
            assert!(!nodes.iter().any(|n| n["op"] == op), "{op} left");
        }
        let peak = doc["totals"]["peak_activation_bytes"].as_u64().unwrap();
        println!("inspect: peak_activation_bytes {peak}");
        assert_eq!(peak as usize, plan.peak_bytes_per_item);
        assert!(peak as f64 <= 1.5 * (4 * pair) as f64);
    }
}

// ---------------------------------------------------------------------------------------------
// The command line

fn resnextc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_resnextc"))
        .args(args)
        .output()
        .expect("resnextc runs")
}

/// `--stop-after`/`--print-after` bisect: the printed graph is the one after the named pass, and the
/// crate is written from the graph as it was when the pipeline stopped.
#[test]
fn cli_stop_after_and_print_after() {
    let dir = tempfile::tempdir().unwrap();
    let model = testdata("resnext_small_8x4d_bn.onnx");
    let out = resnextc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--stop-after",
        "fold-batch-norm",
        "--print-after",
        "fold-batch-norm",
        "--verify",
        "-v",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("// graph after fold-batch-norm"),
        "{stdout}"
    );
    assert!(!stdout.contains("BatchNormalization"), "{stdout}");
    assert_eq!(stdout.matches(" = Relu(").count(), 13, "{stdout}");
    assert!(
        stderr.contains("fold-batch-norm") && !stderr.contains("fuse-epilogue"),
        "{stderr}"
    );

    let bad = resnextc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        "x",
        "--stop-after",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fuse-epilogue"));
}

/// `--layout nchw8c` runs the small ResNeXt's convs after the stem on NCHW8c (two reorders),
/// `--layout nchw` none; `auto` (the default) is `nchw8c` unless the kernel tier is AVX-512.
#[test]
fn cli_layout_chooses_the_activation_layout() {
    use resnext_runtime_core::exec::isa::Isa;
    let model = testdata("resnext_small_8x4d_bn.onnx");
    let counts = |isa: &str, layout: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "compile",
            model.to_str().unwrap(),
            "-o",
            dir.path().to_str().unwrap(),
            "--print-after",
            "select-kernels",
            "-v",
        ];
        args.extend_from_slice(layout);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_resnextc"))
            .args(&args)
            .env("RESNEXT_ISA", isa)
            .output()
            .expect("resnextc runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let counts = (
            stdout.matches("Reorder").count(),
            stdout.matches("nchw8c").count(),
        );
        (counts, stderr)
    };
    let ((reorders, blocked), stderr) = counts("avx2", &["--layout", "nchw8c"]);
    assert_eq!(reorders, 2);
    assert!(blocked > 2);
    assert!(
        stderr.contains("layout NCHW8c where it pays (Nchw8c)"),
        "{stderr}"
    );
    let (nchw, stderr) = counts("avx2", &["--layout", "nchw"]);
    assert_eq!(nchw, (0, 0));
    assert!(stderr.contains("layout NCHW (Nchw)"), "{stderr}");
    // `auto`: the tier named by RESNEXT_ISA where this CPU has it.
    assert_eq!(counts("generic", &[]).0, (reorders, blocked));
    let avx512 = Isa::Avx512.supported();
    let expected = if avx512 { (0, 0) } else { (reorders, blocked) };
    assert_eq!(counts("avx512", &[]).0, expected, "AVX-512 here: {avx512}");
}

/// The convs `select-kernels` put on NCHW8c, and the reorders it inserted.
fn nchw8c_convs(graph: &Graph) -> (usize, usize) {
    let blocked = graph
        .nodes
        .node_weights()
        .filter(|n| matches!(&n.op, Op::Conv(c) if matches!(c.kernel_choice, ConvKernel::Fast(a) if a.is_nchw8c())))
        .count();
    (blocked, count(graph, "Reorder"))
}

/// `select-kernels` runs every conv of the small ResNeXt after its stem on NCHW8c, with one
/// reorder in (after the max pool) and one out (before the global pool), and keeps the outputs
/// (the interpreter runs the chosen kernels: before vs after, and against PyTorch); on MobileNetV2,
/// whose depthwise convs cut its 1×1 convs into pairs, reorders would cost more than they save and
/// everything stays NCHW.
#[test]
fn select_kernels_puts_resnext_on_nchw8c_and_not_mobilenet() {
    for (file, batch, want) in [
        ("resnext_small_8x4d_bn", 2, true),
        ("mobilenet_v2_bn", 1, false),
    ] {
        let mut g = load(&testdata(&format!("{file}.onnx")));
        check_pipeline(&mut g, batch, 5);
        let inputs = random_inputs(&g, batch, 9);
        let changed = check_pass(
            &mut g,
            "select-kernels",
            passes::select_kernels,
            &inputs,
            batch,
        );
        assert!(changed);
        let (blocked, reorders) = nchw8c_convs(&g);
        println!("{file}: {blocked} NCHW8c convs, {reorders} reorders");
        if want {
            assert_eq!(blocked, count(&g, "Conv") - 1, "{}", passes::graph_text(&g));
            assert_eq!(reorders, 2, "{}", passes::graph_text(&g));
        } else {
            assert_eq!((blocked, reorders), (0, 0), "{}", passes::graph_text(&g));
        }
        let (shape, input) =
            resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.input.npy")))
                .unwrap();
        let (_, expected) =
            resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.output.npy")))
                .unwrap();
        let rel = rel_diff(&run(&g, &[input], shape[0]), &[expected]);
        assert!(
            rel <= 1e-4,
            "{file} after select-kernels vs PyTorch: {rel:e}"
        );
    }
}

/// `LayoutChoice::Nchw` (`resnextc compile --layout nchw`): the same small ResNeXt keeps every
/// value NCHW (no blocked conv, no reorder) and still matches PyTorch.
#[test]
fn layout_nchw_keeps_every_value_nchw() {
    let file = "resnext_small_8x4d_bn";
    let mut g = load(&testdata(&format!("{file}.onnx")));
    let opts = PassOptions {
        verify: true,
        layout: LayoutChoice::Nchw,
        ..PassOptions::default()
    };
    passes::optimize(&mut g, &opts).unwrap();
    assert_eq!(nchw8c_convs(&g), (0, 0), "{}", passes::graph_text(&g));
    let fast = g
        .nodes
        .node_weights()
        .filter(|n| matches!(&n.op, Op::Conv(c) if matches!(c.kernel_choice, ConvKernel::Fast(_))))
        .count();
    assert_eq!(
        fast,
        count(&g, "Conv"),
        "every conv still gets a fast NCHW kernel"
    );
    let (shape, input) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.input.npy")))
            .unwrap();
    let (_, expected) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.output.npy")))
            .unwrap();
    let rel = rel_diff(&run(&g, &[input], shape[0]), &[expected]);
    assert!(rel <= 1e-4, "{file} on NCHW vs PyTorch: {rel:e}");
}

/// The convs of `graph` running `algo`.
fn convs_on(graph: &Graph, algo: resnext_runtime_core::kernels::conv::ConvAlgo) -> usize {
    graph
        .nodes
        .node_weights()
        .filter(|n| matches!(&n.op, Op::Conv(c) if c.kernel_choice == ConvKernel::Fast(algo)))
        .count()
}

/// `WinogradChoice::Always` runs every dense 3×3 stride-1 conv of the basic-block ResNet on
/// Winograd F(4×4, 3×3), `Never` none of them, the default (`Accurate`) only F(2×2, 3×3); the
/// interpreter runs the chosen kernels: within 1e-4 of PyTorch, as the family tests require.
#[test]
fn winograd_choice_forces_either_path() {
    use resnext_runtime_core::kernels::conv::ConvAlgo;
    let file = "families/resnet_basic_mini";
    let (shape, input) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.input.npy")))
            .unwrap();
    let (_, expected) =
        resnext_runtime_core::formats::npy::read_f32(testdata(&format!("{file}.output.npy")))
            .unwrap();
    assert_eq!(
        passes::WinogradChoice::default(),
        passes::WinogradChoice::Accurate
    );
    for choice in [
        passes::WinogradChoice::Always,
        passes::WinogradChoice::Never,
        passes::WinogradChoice::Accurate,
        passes::WinogradChoice::Fast,
    ] {
        let mut g = load(&testdata(&format!("{file}.dynamo.onnx")));
        check_pipeline(&mut g, 1, 3);
        passes::select_kernels_nchw_with(&mut g, choice).unwrap();
        let f2 = convs_on(&g, ConvAlgo::Winograd2x2);
        let f4 = convs_on(&g, ConvAlgo::Winograd4x4);
        let (want_f2, want_f4) = match choice {
            passes::WinogradChoice::Always => (Some(false), true),
            passes::WinogradChoice::Never => (Some(false), false),
            passes::WinogradChoice::Accurate => (None, false),
            passes::WinogradChoice::Fast => (None, f4 > 0),
        };
        if let Some(want) = want_f2 {
            assert_eq!(f2 > 0, want, "{choice:?}: {f2} F(2×2) convs");
        }
        assert_eq!(f4 > 0, want_f4, "{choice:?}: {f4} F(4×4) convs");
        let rel = rel_diff(
            &run(&g, std::slice::from_ref(&input), shape[0]),
            std::slice::from_ref(&expected),
        );
        println!("{choice:?}: {f2} F(2×2) and {f4} F(4×4) convs, {rel:e} from PyTorch");
        assert!(rel <= 1e-4, "{choice:?} vs PyTorch: {rel:e}");
    }
}
