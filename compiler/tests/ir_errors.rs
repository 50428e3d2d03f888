//! Malformed graphs that ONNX cannot express directly, built by hand on the IR: cycles, dangling
//! edges, absurd windows. `validate` and the whole pipeline must return an error naming the node.
//!
//! Every pipeline call runs on a watchdog thread, so a hang fails the test instead of stalling CI.

use std::sync::mpsc;
use std::time::Duration;

use resnext_compiler::driver::{self, Options};
use resnext_compiler::ir::{
    self, Conv, ConvKernel, Epilogue, Graph, IrError, NodeId, Op, Pool, Shape, TensorType,
};

/// `x: [N, 4, 8, 8] -> Relu "a" -> Relu "b" -> output`.
fn chain() -> (Graph, NodeId, NodeId, NodeId) {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(Shape::nchw(4, 8, 8)));
    let a = g.add_node("a", Op::Relu, &[x]).expect("relu a");
    let b = g.add_node("b", Op::Relu, &[a]).expect("relu b");
    g.outputs.push((b, "y".into()));
    (g, x, a, b)
}

/// Runs the full pipeline (passes, then validation) on `graph` within 60 s; returns its error text.
fn pipeline_error(graph: Graph) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = driver::compile(graph, &Options::default()).map(|_| ());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(())) => panic!("the pipeline accepted a malformed graph"),
        Ok(Err(e)) => {
            let text = format!("{:#}", anyhow::Error::new(e));
            eprintln!("pipeline error: {text}");
            text
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the pipeline hung (> 60 s)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the pipeline panicked"),
    }
}

fn validate_errors(graph: &Graph) -> Vec<IrError> {
    match ir::validate(graph) {
        Ok(_) => panic!("validate accepted a malformed graph"),
        Err(e) => {
            eprintln!("validate: {e}");
            e.0
        }
    }
}

#[test]
fn the_chain_is_valid() {
    let (g, ..) = chain();
    ir::validate(&g).expect("valid");
    driver::compile(g, &Options::default()).expect("compiles");
}

#[test]
fn a_cycle_is_an_error_naming_a_node_on_it() {
    let (mut g, _, a, b) = chain();
    // a now reads b, and b reads a.
    g.set_inputs(a, &[b]);
    let errors = validate_errors(&g);
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, IrError::Cycle { node } if node == "a" || node == "b")),
        "{errors:?}"
    );
    assert!(g.topo_order().is_err());
    let text = pipeline_error(g);
    assert!(text.contains("cycle"), "{text}");
}

#[test]
fn a_self_loop_is_a_cycle() {
    let (mut g, _, a, _) = chain();
    g.set_inputs(a, &[a]);
    let errors = validate_errors(&g);
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, IrError::Cycle { node } if node == "a")),
        "{errors:?}"
    );
    pipeline_error(g);
}

#[test]
fn a_removed_producer_leaves_a_dangling_edge_named_by_its_consumer() {
    let (mut g, _, a, _) = chain();
    g.remove_node(a);
    let errors = validate_errors(&g);
    let text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(text.contains("Relu node `b`"), "{text}");
    let text = pipeline_error(g);
    assert!(text.contains("`b`"), "{text}");
}

#[test]
fn an_edge_into_a_missing_slot_is_named() {
    let (mut g, x, _, b) = chain();
    g.nodes.add_edge(x, b, ir::Edge { slot: 3 });
    let text = validate_errors(&g)
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        text.contains("Relu node `b`") && text.contains("slots"),
        "{text}"
    );
    pipeline_error(g);
}

#[test]
fn an_output_of_a_removed_node_is_named() {
    let (mut g, _, _, b) = chain();
    g.remove_node(b);
    let text = validate_errors(&g)
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(text.contains("`y`") && text.contains("removed"), "{text}");
    pipeline_error(g);
}

fn conv(g: &mut Graph, kernel: [usize; 2], pads: [usize; 4], dilation: [usize; 2]) -> Op {
    let weight = g.weights.add(
        "w",
        vec![4, 4, kernel[0].min(3), kernel[1].min(3)],
        vec![0.5; 4 * 4 * kernel[0].min(3) * kernel[1].min(3)],
    );
    Op::Conv(Conv {
        weight,
        bias: None,
        in_channels: 4,
        out_channels: 4,
        group: 1,
        kernel,
        stride: [1, 1],
        dilation,
        pads,
        epilogue: Epilogue::default(),
        kernel_choice: ConvKernel::Reference,
    })
}

/// Builds the op under test, adding any weights it needs to the graph.
type MakeOp = Box<dyn Fn(&mut Graph) -> Op>;

fn pool(kernel: [usize; 2], pads: [usize; 4]) -> Op {
    Op::MaxPool(Pool {
        kernel,
        stride: [1, 1],
        pads,
        ceil_mode: false,
        count_include_pad: false,
    })
}

