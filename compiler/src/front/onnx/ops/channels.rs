//! Ops on the channel axis of activations: `Concat` of 4-D values along channels (the Inception,
//! GoogLeNet, DenseNet and SqueezeNet branches joined), which `plan-memory` plans in place;
//! ShuffleNet's channel shuffle (`Reshape → Transpose`) and channel split (`Slice` on axis 1);
//! zero `Pad` of H and W (the opset-9 exports' pooling padding); `Softmax` and `LogSoftmax` of
//! `[N, K]` logits; `LRN` across channels.

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::ConstData;
use crate::ir::{Lrn, Op};

/// `Concat` whose inputs are activations: only along the channel axis (1, or -3) of 4-D NCHW
/// values. Constant inputs (shape arithmetic) are folded by `shape::concat` instead.
pub(super) fn concat_activations(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let inputs = (0..ctx.proto.input.len())
        .map(|i| im.act(ctx, i))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(&first) = inputs.first() else {
        return Err(ctx.err("has no inputs"));
    };
    let rank = im.ty(first).shape.rank() as i64;
    let axis = ctx.int("axis", 0)?;
    let normalised = if axis < 0 { axis + rank } else { axis };
    if rank != 4 || normalised != 1 {
        return Err(ctx.err(format!(
            "axis {axis} of rank-{rank} values is not supported; only the channel axis (1) of \
             4-D [N, C, H, W] activations is"
        )));
    }
    im.add(
        ctx,
        Op::Concat {
            inputs: inputs.len(),
        },
        &inputs,
    )
}

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Transpose", transpose, &["perm"]);
    reg.insert("Slice", slice, &["starts", "ends", "axes"]);
    reg.insert("Split", split, &["axis", "split", "num_outputs"]);
    reg.insert("Pad", pad, &["mode", "pads", "value"]);
    reg.insert("Softmax", softmax, &["axis"]);
    reg.insert("LogSoftmax", log_softmax, &["axis"]);
    reg.insert("LRN", lrn, &["alpha", "beta", "bias", "size"]);
}

/// `LRN` across the channels of a 4-D activation (AlexNet's original form).
fn lrn(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    if im.ty(x).shape.chw().is_none() {
        return Err(ctx.err(format!(
            "input {} is not supported; only 4-D [N, C, H, W] values are",
            im.ty(x).shape
        )));
    }
    let size = ctx.int("size", 0)?;
    if size <= 0 {
        return Err(ctx.err(format!("size {size} must be given and positive")));
    }
    let lrn = Lrn {
        size: size as usize,
        alpha: ctx.float("alpha")?.unwrap_or(1e-4),
        beta: ctx.float("beta")?.unwrap_or(0.75),
        bias: ctx.float("bias")?.unwrap_or(1.0),
    };
    im.add(ctx, Op::Lrn(lrn), &[x])
}

fn softmax(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    softmax_of(im, ctx, false)
}

fn log_softmax(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    softmax_of(im, ctx, true)
}

/// `Softmax` / `LogSoftmax` over the last axis of `[N, K]` (axis 1 or -1: before opset 13 the
/// input is coerced to 2-D at the axis, which for `[N, K]` and axis 1 is the same).
fn softmax_of(im: &mut Importer, ctx: &NodeCtx, log: bool) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let rank = im.ty(x).shape.rank() as i64;
    let axis = ctx.int("axis", if ctx.opset < 13 { 1 } else { -1 })?;
    if rank != 2 || !(axis == 1 || axis == -1) {
        return Err(ctx.err(format!(
            "axis {axis} of {} is not supported; only the last axis of [N, K] is",
            im.ty(x).shape
        )));
    }
    im.add(ctx, Op::Softmax { log }, &[x])
}

