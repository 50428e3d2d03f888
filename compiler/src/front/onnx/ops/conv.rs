//! `Conv`: 2-D convolutions of any group count, kernel, stride, dilation and padding.

use super::Registry;
use super::window::{chw, pair, pair_or, resolve_pads, size};
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "Conv",
        conv,
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ],
    );
}

pub(super) fn conv(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let w = im.req_const(ctx, 1, "weight")?;
    let b = im.opt_const(ctx, 2, "bias")?;
    let (c, h, wd) = chw(im, ctx, x)?;
    if w.dims.len() != 4 {
        return Err(ctx.err(format!(
            "weight `{}` has shape {:?}; only 2-D convolution ([M, C/group, kH, kW]) is supported",
            w.name, w.dims
        )));
    }
    let kernel = pair(ctx, "kernel_shape")?.unwrap_or([w.dims[2], w.dims[3]]);
    if kernel != [w.dims[2], w.dims[3]] {
        return Err(ctx.err(format!(
            "kernel_shape {kernel:?} does not match weight `{}` of shape {:?}",
            w.name, w.dims
        )));
    }
    let stride = pair_or(ctx, "strides", 1)?;
    let dilation = pair_or(ctx, "dilations", 1)?;
    let group = size(ctx, "group", ctx.int("group", 1)?)?;
    if group == 0 {
        return Err(ctx.err("attribute `group` must be positive"));
    }
    let pads = resolve_pads(ctx, [h, wd], kernel, stride, dilation)?;
    let window = super::quantize::Window {
        group,
        kernel,
        stride,
        dilation,
        pads,
    };
    if let Some(v) = super::quantize::conv(im, ctx, x, &w, b.as_deref(), window)? {
        return Ok(v);
    }
    let weight = im.weight(ctx, &w, "weight")?;
    let bias = match b {
        Some(b) => Some(im.weight(ctx, &b, "bias")?),
        None => None,
    };
    let op = Op::Conv(ir::Conv {
        weight,
        bias,
        in_channels: c,
        out_channels: w.dims[0],
        group,
        kernel,
        stride,
        dilation,
        pads,
        epilogue: ir::Epilogue::default(),
        kernel_choice: ir::ConvKernel::default(),
    });
    im.add(ctx, op, &[x])
}