/// Windows that cannot be placed: a kernel larger than the padded input, absurd pads, kernel or
/// dilation (no overflow), a zero kernel. `add_node` refuses them with the node and op named.
#[test]
fn impossible_windows_are_errors_naming_node_and_op() {
    let huge = usize::MAX / 2 + 1;
    let cases: Vec<(&str, MakeOp, &str)> = vec![
        (
            "conv kernel 11 > 8 + 2",
            Box::new(|g| conv(g, [11, 3], [1; 4], [1, 1])),
            "larger than the padded input",
        ),
        (
            "conv huge pads",
            Box::new(move |g| conv(g, [3, 3], [huge, 0, huge, 0], [1, 1])),
            "no valid window",
        ),
        (
            "conv huge dilation",
            Box::new(move |g| conv(g, [3, 3], [0; 4], [huge, 1])),
            "no valid window",
        ),
        (
            "conv huge kernel",
            Box::new(|g| conv(g, [usize::MAX, 3], [0; 4], [1, 1])),
            "larger than the padded input",
        ),
        (
            "conv zero kernel",
            Box::new(|g| conv(g, [0, 3], [0; 4], [1, 1])),
            "positive",
        ),
        (
            "pool kernel 9 > 8",
            Box::new(|_| pool([9, 2], [0; 4])),
            "larger than the padded input",
        ),
        (
            "pool huge pads",
            Box::new(move |_| pool([2, 2], [0, huge, 0, huge])),
            "smaller than the kernel",
        ),
        (
            "pool pads as large as the kernel (a window wholly in padding)",
            Box::new(|_| pool([3, 3], [0, 3, 0, 0])),
            "smaller than the kernel",
        ),
    ];
    for (what, make, expected) in cases {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::f32(Shape::nchw(4, 8, 8)));
        let op = make(&mut g);
        let op_name = op.name();
        let err = g
            .add_node("bad", op.clone(), &[x])
            .expect_err(what)
            .to_string();
        eprintln!("{what}: {err}");
        assert!(
            err.contains(&format!("{op_name} node `bad`")) && err.contains(expected),
            "{what}: {err}"
        );
        // The same op smuggled into a graph (as a pass could) is caught by validate and by the
        // pipeline.
        let id = g.nodes.add_node(ir::Node {
            name: "bad".into(),
            op,
            output: TensorType::f32(Shape::nchw(4, 8, 8)),
        });
        g.nodes.add_edge(x, id, ir::Edge { slot: 0 });
        g.outputs.push((id, "y".into()));
        let text = validate_errors(&g)
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(text.contains("node `bad`"), "{what}: {text}");
        pipeline_error(g);
    }
}

/// Layout rules: only convs and reorders take NCHW8c values, a conv's kernel must read its input's
/// layout, and a reorder needs whole blocks of 8 channels and another layout. Each is refused by
/// `add_node` with the node and op named.
#[test]
fn layout_mismatches_are_errors_naming_node_and_op() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(Shape::nchw(16, 8, 8)));
    let blocked = g
        .add_node(
            "to8c",
            Op::Reorder {
                to: ir::Layout::Nchw8c,
            },
            &[x],
        )
        .expect("16 channels reorder to NCHW8c");
    let expect_err = |g: &Graph, name: &str, op: Op, inputs: &[NodeId], want: &str| {
        let e = g.infer(name, &op, inputs).expect_err(name).to_string();
        eprintln!("{e}");
        assert!(e.contains(name) && e.contains(op.name()), "{e}");
        assert!(e.contains(want), "{name}: {e}");
    };
    expect_err(&g, "pool8c", pool([3, 3], [1; 4]), &[blocked], "not NCHW8c");
    expect_err(&g, "relu8c", Op::Relu, &[blocked], "not NCHW8c");
    let op = conv(&mut g, [3, 3], [1; 4], [1, 1]);
    let op = match op {
        Op::Conv(c) => Op::Conv(Conv {
            in_channels: 16,
            weight: g.weights.add("w16", vec![4, 16, 3, 3], vec![0.0; 576]),
            ..c
        }),
        op => op,
    };
    expect_err(&g, "ref_conv8c", op, &[blocked], "reads NCHW");
    expect_err(
        &g,
        "again8c",
        Op::Reorder {
            to: ir::Layout::Nchw8c,
        },
        &[blocked],
        "cannot reorder NCHW8c to NCHW8c",
    );
    let y = g.add_input("y", TensorType::f32(Shape::nchw(12, 4, 4)));
    expect_err(
        &g,
        "ragged8c",
        Op::Reorder {
            to: ir::Layout::Nchw8c,
        },
        &[y],
        "not whole blocks",
    );
}
