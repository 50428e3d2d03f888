//! The ONNX QDQ form of quantized models (what onnxruntime's `quantize_static` writes):
//! `QuantizeLinear → DequantizeLinear` of an activation is one `FakeQuant` node (the value rounded
//! to its u8 grid, still f32); `DequantizeLinear` of an integer initializer is the dequantized
//! constant, with its integers kept aside ([`QuantizedConst`]); a `Conv`, `Gemm` or `MatMul` whose
//! weight is such a constant and whose input is a quantized activation becomes an int8 `QConv`
//! (`conv.rs` and `dense.rs` hand it over here). Other ops between quantization points import as
//! themselves and run in fp32 on the dequantized values.
//!
//! Supported: per-tensor UINT8 or INT8 activations; INT8 weights with zero point 0, per tensor or
//! per output channel; an INT32 bias whose scale is the input scale times the weight scale (or no
//! bias); convs of any group count. Anything else is an error naming the node and the supported form.

use std::rc::Rc;

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{CodesQuant, Importer, NodeCtx, QuantizedConst, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};
use crate::ir::quant::{Codes, FakeQuant, QConv, QConvOutput, Quant, SumArith};
use crate::ir::{NodeId, Op};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("QuantizeLinear", quantize_linear, &["axis", "saturate"]);
    reg.insert_quantized("", "DequantizeLinear", dequantize_linear, &["axis"]);
}

/// QuantizeLinear 10 (13: `axis`, 19: `saturate` for float8 types, which are refused anyway).
fn quantize_linear(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("axis", 13, None)?;
    ctx.attr_versions("saturate", 19, None)?;
    if im.is_const(ctx, 0) {
        return Err(ctx.err(
            "QuantizeLinear of a constant is not supported; QDQ models store weights already \
             quantized, as DequantizeLinear of an integer initializer",
        ));
    }
    let x = im.act(ctx, 0)?;
    let codes = activation_quant(im, ctx, 1, 2)?;
    let y = im.add(ctx, fake_quant(codes.quant), &[x])?;
    if let Some(out) = ctx.proto.output.first() {
        im.set_codes(out.clone(), codes);
    }
    Ok(y)
}

/// The node rounding a value to the u8 grid of `quant` (the IR form of an 8-bit tensor).
pub(super) fn fake_quant(quant: Quant) -> Op {
    Op::FakeQuant(FakeQuant {
        quant,
        min: 0,
        max: 255,
    })
}

/// The per-tensor quantization of an activation given by inputs `scale_at` and `zero_point_at`
/// (the zero point optional: UINT8 0), in the u8 domain (an INT8 zero point + 128).
pub(super) fn activation_quant(
    im: &Importer,
    ctx: &NodeCtx,
    scale_at: usize,
    zero_point_at: usize,
) -> Result<CodesQuant, OnnxError> {
    let scale = im.req_const(ctx, scale_at, "scale")?;
    let Some(s) = scale
        .scalar_f32()
        .filter(|_| scale.dims.iter().product::<usize>() == 1)
    else {
        return Err(ctx.err(format!(
            "scale `{}` of type {} and shape {:?}: activations must be quantized per tensor (one \
             FLOAT scale)",
            scale.name,
            scale.dtype_name(),
            scale.dims
        )));
    };
    let (zero_point, signed) = match im.opt_const(ctx, zero_point_at, "zero point")? {
        None => (0, false),
        Some(z) => match &z.data {
            ConstData::U8(v) if v.len() == 1 => (v[0] as i32, false),
            ConstData::I8(v) if v.len() == 1 => (v[0] as i32 + 128, true),
            _ => {
                return Err(ctx.err(format!(
                    "zero point `{}` of type {} and shape {:?}: only one UINT8 or INT8 zero point \
                     (8-bit activations, per tensor) is supported",
                    z.name,
                    z.dtype_name(),
                    z.dims
                )));
            }
        },
    };
    let quant = Quant {
        scale: s,
        zero_point,
    };
    quant.check().map_err(|e| ctx.err(e.to_string()))?;
    Ok(CodesQuant { quant, signed })
}

