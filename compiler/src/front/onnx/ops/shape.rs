//! Shape ops: `Flatten` and `Reshape` of activations, and the shape arithmetic folded at import
//! into constants (`Shape`, `Gather`, `Unsqueeze`, `Concat`: the dynamo exporter's
//! `x.view(x.size(0), -1)`).

use std::rc::Rc;

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};
use crate::ir::Op;

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Flatten", flatten, &["axis"]);
    reg.insert("Reshape", reshape, &["allowzero"]);
    reg.insert("Shape", shape, &["start", "end"]);
    reg.insert("Gather", gather, &["axis"]);
    reg.insert("Unsqueeze", unsqueeze, &["axes"]);
    reg.insert("Concat", concat, &["axis"]);
}

/// Flatten 11 allows a negative `axis` (9, 13 and later: types only).
fn flatten(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let rank = im.ty(x).shape.rank() as i64;
    let axis = ctx.int("axis", 1)?;
    negative_axis(ctx, "axis", axis)?;
    let axis = if axis < 0 { axis + rank } else { axis };
    if axis != 1 {
        return Err(ctx.err(format!(
            "axis {} is not supported; only axis 1 (keep the batch, flatten the rest) is",
            ctx.int("axis", 1)?
        )));
    }
    im.add(ctx, Op::Flatten { axis: 1 }, &[x])
}

/// Reshape 14 adds `allowzero` (5 and 13: the shape as an input; 19 and later: types only).
fn reshape(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("allowzero", 14, None)?;
    let x = im.act(ctx, 0)?;
    let t = im.req_const(ctx, 1, "shape")?;
    let target = t.ints().ok_or_else(|| {
        ctx.err(format!(
            "shape `{}` must be INT64, is {}",
            t.name,
            t.dtype_name()
        ))
    })?;
    let allow_zero = ctx.int("allowzero", 0)? != 0;
    if target == [-1] {
        return Ok(super::batch_index::flatten_whole(x));
    }
    let input = im.ty(x).shape.per_item().ok_or_else(|| {
        ctx.err(format!(
            "input {} must be batch-first with fixed other dimensions",
            im.ty(x).shape
        ))
    })?;
    let Some((&first, rest)) = target.split_first() else {
        return Err(ctx.err("an empty target shape would drop the batch dimension"));
    };
    let keeps_batch = first == -1
        || first == BATCH
        || (first == 0 && !allow_zero)
        || im.export_batch.is_some_and(|b| first == b as i64);
    if !keeps_batch {
        return Err(ctx.err(format!(
            "target shape {target:?} must keep the batch first (start with 0 or -1)"
        )));
    }
    let item_len: usize = input.iter().product();
    let mut dims = Vec::with_capacity(rest.len());
    let mut infer = None;
    for (k, &d) in rest.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() && first != -1 => {
                infer = Some(k);
                1
            }
            0 if !allow_zero => *input.get(k).ok_or_else(|| {
                ctx.err(format!(
                    "target shape {target:?} copies dimension {} that the input {:?} lacks",
                    k + 1,
                    im.ty(x).shape
                ))
            })?,
            d if d > 0 => d as usize,
            _ => {
                return Err(ctx.err(format!(
                    "target shape {target:?}: dimension {} = {d} is not supported",
                    k + 1
                )));
            }
        });
    }
    let mismatch = || {
        ctx.err(format!(
            "cannot reshape {item_len} elements per item into {target:?}"
        ))
    };
    let known = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(mismatch)?;
    if let Some(k) = infer {
        if known == 0 || !item_len.is_multiple_of(known) {
            return Err(mismatch());
        }
        dims[k] = item_len / known;
    } else if known != item_len {
        return Err(mismatch());
    }
    im.add(ctx, Op::Reshape { per_item: dims }, &[x])
}

/// Negative axes count from the back from opset 11 on; before, they are invalid.
fn negative_axis(ctx: &NodeCtx, name: &str, axis: i64) -> Result<(), OnnxError> {
    if axis < 0 && ctx.opset < 11 {
        return Err(ctx.err(format!(
            "negative `{name}` ({axis}) counts from the back only from opset 11; this file \
             declares opset {}",
            ctx.opset
        )));
    }
    Ok(())
}

/// How a folded shape tensor (the output of `Shape` on an activation) spells the symbolic batch
/// size. Only `Reshape` gives it meaning (keep the batch); any other use of it is rejected.
pub(super) const BATCH: i64 = i64::MIN;