/// `Split` of an activation along the channel axis (ShuffleNet's channel split): one
/// `SliceChannels` per output. Sizes from the `split` attribute (before opset 13) or input 1, else
/// equal parts, one per output (`num_outputs` from opset 18: the last part may be smaller).
fn split(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let shape = im.ty(x).shape.clone();
    let axis = ctx.int("axis", 0)?;
    let Some((c, _, _)) = shape.chw().filter(|_| axis == 1 || axis == -3) else {
        return Err(ctx.err(format!(
            "axis {axis} of {shape} is not supported; only the channel axis (1) of 4-D \
             [N, C, H, W] values is"
        )));
    };
    let outputs = ctx.proto.output.len();
    let sizes: Vec<i64> = match ctx.ints("split")? {
        Some(s) => s,
        None => match im.opt_const(ctx, 1, "split")? {
            Some(t) => t
                .ints()
                .ok_or_else(|| ctx.err(format!("split must be INT64, is {}", t.dtype_name())))?
                .to_vec(),
            None => {
                let parts = ctx.int("num_outputs", outputs as i64)?.max(1) as usize;
                let each = c.div_ceil(parts);
                (0..parts)
                    .map(|k| each.min(c.saturating_sub(k * each)) as i64)
                    .collect()
            }
        },
    };
    if sizes.len() != outputs
        || sizes.iter().any(|&s| s <= 0)
        || sizes.iter().sum::<i64>() != c as i64
    {
        return Err(ctx.err(format!(
            "sizes {sizes:?} for {outputs} outputs do not split {c} channels into non-empty parts"
        )));
    }
    let mut start = 0;
    let mut values = Vec::with_capacity(outputs);
    for (k, &len) in sizes.iter().enumerate() {
        let len = len as usize;
        let id = im.graph.add_node(
            format!("{}/{k}", ctx.name),
            Op::SliceChannels { start, len },
            &[x],
        )?;
        values.push(Value::Act(id));
        start += len;
    }
    Ok(Value::Outputs(values))
}

/// `Pad` with zeros of H and W of a 4-D activation; pads from the attribute (before opset 11) or
/// input 1, the value from the attribute or input 2. A pad of nothing is the input itself.
fn pad(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let mode = ctx.string("mode")?.unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(ctx.err(format!(
            "mode `{mode}` is not supported; only constant (zero) padding is"
        )));
    }
    let pads = match ctx.ints("pads")? {
        Some(p) => p,
        None => {
            let t = im.req_const(ctx, 1, "pads")?;
            t.ints()
                .ok_or_else(|| ctx.err(format!("pads must be INT64, is {}", t.dtype_name())))?
                .to_vec()
        }
    };
    let value = match ctx.float("value")? {
        Some(v) => v,
        None => match im.opt_const(ctx, 2, "constant_value")? {
            None => 0.0,
            Some(t) => match &t.data {
                ConstData::F32(v) if v.len() == 1 => v[0],
                _ => return Err(ctx.err("constant_value must be one FLOAT")),
            },
        },
    };
    if ctx.input(3).is_some() {
        return Err(ctx.err("the axes input is not supported; give pads for every axis"));
    }
    let supported = im.ty(x).shape.rank() == 4
        && pads.len() == 8
        && pads.iter().all(|&p| p >= 0)
        && [pads[0], pads[1], pads[4], pads[5]] == [0; 4]
        && value == 0.0;
    if !supported {
        return Err(ctx.err(format!(
            "pads {pads:?} with value {value} of {} are not supported; only zero padding of H and W \
             of 4-D [N, C, H, W] values (no cropping) is",
            im.ty(x).shape
        )));
    }
    let pads = [pads[2], pads[3], pads[6], pads[7]].map(|p| p as usize);
    if pads == [0; 4] {
        return Ok(Value::Act(x));
    }
    im.add(ctx, Op::Pad { pads }, &[x])
}

