//! AVX2 grouped 3×3 conv with whole blocks of 8 output channels per group (ResNeXt-50's stages
//! 2–4: 8, 16 and 32 channels per group), vectorised over output channels instead of output
//! columns.
//!
//! The column-vector kernels ([`super`]) run each block of output channels over vectors of
//! 8 output columns: masks and offsets for every short row (7×7 maps fill 7 of 8 lanes), two
//! loads and a shuffle per vector at stride 2. Here a vector holds 8 output channels of one output
//! pixel. A tile is up to [`TILE_W`] pixels of one output row (stride 1) or, on maps no wider,
//! two whole rows (stride 2), of one block of 8 output channels, every pixel an accumulator. At
//! stride 1 each input is broadcast once and feeds the up to three taps that read it (three
//! weight vectors per kernel row in registers; the 7-pixel tile in `asm!`, [`row7`]); at stride 2,
//! each (input channel, tap) is one weight vector and one broadcast per pixel. The input is read
//! from a zero-padded copy of the group's rows ([`super::pad_rows`]), made once for all of
//! the group's blocks, so there are no masks or bounds inside; what the thread's next group reads
//! is prefetched meanwhile. Sums leave the registers through an 8 × 8 transpose into rows of the
//! output planes, where [`super::finish8`] adds the residual, applies the activation and
//! stores.
//!
//! Measured in-process against the column kernels (alternated call by call on cold copies,
//! medians of ~1000–5000 calls, 1 and 2 threads), ResNeXt-50's grouped convs: 1024 channels at
//! 7×7 0.65–0.72× the time, its stride-2 one (14×14 → 7×7) 0.75–0.82×; 512 at 14×14 0.87–0.89×,
//! stride 2 (28×28 → 14×14) 0.80–0.83×; 256 at 28×28 0.82×, stride 2 (56×56 → 28×28)
//! 0.83–0.86×. At 56×56 with 8 and 16 channels per group it measured 0.99–1.01× and 0.93×.

use std::arch::x86_64::*;

use super::{finish8, pad_rows};
use crate::kernels::gemm::x86_64::avx2::activate;
use crate::kernels::grouped::{Band, Layout, OC_BLOCK};
use crate::kernels::{ConvShape, prefetch_piece, transpose8};

/// Floats of stack the zero-padded copy of a group's input rows takes (48 KB): every input channel
/// of the group, the rows a chunk of output rows reads, the padded columns a row reads.
const PAD: usize = 12 * 1024;

/// Output pixels of one tile row: at stride 1, 7 accumulators and the 3 weight vectors of a
/// kernel row and a broadcast take 11 of the 16 ymm registers (12 or more pixels would not leave
/// the weights room).
const TILE_W: usize = 7;

/// The most output pixels of one tile (two rows at stride 2): 14 accumulators, a weight vector
/// and a broadcast use all 16 ymm registers.
const TILE: usize = 2 * TILE_W;

/// Whether [`out_channels_avx2`] runs `s` on the AVX2 tier: a grouped 3×3 conv with whole blocks of 8
/// output channels per group (it still declines bands whose padded rows do not fit [`PAD`]).
pub(crate) fn applies(s: &ConvShape) -> bool {
    let cout_g = s.out_c / s.group;
    s.group > 1
        && cout_g.is_multiple_of(OC_BLOCK)
        && s.kernel == [3, 3]
        && s.dilation == [1, 1]
        && matches!(s.stride[1], 1 | 2)
}

/// Whether even one output row's zero-padded input rows fit [`PAD`] (else [`out_channels_avx2`]
/// declines the shape).
pub(crate) fn fits(s: &ConvShape) -> bool {
    padded_floats(s.in_c / s.group.max(1), 1, s.out_w, s.stride) <= PAD
}

