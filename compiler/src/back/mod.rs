//! Back ends: each turns a validated [`crate::ir::Graph`] (with its [`crate::ir::GraphInfo`]) into
//! code for one target. `rust` emits a standalone crate that depends on `resnext-runtime` alone;
//! `cuda` emits CUDA C kernels and a launch plan that `resnext_runtime_core::cuda` runs.

pub mod cuda;
pub mod rust;