/// DequantizeLinear 10 (13: `axis`): of an integer initializer, the dequantized constant; of an
/// 8-bit activation (the output of `QuantizeLinear` or of a QOperator op), that activation, which
/// the IR already holds dequantized, when the quantization is the one it was made with.
fn dequantize_linear(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    ctx.attr_versions("axis", 13, None)?;
    if im.is_const(ctx, 0) {
        return dequantize_const(im, ctx);
    }
    let x = im.act(ctx, 0)?;
    let given = activation_quant(im, ctx, 1, 2)?;
    let Some(made) = ctx.input(0).and_then(|n| im.codes(n)) else {
        return Err(ctx.err(format!(
            "reads the output of a {} node, a float tensor; DequantizeLinear of an activation \
             must read the 8-bit output of QuantizeLinear or of a QLinear op",
            im.graph.node(x).op.name()
        )));
    };
    if given == made {
        return Ok(Value::Act(x));
    }
    Err(ctx.err(format!(
        "dequantizes with scale {} and zero point {} a value quantized with scale {} and zero \
         point {}; only the QDQ pair of one quantization is supported",
        given.quant.scale, given.quant.zero_point, made.quant.scale, made.quant.zero_point
    )))
}

fn dequantize_const(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let t = im.req_const(ctx, 0, "x")?;
    let scale = im.req_const(ctx, 1, "scale")?;
    let zero_point = im.opt_const(ctx, 2, "zero point")?;
    let name = ctx
        .proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    let axis = ctx.int("axis", 1)?;
    let value = dequantize(ctx, &t, &scale, zero_point.as_deref(), axis, name)?;
    Ok(Value::Const(bind_quantized(im, value)))
}

/// Records the integers behind a dequantized constant and returns the constant.
pub(super) fn bind_quantized(
    im: &mut Importer,
    (value, q): (ConstTensor, QuantizedConst),
) -> Rc<ConstTensor> {
    im.set_quantized(value.name.clone(), q);
    Rc::new(value)
}

/// The constant `scale · (t − zero_point)` named `name` (per tensor, or per channel along `axis`
/// when `scale` has several values) and the integers behind it: ONNX's `DequantizeLinear` of an
/// integer initializer.
pub(super) fn dequantize(
    ctx: &NodeCtx,
    t: &ConstTensor,
    scale: &ConstTensor,
    zero_point: Option<&ConstTensor>,
    axis: i64,
    name: String,
) -> Result<(ConstTensor, QuantizedConst), OnnxError> {
    let values: Vec<i64> = match &t.data {
        ConstData::I8(v) => v.iter().map(|&v| v as i64).collect(),
        ConstData::U8(v) => v.iter().map(|&v| v as i64).collect(),
        ConstData::I64(v) => v.clone(),
        _ => {
            return Err(ctx.err(format!(
                "initializer `{}` has type {}; only INT8, UINT8 and INT32 constants are dequantized",
                t.name,
                t.dtype_name()
            )));
        }
    };
    let ConstData::F32(scale_v) = &scale.data else {
        return Err(ctx.err(format!(
            "scale `{}` has type {}; only FLOAT scales are supported",
            scale.name,
            scale.dtype_name()
        )));
    };
    let zero_point: Vec<i64> = match zero_point {
        None => vec![0; scale_v.len()],
        Some(z) => match &z.data {
            ConstData::I8(v) => v.iter().map(|&v| v as i64).collect(),
            ConstData::U8(v) => v.iter().map(|&v| v as i64).collect(),
            ConstData::I64(v) => v.clone(),
            _ => {
                return Err(ctx.err(format!(
                    "zero point `{}` has type {}",
                    z.name,
                    z.dtype_name()
                )));
            }
        },
    };
    let rank = t.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let per_axis = scale_v.len() != 1;
    let channels = if per_axis {
        if axis < 0 || axis >= rank {
            return Err(ctx.err(format!("axis {axis} is out of range for rank {rank}")));
        }
        t.dims[axis as usize]
    } else {
        1
    };
    if scale_v.len() != channels || zero_point.len() != channels {
        return Err(ctx.err(format!(
            "{} scales and {} zero points for {channels} channels along axis {axis} of `{}` {:?}",
            scale_v.len(),
            zero_point.len(),
            t.name,
            t.dims
        )));
    }
    // Elements per step of the axis, and the axis length: `channel = (i / inner) % channels`.
    let inner: usize = if per_axis {
        t.dims[axis as usize + 1..].iter().product()
    } else {
        1
    };
    let data: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = if per_axis { (i / inner) % channels } else { 0 };
            (v - zero_point[c]) as f32 * scale_v[c]
        })
        .collect();
    let quantized = QuantizedConst {
        dtype: t.dtype_name(),
        dims: t.dims.clone(),
        values,
        scale: scale_v.clone(),
        zero_point,
        axis: axis.max(0) as usize,
    };
    let value = ConstTensor {
        name,
        dims: t.dims.clone(),
        data: ConstData::F32(data),
    };
    Ok((value, quantized))
}

