//! The x86 micro-kernels of the direct grouped/depthwise conv, one file per kernel and ISA, and
//! the pieces they share: the zero-padded row copy, the AVX2 epilogue store, tile row offsets.
//!
//! The column-tile kernels hold `OB` output channels × `R` output rows × one vector of consecutive
//! output columns: every input vector is loaded once per (channel, tap, row) and reused by all `OB`
//! channels; each weight is broadcast once and reused by all `R` rows. Masked-off lanes read zero
//! and are never touched in memory, which is why row pointers may point just outside the input
//! (`wrapping_*` arithmetic, never dereferenced there).

mod avx2_depthwise_plane;
mod avx2_grouped3x3;
pub(super) mod avx2_out_channels;
mod avx2_rows;
mod avx2_tiles;
pub(super) mod avx512_depthwise_direct;
mod avx512_depthwise_plane;
pub(super) mod avx512_depthwise_small;
mod avx512_row_pairs;
mod avx512_tiles;

use std::arch::x86_64::*;

pub(super) use avx2_depthwise_plane::{depthwise_band_rows, depthwise_plane_avx2};
pub(super) use avx2_grouped3x3::grouped3x3_avx2;
pub(super) use avx2_out_channels::out_channels_avx2;
pub(super) use avx2_rows::padded_rows_avx2;
pub(super) use avx2_tiles::tiles_avx2;
pub(super) use avx512_depthwise_direct::depthwise_direct_avx512;
pub(super) use avx512_depthwise_plane::{depthwise_band_rows_avx512, depthwise_plane_avx512};
pub(super) use avx512_tiles::tiles_avx512;

use super::{Band, lane_range, mask16};
use crate::kernels::gemm::x86_64::avx2::activate;

/// Copies the input rows that padded rows `y0 .. y0 + rows` stand for, of the band's first
/// `channels` input planes, into `dst` zero-padded: padded row `p` of channel `c` starts at
/// `dst[(c·rows + p - y0)·pw]` and is input row `p - pad_top` (zeros outside the input); its
/// column `px` is input column `px - pad_left` (zeros outside the input; input columns at `pw`
/// and beyond are left out). Shared by the kernels that read a padded copy (`depthwise_plane`,
/// `grouped3x3`, `avx2_out_channels`).
///
/// # Safety
/// AVX2; `dst` must be writable for `channels · rows · pw + 8` floats: a row's last vector may
/// run up to 8 floats on, storing zeros (padding, or the start of a row copied after it).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pad_rows(
    b: &Band,
    channels: usize,
    y0: usize,
    rows: usize,
    pw: usize,
    dst: *mut f32,
) {
    const L: usize = 8;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let in_plane = b.in_h * b.in_w;
    // SAFETY: inside `dst` (the contract).
    unsafe { std::ptr::write_bytes(dst, 0, channels * rows * pw) };
    let lo = b.pad_left.min(pw);
    let len = (b.pad_left + b.in_w).min(pw) - lo;
    for c in 0..channels {
        for p in y0..y0 + rows {
            let Some(iy) = p.checked_sub(b.pad_top).filter(|&iy| iy < b.in_h) else {
                continue;
            };
            let from = &b.input[c * in_plane + iy * b.in_w..][..len];
            let at = (c * rows + p - y0) * pw + lo;
            for x in (0..len).step_by(L) {
                let n = (len - x).min(L);
                let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
                // SAFETY: the `n` lanes of `m` lie in the input row; the vector lands within
                // `at + len + 8 <= channels · rows · pw + 8` floats of `dst`, its lanes past `n`
                // zeros (the contract).
                unsafe {
                    let v = _mm256_maskload_ps(from.as_ptr().add(x), m);
                    _mm256_storeu_ps(dst.add(at + x), v);
                }
            }
        }
    }
}

/// The largest kernel of the tile kernels (5×5) has this many taps.
const MAX_TAPS: usize = 25;

/// The largest kernel of the depthwise plane kernels (7×7) has this many taps.
const DW_MAX_TAPS: usize = 49;

/// Where the input rows of a tile start and whether they exist: `[r][ky]`.
#[inline(always)]
fn row_offsets<const K: usize, const R: usize>(
    b: &Band,
    oy: usize,
    col0: isize,
) -> ([[isize; K]; R], [[bool; K]; R]) {
    let mut off = [[0isize; K]; R];
    let mut ok = [[false; K]; R];
    for r in 0..R {
        for ky in 0..K {
            let iy = ((oy + r) * b.stride[0] + ky) as isize - b.pad_top as isize;
            if oy + r < b.rows.end && iy >= 0 && iy < b.in_h as isize {
                off[r][ky] = iy * b.in_w as isize + col0;
                ok[r][ky] = true;
            }
        }
    }
    (off, ok)
}

/// The rest of the epilogue for one output vector of the AVX2 row and plane kernels: adds the
/// residual, applies the activation and stores the first `n` (1..=8) lanes of `y` (the sums plus
/// the bias) at `b.output + at`; `lanes` is `0, 1, …, 7`.
///
/// # Safety
/// AVX2; `at..at + n` must lie inside the band's output planes, written by this call alone, and
/// inside `b.residual` when there is one.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn finish8(b: &Band, mut y: __m256, at: usize, n: usize, lanes: __m256i) {
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
    if let Some(res) = b.residual {
        // SAFETY: `at..at + n` lies inside `res` (the contract); other lanes are masked off.
        y = _mm256_add_ps(y, unsafe { _mm256_maskload_ps(res.as_ptr().add(at), mask) });
    }
    y = activate(b.activation, y);
    // SAFETY: `at..at + n` is ours to write (the contract); other lanes are masked off.
    unsafe {
        if n == 8 {
            _mm256_storeu_ps(b.output.add(at), y);
        } else {
            _mm256_maskstore_ps(b.output.add(at), mask, y);
        }
    }
}

/// Floats a padded row of the depthwise plane and grouped 3×3 kernels' buffers holds: output column `ox` reads padded columns
/// `ox·s .. ox·s + k`; the last vector starts below `out_w` rounded up to 8 (`ow8`) and its loads
/// (two of 8 at stride 2) end before `ow8·s + k`; and the row holds the left padding and the
/// input row.
fn plane_width(out_w: usize, s: usize, k: usize, pad_left: usize, in_w: usize) -> usize {
    (out_w.next_multiple_of(8) * s + k).max(pad_left + in_w)
}
