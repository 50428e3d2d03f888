//! AVX-512 column tiles: `OB` output channels × `R` output rows × 16 consecutive output
//! columns, borders and tails by masked loads and stores; stride 2 loads two vectors and keeps the
//! even lanes (`vpermt2ps`). Planes at most 8 wide go to the row-pair tiles instead.

use std::arch::x86_64::*;

use super::avx512_row_pairs::row_pair_tiles16;
use super::{Band, MAX_TAPS, mask16, row_offsets};
use crate::kernels::gemm::x86_64::avx512::activate512_inline;

/// Dispatches `b` to a monomorphised AVX-512 tile; false if no tile fits (the caller then runs the
/// generic tier).
///
/// # Safety
/// The CPU must support AVX-512F; `b.output` must be valid for writes of the band (see `Band`)
/// with no concurrent access there.
pub(crate) unsafe fn tiles_avx512(b: &Band) -> bool {
    macro_rules! go {
        ($k:literal, $s:literal, $ob:literal, $r:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                if b.out_w <= 8 {
                    row_pair_tiles16::<$k, $s, $ob, $r>(b)
                } else {
                    tiles16::<$k, $s, $ob, $r>(b)
                }
            }
        };
    }
    match (b.kernel, b.stride[1], b.width) {
        (3, 1, 1) => go!(3, 1, 1, 8),
        (3, 1, 2) => go!(3, 1, 2, 8),
        (3, 1, 3) => go!(3, 1, 3, 4),
        (3, 1, 4) => go!(3, 1, 4, 4),
        (3, 1, 5) => go!(3, 1, 5, 2),
        (3, 1, 6) => go!(3, 1, 6, 2),
        (3, 1, 7) => go!(3, 1, 7, 2),
        (3, 1, 8) => go!(3, 1, 8, 2),
        (3, 2, 1) => go!(3, 2, 1, 8),
        (3, 2, 2) => go!(3, 2, 2, 8),
        (3, 2, 3) => go!(3, 2, 3, 4),
        (3, 2, 4) => go!(3, 2, 4, 4),
        (3, 2, 5) => go!(3, 2, 5, 2),
        (3, 2, 6) => go!(3, 2, 6, 2),
        (3, 2, 7) => go!(3, 2, 7, 2),
        (3, 2, 8) => go!(3, 2, 8, 2),
        (5, 1, 1) => go!(5, 1, 1, 8),
        (5, 2, 1) => go!(5, 2, 1, 8),
        _ => return false,
    }
    true
}

/// AVX-512 tiles of `OB` output channels × `R` output rows × 16 consecutive output columns,
/// borders and tails by masked loads and stores.
///
/// # Safety
/// The CPU must support AVX-512F; `OB == b.width`, `K == b.kernel`, `S == b.stride[1]`;
/// `b.output` must be valid for writes of the band's rows of its `OB` planes, with no
/// concurrent access there.
// Register tiles read best indexed by channel and row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
unsafe fn tiles16<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
    const L: usize = 16;
    let plane = b.in_h * b.in_w;
    let out_plane = b.out_h * b.out_w;
    let input = b.input.as_ptr();
    let weights = b.weights.as_ptr();
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut oy = b.rows.start;
    while oy < b.rows.end {
        let mut ox0 = 0;
        while ox0 < b.out_w {
            let lanes = L.min(b.out_w - ox0);
            let col0 = (ox0 * S) as isize - b.pad_left as isize;
            // Per tap and row: where the input vector starts and which lanes exist (0 for a row
            // in the padding), so the channel loop below carries no bounds logic.
            let (off, ok) = row_offsets::<K, R>(b, oy, col0);
            let mut at = [[0isize; R]; MAX_TAPS];
            let mut m_lo = [[0u16; R]; MAX_TAPS];
            let mut m_hi = [[0u16; R]; MAX_TAPS];
            for ky in 0..K {
                for kx in 0..K {
                    let col = col0 + kx as isize;
                    for r in 0..R {
                        if ok[r][ky] {
                            at[ky * K + kx][r] = off[r][ky] + kx as isize;
                            m_lo[ky * K + kx][r] = mask16(col, b.in_w);
                            m_hi[ky * K + kx][r] = mask16(col + L as isize, b.in_w);
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
                        let p = chan.wrapping_offset(at[t][r]);
                        // SAFETY: lanes set in the mask are columns `0..in_w` of an existing row of
                        // channel `ic` (see `mask16`, `row_offsets`), so inside `b.input`;
                        // masked-off lanes are not accessed.
                        v[r] = unsafe { _mm512_maskz_loadu_ps(m_lo[t][r], p) };
                        if S == 2 {
                            // SAFETY: as above, for the next 16 columns.
                            let hi =
                                unsafe { _mm512_maskz_loadu_ps(m_hi[t][r], p.wrapping_add(L)) };
                            v[r] = _mm512_permutex2var_ps(v[r], even, hi);
                        }
                    }
                    let tap = w_ic + t * b.wstride;
                    for o in 0..OB {
                        // SAFETY: `tap + o < cin_g·K·K·wstride = b.weights.len()` as o < OB = width.
                        let w = _mm512_set1_ps(unsafe { *weights.add(tap + o) });
                        for r in 0..R {
                            acc[o][r] = _mm512_fmadd_ps(w, v[r], acc[o][r]);
                        }
                    }
                }
            }
            let store = ((1u32 << lanes) - 1) as u16;
            for (o, acc) in acc.iter().enumerate() {
                let bias = b.bias.map(|bias| _mm512_set1_ps(bias[o]));
                for (r, &a) in acc.iter().enumerate() {
                    if oy + r >= b.rows.end {
                        continue;
                    }
                    let at = o * out_plane + (oy + r) * b.out_w + ox0;
                    let mut v = a;
                    if let Some(bias) = bias {
                        v = _mm512_add_ps(v, bias);
                    }
                    if let Some(res) = b.residual {
                        // SAFETY: `at + lanes <= width·out_plane = res.len()`; other lanes masked.
                        v = _mm512_add_ps(v, unsafe {
                            _mm512_maskz_loadu_ps(store, res.as_ptr().add(at))
                        });
                    }
                    v = activate512_inline!(b.activation, v);
                    // SAFETY: row `oy + r` is in `b.rows` and columns `ox0..ox0 + lanes` in the row;
                    // the caller vouches for exclusive access there.
                    unsafe { _mm512_mask_storeu_ps(b.output.add(at), store, v) };
                }
            }
            ox0 += L;
        }
        oy += R;
    }
}
