//! The AVX2+FMA tile of the blocked 1×1 conv: up to 6 pixels × 16 output channels (two ymm per
//! pixel), 12 accumulators over the whole k; per input channel, the panel's two weight vectors
//! and one broadcast per pixel. The 6-pixel tile's k loop is in `asm!` (12 accumulators, 2
//! weight vectors and the broadcasts fill the 16 ymm registers; LLVM spilled an accumulator
//! every step, as in the GEMM's `k_loop_4x3`).

use std::arch::x86_64::*;

use super::{BLOCK, PANEL, TILE_PIXELS, Tile};
use crate::kernels::gemm::x86_64::avx2::activate;
use crate::kernels::transpose8;

/// Runs `t` over `width` (1..=6) pixels.
///
/// # Safety
/// AVX2 and FMA; the pointers of `t` valid as documented on `Tile` for `width` pixels.
pub(super) unsafe fn tile(t: &Tile, width: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match width {
            1 => tile_p::<1>(t),
            2 => tile_p::<2>(t),
            3 => tile_p::<3>(t),
            4 => tile_p::<4>(t),
            5 => tile_p::<5>(t),
            _ => tile_p::<TILE_PIXELS>(t),
        }
    }
}

/// [`tile`] on `P` pixels.
///
/// # Safety
/// As for [`tile`], with `width == P`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_p<const P: usize>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; P];
    let blocks = t.blocks.min(2);
    if t.accumulate {
        for blk in 0..blocks {
            for p in 0..P {
                // SAFETY: block `blk < blocks`, pixel `p < P` of the output (the contract).
                acc[p][blk] = unsafe { _mm256_loadu_ps(t.out.add(blk * t.stride + p * BLOCK)) };
            }
        }
    }
    if P == TILE_PIXELS {
        // SAFETY: forwarded from the caller; `acc` is 6 × 2 here.
        unsafe { k_loop_6(t, acc.as_mut_ptr().cast()) };
    } else {
        let (mut x, mut w) = (t.x, t.w);
        for _ in 0..t.k / BLOCK {
            for c in 0..BLOCK {
                // SAFETY: weight row `c` of this k block (`k × 16` floats from `t.w`) and
                // channel `c` of the block's `P` pixels (the contract).
                unsafe {
                    let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(BLOCK)));
                    for p in 0..P {
                        let v = _mm256_broadcast_ss(&*x.add(p * BLOCK + c));
                        acc[p][0] = _mm256_fmadd_ps(v, w0, acc[p][0]);
                        acc[p][1] = _mm256_fmadd_ps(v, w1, acc[p][1]);
                    }
                    w = w.add(PANEL);
                }
            }
            x = x.wrapping_add(t.stride);
        }
    }
    if !t.finish {
        for blk in 0..blocks {
            for p in 0..P {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(t.out.add(blk * t.stride + p * BLOCK), acc[p][blk]) };
            }
        }
        return;
    }
    for blk in 0..blocks {
        let bias = if t.bias.is_null() {
            _mm256_setzero_ps()
        } else {
            // SAFETY: the panel's `8·blocks` bias entries (the contract).
            unsafe { _mm256_loadu_ps(t.bias.add(blk * BLOCK)) }
        };
        for p in 0..P {
            let at = blk * t.stride + p * BLOCK;
            let mut v = _mm256_add_ps(acc[p][blk], bias);
            if !t.residual.is_null() {
                // SAFETY: block `blk < blocks`, pixel `p < P` of the residual (the contract).
                v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(t.residual.add(at)) });
            }
            // SAFETY: the same element of the output, ours alone (the contract).
            unsafe { _mm256_storeu_ps(t.out.add(at), activate(t.activation, v)) };
        }
    }
}

/// One k step (input channel `$c` of the current block) of the 6-pixel tile: weights into ymm12
/// and ymm13, each pixel's input broadcast into ymm14/15 in turn.
macro_rules! k_step {
    ($c:literal) => {
        concat!(
            "vmovups ymm12, ymmword ptr [{w} + 64*",
            $c,
            "]\n",
            "vmovups ymm13, ymmword ptr [{w} + 64*",
            $c,
            " + 32]\n",
            "vbroadcastss ymm14, dword ptr [{x} + 4*",
            $c,
            "]\n",
            "vfmadd231ps ymm0, ymm14, ymm12\n",
            "vfmadd231ps ymm1, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{x} + 4*",
            $c,
            " + 32]\n",
            "vfmadd231ps ymm2, ymm15, ymm12\n",
            "vfmadd231ps ymm3, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [{x} + 4*",
            $c,
            " + 64]\n",
            "vfmadd231ps ymm4, ymm14, ymm12\n",
            "vfmadd231ps ymm5, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{x} + 4*",
            $c,
            " + 96]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [{x} + 4*",
            $c,
            " + 128]\n",
            "vfmadd231ps ymm8, ymm14, ymm12\n",
            "vfmadd231ps ymm9, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{x} + 4*",
            $c,
            " + 160]\n",
            "vfmadd231ps ymm10, ymm15, ymm12\n",
            "vfmadd231ps ymm11, ymm15, ymm13\n",
        )
    };
}

