//! The AVX-512F micro-tile of the implicit-GEMM conv: 8 output channels × up to 3 zmm of columns,
//! 24 accumulators over the whole k; per k step one B run (up to three unaligned loads from the
//! phase-split copy) and eight broadcasts of the A panel.

use std::arch::x86_64::*;

use super::by_channel::{PANEL, RowTile};
use super::{MAX_RUNS, MR, NR, Run, Tile, store_runs};
use crate::kernels::gemm::x86_64::avx512::activate512_inline;

/// Fewest input channels for which [`tile_nv`] prefetches each tap's B run one channel ahead.
const PREFETCH_MIN_CHANNELS: usize = 8;

/// Smallest phase copy of a channel (floats) for which [`tile_nv`] prefetches: a 56×56 map's.
const PREFETCH_MIN_PLANE: usize = 3000;

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
    let mut a = t.a;
    // Measured on a Xeon (Ice Lake) at 1 thread (bench_implicit, fastest calls of two runs):
    // 56×56 and 112×112 maps 5–27% faster with the prefetches; 7×7–28×28 maps anywhere from 12%
    // faster to 13% slower, and the stems (3 channels) 2–11% slower in one run.
    let prefetch_b = t.cin >= PREFETCH_MIN_CHANNELS && t.plane >= PREFETCH_MIN_PLANE;
    for ic0 in (0..t.cin).step_by(t.block) {
        // The block's sums from zero, added to the earlier blocks' (kept in `t.partial`, not in
        // registers: a second set of 24 accumulators live through the k loop made LLVM shuffle
        // registers inside it).
        let mut part = [[_mm512_setzero_ps(); NV]; MR];
        for ic in ic0..(ic0 + t.block).min(t.cin) {
            let bc = t.b.wrapping_add(ic * t.plane);
            for &off in t.taps {
                _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_AHEAD * MR) as *const i8);
                let p = bc.wrapping_add(off);
                let mut bv = [_mm512_setzero_ps(); NV];
                if prefetch_b {
                    // This tap's run one channel on, read 9–49 k steps from now: the runs of a
                    // channel sit `plane` apart, which the hardware prefetchers do not follow.
                    // Never faults, so the last channel's may point past the copy.
                    for v in 0..NV {
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(t.plane + 16 * v) as *const i8);
                    }
                }
                for v in 0..NV {
                    // SAFETY: the run of tap `off` of channel `ic` holds `16·NV` readable
                    // floats (the contract: the copy's slack covers the last vector).
                    bv[v] = unsafe { _mm512_loadu_ps(p.add(16 * v)) };
                }
                for r in 0..MR {
                    // SAFETY: the panel holds `MR` floats per k step.
                    let x = _mm512_set1_ps(unsafe { *a.add(r) });
                    for v in 0..NV {
                        part[r][v] = _mm512_fmadd_ps(x, bv[v], part[r][v]);
                    }
                }
                a = a.wrapping_add(MR);
            }
        }
        if ic0 > 0 {
            for r in 0..MR {
                for v in 0..NV {
                    // SAFETY: the earlier sums, `NR >= 16·NV` floats per row.
                    let before = unsafe { _mm512_loadu_ps(t.partial.add(r * NR + 16 * v)) };
                    part[r][v] = _mm512_add_ps(before, part[r][v]);
                }
            }
        }
        if ic0 + t.block < t.cin {
            for r in 0..MR {
                for v in 0..NV {
                    // SAFETY: as above.
                    unsafe { _mm512_storeu_ps(t.partial.add(r * NR + 16 * v), part[r][v]) };
                }
            }
            continue;
        }
        if t.wq >= 16 {
            // SAFETY: forwarded from the caller.
            unsafe { finish_two_runs(t, part) };
        } else {
            // The sums through memory: the runs index vectors at run time, which indexing
            // registers would have kept in memory through the k loop.
            let mut sums = [0.0f32; MR * NR];
            for r in 0..MR {
                for v in 0..NV {
                    // SAFETY: `sums` holds `NR >= 16·NV` floats per row.
                    unsafe { _mm512_storeu_ps(sums.as_mut_ptr().add(r * NR + 16 * v), part[r][v]) };
                }
            }
            // SAFETY: forwarded from the caller.
            unsafe { finish_runs(t, &sums) };
        }
    }
}

/// The epilogue of a tile from its sums in memory (`[MR][NR]`), run by run.
///
/// # Safety
/// As for [`tile`].
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn finish_runs(t: &Tile, sums: &[f32; MR * NR]) {
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
                    activate512_inline!(t.activation, x),
                );
            }
        }
    }
}

