//! `resnext-compiler`: an ahead-of-time compiler for ResNeXt-style CNNs.
//!
//! Front ends (`front::onnx`, the `resnext!` DSL) build a typed graph ([`ir::Graph`]); passes fold and
//! fuse it; the validator proves it well formed; back ends (`back::rust`) emit standalone Rust that
//! depends on `resnext-runtime` alone. [`interp`] runs a graph on the reference kernels as an oracle.

pub mod back;
pub mod builder;
pub mod driver;
pub mod front;
pub mod interp;
pub mod ir;
pub mod passes;

pub use builder::Builder;
