//! The GEMV micro-kernels of the SIMD tiers: one tile of `NR` output features for up to 4 (AVX-512)
//! or 2 (AVX2) batch rows, its sums in registers over the whole k, the epilogue fused at the store.

use std::arch::x86_64::*;
use std::ops::Range;

use super::Gemv;
use crate::kernels::gemm::NR;
use crate::kernels::gemm::x86_64::avx2::activate;
use crate::kernels::gemm::x86_64::avx512::activate512_inline;

/// Vectors of one tile row on AVX-512 (16 lanes).
const V512: usize = NR / 16;
/// Vectors of one tile row on AVX2 (8 lanes).
const V256: usize = NR / 8;

/// AVX-512 tier of `gemv::run_tiles`: the batch rows four at a time.
///
/// # Safety
/// As `gemv::run_tiles`; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tiles_avx512(g: &Gemv, tiles: Range<usize>, out: *mut f32) {
    for j in tiles {
        for b0 in (0..g.batch).step_by(4) {
            // SAFETY: `j` is a tile of this task, rows `b0..` are batch rows (this function's
            // contract).
            unsafe {
                match g.batch - b0 {
                    1 => tile512::<1>(g, j, b0, out),
                    2 => tile512::<2>(g, j, b0, out),
                    3 => tile512::<3>(g, j, b0, out),
                    _ => tile512::<4>(g, j, b0, out),
                }
            }
        }
    }
}

/// Tile `j` for batch rows `b0..b0 + NB`: two k chains (even and odd k) of `NB × 3` sums each, so
/// that a single row still has six FMA chains in flight; each weight vector loaded feeds `NB` FMAs.
///
/// # Safety
/// `b0 + NB <= batch`, `j` a tile of the caller's; as `tiles_avx512`.
// The sums are a register tile indexed by batch row and vector, as in the GEMM's micro-kernels.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile512<const NB: usize>(g: &Gemv, j: usize, b0: usize, out: *mut f32) {
    let k = g.k;
    let zero = _mm512_setzero_ps();
    let mut even = [[zero; V512]; NB];
    let mut odd = [[zero; V512]; NB];
    // SAFETY: tile `j` holds `k × NR` packed floats from `j·k·NR` (packed length checked by the
    // caller); rows `b0..b0 + NB` of the input hold `k` floats each.
    unsafe {
        let w = g.packed.as_ptr().add(j * k * NR);
        let x = g.input.as_ptr().add(b0 * k);
        let mut kk = 0;
        while kk + 2 <= k {
            let p = w.add(kk * NR);
            let we: [__m512; V512] = std::array::from_fn(|v| _mm512_loadu_ps(p.add(16 * v)));
            let wo: [__m512; V512] = std::array::from_fn(|v| _mm512_loadu_ps(p.add(NR + 16 * v)));
            for b in 0..NB {
                let xe = _mm512_set1_ps(*x.add(b * k + kk));
                let xo = _mm512_set1_ps(*x.add(b * k + kk + 1));
                for v in 0..V512 {
                    even[b][v] = _mm512_fmadd_ps(xe, we[v], even[b][v]);
                    odd[b][v] = _mm512_fmadd_ps(xo, wo[v], odd[b][v]);
                }
            }
            kk += 2;
        }
        if kk < k {
            let p = w.add(kk * NR);
            for b in 0..NB {
                let xe = _mm512_set1_ps(*x.add(b * k + kk));
                for v in 0..V512 {
                    even[b][v] = _mm512_fmadd_ps(xe, _mm512_loadu_ps(p.add(16 * v)), even[b][v]);
                }
            }
        }
    }
    let col0 = j * NR;
    let cols = NR.min(g.n - col0);
    for b in 0..NB {
        for v in 0..V512 {
            let lo = 16 * v;
            if lo >= cols {
                break;
            }
            let m: __mmask16 = if cols - lo >= 16 {
                0xFFFF
            } else {
                (1u16 << (cols - lo)) - 1
            };
            let at = (b0 + b) * g.n + col0 + lo;
            let mut s = _mm512_add_ps(even[b][v], odd[b][v]);
            // SAFETY: the lanes of `m` are output columns `col0 + lo ..< n` of batch row `b0 + b`:
            // inside the bias (`n` floats), the residual and the output (`batch × n`); this task's
            // columns alone are written. Masked-off lanes are not accessed.
            unsafe {
                if let Some(bias) = g.bias {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, bias.as_ptr().add(col0 + lo)));
                }
                if let Some(r) = g.residual {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, r.as_ptr().add(at)));
                }
                _mm512_mask_storeu_ps(out.add(at), m, activate512_inline!(g.activation, s));
            }
        }
    }
}

