//! The runtime that code emitted by `resnext-compiler` depends on, and nothing else: kernels, the
//! weights file format and `.npy` I/O. It never depends on the compiler.

pub mod arena;
pub mod buffer;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod cuda_plan;
pub mod error;
pub mod fold;
pub mod hash;
pub mod isa;
pub mod kernels;
pub mod npy;
pub mod profile;
#[cfg(feature = "safetensors")]
pub mod safetensors;
pub mod threads;
pub mod weights;

pub use error::RunError;
pub use weights::{LoadError, Weights};
