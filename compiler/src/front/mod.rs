//! Front ends: each turns a model description (an ONNX file, the `resnext!` DSL) into an
//! [`crate::ir::Graph`] of unfused ops; passes and validation come after.

pub mod dsl;
#[cfg(feature = "onnx")]
pub mod onnx;
