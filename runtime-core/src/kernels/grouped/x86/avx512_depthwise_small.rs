//! AVX-512 depthwise conv of small maps (at most 512 output pixels: MobileNet's and EfficientNet's
//! 7×7 stages, Xception's 19×19 and 10×10), stride 1, output rows as wide as the input rows: each plane is one run
//! of pixels, 16 a vector, read straight from the input by masked loads, several channels a call.
//!
//! With `in_w == out_w`, output pixel `p` and tap `(ky, kx)` read input pixel
//! `p + (ky - pad_top)·in_w + (kx - pad_left)`: for every vector of pixels and tap one masked load
//! at a fixed offset, the mask (which lanes read inside the input) the same for every channel and
//! computed once per call. No padded copy, no per-row setup: a 7×7 channel is 4 vectors (3×3:
//! 36 loads and FMAs), where the row kernels spend more on copying and setting up rows than on
//! the 441 multiply-adds.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::kernels::gemm::x86_64::avx512::activate512_inline;
use crate::kernels::{ConvShape, Epilogue};

/// Lanes of a vector.
const L: usize = 16;

/// The most vectors (16 pixels each) a plane may have.
const MAX_VECTORS: usize = 32;

/// The largest kernel side.
const MAX_K: usize = 7;

/// Vectors accumulated at once (independent FMA chains).
const BLOCK: usize = 4;

/// Whether [`run`] takes depthwise conv `s`: 3×3, 5×5 or 7×7, stride 1, dilation 1, `in_w == out_w`,
/// at most 512 output pixels.
pub(crate) fn applies(s: &ConvShape) -> bool {
    let k = s.kernel[0];
    s.group == s.in_c
        && s.group == s.out_c
        && s.kernel[1] == k
        && matches!(k, 3 | 5 | 7)
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.in_w == s.out_w
        && s.out_h * s.out_w <= MAX_VECTORS * L
        && s.pads[0] < k
        && s.pads[1] < k
}

/// Which lanes of each vector read inside the input for each tap: `taps[v][ky·K + kx]` (input
/// row and column in range, pixel in the plane), one mask load per tap in the inner loop.
pub(crate) struct Masks {
    taps: [[u16; MAX_K * MAX_K]; MAX_VECTORS],
    /// Vectors a plane takes, rounded up to [`BLOCK`] (the extra ones have empty masks).
    vectors: usize,
}

impl Masks {
    /// The masks of shape `s` (one [`applies`] accepts).
    pub(crate) fn new(s: &ConvShape) -> Masks {
        let k = s.kernel[0];
        let mut rows = [[0u16; MAX_K]; MAX_VECTORS];
        let mut cols = [[0u16; MAX_K]; MAX_VECTORS];
        let mut m = Masks {
            taps: [[0; MAX_K * MAX_K]; MAX_VECTORS],
            vectors: (s.out_h * s.out_w).div_ceil(L).next_multiple_of(BLOCK),
        };
        let (mut oy, mut ox) = (0, 0);
        for p in 0..s.out_h * s.out_w {
            let (v, bit) = (p / L, 1u16 << (p % L));
            for d in 0..k {
                if (oy + d)
                    .checked_sub(s.pads[0])
                    .is_some_and(|iy| iy < s.in_h)
                {
                    rows[v][d] |= bit;
                }
                if (ox + d)
                    .checked_sub(s.pads[1])
                    .is_some_and(|ix| ix < s.in_w)
                {
                    cols[v][d] |= bit;
                }
            }
            ox += 1;
            if ox == s.out_w {
                (oy, ox) = (oy + 1, 0);
            }
        }
        for (v, taps) in m.taps.iter_mut().enumerate() {
            for ky in 0..k {
                for kx in 0..k {
                    taps[ky * k + kx] = rows[v][ky] & cols[v][kx];
                }
            }
        }
        m
    }
}

