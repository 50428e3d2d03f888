//! The CUDA side of the runtime: the launch plan (`plan`, plain data, always built) and, behind
//! the `cuda` feature, the runner that compiles and launches it on a device (`runner`).

pub mod plan;
#[cfg(feature = "cuda")]
pub mod runner;
