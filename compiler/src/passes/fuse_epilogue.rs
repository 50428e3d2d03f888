//! `fuse-epilogue`: folds a residual Add into the conv/dense computing one of its operands, and an
//! activation (Relu, Clip, or any `Op::Activation`) into the conv, dense, Add or ScaleShift computing
//! its input, so each becomes one node. It first runs the elementwise rewrites of
//! [`fuse_elementwise`](super::fuse_elementwise) (SiLU, HardSwish and GELU spelled out as several
//! nodes become one activation; arithmetic with per-channel constants becomes ScaleShift).

use std::collections::HashMap;

use super::sole_consumer;
use crate::ir::{Activation, Epilogue, Graph, IrError, NodeId, Op};

/// Fuses residual Adds first, then activations (so `conv → Add → Relu` ends as one conv); returns
/// whether anything changed.
pub fn fuse_epilogue(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = super::fuse_elementwise::fuse_elementwise(graph)?;
    let order = graph.topo_order()?;
    // Rank of each node: (longest path from a model input, topological position).
    let mut rank: HashMap<NodeId, (usize, usize)> = HashMap::new();
    for (position, &id) in order.iter().enumerate() {
        let depth = graph
            .inputs_of(id)
            .iter()
            .filter_map(|i| rank.get(i).map(|r| r.0 + 1))
            .max()
            .unwrap_or(0);
        rank.insert(id, (depth, position));
    }
    for &id in &order {
        if matches!(
            graph.node(id).op,
            Op::Add {
                activation: Activation::None
            }
        ) {
            changed |= fuse_residual(graph, id, &rank)?;
        }
    }
    for id in graph.topo_order()? {
        if graph.nodes.contains_node(id) {
            changed |= fuse_activation(graph, id);
        }
    }
    Ok(changed)
}

/// Makes the Add `add` the residual step of the conv/dense producing one of its operands, the other
/// operand becoming that layer's slot-1 input. Of two candidate layers it picks the deeper one (the
/// longer path from the model input; ties: later in topological order): in a ResNet block that is the
/// main path's last conv, whatever order the source listed the nodes in, and the shortcut (a
/// downsample conv, one step from the block input) becomes the residual.
fn fuse_residual(
    graph: &mut Graph,
    add: NodeId,
    rank: &HashMap<NodeId, (usize, usize)>,
) -> Result<bool, IrError> {
    let operands = graph.inputs_of(add);
    let [a, b] = operands[..] else {
        return Ok(false);
    };
    // An Add of a value to itself has no other operand to become the residual.
    let fusable = |x: NodeId| {
        a != b
            && sole_consumer(graph, x) == Some(add)
            && match &graph.node(x).op {
                Op::Conv(c) => c.epilogue == Epilogue::default(),
                Op::Dense(d) => d.epilogue == Epilogue::default(),
                _ => false,
            }
    };
    let Some(layer) = [a, b]
        .into_iter()
        .filter(|&x| fusable(x))
        .max_by_key(|x| rank.get(x).copied().unwrap_or_default())
    else {
        return Ok(false);
    };
    let residual = if layer == a { b } else { a };
    let Some(&layer_input) = graph.inputs_of(layer).first() else {
        return Ok(false);
    };
    match &mut graph.nodes[layer].op {
        Op::Conv(c) => c.epilogue.residual = true,
        Op::Dense(d) => d.epilogue.residual = true,
        _ => return Ok(false),
    }
    graph.set_inputs(layer, &[layer_input, residual]);
    graph.replace_uses(add, layer);
    graph.remove_node(add);
    graph.retype(layer)?;
    Ok(true)
}

/// Moves a Relu, Clip or other activation into the node computing its input, if that node has no activation yet and the
/// activation is its only reader.
fn fuse_activation(graph: &mut Graph, id: NodeId) -> bool {
    let Some(consumer) = sole_consumer(graph, id) else {
        return false;
    };
    let activation = match graph.node(consumer).op {
        Op::Relu => Activation::Relu,
        Op::Clip { min, max } => Activation::Clip { min, max },
        Op::Activation(a) => a,
        _ => return false,
    };
    let slot = match &mut graph.nodes[id].op {
        Op::Conv(c) => &mut c.epilogue.activation,
        Op::Dense(d) => &mut d.epilogue.activation,
        Op::Add { activation } => activation,
        Op::ScaleShift(s) => &mut s.activation,
        _ => return false,
    };
    if *slot != Activation::None {
        return false;
    }
    *slot = activation;
    graph.replace_uses(consumer, id);
    graph.remove_node(consumer);
    true
}
