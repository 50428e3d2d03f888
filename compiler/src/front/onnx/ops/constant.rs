//! `Constant`: a tensor known at import, from any of its value attributes.

use std::rc::Rc;

use super::Registry;
use crate::front::onnx::OnnxError;
use crate::front::onnx::context::{Importer, NodeCtx, Value};
use crate::front::onnx::tensor::{self, ConstData, ConstTensor};

pub(super) fn register(reg: &mut Registry) {
    reg.insert(
        "Constant",
        constant,
        &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ],
    );
}

/// Constant 1 to 11 hold a `value` tensor; 12 adds the `value_float(s)` and `value_int(s)` forms.
fn constant(_im: &mut Importer, ctx: &NodeCtx) -> Result<Value, OnnxError> {
    for form in ["value_float", "value_floats", "value_int", "value_ints"] {
        ctx.attr_versions(form, 12, None)?;
    }
    let name = ctx
        .proto
        .output
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.name.clone());
    let t = if let Some(t) = ctx.tensor("value")? {
        let mut c = tensor::decode(t, None).map_err(|m| ctx.err(format!("value: {m}")))?;
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