/// Planes `planes` (batch item · channels + channel) of depthwise conv `s` with its fused
/// epilogue; `input`, `packed` (ONNX layout) and the epilogue's slices as checked by
/// `grouped::run_direct`, `masks` from [`Masks::new`] for `s`.
///
/// # Safety
/// The CPU must support AVX-512F; `s` must pass [`applies`]; `input` must hold the planes'
/// `s.in_h · s.in_w` floats, `packed` `s.out_c · K·K`, `output` must be valid for writes of planes
/// `planes` (`s.out_h · s.out_w` floats each) with no concurrent access there, and the epilogue's
/// bias must hold `s.out_c` floats and its residual the planes.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn run(
    s: &ConvShape,
    masks: &Masks,
    input: &[f32],
    packed: &[f32],
    epilogue: &Epilogue,
    output: *mut f32,
    planes: Range<usize>,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match s.kernel[0] {
            3 => planes_k::<3>(s, masks, input, packed, epilogue, output, planes),
            5 => planes_k::<5>(s, masks, input, packed, epilogue, output, planes),
            _ => planes_k::<7>(s, masks, input, packed, epilogue, output, planes),
        }
    }
}

/// [`run`] for a `K`×`K` kernel.
///
/// # Safety
/// As for [`run`], and `K == s.kernel[0]`.
#[target_feature(enable = "avx512f")]
unsafe fn planes_k<const K: usize>(
    s: &ConvShape,
    masks: &Masks,
    input: &[f32],
    packed: &[f32],
    epilogue: &Epilogue,
    output: *mut f32,
    planes: Range<usize>,
) {
    let plane = s.out_h * s.out_w;
    let in_plane = s.in_h * s.in_w;
    // Where tap `(ky, kx)` reads, relative to the output pixel.
    let mut off = [0isize; MAX_K * MAX_K];
    for ky in 0..K {
        for kx in 0..K {
            off[ky * K + kx] = (ky as isize - s.pads[0] as isize) * s.in_w as isize + kx as isize
                - s.pads[1] as isize;
        }
    }
    for p in planes {
        let c = p % s.out_c;
        let src = input[p * in_plane..][..in_plane].as_ptr();
        let wts = &packed[c * K * K..][..K * K];
        let bias = _mm512_set1_ps(epilogue.bias.map_or(0.0, |b| b[c]));
        let residual = epilogue.residual.map(|r| r[p * plane..][..plane].as_ptr());
        let dst = output.wrapping_add(p * plane);
        for v0 in (0..masks.vectors).step_by(BLOCK) {
            let mut acc = [_mm512_setzero_ps(); BLOCK];
            for ky in 0..K {
                for kx in 0..K {
                    let t = ky * K + kx;
                    let w = _mm512_set1_ps(wts[t]);
                    for (j, a) in acc.iter_mut().enumerate() {
                        let v = v0 + j;
                        let m = masks.taps[v][t];
                        let at = src.wrapping_offset((v * L) as isize + off[t]);
                        // SAFETY: the lanes in `m` read input pixels inside the plane (row and
                        // column in range, see `Masks`); the others are not accessed.
                        let x = unsafe { _mm512_maskz_loadu_ps(m, at) };
                        *a = _mm512_fmadd_ps(w, x, *a);
                    }
                }
            }
            for (j, &a) in acc.iter().enumerate() {
                let at = (v0 + j) * L;
                if at >= plane {
                    break;
                }
                let m = ((1u32 << (plane - at).min(L)) - 1) as u16;
                // SAFETY: pixels `at..` under `m` lie in plane `p`: ours to write (the
                // contract); the residual's plane `p` is as long.
                unsafe {
                    // The bias after the sum, as the reference adds it.
                    let mut y = _mm512_add_ps(a, bias);
                    if let Some(r) = residual {
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, r.add(at)));
                    }
                    y = activate512_inline!(epilogue.activation, y);
                    _mm512_mask_storeu_ps(dst.add(at), m, y);
                }
            }
        }
    }
}
