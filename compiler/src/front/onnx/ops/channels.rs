//! Ops on the channel axis of activations: `Concat` of 4-D values along channels (the Inception,
//! GoogLeNet, DenseNet and SqueezeNet branches joined), which `plan-memory` plans in place.

use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::Op;

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
