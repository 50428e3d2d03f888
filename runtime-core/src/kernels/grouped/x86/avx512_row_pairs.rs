//! AVX-512 tiles for planes at most 8 wide (ResNeXt's 7×7 stage): each 16-lane vector holds two
//! output rows.

use std::arch::x86_64::*;

use super::{Band, MAX_TAPS, mask16};
use crate::kernels::gemm::x86_64::avx512::activate512_inline;

/// `tiles16` for planes at most 8 wide (ResNeXt's 7×7 stage): each vector holds two output rows,
/// lanes 0–7 the upper and 8–15 the lower, so 14 of 16 lanes work instead of 7. `R` counts such row
/// pairs.
///
/// # Safety
/// As for `tiles16`; also `b.out_w <= 8`.
// Register tiles read best indexed by channel and row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn row_pair_tiles16<
    const K: usize,
    const S: usize,
    const OB: usize,
    const R: usize,
>(
    b: &Band,
) {
    let plane = b.in_h * b.in_w;
    let out_plane = b.out_h * b.out_w;
    let input = b.input.as_ptr();
    let weights = b.weights.as_ptr();
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let row_ok = |y: usize, ky: usize| -> Option<isize> {
        let iy = (y * b.stride[0] + ky) as isize - b.pad_top as isize;
        (y < b.rows.end && iy >= 0 && iy < b.in_h as isize).then_some(iy * b.in_w as isize)
    };
    let mut oy = b.rows.start;
    while oy < b.rows.end {
        // Per tap and pair: the upper row's vector start and lanes, and the lower row's. With
        // stride 1 the lower row is loaded into lanes 8–15 (its start shifted back by 8); with
        // stride 2 each row fills a whole vector whose even lanes `vpermt2ps` keeps.
        let mut at = [[[0isize; 2]; R]; MAX_TAPS];
        let mut m = [[[0u16; 2]; R]; MAX_TAPS];
        for ky in 0..K {
            for kx in 0..K {
                let col = kx as isize - b.pad_left as isize;
                let cols = mask16(col, b.in_w);
                let t = ky * K + kx;
                for r in 0..R {
                    let y = oy + 2 * r;
                    if let Some(row) = row_ok(y, ky) {
                        at[t][r][0] = row + col;
                        m[t][r][0] = if S == 1 { cols & 0xFF } else { cols };
                    }
                    if let Some(row) = row_ok(y + 1, ky) {
                        at[t][r][1] = row + col - if S == 1 { 8 } else { 0 };
                        m[t][r][1] = if S == 1 { (cols & 0xFF) << 8 } else { cols };
                    }
                }
            }
        }
        let mut acc = [[_mm512_setzero_ps(); R]; OB];
        for ic in 0..b.cin_g {
            let chan = input.wrapping_add(ic * plane);
            let w_ic = ic * K * K * b.wstride;
            for t in 0..K * K {
                let mut v = [_mm512_setzero_ps(); R];
                for r in 0..R {
                    let (p0, p1) = (
                        chan.wrapping_offset(at[t][r][0]),
                        chan.wrapping_offset(at[t][r][1]),
                    );
                    // SAFETY: lanes set in the masks are columns `0..in_w` of existing rows of
                    // channel `ic`, inside `b.input`; masked-off lanes are not accessed.
                    unsafe {
                        let upper = _mm512_maskz_loadu_ps(m[t][r][0], p0);
                        v[r] = if S == 1 {
                            _mm512_mask_loadu_ps(upper, m[t][r][1], p1)
                        } else {
                            let lower = _mm512_maskz_loadu_ps(m[t][r][1], p1);
                            _mm512_permutex2var_ps(upper, even, lower)
                        };
                    }
                }
                let tap = w_ic + t * b.wstride;
                for o in 0..OB {
                    // SAFETY: `tap + o < b.weights.len()` as o < OB = width.
                    let w = _mm512_set1_ps(unsafe { *weights.add(tap + o) });
                    for r in 0..R {
                        acc[o][r] = _mm512_fmadd_ps(w, v[r], acc[o][r]);
                    }
                }
            }
        }
        let row_lanes = ((1u32 << b.out_w) - 1) as u16;
        for (o, acc) in acc.iter().enumerate() {
            let bias = b.bias.map(|bias| _mm512_set1_ps(bias[o]));
            for (r, &a) in acc.iter().enumerate() {
                let y = oy + 2 * r;
                if y >= b.rows.end {
                    continue;
                }
                let upper = o * out_plane + y * b.out_w;
                // The lower row's lanes 8.. land at its columns 0..: shift its base back by 8.
                let lower = (upper + b.out_w) as isize - 8;
                let (m0, m1) = (
                    row_lanes,
                    if y + 1 < b.rows.end {
                        row_lanes << 8
                    } else {
                        0
                    },
                );
                let mut v = a;
                if let Some(bias) = bias {
                    v = _mm512_add_ps(v, bias);
                }
                if let Some(res) = b.residual {
                    let res = res.as_ptr();
                    // SAFETY: the set lanes are columns `0..out_w` of rows `y`, `y + 1` of plane
                    // `o`, inside `res` (`width` planes); masked-off lanes are not accessed.
                    let rv = unsafe {
                        let rv = _mm512_maskz_loadu_ps(m0, res.add(upper));
                        _mm512_mask_loadu_ps(rv, m1, res.wrapping_offset(lower))
                    };
                    v = _mm512_add_ps(v, rv);
                }
                v = activate512_inline!(b.activation, v);
                // SAFETY: rows `y` and (if set) `y + 1` are in `b.rows`, columns `0..out_w`; the
                // caller vouches for exclusive access there.
                unsafe {
                    _mm512_mask_storeu_ps(b.output.add(upper), m0, v);
                    _mm512_mask_storeu_ps(b.output.wrapping_offset(lower), m1, v);
                }
            }
        }
        oy += 2 * R;
    }
}