/// Floats of the zero-padded copy of `cin_g` channels' input rows for `rows` output rows of
/// `out_w` pixels: padded row `py` of a chunk is input row `oy0·sy + py - pad_top`, padded column
/// `px` input column `px - pad_left`, and output column `ox` reads padded columns `ox·sx ..
/// ox·sx + 3`.
fn padded_floats(cin_g: usize, rows: usize, out_w: usize, [sy, sx]: [usize; 2]) -> usize {
    cin_g * ((rows.max(1) - 1) * sy + 3) * ((out_w.max(1) - 1) * sx + 3)
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
pub(crate) unsafe fn out_channels_avx2(b: &Band) -> bool {
    if b.kernel != 3
        || b.wstride != OC_BLOCK
        || !b.width.is_multiple_of(OC_BLOCK)
        || b.weights.len() != b.width * b.cin_g * 9
    {
        return false;
    }
    // SAFETY: forwarded from the caller; the checks above are the kernel's shape conditions.
    unsafe {
        match b.stride[1] {
            1 => out_channels3x3::<1>(b),
            2 => out_channels3x3::<2>(b),
            _ => false,
        }
    }
}

/// [`out_channels_avx2`] at column stride `S` (the row stride is `b.stride[0]`, any).
///
/// # Safety
/// As for [`out_channels_avx2`], whose checks have passed.
#[target_feature(enable = "avx2,fma")]
unsafe fn out_channels3x3<const S: usize>(b: &Band) -> bool {
    if b.rows.is_empty() {
        return true;
    }
    let sy = b.stride[0];
    // Padded columns: output column `ox` reads padded columns `ox·S .. ox·S + 3`; padded column
    // `px` is input column `px - pad_left`.
    let pw = (b.out_w - 1) * S + 3;
    // Padded rows of a chunk of `n` output rows.
    let rows_for = |n: usize| (n - 1) * sy + 3;
    let fit = |n: usize| padded_floats(b.cin_g, n, b.out_w, [sy, S]) <= PAD;
    if !fit(1) {
        return false;
    }
    let mut chunk = b.rows.len();
    while !fit(chunk) {
        chunk = chunk.div_ceil(2);
    }
    let out_plane = b.out_h * b.out_w;
    let blocks = b.width / OC_BLOCK;
    let block_len = b.cin_g * 9 * OC_BLOCK;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut store = std::mem::MaybeUninit::<[f32; PAD + 8]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    // Output rows per tile: one at stride 1 (its three weight vectors per kernel row take
    // registers), two at stride 2.
    let tile_rows = if S == 1 || b.out_w > TILE_W { 1 } else { 2 };
    let tile_w = b.out_w.min(TILE_W);
    // Pixels past a tile's end up to the band's end are written by later tiles of this call, so a
    // tile's last vector of 8 may store whole instead of masked (`vmaskmovps` stores are slow on
    // AMD's cores).
    let band_end = b.rows.end * b.out_w;
    // What the next call on this thread reads (`Band::next`) is prefetched into L2 a piece per
    // tile: it is in no cache, and the padded copy of the input reads it all up front.
    let tiles = b.rows.len().div_ceil(tile_rows) * b.out_w.div_ceil(tile_w) * blocks;
    let mut tile_i = 0;
    let mut acc = [_mm256_setzero_ps(); TILE];
    let mut oy0 = b.rows.start;
    while oy0 < b.rows.end {
        let oy1 = (oy0 + chunk).min(b.rows.end);
        let ph = rows_for(oy1 - oy0);
        let plane = ph * pw;
        // SAFETY: `fit(oy1 - oy0)`: `cin_g · plane + 8 <= PAD + 8` floats of `store`.
        unsafe {
            match b.layout {
                Layout::Nchw => pad_rows(b, b.cin_g, oy0 * sy, ph, pw, base),
                Layout::Nchw8c => pad_rows_nchw8c(b, oy0 * sy, ph, pw, base),
            }
        };
        for oy in (oy0..oy1).step_by(tile_rows) {
            for ox in (0..b.out_w).step_by(tile_w) {
                let (r, v) = (tile_rows.min(oy1 - oy), tile_w.min(b.out_w - ox));
                // The tile's first input: padded row `(oy - oy0)·sy`, column `ox·S`.
                let x = base.wrapping_add((oy - oy0) * sy * pw + ox * S);
                for blk in 0..blocks {
                    for next in b.next {
                        prefetch_piece(next, tile_i, tiles);
                    }
                    tile_i += 1;
                    let at = Taps {
                        x,
                        pw,
                        sy,
                        plane,
                        w: b.weights[blk * block_len..][..block_len].as_ptr(),
                        cin_g: b.cin_g,
                    };
                    // SAFETY: the tile's pixels read padded rows up to
                    // `(oy1 - 1 - oy0)·sy + 2 < ph` and columns up to `(ox + v - 1)·S + 2 < pw`
                    // of `cin_g` channels, all written by `pad_rows`; `at.w` holds the block's
                    // `cin_g · 72` weights.
                    unsafe { tile_dispatch::<S>(&at, r, v, &mut acc) };
                    // SAFETY: pixels `oy·out_w + ox ..` (`r·v` of them: a run in one row, or
                    // `r` whole rows) are consecutive in the output planes and in the band's
                    // rows; planes `blk·8 .. blk·8 + 8 <= width` (the caller's contract).
                    unsafe {
                        let (oc, p0) = (blk * OC_BLOCK, oy * b.out_w + ox);
                        match b.layout {
                            Layout::Nchw => {
                                store_tile(b, &acc[..r * v], oc, p0, band_end, out_plane, lanes)
                            }
                            Layout::Nchw8c => {
                                store_tile_nchw8c(b, &acc[..r * v], oc, p0, out_plane)
                            }
                        }
                    };
                }
            }
        }
        oy0 = oy1;
    }
    true
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
/// As for [`tile`]; `r` is 1 or 2 (1 at stride 1), `1 <= v <= TILE_W`.
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
    if S == 1 && V == TILE_W {
        // SAFETY: forwarded from the caller (one row of 7 pixels at stride 1).
        unsafe { row7(t, acc) };
        return;
    }
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

/// The taps of one kernel row over a 7-pixel tile at stride 1 (`asm!` text): the row's three
/// weight vectors from `[{w} + $w]`, then its 9 inputs from `[$x + 4c]`, each broadcast once and
/// added into the pixels `c - kx` whose tap `kx` reads it, accumulators `ymm0..ymm6`.
macro_rules! row7_taps {
    ($x:literal, $w:literal) => {
        concat!(
            "vmovups ymm7, ymmword ptr [{w} + ",
            $w,
            "]\n",
            "vmovups ymm8, ymmword ptr [{w} + ",
            $w,
            " + 32]\n",
            "vmovups ymm9, ymmword ptr [{w} + ",
            $w,
            " + 64]\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            "]\n",
            "vfmadd231ps ymm0, ymm10, ymm7\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 4]\n",
            "vfmadd231ps ymm1, ymm10, ymm7\n",
            "vfmadd231ps ymm0, ymm10, ymm8\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 8]\n",
            "vfmadd231ps ymm2, ymm10, ymm7\n",
            "vfmadd231ps ymm1, ymm10, ymm8\n",
            "vfmadd231ps ymm0, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 12]\n",
            "vfmadd231ps ymm3, ymm10, ymm7\n",
            "vfmadd231ps ymm2, ymm10, ymm8\n",
            "vfmadd231ps ymm1, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 16]\n",
            "vfmadd231ps ymm4, ymm10, ymm7\n",
            "vfmadd231ps ymm3, ymm10, ymm8\n",
            "vfmadd231ps ymm2, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 20]\n",
            "vfmadd231ps ymm5, ymm10, ymm7\n",
            "vfmadd231ps ymm4, ymm10, ymm8\n",
            "vfmadd231ps ymm3, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 24]\n",
            "vfmadd231ps ymm6, ymm10, ymm7\n",
            "vfmadd231ps ymm5, ymm10, ymm8\n",
            "vfmadd231ps ymm4, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 28]\n",
            "vfmadd231ps ymm6, ymm10, ymm8\n",
            "vfmadd231ps ymm5, ymm10, ymm9\n",
            "vbroadcastss ymm10, dword ptr [",
            $x,
            " + 32]\n",
            "vfmadd231ps ymm6, ymm10, ymm9\n",
        )
    };
}

/// [`tile`] for one row of 7 pixels at stride 1 (7×7 maps, and 14-wide rows in two tiles): the
/// loop over input channels in `asm!`, each channel's three kernel rows written out
/// ([`row7_taps`]). The intrinsics version kept its accumulators in a stack array: the input loop
/// indexes them by `c - kx`, which LLVM did not unroll away.
///
/// # Safety
/// As for [`tile`] with `S == 1`, `R == 1`, `V == 7`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn row7(t: &Taps, acc: &mut [__m256; TILE]) {
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6] = [_mm256_setzero_ps(); 7];
    // SAFETY: per channel, reads padded rows 0–2 from `t.x` (`pw` floats apart), columns 0–8, and
    // the channel's 72 weights (the contract); then steps both by one channel. Only the listed
    // registers are written; no stack.
    unsafe {
        std::arch::asm!(
            "test {k}, {k}",
            "jz 3f",
            "2:",
            row7_taps!("{x}", "0"),
            row7_taps!("{x} + {pw}", "96"),
            row7_taps!("{x} + 2*{pw}", "192"),
            "add {x}, {plane}",
            "add {w}, 288",
            "dec {k}",
            "jnz 2b",
            "3:",
            x = inout(reg) t.x => _,
            w = inout(reg) t.w => _,
            k = inout(reg) t.cin_g => _,
            pw = in(reg) t.pw * 4,
            plane = in(reg) t.plane * 4,
            inout("ymm0") a0,
            inout("ymm1") a1,
            inout("ymm2") a2,
            inout("ymm3") a3,
            inout("ymm4") a4,
            inout("ymm5") a5,
            inout("ymm6") a6,
            out("ymm7") _,
            out("ymm8") _,
            out("ymm9") _,
            out("ymm10") _,
            options(nostack, readonly),
        );
    }
    acc[..7].copy_from_slice(&[a0, a1, a2, a3, a4, a5, a6]);
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

