//! The AVX2+FMA micro-tile of the implicit-GEMM conv: a tile of 8 channels × up to 48 columns as
//! quarters of 4 channels × up to 3 ymm (12 accumulators; with 3 B loads and a broadcast, all 16
//! registers).

use std::arch::x86_64::*;

use super::by_channel::{PANEL, RowTile};
use super::{MAX_RUNS, MR, NR, Run, Tile, store_runs};
use crate::kernels::gemm::x86_64::avx2::activate;

/// Channels and columns of one quarter.
const QR: usize = 4;
const QC: usize = 24;

/// Runs `t`.
///
/// # Safety
/// AVX2 and FMA; the pointers of `t` valid as documented on `Tile`, its stores ours alone.
pub(super) unsafe fn tile(t: &Tile) {
    for first in (0..t.cols).step_by(QC) {
        let cols = QC.min(t.cols - first);
        for row in (0..t.rows).step_by(QR) {
            // SAFETY: forwarded from the caller, for channels `row..` and columns `first..` of
            // the tile.
            unsafe {
                match cols.div_ceil(8) {
                    1 => quarter::<1>(t, row, first, cols),
                    2 => quarter::<2>(t, row, first, cols),
                    _ => quarter::<3>(t, row, first, cols),
                }
            }
        }
    }
}

/// Channels `row..row + 4` (those below `t.rows`) × columns `first..first + cols` of `t`, in `NV`
/// vectors (`8·NV >= cols`).
///
/// # Safety
/// As for [`tile`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn quarter<const NV: usize>(t: &Tile, row: usize, first: usize, cols: usize) {
    // The sums, block by block of k (each block's from zero, then added): this quarter's part
    // of the partial sums, `[4][24]` at row `row`, column `first` of the `[MR][NR]` tile.
    let total = t.partial.wrapping_add(row * NR + first);
    let mut a = t.a.wrapping_add(row);
    let b = t.b.wrapping_add(first);
    for ic0 in (0..t.cin).step_by(t.block) {
        let mut part = [[_mm256_setzero_ps(); NV]; QR];
        for ic in ic0..(ic0 + t.block).min(t.cin) {
            let bc = b.wrapping_add(ic * t.plane);
            for &off in t.taps {
                let p = bc.wrapping_add(off);
                let mut bv = [_mm256_setzero_ps(); NV];
                for v in 0..NV {
                    // SAFETY: the run of tap `off` of channel `ic` holds `first + 8·NV`
                    // readable floats from the tile's first column (the contract).
                    bv[v] = unsafe { _mm256_loadu_ps(p.add(8 * v)) };
                }
                for r in 0..QR {
                    // SAFETY: the panel holds `MR >= row + 4` floats per k step.
                    let x = _mm256_set1_ps(unsafe { *a.add(r) });
                    for v in 0..NV {
                        part[r][v] = _mm256_fmadd_ps(x, bv[v], part[r][v]);
                    }
                }
                a = a.wrapping_add(MR);
            }
        }
        for r in 0..QR {
            for v in 0..NV {
                // SAFETY: the quarter's rows and columns of the partial sums (`MR × NR`).
                unsafe {
                    let at = total.add(r * NR + 8 * v);
                    let sum = if ic0 == 0 {
                        part[r][v]
                    } else {
                        _mm256_add_ps(_mm256_loadu_ps(at), part[r][v])
                    };
                    _mm256_storeu_ps(at, sum);
                }
            }
        }
    }
    let mut runs = [Run::default(); MAX_RUNS];
    let count = store_runs(t, first, cols, 8, &mut runs);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for r in 0..QR.min(t.rows - row) {
        let ch = row + r;
        let bias = if t.bias.is_null() {
            _mm256_setzero_ps()
        } else {
            // SAFETY: bias entry `ch < rows`.
            _mm256_set1_ps(unsafe { *t.bias.add(ch) })
        };
        for run in &runs[..count] {
            // Lanes `lo..hi`: `lo <= lane < hi`.
            let mask = _mm256_andnot_si256(
                _mm256_cmpgt_epi32(_mm256_set1_epi32(run.lo as i32), lane),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(run.hi as i32), lane),
            );
            let at = (ch * t.n) as isize + (t.col0 + first + 8 * run.v) as isize + run.delta;
            // SAFETY: the lanes of `mask` are output pixels of channel `ch` (the run's
            // mapping), in the output and the residual; masked-off lanes are not accessed.
            unsafe {
                let mut x = _mm256_add_ps(_mm256_loadu_ps(total.add(r * NR + 8 * run.v)), bias);
                if !t.residual.is_null() {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(t.residual.wrapping_offset(at), mask));
                }
                _mm256_maskstore_ps(t.out.wrapping_offset(at), mask, activate(t.activation, x));
            }
        }
    }
}

/// Pixels per by-channel quarter: 6 × 2 ymm accumulators.
const ROW_PIXELS: usize = 6;

/// Runs the by-channel micro-tile `t` over `pixels` pixels, as runs of up to six pixels × each
/// half (16 channels) of the panel.
///
/// # Safety
/// AVX2 and FMA; the pointers of `t` valid as documented on `RowTile` for `pixels` pixels.
pub(super) unsafe fn row_tile(t: &RowTile, pixels: usize) {
    for first in (0..pixels).step_by(ROW_PIXELS) {
        for half in 0..2 {
            // SAFETY: forwarded from the caller, for pixels `first..` and channels
            // `16·half..16·half + 16`.
            unsafe {
                match (pixels - first).min(ROW_PIXELS) {
                    1 => row_quarter::<1>(t, first, half),
                    2 => row_quarter::<2>(t, first, half),
                    3 => row_quarter::<3>(t, first, half),
                    4 => row_quarter::<4>(t, first, half),
                    5 => row_quarter::<5>(t, first, half),
                    _ => row_quarter::<ROW_PIXELS>(t, first, half),
                }
            }
        }
    }
}

/// Pixels `first..first + P` × channels `16·half..16·half + 16` of `t`.
///
/// # Safety
/// As for [`row_tile`], with `first + P <= pixels`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn row_quarter<const P: usize>(t: &RowTile, first: usize, half: usize) {
    let sums = t.sums.wrapping_add(first * PANEL + 16 * half);
    let mut acc = [[_mm256_setzero_ps(); 2]; P];
    let mut w = t.w.wrapping_add(16 * half);
    for ic in 0..t.channels {
        let xc = t.x.wrapping_add(ic * t.plane + first);
        for &off in t.taps {
            let x = xc.wrapping_add(off);
            // SAFETY: 16 of this step's `PANEL` weights, and the tap's run of pixels
            // `first..first + P` of channel `ic` (the contract).
            unsafe {
                let w0 = _mm256_loadu_ps(w);
                let w1 = _mm256_loadu_ps(w.add(8));
                for p in 0..P {
                    let v = _mm256_set1_ps(*x.add(p));
                    acc[p][0] = _mm256_fmadd_ps(v, w0, acc[p][0]);
                    acc[p][1] = _mm256_fmadd_ps(v, w1, acc[p][1]);
                }
            }
            w = w.wrapping_add(PANEL);
        }
    }
    for p in 0..P {
        for h in 0..2 {
            // SAFETY: the sums of pixel `first + p` (the contract).
            unsafe {
                let at = sums.add(p * PANEL + 8 * h);
                let sum = if t.accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(at), acc[p][h])
                } else {
                    acc[p][h]
                };
                _mm256_storeu_ps(at, sum);
            }
        }
    }
}
