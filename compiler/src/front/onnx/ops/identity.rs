//! Ops that pass their input through at inference: `Identity` and `Dropout`.

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::Op;

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Identity", identity, &[]);
    // `seed` only matters in training mode, which is rejected.
    reg.insert("Dropout", dropout, &["ratio", "seed"]);
}

fn identity(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if im.is_const(ctx, 0) {
        // A renamed constant: keep it a constant so Reshape/Gemm can still read it.
        return Ok(Value::Const(im.req_const(ctx, 0, "input")?));
    }
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Identity, &[x])
}

fn dropout(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    // Opset 12+: `training_mode` is an optional boolean input; only inference is supported.
    if let Some(t) = im.opt_const(ctx, 2, "training_mode")?
        && t.ints().is_none_or(|v| v.iter().any(|&b| b != 0))
    {
        return Err(
            ctx.err("training_mode = true is not supported; Dropout is imported for inference")
        );
    }
    im.opt_const(ctx, 1, "ratio")?;
    identity(im, ctx)
}
