//! ConvNeXt's channels-last blocks: `Transpose` NCHW → NHWC, ops on the last (channel) axis, then
//! `Transpose` back, imported as NCHW ops with no transpose at all.
//!
//! `Transpose` perm `[0, 2, 3, 1]` of a 4-D activation binds [`Value::ChannelsLast`] (nothing is
//! computed); on such a view `LayerNormalization` over the last axis is a `LayerNormChannels`
//! node, `MatMul` by a constant `[C, K]` a 1×1 conv, elementwise ops their NCHW selves (constants
//! transposed to match), and `Transpose` perm `[0, 3, 1, 2]` is the NCHW activation again. The
//! opset-9 export spells LayerNorm out (`ReduceMean(-1) → Sub → Pow 2 → ReduceMean(-1) → Add eps →
//! Sqrt → Div`), tracked step by step as [`Value::LayerNormStep`] and imported as the same op
//! (scale one, shift zero: the `Mul`/`Add` of gamma and beta that follow stay per-channel ops).

use std::rc::Rc;

use super::{OpImport, Registry};
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, LayerNormStep, NodeCtx, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};
use crate::ir::{self, NodeId, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "LayerNormalization",
        layer_norm_nchw,
        &["axis", "epsilon", "stash_type"],
    );
    reg.insert("Pow", pow, &[]);
    reg.insert("Sqrt", sqrt, &[]);
}

/// What every error about an unsupported use of an NHWC view says is supported.
const SUPPORTED: &str = "on the NHWC view of an activation (Transpose perm [0, 2, 3, 1]) only \
                         LayerNormalization over the last axis (or its opset-9 spelling), MatMul by \
                         a constant [C, K], elementwise ops and Transpose perm [0, 3, 1, 2] back to \
                         NCHW are supported";

/// Ops that compute each element from the same element of their inputs, so that they commute with
/// any transpose of all their inputs.
const ELEMENTWISE: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Elu",
    "Gelu",
    "Erf",
    "Identity",
];

/// The NHWC view of `x` (a `Transpose` perm `[0, 2, 3, 1]` of it), for `channels::transpose`.
pub(super) fn to_channels_last(
    im: &Importer,
    ctx: &NodeCtx,
    x: NodeId,
) -> Result<Value, OnnxError> {
    if im.ty(x).shape.chw().is_none() {
        return Err(ctx.err(format!(
            "perm [0, 2, 3, 1] of {} is not supported; only of a 4-D [N, C, H, W] activation",
            im.ty(x).shape
        )));
    }
    Ok(Value::ChannelsLast(x))
}

/// Whether an input of the node is an NHWC view or a LayerNorm step.
pub(super) fn reads_view(im: &Importer, ctx: &NodeCtx) -> bool {
    ctx.proto.input.iter().any(|i| {
        matches!(
            im.get(i),
            Some(Value::ChannelsLast(_) | Value::LayerNormStep(_))
        )
    })
}

/// Input `i` as the value bound to it (`None` when absent or unbound).
fn input<'a>(im: &'a Importer, ctx: &NodeCtx, i: usize) -> Option<&'a Value> {
    ctx.input(i).and_then(|n| im.get(n))
}

