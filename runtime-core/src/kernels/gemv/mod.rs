//! Fully connected layers at small batch (matrix–vector products): memory-bound, every weight read
//! once, so the weights are streamed by both cores and each weight load feeds `batch` FMAs.
//!
//! The weights are the dense layer's packed B ([`gemm::pack_b_transposed`], packed at compile
//! time): tiles of [`NR`] output features, `[tile][k][NR]`. That layout is already what a GEMV
//! wants (each tile one contiguous run of `k × NR` floats, read front to back), so the same packed
//! tensor serves both kernels and `dense::run` chooses between them from the batch at run time;
//! nothing else is packed or stored. Each thread takes a contiguous run of tiles (output features)
//! for every batch row; within a tile, the tier's micro-kernel keeps `batch × NR` sums in
//! registers over the whole k and applies the GEMM's fused epilogue (bias along the features,
//! residual, activation) when it stores them.

use std::ops::Range;

use super::gemm::NR;
use super::{Activation, Epilogue, SharedOut};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

#[cfg(target_arch = "x86_64")]
mod x86_64;

/// Largest batch the GEMV kernels take on each tier: all rows of a tile in one pass over its
/// weights. AVX-512 holds 4 rows × 3 vectors of sums twice (two k chains) in its 32 registers;
/// AVX2 holds 2 rows × 6 vectors in 16. Above these the GEMM, whose 8-row panels also read each
/// weight once, is as good.
pub(crate) fn max_batch(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 4,
        Isa::Avx2 => 2,
        Isa::Generic => 4,
    }
}

/// Tasks per thread: whole-tile runs small enough for the pool's stealing to even out a core that
/// another process slows down.
const TASKS_PER_THREAD: usize = 4;

/// One call: `out[b, n] = act(Σ_k input[b, k] · W[n, k] + bias[n] + residual[b, n])`, W packed.
#[derive(Clone, Copy)]
pub(crate) struct Gemv<'a> {
    pub batch: usize,
    pub k: usize,
    pub n: usize,
    /// `batch × k`, row-major.
    pub input: &'a [f32],
    /// `packed_b_len(k, n)` floats.
    pub packed: &'a [f32],
    pub bias: Option<&'a [f32]>,
    /// `batch × n`, laid out like the output.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl Gemv<'_> {
    /// The epilogue as the scalar helpers take it.
    fn epilogue(&self) -> Epilogue<'_> {
        Epilogue {
            bias: self.bias,
            residual: self.residual,
            activation: self.activation,
        }
    }
}

/// Runs `g` into `output` (`batch × n`) on `ctx`'s tier and threads. The caller (`dense::run`) has
/// checked every length and that `batch <= max_batch(isa)`, `batch, n > 0`.
pub(crate) fn run(ctx: &Ctx, g: &Gemv, output: &mut [f32]) {
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        Isa::Generic
    };
    let tiles = g.n.div_ceil(NR);
    let tasks = (TASKS_PER_THREAD * ctx.threads.count()).min(tiles);
    let out = SharedOut(output.as_mut_ptr());
    ctx.threads.run(tasks, &|t| {
        let range = t * tiles / tasks..(t + 1) * tiles / tasks;
        // SAFETY: task `t` writes the output columns of its own tiles, disjoint from every other
        // task's, in every batch row; the lengths were checked by the caller; `isa` is supported.
        unsafe { run_tiles(g, range, out.ptr(), isa) };
    });
}

/// Computes output columns of `tiles` for every batch row.
///
/// # Safety
/// `out` must be valid for writes of `batch × n` floats, with nobody else touching those columns;
/// the slices of `g` as documented there; `isa` supported by this CPU.
unsafe fn run_tiles(g: &Gemv, tiles: Range<usize>, out: *mut f32, isa: Isa) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: this function's contract.
        Isa::Avx512 => unsafe { x86_64::tiles_avx512(g, tiles, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: this function's contract.
        Isa::Avx2 => unsafe { x86_64::tiles_avx2(g, tiles, out) },
        // SAFETY: this function's contract.
        _ => unsafe { tiles_generic(g, tiles, out) },
    }
}

/// Plain loops over one tile's `NR` columns at a time (the compiler vectorises the inner loop).
///
/// # Safety
/// As [`run_tiles`].
unsafe fn tiles_generic(g: &Gemv, tiles: Range<usize>, out: *mut f32) {
    let ep = g.epilogue();
    for j in tiles {
        let w = &g.packed[j * g.k * NR..(j + 1) * g.k * NR];
        let cols = NR.min(g.n - j * NR);
        for b in 0..g.batch {
            let x = &g.input[b * g.k..(b + 1) * g.k];
            let mut acc = [0.0f32; NR];
            for (&xk, row) in x.iter().zip(w.chunks_exact(NR)) {
                for (a, &wv) in acc.iter_mut().zip(row) {
                    *a += xk * wv;
                }
            }
            for (c, &a) in acc[..cols].iter().enumerate() {
                let (col, at) = (j * NR + c, b * g.n + j * NR + c);
                // SAFETY: `at < batch × n`, a column of this task's tiles (the contract).
                unsafe { *out.add(at) = ep.apply(a, col, at) };
            }
        }
    }
}
