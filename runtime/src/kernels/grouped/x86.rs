//! AVX-512 and AVX2 micro-kernels of the direct grouped/depthwise conv: `OB` output channels × `R`
//! output rows × one vector of consecutive output columns, borders and tails by masked loads.
//!
//! Every input vector is loaded once per (channel, tap, row) and reused by all `OB` channels; each
//! weight is broadcast once and reused by all `R` rows. Stride 2 loads two vectors and keeps the even
//! lanes (`vpermt2ps`). Masked-off lanes read zero and are never touched in memory, which is why the
//! row pointers may point just outside the input (`wrapping_*` arithmetic, never dereferenced there).

use std::arch::x86_64::*;

use super::{Band, lane_range};
use crate::kernels::Activation;

/// Dispatches `b` to a monomorphised AVX-512 tile; false if no tile fits (the caller then runs the
/// generic tier).
///
/// # Safety
/// The CPU must support AVX-512F; `b.output` must be valid for writes of the band (see `Band`)
/// with no concurrent access there.
pub(super) unsafe fn band_avx512(b: &Band) -> bool {
    macro_rules! go {
        ($k:literal, $s:literal, $ob:literal, $r:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                if b.out_w <= 8 {
                    band512_pairs::<$k, $s, $ob, $r>(b)
                } else {
                    band512::<$k, $s, $ob, $r>(b)
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

/// Runs `b` on [`depthwise256`] if it is a depthwise band the row kernel takes; false otherwise
/// (nothing written).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for [`band_avx512`].
pub(super) unsafe fn depthwise_avx2(b: &Band) -> bool {
    if b.cin_g != 1 || b.width != 1 {
        return false;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => depthwise256::<3, 1>(b),
            (3, 2) => depthwise256::<3, 2>(b),
            (5, 1) => depthwise256::<5, 1>(b),
            (5, 2) => depthwise256::<5, 2>(b),
            _ => false,
        }
    }
}

/// The AVX2 twin of [`band_avx512`], with 8-lane vectors and fewer registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for [`band_avx512`].
pub(super) unsafe fn band_avx2(b: &Band) -> bool {
    macro_rules! go {
        ($k:literal, $s:literal, $ob:literal, $r:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe { band256::<$k, $s, $ob, $r>(b) }
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

/// The largest kernel (5×5) has this many taps.
const MAX_TAPS: usize = 25;

/// Bit `l` set for the lanes `l < 16` whose column `start + l` lies in `0..width`.
#[inline(always)]
fn mask16(start: isize, width: usize) -> u16 {
    let r = lane_range(start, 1, width, 16);
    (((1u32 << r.end) - 1) & !((1u32 << r.start) - 1)) as u16
}

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

// Register tiles read best indexed by channel and row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
unsafe fn band512<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
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
                    v = match b.activation {
                        Activation::None => v,
                        Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), v),
                        Activation::Clip { min, max } => _mm512_min_ps(
                            _mm512_set1_ps(max),
                            _mm512_max_ps(_mm512_set1_ps(min), v),
                        ),
                    };
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

/// [`band512`] for planes at most 8 wide (ResNeXt's 7×7 stage): each vector holds two output rows,
/// lanes 0–7 the upper and 8–15 the lower, so 14 of 16 lanes work instead of 7. `R` counts such row
/// pairs.
// Register tiles read best indexed by channel and row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
unsafe fn band512_pairs<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
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
                v = match b.activation {
                    Activation::None => v,
                    Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), v),
                    Activation::Clip { min, max } => {
                        _mm512_min_ps(_mm512_set1_ps(max), _mm512_max_ps(_mm512_set1_ps(min), v))
                    }
                };
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

#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn band256<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
    const L: usize = 8;
    let plane = b.in_h * b.in_w;
    let out_plane = b.out_h * b.out_w;
    let input = b.input.as_ptr();
    let weights = b.weights.as_ptr();
    let even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
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
            let store = mask8(0, lanes);
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
                    if let Some(res) = b.residual {
                        // SAFETY: `at + lanes <= res.len()`; other lanes masked off.
                        v = _mm256_add_ps(v, unsafe {
                            _mm256_maskload_ps(res.as_ptr().add(at), store)
                        });
                    }
                    v = match b.activation {
                        Activation::None => v,
                        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
                        Activation::Clip { min, max } => _mm256_min_ps(
                            _mm256_set1_ps(max),
                            _mm256_max_ps(_mm256_set1_ps(min), v),
                        ),
                    };
                    // SAFETY: row `oy + r` is in `b.rows`, columns `ox0..ox0 + lanes` in the row.
                    unsafe { _mm256_maskstore_ps(b.output.add(at), store, v) };
                }
            }
            ox0 += L;
        }
        oy += R;
    }
}

/// Widest padded input row [`depthwise256`] handles (floats, stride included); wider planes go to
/// [`band256`].
const DW_ROW: usize = 1024;

/// Output vectors [`depthwise256`] computes at once: independent accumulators, so the K² FMAs of
/// one output vector do not wait on each other's latency.
const DW_VECS: usize = 4;

