//! The runtime that code emitted by `resnext-compiler` depends on, and nothing else: kernels, the
//! weights file format and `.npy` I/O. It never depends on the compiler.

pub mod fold;
pub mod isa;
pub mod kernels;
pub mod threads;
