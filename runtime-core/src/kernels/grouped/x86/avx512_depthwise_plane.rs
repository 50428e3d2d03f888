//! AVX-512 depthwise conv over a zero-padded copy of a band's input rows, 16 output columns a
//! vector, the `K·K` weights broadcast once per band.
//!
//! As in the AVX2 plane kernel (`avx2_depthwise_plane`), the copy leaves the inner loop without
//! masks or bounds logic. Two things differ:
//! - Column stride 2 splits each padded row into its even and odd columns while copying it (two
//!   `vpermt2ps` per 32 input floats), so that every tap reads 16 consecutive floats of one phase:
//!   one load per tap instead of two loads and two shuffles.
//! - Four output rows are accumulated at once (independent FMA chains; `K·K` FMAs per vector in
//!   one chain wait on the FMA latency), and the epilogue stores with AVX-512 masks.
//!
//! Rows at most 8 wide are left to the AVX2 kernel: 16 lanes would compute as many columns
//! again for nothing.

use std::arch::x86_64::*;

use super::{Band, DW_MAX_TAPS};
use crate::kernels::ConvShape;
use crate::kernels::gemm::x86_64::avx512::activate512_inline;

/// Floats of the stack buffer the padded rows are copied into (24 KB, as the AVX2 kernel's).
const PLANE: usize = 6144;

/// Output rows accumulated at once.
const ROWS: usize = 4;

/// Lanes of a vector.
const L: usize = 16;

/// How the padded rows of a band of shape `s` are stored: `(pitch, phase)`. Row `p` starts at
/// `p · pitch`; at column stride 1 padded column `c` is at `c`, at stride 2 at `(c % 2)·phase + c/2`.
/// A row holds what every vector of output columns reads without masks: 16 columns from
/// `ox + kx` (stride 2: from `ox + kx/2` in a phase), `ox < out_w` a multiple of 16.
fn layout(out_w: usize, s: usize, k: usize) -> (usize, usize) {
    let ow = out_w.next_multiple_of(L);
    if s == 1 {
        (ow + k - 1, 0)
    } else {
        let phase = ow + (k - 1) / 2;
        (2 * phase, phase)
    }
}

/// The most output rows a band of depthwise conv `s` may have for [`depthwise_plane_avx512`] to
/// take it, or `None` if it is not a shape it runs.
pub(crate) fn depthwise_band_rows_avx512(s: &ConvShape) -> Option<usize> {
    let k = s.kernel[0];
    let depthwise = s.group == s.in_c && s.group == s.out_c;
    if !depthwise || !matches!(k, 3 | 5 | 7) || !matches!(s.stride[1], 1 | 2) || s.out_w <= 8 {
        return None;
    }
    let (pitch, _) = layout(s.out_w, s.stride[1], k);
    let rows_fit = PLANE / pitch;
    (rows_fit >= k).then(|| (rows_fit - k) / s.stride[0].max(1) + 1)
}

/// Runs `b` on [`plane`] if it is a depthwise band (one channel, 3×3, 5×5 or 7×7, column stride 1 or
/// 2, more than 8 output columns) whose padded rows fit its buffer; false otherwise (nothing
/// written).
///
/// # Safety
/// The CPU must support AVX-512F; `b.output` must be valid for writes of the band's rows of its
/// plane, with no concurrent access there.
pub(crate) unsafe fn depthwise_plane_avx512(b: &Band) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => plane::<3, 1>(b),
            (3, 2) => plane::<3, 2>(b),
            (5, 1) => plane::<5, 1>(b),
            (5, 2) => plane::<5, 2>(b),
            (7, 1) => plane::<7, 1>(b),
            (7, 2) => plane::<7, 2>(b),
            _ => false,
        }
    }
}

/// Mask of the lanes `0..n` (`n <= 16`).
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Copies padded rows `r0 .. r0 + rows` of the band's (single) input plane into `dst` in the
/// [`layout`] `(pitch, phase)`, zeros outside the input; padded columns past the row are left out.
///
/// Whole-vector stores where they stay inside the region they may write (the loads that follow
/// soon after can then take their data from the store queue, which masked stores do not feed).
///
/// # Safety
/// AVX-512F; `dst` must be writable for `rows · pitch + 16` floats.
#[target_feature(enable = "avx512f")]
unsafe fn copy_rows<const S: usize>(
    b: &Band,
    r0: usize,
    rows: usize,
    (pitch, phase): (usize, usize),
    dst: *mut f32,
) {
    let zero = _mm512_setzero_ps();
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for x in (0..rows * pitch).step_by(L) {
        // SAFETY: `x < rows · pitch`, so `x + 16 <= rows · pitch + 16` (the contract).
        unsafe { _mm512_storeu_ps(dst.add(x), zero) };
    }
    for p in 0..rows {
        let Some(iy) = (r0 + p).checked_sub(b.pad_top).filter(|&iy| iy < b.in_h) else {
            continue;
        };
        let row = dst.wrapping_add(p * pitch);
        let src = b.input[iy * b.in_w..][..b.in_w].as_ptr();
        if S == 1 {
            // Input column `ix` is padded column `pad_left + ix`, kept while below `pitch`.
            let len = b.in_w.min(pitch.saturating_sub(b.pad_left));
            let at = row.wrapping_add(b.pad_left);
            for x in (0..len).step_by(L) {
                // SAFETY: the masked lanes are input columns `x..len <= in_w` of row `iy`; the
                // store ends within 16 floats past padded column `pad_left + x < pitch` of row
                // `p`, inside `dst`, and its lanes past `len` are zeros: padding of this row or
                // the left padding of the next (whose input is copied after this one).
                unsafe {
                    let v = _mm512_maskz_loadu_ps(first(L.min(len - x)), src.add(x));
                    _mm512_storeu_ps(at.add(x), v);
                }
            }
        } else {
            // Input columns `ix0 + 2i` land in phase `par` at `(pad_left + ix0 - par)/2 + i`,
            // columns `ix0 + 2i + 1` in the other phase at `(pad_left + ix0 + par)/2 + i`.
            let par = b.pad_left % 2;
            for ix0 in (0..b.in_w).step_by(2 * L) {
                let n = (b.in_w - ix0).min(2 * L);
                // SAFETY: the masked lanes are input columns `ix0..ix0 + n <= in_w` of row `iy`.
                let (lo, hi) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(first(n.min(L)), src.add(ix0)),
                        _mm512_maskz_loadu_ps(first(n.saturating_sub(L)), src.add(ix0 + L)),
                    )
                };
                let halves = [
                    (_mm512_permutex2var_ps(lo, even, hi), par),
                    (_mm512_permutex2var_ps(lo, odd, hi), 1 - par),
                ];
                for (i, (v, ph)) in halves.into_iter().enumerate() {
                    let start = (b.pad_left + ix0 + i - ph) / 2;
                    let at = row.wrapping_add(ph * phase + start);
                    // Lanes past the input are zeros (masked loads), and the next chunk stores
                    // 16 floats on: a whole vector is safe while it ends inside the phase.
                    // SAFETY: lanes below `phase - start` lie in phase `ph` of row `p`.
                    unsafe {
                        if start + L <= phase {
                            _mm512_storeu_ps(at, v);
                        } else {
                            _mm512_mask_storeu_ps(at, first(phase.saturating_sub(start)), v);
                        }
                    }
                }
            }
        }
    }
}

