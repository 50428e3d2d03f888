//! Index arithmetic on the symbolic batch size, folded at import: dynamo's `as_strided` of a
//! contiguous tensor (ConvNeXt's head), `Gather(Reshape(x, [-1]), Range(0, N) · S + offsets)`.
//!
//! `Squeeze` and `Range` of shape constants fold to constants; `Range(0, N, 1)` with `N` the
//! symbolic batch size is a [`Value::BatchIndex`], which `Mul` by an integer, `Unsqueeze` and `Add`
//! of integer constants keep symbolic. A `Gather` on axis 0 of [`Value::Flat`] (an activation
//! flattened whole) with such indices is supported where it reads every element in order: then it
//! is a reshape of the activation that keeps the batch.

use std::rc::Rc;

use super::Registry;
use super::shape::BATCH;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{BatchIndex, Importer, NodeCtx, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};
use crate::ir::{NodeId, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Squeeze", squeeze, &["axes"]);
    reg.insert("Range", range, &[]);
}

/// `Reshape(x, [-1])`: `x` flattened whole, batch included.
pub(super) fn flatten_whole(x: NodeId) -> Value {
    Value::Flat(x)
}

/// Whether an input of the node is batch indices or a wholly flattened activation.
pub(super) fn reads_index(im: &Importer, ctx: &NodeCtx) -> bool {
    ctx.proto
        .input
        .iter()
        .any(|i| matches!(im.get(i), Some(Value::Flat(_) | Value::BatchIndex(_))))
}

/// What every error about an unsupported use of batch indices says is supported.
const SUPPORTED: &str = "an activation flattened with its batch (Reshape to [-1]) and indices \
                         computed from the batch size (Range(0, N)) are supported only as dynamo's \
                         as_strided of a contiguous tensor: Range(0, N) · stride, Unsqueeze, Add of \
                         constant offsets, then Gather on axis 0 reading every element in order";

/// Input `i` as the value bound to it (`None` when absent or unbound).
fn input<'a>(im: &'a Importer, ctx: &NodeCtx, i: usize) -> Option<&'a Value> {
    ctx.input(i).and_then(|n| im.get(n))
}

/// The integers of a constant input.
fn ints(im: &Importer, ctx: &NodeCtx, i: usize) -> Option<(Vec<usize>, Vec<i64>)> {
    match input(im, ctx, i) {
        Some(Value::Const(t)) => t.ints().map(|v| (t.dims.clone(), v.to_vec())),
        _ => None,
    }
}

/// Imports a node that reads batch indices or a wholly flattened activation.
pub(super) fn import(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let index = |i| match input(im, ctx, i) {
        Some(Value::BatchIndex(b)) => Some(b.clone()),
        _ => None,
    };
    let (a, b) = (index(0), index(1));
    let unsupported = || ctx.err(SUPPORTED);
    match ctx.op() {
        "Mul" | "Add" => {
            let (idx, k) = match (a, b) {
                (Some(idx), None) => (idx, 1),
                (None, Some(idx)) => (idx, 0),
                _ => return Err(unsupported()),
            };
            let (dims, v) = ints(im, ctx, k).ok_or_else(unsupported)?;
            if ctx.op() == "Mul" {
                let &[s] = v.as_slice() else {
                    return Err(unsupported());
                };
                let scale = |x: i64| x.checked_mul(s).ok_or_else(|| ctx.err("index overflow"));
                Ok(Value::BatchIndex(BatchIndex {
                    stride: scale(idx.stride)?,
                    offset: idx
                        .offset
                        .iter()
                        .map(|&o| scale(o))
                        .collect::<Result<_, _>>()?,
                    dims: idx.dims,
                }))
            } else {
                add_offsets(ctx, idx, &dims, &v).map(Value::BatchIndex)
            }
        }
        "Unsqueeze" => {
            let idx = a.ok_or_else(unsupported)?;
            let axes = match ints(im, ctx, 1) {
                Some((_, v)) => v,
                None => ctx.ints("axes")?.ok_or_else(unsupported)?,
            };
            let rank = (1 + idx.dims.len() + axes.len()) as i64;
            let mut axes: Vec<i64> = axes
                .iter()
                .map(|&x| if x < 0 { x + rank } else { x })
                .collect();
            axes.sort_unstable();
            let mut dims = idx.dims;
            for x in axes {
                // Axis 0 would move the batch from the front.
                if x < 1 || x as usize > dims.len() + 1 {
                    return Err(ctx.err(format!(
                        "Unsqueeze axis {x} of batch indices is not supported; the batch must \
                         stay first"
                    )));
                }
                dims.insert(x as usize - 1, 1);
            }
            Ok(Value::BatchIndex(BatchIndex { dims, ..idx }))
        }
        "Gather" => {
            let Some(Value::Flat(x)) = input(im, ctx, 0) else {
                return Err(unsupported());
            };
            let x = *x;
            let idx = b.ok_or_else(unsupported)?;
            if ctx.int("axis", 0)? != 0 {
                return Err(unsupported());
            }
            let per_item = im.ty(x).shape.per_item().ok_or_else(unsupported)?;
            let len: usize = per_item.iter().product();
            let in_order = idx.stride == len as i64
                && idx.offset.len() == len
                && idx.offset.iter().enumerate().all(|(j, &o)| o == j as i64);
            if !in_order {
                return Err(ctx.err(format!(
                    "the Gather does not read every element of the {len} per item in order \
                     (stride {}); {SUPPORTED}",
                    idx.stride
                )));
            }
            if idx.dims == per_item {
                im.add(ctx, Op::Identity, &[x])
            } else {
                im.add(ctx, Op::Reshape { per_item: idx.dims }, &[x])
            }
        }
        _ => Err(unsupported()),
    }
}

