//! Running kernels: the SIMD tier, the thread pool, the activation arena and its huge-page
//! buffers, and per-layer profiling.

pub mod arena;
pub mod buffer;
pub mod isa;
pub mod profile;
pub mod threads;

use isa::Isa;
use threads::Threads;

/// Where a kernel runs: the SIMD tier and the thread pool. Every fast kernel takes one, beside
/// one struct of its shape and buffers. Emitted code builds it with [`Ctx::new`] (the process's
/// tier); tests and benchmarks set `isa` to force a tier (one the CPU lacks runs the generic tier).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub isa: Isa,
    pub threads: &'a Threads,
}

impl<'a> Ctx<'a> {
    /// `threads` on the process's tier, [`isa::isa`].
    pub fn new(threads: &'a Threads) -> Ctx<'a> {
        Ctx {
            isa: isa::isa(),
            threads,
        }
    }
}