/// Imports a node reading an NHWC view or a LayerNorm step (`entry` is its registered importer).
pub(super) fn import(
    entry: &OpImport,
    im: &mut Importer,
    ctx: &NodeCtx,
) -> Result<Value, OnnxError> {
    if let Some(v) = layer_norm_step(im, ctx)? {
        return Ok(v);
    }
    if let Some(i) = (0..ctx.proto.input.len())
        .find(|&i| matches!(input(im, ctx, i), Some(Value::LayerNormStep(_))))
    {
        return Err(ctx.err(format!(
            "input {i} is a step of LayerNorm spelled ReduceMean(-1) → Sub → Pow 2 → \
             ReduceMean(-1) → Add eps → Sqrt → Div, read by an op that is not the next step; only \
             that exact spelling is supported"
        )));
    }
    let x = match input(im, ctx, 0) {
        Some(Value::ChannelsLast(x)) => Some(*x),
        _ => None,
    };
    match (ctx.op(), x) {
        ("Transpose", Some(x)) => {
            let perm = ctx.ints("perm")?;
            if perm.as_deref() == Some(&[0, 3, 1, 2]) {
                Ok(Value::Act(x))
            } else {
                Err(ctx.err(format!(
                    "perm {perm:?} of an NHWC view is not supported; {SUPPORTED}"
                )))
            }
        }
        ("LayerNormalization", Some(x)) => layer_norm(im, ctx, x),
        ("MatMul", Some(x)) => matmul(im, ctx, x),
        ("ReduceMean", Some(x)) => {
            reduce_last_axis(im, ctx)?;
            Ok(Value::LayerNormStep(LayerNormStep::Mean { x }))
        }
        (op, _) if ELEMENTWISE.contains(&op) => elementwise(entry, im, ctx),
        _ => Err(ctx.err(SUPPORTED)),
    }
}

/// The next step of the opset-9 LayerNorm spelling, if the node is one.
fn layer_norm_step(im: &mut Importer, ctx: &NodeCtx) -> Result<Option<Value>, OnnxError> {
    use LayerNormStep as S;
    let step = |i| match input(im, ctx, i) {
        Some(Value::LayerNormStep(s)) => Some(*s),
        _ => None,
    };
    let scalar = |i| match input(im, ctx, i) {
        Some(Value::Const(t)) => t.scalar_f32(),
        _ => None,
    };
    let (first, second, constant) = (step(0), step(1), scalar(1));
    let view = match input(im, ctx, 0) {
        Some(Value::ChannelsLast(x)) => Some(*x),
        _ => None,
    };
    let next = match (ctx.op(), first, second) {
        ("Sub", None, Some(S::Mean { x })) if view == Some(x) => S::Centered { x },
        ("Pow", Some(S::Centered { x }), None) if constant == Some(2.0) => S::Squared { x },
        ("ReduceMean", Some(S::Squared { x }), None) => {
            reduce_last_axis(im, ctx)?;
            S::Variance { x }
        }
        ("Add", Some(S::Variance { x }), None) => match constant {
            Some(epsilon) => S::VarianceEps { x, epsilon },
            None => return Ok(None),
        },
        ("Sqrt", Some(S::VarianceEps { x, epsilon }), None) => S::Deviation { x, epsilon },
        ("Div", Some(S::Centered { x }), Some(S::Deviation { x: y, epsilon })) if y == x => {
            let c = channels(im, x);
            let scale = im.derived_weight(format!("{} (scale)", ctx.name), vec![c], vec![1.0; c]);
            let shift = im.derived_weight(format!("{} (shift)", ctx.name), vec![c], vec![0.0; c]);
            return layer_norm_node(im, ctx, x, epsilon, scale, shift).map(Some);
        }
        _ => return Ok(None),
    };
    Ok(Some(Value::LayerNormStep(next)))
}

fn channels(im: &Importer, x: NodeId) -> usize {
    im.ty(x).shape.chw().map_or(0, |(c, _, _)| c)
}

/// Checks that a `ReduceMean` reduces the last axis of a 4-D view only, keeping it.
fn reduce_last_axis(im: &Importer, ctx: &NodeCtx) -> Result<(), OnnxError> {
    let axes = match ctx.input(1) {
        Some(_) => im
            .req_const(ctx, 1, "axes")?
            .ints()
            .map(<[i64]>::to_vec)
            .ok_or_else(|| ctx.err("axes must be integers"))?,
        None => ctx.ints("axes")?.unwrap_or_default(),
    };
    if !matches!(axes[..], [-1] | [3]) || ctx.int("keepdims", 1)? != 1 {
        return Err(ctx.err(format!(
            "ReduceMean over axes {axes:?} of an NHWC view is not supported; only over the last \
             axis with keepdims = 1 (the mean of LayerNorm) is"
        )));
    }
    Ok(())
}

