//! The ONNX QOperator form of quantized models (onnxruntime's `quantize_static` with
//! `QuantFormat.QOperator`): 8-bit tensors flow from `QuantizeLinear` through `QLinearConv`,
//! `QGemm`, `QLinearAdd`, … (and MaxPool, Flatten, Reshape on the codes) to `DequantizeLinear`.
//!
//! The IR holds every 8-bit tensor as its dequantized f32 value and the importer remembers its
//! quantization (`Importer::codes`), which is exactly what the QDQ import makes of the same
//! network (`quantize.rs`): a QLinear op imports as its float op (the registry's own importer,
//! run on a node of that op's form) on the dequantized operands, then a `FakeQuant` to its output
//! quantization; its int8 weights and int32 bias become the dequantized constants of a QDQ weight
//! and bias. So both forms reach the same `QConv`s, the same int8 passes and the same kernels.
//!
//! A QLinear op names the quantization of each 8-bit input; ONNX reads the codes with it, so a
//! quantization other than the producer's would reinterpret the codes (an affine map of the value,
//! not a requantization). onnxruntime never writes that, and it is an error here.

use std::rc::Rc;

use tract_onnx::pb;

use super::quantize::{activation_quant, bind_quantized, dequantize, fake_quant};
use super::{ImportFn, OpImport, Registry};
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{CodesQuant, Importer, NodeCtx, QuantizedConst, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};

/// onnxruntime's contrib-op domain, where most QOperator ops live.
const MS: &str = "com.microsoft";

const CONV_ATTRIBUTES: &[&str] = &[
    "auto_pad",
    "dilations",
    "group",
    "kernel_shape",
    "pads",
    "strides",
];

const AVERAGE_POOL_ATTRIBUTES: &[&str] = &[
    "auto_pad",
    "ceil_mode",
    "channels_last",
    "count_include_pad",
    "dilations",
    "kernel_shape",
    "pads",
    "strides",
];

/// Default-domain ops that move 8-bit codes without changing them: their output holds codes of
/// their input's quantization (max pooling commutes with a monotone dequantization).
const PASS_THROUGH: &[&str] = &["MaxPool", "Flatten", "Reshape", "Identity"];

pub(super) fn register(reg: &mut Registry) {
    reg.insert_quantized("", "QLinearConv", qlinear_conv, CONV_ATTRIBUTES);
    reg.insert_quantized("", "QLinearMatMul", qlinear_matmul, &[]);
    reg.insert_quantized(MS, "QGemm", qgemm, &["alpha", "transA", "transB"]);
    reg.insert_quantized(MS, "QLinearAdd", qlinear_add, &[]);
    reg.insert_quantized(MS, "QLinearMul", qlinear_mul, &[]);
    reg.insert_quantized(
        MS,
        "QLinearGlobalAveragePool",
        qlinear_global_average_pool,
        &["channels_last"],
    );
    reg.insert_quantized(
        MS,
        "QLinearAveragePool",
        qlinear_average_pool,
        AVERAGE_POOL_ATTRIBUTES,
    );
    reg.insert_quantized(MS, "QLinearConcat", qlinear_concat, &["axis"]);
    reg.insert_quantized(MS, "QLinearSigmoid", qlinear_sigmoid, &[]);
    reg.insert_quantized(MS, "QLinearLeakyRelu", qlinear_leaky_relu, &["alpha"]);
}

/// Whether the node reads an 8-bit tensor.
pub(super) fn reads_codes(im: &Importer, ctx: &NodeCtx) -> bool {
    ctx.proto.input.iter().any(|n| im.codes(n).is_some())
}

