//! Pools: `MaxPool`, `AveragePool`, and the global average over H and W (`GlobalAveragePool`,
//! `ReduceMean` over axes [2, 3]).

use super::Registry;
use super::window::{chw, pair, pair_or, resolve_pads};
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::ir::{self, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "MaxPool",
        max_pool,
        &[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
    );
    reg.insert(
        "AveragePool",
        average_pool,
        &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ],
    );
    reg.insert("GlobalAveragePool", global_average_pool, &[]);
    reg.insert(
        "ReduceMean",
        reduce_mean,
        &["axes", "keepdims", "noop_with_empty_axes"],
    );
}

/// MaxPool 8 adds `storage_order` and the `Indices` output (which may be named, but reading it is
/// an error: `import` binds it as unavailable), 10 `ceil_mode` and `dilations`. AveragePool 7 adds
/// `count_include_pad`, 10 `ceil_mode`, 19 `dilations`. Later versions change types or clarify
/// padding only.
fn pool(im: &mut Importer, ctx: &NodeCtx, average: bool) -> Result<Value, OnnxError> {
    ctx.attr_versions("ceil_mode", 10, None)?;
    if average {
        ctx.attr_versions("dilations", 19, None)?;
    } else {
        ctx.attr_versions("storage_order", 8, None)?;
        ctx.attr_versions("dilations", 10, None)?;
        ctx.output_since(1, "Indices", 8)?;
    }
    let x = im.act(ctx, 0)?;
    let (_, h, w) = chw(im, ctx, x)?;
    let kernel = pair(ctx, "kernel_shape")?
        .ok_or_else(|| ctx.err("attribute `kernel_shape` is required"))?;
    let stride = pair_or(ctx, "strides", 1)?;
    let dilation = pair_or(ctx, "dilations", 1)?;
    if dilation != [1, 1] {
        return Err(ctx.err(format!(
            "dilations {dilation:?} on a pool are not supported (only [1, 1])"
        )));
    }
    if ctx.int("storage_order", 0)? != 0 {
        return Err(ctx.err("storage_order = 1 (column-major indices) is not supported"));
    }
    let pads = resolve_pads(ctx, [h, w], kernel, stride, dilation)?;
    let p = ir::Pool {
        kernel,
        stride,
        pads,
        ceil_mode: ctx.int("ceil_mode", 0)? != 0,
        count_include_pad: average && ctx.int("count_include_pad", 0)? != 0,
    };
    let op = if average {
        Op::AveragePool(p)
    } else {
        Op::MaxPool(p)
    };
    im.add(ctx, op, &[x])
}

fn max_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    pool(im, ctx, false)
}

pub(super) fn average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    pool(im, ctx, true)
}

pub(super) fn global_average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    chw(im, ctx, x)?;
    im.add(ctx, Op::GlobalAveragePool { keep_dims: true }, &[x])
}

/// ReduceMean 1 to 13 take `axes` as an attribute (11 allows negative axes, 13 adds types); 18
/// moves it to an optional input and adds `noop_with_empty_axes` (no axes then means no reduction).
fn reduce_mean(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("axes", 1, Some((18, "an optional input from then on")))?;
    ctx.input_since(1, "axes", 18)?;
    ctx.attr_versions("noop_with_empty_axes", 18, None)?;
    let x = im.act(ctx, 0)?;
    chw(im, ctx, x)?;
    let axes = match im.opt_const(ctx, 1, "axes")? {
        Some(t) => Some(
            t.ints()
                .ok_or_else(|| ctx.err(format!("axes `{}` must be integers", t.name)))?
                .to_vec(),
        ),
        None => ctx.ints("axes")?,
    };
    let Some(axes) = axes.filter(|a| !a.is_empty()) else {
        if ctx.int("noop_with_empty_axes", 0)? != 0 {
            return im.add(ctx, Op::Identity, &[x]);
        }
        return Err(ctx.err(
            "reducing over all axes (no `axes`) is not supported; only axes [2, 3] (H, W) are",
        ));
    };
    let mut norm: Vec<i64> = axes
        .iter()
        .map(|&a| if a < 0 { a + 4 } else { a })
        .collect();
    norm.sort_unstable();
    if norm != [2, 3] {
        return Err(ctx.err(format!(
            "axes {axes:?} are not supported; only the spatial axes [2, 3] (H, W) are"
        )));
    }
    let keep_dims = ctx.int("keepdims", 1)? != 0;
    im.add(ctx, Op::GlobalAveragePool { keep_dims }, &[x])
}
