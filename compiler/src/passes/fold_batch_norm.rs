//! `fold-batch-norm`: a BatchNorm whose input is a conv or dense layer read by nothing else is folded
//! into that layer's weights and bias; any other BatchNorm becomes a per-channel `ScaleShift`.
//!
//! Weights known now (ONNX) are folded here; weights the loader reads later (the `resnext!` DSL's
//! state_dict) get a recipe ([`WeightSource::FoldedBn`], [`WeightSource::BnScaleShift`]) that the
//! loader evaluates with the same `resnext_runtime_core::formats::fold` functions.

use resnext_runtime_core::formats::fold;
use resnext_runtime_core::kernels::BatchNorm;

use super::sole_consumer;
use crate::ir::{
    Activation, BnParams, Epilogue, FoldedPart, Graph, IrError, NodeId, Op, ScaleShift, Weight,
    WeightId, WeightSource,
};

/// Removes every BatchNorm node; returns whether there was one.
pub fn fold_batch_norm(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        let Op::BatchNorm(bn) = &graph.node(id).op else {
            continue;
        };
        let bn = BnParams {
            gamma: bn.scale,
            beta: bn.bias,
            mean: bn.mean,
            var: bn.var,
            epsilon: bn.epsilon,
        };
        let Some(&producer) = graph.inputs_of(id).first() else {
            continue;
        };
        if !fold_into_producer(graph, id, &bn, producer)? {
            to_scale_shift(graph, id, &bn)?;
        }
        changed = true;
    }
    Ok(changed)
}

/// Folds `bn` (node `id`) into `producer` if it is a conv/dense with no epilogue yet and `id` is its
/// only reader. Returns whether it did.
fn fold_into_producer(
    graph: &mut Graph,
    id: NodeId,
    bn: &BnParams,
    producer: NodeId,
) -> Result<bool, IrError> {
    if sole_consumer(graph, producer) != Some(id) {
        return Ok(false);
    }
    let (weight, bias, out_channels) = match &graph.node(producer).op {
        Op::Conv(c) if c.epilogue == Epilogue::default() => (c.weight, c.bias, c.out_channels),
        Op::Dense(d) if d.epilogue == Epilogue::default() => (d.weight, d.bias, d.out_features),
        _ => return Ok(false),
    };
    let t = |w| tensor(graph, id, w);
    let (layer_weight, layer_bias) = (t(weight)?, bias.map(t).transpose()?);
    let weight_name = format!("{}+bn", layer_weight.name);
    let bias_name = match layer_bias {
        Some(b) => format!("{}+bn", b.name),
        None => format!("{weight_name}.bias"),
    };
    let dims = layer_weight.dims.clone();
    let known = [
        Some(weight),
        bias,
        Some(bn.gamma),
        Some(bn.beta),
        Some(bn.mean),
        Some(bn.var),
    ]
    .into_iter()
    .flatten()
    .all(|w| graph.weights.is_loaded(w));
    let (new_weight, new_bias) = if known {
        let (w, b) = fold::fold_batch_norm(
            &layer_weight.data,
            layer_bias.map(|b| b.data.as_slice()),
            &BatchNorm {
                gamma: &t(bn.gamma)?.data,
                beta: &t(bn.beta)?.data,
                mean: &t(bn.mean)?.data,
                var: &t(bn.var)?.data,
                epsilon: bn.epsilon,
            },
            out_channels,
        )
        .map_err(|e| invalid(graph, id, e.to_string()))?;
        (
            graph.weights.add(weight_name, dims, w),
            graph.weights.add(bias_name, vec![out_channels], b),
        )
    } else {
        let recipe = |part| WeightSource::FoldedBn {
            part,
            weight,
            bias,
            bn: *bn,
            out_channels,
        };
        (
            graph
                .weights
                .add_deferred(weight_name, dims, recipe(FoldedPart::Weight)),
            graph
                .weights
                .add_deferred(bias_name, vec![out_channels], recipe(FoldedPart::Bias)),
        )
    };
    match &mut graph.nodes[producer].op {
        Op::Conv(c) => {
            c.weight = new_weight;
            c.bias = Some(new_bias);
        }
        Op::Dense(d) => {
            d.weight = new_weight;
            d.bias = Some(new_bias);
        }
        _ => unreachable!("checked above"),
    }
    graph.replace_uses(id, producer);
    graph.remove_node(id);
    Ok(true)
}

/// Replaces `bn` (node `id`) by the `ScaleShift` computing the same per-channel affine map.
fn to_scale_shift(graph: &mut Graph, id: NodeId, bn: &BnParams) -> Result<(), IrError> {
    let t = |w| tensor(graph, id, w);
    let channels = t(bn.gamma)?.dims.clone();
    let name = &graph.node(id).name;
    let (scale_name, shift_name) = (format!("{name}.scale"), format!("{name}.shift"));
    let known = [bn.gamma, bn.beta, bn.mean, bn.var]
        .into_iter()
        .all(|w| graph.weights.is_loaded(w));
    let (scale, shift) = if known {
        let (scale, shift) = fold::batch_norm_scale_shift(
            &t(bn.gamma)?.data,
            &t(bn.beta)?.data,
            &t(bn.mean)?.data,
            &t(bn.var)?.data,
            bn.epsilon,
        )
        .map_err(|e| invalid(graph, id, e.to_string()))?;
        (
            graph.weights.add(scale_name, channels.clone(), scale),
            graph.weights.add(shift_name, channels, shift),
        )
    } else {
        let recipe = |part| WeightSource::BnScaleShift { part, bn: *bn };
        (
            graph
                .weights
                .add_deferred(scale_name, channels.clone(), recipe(FoldedPart::Weight)),
            graph
                .weights
                .add_deferred(shift_name, channels, recipe(FoldedPart::Bias)),
        )
    };
    graph.nodes[id].op = Op::ScaleShift(ScaleShift {
        scale,
        shift,
        activation: Activation::None,
    });
    graph.retype(id)
}

fn tensor(graph: &Graph, id: NodeId, w: WeightId) -> Result<&Weight, IrError> {
    graph
        .weights
        .get(w)
        .ok_or_else(|| invalid(graph, id, format!("refers to missing weight {w:?}")))
}

fn invalid(graph: &Graph, id: NodeId, message: String) -> IrError {
    IrError::Invalid {
        node: graph.node(id).name.clone(),
        op: "BatchNormalization",
        message,
    }
}
