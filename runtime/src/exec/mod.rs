//! Running kernels: the SIMD tier, the thread pool, the activation arena and its huge-page
//! buffers, and per-layer profiling.

pub mod arena;
pub mod buffer;
pub mod isa;
pub mod profile;
pub mod threads;