/// A node whose importer does not read 8-bit tensors, reading one: a [`PASS_THROUGH`] op on the
/// codes (its first input) imports as itself on the dequantized value, followed by a `FakeQuant`
/// of the same quantization (what the QDQ form writes around it), and its output holds codes;
/// any other op is an error.
pub(super) fn import_on_codes(
    entry: &OpImport,
    im: &mut Importer,
    ctx: &NodeCtx,
) -> Result<Value, OnnxError> {
    let first = ctx.input(0).and_then(|n| im.codes(n));
    let Some(codes) = first
        .filter(|_| entry.domain.is_empty())
        .filter(|_| PASS_THROUGH.contains(&entry.op_type))
    else {
        let name = ctx
            .proto
            .input
            .iter()
            .find(|n| im.codes(n).is_some())
            .map_or("", String::as_str);
        return Err(ctx.err(format!(
            "reads the 8-bit tensor `{name}` (the output of QuantizeLinear or of a QLinear op), \
             which {} does not take; 8-bit tensors are read by DequantizeLinear, the QLinear ops \
             and, as their first input, {}",
            ctx.op(),
            PASS_THROUGH.join(", ")
        )));
    };
    let x = im.act(ctx, 0)?;
    match (entry.import)(im, ctx)? {
        Value::Act(y) if y != x => {
            let out = im.add_named(
                format!("{}/QuantizeLinear", ctx.name),
                fake_quant(codes.quant),
                &[y],
            )?;
            record_codes(im, ctx, codes);
            Ok(out)
        }
        v => {
            record_codes(im, ctx, codes);
            Ok(v)
        }
    }
}

/// Records that the node's output holds 8-bit codes of `codes`' quantization, for its readers.
fn record_codes(im: &mut Importer, ctx: &NodeCtx, codes: CodesQuant) {
    if let Some(out) = ctx.proto.output.first().filter(|o| !o.is_empty()) {
        im.set_codes(out.clone(), codes);
    }
}

/// An error unless the node has between `min` and `max` inputs (`form` lists them).
fn arity(ctx: &NodeCtx, min: usize, max: usize, form: &str) -> Result<(), OnnxError> {
    let n = ctx.proto.input.len();
    if (min..=max).contains(&n) {
        return Ok(());
    }
    Err(ctx.err(format!("has {n} inputs; {} takes {form}", ctx.op())))
}

/// The temporary value names a QLinear op binds for the float op it imports as (its dequantized
/// weights and constant operands); released once that op is imported.
#[derive(Default)]
struct Temps(Vec<String>);

impl Temps {
    fn bind(&mut self, im: &mut Importer, value: Rc<ConstTensor>) -> String {
        let name = value.name.clone();
        im.bind(name.clone(), Value::Const(value));
        self.0.push(name.clone());
        name
    }

    fn release(self, im: &mut Importer) {
        for name in self.0 {
            im.unbind(&name);
        }
    }
}

/// The name of a temporary binding for input `i` of the node: prefixed by the node's name, so it
/// cannot be the name of another value the model uses.
fn temp_name(ctx: &NodeCtx, i: usize) -> String {
    format!(
        "{}/{} (dequantized)",
        ctx.name,
        ctx.input(i).unwrap_or_default()
    )
}

/// The name under which the float op reads operand `i`, quantized by inputs `scale_at` and
/// `zero_point_at`: an 8-bit activation as itself (the IR holds it dequantized), once its
/// quantization is checked to be the one it was made with; an integer initializer dequantized
/// (per channel along `axis` when its scale has several values) into a temporary binding.
fn operand(
    im: &mut Importer,
    ctx: &NodeCtx,
    temps: &mut Temps,
    [i, scale_at, zero_point_at]: [usize; 3],
    axis: i64,
) -> Result<String, OnnxError> {
    let Some(name) = ctx.input(i) else {
        return Err(ctx.err(format!("input {i} is missing")));
    };
    if im.is_const(ctx, i) {
        let t = im.req_const(ctx, i, "operand")?;
        let scale = im.req_const(ctx, scale_at, "scale")?;
        let zero_point = im.opt_const(ctx, zero_point_at, "zero point")?;
        let value = dequantize(
            ctx,
            &t,
            &scale,
            zero_point.as_deref(),
            axis,
            temp_name(ctx, i),
        )?;
        let value = bind_quantized(im, value);
        return Ok(temps.bind(im, value));
    }
    im.act(ctx, i)?;
    let Some(made) = im.codes(name) else {
        return Err(ctx.err(format!(
            "input {i} `{name}` is a float tensor; {} reads 8-bit tensors (the output of \
             QuantizeLinear or of another QLinear op)",
            ctx.op()
        )));
    };
    let given = activation_quant(im, ctx, scale_at, zero_point_at)?;
    if given != made {
        return Err(ctx.err(format!(
            "reads input {i} `{name}` as scale {} zero point {} ({}), but it holds codes of scale \
             {} zero point {} ({}); reading codes under another quantization is not supported",
            given.quant.scale,
            given.quant.zero_point,
            int_type(given.signed),
            made.quant.scale,
            made.quant.zero_point,
            int_type(made.signed),
        )));
    }
    Ok(name.to_string())
}