/// The 6-pixel tile's k loop: one iteration per k block of eight input channels.
///
/// # Safety
/// AVX2 and FMA; as for [`tile`] with 6 pixels; `acc` points at 6 × 2 accumulators (row-major).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn k_loop_6(t: &Tile, acc: *mut __m256) {
    // SAFETY: `acc` holds 12 vectors (the contract).
    let c = |i: usize| unsafe { acc.add(i) };
    // SAFETY: as above.
    let (mut c0, mut c1, mut c2, mut c3) = unsafe { (*c(0), *c(1), *c(2), *c(3)) };
    // SAFETY: as above.
    let (mut c4, mut c5, mut c6, mut c7) = unsafe { (*c(4), *c(5), *c(6), *c(7)) };
    // SAFETY: as above.
    let (mut c8, mut c9, mut c10, mut c11) = unsafe { (*c(8), *c(9), *c(10), *c(11)) };
    // SAFETY: the loop reads `k / 8` blocks of the six pixels' 8 channels (48 floats at `x`,
    // blocks `stride` floats apart) and `k` rows of 16 weights from `w` (the contract of `tile`);
    // it writes only the listed registers and touches no stack. The prefetches name the next
    // tile's pixels of each block (never faulting).
    unsafe {
        std::arch::asm!(
            "test {k}, {k}",
            "jz 3f",
            "2:",
            "prefetcht0 [{x} + 192]",
            k_step!("0"),
            k_step!("1"),
            "prefetcht0 [{x} + 256]",
            k_step!("2"),
            k_step!("3"),
            "prefetcht0 [{x} + 320]",
            k_step!("4"),
            k_step!("5"),
            k_step!("6"),
            k_step!("7"),
            "add {w}, 512",
            "add {x}, {x_step}",
            "dec {k}",
            "jnz 2b",
            "3:",
            w = inout(reg) t.w => _,
            x = inout(reg) t.x => _,
            x_step = in(reg) t.stride * 4,
            k = inout(reg) t.k / BLOCK => _,
            inout("ymm0") c0,
            inout("ymm1") c1,
            inout("ymm2") c2,
            inout("ymm3") c3,
            inout("ymm4") c4,
            inout("ymm5") c5,
            inout("ymm6") c6,
            inout("ymm7") c7,
            inout("ymm8") c8,
            inout("ymm9") c9,
            inout("ymm10") c10,
            inout("ymm11") c11,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
    }
    for (i, v) in [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]
        .into_iter()
        .enumerate()
    {
        // SAFETY: as above.
        unsafe { *c(i) = v };
    }
}

/// Reorders one block of eight channels between NCHW (`src`/`dst` as eight planes of `spatial`)
/// and NCHW8c (`spatial` runs of eight), eight pixels at a time; returns how many pixels it did
/// (the rest, fewer than eight, are the caller's).
///
/// # Safety
/// AVX; `src` and `dst` hold `8 × spatial` floats.
#[target_feature(enable = "avx")]
pub(super) unsafe fn reorder_block<const TO_BLOCKED: bool>(
    src: &[f32],
    dst: &mut [f32],
    spatial: usize,
) -> usize {
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let whole = spatial / 8 * 8;
    for p in (0..whole).step_by(8) {
        // SAFETY: rows `r < 8` of the 8 × 8 square at pixel `p` (`p + 8 <= spatial`): plane `r`'s
        // pixels `p..p + 8`, or pixel `p + r`'s eight channels; inside both buffers.
        unsafe {
            // Row `r` of the square in the blocked or the plain layout.
            let at = |r: usize, blocked: bool| {
                if blocked {
                    (p + r) * BLOCK
                } else {
                    r * spatial + p
                }
            };
            let rows = transpose8(std::array::from_fn(|r| {
                _mm256_loadu_ps(s.add(at(r, !TO_BLOCKED)))
            }));
            for (r, v) in rows.into_iter().enumerate() {
                _mm256_storeu_ps(d.add(at(r, TO_BLOCKED)), v);
            }
        }
    }
    whole
}
