//! AVX2 grouped 3×3 conv over maps narrower than a vector (ResNeXt-50's stage 4: 7×7 outputs,
//! 32 channels per group), vectorised over output channels instead of output columns.
//!
//! The column-vector kernels ([`super::x86`]) fill at most 7 of 8 lanes on such a map and work
//! out masks and offsets for every short row (at stride 2 also two loads and a shuffle per
//! vector); here a vector holds 8 output channels of one output pixel. A tile is one output row
//! (stride 1) or two (stride 2) of one block of 8 output channels, every pixel an accumulator. At
//! stride 1 each input is broadcast once and feeds the up to three taps that read it (three
//! weight vectors per kernel row in registers); at stride 2, each (input channel, tap) is one
//! weight vector and one broadcast per pixel. The input is read from a zero-padded copy of the
//! group's rows, made once for all of the group's blocks, so there are no masks or bounds inside.
//! Sums leave the registers through an 8 × 8 transpose into rows of the output planes, where
//! [`super::x86::finish8`] adds the residual, applies the activation and stores.
//!
//! Measured in-process against the column kernels (alternated call by call on cold copies,
//! medians of ~5000 calls): ResNeXt-50's 1024-channel 7×7 conv 0.85–0.86× the time at 1 and 2
//! threads (fastest calls 0.97×), its stride-2 one (14×14 → 7×7) 0.60–0.76×; on 14-wide maps it
//! measured 1.05–1.1× (stride 1, 16 channels per group) and 1.1× (stride 2), so those stay on
//! the column kernels.

use std::arch::x86_64::*;

use super::x86::finish8;
use super::{Band, OC_BLOCK};
use crate::kernels::ConvShape;

/// Floats of stack the zero-padded copy of a group's input rows takes (48 KB): every input channel
/// of the group, the rows a chunk of output rows reads, the padded columns a row reads.
const PAD: usize = 12 * 1024;

/// The widest output rows it runs: narrower than one 8-lane vector.
const MAX_W: usize = 7;

/// The most output pixels of one tile (two rows at stride 2): 14 accumulators, a weight vector
/// and a broadcast use all 16 ymm registers.
const TILE: usize = 2 * MAX_W;

/// Whether [`pixels3x3`] runs `s` on the AVX2 tier: a grouped 3×3 conv with whole blocks of 8
/// output channels per group and output rows narrower than a vector.
pub(super) fn applies(s: &ConvShape) -> bool {
    let cout_g = s.out_c / s.group;
    s.group > 1
        && s.in_c / s.group > 1
        && cout_g.is_multiple_of(OC_BLOCK)
        && s.kernel == [3, 3]
        && s.dilation == [1, 1]
        && matches!(s.stride[1], 1 | 2)
        && s.out_w <= MAX_W
}

/// Runs all of a group's blocks of output channels over the band's rows. `b` describes the whole
/// group: `b.width` (a multiple of [`OC_BLOCK`]) output planes from `b.output`, and `b.weights`
/// the group's `b.width / 8` packed blocks one after the other (`b.wstride == 8`). Returns false
/// (nothing written) if the band is not one it runs (see [`applies`]) or even one output row's
/// padded input rows do not fit [`PAD`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// its `b.width` planes, with no concurrent access there; `b.residual`, if any, holds those planes.
pub(super) unsafe fn pixels_avx2(b: &Band) -> bool {
    if b.kernel != 3
        || b.wstride != OC_BLOCK
        || !b.width.is_multiple_of(OC_BLOCK)
        || b.out_w > MAX_W
        || b.weights.len() != b.width * b.cin_g * 9
    {
        return false;
    }
    // SAFETY: forwarded from the caller; the checks above are the kernel's shape conditions.
    unsafe {
        match b.stride[1] {
            1 => pixels3x3::<1>(b),
            2 => pixels3x3::<2>(b),
            _ => false,
        }
    }
}

