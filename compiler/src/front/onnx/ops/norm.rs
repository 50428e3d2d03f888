//! `BatchNormalization` in inference mode (later folded into the preceding conv by the passes).

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "BatchNormalization",
        batch_norm,
        &["epsilon", "momentum", "training_mode"],
    );
}

fn batch_norm(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if ctx.int("training_mode", 0)? != 0 {
        return Err(ctx.err("training_mode = 1 is not supported; export the model in eval mode"));
    }
    if ctx.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ctx.err(
            "running mean/var outputs are training-mode only; export the model in eval mode",
        ));
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