/// `LayerNormalization` (opset 17) of the NHWC view of `x`, over its last axis.
fn layer_norm(im: &mut Importer, ctx: &NodeCtx, x: NodeId) -> Result<Value, OnnxError> {
    let axis = ctx.int("axis", -1)?;
    if axis != -1 && axis != 3 {
        return Err(ctx.err(format!(
            "axis {axis} is not supported; only the last axis (-1) of an NHWC view is"
        )));
    }
    if let Some(k) = (1..ctx.proto.output.len()).find(|&k| !ctx.proto.output[k].is_empty()) {
        return Err(ctx.err(format!(
            "output {k} (mean or inverse standard deviation) is named; only output 0 is supported"
        )));
    }
    let c = channels(im, x);
    let per_channel = |t: &ConstTensor, what: &str| -> Result<(), OnnxError> {
        match (&t.data, t.dims.as_slice()) {
            (ConstData::F32(_), [n]) if *n == c => Ok(()),
            _ => Err(ctx.err(format!(
                "{what} `{}` of shape {:?} ({}) must be FLOAT [{c}]",
                t.name,
                t.dims,
                t.dtype_name()
            ))),
        }
    };
    let scale = im.req_const(ctx, 1, "scale")?;
    per_channel(&scale, "scale")?;
    let scale = im.weight(ctx, &scale, "scale")?;
    let shift = match im.opt_const(ctx, 2, "bias")? {
        Some(b) => {
            per_channel(&b, "bias")?;
            im.weight(ctx, &b, "bias")?
        }
        None => im.derived_weight(format!("{} (shift)", ctx.name), vec![c], vec![0.0; c]),
    };
    let epsilon = ctx.float("epsilon")?.unwrap_or(1e-5);
    layer_norm_node(im, ctx, x, epsilon, scale, shift)
}

fn layer_norm_node(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: NodeId,
    epsilon: f32,
    scale: ir::WeightId,
    shift: ir::WeightId,
) -> Result<Value, OnnxError> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(ctx.err(format!("epsilon {epsilon} must be finite and non-negative")));
    }
    let op = Op::LayerNormChannels(ir::LayerNormChannels {
        epsilon,
        scale,
        shift,
    });
    match im.add(ctx, op, &[x])? {
        Value::Act(y) => Ok(Value::ChannelsLast(y)),
        v => Ok(v),
    }
}

/// `MatMul` of the NHWC view of `x` by a constant `[C, K]`: a 1×1 conv with `K` outputs.
fn matmul(im: &mut Importer, ctx: &NodeCtx, x: NodeId) -> Result<Value, OnnxError> {
    let b = im.req_const(ctx, 1, "right operand (weight)")?;
    let c = channels(im, x);
    let (ConstData::F32(data), &[rows, k]) = (&b.data, b.dims.as_slice()) else {
        return Err(ctx.err(format!(
            "weight `{}` of shape {:?} ({}) must be FLOAT [{c}, K]",
            b.name,
            b.dims,
            b.dtype_name()
        )));
    };
    if rows != c || k == 0 {
        return Err(ctx.err(format!(
            "weight `{}` of shape {:?} does not multiply the view's last axis of {c} channels",
            b.name, b.dims
        )));
    }
    let mut w = vec![0f32; k * c];
    for (i, row) in data.chunks_exact(k).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            w[o * c + i] = v;
        }
    }
    let weight = im.derived_weight(format!("{} (1x1 conv)", b.name), vec![k, c, 1, 1], w);
    let op = Op::Conv(ir::Conv {
        weight,
        bias: None,
        in_channels: c,
        out_channels: k,
        group: 1,
        kernel: [1, 1],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [0; 4],
        epilogue: ir::Epilogue::default(),
        kernel_choice: ir::ConvKernel::default(),
    });
    match im.add(ctx, op, &[x])? {
        Value::Act(y) => Ok(Value::ChannelsLast(y)),
        v => Ok(v),
    }
}

