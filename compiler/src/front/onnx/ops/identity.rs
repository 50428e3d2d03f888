//! Ops that pass their input through at inference: `Identity` and `Dropout`.

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::Op;

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Identity", identity, &[]);
    // `seed` only matters in training mode, which is rejected.
    reg.insert("Dropout", dropout, &["is_test", "ratio", "seed"]);
}

fn identity(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if im.is_const(ctx, 0) {
        // A renamed constant: keep it a constant so Reshape/Gemm can still read it.
        return Ok(Value::Const(im.req_const(ctx, 0, "input")?));
    }
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Identity, &[x])
}

/// Dropout 7 and 10 have `ratio` as an attribute and no mode (inference passes the input
/// through); 12 moved `ratio` to an input and added `seed` and the `training_mode` input (13 and 22:
/// types only). The `mask` output may be named, but reading it is an error (`import` binds it as
/// unavailable).
fn dropout(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("is_test", 1, Some((7, "removed then")))?;
    ctx.attr_versions("ratio", 1, Some((12, "an optional input from then on")))?;
    ctx.attr_versions("seed", 12, None)?;
    ctx.input_since(1, "ratio", 12)?;
    ctx.input_since(2, "training_mode", 12)?;
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
