//! Elementwise rewrites that `fuse-epilogue` runs first: activations the exporters spell as several
//! nodes become one `Op::Activation`, and arithmetic with per-channel constants becomes `ScaleShift`.
//!
//! - `x · sigmoid(x)` (SiLU as dynamo and TorchScript export it) → `Silu`;
//!   `x · hard_sigmoid(x)` with PyTorch's alpha 1/6, beta 1/2 → `HardSwish`;
//! - `x · 0.5 · (1 + erf(x / √2))` in either association (TorchScript's exact GELU: Div, Erf, Add,
//!   Mul, Mul) → `Gelu`;
//! - `x ∘ c` for a constant `c` that is a scalar or one value per channel (dim 1), `∘` one of Add,
//!   Sub, Mul, Div (and `c + x`, `c − x`, `c · x`) → `ScaleShift`, and a ScaleShift read only by
//!   another is merged into it, so `x · c + d` is one node;
//! - a ScaleShift of scale one (a per-channel bias) read from a conv that is read by nothing else and
//!   has no epilogue yet → that conv's bias (a MatMul-as-1×1-conv then its bias `Add`), so an
//!   activation that follows can fuse into the conv;
//! - a ScaleShift without activation read from a `LayerNormChannels` read by nothing else → that
//!   layer norm's scale and shift (the opset-9 LayerNorm's gamma and beta).

use super::{bypass, sole_consumer};
use crate::ir::{Activation, Binary, BinaryKind, Epilogue, Graph, IrError, NodeId, Op, ScaleShift};

/// Runs the rewrites to a fixpoint; returns whether anything changed. The activation patterns go
/// first, while their scalar constants are still Binary nodes.
pub fn fuse_elementwise(graph: &mut Graph) -> Result<bool, IrError> {
    let activations = to_fixpoint(graph, |g, id| {
        Ok(gated_activation(g, id)? || erf_gelu(g, id)?)
    })?;
    let constants = to_fixpoint(graph, |g, id| {
        Ok(constant_to_scale_shift(g, id)?
            || merge_scale_shifts(g, id)?
            || shift_into_conv_bias(g, id)?
            || scale_shift_into_layer_norm(g, id)?)
    })?;
    Ok(activations || constants)
}

/// Applies `rewrite` to every node in topological order until a round changes nothing.
fn to_fixpoint(
    graph: &mut Graph,
    rewrite: impl Fn(&mut Graph, NodeId) -> Result<bool, IrError>,
) -> Result<bool, IrError> {
    let mut changed = false;
    loop {
        let mut round = false;
        for id in graph.topo_order()? {
            if graph.nodes.contains_node(id) {
                round |= rewrite(graph, id)?;
            }
        }
        if !round {
            return Ok(changed);
        }
        changed = true;
    }
}

/// The scalar `c` of a node computing `x ∘ c` (or `c ∘ x` where `∘` commutes), with `x` its input.
fn scalar_operand(graph: &Graph, id: NodeId, kind: BinaryKind) -> Option<(NodeId, f32)> {
    let Op::Binary(Binary {
        kind: k,
        constant: Some(c),
        constant_first,
    }) = graph.node(id).op
    else {
        return None;
    };
    let commutes = matches!(kind, BinaryKind::Add | BinaryKind::Mul);
    if k != kind || (constant_first && !commutes) || !graph.weights.is_loaded(c) {
        return None;
    }
    match graph.weights.data(c) {
        &[v] => Some((*graph.inputs_of(id).first()?, v)),
        _ => None,
    }
}