/// [`super::pad_rows`] from NCHW8c input: the group's `cin_g / 8` blocks of rows `y0 .. y0 +
/// rows` (padded; input rows outside the map stay zero) into the same zero-padded planes, 8 × 8
/// transposes turning 8 pixels' channel vectors into 8 channels' rows of 8 pixels.
///
/// # Safety
/// AVX2; `dst` holds `cin_g · rows · pw` floats; `b.input` holds `cin_g · in_h · in_w` floats
/// in NCHW8c (`cin_g` a multiple of 8).
#[target_feature(enable = "avx2")]
unsafe fn pad_rows_nchw8c(b: &Band, y0: usize, rows: usize, pw: usize, dst: *mut f32) {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let in_plane = b.in_h * b.in_w;
    // SAFETY: inside `dst` (the contract).
    unsafe { std::ptr::write_bytes(dst, 0, b.cin_g * rows * pw) };
    let lo = b.pad_left.min(pw);
    let len = (b.pad_left + b.in_w).min(pw) - lo;
    for blk in 0..b.cin_g / OC_BLOCK {
        let block = &b.input[blk * OC_BLOCK * in_plane..][..OC_BLOCK * in_plane];
        for p in y0..y0 + rows {
            let Some(iy) = p.checked_sub(b.pad_top).filter(|&iy| iy < b.in_h) else {
                continue;
            };
            let line = &block[iy * b.in_w * OC_BLOCK..][..len * OC_BLOCK];
            for x in (0..len).step_by(8) {
                let n = (len - x).min(8);
                let pixels: [__m256; 8] = std::array::from_fn(|i| {
                    if i < n {
                        // SAFETY: pixel `x + i < len` of the input row, 8 channels.
                        unsafe { _mm256_loadu_ps(line.as_ptr().add((x + i) * OC_BLOCK)) }
                    } else {
                        _mm256_setzero_ps()
                    }
                });
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
                for (c, row) in transpose8(pixels).into_iter().enumerate() {
                    let at = ((blk * OC_BLOCK + c) * rows + p - y0) * pw + lo + x;
                    // SAFETY: columns `lo + x .. lo + x + n <= lo + len <= pw` of padded row
                    // `p - y0` of channel `blk·8 + c < cin_g`, inside `dst`.
                    unsafe {
                        if n == 8 {
                            _mm256_storeu_ps(dst.add(at), row);
                        } else {
                            _mm256_maskstore_ps(dst.add(at), mask, row);
                        }
                    }
                }
            }
        }
    }
}