/// An INT64 constant input of a shape-arithmetic node.
fn shape_ints(
    im: &Importer,
    ctx: &NodeCtx,
    i: usize,
) -> Result<(Rc<ConstTensor>, Vec<i64>), OnnxError> {
    let t = im.req_const(ctx, i, "input").map_err(|_| {
        ctx.err(format!(
            "input {i} is computed at run time; {} is supported only on shapes known at compile time",
            ctx.op()
        ))
    })?;
    let v = t
        .ints()
        .ok_or_else(|| {
            ctx.err(format!(
                "input `{}` must be INT64, is {}",
                t.name,
                t.dtype_name()
            ))
        })?
        .to_vec();
    Ok((t, v))
}

fn int_const(ctx: &NodeCtx, dims: Vec<usize>, data: Vec<i64>) -> Value {
    let name = ctx
        .proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    Value::Const(Rc::new(ConstTensor {
        name,
        dims,
        data: ConstData::I64(data),
    }))
}

/// `Shape`: the dims of an activation as an INT64 constant, the batch as [`BATCH`]. Shape 15 adds
/// `start` and `end`.
fn shape(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("start", 15, None)?;
    ctx.attr_versions("end", 15, None)?;
    let x = im.act(ctx, 0)?;
    let dims: Vec<i64> = im
        .ty(x)
        .shape
        .0
        .iter()
        .map(|d| d.fixed().map_or(BATCH, |n| n as i64))
        .collect();
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(ctx.int("start", 0)?), clamp(ctx.int("end", rank)?));
    let dims = dims.get(start..end.max(start)).unwrap_or_default().to_vec();
    Ok(int_const(ctx, vec![dims.len()], dims))
}

/// `Gather` along axis 0 of a 1-D INT64 constant (picking dims out of a shape).
fn gather(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let (data_t, data) = shape_ints(im, ctx, 0)?;
    let (idx_t, idx) = shape_ints(im, ctx, 1)?;
    if ctx.int("axis", 0)? != 0 || data_t.dims.len() != 1 {
        return Err(ctx.err("only axis 0 of a 1-D constant (a shape) is supported"));
    }
    let n = data.len() as i64;
    let picked = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            data.get(usize::try_from(j).unwrap_or(usize::MAX))
                .copied()
                .ok_or_else(|| ctx.err(format!("index {i} is out of range for {n} values")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(int_const(ctx, idx_t.dims.clone(), picked))
}

/// `Unsqueeze` of a scalar or 1-D INT64 constant. Unsqueeze 1 takes `axes` as a required
/// attribute, 11 allows negative axes, 13 moves `axes` to a required input.
fn unsqueeze(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("axes", 1, Some((13, "a required input from then on")))?;
    ctx.input_since(1, "axes", 13)?;
    let (t, v) = shape_ints(im, ctx, 0)?;
    let axes = if ctx.opset < 13 {
        ctx.ints("axes")?
            .ok_or_else(|| ctx.err("attribute `axes` is required"))?
    } else {
        if ctx.input(1).is_none() {
            return Err(ctx.err("input `axes` (input 1) is required"));
        }
        shape_ints(im, ctx, 1)?.1
    };
    for &a in &axes {
        negative_axis(ctx, "axes", a)?;
    }
    let mut dims = t.dims.clone();
    let rank = (dims.len() + axes.len()) as i64;
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| usize::try_from(if a < 0 { a + rank } else { a }).unwrap_or(usize::MAX))
        .collect();
    axes.sort_unstable();
    for a in axes {
        if a > dims.len() {
            return Err(ctx.err(format!("axis {a} is out of range")));
        }
        dims.insert(a, 1);
    }
    if dims.len() > 1 && dims.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(ctx.err("only shape-like (1-D) constants are supported"));
    }
    Ok(int_const(ctx, dims, v))
}

/// `Concat` of 1-D INT64 constants along axis 0 (assembling a target shape); a `Concat` of
/// activations is `channels::concat_activations`.
pub(super) fn concat(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let any_act = (0..ctx.proto.input.len()).any(|i| {
        ctx.input(i)
            .is_some_and(|n| matches!(im.get(n), Some(Value::Act(_))))
    });
    if any_act {
        return super::channels::concat_activations(im, ctx);
    }
    let mut out = Vec::new();
    for i in 0..ctx.proto.input.len() {
        let (t, v) = shape_ints(im, ctx, i)?;
        if t.dims.len() > 1 {
            return Err(ctx.err("only 1-D constants (shapes) can be concatenated"));
        }
        out.extend(v);
    }
    negative_axis(ctx, "axis", ctx.int("axis", 0)?)?;
    if ![0, -1].contains(&ctx.int("axis", 0)?) {
        return Err(ctx.err("only axis 0 is supported"));
    }
    Ok(int_const(ctx, vec![out.len()], out))
}
