//! `simplify`: removes nodes that compute nothing (Identity, Dropout, no-op reshapes, a Relu of a value
//! already non-negative), merges chains of reshapes, folds zero pads into the conv or pool that
//! reads them and channel shuffles into the weights of the convs that read them, and deletes nodes
//! no model output depends on.

use std::collections::HashSet;

use petgraph::Direction;

use super::bypass;
use crate::ir::{Activation, ConvKernel, Graph, IrError, NodeId, Op, Pool};

/// Runs the rewrites to a fixpoint; returns whether anything changed.
pub fn simplify(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    loop {
        let mut round = false;
        for id in graph.topo_order()? {
            if graph.nodes.contains_node(id) {
                round |= simplify_node(graph, id)?;
            }
        }
        round |= remove_dead(graph);
        if !round {
            return Ok(changed);
        }
        changed = true;
    }
}

fn simplify_node(graph: &mut Graph, id: NodeId) -> Result<bool, IrError> {
    let Some(&input) = graph.inputs_of(id).first() else {
        return Ok(false);
    };
    let node = graph.node(id);
    match &node.op {
        Op::Identity => Ok(bypass(graph, id)),
        Op::Relu if non_negative(graph, input) => Ok(bypass(graph, id)),
        Op::Clip { min, max }
            if *min <= 0.0 && *max == f32::INFINITY && non_negative(graph, input) =>
        {
            Ok(bypass(graph, id))
        }
        Op::Flatten { .. } | Op::Reshape { .. } => {
            if graph.node(input).output.shape == node.output.shape {
                return Ok(bypass(graph, id));
            }
            // A reshape of a reshape is one reshape of the first one's input; the inner node, if
            // nothing else reads it, dies.
            if matches!(
                graph.node(input).op,
                Op::Flatten { .. } | Op::Reshape { .. }
            ) {
                let source = graph.inputs_of(input);
                graph.set_inputs(id, &source);
                return Ok(true);
            }
            // `GlobalAveragePool{keep_dims} → Flatten` is one GlobalAveragePool without the 1×1 dims.
            let flat = node.output.shape.rank() == 2;
            if flat
                && matches!(
                    graph.node(input).op,
                    Op::GlobalAveragePool { keep_dims: true }
                )
                && super::sole_consumer(graph, input) == Some(id)
            {
                graph.nodes[input].op = Op::GlobalAveragePool { keep_dims: false };
                graph.retype(input)?;
                return Ok(bypass(graph, id));
            }
            Ok(false)
        }
        Op::Pad { pads } => fold_pad(graph, id, input, *pads),
        Op::ChannelShuffle { groups } => fold_shuffle_into_convs(graph, id, input, *groups),
        _ => Ok(false),
    }
}

/// Folds a `ChannelShuffle` read only by ungrouped convs (on their data input, weights known now,
/// reference kernel: before `select-kernels` packs them) into their weights: each conv reads the
/// unshuffled input with its weights' input channels permuted the same way, so nothing is copied.
fn fold_shuffle_into_convs(
    graph: &mut Graph,
    id: NodeId,
    input: NodeId,
    groups: usize,
) -> Result<bool, IrError> {
    let readers = graph.consumers(id);
    let foldable = !graph.is_output(id)
        && !readers.is_empty()
        && readers.iter().all(|&(r, slot)| {
            matches!(&graph.node(r).op, Op::Conv(c)
                if slot == 0
                    && c.group == 1
                    && c.kernel_choice == ConvKernel::Reference
                    && graph.weights.is_loaded(c.weight)
                    && graph.weights.data(c.weight).len()
                        == c.out_channels * c.in_channels * c.kernel[0] * c.kernel[1]
                    && !(c.epilogue.residual && graph.inputs_of(r).get(1) == Some(&id)))
        });
    if !foldable {
        return Ok(false);
    }
    let channels = graph
        .node(input)
        .output
        .shape
        .chw()
        .map_or(0, |(c, _, _)| c);
    let per_group = channels / groups.max(1);
    for (reader, _) in readers {
        let Op::Conv(c) = &graph.node(reader).op else {
            continue;
        };
        let weight = graph.weights.get(c.weight).cloned();
        let Some(w) = weight else {
            continue;
        };
        // `[out, in, kh, kw]`: input channel j of the shuffled value is channel `g · per_group + k`
        // of the unshuffled one, for `j = k · groups + g`.
        let taps = c.kernel[0] * c.kernel[1];
        let mut data = vec![0.0; w.data.len()];
        for o in 0..c.out_channels {
            for j in 0..channels {
                let src = (j % groups) * per_group + j / groups;
                let from = (o * channels + j) * taps;
                let to = (o * channels + src) * taps;
                data[to..to + taps].copy_from_slice(&w.data[from..from + taps]);
            }
        }
        let name = format!("{}.unshuffled", w.name);
        let permuted = graph.weights.add(name, w.dims.clone(), data);
        if let Op::Conv(c) = &mut graph.nodes[reader].op {
            c.weight = permuted;
        }
        let mut inputs = graph.inputs_of(reader);
        inputs[0] = input;
        graph.set_inputs(reader, &inputs);
    }
    Ok(true)
}

