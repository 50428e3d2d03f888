//! `resnext-compiler`: an ahead-of-time compiler for ResNeXt-style CNNs.
//!
//! Front ends (`front::onnx`, the `resnext!` DSL) build a typed graph ([`ir::Graph`]); passes fold and
//! fuse it; the validator proves it well formed; back ends (`back::rust`) emit standalone Rust that
//! depends on `resnext-runtime` alone. [`interp`] runs a graph on the reference kernels as an oracle.
//!
//! The ONNX front end, [`driver::load`], `Builder` and `resnextc` sit behind the default `onnx` feature
//! (tract-onnx's protobuf types); the `resnext!` macro builds without it.

pub mod back;
#[cfg(feature = "onnx")]
pub mod builder;
pub mod check;
pub mod driver;
pub mod front;
pub mod interp;
pub mod ir;
pub mod passes;

#[cfg(feature = "onnx")]
pub use builder::Builder;
