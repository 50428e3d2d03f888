//! AVX-512 depthwise conv read straight from the input plane: blocks of 4 output rows × 1–2
//! vectors of 16 output columns, every tap a masked load at its place in the input row.
//!
//! Masked-off lanes are neither read nor faulted on, so a load may start before the row (the
//! left padding) or run past it (the right padding): the masks, one per tap column and vector of
//! output columns, stand in for the zero-padded copy the plane kernel (`avx512_depthwise_plane`)
//! writes first. Without the copy, a band costs its loads and FMAs alone: no zeroing, no second
//! pass over the input, and no loads waiting on the stores that just wrote the copy (a load that
//! spans two earlier stores cannot take its data from the store queue), which is what small
//! planes paid most for.
//!
//! Each input row a block of `R` output rows reads is loaded once per tap column and feeds every
//! output row of the block that reads it (two at stride 1 and 3×3, for the middle rows). Column
//! stride 2 loads 32 consecutive floats and splits them into their even and odd columns by two
//! `vpermt2ps`: tap columns `2j` and `2j + 1` share the pair of loads from input column
//! `2·ox - pad_left + 2j`. Sums run over `(ky, kx)` in order for every output, as the
//! reference's. The loops over rows, vectors and taps are written out by `each!` with constant
//! indices, so the accumulator and input arrays live in registers.

use std::arch::x86_64::*;

use super::{Band, DW_MAX_TAPS, mask16};
use crate::kernels::gemm::x86_64::avx512::activate512_inline;
use crate::kernels::{ConvShape, grouped::Layout};

/// Lanes of a vector.
const L: usize = 16;

/// Output rows accumulated at once (independent FMA chains).
const ROWS: usize = 4;

/// Whether [`depthwise_direct_avx512`] takes depthwise conv `s`: 3×3, 5×5 or 7×7, the same stride
/// (1 or 2) along rows and columns, dilation 1, output rows wider than 8 (narrower ones would
/// leave most lanes idle: the AVX2 plane kernel and `avx512_depthwise_small` take those).
pub(crate) fn applies(s: &ConvShape) -> bool {
    let k = s.kernel[0];
    s.group == s.in_c
        && s.group == s.out_c
        && s.kernel[1] == k
        && matches!(k, 3 | 5 | 7)
        && s.stride[0] == s.stride[1]
        && matches!(s.stride[0], 1 | 2)
        && s.dilation == [1, 1]
        && s.out_w > 8
}

/// Runs `b` if it is an NCHW depthwise band of a shape [`applies`] accepts; false otherwise
/// (nothing written).
///
/// # Safety
/// The CPU must support AVX-512F; `b.output` must be valid for writes of the band's rows of its
/// plane, with no concurrent access there.
pub(crate) unsafe fn depthwise_direct_avx512(b: &Band) -> bool {
    if b.cin_g != 1
        || b.width != 1
        || b.layout != Layout::Nchw
        || b.stride[0] != b.stride[1]
        || b.out_w <= 8
    {
        return false;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => band::<3, 1>(b),
            (3, 2) => band::<3, 2>(b),
            (5, 1) => band::<5, 1>(b),
            (5, 2) => band::<5, 2>(b),
            (7, 1) => band::<7, 1>(b),
            (7, 2) => band::<7, 2>(b),
            _ => return false,
        }
    }
    true
}

/// Mask of the lanes `0..n` (`n <= 16`).
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// The band's rows, `ROWS` at a time and then one at a time, for a `K`×`K` kernel of stride `S`.
///
/// # Safety
/// As for [`depthwise_direct_avx512`]; `b` is a single-channel NCHW band with `b.kernel == K` and
/// both strides `S`.
#[target_feature(enable = "avx512f")]
unsafe fn band<const K: usize, const S: usize>(b: &Band) {
    let mut w = [0.0f32; DW_MAX_TAPS];
    for (t, wv) in w.iter_mut().enumerate().take(K * K) {
        *wv = b.weights[t * b.wstride];
    }
    let bias = _mm512_set1_ps(b.bias.map_or(0.0, |bias| bias[0]));
    let mut oy = b.rows.start;
    while oy < b.rows.end {
        let rows = if oy + ROWS <= b.rows.end { ROWS } else { 1 };
        let mut ox = 0;
        while ox < b.out_w {
            // SAFETY: rows `oy..oy + rows` lie in the band (forwarded contract); columns from
            // `ox < out_w`.
            unsafe {
                match (rows, ox + L < b.out_w) {
                    (ROWS, true) => block::<K, S, ROWS, 2>(b, oy, ox, &w, bias),
                    (ROWS, false) => block::<K, S, ROWS, 1>(b, oy, ox, &w, bias),
                    (_, true) => block::<K, S, 1, 2>(b, oy, ox, &w, bias),
                    (_, false) => block::<K, S, 1, 1>(b, oy, ox, &w, bias),
                }
            }
            ox += if ox + L < b.out_w { 2 * L } else { L };
        }
        oy += rows;
    }
}

/// Expands `$body` once for each literal, with `$v` a `usize` constant of that value: loops whose
/// every index is a constant, so that the accumulator and input arrays they index are split into
/// registers (with a loop, LLVM keeps an array it indexes at run time in memory, and the FMA
/// chains then run through stores and loads).
macro_rules! each {
    ($v:ident in [$($n:literal)*] $body:block) => {
        $({
            let $v: usize = $n;
            $body
        })*
    };
}

