//! Fully connected layers: `Gemm` and `MatMul` with a constant right operand, as Dense nodes.

use std::rc::Rc;

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "Gemm",
        gemm,
        &["alpha", "beta", "broadcast", "transA", "transB"],
    );
    reg.insert("MatMul", matmul, &[]);
}

/// Bias of `m` values from a Gemm `C` operand (scalar, `[M]`, `[1, M]` or `[1]`), scaled by beta.
fn gemm_bias(ctx: &NodeCtx, c: &ConstTensor, m: usize, beta: f32) -> Result<Vec<f32>, OnnxError> {
    let ConstData::F32(data) = &c.data else {
        return Err(ctx.err(format!(
            "bias `{}` has data type {}; only FLOAT is supported",
            c.name,
            c.dtype_name()
        )));
    };
    let per_row = match c.dims.as_slice() {
        [] | [1] | [1, 1] => false,
        [n] | [1, n] if *n == m => true,
        _ => {
            return Err(ctx.err(format!(
                "bias `{}` of shape {:?} is not supported; it must broadcast as [{m}]",
                c.name, c.dims
            )));
        }
    };
    Ok((0..m)
        .map(|j| beta * if per_row { data[j] } else { data[0] })
        .collect())
}

/// Gemm 7 broadcasts `C` unidirectionally without the `broadcast` attribute of Gemm 6; Gemm 11
/// makes `C` optional (9 and 13: types only).
pub(super) fn gemm(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions(
        "broadcast",
        1,
        Some((7, "C always broadcasts from then on")),
    )?;
    if ctx.opset < 11 && ctx.input(2).is_none() {
        return Err(ctx.err(format!(
            "input C (bias) is required before opset 11 (optional from then on); this file \
             declares opset {}",
            ctx.opset
        )));
    }
    if ctx.int("transA", 0)? != 0 {
        return Err(ctx.err("transA = 1 is not supported"));
    }
    let x = im.act(ctx, 0)?;
    let b = im.req_const(ctx, 1, "B (weight)")?;
    let c = im.opt_const(ctx, 2, "C (bias)")?;
    let alpha = ctx.float("alpha")?.unwrap_or(1.0);
    let beta = ctx.float("beta")?.unwrap_or(1.0);
    let trans_b = ctx.int("transB", 0)? != 0;
    dense(
        im,
        ctx,
        x,
        &b,
        trans_b,
        alpha,
        c.as_deref().map(|c| (c, beta)),
    )
}

pub(super) fn matmul(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if im.is_const(ctx, 0) {
        return Err(
            ctx.err("a constant left operand is not supported; only x · W with W constant is")
        );
    }
    let x = im.act(ctx, 0)?;
    let b = im.req_const(ctx, 1, "right operand (weight)")?;
    dense(im, ctx, x, &b, false, 1.0, None)
}

/// `x · op(B) · alpha + beta · C` as a Dense node; `op(B)` is `Bᵀ` when `trans_b`.
fn dense(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: ir::NodeId,
    b: &Rc<ConstTensor>,
    trans_b: bool,
    alpha: f32,
    c: Option<(&ConstTensor, f32)>,
) -> Result<Value, OnnxError> {
    if let Some(v) = super::quantize::dense(im, ctx, x, b, trans_b, alpha, c)? {
        return Ok(v);
    }
    let ConstData::F32(data) = &b.data else {
        return Err(ctx.err(format!(
            "weight `{}` has data type {}; only FLOAT weights are supported",
            b.name,
            b.dtype_name()
        )));
    };
    let &[rows, cols] = b.dims.as_slice() else {
        return Err(ctx.err(format!(
            "weight `{}` has shape {:?}; it must be 2-D",
            b.name, b.dims
        )));
    };
    // Dense wants [out, in]: that is B itself when transposed (torch Linear), Bᵀ otherwise.
    let (out_f, in_f) = if trans_b { (rows, cols) } else { (cols, rows) };
    let weight = if trans_b && alpha == 1.0 {
        im.weight(ctx, b, "weight")?
    } else {
        let mut w = vec![0f32; rows * cols];
        for o in 0..out_f {
            for i in 0..in_f {
                let v = if trans_b {
                    data[o * cols + i]
                } else {
                    data[i * cols + o]
                };
                w[o * in_f + i] = alpha * v;
            }
        }
        let what = if trans_b { "scaled" } else { "transposed" };
        im.derived_weight(format!("{} ({what})", b.name), vec![out_f, in_f], w)
    };
    let bias = match c {
        Some((c, beta)) if beta != 0.0 => {
            let data = gemm_bias(ctx, c, out_f, beta)?;
            if beta == 1.0 && c.dims.as_slice() == [out_f] {
                Some(im.weight(ctx, c, "bias")?)
            } else {
                Some(im.derived_weight(format!("{} (bias)", ctx.name), vec![out_f], data))
            }
        }
        _ => None,
    };
    let op = Op::Dense(ir::Dense {
        weight,
        bias,
        in_features: in_f,
        out_features: out_f,
        epilogue: ir::Epilogue::default(),
        kernel: ir::DenseKernel::default(),
    });
    im.add(ctx, op, &[x])
}
