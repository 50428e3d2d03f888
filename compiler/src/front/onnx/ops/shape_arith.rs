//! Integer arithmetic on shape constants, folded at import: `Cast` to INT64, and `Add`, `Sub`,
//! `Mul`, `Div` of INT64 constants (ShuffleNet's ts17 export computes `channels / 2` so).
//! `Add`/`Sub`/`Mul`/`Div` are registered by the elementwise importers, which call
//! [`fold_int_arith`] when both operands are constants.

use std::rc::Rc;

use super::Registry;
use super::shape::BATCH;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::{ConstData, ConstTensor};

pub(super) fn register(reg: &mut Registry) {
    reg.insert("Cast", cast, &["to", "saturate"]);
}

/// ONNX `TensorProto.DataType` codes `Cast` may name here.
const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// `Cast` of an INT64 constant to INT64 (the exporters' no-op casts of shape arithmetic), or of a
/// FLOAT activation to FLOAT; no other conversion is supported.
fn cast(im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let to = ctx.int("to", 0)?;
    let value = match ctx.input(0).and_then(|n| im.get(n)) {
        Some(Value::Const(t)) if t.ints().is_some() && to == INT64 => Value::Const(t.clone()),
        Some(Value::Act(id)) if to == FLOAT => Value::Act(*id),
        _ => {
            return Err(ctx.err(format!(
                "a cast to data type {to} is not supported; only INT64 constants to INT64 and \
                 FLOAT activations to FLOAT (no-ops) are"
            )));
        }
    };
    Ok(value)
}

/// An integer operation of shape arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntOp {
    Add,
    Sub,
    Mul,
    /// Truncating, as ONNX `Div` of integers.
    Div,
}

/// `a op b` elementwise, a one-element operand broadcast against the other; `None` names the
/// problem (shapes, overflow, division by zero, or an operand that is the symbolic batch size).
fn int_binary(op: IntOp, a: &[i64], b: &[i64]) -> Result<Vec<i64>, String> {
    if a.contains(&BATCH) || b.contains(&BATCH) {
        return Err("arithmetic on the symbolic batch size is not supported".into());
    }
    let n = match (a.len(), b.len()) {
        (x, y) if x == y => x,
        (1, y) => y,
        (x, 1) => x,
        (x, y) => return Err(format!("operands of {x} and {y} values do not broadcast")),
    };
    let pick = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    (0..n)
        .map(|i| {
            let (x, y) = (pick(a, i), pick(b, i));
            match op {
                IntOp::Add => x.checked_add(y),
                IntOp::Sub => x.checked_sub(y),
                IntOp::Mul => x.checked_mul(y),
                IntOp::Div => x.checked_div(y),
            }
            .ok_or_else(|| format!("{x} {op:?} {y} overflows or divides by zero"))
        })
        .collect()
}

/// Folds an `Add`, `Sub`, `Mul` or `Div` node of two INT64 constant inputs into a constant: the
/// result takes the dims of the operand with more values.
pub(crate) fn fold_int_arith(im: &Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    let op = match ctx.op() {
        "Add" => IntOp::Add,
        "Sub" => IntOp::Sub,
        "Mul" => IntOp::Mul,
        "Div" => IntOp::Div,
        other => return Err(ctx.err(format!("{other} is not integer arithmetic"))),
    };
    let a = im.req_const(ctx, 0, "operand")?;
    let b = im.req_const(ctx, 1, "operand")?;
    let (Some(x), Some(y)) = (a.ints(), b.ints()) else {
        return Err(ctx.err(format!(
            "both operands are constants ({} and {}); only INT64 shape arithmetic is folded",
            a.dtype_name(),
            b.dtype_name()
        )));
    };
    let data = int_binary(op, x, y).map_err(|m| ctx.err(m))?;
    let dims = if x.len() >= y.len() { &a.dims } else { &b.dims };
    let name = ctx.proto.output.first().cloned().unwrap_or_default();
    Ok(Value::Const(Rc::new(ConstTensor {
        name,
        dims: dims.clone(),
        data: ConstData::I64(data),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_binary_broadcasts_truncates_and_rejects() {
        assert_eq!(int_binary(IntOp::Div, &[24], &[2]), Ok(vec![12]));
        assert_eq!(int_binary(IntOp::Div, &[-7, 7], &[2]), Ok(vec![-3, 3]));
        assert_eq!(int_binary(IntOp::Add, &[1], &[2, 3]), Ok(vec![3, 4]));
        assert_eq!(int_binary(IntOp::Mul, &[2, 3], &[4, 5]), Ok(vec![8, 15]));
        assert_eq!(int_binary(IntOp::Sub, &[2], &[5]), Ok(vec![-3]));
        assert!(int_binary(IntOp::Div, &[1], &[0]).is_err());
        assert!(int_binary(IntOp::Mul, &[i64::MAX], &[2]).is_err());
        assert!(int_binary(IntOp::Add, &[1, 2], &[1, 2, 3]).is_err());
        assert!(int_binary(IntOp::Mul, &[BATCH], &[2]).is_err());
    }
}
