//! The AVX2+FMA micro-tile of the implicit-GEMM conv: a tile of 8 channels × up to 48 columns as
//! quarters of 4 channels × up to 3 ymm (12 accumulators; with 3 B loads and a broadcast, all 16
//! registers).

use std::arch::x86_64::*;

use super::{MAX_RUNS, MR, Run, Tile, store_runs};
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
    let mut acc = [[_mm256_setzero_ps(); NV]; QR];
    let mut a = t.a.wrapping_add(row);
    let b = t.b.wrapping_add(first);
    for ic in 0..t.cin {
        let bc = b.wrapping_add(ic * t.plane);
        for &off in t.taps {
            let p = bc.wrapping_add(off);
            let mut bv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                // SAFETY: the run of tap `off` of channel `ic` holds `first + 8·NV` readable
                // floats from the tile's first column (the contract).
                bv[v] = unsafe { _mm256_loadu_ps(p.add(8 * v)) };
            }
            for r in 0..QR {
                // SAFETY: the panel holds `MR >= row + 4` floats per k step.
                let x = _mm256_set1_ps(unsafe { *a.add(r) });
                for v in 0..NV {
                    acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
                }
            }
            a = a.wrapping_add(MR);
        }
    }
    let mut sums = [0.0f32; QR * QC];
    for r in 0..QR {
        for v in 0..NV {
            // SAFETY: `sums` holds `QC >= 8·NV` floats per row.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(r * QC + 8 * v), acc[r][v]) };
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
                let mut x =
                    _mm256_add_ps(_mm256_loadu_ps(sums.as_ptr().add(r * QC + 8 * run.v)), bias);
                if !t.residual.is_null() {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(t.residual.wrapping_offset(at), mask));
                }
                _mm256_maskstore_ps(t.out.wrapping_offset(at), mask, activate(t.activation, x));
            }
        }
    }
}