fn int_type(signed: bool) -> &'static str {
    if signed { "INT8" } else { "UINT8" }
}

/// The int32 bias at input `i` (quantized with zero point 0 and scale `input_scale · w_scale[c]`,
/// as ONNX defines a QLinearConv's bias) dequantized into a temporary binding.
fn bias(
    im: &mut Importer,
    ctx: &NodeCtx,
    temps: &mut Temps,
    i: usize,
    input_scale: f32,
    weight: &QuantizedConst,
) -> Result<String, OnnxError> {
    let t = im.req_const(ctx, i, "bias")?;
    let ConstData::I64(values) = &t.data else {
        return Err(ctx.err(format!(
            "bias `{}` has type {}; it must be INT32",
            t.name,
            t.dtype_name()
        )));
    };
    let scale: Vec<f32> = weight.scale.iter().map(|&s| input_scale * s).collect();
    let data = values
        .iter()
        .enumerate()
        .map(|(c, &v)| v as f32 * scale[if scale.len() > 1 { c } else { 0 }])
        .collect();
    let value = ConstTensor {
        name: temp_name(ctx, i),
        dims: t.dims.clone(),
        data: ConstData::F32(data),
    };
    let quantized = QuantizedConst {
        dtype: "INT32",
        dims: t.dims.clone(),
        values: values.clone(),
        zero_point: vec![0; scale.len()],
        scale,
        axis: 0,
    };
    let value = bind_quantized(im, (value, quantized));
    Ok(temps.bind(im, value))
}

/// Imports the float op `op_type` (importer `import`) on `inputs`, with the node's attributes
/// but `own` (the QLinear op's), under the node's name; errors name the QLinear op.
fn float_op(
    im: &mut Importer,
    ctx: &NodeCtx,
    temps: Temps,
    (op_type, import): (&str, ImportFn),
    inputs: Vec<String>,
    own: &[&str],
) -> Result<Value, OnnxError> {
    let proto = pb::NodeProto {
        name: ctx.proto.name.clone(),
        op_type: op_type.to_string(),
        input: inputs,
        output: ctx.proto.output.clone(),
        attribute: ctx
            .proto
            .attribute
            .iter()
            .filter(|a| !own.contains(&a.name.as_str()))
            .cloned()
            .collect(),
        ..Default::default()
    };
    let inner = NodeCtx {
        proto: &proto,
        name: ctx.name.clone(),
        opset: ctx.opset,
    };
    let result = import(im, &inner);
    temps.release(im);
    result.map_err(|e| match e {
        OnnxError::Node { node, message, .. } => OnnxError::Node {
            node,
            op: ctx.op().to_string(),
            message,
        },
        e => e,
    })
}

