//! The AVX-512F tile of the blocked 1×1 conv: up to 12 pixels × 32 output channels (a pair of
//! weight panels), one zmm per pixel and panel — the panel's 16 channels, its two output blocks —
//! so 24 accumulators over the whole k; per input channel, the two panels' weight rows (one zmm
//! each) and one broadcast per pixel feeding two FMAs. Against the AVX2 tile (6 × 16 in ymm), the
//! 32 registers hold four times the sums, so each input channel's broadcast and each weight row is
//! read for twice the multiply-adds, and a chunk's activations are swept once per pair of panels.
//!
//! Why it is here: on cores whose AVX-512 units are 512 bits wide (Zen 5, Intel server cores) the
//! AVX2 tile would reach half the FMA peak. Measured only on Zen 4, whose AVX-512 units are 256
//! bits wide (a zmm FMA does no more work per cycle): there it takes the same time as the AVX2
//! tile (ResNeXt-50's 1×1 convs, fastest calls summed at 1 thread: 72.2 vs 72.1 ms). A tile of
//! up to 24 pixels × one panel, each pixel's broadcast feeding one FMA, measured the same (72.0).

use std::arch::x86_64::*;

use super::{BLOCK, PANEL, Tile};
use crate::kernels::gemm::x86_64::avx2::activate;

/// Pixels per register tile of this tier.
pub(super) const TILE_PIXELS: usize = 12;

/// Runs `t` over `width` (1..=12) pixels and two panels: the first at `t.w` / `t.out` /
/// `t.bias`, the second `t.panel_len` weights, two output blocks and [`PANEL`] bias entries on.
///
/// # Safety
/// AVX-512F, AVX2 and FMA; the pointers of `t` valid as documented on `Tile` for `width` pixels
/// and for both panels (each with two output blocks).
pub(super) unsafe fn tile_pair(t: &Tile, width: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match width {
            1 => tile_pair_p::<1>(t),
            2 => tile_pair_p::<2>(t),
            3 => tile_pair_p::<3>(t),
            4 => tile_pair_p::<4>(t),
            5 => tile_pair_p::<5>(t),
            6 => tile_pair_p::<6>(t),
            7 => tile_pair_p::<7>(t),
            8 => tile_pair_p::<8>(t),
            9 => tile_pair_p::<9>(t),
            10 => tile_pair_p::<10>(t),
            11 => tile_pair_p::<11>(t),
            _ => tile_pair_p::<TILE_PIXELS>(t),
        }
    }
}

/// The 16 floats of one pixel of two consecutive output blocks (`p` and `p + stride`) as one zmm.
///
/// # Safety
/// AVX-512F; eight floats readable at `p` and at `p + stride`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_pair(p: *const f32, stride: usize) -> __m512 {
    // SAFETY: the caller's contract.
    let (lo, hi) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(stride))) };
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_castps256_ps512(lo)),
        _mm256_castps_pd(hi),
    ))
}

/// The two halves of `v`: channels 0–7 (the first block) and 8–15 (the second).
#[inline]
#[target_feature(enable = "avx512f")]
fn halves(v: __m512) -> [__m256; 2] {
    [
        _mm512_castps512_ps256(v),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
    ]
}

/// [`tile_pair`] on `P` pixels.
///
/// # Safety
/// As for [`tile_pair`], with `width == P`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_pair_p<const P: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; P];
    // Panel `q`'s first output block is `2·q` blocks on.
    let out_at = |q: usize, p: usize| 2 * q * t.stride + p * BLOCK;
    if t.accumulate {
        for q in 0..2 {
            for p in 0..P {
                // SAFETY: pixel `p < P` of the two blocks of panel `q` (the contract).
                acc[p][q] = unsafe { load_pair(t.out.add(out_at(q, p)), t.stride) };
            }
        }
    }
    // The sums as 24 named locals over the k loop: held in an array indexed by pixel, LLVM kept
    // the sums of tiles over 6 pixels on the stack.
    let [
        [mut a0, mut b0],
        [mut a1, mut b1],
        [mut a2, mut b2],
        [mut a3, mut b3],
        [mut a4, mut b4],
        [mut a5, mut b5],
        [mut a6, mut b6],
        [mut a7, mut b7],
        [mut a8, mut b8],
        [mut a9, mut b9],
        [mut a10, mut b10],
        [mut a11, mut b11],
    ] = std::array::from_fn::<_, TILE_PIXELS, _>(|p| {
        if p < P {
            acc[p]
        } else {
            [_mm512_setzero_ps(); 2]
        }
    });
    let (mut x, mut w) = (t.x, t.w);
    for _ in 0..t.k / BLOCK {
        // The next tile's pixels of this k block, one line per 16 floats (never faulting).
        for line in 0..P / 2 {
            _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add((P + 2 * line) * BLOCK).cast());
        }
        for c in 0..BLOCK {
            // SAFETY: weight row `c` of this k block in both panels (`k × 16` floats at `t.w`
            // and at `t.w + panel_len`) and channel `c` of the block's `P` pixels (the contract).
            unsafe {
                let w0 = _mm512_loadu_ps(w);
                let w1 = _mm512_loadu_ps(w.add(t.panel_len));
                macro_rules! pixel {
                    ($p:literal, $a:ident, $b:ident) => {
                        if $p < P {
                            let v = _mm512_set1_ps(*x.add($p * BLOCK + c));
                            $a = _mm512_fmadd_ps(v, w0, $a);
                            $b = _mm512_fmadd_ps(v, w1, $b);
                        }
                    };
                }
                pixel!(0, a0, b0);
                pixel!(1, a1, b1);
                pixel!(2, a2, b2);
                pixel!(3, a3, b3);
                pixel!(4, a4, b4);
                pixel!(5, a5, b5);
                pixel!(6, a6, b6);
                pixel!(7, a7, b7);
                pixel!(8, a8, b8);
                pixel!(9, a9, b9);
                pixel!(10, a10, b10);
                pixel!(11, a11, b11);
                w = w.add(PANEL);
            }
        }
        x = x.wrapping_add(t.stride);
    }
    let sums = [
        [a0, b0],
        [a1, b1],
        [a2, b2],
        [a3, b3],
        [a4, b4],
        [a5, b5],
        [a6, b6],
        [a7, b7],
        [a8, b8],
        [a9, b9],
        [a10, b10],
        [a11, b11],
    ];
    acc.copy_from_slice(&sums[..P]);
    for q in 0..2 {
        let bias = if t.bias.is_null() {
            [_mm256_setzero_ps(); 2]
        } else {
            // SAFETY: panel `q`'s 16 bias entries (the contract: both panels are whole).
            unsafe { halves(_mm512_loadu_ps(t.bias.add(q * PANEL))) }
        };
        for p in 0..P {
            for (blk, sum) in halves(acc[p][q]).into_iter().enumerate() {
                let at = out_at(q, p) + blk * t.stride;
                if !t.finish {
                    // SAFETY: block `2·q + blk` of the output at pixel `p < P`, ours alone.
                    unsafe { _mm256_storeu_ps(t.out.add(at), sum) };
                    continue;
                }
                let mut v = _mm256_add_ps(sum, bias[blk]);
                if !t.residual.is_null() {
                    // SAFETY: the same element of the residual, laid out like the output.
                    v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(t.residual.add(at)) });
                }
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(t.out.add(at), activate(t.activation, v)) };
            }
        }
    }
}