/// [`pixels_avx2`] at column stride `S` (the row stride is `b.stride[0]`, any).
///
/// # Safety
/// As for [`pixels_avx2`], whose checks have passed.
#[target_feature(enable = "avx2,fma")]
unsafe fn pixels3x3<const S: usize>(b: &Band) -> bool {
    if b.rows.is_empty() {
        return true;
    }
    let sy = b.stride[0];
    // Padded columns: output column `ox` reads padded columns `ox·S .. ox·S + 3`; padded column
    // `px` is input column `px - pad_left`.
    let pw = (b.out_w - 1) * S + 3;
    // Padded rows of a chunk of `n` output rows.
    let rows_for = |n: usize| (n - 1) * sy + 3;
    let fit = |n: usize| b.cin_g * rows_for(n) * pw <= PAD;
    if !fit(1) {
        return false;
    }
    let mut chunk = b.rows.len();
    while !fit(chunk) {
        chunk = chunk.div_ceil(2);
    }
    let (in_plane, out_plane) = (b.in_h * b.in_w, b.out_h * b.out_w);
    let blocks = b.width / OC_BLOCK;
    let block_len = b.cin_g * 9 * OC_BLOCK;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut store = std::mem::MaybeUninit::<[f32; PAD]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    // Output rows per tile: one at stride 1 (its three weight vectors per kernel row take
    // registers), two at stride 2.
    let tile_rows = if S == 1 { 1 } else { 2 };
    // Pixels past a tile's end up to the band's end are written by later tiles of this call, so a
    // tile's last vector of 8 may store whole instead of masked (`vmaskmovps` stores are slow on
    // AMD's cores).
    let band_end = b.rows.end * b.out_w;
    let mut acc = [_mm256_setzero_ps(); TILE];
    let mut oy0 = b.rows.start;
    while oy0 < b.rows.end {
        let oy1 = (oy0 + chunk).min(b.rows.end);
        let ph = rows_for(oy1 - oy0);
        let plane = ph * pw;
        // SAFETY: `fit(oy1 - oy0)`: `cin_g · plane <= PAD` floats of `store`.
        unsafe { pad_rows(b, base, oy0 * sy, ph, pw, in_plane) };
        for oy in (oy0..oy1).step_by(tile_rows) {
            let (r, v) = (tile_rows.min(oy1 - oy), b.out_w);
            // The tile's first input: padded row `(oy - oy0)·sy`, column 0.
            let x = base.wrapping_add((oy - oy0) * sy * pw);
            for blk in 0..blocks {
                let at = Taps {
                    x,
                    pw,
                    sy,
                    plane,
                    w: b.weights[blk * block_len..][..block_len].as_ptr(),
                    cin_g: b.cin_g,
                };
                // SAFETY: the tile's pixels read padded rows up to `(oy1 - 1 - oy0)·sy + 2 < ph`
                // and columns up to `(v - 1)·S + 2 < pw` of `cin_g` channels, all written by
                // `pad_rows`; `at.w` holds the block's `cin_g · 72` weights.
                unsafe { tile_dispatch::<S>(&at, r, v, &mut acc) };
                // SAFETY: pixels `oy·out_w ..` (`r·v` of them) are `r` whole rows of the output
                // planes in the band's rows; planes `blk·8 .. blk·8 + 8 <= width` (the caller's
                // contract).
                unsafe {
                    let (oc, p0) = (blk * OC_BLOCK, oy * b.out_w);
                    store_tile(b, &acc[..r * v], oc, p0, band_end, out_plane, lanes)
                };
            }
        }
        oy0 = oy1;
    }
    true
}

/// Copies the group's input rows `y0 - pad_top ..` (`ph` of them, `pw` padded columns each) of
/// every input channel into `dst` as `[ic][ph][pw]`, zeros where a row or column is padding.
///
/// # Safety
/// AVX2; `dst` must be writable for `cin_g · ph · pw` floats.
#[target_feature(enable = "avx2")]
unsafe fn pad_rows(b: &Band, dst: *mut f32, y0: usize, ph: usize, pw: usize, in_plane: usize) {
    let plane = ph * pw;
    // Padded column `px` holds input column `px - pad_left`: those in `0..in_w` are copied.
    let lo = b.pad_left.min(pw);
    let hi = (b.pad_left + b.in_w).min(pw);
    for ic in 0..b.cin_g {
        for py in 0..ph {
            // SAFETY: row `py` of channel `ic` is inside the `cin_g · plane` floats of `dst`.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add(ic * plane + py * pw), pw) };
            let iy = (y0 + py).checked_sub(b.pad_top).filter(|&iy| iy < b.in_h);
            match iy {
                Some(iy) if hi > lo => {
                    let from = &b.input[ic * in_plane + iy * b.in_w..][..hi - lo];
                    row[..lo].fill(0.0);
                    row[lo..hi].copy_from_slice(from);
                    row[hi..].fill(0.0);
                }
                _ => row.fill(0.0),
            }
        }
    }
}