/// The epilogue of a tile whose padded rows are at least 16 wide, so that each vector meets at
/// most two output rows: two masked stores per vector and channel, from the accumulators in
/// registers (every index a constant once unrolled).
///
/// # Safety
/// As for [`tile`], with `t.wq >= 16`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn finish_two_runs<const NV: usize>(t: &Tile, acc: [[__m512; NV]; MR]) {
    // Per vector: the lanes of its first and second output row, and where lane 0 of each goes.
    let mut masks = [[0 as __mmask16; 2]; NV];
    let mut at = [[0isize; 2]; NV];
    for v in 0..NV {
        let start = t.col0 + 16 * v;
        let lanes = t.cols.saturating_sub(16 * v).min(16);
        for (half, first) in [(0, start), (1, (start / t.wq + 1) * t.wq)] {
            let (oy, ox) = (first / t.wq, first % t.wq);
            let lo = first - start;
            let hi = (first + t.out_w.saturating_sub(ox))
                .min(start + lanes)
                .max(start)
                - start;
            if half == 1 && first >= start + lanes || lo >= hi {
                continue;
            }
            masks[v][half] = ((((1u32 << hi) - 1) & !((1u32 << lo) - 1)) & 0xFFFF) as __mmask16;
            at[v][half] = start as isize + (oy * t.out_w) as isize - (oy * t.wq) as isize;
        }
    }
    // One call per channel with a literal index, so that `acc` is never indexed at run time and
    // stays in registers through the k loop.
    macro_rules! rows {
        ($($r:literal)*) => {$(
            if $r < t.rows {
                // SAFETY: `$r < rows` (forwarded contract).
                unsafe { finish_row(t, $r, acc[$r], &masks, &at) };
            }
        )*};
    }
    rows!(0 1 2 3 4 5 6 7);
}

/// Row `r` of [`finish_two_runs`].
///
/// # Safety
/// As for [`finish_two_runs`], with `r < t.rows`.
#[inline(always)]
unsafe fn finish_row<const NV: usize>(
    t: &Tile,
    r: usize,
    acc: [__m512; NV],
    masks: &[[__mmask16; 2]; NV],
    at: &[[isize; 2]; NV],
) {
    // SAFETY: the caller's CPU has AVX-512F; bias entry `r < rows`.
    let bias = unsafe {
        if t.bias.is_null() {
            _mm512_setzero_ps()
        } else {
            _mm512_set1_ps(*t.bias.add(r))
        }
    };
    for (v, &sum) in acc.iter().enumerate() {
        // SAFETY: AVX-512F (the caller's contract).
        let x = unsafe { _mm512_add_ps(sum, bias) };
        for half in 0..2 {
            let m = masks[v][half];
            if m == 0 {
                continue;
            }
            let at = (r * t.n) as isize + at[v][half];
            // SAFETY: the lanes of `m` are output pixels of channel `r` of this tile, in the
            // output and the residual; masked-off lanes are not accessed.
            unsafe {
                let mut y = x;
                if !t.residual.is_null() {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, t.residual.wrapping_offset(at)));
                }
                _mm512_mask_storeu_ps(
                    t.out.wrapping_offset(at),
                    m,
                    activate512_inline!(t.activation, y),
                );
            }
        }
    }
}

/// Runs the by-channel micro-tile `t` over `pixels` (`1..=14`) pixels.
///
/// # Safety
/// AVX-512F; the pointers of `t` valid as documented on `RowTile` for `pixels` pixels.
pub(super) unsafe fn row_tile(t: &RowTile, pixels: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match pixels {
            1 => row_tile_p::<1>(t),
            2 => row_tile_p::<2>(t),
            3 => row_tile_p::<3>(t),
            4 => row_tile_p::<4>(t),
            5 => row_tile_p::<5>(t),
            6 => row_tile_p::<6>(t),
            7 => row_tile_p::<7>(t),
            8 => row_tile_p::<8>(t),
            9 => row_tile_p::<9>(t),
            10 => row_tile_p::<10>(t),
            11 => row_tile_p::<11>(t),
            12 => row_tile_p::<12>(t),
            13 => row_tile_p::<13>(t),
            _ => row_tile_p::<14>(t),
        }
    }
}

/// [`row_tile`] on `P` pixels: `P × 2` accumulators of 16 channels.
///
/// # Safety
/// As for [`row_tile`], with `pixels == P`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn row_tile_p<const P: usize>(t: &RowTile) {
    // The block's sums from zero, added to the earlier blocks' at the end: k in blocks, like the
    // column tiles.
    let mut acc = [[_mm512_setzero_ps(); 2]; P];
    let mut w = t.w;
    for ic in 0..t.channels {
        let xc = t.x.wrapping_add(ic * t.plane);
        for &off in t.taps {
            let x = xc.wrapping_add(off);
            // SAFETY: this step's `PANEL` weights, and the tap's run of `P` pixels of channel
            // `ic` (the contract).
            unsafe {
                let w0 = _mm512_loadu_ps(w);
                let w1 = _mm512_loadu_ps(w.add(16));
                for p in 0..P {
                    let v = _mm512_set1_ps(*x.add(p));
                    acc[p][0] = _mm512_fmadd_ps(v, w0, acc[p][0]);
                    acc[p][1] = _mm512_fmadd_ps(v, w1, acc[p][1]);
                }
            }
            w = w.wrapping_add(PANEL);
        }
    }
    for p in 0..P {
        for h in 0..2 {
            // SAFETY: the sums of pixel `p < P` (the contract).
            unsafe {
                let at = t.sums.add(p * PANEL + 16 * h);
                let sum = if t.accumulate {
                    _mm512_add_ps(_mm512_loadu_ps(at), acc[p][h])
                } else {
                    acc[p][h]
                };
                _mm512_storeu_ps(at, sum);
            }
        }
    }
}
