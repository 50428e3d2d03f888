//! Attribute readers shared by the windowed ops (Conv and the pools): sizes, (H, W) pairs, and
//! `pads`/`auto_pad` resolved against the static input size.

use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx};
use crate::ir;

/// A non-negative attribute value as a size. Values beyond `i32::MAX` are rejected so that window
/// arithmetic (`size + pads`, `dilation · (kernel - 1)`) can never overflow.
pub(super) fn size(ctx: &NodeCtx, name: &str, v: i64) -> Result<usize, OnnxError> {
    if v < 0 {
        return Err(ctx.err(format!("attribute `{name}` has negative value {v}")));
    }
    if v > i64::from(i32::MAX) {
        return Err(ctx.err(format!(
            "attribute `{name}` has unreasonably large value {v}"
        )));
    }
    Ok(v as usize)
}

/// A two-element (H, W) attribute, if present.
pub(super) fn pair(ctx: &NodeCtx, name: &str) -> Result<Option<[usize; 2]>, OnnxError> {
    let Some(v) = ctx.ints(name)? else {
        return Ok(None);
    };
    match v.as_slice() {
        &[a, b] => Ok(Some([size(ctx, name, a)?, size(ctx, name, b)?])),
        _ => Err(ctx.err(format!(
            "attribute `{name}` has {} values {v:?}; only 2-D (H, W) windows are supported",
            v.len()
        ))),
    }
}

/// A two-element (H, W) attribute, or `[default; 2]` when absent.
pub(super) fn pair_or(ctx: &NodeCtx, name: &str, default: usize) -> Result<[usize; 2], OnnxError> {
    Ok(pair(ctx, name)?.unwrap_or([default; 2]))
}

/// `(c, h, w)` of a 4-D activation.
pub(super) fn chw(
    im: &Importer,
    ctx: &NodeCtx,
    x: ir::NodeId,
) -> Result<(usize, usize, usize), OnnxError> {
    let ty = im.ty(x);
    ty.shape.chw().ok_or_else(|| {
        ctx.err(format!(
            "input {} must be 4-D [N, C, H, W]; only 2-D windows are supported",
            ty.shape
        ))
    })
}

/// Explicit `[top, left, bottom, right]` pads from `pads` or `auto_pad`, resolved against the
/// static input size.
pub(super) fn resolve_pads(
    ctx: &NodeCtx,
    input_hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4], OnnxError> {
    let auto_pad = ctx.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let explicit = ctx.ints("pads")?;
    if auto_pad != "NOTSET" && explicit.as_ref().is_some_and(|p| p.iter().any(|&x| x != 0)) {
        return Err(ctx.err(format!(
            "has both auto_pad {auto_pad} and explicit pads, which ONNX forbids"
        )));
    }
    match auto_pad.as_str() {
        "NOTSET" => match explicit.as_deref() {
            None => Ok([0; 4]),
            Some(&[t, l, b, r]) => Ok([
                size(ctx, "pads", t)?,
                size(ctx, "pads", l)?,
                size(ctx, "pads", b)?,
                size(ctx, "pads", r)?,
            ]),
            Some(p) => Err(ctx.err(format!(
                "attribute `pads` has {} values {p:?}; 2-D windows need 4",
                p.len()
            ))),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = [0; 4];
            for axis in 0..2 {
                if stride[axis] == 0 || kernel[axis] == 0 {
                    return Err(ctx.err("kernel and strides must be positive"));
                }
                let out = input_hw[axis].div_ceil(stride[axis]);
                let span = dilation[axis] * (kernel[axis] - 1) + 1;
                let total = ((out - 1) * stride[axis] + span).saturating_sub(input_hw[axis]);
                let small = total / 2;
                let (begin, end) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[axis] = begin;
                pads[axis + 2] = end;
            }
            Ok(pads)
        }
        other => Err(ctx.err(format!("unsupported auto_pad value `{other}`"))),
    }
}
