//! Helpers shared by the integration tests (each test binary compiles this module and uses part of
//! it, hence `dead_code`).
#![allow(dead_code)]

pub mod emitted;
pub mod quant;