fn near(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

/// Replaces node `keep` by `activation` of `x` and removes `dead` (nodes only `keep` depended on).
fn replace_by_activation(
    graph: &mut Graph,
    keep: NodeId,
    x: NodeId,
    activation: Activation,
    dead: &[NodeId],
) -> Result<bool, IrError> {
    graph.nodes[keep].op = Op::Activation(activation);
    graph.set_inputs(keep, &[x]);
    for &d in dead {
        graph.remove_node(d);
    }
    graph.retype(keep)?;
    Ok(true)
}

/// `Mul(x, sigmoid(x))` → `Silu(x)`; `Mul(x, hard_sigmoid(x))` → `HardSwish(x)`.
fn gated_activation(graph: &mut Graph, mul: NodeId) -> Result<bool, IrError> {
    if !matches!(
        graph.node(mul).op,
        Op::Binary(Binary {
            kind: BinaryKind::Mul,
            constant: None,
            ..
        })
    ) {
        return Ok(false);
    }
    let [a, b] = graph.inputs_of(mul)[..] else {
        return Ok(false);
    };
    for (gate, x) in [(a, b), (b, a)] {
        if gate == x
            || graph.inputs_of(gate) != [x]
            || sole_consumer(graph, gate) != Some(mul)
            || graph.node(gate).output.shape != graph.node(x).output.shape
        {
            continue;
        }
        let fused = match graph.node(gate).op {
            Op::Activation(Activation::Sigmoid) => Activation::Silu,
            Op::Activation(Activation::HardSigmoid { alpha, beta })
                if near(alpha, 1.0 / 6.0) && near(beta, 0.5) =>
            {
                Activation::HardSwish
            }
            _ => continue,
        };
        return replace_by_activation(graph, mul, x, fused, &[gate]);
    }
    Ok(false)
}

/// The exact GELU spelled out, found from its Erf node.
fn erf_gelu(graph: &mut Graph, erf: NodeId) -> Result<bool, IrError> {
    if graph.node(erf).op != Op::Activation(Activation::Erf) {
        return Ok(false);
    }
    let Some(&scaled) = graph.inputs_of(erf).first() else {
        return Ok(false);
    };
    // erf's argument: x / √2 or x · (1/√2).
    let x = match (
        scalar_operand(graph, scaled, BinaryKind::Div),
        scalar_operand(graph, scaled, BinaryKind::Mul),
    ) {
        (Some((x, c)), _) if near(c, std::f32::consts::SQRT_2) => x,
        (_, Some((x, c))) if near(c, std::f32::consts::FRAC_1_SQRT_2) => x,
        _ => return Ok(false),
    };
    if sole_consumer(graph, scaled) != Some(erf) {
        return Ok(false);
    }
    // 1 + erf(·)
    let Some(plus) = sole_consumer(graph, erf) else {
        return Ok(false);
    };
    if !scalar_operand(graph, plus, BinaryKind::Add).is_some_and(|(_, c)| c == 1.0) {
        return Ok(false);
    }
    let Some(product) = sole_consumer(graph, plus) else {
        return Ok(false);
    };
    if !matches!(
        graph.node(product).op,
        Op::Binary(Binary {
            kind: BinaryKind::Mul,
            constant: None,
            ..
        })
    ) {
        return Ok(false);
    }
    let [a, b] = graph.inputs_of(product)[..] else {
        return Ok(false);
    };
    let other = if a == plus { b } else { a };
    let is_half = |id: NodeId, of: NodeId| {
        scalar_operand(graph, id, BinaryKind::Mul).is_some_and(|(i, c)| i == of && c == 0.5)
    };
    if other == x {
        // (x · (1 + erf)) · 0.5
        let Some(half) = sole_consumer(graph, product) else {
            return Ok(false);
        };
        if !is_half(half, product) {
            return Ok(false);
        }
        replace_by_activation(
            graph,
            half,
            x,
            Activation::Gelu,
            &[scaled, erf, plus, product],
        )
    } else if is_half(other, x) && sole_consumer(graph, other) == Some(product) {
        // (x · 0.5) · (1 + erf)
        replace_by_activation(
            graph,
            product,
            x,
            Activation::Gelu,
            &[scaled, erf, plus, other],
        )
    } else {
        Ok(false)
    }
}

/// `x ∘ c` with `c` a scalar or per-channel constant → `ScaleShift`.
fn constant_to_scale_shift(graph: &mut Graph, id: NodeId) -> Result<bool, IrError> {
    let Op::Binary(Binary {
        kind,
        constant: Some(k),
        constant_first,
    }) = graph.node(id).op
    else {
        return Ok(false);
    };
    let Some(&x) = graph.inputs_of(id).first() else {
        return Ok(false);
    };
    let node = graph.node(id);
    let x_shape = &graph.node(x).output.shape;
    let (Some(dims), Some(w)) = (x_shape.per_item(), graph.weights.get(k)) else {
        return Ok(false);
    };
    if node.output.shape != *x_shape || dims.is_empty() || !graph.weights.is_loaded(k) {
        return Ok(false);
    }
    let (channels, rank) = (dims[0], dims.len() + 1);
    // Right-aligned against [N, C, …]: every dim 1 but the channel one, which is 1 or C.
    let per_channel = w.dims.len() <= rank
        && w.dims.iter().enumerate().all(|(i, &d)| {
            let axis = rank - w.dims.len() + i;
            d == 1 || (axis == 1 && d == channels)
        });
    if !per_channel {
        return Ok(false);
    }
    let value = |c: usize| {
        let data = graph.weights.data(k);
        if data.len() == 1 { data[0] } else { data[c] }
    };
    let (scale, shift): (Vec<f32>, Vec<f32>) = (0..channels)
        .map(|c| {
            let v = value(c);
            match (kind, constant_first) {
                (BinaryKind::Add, _) => Some((1.0, v)),
                (BinaryKind::Mul, _) => Some((v, 0.0)),
                (BinaryKind::Sub, false) => Some((1.0, -v)),
                (BinaryKind::Sub, true) => Some((-1.0, v)),
                (BinaryKind::Div, false) => Some((1.0 / v, 0.0)),
                (BinaryKind::Div, true) => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .map_or_else(|| (Vec::new(), Vec::new()), |v| v.into_iter().unzip());
    if scale.len() != channels {
        return Ok(false);
    }
    let name = graph.node(id).name.clone();
    let scale = graph
        .weights
        .add(format!("{name}.scale"), vec![channels], scale);
    let shift = graph
        .weights
        .add(format!("{name}.shift"), vec![channels], shift);
    graph.nodes[id].op = Op::ScaleShift(ScaleShift {
        scale,
        shift,
        activation: Activation::None,
    });
    graph.retype(id)?;
    Ok(true)
}

/// `ScaleShift(ScaleShift(x))`, the inner one without activation and read by nothing else → one.
fn merge_scale_shifts(graph: &mut Graph, outer: NodeId) -> Result<bool, IrError> {
    let Op::ScaleShift(o) = &graph.node(outer).op else {
        return Ok(false);
    };
    let Some(&inner) = graph.inputs_of(outer).first() else {
        return Ok(false);
    };
    let Op::ScaleShift(i) = &graph.node(inner).op else {
        return Ok(false);
    };
    let loaded = [o.scale, o.shift, i.scale, i.shift]
        .iter()
        .all(|&w| graph.weights.is_loaded(w));
    if i.activation != Activation::None || !loaded || sole_consumer(graph, inner) != Some(outer) {
        return Ok(false);
    }
    let w = |id| graph.weights.data(id);
    let scale: Vec<f32> = w(i.scale)
        .iter()
        .zip(w(o.scale))
        .map(|(a, b)| a * b)
        .collect();
    let shift: Vec<f32> = w(i.shift)
        .iter()
        .zip(w(o.scale))
        .zip(w(o.shift))
        .map(|((s, m), t)| s * m + t)
        .collect();
    let activation = o.activation;
    let source = graph.inputs_of(inner);
    let name = graph.node(outer).name.clone();
    let channels = scale.len();
    let scale = graph
        .weights
        .add(format!("{name}.merged_scale"), vec![channels], scale);
    let shift = graph
        .weights
        .add(format!("{name}.merged_shift"), vec![channels], shift);
    graph.nodes[outer].op = Op::ScaleShift(ScaleShift {
        scale,
        shift,
        activation,
    });
    graph.set_inputs(outer, &source);
    graph.remove_node(inner);
    graph.retype(outer)?;
    Ok(true)
}

/// `ScaleShift(conv)` with every scale 1 and no activation, the conv without epilogue and read by
/// nothing else → the conv with the shift added to its bias.
fn shift_into_conv_bias(graph: &mut Graph, id: NodeId) -> Result<bool, IrError> {
    let Op::ScaleShift(s) = &graph.node(id).op else {
        return Ok(false);
    };
    let Some(&conv) = graph.inputs_of(id).first() else {
        return Ok(false);
    };
    let Op::Conv(c) = &graph.node(conv).op else {
        return Ok(false);
    };
    let loaded = [s.scale, s.shift]
        .into_iter()
        .chain(c.bias)
        .all(|w| graph.weights.is_loaded(w));
    if !loaded
        || s.activation != Activation::None
        || c.epilogue != Epilogue::default()
        || sole_consumer(graph, conv) != Some(id)
        || graph.weights.data(s.scale).iter().any(|&v| v != 1.0)
        || graph.weights.data(s.shift).len() != c.out_channels
    {
        return Ok(false);
    }
    let shift = graph.weights.data(s.shift);
    let bias: Vec<f32> = match c.bias {
        Some(b) => graph
            .weights
            .data(b)
            .iter()
            .zip(shift)
            .map(|(a, b)| a + b)
            .collect(),
        None => shift.to_vec(),
    };
    let name = format!("{}.bias", graph.node(conv).name);
    let channels = bias.len();
    if !bypass(graph, id) {
        return Ok(false);
    }
    let bias = graph.weights.add(name, vec![channels], bias);
    if let Op::Conv(c) = &mut graph.nodes[conv].op {
        c.bias = Some(bias);
    }
    Ok(true)
}

/// `ScaleShift(LayerNormChannels(x))`, the ScaleShift without activation and the layer norm read by
/// nothing else → one layer norm with the affine maps composed.
fn scale_shift_into_layer_norm(graph: &mut Graph, id: NodeId) -> Result<bool, IrError> {
    let Op::ScaleShift(s) = &graph.node(id).op else {
        return Ok(false);
    };
    let Some(&norm) = graph.inputs_of(id).first() else {
        return Ok(false);
    };
    let Op::LayerNormChannels(l) = &graph.node(norm).op else {
        return Ok(false);
    };
    let loaded = [s.scale, s.shift, l.scale, l.shift]
        .iter()
        .all(|&w| graph.weights.is_loaded(w));
    if !loaded || s.activation != Activation::None || sole_consumer(graph, norm) != Some(id) {
        return Ok(false);
    }
    let w = |id| graph.weights.data(id);
    let channels = w(l.scale).len();
    if [s.scale, s.shift, l.shift]
        .iter()
        .any(|&k| w(k).len() != channels)
    {
        return Ok(false);
    }
    let scale: Vec<f32> = w(l.scale)
        .iter()
        .zip(w(s.scale))
        .map(|(a, b)| a * b)
        .collect();
    let shift: Vec<f32> = w(l.shift)
        .iter()
        .zip(w(s.scale))
        .zip(w(s.shift))
        .map(|((t, m), u)| t * m + u)
        .collect();
    let epsilon = l.epsilon;
    let name = graph.node(id).name.clone();
    if !bypass(graph, id) {
        return Ok(false);
    }
    let scale = graph
        .weights
        .add(format!("{name}.merged_scale"), vec![channels], scale);
    let shift = graph
        .weights
        .add(format!("{name}.merged_shift"), vec![channels], shift);
    graph.nodes[norm].op = Op::LayerNormChannels(crate::ir::LayerNormChannels {
        epsilon,
        scale,
        shift,
    });
    Ok(true)
}
