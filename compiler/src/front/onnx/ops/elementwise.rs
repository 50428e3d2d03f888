//! Elementwise ops: `Relu` and `Clip` (the other activations are in `activation`, arithmetic in
//! `binary`).

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::Op;

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Relu", relu, &[]);
    reg.insert("Clip", clip, &["min", "max"]);
}

fn relu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Relu, &[x])
}

/// Clip 6 has its bounds as attributes, Clip 11 on as optional inputs (12 and 13: types only).
fn clip(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    for (k, what) in [(1, "min"), (2, "max")] {
        ctx.attr_versions(what, 6, Some((11, "an optional input from then on")))?;
        ctx.input_since(k, what, 11)?;
    }
    let x = im.act(ctx, 0)?;
    // An absent bound is ±FLT_MAX before 11 and none after; ±∞ agrees with both on finite values.
    let mut bounds = [
        ctx.float("min")?.unwrap_or(f32::NEG_INFINITY),
        ctx.float("max")?.unwrap_or(f32::INFINITY),
    ];
    for (k, what) in [(1, "min"), (2, "max")] {
        if let Some(t) = im.opt_const(ctx, k, what)? {
            bounds[k - 1] = t.scalar_f32().ok_or_else(|| {
                ctx.err(format!(
                    "{what} `{}` must be a single FLOAT, is {} of shape {:?}",
                    t.name,
                    t.dtype_name(),
                    t.dims
                ))
            })?;
        }
    }
    let [min, max] = bounds;
    if min.is_nan() || max.is_nan() || min > max {
        return Err(ctx.err(format!("invalid bounds min {min} > max {max}")));
    }
    im.add(ctx, Op::Clip { min, max }, &[x])
}
