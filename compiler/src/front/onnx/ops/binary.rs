//! Broadcasting arithmetic: `Add`, `Sub`, `Mul`, `Div` of two activations or of an activation and a
//! constant. A same-shaped Add of two activations is the IR's `Add` (which `fuse-epilogue` makes a
//! residual); everything else is `Op::Binary`, which `fuse-epilogue` turns into a ScaleShift where
//! the constant is per channel.

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::ConstData;
use crate::ir::{self, Binary, BinaryKind, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Add", add, &[]);
    reg.insert("Sub", sub, &[]);
    reg.insert("Mul", mul, &[]);
    reg.insert("Div", div, &[]);
}

pub(super) fn add(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    binary(im, ctx, BinaryKind::Add)
}

fn sub(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    binary(im, ctx, BinaryKind::Sub)
}

pub(super) fn mul(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    binary(im, ctx, BinaryKind::Mul)
}

fn div(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    binary(im, ctx, BinaryKind::Div)
}

fn binary(im: &mut Importer, ctx: &NodeCtx, kind: BinaryKind) -> Result<Value, OnnxError> {
    match (im.is_const(ctx, 0), im.is_const(ctx, 1)) {
        (false, false) => {
            let (a, b) = (im.act(ctx, 0)?, im.act(ctx, 1)?);
            let op = if kind == BinaryKind::Add && im.ty(a).shape == im.ty(b).shape {
                Op::Add {
                    activation: ir::Activation::None,
                }
            } else {
                Op::Binary(Binary {
                    kind,
                    constant: None,
                    constant_first: false,
                })
            };
            im.add(ctx, op, &[a, b])
        }
        // Shape arithmetic (ShuffleNet's `channels / groups`): folded at import.
        (true, true) => super::shape_arith::fold_int_arith(im, ctx),
        (a_const, _) => {
            let (k, other) = if a_const { (0, 1) } else { (1, 0) };
            let t = im.req_const(ctx, k, "constant operand")?;
            let x = im.act(ctx, other)?;
            // Adding zeros (or subtracting them from `x`) is no op at all.
            let zeros = matches!(&t.data, ConstData::F32(v) if v.iter().all(|&z| z == 0.0));
            let no_op = zeros
                && (kind == BinaryKind::Add || (kind == BinaryKind::Sub && !a_const))
                && t.dims.len() <= im.ty(x).shape.rank();
            if no_op {
                return im.add(ctx, Op::Identity, &[x]);
            }
            let w = im.weight(ctx, &t, "constant")?;
            let op = Op::Binary(Binary {
                kind,
                constant: Some(w),
                constant_first: a_const,
            });
            im.add(ctx, op, &[x])
        }
    }
}
