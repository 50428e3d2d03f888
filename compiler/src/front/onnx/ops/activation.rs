//! Activations beyond Relu and Clip: Sigmoid, Tanh, HardSigmoid, HardSwish, LeakyRelu, Elu, Gelu
//! (opset 20, `approximate` none or tanh), Erf, and PRelu with a constant slope.

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::ConstData;
use crate::ir::{Activation, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Sigmoid", sigmoid, &[]);
    reg.insert("Tanh", tanh, &[]);
    reg.insert("HardSigmoid", hard_sigmoid, &["alpha", "beta"]);
    reg.insert("HardSwish", hard_swish, &[]);
    reg.insert("LeakyRelu", leaky_relu, &["alpha"]);
    reg.insert("Elu", elu, &["alpha"]);
    reg.insert("Gelu", gelu, &["approximate"]);
    reg.insert("Erf", erf, &[]);
    reg.insert("PRelu", prelu, &[]);
}

fn unary(im: &mut Importer, ctx: &NodeCtx, a: Activation) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Activation(a), &[x])
}

pub(super) fn sigmoid(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    unary(im, ctx, Activation::Sigmoid)
}

fn tanh(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    unary(im, ctx, Activation::Tanh)
}

fn hard_sigmoid(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let alpha = ctx.float("alpha")?.unwrap_or(0.2);
    let beta = ctx.float("beta")?.unwrap_or(0.5);
    unary(im, ctx, Activation::HardSigmoid { alpha, beta })
}

fn hard_swish(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    unary(im, ctx, Activation::HardSwish)
}

pub(super) fn leaky_relu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let alpha = ctx.float("alpha")?.unwrap_or(0.01);
    unary(im, ctx, Activation::LeakyRelu { alpha })
}

fn elu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let alpha = ctx.float("alpha")?.unwrap_or(1.0);
    unary(im, ctx, Activation::Elu { alpha })
}

fn gelu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let a = match ctx.string("approximate")?.as_deref() {
        None | Some("none") => Activation::Gelu,
        Some("tanh") => Activation::GeluTanh,
        Some(other) => {
            return Err(ctx.err(format!(
                "approximate `{other}` is not one of `none`, `tanh`"
            )));
        }
    };
    unary(im, ctx, a)
}

fn erf(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    unary(im, ctx, Activation::Erf)
}

/// PRelu whose slope is a constant with one value, or one per channel (dim 1, numpy-aligned).
fn prelu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let t = im.req_const(ctx, 1, "slope")?;
    let shape = &im.ty(x).shape;
    let (Some(dims), rank) = (shape.per_item(), shape.rank()) else {
        return Err(ctx.err(format!("input {shape} must be batch-first")));
    };
    let channels = dims.first().copied().unwrap_or(1);
    let per_channel = t.dims.len() <= rank
        && t.dims.iter().enumerate().all(|(i, &d)| {
            let axis = rank - t.dims.len() + i;
            d == 1 || (axis == 1 && d == channels)
        });
    let ConstData::F32(data) = &t.data else {
        return Err(ctx.err(format!(
            "slope `{}` has data type {}; only FLOAT is supported",
            t.name,
            t.dtype_name()
        )));
    };
    if !per_channel || !(data.len() == 1 || data.len() == channels) {
        return Err(ctx.err(format!(
            "slope `{}` of shape {:?} is neither one value nor one per channel of the input {shape}",
            t.name, t.dims
        )));
    }
    let slope: Vec<f32> = (0..channels)
        .map(|c| if data.len() == 1 { data[0] } else { data[c] })
        .collect();
    let slope = im.derived_weight(format!("{}.slope", ctx.name), vec![channels], slope);
    im.add(ctx, Op::PRelu { slope }, &[x])
}