/// Where one tile reads: `x` is its first pixel's first tap in input channel 0 of the padded copy
/// (rows `pw` apart, channels `plane` apart, the tile's second row `sy` rows down), `w` the block's
/// weights `[ic][ky][kx][8]`.
struct Taps {
    x: *const f32,
    pw: usize,
    sy: usize,
    plane: usize,
    w: *const f32,
    cin_g: usize,
}

/// Runs the monomorphised tile of `r` rows × `v` pixels.
///
/// # Safety
/// As for [`tile`]; `r` is 1 or 2 (1 at stride 1), `1 <= v <= MAX_W`.
#[inline(always)]
unsafe fn tile_dispatch<const S: usize>(t: &Taps, r: usize, v: usize, acc: &mut [__m256; TILE]) {
    macro_rules! go {
        ($($r:literal, $v:literal);*) => {
            match (r, v) {
                // SAFETY: forwarded from the caller.
                $(($r, $v) => unsafe { tile::<S, $r, $v>(t, acc) },)*
                _ => unreachable!("tile of {r} × {v} pixels"),
            }
        };
    }
    go!(1, 1; 1, 2; 1, 3; 1, 4; 1, 5; 1, 6; 1, 7; 2, 1; 2, 2; 2, 3; 2, 4; 2, 5; 2, 6; 2, 7)
}

/// `acc[r·V + v]` = the 3×3 taps of pixel `v` of tile row `r` summed over all input channels.
/// At stride 1 (one row): per input channel and kernel row, its three weight vectors (8 output
/// channels each), then each of the `V + 2` inputs broadcast once into the up to three pixels
/// whose taps read it. At stride 2: per (input channel, tap), one weight vector and one broadcast
/// per pixel.
///
/// # Safety
/// AVX2 and FMA; for each of `cin_g` channels, padded rows `r·sy + ky` and columns `v·S + kx`
/// (`r < R`, `v < V`, `ky, kx < 3`) from `t.x` are readable; `t.w` holds `cin_g · 72` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const S: usize, const R: usize, const V: usize>(t: &Taps, acc: &mut [__m256; TILE]) {
    let mut sum = [[_mm256_setzero_ps(); V]; R];
    if S == 1 {
        debug_assert_eq!(R, 1, "one row per tile at stride 1");
        let row = &mut sum[0];
        for ic in 0..t.cin_g {
            let x = t.x.wrapping_add(ic * t.plane);
            let w = t.w.wrapping_add(ic * 9 * OC_BLOCK);
            for ky in 0..3 {
                let line = x.wrapping_add(ky * t.pw);
                // SAFETY: weights `(ic, ky, 0..3)` of the block (the contract).
                let wk: [__m256; 3] = std::array::from_fn(|kx| unsafe {
                    _mm256_loadu_ps(w.add((ky * 3 + kx) * OC_BLOCK))
                });
                for c in 0..V + 2 {
                    // SAFETY: padded row `ky`, column `c < V + 2` (the contract).
                    let xv = unsafe { broadcast(line.add(c)) };
                    for (kx, &wv) in wk.iter().enumerate() {
                        if c >= kx && c - kx < V {
                            row[c - kx] = _mm256_fmadd_ps(xv, wv, row[c - kx]);
                        }
                    }
                }
            }
        }
        acc[..V].copy_from_slice(row);
        return;
    }
    for ic in 0..t.cin_g {
        let x = t.x.wrapping_add(ic * t.plane);
        let w = t.w.wrapping_add(ic * 9 * OC_BLOCK);
        for ky in 0..3 {
            for kx in 0..3 {
                // SAFETY: weight `(ic, ky, kx)` of the block, 8 floats (the contract).
                let wv = unsafe { _mm256_loadu_ps(w.add((ky * 3 + kx) * OC_BLOCK)) };
                for (r, row) in sum.iter_mut().enumerate() {
                    let line = x.wrapping_add((r * t.sy + ky) * t.pw + kx);
                    for (v, s) in row.iter_mut().enumerate() {
                        // SAFETY: padded row `r·sy + ky`, column `v·S + kx` (the contract).
                        let xv = unsafe { broadcast(line.add(v * S)) };
                        *s = _mm256_fmadd_ps(xv, wv, *s);
                    }
                }
            }
        }
    }
    for r in 0..R {
        for v in 0..V {
            acc[r * V + v] = sum[r][v];
        }
    }
}