/// `idx + t`, `t` an integer constant of dims `t_dims` broadcast against `[N, idx.dims…]`.
fn add_offsets(
    ctx: &NodeCtx,
    idx: BatchIndex,
    t_dims: &[usize],
    t: &[i64],
) -> Result<BatchIndex, OnnxError> {
    let rank = idx.dims.len();
    if t_dims.len() > rank + 1 || (t_dims.len() == rank + 1 && t_dims[0] != 1) {
        return Err(ctx.err(format!(
            "offsets of shape {t_dims:?} do not broadcast per item against batch indices of \
             [N, {:?}]",
            idx.dims
        )));
    }
    let t_item = &t_dims[t_dims.len().saturating_sub(rank)..];
    let mut td = vec![1usize; rank - t_item.len()];
    td.extend_from_slice(t_item);
    let mut dims = Vec::with_capacity(rank);
    for (&a, &b) in idx.dims.iter().zip(&td) {
        dims.push(match (a, b) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(ctx.err(format!(
                    "offsets of shape {t_dims:?} do not broadcast against [N, {:?}]",
                    idx.dims
                )));
            }
        });
    }
    let len: usize = dims.iter().product();
    // Row-major position of `j` (an index into `dims`) in a tensor of `from` broadcast to `dims`.
    let source = |from: &[usize], mut j: usize| {
        let (mut at, mut step) = (0, 1);
        for (&d, &f) in dims.iter().zip(from).rev() {
            if f != 1 {
                at += (j % d) * step;
            }
            step *= f;
            j /= d;
        }
        at
    };
    let offset = (0..len)
        .map(|j| {
            idx.offset[source(&idx.dims, j)]
                .checked_add(t[source(&td, j)])
                .ok_or_else(|| ctx.err("index overflow"))
        })
        .collect::<Result<_, _>>()?;
    Ok(BatchIndex {
        dims,
        stride: idx.stride,
        offset,
    })
}

/// `Squeeze` of a constant (`axes` an attribute before opset 13, an input from then on).
fn squeeze(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("axes", 1, Some((13, "an optional input from then on")))?;
    ctx.input_since(1, "axes", 13)?;
    let Some(Value::Const(t)) = input(im, ctx, 0) else {
        return Err(ctx
            .err("Squeeze is supported only on constants (shape arithmetic), not on activations"));
    };
    let t = t.clone();
    let axes = match ctx.input(1) {
        Some(_) => Some(
            ints(im, ctx, 1)
                .ok_or_else(|| ctx.err("axes must be an INT64 constant"))?
                .1,
        ),
        None => ctx.ints("axes")?,
    };
    let rank = t.dims.len() as i64;
    let dims = match axes {
        None => t.dims.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| if a < 0 { a + rank } else { a })
                .map(|a| usize::try_from(a).unwrap_or(usize::MAX))
                .collect();
            if let Some(&a) = axes.iter().find(|&&a| t.dims.get(a) != Some(&1)) {
                return Err(ctx.err(format!(
                    "axis {a} of a constant of shape {:?} is not of size 1",
                    t.dims
                )));
            }
            t.dims
                .iter()
                .enumerate()
                .filter(|(k, _)| !axes.contains(k))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    Ok(Value::Const(Rc::new(ConstTensor {
        name: output_name(ctx),
        dims,
        data: t.data.clone(),
    })))
}

fn output_name(ctx: &NodeCtx) -> String {
    ctx.proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone())
}

/// `Range(start, limit, delta)` of integer constants, folded; `Range(0, N, 1)` of the symbolic
/// batch size is batch indices.
fn range(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let scalar = |i| match ints(im, ctx, i) {
        Some((_, v)) if v.len() == 1 => Ok(v[0]),
        _ => Err(ctx.err(format!(
            "input {i} must be a one-element INT64 constant; Range is supported only in shape \
             arithmetic"
        ))),
    };
    let (start, limit, delta) = (scalar(0)?, scalar(1)?, scalar(2)?);
    if limit == BATCH {
        if (start, delta) != (0, 1) {
            return Err(ctx.err(format!(
                "Range({start}, N, {delta}) of the batch size N is not supported; only \
                 Range(0, N, 1) is"
            )));
        }
        return Ok(Value::BatchIndex(BatchIndex {
            dims: Vec::new(),
            stride: 1,
            offset: vec![0],
        }));
    }
    if start == BATCH || delta == BATCH || delta == 0 {
        return Err(ctx.err("Range needs a non-zero delta and no symbolic start or delta"));
    }
    let count = (limit as i128 - start as i128 + delta as i128 - delta.signum() as i128)
        .checked_div(delta as i128)
        .unwrap_or(0)
        .max(0);
    if count > 1 << 24 {
        return Err(ctx.err(format!("Range of {count} values is too large to fold")));
    }
    let data: Vec<i64> = (0..count as i64).map(|k| start + k * delta).collect();
    Ok(Value::Const(Rc::new(ConstTensor {
        name: output_name(ctx),
        dims: vec![data.len()],
        data: ConstData::I64(data),
    })))
}
