//! The runtime that code emitted by `resnext-compiler` depends on, and nothing else: kernels, the
//! weights file format and `.npy` I/O. It never depends on the compiler.

pub mod cuda;
pub mod error;
pub mod exec;
pub mod formats;
pub mod kernels;

pub use error::RunError;
pub use formats::weights::{LoadError, Weights};