/// An elementwise op on NHWC views: the op's own importer on the NCHW activations, with every
/// constant operand transposed from NHWC broadcasting to NCHW broadcasting; the result is a view.
fn elementwise(entry: &OpImport, im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let mut saved = Vec::new();
    let mut problem = None;
    for (i, name) in ctx.proto.input.iter().enumerate() {
        if name.is_empty() || saved.iter().any(|(n, _)| n == name) {
            continue;
        }
        let Some(old) = im.get(name).cloned() else {
            continue;
        };
        let new = match &old {
            Value::ChannelsLast(x) => Value::Act(*x),
            Value::Const(t) => match to_nchw_broadcast(t) {
                Some(t) => Value::Const(Rc::new(t)),
                None => {
                    problem = Some(format!(
                        "constant input {i} `{}` of shape {:?} does not broadcast against an NHWC \
                         view as a per-channel or per-pixel constant",
                        t.name, t.dims
                    ));
                    break;
                }
            },
            Value::Act(_) => {
                problem = Some(format!(
                    "input {i} `{name}` is an NCHW activation and another input an NHWC view; \
                     mixing the layouts is not supported"
                ));
                break;
            }
            _ => continue,
        };
        saved.push((name.clone(), old));
        im.bind(name.clone(), new);
    }
    let result = match problem {
        Some(p) => Err(ctx.err(p)),
        None => (entry.import)(im, ctx),
    };
    for (name, old) in saved {
        im.bind(name, old);
    }
    match result? {
        Value::Act(y) => Ok(Value::ChannelsLast(y)),
        v => Ok(v),
    }
}

/// A constant broadcast against `[N, H, W, C]` rewritten to broadcast the same against
/// `[N, C, H, W]`: its dims (right-aligned, at most 4) permuted as the activation's, its data
/// transposed to match. A one-element constant is returned as it is.
fn to_nchw_broadcast(t: &ConstTensor) -> Option<ConstTensor> {
    let ConstData::F32(data) = &t.data else {
        return None;
    };
    if data.len() == 1 {
        return Some(t.clone());
    }
    if t.dims.len() > 4 {
        return None;
    }
    let mut d = [1usize; 4];
    d[4 - t.dims.len()..].copy_from_slice(&t.dims);
    let [n, h, w, c] = d;
    let mut out = vec![0f32; data.len()];
    for ni in 0..n {
        for hi in 0..h {
            for wi in 0..w {
                for ci in 0..c {
                    out[((ni * c + ci) * h + hi) * w + wi] =
                        data[((ni * h + hi) * w + wi) * c + ci];
                }
            }
        }
    }
    let mut dims = vec![n, c, h, w];
    while dims.len() > 1 && dims[0] == 1 {
        dims.remove(0);
    }
    Some(ConstTensor {
        name: format!("{} (NCHW)", t.name),
        dims,
        data: ConstData::F32(out),
    })
}

/// `LayerNormalization` of anything but an NHWC view.
fn layer_norm_nchw(_: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    Err(ctx.err(
        "LayerNormalization is supported only over the last axis of the NHWC view of a 4-D \
         activation (after Transpose perm [0, 2, 3, 1]), which is LayerNorm over its channels",
    ))
}

/// `Pow` outside the opset-9 LayerNorm spelling.
fn pow(_: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    Err(ctx.err(
        "Pow is supported only as the square in LayerNorm spelled ReduceMean(-1) → Sub → Pow 2 → \
         ReduceMean(-1) → Add eps → Sqrt → Div on an NHWC view",
    ))
}

/// `Sqrt` outside the opset-9 LayerNorm spelling.
fn sqrt(_: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    Err(ctx.err(
        "Sqrt is supported only as the standard deviation in LayerNorm spelled ReduceMean(-1) → \
         Sub → Pow 2 → ReduceMean(-1) → Add eps → Sqrt → Div on an NHWC view",
    ))
}