/// Folds a zero `Pad` into its only reader where that computes the same: a conv (whose padding is
/// zeros too); an AveragePool without pads of its own, which then counts the padding in its
/// divisor; a MaxPool without pads of its own whose input is never negative (its padding never
/// wins a max, and a zero the padded value adds could not either). Pool pads must stay smaller
/// than the kernel, and the pool must round its output size down. A pad of nothing is removed.
fn fold_pad(
    graph: &mut Graph,
    id: NodeId,
    input: NodeId,
    pads: [usize; 4],
) -> Result<bool, IrError> {
    if pads == [0; 4] {
        return Ok(bypass(graph, id));
    }
    let Some(reader) = super::sole_consumer(graph, id) else {
        return Ok(false);
    };
    // With ceil_mode a last window starting in the right padding would be dropped once the padding
    // is the pool's own, which it was not before: same values, not the same shape.
    let fits =
        |p: &Pool| p.pads == [0; 4] && !p.ceil_mode && (0..4).all(|i| pads[i] < p.kernel[i % 2]);
    let folded = match &graph.node(reader).op {
        Op::Conv(c) => {
            let mut c = c.clone();
            for (mine, extra) in c.pads.iter_mut().zip(pads) {
                *mine += extra;
            }
            Op::Conv(c)
        }
        Op::AveragePool(p) if fits(p) => Op::AveragePool(Pool {
            pads,
            count_include_pad: true,
            ..p.clone()
        }),
        Op::MaxPool(p) if fits(p) && non_negative(graph, input) => {
            Op::MaxPool(Pool { pads, ..p.clone() })
        }
        _ => return Ok(false),
    };
    graph.nodes[reader].op = folded;
    if !bypass(graph, id) {
        return Ok(false);
    }
    graph.retype(reader)?;
    Ok(true)
}

/// Whether every element of `id`'s value is ≥ 0, judged from the op alone (ReLU-like activations and
/// ops that only select, average or move such values).
fn non_negative(graph: &Graph, id: NodeId) -> bool {
    let act = |a: &Activation| match a {
        Activation::None => false,
        Activation::Relu => true,
        Activation::Clip { min, .. } => *min >= 0.0,
        Activation::Sigmoid | Activation::HardSigmoid { .. } => true,
        _ => false,
    };
    match &graph.node(id).op {
        Op::Relu => true,
        Op::Clip { min, .. } => *min >= 0.0,
        Op::Conv(c) => act(&c.epilogue.activation),
        Op::Dense(d) => act(&d.epilogue.activation),
        Op::Add { activation } => act(activation),
        Op::ScaleShift(s) => act(&s.activation),
        Op::Activation(a) => act(a),
        Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalAveragePool { .. }
        | Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Identity
        | Op::Reorder { .. } => graph
            .inputs_of(id)
            .first()
            .is_some_and(|&i| non_negative(graph, i)),
        Op::ChannelShuffle { .. } | Op::SliceChannels { .. } => graph
            .inputs_of(id)
            .first()
            .is_some_and(|&i| non_negative(graph, i)),
        Op::Concat { .. } => graph.inputs_of(id).iter().all(|&i| non_negative(graph, i)),
        Op::Pad { .. } => graph
            .inputs_of(id)
            .first()
            .is_some_and(|&i| non_negative(graph, i)),
        Op::Softmax { log } => !log,
        Op::FakeQuant(f) => f.min >= f.quant.zero_point,
        Op::QConv(q) => match (q.residual, q.output) {
            (Some(f), _) => f.min >= f.quant.zero_point,
            (None, crate::ir::quant::QConvOutput::Float { relu }) => relu,
            (None, crate::ir::quant::QConvOutput::Requant(f)) => f.min >= f.quant.zero_point,
        },
        // x / (positive)^beta keeps the sign of x.
        Op::Lrn(l) if l.bias > 0.0 && l.alpha >= 0.0 => graph
            .inputs_of(id)
            .first()
            .is_some_and(|&i| non_negative(graph, i)),
        Op::Lrn(_) | Op::LayerNormChannels(_) | Op::SqueezeExcite(_) => false,
        Op::Input | Op::BatchNorm(_) | Op::PRelu { .. } | Op::Binary(_) => false,
    }
}

/// Removes every node that no model output depends on (model inputs stay: they are the interface).
fn remove_dead(graph: &mut Graph) -> bool {
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.iter().map(|(o, _)| *o).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.nodes.neighbors_directed(n, Direction::Incoming));
        }
    }
    let dead: Vec<NodeId> = graph
        .nodes
        .node_indices()
        .filter(|n| !live.contains(n) && !matches!(graph.nodes[*n].op, Op::Input))
        .collect();
    for &n in &dead {
        graph.remove_node(n);
    }
    !dead.is_empty()
}