/// AVX2 tier of `gemv::run_tiles`: the batch rows two at a time.
///
/// # Safety
/// As `gemv::run_tiles`; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tiles_avx2(g: &Gemv, tiles: Range<usize>, out: *mut f32) {
    for j in tiles {
        for b0 in (0..g.batch).step_by(2) {
            // SAFETY: as in `tiles_avx512`.
            unsafe {
                if g.batch - b0 == 1 {
                    tile256::<1>(g, j, b0, out);
                } else {
                    tile256::<2>(g, j, b0, out);
                }
            }
        }
    }
}

/// Tile `j` for batch rows `b0..b0 + NB`: `NB × 6` sums (at one row, six FMA chains).
///
/// # Safety
/// `b0 + NB <= batch`, `j` a tile of the caller's; as `tiles_avx2`.
// As in `tile512`.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const NB: usize>(g: &Gemv, j: usize, b0: usize, out: *mut f32) {
    let k = g.k;
    let mut acc = [[_mm256_setzero_ps(); V256]; NB];
    // SAFETY: as in `tile512`.
    unsafe {
        let w = g.packed.as_ptr().add(j * k * NR);
        let x = g.input.as_ptr().add(b0 * k);
        for kk in 0..k {
            let p = w.add(kk * NR);
            let xs: [__m256; NB] = std::array::from_fn(|b| _mm256_set1_ps(*x.add(b * k + kk)));
            for v in 0..V256 {
                let wv = _mm256_loadu_ps(p.add(8 * v));
                for b in 0..NB {
                    acc[b][v] = _mm256_fmadd_ps(xs[b], wv, acc[b][v]);
                }
            }
        }
    }
    let col0 = j * NR;
    let cols = NR.min(g.n - col0);
    for (b, sums) in acc.iter().enumerate() {
        for (v, &sum) in sums.iter().enumerate() {
            let lo = 8 * v;
            if lo >= cols {
                break;
            }
            let lanes = (cols - lo).min(8);
            let at = (b0 + b) * g.n + col0 + lo;
            // A ragged vector goes through lane buffers: the same vector epilogue, no masked loads.
            let mut bias = [0.0f32; 8];
            let mut res = [0.0f32; 8];
            if let Some(bs) = g.bias {
                bias[..lanes].copy_from_slice(&bs[col0 + lo..col0 + lo + lanes]);
            }
            if let Some(r) = g.residual {
                res[..lanes].copy_from_slice(&r[at..at + lanes]);
            }
            let mut s = sum;
            if g.bias.is_some() {
                // SAFETY: `bias` holds 8 floats.
                s = _mm256_add_ps(s, unsafe { _mm256_loadu_ps(bias.as_ptr()) });
            }
            if g.residual.is_some() {
                // SAFETY: `res` holds 8 floats.
                s = _mm256_add_ps(s, unsafe { _mm256_loadu_ps(res.as_ptr()) });
            }
            let mut lane_out = [0.0f32; 8];
            // SAFETY: `lane_out` holds 8 floats; output floats `at..at + lanes` are columns of
            // this task's tile in batch row `b0 + b` (inside the `batch × n` output).
            unsafe {
                _mm256_storeu_ps(lane_out.as_mut_ptr(), activate(g.activation, s));
                std::ptr::copy_nonoverlapping(lane_out.as_ptr(), out.add(at), lanes);
            }
        }
    }
}
