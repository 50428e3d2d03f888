//! The op registry: one import function per ONNX `op_type`, mapping a node onto IR ops, with the
//! attributes each one understands (any other attribute is an error, never silently ignored).

use std::rc::Rc;

use super::OnnxError;
use super::import::{Importer, NodeCtx, Value};
use super::tensor::{ConstData, ConstTensor};
use crate::ir::{self, Op};

type ImportFn = fn(&mut Importer, &NodeCtx) -> Result<Value, OnnxError>;

/// How to import one `op_type` of the default domain.
pub(crate) struct OpImport {
    pub op_type: &'static str,
    pub import: ImportFn,
    /// Every attribute `import` reads or knows to be harmless.
    pub attributes: &'static [&'static str],
}

const fn entry(
    op_type: &'static str,
    import: ImportFn,
    attributes: &'static [&'static str],
) -> OpImport {
    OpImport {
        op_type,
        import,
        attributes,
    }
}

pub(crate) const REGISTRY: &[OpImport] = &[
    entry(
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
    ),
    entry(
        "BatchNormalization",
        batch_norm,
        &["epsilon", "momentum", "training_mode"],
    ),
    entry("Relu", relu, &[]),
    entry("Clip", clip, &["min", "max"]),
    entry("Add", add, &[]),
    entry(
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
    ),
    entry(
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
    ),
    entry("GlobalAveragePool", global_average_pool, &[]),
    entry(
        "ReduceMean",
        reduce_mean,
        &["axes", "keepdims", "noop_with_empty_axes"],
    ),
    entry("Flatten", flatten, &["axis"]),
    entry("Reshape", reshape, &["allowzero"]),
    entry("Gemm", gemm, &["alpha", "beta", "transA", "transB"]),
    entry("MatMul", matmul, &[]),
    entry(
        "Constant",
        constant,
        &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ],
    ),
    // Shape arithmetic folded at import (the dynamo exporter's `x.view(x.size(0), -1)`).
    entry("Shape", shape, &["start", "end"]),
    entry("Gather", gather, &["axis"]),
    entry("Unsqueeze", unsqueeze, &["axes"]),
    entry("Concat", concat, &["axis"]),
    entry("Identity", identity, &[]),
    // `seed` only matters in training mode, which is rejected.
    entry("Dropout", dropout, &["ratio", "seed"]),
];

pub(crate) fn lookup(op_type: &str) -> Option<&'static OpImport> {
    REGISTRY.iter().find(|e| e.op_type == op_type)
}

