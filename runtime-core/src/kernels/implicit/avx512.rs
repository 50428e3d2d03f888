//! The AVX-512F micro-tile of the implicit-GEMM conv: 8 output channels × up to 3 zmm of columns,
//! 24 accumulators over the whole k; per k step one B run (up to three unaligned loads from the
//! phase-split copy) and eight broadcasts of the A panel.

use std::arch::x86_64::*;

use super::{MAX_RUNS, MR, NR, Run, Tile, store_runs};
use crate::kernels::gemm::x86_64::avx512::activate512;

/// How many k steps ahead the A panel is prefetched (16 steps × 32 B = 512 B).
const A_AHEAD: usize = 16;

/// Runs `t`.
///
/// # Safety
/// AVX-512F; the pointers of `t` valid as documented on `Tile`, its stores ours alone.
pub(super) unsafe fn tile(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match t.cols.div_ceil(16) {
            1 => tile_nv::<1>(t),
            2 => tile_nv::<2>(t),
            _ => tile_nv::<3>(t),
        }
    }
}

/// [`tile`] on `NV` vectors of columns (`16·NV >= cols`).
///
/// # Safety
/// As for [`tile`].
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_nv<const NV: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut a = t.a;
    for ic in 0..t.cin {
        let bc = t.b.wrapping_add(ic * t.plane);
        for &off in t.taps {
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_AHEAD * MR) as *const i8);
            let p = bc.wrapping_add(off);
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                // SAFETY: the run of tap `off` of channel `ic` holds `16·NV` readable floats
                // (the contract: the copy's slack covers the last vector).
                bv[v] = unsafe { _mm512_loadu_ps(p.add(16 * v)) };
            }
            for r in 0..MR {
                // SAFETY: the panel holds `MR` floats per k step.
                let x = _mm512_set1_ps(unsafe { *a.add(r) });
                for v in 0..NV {
                    acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
                }
            }
            a = a.wrapping_add(MR);
        }
    }
    // The sums through memory: the runs index vectors at run time, which indexing `acc` would
    // have kept in memory through the k loop.
    let mut sums = [0.0f32; MR * NR];
    for r in 0..MR {
        for v in 0..NV {
            // SAFETY: `sums` holds `NR >= 16·NV` floats per row.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr().add(r * NR + 16 * v), acc[r][v]) };
        }
    }
    let mut runs = [Run::default(); MAX_RUNS];
    let count = store_runs(t, 0, t.cols, 16, &mut runs);
    for r in 0..t.rows {
        let bias = if t.bias.is_null() {
            _mm512_setzero_ps()
        } else {
            // SAFETY: bias entry `r < rows`.
            _mm512_set1_ps(unsafe { *t.bias.add(r) })
        };
        for run in &runs[..count] {
            let mask = (((1u32 << run.hi) - 1) & !((1u32 << run.lo) - 1)) as __mmask16;
            let at = (r * t.n) as isize + (t.col0 + 16 * run.v) as isize + run.delta;
            // SAFETY: the lanes of `mask` are output pixels of channel `r` (the run's mapping),
            // in the output and the residual; masked-off lanes are not accessed.
            unsafe {
                let mut x = _mm512_add_ps(
                    _mm512_loadu_ps(sums.as_ptr().add(r * NR + 16 * run.v)),
                    bias,
                );
                if !t.residual.is_null() {
                    x = _mm512_add_ps(
                        x,
                        _mm512_maskz_loadu_ps(mask, t.residual.wrapping_offset(at)),
                    );
                }
                _mm512_mask_storeu_ps(
                    t.out.wrapping_offset(at),
                    mask,
                    activate512(t.activation, x),
                );
            }
        }
    }
}
