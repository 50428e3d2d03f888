//! AVX2 column tiles: `OB` output channels × `R` output rows × 8 consecutive output columns,
//! borders by masked loads; the fallback of the AVX2 tier for every band the other kernels decline.

use std::arch::x86_64::*;

use super::{Band, finish8, lane_range, row_offsets};
use crate::kernels::prefetch_piece;

/// The AVX2 twin of `tiles_avx512`, with 8-lane vectors and fewer registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for `tiles_avx512`.
pub(crate) unsafe fn tiles_avx2(b: &Band) -> bool {
    macro_rules! go {
        ($k:literal, $s:literal, $ob:literal, $r:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe { tiles8::<$k, $s, $ob, $r>(b) }
        };
    }
    match (b.kernel, b.stride[1], b.width) {
        (3, 1, 1) => go!(3, 1, 1, 4),
        (3, 1, 2) => go!(3, 1, 2, 4),
        (3, 1, 3) => go!(3, 1, 3, 2),
        (3, 1, 4) => go!(3, 1, 4, 2),
        (3, 1, 5) => go!(3, 1, 5, 1),
        (3, 1, 6) => go!(3, 1, 6, 1),
        (3, 1, 7) => go!(3, 1, 7, 1),
        (3, 1, 8) => go!(3, 1, 8, 1),
        (3, 2, 1) => go!(3, 2, 1, 4),
        (3, 2, 2) => go!(3, 2, 2, 4),
        (3, 2, 3) => go!(3, 2, 3, 2),
        (3, 2, 4) => go!(3, 2, 4, 2),
        (3, 2, 5) => go!(3, 2, 5, 1),
        (3, 2, 6) => go!(3, 2, 6, 1),
        (3, 2, 7) => go!(3, 2, 7, 1),
        (3, 2, 8) => go!(3, 2, 8, 1),
        (5, 1, 1) => go!(5, 1, 1, 4),
        (5, 2, 1) => go!(5, 2, 1, 4),
        _ => return false,
    }
    true
}

/// An AVX2 lane mask for the lanes `l < 8` whose column `start + l` lies in `0..width`.
#[inline]
#[target_feature(enable = "avx2")]
fn mask8(start: isize, width: usize) -> __m256i {
    let r = lane_range(start, 1, width, 8);
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let below_end = _mm256_cmpgt_epi32(_mm256_set1_epi32(r.end as i32), iota);
    let from_start = _mm256_cmpgt_epi32(iota, _mm256_set1_epi32(r.start as i32 - 1));
    _mm256_and_si256(below_end, from_start)
}

/// The AVX2 twin of `tiles16`: tiles of `OB` output channels × `R` output rows × 8 consecutive
/// output columns, borders by masked loads, tails by masked stores.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `OB == b.width`, `K == b.kernel`, `S == b.stride[1]`;
/// `b.output` must be valid for writes of the band's rows of its `OB` planes, with no concurrent
/// access there.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles8<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
    const L: usize = 8;
    let plane = b.in_h * b.in_w;
    let out_plane = b.out_h * b.out_w;
    let input = b.input.as_ptr();
    let weights = b.weights.as_ptr();
    let even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (mut tile, tiles) = (0, b.rows.len().div_ceil(R) * b.out_w.div_ceil(L));
    let mut oy = b.rows.start;
    while oy < b.rows.end {
        let mut ox0 = 0;
        while ox0 < b.out_w {
            let lanes = L.min(b.out_w - ox0);
            let col0 = (ox0 * S) as isize - b.pad_left as isize;
            let mut m_lo = [_mm256_setzero_si256(); K];
            let mut m_hi = [_mm256_setzero_si256(); K];
            for kx in 0..K {
                m_lo[kx] = mask8(col0 + kx as isize, b.in_w);
                if S == 2 {
                    m_hi[kx] = mask8(col0 + kx as isize + L as isize, b.in_w);
                }
            }
            let (off, ok) = row_offsets::<K, R>(b, oy, col0);
            for next in b.next {
                prefetch_piece(next, tile, tiles);
            }
            tile += 1;
            // This tile's output rows, which are in no cache in a model run either: their
            // lines arrive while the tile computes instead of stalling its stores. A prefetch
            // never faults (rows past the band's end included). ResNeXt-50, 6 alternated runs:
            // grouped time over 1×1-conv time 0.127 → 0.119 (medians; the ratio is steadier
            // than either time on a noisy machine).
            for o in 0..OB {
                for r in 0..R {
                    let at = o * out_plane + (oy + r) * b.out_w + ox0;
                    _mm_prefetch::<_MM_HINT_T0>(b.output.wrapping_add(at) as *const i8);
                }
            }
            let mut acc = [[_mm256_setzero_ps(); R]; OB];
            for ic in 0..b.cin_g {
                let chan = input.wrapping_add(ic * plane);
                for ky in 0..K {
                    for kx in 0..K {
                        let mut v = [_mm256_setzero_ps(); R];
                        for r in 0..R {
                            if !ok[r][ky] {
                                continue;
                            }
                            let p = chan.wrapping_offset(off[r][ky] + kx as isize);
                            // SAFETY: lanes set in the mask are columns `0..in_w` of an existing
                            // row of channel `ic`, inside `b.input`; masked-off lanes are not read.
                            v[r] = unsafe { _mm256_maskload_ps(p, m_lo[kx]) };
                            if S == 2 {
                                // SAFETY: as above, for the next 8 columns.
                                let hi = unsafe { _mm256_maskload_ps(p.wrapping_add(L), m_hi[kx]) };
                                v[r] = _mm256_blend_ps::<0xF0>(
                                    _mm256_permutevar8x32_ps(v[r], even),
                                    _mm256_permutevar8x32_ps(hi, even),
                                );
                            }
                        }
                        let tap = ((ic * K + ky) * K + kx) * b.wstride;
                        for o in 0..OB {
                            // SAFETY: `tap + o < b.weights.len()` as o < OB = width.
                            let w = _mm256_set1_ps(unsafe { *weights.add(tap + o) });
                            for r in 0..R {
                                acc[o][r] = _mm256_fmadd_ps(w, v[r], acc[o][r]);
                            }
                        }
                    }
                }
            }
            // Whole vectors are stored unmasked (`finish8`; `vmaskmovps` stores are slow on AMD's
            // cores): 14×14 maps with 16-channel groups 0.95–0.98× the time of masking every
            // store (in-process, alternating call by call on cold copies, ~1000 calls each).
            for (o, acc) in acc.iter().enumerate() {
                let bias = b.bias.map(|bias| _mm256_set1_ps(bias[o]));
                for (r, &a) in acc.iter().enumerate() {
                    if oy + r >= b.rows.end {
                        continue;
                    }
                    let at = o * out_plane + (oy + r) * b.out_w + ox0;
                    let mut v = a;
                    if let Some(bias) = bias {
                        v = _mm256_add_ps(v, bias);
                    }
                    // SAFETY: row `oy + r` is in `b.rows`, columns `ox0..ox0 + lanes` in the row,
                    // inside the block's output (and residual) planes, written by this call alone.
                    unsafe { finish8(b, v, at, lanes, iota) };
                }
            }
            ox0 += L;
        }
        oy += R;
    }
}