/// AVX-512 depthwise conv of one channel (`cin_g == width == 1`), `K`×`K`, column stride `S`
/// (rows: any), over a zero-padded copy of the input rows the band reads (see the module doc).
/// Returns false (nothing written) when the band is not depthwise, at most 8 columns wide, or its
/// rows do not fit [`PLANE`].
///
/// # Safety
/// The CPU must support AVX-512F; `b.output` must be valid for writes of the band's rows of its
/// plane, with no concurrent access there.
#[target_feature(enable = "avx512f")]
unsafe fn plane<const K: usize, const S: usize>(b: &Band) -> bool {
    if b.cin_g != 1 || b.width != 1 || b.rows.is_empty() || b.out_w <= 8 {
        return false;
    }
    let sy = b.stride[0];
    let (pitch, phase) = layout(b.out_w, S, K);
    let r0 = b.rows.start * sy;
    let r1 = (b.rows.end - 1) * sy + K;
    if pitch * (r1 - r0) > PLANE {
        return false;
    }
    let mut store = std::mem::MaybeUninit::<[f32; PLANE + L]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    // SAFETY: `pitch · (r1 - r0) + 16 <= PLANE + 16` floats of `store`, all written (zeroed
    // first) before they are read.
    unsafe { copy_rows::<S>(b, r0, r1 - r0, (pitch, phase), base) };
    let src = base.cast_const();
    let mut w = [_mm512_setzero_ps(); DW_MAX_TAPS];
    for (t, wv) in w.iter_mut().enumerate().take(K * K) {
        *wv = _mm512_set1_ps(b.weights[t * b.wstride]);
    }
    // Where tap column `kx` starts in a padded row, for output column 0.
    let mut col = [0usize; 7];
    for (kx, c) in col.iter_mut().enumerate().take(K) {
        *c = if S == 1 {
            kx
        } else {
            (kx % 2) * phase + kx / 2
        };
    }
    let bias = _mm512_set1_ps(b.bias.map_or(0.0, |bias| bias[0]));
    let out_w = b.out_w;
    // The padded row output row `oy` starts its taps at.
    let top = |oy: usize| (oy * sy - r0) * pitch;
    let mut oy = b.rows.start;
    while oy < b.rows.end {
        let rows = ROWS.min(b.rows.end - oy);
        // Rows past the band's end repeat its first row (computed, never stored).
        let mut tops = [top(oy); ROWS];
        for (r, t) in tops.iter_mut().enumerate().take(rows) {
            *t = top(oy + r);
        }
        for ox in (0..out_w).step_by(L) {
            let mut acc = [_mm512_setzero_ps(); ROWS];
            for ky in 0..K {
                for kx in 0..K {
                    let off = ky * pitch + col[kx] + ox;
                    for (a, &t) in acc.iter_mut().zip(&tops) {
                        // SAFETY: row `top + ky` lies in the copied rows, and the 16 floats from
                        // column `col[kx] + ox` end within its `pitch` (see `layout`).
                        let x = unsafe { _mm512_loadu_ps(src.add(t + off)) };
                        *a = _mm512_fmadd_ps(w[ky * K + kx], x, *a);
                    }
                }
            }
            let m = first(L.min(out_w - ox));
            for (r, &a) in acc.iter().enumerate().take(rows) {
                let at = (oy + r) * out_w + ox;
                // SAFETY: row `oy + r` is in `b.rows`, columns `ox..` under `m` in the row: ours
                // to write; the residual is laid out alike.
                unsafe {
                    // The bias after the sum, as the reference adds it.
                    let mut y = _mm512_add_ps(a, bias);
                    if let Some(res) = b.residual {
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res.as_ptr().add(at)));
                    }
                    y = activate512_inline!(b.activation, y);
                    _mm512_mask_storeu_ps(b.output.add(at), m, y);
                }
            }
        }
        oy += rows;
    }
    true
}