/// The window of a conv (a dense layer: 1×1, no stride, no padding).
pub(super) struct Window {
    pub group: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub pads: [usize; 4],
}

/// The int8 conv for `Conv(x, w, b)` when `w` is a quantized constant; `None` when it is a float
/// weight (the conv stays fp32).
pub(super) fn conv(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: NodeId,
    w: &ConstTensor,
    b: Option<&ConstTensor>,
    window: Window,
) -> Result<Option<Value>, OnnxError> {
    let Some(qw) = im.quantized(&w.name) else {
        return Ok(None);
    };
    let [m, c, kh, kw] = qw.dims[..] else {
        return Err(ctx.err(format!("int8 weight `{}` must be 4-D", w.name)));
    };
    let values = qw.values.clone();
    let op = qconv(im, ctx, x, &w.name, &qw, values, [m, c, kh, kw], b, window)?;
    im.add(ctx, op, &[x]).map(Some)
}

/// The int8 dense layer (a 1×1 `QConv` of `[N, K]`) for `Gemm`/`MatMul` with quantized weight `b`
/// (`[M, K]` when `trans_b`, else `[K, M]`); `None` for a float weight.
pub(super) fn dense(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: NodeId,
    b: &ConstTensor,
    trans_b: bool,
    alpha: f32,
    c: Option<(&ConstTensor, f32)>,
) -> Result<Option<Value>, OnnxError> {
    let Some(qw) = im.quantized(&b.name) else {
        return Ok(None);
    };
    let &[rows, cols] = qw.dims.as_slice() else {
        return Err(ctx.err(format!("int8 weight `{}` must be 2-D", b.name)));
    };
    if alpha != 1.0 || c.is_some_and(|(_, beta)| beta != 1.0) {
        return Err(ctx.err(
            "an int8 Gemm must have alpha = 1 and beta = 1 (onnxruntime's QDQ form)".to_string(),
        ));
    }
    let (m, k) = if trans_b { (rows, cols) } else { (cols, rows) };
    // The output channel is axis 0 of B when transposed, axis 1 otherwise.
    let out_axis = if trans_b { 0 } else { 1 };
    let mut qw = (*qw).clone();
    if qw.scale.len() > 1 && qw.axis != out_axis {
        return Err(ctx.err(format!(
            "weight `{}` is quantized per channel along axis {}; only along the output axis \
             ({out_axis}) is supported",
            b.name, qw.axis
        )));
    }
    qw.axis = 0;
    let values = if trans_b {
        qw.values.clone()
    } else {
        let mut t = vec![0; m * k];
        for i in 0..k {
            for o in 0..m {
                t[o * k + i] = qw.values[i * m + o];
            }
        }
        t
    };
    let window = Window {
        group: 1,
        kernel: [1, 1],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [0; 4],
    };
    let op = qconv(
        im,
        ctx,
        x,
        &b.name,
        &qw,
        values,
        [m, k, 1, 1],
        c.map(|c| c.0),
        window,
    )?;
    im.add(ctx, op, &[x]).map(Some)
}