/// `*p` in all 8 lanes, as an `asm!` block LLVM may not merge or move: with the intrinsic, it
/// loaded each input once for the three taps that share it (stride 1) and kept the copies live,
/// which spilled the accumulators to the stack.
///
/// # Safety
/// AVX; `p` readable.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn broadcast(p: *const f32) -> __m256 {
    let x: __m256;
    // SAFETY: reads one float at `p` (the contract); no stack, no flags.
    unsafe {
        std::arch::asm!(
            "vbroadcastss {x}, dword ptr [{p}]",
            p = in(reg) p,
            x = out(ymm_reg) x,
            options(nostack, preserves_flags, readonly),
        )
    };
    x
}

/// Writes a tile's sums (`acc[q]`: 8 output channels of pixel `p0 + q`) to output planes `oc ..
/// oc + 8` with the bias, residual and activation, 8 pixels at a time through a transpose. A
/// last group of fewer than 8 pixels is stored whole if that stays below pixel `end`.
///
/// # Safety
/// AVX2; pixels `p0 .. p0 + acc.len()` of planes `oc .. oc + 8` (`out_plane` floats apart) lie
/// in the band's output, ours to write, and in the residual if there is one; `oc + 8 <= b.width`;
/// so do pixels up to `end`, which later writes of this call overwrite.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn store_tile(
    b: &Band,
    acc: &[__m256],
    oc: usize,
    p0: usize,
    end: usize,
    out_plane: usize,
    lanes: __m256i,
) {
    for (g, pixels) in acc.chunks(8).enumerate() {
        let first = p0 + 8 * g;
        let n = if first + 8 <= end { 8 } else { pixels.len() };
        let m = std::array::from_fn(|i| pixels.get(i).copied().unwrap_or(_mm256_setzero_ps()));
        let by_channel = transpose8(m);
        for (l, &y) in by_channel.iter().enumerate() {
            let bias = b.bias.map_or(0.0, |bias| bias[oc + l]);
            let y = _mm256_add_ps(y, _mm256_set1_ps(bias));
            // SAFETY: pixels `first .. first + n` of plane `oc + l` (the contract).
            unsafe { finish8(b, y, (oc + l) * out_plane + first, n, lanes) };
        }
    }
}

/// The transpose of an 8 × 8 matrix held as 8 row vectors.
#[inline]
#[target_feature(enable = "avx")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose8_transposes() {
        if !is_x86_feature_detected!("avx") {
            eprintln!("skipped: no AVX");
            return;
        }
        let m: Vec<f32> = (0..64).map(|i| i as f32).collect();
        // SAFETY: AVX was detected above; each load reads 8 of the 64 floats.
        let out = unsafe {
            transpose8(std::array::from_fn(|r| {
                _mm256_loadu_ps(m.as_ptr().add(8 * r))
            }))
        };
        for (c, v) in out.iter().enumerate() {
            let mut col = [0.0f32; 8];
            // SAFETY: AVX was detected; `col` holds 8 floats.
            unsafe { _mm256_storeu_ps(col.as_mut_ptr(), *v) };
            let want: Vec<f32> = (0..8).map(|r| m[8 * r + c]).collect();
            assert_eq!(col.to_vec(), want, "column {c}");
        }
    }
}
