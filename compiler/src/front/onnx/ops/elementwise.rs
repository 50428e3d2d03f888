//! Elementwise ops: `Relu`, `Clip` and `Add` (of two activations, or of zeros).

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::ConstData;
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Relu", relu, &[]);
    reg.insert("Clip", clip, &["min", "max"]);
    reg.insert("Add", add, &[]);
}

fn relu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Relu, &[x])
}

fn clip(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    // Opset < 11 has the bounds as attributes, later ones as optional inputs.
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

fn add(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    match (im.is_const(ctx, 0), im.is_const(ctx, 1)) {
        (false, false) => {
            let (a, b) = (im.act(ctx, 0)?, im.act(ctx, 1)?);
            im.add(
                ctx,
                Op::Add {
                    activation: ir::Activation::None,
                },
                &[a, b],
            )
        }
        (true, true) => super::shape_arith::fold_int_arith(im, ctx),
        (a_const, _) => {
            let (k, other) = if a_const { (0, 1) } else { (1, 0) };
            let t = im.req_const(ctx, k, "constant operand")?;
            let x = im.act(ctx, other)?;
            // Adding zeros is the only constant Add we can drop without a broadcast op.
            let zeros = match &t.data {
                ConstData::F32(v) => v.iter().all(|&z| z == 0.0),
                _ => false,
            };
            let rank = im.ty(x).shape.rank();
            if zeros && t.dims.len() <= rank {
                im.add(ctx, Op::Identity, &[x])
            } else {
                Err(ctx.err(format!(
                    "adding the constant `{}` (shape {:?}) to an activation is not supported; only Add of two activations is",
                    t.name, t.dims
                )))
            }
        }
    }
}