/// The `QConv` of weights `values` (`dims`, output channel first, quantized per `qw` along axis 0
/// or per tensor), bias `b`, reading `x`.
#[allow(clippy::too_many_arguments)]
fn qconv(
    im: &mut Importer,
    ctx: &NodeCtx,
    x: NodeId,
    w_name: &str,
    qw: &QuantizedConst,
    values: Vec<i64>,
    dims: [usize; 4],
    b: Option<&ConstTensor>,
    window: Window,
) -> Result<Op, OnnxError> {
    let input = match &im.graph.node(x).op {
        Op::FakeQuant(f) => f.quant,
        op => {
            return Err(ctx.err(format!(
                "has int8 weight `{w_name}` but its input is the output of a {} node; the input \
                 of an int8 layer must be a quantized activation (DequantizeLinear of \
                 QuantizeLinear)",
                op.name()
            )));
        }
    };
    let m = dims[0];
    if qw.dtype != "INT8" {
        return Err(ctx.err(format!(
            "weight `{w_name}` is {}; only INT8 weights are supported",
            qw.dtype
        )));
    }
    if qw.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.err(format!(
            "weight `{w_name}` has a non-zero zero point; only symmetric int8 weights (zero point \
             0) are supported"
        )));
    }
    if qw.scale.len() > 1 && qw.axis != 0 {
        return Err(ctx.err(format!(
            "weight `{w_name}` is quantized per channel along axis {}; only along the output \
             channels (axis 0) is supported",
            qw.axis
        )));
    }
    let weight_scale: Vec<f32> = (0..m)
        .map(|i| qw.scale[if qw.scale.len() > 1 { i } else { 0 }])
        .collect();
    let bias = match b {
        None => vec![0; m],
        Some(b) => {
            let Some(qb) = im.quantized(&b.name) else {
                return Err(ctx.err(format!(
                    "bias `{}` is a float constant; an int8 layer's bias must be DequantizeLinear \
                     of an INT32 initializer (the QDQ form)",
                    b.name
                )));
            };
            let expected = |c: usize| input.scale * weight_scale[c];
            let scale_ok = (0..m).all(|c| {
                let s = qb.scale[if qb.scale.len() > 1 { c } else { 0 }];
                (s - expected(c)).abs() <= 1e-5 * expected(c)
            });
            if qb.values.len() != m || qb.zero_point.iter().any(|&z| z != 0) || !scale_ok {
                return Err(ctx.err(format!(
                    "bias `{}` must be {m} INT32 values with zero point 0 and scale input scale × \
                     weight scale per channel",
                    b.name
                )));
            }
            qb.values
                .iter()
                .map(|&v| i32::try_from(v).map_err(|_| ctx.err(format!("bias {v} is not INT32"))))
                .collect::<Result<_, _>>()?
        }
    };
    let weight = im.derived_weight(
        format!("{w_name} (int8)"),
        dims.to_vec(),
        values.iter().map(|&v| v as f32).collect(),
    );
    Ok(Op::QConv(QConv {
        weight,
        packed: false,
        bias,
        weight_scale,
        in_channels: dims[1] * window.group,
        out_channels: m,
        group: window.group,
        kernel: window.kernel,
        stride: window.stride,
        dilation: window.dilation,
        pads: window.pads,
        input,
        output: QConvOutput::Float { relu: false },
        residual: None,
        residual_arith: SumArith::Onnx,
        codes: Codes::default(),
    }))
}