/// AVX2 depthwise conv (one channel, `b.cin_g == b.width == 1`), `K`×`K`, stride `S`, row by row.
///
/// The `K` input rows an output row reads are copied (each once) into zero-padded row buffers on
/// the stack, so the inner loop has no masks and no bounds logic: unaligned loads at each tap's offset
/// (stride 2: two loads, even lanes kept), `DW_VECS` output vectors at a time, then the epilogue
/// with a masked store only for the ragged end of the row. Rows of the padding are skipped. The
/// direct kernel of [`band256`] spent more time working out masks and offsets per 8-column tile,
/// for one channel's 9 taps, than computing (MobileNetV2's depthwise convs at 1–2 GFLOP/s).
/// Returns false (nothing written) when a padded row would not fit the buffers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// the channel's plane, with no concurrent access there.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn depthwise256<const K: usize, const S: usize>(b: &Band) -> bool {
    const L: usize = 8;
    let group = L * DW_VECS;
    // Row buffer columns the loads may touch: every output group's last vector, S·8 + K floats
    // past its start, beyond the row's padded end only into zeros.
    let cap = b.out_w.next_multiple_of(group) * S + K + L * S;
    if cap > DW_ROW || b.pad_left + b.in_w > cap || b.cin_g != 1 || b.width != 1 {
        return false;
    }
    let w: [f32; 25] = std::array::from_fn(|i| b.weights.get(i).copied().unwrap_or(0.0));
    let bias = _mm256_set1_ps(b.bias.map_or(0.0, |bias| bias[0]));
    // A ring of K padded input rows: input row `iy` lives in buffer `iy mod K` while output rows
    // read it (S <= K, so the rows one output row reads never share a buffer), and is copied in
    // once. Only the columns `pad_left..pad_left + in_w` are ever written, so the padding stays
    // the zeros it starts as: column `j` of a buffer is input column `j - pad_left`, or zero.
    // Uninitialised but for each buffer's first `cap` floats, zeroed here: zeroing all of
    // `K · DW_ROW` floats cost more than the conv itself on small planes (960 channels of 7×7).
    let mut store = std::mem::MaybeUninit::<[[f32; DW_ROW]; K]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    let rows: [&mut [f32]; K] = std::array::from_fn(|slot| {
        // SAFETY: buffer `slot` is `DW_ROW >= cap` floats of `store`, zeroed before the slice
        // is made; distinct slots do not overlap.
        unsafe {
            let row = base.add(slot * DW_ROW);
            std::ptr::write_bytes(row, 0, cap);
            std::slice::from_raw_parts_mut(row, cap)
        }
    });
    let mut held = [usize::MAX; K];
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for oy in b.rows.clone() {
        let mut live = [None; K];
        for ky in 0..K {
            let iy = (oy * b.stride[0] + ky) as isize - b.pad_top as isize;
            if iy < 0 || iy >= b.in_h as isize {
                continue;
            }
            let iy = iy as usize;
            let slot = iy % K;
            if held[slot] != iy {
                rows[slot][b.pad_left..b.pad_left + b.in_w]
                    .copy_from_slice(&b.input[iy * b.in_w..][..b.in_w]);
                held[slot] = iy;
            }
            live[ky] = Some(slot);
        }
        let out_row = oy * b.out_w;
        for ox0 in (0..b.out_w).step_by(group) {
            let mut acc = [_mm256_setzero_ps(); DW_VECS];
            for ky in 0..K {
                let Some(slot) = live[ky] else { continue };
                let row = rows[slot].as_ptr();
                for kx in 0..K {
                    let wv = _mm256_set1_ps(w[ky * K + kx]);
                    for v in 0..DW_VECS {
                        let at = (ox0 + v * L) * S + kx;
                        // SAFETY: `at + S·8 <= cap <= DW_ROW` (`ox0 + v·8 < out_w` rounded up
                        // to a group, `kx < K`), inside the row buffer.
                        let x = unsafe {
                            if S == 1 {
                                _mm256_loadu_ps(row.add(at))
                            } else {
                                let lo = _mm256_loadu_ps(row.add(at));
                                let hi = _mm256_loadu_ps(row.add(at + L));
                                // Even lanes of lo, hi in order: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4
                                // hi6], then the 64-bit quarters reordered 0, 2, 1, 3.
                                let even = _mm256_shuffle_ps::<0x88>(lo, hi);
                                _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(
                                    even,
                                )))
                            }
                        };
                        acc[v] = _mm256_fmadd_ps(wv, x, acc[v]);
                    }
                }
            }
            for v in 0..DW_VECS {
                let ox = ox0 + v * L;
                if ox >= b.out_w {
                    break;
                }
                let n = L.min(b.out_w - ox);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
                let at = out_row + ox;
                // The bias after the sum, as the reference adds it.
                let mut x = _mm256_add_ps(acc[v], bias);
                if let Some(res) = b.residual {
                    // SAFETY: columns `ox..ox + n` of row `oy` of the plane, inside `res`; the
                    // other lanes are masked off.
                    x = _mm256_add_ps(x, unsafe { _mm256_maskload_ps(res.as_ptr().add(at), mask) });
                }
                x = match b.activation {
                    Activation::None => x,
                    Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), x),
                    Activation::Clip { min, max } => {
                        _mm256_min_ps(_mm256_set1_ps(max), _mm256_max_ps(_mm256_set1_ps(min), x))
                    }
                };
                // SAFETY: row `oy` is in `b.rows`, columns `ox..ox + n` in the row; the caller
                // vouches for exclusive access there.
                unsafe {
                    if n == L {
                        _mm256_storeu_ps(b.output.add(at), x);
                    } else {
                        _mm256_maskstore_ps(b.output.add(at), mask, x);
                    }
                }
            }
        }
    }
    true
}