/// `Transpose(0, 2, 1, 3, 4)` of a `Reshape` of `[N, C, H, W]` into `[N, g, C / g, H, W]`:
/// ShuffleNet's channel shuffle, imported as one `ChannelShuffle` (then a reshape to the transposed
/// 5-D shape, which the `Reshape` back to `[N, C, H, W]` that follows cancels in `simplify`).
/// `[0, 2, 3, 1]` of a 4-D activation is its NHWC view (`channels_last`). No other transpose of
/// activations is supported.
fn transpose(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let perm = ctx.ints("perm")?;
    if perm.as_deref() == Some(&[0, 2, 3, 1]) {
        return super::channels_last::to_channels_last(im, ctx, x);
    }
    let unsupported = || {
        ctx.err(format!(
            "perm {perm:?} of {} is not supported; only the channel shuffle \
             Reshape [N, C, H, W] -> [N, g, C/g, H, W] then Transpose perm [0, 2, 1, 3, 4], and \
             NCHW -> NHWC (perm [0, 2, 3, 1]) followed by LayerNorm over the last axis, MatMul by \
             a constant or elementwise ops and NHWC -> NCHW (perm [0, 3, 1, 2]), are",
            im.ty(x).shape
        ))
    };
    if perm.as_deref() != Some(&[0, 2, 1, 3, 4]) {
        return Err(unsupported());
    }
    let Op::Reshape { per_item } = &im.graph.node(x).op else {
        return Err(unsupported());
    };
    let per_item = per_item.clone();
    let source = im.graph.inputs_of(x)[0];
    let Some((c, h, w)) = im.ty(source).shape.chw() else {
        return Err(unsupported());
    };
    let [g, per_group, rh, rw] = per_item[..] else {
        return Err(unsupported());
    };
    if g.checked_mul(per_group) != Some(c) || (rh, rw) != (h, w) {
        return Err(unsupported());
    }
    let shuffled = im.graph.add_node(
        format!("{}/shuffle", ctx.name),
        Op::ChannelShuffle { groups: g },
        &[source],
    )?;
    im.add(
        ctx,
        Op::Reshape {
            per_item: vec![per_group, g, h, w],
        },
        &[shuffled],
    )
}

/// One INT64 of a Slice parameter: input `i` (opset 10 and later) or the attribute (before).
fn slice_param(
    im: &Importer,
    ctx: &NodeCtx,
    i: usize,
    attr: &str,
) -> Result<Option<i64>, OnnxError> {
    let values = match ctx.ints(attr)? {
        Some(v) => Some(v),
        None => match im.opt_const(ctx, i, attr)? {
            Some(t) => Some(
                t.ints()
                    .ok_or_else(|| ctx.err(format!("{attr} must be INT64, is {}", t.dtype_name())))?
                    .to_vec(),
            ),
            None => None,
        },
    };
    match values.as_deref() {
        None => Ok(None),
        Some(&[v]) => Ok(Some(v)),
        Some(v) => Err(ctx.err(format!(
            "{attr} {v:?}: only a slice along one axis (the channels) is supported"
        ))),
    }
}

/// `Slice` of an activation along the channel axis with step 1 (ShuffleNet's channel split):
/// `SliceChannels`. Starts and ends are constants, clamped as ONNX says.
fn slice(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let Some((c, _, _)) = im.ty(x).shape.chw() else {
        return Err(ctx.err(format!(
            "input {} is not supported; only the channel axis of 4-D [N, C, H, W] values is",
            im.ty(x).shape
        )));
    };
    let start = slice_param(im, ctx, 1, "starts")?.ok_or_else(|| ctx.err("starts is missing"))?;
    let end = slice_param(im, ctx, 2, "ends")?.ok_or_else(|| ctx.err("ends is missing"))?;
    let axis = slice_param(im, ctx, 3, "axes")?.unwrap_or(0);
    let step = slice_param(im, ctx, 4, "steps")?.unwrap_or(1);
    if !(axis == 1 || axis == -3) || step != 1 {
        return Err(ctx.err(format!(
            "axis {axis} with step {step} is not supported; only the channel axis (1) with step 1 is"
        )));
    }
    let c = c as i64;
    let clamp = |v: i64| (if v < 0 { v.saturating_add(c) } else { v }).clamp(0, c) as usize;
    let (start, end) = (clamp(start), clamp(end));
    if end <= start {
        return Err(ctx.err(format!(
            "channels {start}..{end} of {c} are empty; an empty value is not supported"
        )));
    }
    im.add(
        ctx,
        Op::SliceChannels {
            start,
            len: end - start,
        },
        &[x],
    )
}
