//! `BatchNormalization` in inference mode (later folded into the preceding conv by the passes).
//!
//! Versions: 7 (`spatial`, default 1; outputs 1–4 are the training outputs), 9 (always spatial),
//! 14 (`training_mode` decides the mode; outputs 1–2 are valid only with it), 15 (types only).

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "BatchNormalization",
        batch_norm,
        &["epsilon", "is_test", "momentum", "spatial", "training_mode"],
    );
}

fn batch_norm(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("is_test", 1, Some((7, "removed then")))?;
    ctx.attr_versions("spatial", 1, Some((9, "always spatial from then on")))?;
    ctx.attr_versions("training_mode", 14, None)?;
    if ctx.int("spatial", 1)? != 1 {
        return Err(ctx.err(
            "spatial = 0 (statistics per activation, not per channel) is not supported; only \
             spatial = 1 is",
        ));
    }
    if ctx.int("training_mode", 0)? != 0 {
        return Err(ctx.err("training_mode = 1 is not supported; export the model in eval mode"));
    }
    if let Some(k) = (1..ctx.proto.output.len()).find(|&k| !ctx.proto.output[k].is_empty()) {
        return Err(ctx.err(if ctx.opset < 14 {
            format!(
                "output {k} is named: before opset 14 the running and saved mean/var outputs \
                 make it training mode (Y normalised with the batch's statistics), which is not \
                 supported; export the model in eval mode"
            )
        } else {
            format!(
                "output {k} is named: from opset 14 the running mean/var outputs are valid only \
                 with training_mode = 1, which is not supported; export the model in eval mode"
            )
        }));
    }
    let x = im.act(ctx, 0)?;
    let mut ids = [ir::WeightId(0); 4];
    for (k, what) in ["scale", "bias", "mean", "var"].iter().enumerate() {
        let t = im.req_const(ctx, k + 1, what)?;
        ids[k] = im.weight(ctx, &t, what)?;
    }
    let epsilon = ctx.float("epsilon")?.unwrap_or(1e-5);
    let op = Op::BatchNorm(ir::BatchNorm {
        scale: ids[0],
        bias: ids[1],
        mean: ids[2],
        var: ids[3],
        epsilon,
    });
    im.add(ctx, op, &[x])
}
