//! AVX2 depthwise conv over a zero-padded copy of a band's input rows, the `K·K` weights
//! broadcast once per band.

use std::arch::x86_64::*;

use super::{Band, DW_MAX_TAPS, finish8, pad_rows, plane_width};
use crate::kernels::{ConvShape, load_strided};

/// Runs `b` on [`depthwise_plane`] if it is a depthwise band whose padded input fits its buffer; false
/// otherwise (nothing written).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for `tiles_avx512`.
pub(crate) unsafe fn depthwise_plane_avx2(b: &Band) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => depthwise_plane::<3, 1>(b),
            (3, 2) => depthwise_plane::<3, 2>(b),
            (5, 1) => depthwise_plane::<5, 1>(b),
            (5, 2) => depthwise_plane::<5, 2>(b),
            (7, 1) => depthwise_plane::<7, 1>(b),
            (7, 2) => depthwise_plane::<7, 2>(b),
            _ => false,
        }
    }
}

/// Floats of stack [`depthwise_plane`] copies a zero-padded input plane into (24 KB: a 56×56 plane at
/// stride 1, 28×28 at stride 2).
const PLANE: usize = 6144;

/// The most output rows a band of depthwise conv `s` may have for [`depthwise_plane`] to take it (its
/// padded input rows must fit [`PLANE`]), or `None` if `s` is not a shape it runs.
pub(crate) fn depthwise_band_rows(s: &ConvShape) -> Option<usize> {
    let k = s.kernel[0];
    let depthwise = s.group == s.in_c && s.group == s.out_c;
    if !depthwise || !matches!(k, 3 | 5 | 7) || !matches!(s.stride[1], 1 | 2) {
        return None;
    }
    let pw = plane_width(s.out_w, s.stride[1], k, s.pads[1], s.in_w);
    let rows_fit = PLANE / pw;
    (rows_fit >= k).then(|| (rows_fit - k) / s.stride[0].max(1) + 1)
}

/// AVX2 depthwise conv of one channel (`cin_g == width == 1`), `K`×`K`, stride `S` (columns; rows
/// any), over a zero-padded copy of the input rows the band reads.
///
/// The padded copy leaves the inner loop without masks or bounds logic, as in `padded_rows`, but is
/// made once per band instead of once per output row, and the `K·K` weights are broadcast once:
/// per output vector the loop is `K·K` loads (stride 2: two loads and a shuffle) and FMAs. On
/// MobileNetV2's small maps `padded_rows` spent most of its time setting up rows (960 channels of
/// 7×7: ~230 ns a channel, for 441 multiply-adds). Returns false (nothing written) when the
/// band is not depthwise or its padded rows do not fit [`PLANE`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// its plane, with no concurrent access there.
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_plane<const K: usize, const S: usize>(b: &Band) -> bool {
    const L: usize = 8;
    if b.cin_g != 1 || b.width != 1 || b.rows.is_empty() {
        return false;
    }
    let pw = plane_width(b.out_w, S, K, b.pad_left, b.in_w);
    // Padded rows `r0..r1` hold what output rows `b.rows` read (padded row `p` is input row
    // `p - pad_top`).
    let r0 = b.rows.start * b.stride[0];
    let r1 = (b.rows.end - 1) * b.stride[0] + K;
    if pw * (r1 - r0) > PLANE {
        return false;
    }
    let mut store = std::mem::MaybeUninit::<[f32; PLANE + 8]>::uninit();
    // SAFETY: `pw · (r1 - r0) + 8 <= PLANE + 8` floats of `store`, all written by `pad_rows`
    // before the slice is made.
    let buf = unsafe {
        let base = store.as_mut_ptr().cast::<f32>();
        pad_rows(b, 1, r0, r1 - r0, pw, base);
        std::slice::from_raw_parts(base, pw * (r1 - r0))
    };
    let mut w = [_mm256_setzero_ps(); DW_MAX_TAPS];
    for (t, wv) in w.iter_mut().enumerate().take(K * K) {
        *wv = _mm256_set1_ps(b.weights[t * b.wstride]);
    }
    let bias = _mm256_set1_ps(b.bias.map_or(0.0, |bias| bias[0]));
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let src = buf.as_ptr();
    for oy in b.rows.clone() {
        let top = oy * b.stride[0] - r0;
        for ox in (0..b.out_w).step_by(L) {
            let mut acc = _mm256_setzero_ps();
            for ky in 0..K {
                for kx in 0..K {
                    let at = (top + ky) * pw + ox * S + kx;
                    // SAFETY: row `top + ky < r1 - r0`, and the `8·S` floats from column
                    // `ox·S + kx` end within the row's `pw` (see `plane_width`): inside `buf`.
                    let x = unsafe { load_strided::<S>(src.add(at)) };
                    acc = _mm256_fmadd_ps(w[ky * K + kx], x, acc);
                }
            }
            // The bias after the sum, as the reference adds it.
            let y = _mm256_add_ps(acc, bias);
            // SAFETY: row `oy` is in `b.rows`, columns `ox..ox + n` of the plane (the caller
            // vouches for exclusive access there and for the residual's layout).
            unsafe { finish8(b, y, oy * b.out_w + ox, L.min(b.out_w - ox), lanes) };
        }
    }
    true
}