/// A non-negative attribute value as a size.
/// A non-negative attribute value as a size. Values beyond `i32::MAX` are rejected so that window
/// arithmetic (`size + pads`, `dilation · (kernel - 1)`) can never overflow.
fn size(ctx: &NodeCtx, name: &str, v: i64) -> Result<usize, OnnxError> {
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
fn pair(ctx: &NodeCtx, name: &str) -> Result<Option<[usize; 2]>, OnnxError> {
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
fn pair_or(ctx: &NodeCtx, name: &str, default: usize) -> Result<[usize; 2], OnnxError> {
    Ok(pair(ctx, name)?.unwrap_or([default; 2]))
}

/// `(c, h, w)` of a 4-D activation.
fn chw(im: &Importer, ctx: &NodeCtx, x: ir::NodeId) -> Result<(usize, usize, usize), OnnxError> {
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
fn resolve_pads(
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

fn conv(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
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

fn relu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    im.add(ctx, Op::Relu, &[x])
}

fn clip(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    // Opset < 11 has the bounds as attributes, later ones as optional inputs.
    let mut bounds = [
        ctx.float("min")?.unwrap_or(f32::NEG_INFINITY),
        ctx.float("max")?.unwrap_or(f32::INFINITY),
    ];
    for (k, what) in [(1, "min"), (2, "max")] {
        if let Some(t) = im.opt_const(ctx, k, what)? {
            bounds[k - 1] = t.scalar_f32().ok_or_else(|| {
                ctx.err(format!(
                    "{what} `{}` must be a single FLOAT, is {} of shape {:?}",
                    t.name,
                    t.dtype_name(),
                    t.dims
                ))
            })?;
        }
    }
    let [min, max] = bounds;
    if min.is_nan() || max.is_nan() || min > max {
        return Err(ctx.err(format!("invalid bounds min {min} > max {max}")));
    }
    im.add(ctx, Op::Clip { min, max }, &[x])
}

fn add(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    match (im.is_const(ctx, 0), im.is_const(ctx, 1)) {
        (false, false) => {
            let (a, b) = (im.act(ctx, 0)?, im.act(ctx, 1)?);
            im.add(
                ctx,
                Op::Add {
                    activation: ir::Activation::None,
                },
                &[a, b],
            )
        }
        (true, true) => {
            Err(ctx.err("both operands are constants; constant folding is not supported"))
        }
        (a_const, _) => {
            let (k, other) = if a_const { (0, 1) } else { (1, 0) };
            let t = im.req_const(ctx, k, "constant operand")?;
            let x = im.act(ctx, other)?;
            // Adding zeros is the only constant Add we can drop without a broadcast op.
            let zeros = match &t.data {
                ConstData::F32(v) => v.iter().all(|&z| z == 0.0),
                _ => false,
            };
            let rank = im.ty(x).shape.rank();
            if zeros && t.dims.len() <= rank {
                im.add(ctx, Op::Identity, &[x])
            } else {
                Err(ctx.err(format!(
                    "adding the constant `{}` (shape {:?}) to an activation is not supported; only Add of two activations is",
                    t.name, t.dims
                )))
            }
        }
    }
}

fn pool(im: &mut Importer, ctx: &NodeCtx, average: bool) -> Result<Value, OnnxError> {
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
    if ctx.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ctx.err("the Indices output of MaxPool is not supported"));
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

fn average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    pool(im, ctx, true)
}

fn global_average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    chw(im, ctx, x)?;
    im.add(ctx, Op::GlobalAveragePool { keep_dims: true }, &[x])
}

fn reduce_mean(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    chw(im, ctx, x)?;
    // Opset 18 moved `axes` from an attribute to an optional input.
    let axes = match im.opt_const(ctx, 1, "axes")? {
        Some(t) => Some(
            t.ints()
                .ok_or_else(|| ctx.err(format!("axes `{}` must be integers", t.name)))?
                .to_vec(),
        ),
        None => ctx.ints("axes")?,
    };
    let Some(axes) = axes.filter(|a| !a.is_empty()) else {
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

fn flatten(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let rank = im.ty(x).shape.rank() as i64;
    let axis = ctx.int("axis", 1)?;
    let axis = if axis < 0 { axis + rank } else { axis };
    if axis != 1 {
        return Err(ctx.err(format!(
            "axis {} is not supported; only axis 1 (keep the batch, flatten the rest) is",
            ctx.int("axis", 1)?
        )));
    }
    im.add(ctx, Op::Flatten { axis: 1 }, &[x])
}

fn reshape(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let t = im.req_const(ctx, 1, "shape")?;
    let target = t.ints().ok_or_else(|| {
        ctx.err(format!(
            "shape `{}` must be INT64, is {}",
            t.name,
            t.dtype_name()
        ))
    })?;
    let allow_zero = ctx.int("allowzero", 0)? != 0;
    let input = im.ty(x).shape.per_item().ok_or_else(|| {
        ctx.err(format!(
            "input {} must be batch-first with fixed other dimensions",
            im.ty(x).shape
        ))
    })?;
    let Some((&first, rest)) = target.split_first() else {
        return Err(ctx.err("an empty target shape would drop the batch dimension"));
    };
    let keeps_batch = first == -1
        || first == BATCH
        || (first == 0 && !allow_zero)
        || im.export_batch.is_some_and(|b| first == b as i64);
    if !keeps_batch {
        return Err(ctx.err(format!(
            "target shape {target:?} must keep the batch first (start with 0 or -1)"
        )));
    }
    let item_len: usize = input.iter().product();
    let mut dims = Vec::with_capacity(rest.len());
    let mut infer = None;
    for (k, &d) in rest.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() && first != -1 => {
                infer = Some(k);
                1
            }
            0 if !allow_zero => *input.get(k).ok_or_else(|| {
                ctx.err(format!(
                    "target shape {target:?} copies dimension {} that the input {:?} lacks",
                    k + 1,
                    im.ty(x).shape
                ))
            })?,
            d if d > 0 => d as usize,
            _ => {
                return Err(ctx.err(format!(
                    "target shape {target:?}: dimension {} = {d} is not supported",
                    k + 1
                )));
            }
        });
    }
    let mismatch = || {
        ctx.err(format!(
            "cannot reshape {item_len} elements per item into {target:?}"
        ))
    };
    let known = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(mismatch)?;
    if let Some(k) = infer {
        if known == 0 || !item_len.is_multiple_of(known) {
            return Err(mismatch());
        }
        dims[k] = item_len / known;
    } else if known != item_len {
        return Err(mismatch());
    }
    im.add(ctx, Op::Reshape { per_item: dims }, &[x])
}

/// Bias of `m` values from a Gemm `C` operand (scalar, `[M]`, `[1, M]` or `[1]`), scaled by beta.
fn gemm_bias(ctx: &NodeCtx, c: &ConstTensor, m: usize, beta: f32) -> Result<Vec<f32>, OnnxError> {
    let ConstData::F32(data) = &c.data else {
        return Err(ctx.err(format!(
            "bias `{}` has data type {}; only FLOAT is supported",
            c.name,
            c.dtype_name()
        )));
    };
    let per_row = match c.dims.as_slice() {
        [] | [1] | [1, 1] => false,
        [n] | [1, n] if *n == m => true,
        _ => {
            return Err(ctx.err(format!(
                "bias `{}` of shape {:?} is not supported; it must broadcast as [{m}]",
                c.name, c.dims
            )));
        }
    };
    Ok((0..m)
        .map(|j| beta * if per_row { data[j] } else { data[0] })
        .collect())
}

fn gemm(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if ctx.int("transA", 0)? != 0 {
        return Err(ctx.err("transA = 1 is not supported"));
    }
    let x = im.act(ctx, 0)?;
    let b = im.req_const(ctx, 1, "B (weight)")?;
    let c = im.opt_const(ctx, 2, "C (bias)")?;
    let alpha = ctx.float("alpha")?.unwrap_or(1.0);
    let beta = ctx.float("beta")?.unwrap_or(1.0);
    let trans_b = ctx.int("transB", 0)? != 0;
    dense(
        im,
        ctx,
        x,
        &b,
        trans_b,
        alpha,
        c.as_deref().map(|c| (c, beta)),
    )
}

fn matmul(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    if im.is_const(ctx, 0) {
        return Err(
            ctx.err("a constant left operand is not supported; only x · W with W constant is")
        );
    }
    let x = im.act(ctx, 0)?;
    let b = im.req_const(ctx, 1, "right operand (weight)")?;
    dense(im, ctx, x, &b, false, 1.0, None)
}

/// `x · op(B) · alpha + beta · C` as a Dense node; `op(B)` is `Bᵀ` when `trans_b`.
fn dense(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: ir::NodeId,
    b: &Rc<ConstTensor>,
    trans_b: bool,
    alpha: f32,
    c: Option<(&ConstTensor, f32)>,
) -> Result<Value, OnnxError> {
    let ConstData::F32(data) = &b.data else {
        return Err(ctx.err(format!(
            "weight `{}` has data type {}; only FLOAT weights are supported",
            b.name,
            b.dtype_name()
        )));
    };
    let &[rows, cols] = b.dims.as_slice() else {
        return Err(ctx.err(format!(
            "weight `{}` has shape {:?}; it must be 2-D",
            b.name, b.dims
        )));
    };
    // Dense wants [out, in]: that is B itself when transposed (torch Linear), Bᵀ otherwise.
    let (out_f, in_f) = if trans_b { (rows, cols) } else { (cols, rows) };
    let weight = if trans_b && alpha == 1.0 {
        im.weight(ctx, b, "weight")?
    } else {
        let mut w = vec![0f32; rows * cols];
        for o in 0..out_f {
            for i in 0..in_f {
                let v = if trans_b {
                    data[o * cols + i]
                } else {
                    data[i * cols + o]
                };
                w[o * in_f + i] = alpha * v;
            }
        }
        let what = if trans_b { "scaled" } else { "transposed" };
        im.derived_weight(format!("{} ({what})", b.name), vec![out_f, in_f], w)
    };
    let bias = match c {
        Some((c, beta)) if beta != 0.0 => {
            let data = gemm_bias(ctx, c, out_f, beta)?;
            if beta == 1.0 && c.dims.as_slice() == [out_f] {
                Some(im.weight(ctx, c, "bias")?)
            } else {
                Some(im.derived_weight(format!("{} (bias)", ctx.name), vec![out_f], data))
            }
        }
        _ => None,
    };
    let op = Op::Dense(ir::Dense {
        weight,
        bias,
        in_features: in_f,
        out_features: out_f,
        epilogue: ir::Epilogue::default(),
        kernel: ir::DenseKernel::default(),
    });
    im.add(ctx, op, &[x])
}

fn constant(_im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let name = ctx
        .proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    let t = if let Some(t) = ctx.tensor("value")? {
        let mut c = super::tensor::decode(t, None).map_err(|m| ctx.err(format!("value: {m}")))?;
        c.name = name;
        c
    } else if let Some(f) = ctx.float("value_float")? {
        ConstTensor {
            name,
            dims: vec![],
            data: ConstData::F32(vec![f]),
        }
    } else if let Some(v) = ctx.floats("value_floats")? {
        ConstTensor {
            name,
            dims: vec![v.len()],
            data: ConstData::F32(v),
        }
    } else if ctx.proto.attribute.iter().any(|a| a.name == "value_int") {
        ConstTensor {
            name,
            dims: vec![],
            data: ConstData::I64(vec![ctx.int("value_int", 0)?]),
        }
    } else if let Some(v) = ctx.ints("value_ints")? {
        ConstTensor {
            name,
            dims: vec![v.len()],
            data: ConstData::I64(v),
        }
    } else {
        return Err(ctx.err("has no value attribute"));
    };
    Ok(Value::Const(Rc::new(t)))
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

/// How a folded shape tensor (the output of `Shape` on an activation) spells the symbolic batch
/// size. Only `Reshape` gives it meaning (keep the batch); any other use of it is rejected.
const BATCH: i64 = i64::MIN;

/// An INT64 constant input of a shape-arithmetic node.
fn shape_ints(
    im: &Importer,
    ctx: &NodeCtx,
    i: usize,
) -> Result<(Rc<ConstTensor>, Vec<i64>), OnnxError> {
    let t = im.req_const(ctx, i, "input").map_err(|_| {
        ctx.err(format!(
            "input {i} is computed at run time; {} is supported only on shapes known at compile time",
            ctx.op()
        ))
    })?;
    let v = t
        .ints()
        .ok_or_else(|| {
            ctx.err(format!(
                "input `{}` must be INT64, is {}",
                t.name,
                t.dtype_name()
            ))
        })?
        .to_vec();
    Ok((t, v))
}

fn int_const(ctx: &NodeCtx, dims: Vec<usize>, data: Vec<i64>) -> Value {
    let name = ctx
        .proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    Value::Const(Rc::new(ConstTensor {
        name,
        dims,
        data: ConstData::I64(data),
    }))
}

/// `Shape`: the dims of an activation as an INT64 constant, the batch as [`BATCH`].
fn shape(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let x = im.act(ctx, 0)?;
    let dims: Vec<i64> = im
        .ty(x)
        .shape
        .0
        .iter()
        .map(|d| d.fixed().map_or(BATCH, |n| n as i64))
        .collect();
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(ctx.int("start", 0)?), clamp(ctx.int("end", rank)?));
    let dims = dims.get(start..end.max(start)).unwrap_or_default().to_vec();
    Ok(int_const(ctx, vec![dims.len()], dims))
}

/// `Gather` along axis 0 of a 1-D INT64 constant (picking dims out of a shape).
fn gather(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let (data_t, data) = shape_ints(im, ctx, 0)?;
    let (idx_t, idx) = shape_ints(im, ctx, 1)?;
    if ctx.int("axis", 0)? != 0 || data_t.dims.len() != 1 {
        return Err(ctx.err("only axis 0 of a 1-D constant (a shape) is supported"));
    }
    let n = data.len() as i64;
    let picked = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            data.get(usize::try_from(j).unwrap_or(usize::MAX))
                .copied()
                .ok_or_else(|| ctx.err(format!("index {i} is out of range for {n} values")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(int_const(ctx, idx_t.dims.clone(), picked))
}

/// `Unsqueeze` of a scalar or 1-D INT64 constant.
fn unsqueeze(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let (t, v) = shape_ints(im, ctx, 0)?;
    let axes = match ctx.ints("axes")? {
        Some(a) => a,
        None => shape_ints(im, ctx, 1)?.1,
    };
    let mut dims = t.dims.clone();
    let rank = (dims.len() + axes.len()) as i64;
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| usize::try_from(if a < 0 { a + rank } else { a }).unwrap_or(usize::MAX))
        .collect();
    axes.sort_unstable();
    for a in axes {
        if a > dims.len() {
            return Err(ctx.err(format!("axis {a} is out of range")));
        }
        dims.insert(a, 1);
    }
    if dims.len() > 1 && dims.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(ctx.err("only shape-like (1-D) constants are supported"));
    }
    Ok(int_const(ctx, dims, v))
}

/// `Concat` of 1-D INT64 constants along axis 0 (assembling a target shape).
fn concat(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let mut out = Vec::new();
    for i in 0..ctx.proto.input.len() {
        let (t, v) = shape_ints(im, ctx, i)?;
        if t.dims.len() > 1 {
            return Err(ctx.err("only 1-D constants (shapes) can be concatenated"));
        }
        out.extend(v);
    }
    if ![0, -1].contains(&ctx.int("axis", 0)?) {
        return Err(ctx.err("only axis 0 is supported"));
    }
    Ok(int_const(ctx, vec![out.len()], out))
}