/// The QLinear op's output: the float op's value `y` requantized by inputs `scale_at` and
/// `zero_point_at` (a `FakeQuant`, the QDQ form's `QuantizeLinear → DequantizeLinear`), holding
/// 8-bit codes from here on.
fn requantized(
    im: &mut Importer,
    ctx: &NodeCtx,
    y: Value,
    scale_at: usize,
    zero_point_at: usize,
) -> Result<Value, OnnxError> {
    let Value::Act(y) = y else {
        return Err(ctx.err("computes a constant, which is not supported"));
    };
    let codes = activation_quant(im, ctx, scale_at, zero_point_at)?;
    let out = im.add_named(
        format!("{}/QuantizeLinear", ctx.name),
        fake_quant(codes.quant),
        &[y],
    )?;
    record_codes(im, ctx, codes);
    Ok(out)
}

/// QLinearConv (opset 10): `x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
/// y_zero_point[, B]`, weights per tensor or per output channel.
fn qlinear_conv(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    arity(
        ctx,
        8,
        9,
        "8 or 9 (x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point[, B])",
    )?;
    let mut temps = Temps::default();
    let x = operand(im, ctx, &mut temps, [0, 1, 2], 1)?;
    let w = operand(im, ctx, &mut temps, [3, 4, 5], 0)?;
    let mut inputs = vec![x, w];
    if ctx.input(8).is_some() {
        let input_scale = activation_quant(im, ctx, 1, 2)?.quant.scale;
        let weight = weight_of(im, ctx, &inputs[1])?;
        inputs.push(bias(im, ctx, &mut temps, 8, input_scale, &weight)?);
    }
    let y = float_op(im, ctx, temps, ("Conv", super::conv::conv), inputs, &[])?;
    requantized(im, ctx, y, 6, 7)
}

/// The integers of a weight operand; an error when it is an activation (a QLinear op's weight
/// must be an initializer to run on the int8 kernels).
fn weight_of(im: &Importer, ctx: &NodeCtx, name: &str) -> Result<Rc<QuantizedConst>, OnnxError> {
    im.quantized(name).ok_or_else(|| {
        ctx.err(format!(
            "weight `{name}` is computed at run time; only an integer initializer is supported"
        ))
    })
}

/// QLinearMatMul (opset 10): `a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
/// y_zero_point`, `b` an initializer quantized per tensor or per column.
fn qlinear_matmul(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    arity(
        ctx,
        8,
        8,
        "8 (a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)",
    )?;
    let mut temps = Temps::default();
    let a = operand(im, ctx, &mut temps, [0, 1, 2], 1)?;
    let b = operand(im, ctx, &mut temps, [3, 4, 5], 1)?;
    weight_of(im, ctx, &b)?;
    let y = float_op(
        im,
        ctx,
        temps,
        ("MatMul", super::dense::matmul),
        vec![a, b],
        &[],
    )?;
    requantized(im, ctx, y, 6, 7)
}

/// com.microsoft QGemm: `A, a_scale, a_zero_point, B, b_scale, b_zero_point[, C[, y_scale[,
/// y_zero_point]]]`; without `y_scale` the output is float.
fn qgemm(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    arity(
        ctx,
        6,
        9,
        "6 to 9 (A, a_scale, a_zero_point, B, b_scale, b_zero_point[, C[, y_scale[, \
         y_zero_point]]])",
    )?;
    let trans_b = ctx.int("transB", 0)? != 0;
    let mut temps = Temps::default();
    let a = operand(im, ctx, &mut temps, [0, 1, 2], 1)?;
    let b = operand(im, ctx, &mut temps, [3, 4, 5], if trans_b { 0 } else { 1 })?;
    let weight = weight_of(im, ctx, &b)?;
    let mut inputs = vec![a, b];
    if ctx.input(6).is_some() {
        let input_scale = activation_quant(im, ctx, 1, 2)?.quant.scale;
        inputs.push(bias(im, ctx, &mut temps, 6, input_scale, &weight)?);
    }
    let y = float_op(im, ctx, temps, ("Gemm", super::dense::gemm), inputs, &[])?;
    if ctx.input(7).is_some() {
        requantized(im, ctx, y, 7, 8)
    } else {
        Ok(y)
    }
}