/// Output rows `oy..oy + R`, `C` vectors of 16 columns from `ox`, with the epilogue.
///
/// # Safety
/// As for [`band`], rows `oy..oy + R` lie in `b.rows`, `ox + (C - 1)·16 < out_w`, `R <= 4` and
/// `C <= 2`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn block<const K: usize, const S: usize, const R: usize, const C: usize>(
    b: &Band,
    oy: usize,
    ox: usize,
    w: &[f32; DW_MAX_TAPS],
    bias: __m512,
) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let input = b.input.as_ptr();
    // The input rows the block reads: `top + q` for `q < (R - 1)·S + K`.
    let top = (oy * S) as isize - b.pad_top as isize;
    // Input column of lane 0 of vector `c` for tap column 0.
    let col0 = |c: usize| ((ox + c * L) * S) as isize - b.pad_left as isize;
    // The masks of the loads of vector `c`: stride 1, one per tap column (from `col0 + kx`);
    // stride 2, the pairs of loads from `col0 + 2j` and `col0 + 2j + 16`. Vectors whose loads
    // all lie inside the row (most of a wide row's) take all lanes.
    let mut masks = [[[u16::MAX; 2]; 7]; 2];
    let reach = if S == 1 { K - 1 + L } else { 2 * L + K - 1 };
    each!(c in [0 1] {
        let c0 = col0(c);
        if c < C && (c0 < 0 || c0 as usize + reach > b.in_w) {
            each!(j in [0 1 2 3 4 5 6] {
                if j < if S == 1 { K } else { K.div_ceil(2) } {
                    let start = c0 + (S * j) as isize;
                    masks[c][j] = [mask16(start, b.in_w), mask16(start + L as isize, b.in_w)];
                }
            });
        }
    });
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    // Input row `top + q` for every `q`, the tap rows each output row takes from it known at
    // compile time.
    each!(q in [0 1 2 3 4 5 6 7 8 9 10 11 12] {
        let iy = top + q as isize;
        if q < (R - 1) * S + K && iy >= 0 && iy < b.in_h as isize {
            let mut x = [[_mm512_setzero_ps(); 2]; 7];
            each!(c in [0 1] {
                if c < C {
                    // Where lane 0 of tap column 0 reads; never dereferenced outside the row
                    // (masks).
                    let row = input.wrapping_offset(iy * b.in_w as isize + col0(c));
                    if S == 1 {
                        each!(kx in [0 1 2 3 4 5 6] {
                            if kx < K {
                                // SAFETY: the lanes of the mask read columns `col0 + kx + l`
                                // inside `0..in_w` of input row `iy < in_h` of the band's plane;
                                // the others are not accessed.
                                x[kx][c] = unsafe {
                                    _mm512_maskz_loadu_ps(masks[c][kx][0], row.wrapping_add(kx))
                                };
                            }
                        });
                    } else {
                        each!(j in [0 1 2 3] {
                            if j < K.div_ceil(2) {
                                let at = row.wrapping_add(2 * j);
                                // SAFETY: as above, for columns `col0 + 2j + l` and
                                // `col0 + 2j + 16 + l`.
                                let (lo, hi) = unsafe {
                                    (
                                        _mm512_maskz_loadu_ps(masks[c][j][0], at),
                                        _mm512_maskz_loadu_ps(masks[c][j][1], at.wrapping_add(L)),
                                    )
                                };
                                x[2 * j][c] = _mm512_permutex2var_ps(lo, even, hi);
                                if 2 * j + 1 < K {
                                    x[(2 * j + 1).min(6)][c] = _mm512_permutex2var_ps(lo, odd, hi);
                                }
                            }
                        });
                    }
                }
            });
            each!(r in [0 1 2 3] {
                // Output row `oy + r` reads this input row as its tap row `q - r·S`.
                if r < R && q >= r * S && q - r * S < K {
                    let ky = q - r * S;
                    each!(kx in [0 1 2 3 4 5 6] {
                        if kx < K {
                            let wv = _mm512_set1_ps(w[ky * K + kx]);
                            each!(c in [0 1] {
                                if c < C {
                                    acc[r][c] = _mm512_fmadd_ps(wv, x[kx][c], acc[r][c]);
                                }
                            });
                        }
                    });
                }
            });
        }
    });
    each!(c in [0 1] {
        if c < C {
            let x0 = ox + c * L;
            let m = first(L.min(b.out_w - x0));
            each!(r in [0 1 2 3] {
                if r < R {
                    let at = (oy + r) * b.out_w + x0;
                    // SAFETY: row `oy + r` is in `b.rows`, columns `x0..` under `m` in the row:
                    // ours to write; the residual is laid out alike.
                    unsafe {
                        // The bias after the sum, as the reference adds it.
                        let mut y = _mm512_add_ps(acc[r][c], bias);
                        if let Some(res) = b.residual {
                            y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res.as_ptr().add(at)));
                        }
                        y = activate512_inline!(b.activation, y);
                        _mm512_mask_storeu_ps(b.output.add(at), m, y);
                    }
                }
            });
        }
    });
}
