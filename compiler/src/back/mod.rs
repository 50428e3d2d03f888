//! Back ends: each turns a validated [`crate::ir::Graph`] (with its [`crate::ir::GraphInfo`]) into
//! code for one target. `rust` emits a standalone crate that depends on `resnext-runtime` alone.

pub mod rust;