/// com.microsoft QLinearAdd / QLinearMul: `A, A_scale, A_zero_point, B, B_scale, B_zero_point,
/// C_scale[, C_zero_point]`, with numpy broadcasting (either operand may be an initializer).
fn qlinear_binary(
    im: &mut Importer,
    ctx: &NodeCtx,
    float: (&str, ImportFn),
) -> Result<Value, OnnxError> {
    arity(
        ctx,
        7,
        8,
        "7 or 8 (A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale[, C_zero_point])",
    )?;
    let mut temps = Temps::default();
    let a = operand(im, ctx, &mut temps, [0, 1, 2], 1)?;
    let b = operand(im, ctx, &mut temps, [3, 4, 5], 1)?;
    let y = float_op(im, ctx, temps, float, vec![a, b], &[])?;
    requantized(im, ctx, y, 6, 7)
}

fn qlinear_add(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    qlinear_binary(im, ctx, ("Add", super::binary::add))
}

fn qlinear_mul(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    qlinear_binary(im, ctx, ("Mul", super::binary::mul))
}

/// A com.microsoft QLinear op of one input: `X, X_scale, X_zero_point, Y_scale[,
/// Y_zero_point]`, imported as `float` with the node's attributes but `own`.
fn qlinear_unary(
    im: &mut Importer,
    ctx: &NodeCtx,
    float: (&str, ImportFn),
    own: &[&str],
) -> Result<Value, OnnxError> {
    arity(
        ctx,
        4,
        5,
        "4 or 5 (X, X_scale, X_zero_point, Y_scale[, Y_zero_point])",
    )?;
    let mut temps = Temps::default();
    let x = operand(im, ctx, &mut temps, [0, 1, 2], 1)?;
    let y = float_op(im, ctx, temps, float, vec![x], own)?;
    requantized(im, ctx, y, 3, 4)
}

/// onnxruntime's `channels_last` pools read NHWC; only its NCHW form (0, the default) is supported.
fn nchw_only(ctx: &NodeCtx) -> Result<(), OnnxError> {
    if ctx.int("channels_last", 0)? != 0 {
        return Err(ctx.err(
            "channels_last = 1 (an NHWC input) is not supported; only NCHW (channels_last = 0)",
        ));
    }
    Ok(())
}

fn qlinear_global_average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    nchw_only(ctx)?;
    qlinear_unary(
        im,
        ctx,
        ("GlobalAveragePool", super::pool::global_average_pool),
        &["channels_last"],
    )
}

fn qlinear_average_pool(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    nchw_only(ctx)?;
    qlinear_unary(
        im,
        ctx,
        ("AveragePool", super::pool::average_pool),
        &["channels_last"],
    )
}

fn qlinear_sigmoid(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    qlinear_unary(im, ctx, ("Sigmoid", super::activation::sigmoid), &[])
}

fn qlinear_leaky_relu(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    qlinear_unary(im, ctx, ("LeakyRelu", super::activation::leaky_relu), &[])
}

/// com.microsoft QLinearConcat: `Y_scale, Y_zero_point`, then `X, X_scale, X_zero_point` per
/// operand.
fn qlinear_concat(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let n = ctx.proto.input.len();
    if n < 5 || !(n - 2).is_multiple_of(3) {
        return Err(ctx.err(format!(
            "has {n} inputs; QLinearConcat takes Y_scale, Y_zero_point and three per operand \
             (X, X_scale, X_zero_point)"
        )));
    }
    let mut temps = Temps::default();
    let inputs = (2..n)
        .step_by(3)
        .map(|i| operand(im, ctx, &mut temps, [i, i + 1, i + 2], 1))
        .collect::<Result<Vec<_>, _>>()?;
    let y = float_op(
        im,
        ctx,
        temps,
        ("Concat", super::shape::concat),
        inputs,
        &[],
    )?;
    requantized(im, ctx, y, 0, 1)
}
