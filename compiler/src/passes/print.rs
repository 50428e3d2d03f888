//! The graph as text, one node per line in topological order, for `--print-after PASS` and for
//! reading a pass's effect in a test failure.

use std::fmt::Write as _;

use crate::ir::{Activation, Epilogue, Graph, Op};

/// `%name = Op(attrs) inputs -> type`, one line per node, then the outputs.
pub fn graph_text(graph: &Graph) -> String {
    let mut s = String::new();
    let order = graph
        .topo_order()
        .unwrap_or_else(|_| graph.nodes.node_indices().collect());
    for id in order {
        let node = graph.node(id);
        let inputs: Vec<String> = graph
            .inputs_of(id)
            .iter()
            .map(|&i| format!("%{}", graph.node(i).name))
            .collect();
        let _ = writeln!(
            s,
            "%{} = {}{}({}) : {}",
            node.name,
            node.op.name(),
            attrs(&node.op),
            inputs.join(", "),
            node.output
        );
    }
    for (o, name) in &graph.outputs {
        if graph.nodes.contains_node(*o) {
            let _ = writeln!(s, "output {name} = %{}", graph.node(*o).name);
        }
    }
    s
}

fn attrs(op: &Op) -> String {
    let act = |a: &Activation| match a {
        Activation::None => String::new(),
        Activation::Relu => "relu".into(),
        Activation::Clip { min, max } => format!("clip({min}, {max})"),
        Activation::HardSigmoid { alpha, beta } => format!("hard_sigmoid({alpha}, {beta})"),
        Activation::LeakyRelu { alpha } => format!("leaky_relu({alpha})"),
        Activation::Elu { alpha } => format!("elu({alpha})"),
        a => a.name().to_lowercase(),
    };
    let epilogue = |bias: bool, e: &Epilogue| {
        let mut parts = Vec::new();
        if bias {
            parts.push("bias".to_string());
        }
        if e.residual {
            parts.push("+residual".into());
        }
        let a = act(&e.activation);
        if !a.is_empty() {
            parts.push(a);
        }
        parts
    };
    let parts = match op {
        Op::Conv(c) => {
            let mut p = vec![
                format!("{}x{}", c.kernel[0], c.kernel[1]),
                format!("{}->{}", c.in_channels, c.out_channels),
            ];
            if c.group != 1 {
                p.push(format!("g{}", c.group));
            }
            if c.stride != [1, 1] {
                p.push(format!("s{}", c.stride[0]));
            }
            p.extend(epilogue(c.bias.is_some(), &c.epilogue));
            p
        }
        Op::Dense(d) => {
            let mut p = vec![format!("{}->{}", d.in_features, d.out_features)];
            p.extend(epilogue(d.bias.is_some(), &d.epilogue));
            p
        }
        Op::Add { activation } | Op::ScaleShift(crate::ir::ScaleShift { activation, .. }) => {
            vec![act(activation)]
        }
        Op::Clip { min, max } => vec![format!("{min}, {max}")],
        Op::Activation(
            a @ (Activation::HardSigmoid { .. }
            | Activation::LeakyRelu { .. }
            | Activation::Elu { .. }),
        ) => vec![act(a)],
        Op::Binary(b) => vec![match (b.constant, b.constant_first) {
            (None, _) => String::new(),
            (Some(_), true) => "const first".into(),
            (Some(_), false) => "const".into(),
        }],
        Op::GlobalAveragePool { keep_dims } => vec![format!("keep_dims={keep_dims}")],
        Op::QConv(q) => vec![q.summary()],
        _ => Vec::new(),
    };
    let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("[{}]", parts.join(" "))
    }
}