/// Writes a tile's sums to NCHW8c output: pixel `p0 + q`'s 8 channels of block `oc / 8` of the
/// group are one vector, stored with the bias, residual and activation.
///
/// # Safety
/// AVX2; pixels `p0 .. p0 + acc.len()` of the group's block `oc / 8` (`8 · out_plane` floats a
/// block) lie in the band's output, ours to write, and in the residual if there is one;
/// `oc + 8 <= b.width`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_tile_nchw8c(b: &Band, acc: &[__m256], oc: usize, p0: usize, out_plane: usize) {
    let bias = b.bias.map_or(_mm256_setzero_ps(), |bias| {
        // SAFETY: entries `oc .. oc + 8 <= width` of the group's bias.
        unsafe { _mm256_loadu_ps(bias[oc..oc + OC_BLOCK].as_ptr()) }
    });
    for (q, &sum) in acc.iter().enumerate() {
        let at = oc * out_plane + (p0 + q) * OC_BLOCK;
        let mut y = _mm256_add_ps(sum, bias);
        if let Some(res) = b.residual {
            // SAFETY: the pixel's 8 channels lie in the residual (the contract).
            y = _mm256_add_ps(y, unsafe {
                _mm256_loadu_ps(res[at..at + OC_BLOCK].as_ptr())
            });
        }
        // SAFETY: the pixel's 8 channels of the output are ours (the contract).
        unsafe { _mm256_storeu_ps(b.output.add(at), activate(b.activation, y)) };
    }
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
