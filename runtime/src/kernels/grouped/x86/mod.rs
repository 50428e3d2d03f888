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
use crate::kernels::ConvShape;
use crate::kernels::gemm::x86_64::avx2::activate;
use crate::kernels::{load_strided, prefetch_piece};

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

/// Runs `b` on [`rows256`] if it is a band the row kernel takes; false otherwise (nothing
/// written).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for [`band_avx512`].
pub(super) unsafe fn rows_avx2(b: &Band) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => rows256::<3, 1>(b),
            (3, 2) => rows256::<3, 2>(b),
            (5, 1) => rows256::<5, 1>(b),
            (5, 2) => rows256::<5, 2>(b),
            _ => false,
        }
    }
}

/// Runs `b` on [`plane256`] if it is a depthwise band whose padded input fits its buffer; false
/// otherwise (nothing written).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for [`band_avx512`].
pub(super) unsafe fn plane_avx2(b: &Band) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => plane256::<3, 1>(b),
            (3, 2) => plane256::<3, 2>(b),
            (5, 1) => plane256::<5, 1>(b),
            (5, 2) => plane256::<5, 2>(b),
            _ => false,
        }
    }
}

/// Copies the input rows that padded rows `y0 .. y0 + rows` stand for, of the band's first
/// `channels` input planes, into `dst` zero-padded: padded row `p` of channel `c` starts at
/// `dst[(c·rows + p - y0)·pw]` and is input row `p - pad_top` (zeros outside the input); its
/// column `px` is input column `px - pad_left` (zeros outside the input; input columns at `pw`
/// and beyond are left out). Shared by the kernels that read a padded copy ([`plane256`],
/// [`planes3x3`], `pixels`).
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

/// Floats of stack [`plane256`] copies a zero-padded input plane into (24 KB: a 56×56 plane at
/// stride 1, 28×28 at stride 2).
const PLANE: usize = 6144;

/// Floats a padded row of [`plane256`]'s buffer holds: output column `ox` reads padded columns
/// `ox·s .. ox·s + k`; the last vector starts below `out_w` rounded up to 8 (`ow8`) and its loads
/// (two of 8 at stride 2) end before `ow8·s + k`; and the row holds the left padding and the
/// input row.
fn plane_width(out_w: usize, s: usize, k: usize, pad_left: usize, in_w: usize) -> usize {
    (out_w.next_multiple_of(8) * s + k).max(pad_left + in_w)
}

/// The most output rows a band of depthwise conv `s` may have for [`plane256`] to take it (its
/// padded input rows must fit [`PLANE`]), or `None` if `s` is not a shape it runs.
pub(super) fn plane_band_rows(s: &ConvShape) -> Option<usize> {
    let k = s.kernel[0];
    let depthwise = s.group == s.in_c && s.group == s.out_c;
    if !depthwise || !matches!(k, 3 | 5) || !matches!(s.stride[1], 1 | 2) {
        return None;
    }
    let pw = plane_width(s.out_w, s.stride[1], k, s.pads[1], s.in_w);
    let rows_fit = PLANE / pw;
    (rows_fit >= k).then(|| (rows_fit - k) / s.stride[0].max(1) + 1)
}

/// AVX2 depthwise conv of one channel (`cin_g == width == 1`), `K`×`K`, stride `S` (columns; rows
/// any), over a zero-padded copy of the input rows the band reads.
///
/// The padded copy leaves the inner loop without masks or bounds logic, as in [`rows256`], but is
/// made once per band instead of once per output row, and the `K·K` weights are broadcast once:
/// per output vector the loop is `K·K` loads (stride 2: two loads and a shuffle) and FMAs. On
/// MobileNetV2's small maps [`rows256`] spent most of its time setting up rows (960 channels of
/// 7×7: ~230 ns a channel, for 441 multiply-adds). Returns false (nothing written) when the
/// band is not depthwise or its padded rows do not fit [`PLANE`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// its plane, with no concurrent access there.
#[target_feature(enable = "avx2,fma")]
unsafe fn plane256<const K: usize, const S: usize>(b: &Band) -> bool {
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
    let mut w = [_mm256_setzero_ps(); MAX_TAPS];
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

/// Grouped 3×3 stride-1 convs with at least 8 input channels per group, blocks of 8 output
/// channels and rows wider than one vector (ResNeXt-50's stages 2–3) on [`planes3x3`]; false
/// otherwise (nothing written). Measured in-process against [`band256`], alternating call by
/// call on cold copies (medians of ~1000 calls): 512 channels (16 a group) at 14×14 0.90–0.92×
/// the time at 1 thread, 0.79–0.89× at 2; 256 (8 a group) at 28×28 0.94–0.98×; at 7×7 (stage 4,
/// one vector a row, 3-row tiles over 7 rows) it took 1.25× and stays on [`band256`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for [`band_avx512`].
pub(super) unsafe fn planes_avx2(b: &Band) -> bool {
    if b.kernel == 3
        && b.stride == [1, 1]
        && b.width == 8
        && b.wstride == 8
        && b.cin_g >= 8
        && b.out_w > 8
    {
        // SAFETY: forwarded from the caller.
        unsafe { planes3x3(b) }
    } else {
        false
    }
}

/// Floats of stack [`planes3x3`] copies zero-padded input rows into (24 KB), plus one vector of
/// slack for the copy's last whole-vector store.
const PLANES: usize = 6144;

/// Output rows of a [`planes3x3`] tile.
const PLANES_R: usize = 3;

/// AVX2 grouped 3×3 stride-1 conv of one block of 8 output channels over a zero-padded copy of
/// its group's input rows: tiles of 4 channels × [`PLANES_R`] rows × 8 columns (12 accumulators),
/// each input vector loaded once per tap for 4 channels and each weight broadcast once for 3
/// rows, in one `asm!` loop over the input channels ([`taps_4x3`]). Output rows go in chunks whose
/// padded input rows, of every input channel, fit [`PLANES`]. Returns false (nothing written)
/// when even one tile's rows do not fit.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.width == b.wstride == 8`, `b.kernel == 3`, stride 1;
/// `b.output` valid for writes of the band's rows of its 8 planes, with no concurrent access.
#[target_feature(enable = "avx2,fma")]
unsafe fn planes3x3(b: &Band) -> bool {
    const L: usize = 8;
    const R: usize = PLANES_R;
    if b.rows.is_empty() {
        return true;
    }
    let pw = plane_width(b.out_w, 1, 3, b.pad_left, b.in_w);
    let fit_rows = PLANES / (pw * b.cin_g);
    if fit_rows < R + 2 {
        return false;
    }
    let chunk = (fit_rows - 2) / R * R;
    let out_plane = b.out_h * b.out_w;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut store = std::mem::MaybeUninit::<[f32; PLANES + L]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    let mut oy0 = b.rows.start;
    while oy0 < b.rows.end {
        let oy1 = (oy0 + chunk).min(b.rows.end);
        // Padded rows `oy0..oy0 + rows` (padded row `p` is input row `p - pad_top`) hold what
        // output rows `oy0..oy0 + n_out` read, `n_out` rounded up to whole tiles.
        let n_out = (oy1 - oy0).next_multiple_of(R);
        let rows = n_out + 2;
        // SAFETY: `rows <= fit_rows`, so `cin_g · rows · pw + 8 <= PLANES + 8` floats of
        // `store`.
        unsafe { pad_rows(b, b.cin_g, oy0, rows, pw, base) };
        for o0 in [0, 4] {
            for oy in (oy0..oy1).step_by(R) {
                for ox in (0..b.out_w).step_by(L) {
                    let mut acc = [_mm256_setzero_ps(); 12];
                    let at = (oy - oy0) * pw + ox;
                    // SAFETY: padded rows `oy - oy0 .. oy - oy0 + R + 2 <= rows` of each of the
                    // `cin_g` channels (`rows · pw` apart), 8 floats from columns `ox..ox + 3`,
                    // which end within `pw` (see `plane_width`); the block's `cin_g · 72`
                    // weights from channel `o0` (`o0 + 4 <= 8 = wstride`).
                    unsafe {
                        taps_4x3(
                            base.add(at),
                            pw,
                            rows * pw,
                            b.weights.as_ptr().add(o0),
                            b.cin_g,
                            &mut acc,
                        )
                    };
                    let n = L.min(b.out_w - ox);
                    for o in 0..4 {
                        let bias = _mm256_set1_ps(b.bias.map_or(0.0, |bias| bias[o0 + o]));
                        for r in 0..R {
                            if oy + r < oy1 {
                                let y = _mm256_add_ps(acc[o * R + r], bias);
                                let at = (o0 + o) * out_plane + (oy + r) * b.out_w + ox;
                                // SAFETY: row `oy + r` is in `b.rows`, columns `ox..ox + n` of
                                // plane `o0 + o < 8` (the caller vouches for exclusive access
                                // there and for the residual's layout).
                                unsafe { finish8(b, y, at, n, lanes) };
                            }
                        }
                    }
                }
            }
        }
        oy0 = oy1;
    }
    true
}

/// One tile of [`planes3x3`]: `acc[o·3 + r]` += the 3×3 taps of output row `r`, channel `o`, over
/// `cin_g` input channels, as one `asm!` loop (written out because LLVM spilled the 12
/// accumulators of the intrinsics version).
///
/// # Safety
/// AVX2 and FMA; from `p`, 5 rows `pw` floats apart of 10 floats each are readable in each of
/// `cin_g` channels `chan` floats apart; `w` points at `cin_g · 72` readable weights laid out
/// `[ic][ky][kx][8]`, of which this reads the first 4 of each 8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn taps_4x3(
    p: *const f32,
    pw: usize,
    chan: usize,
    w: *const f32,
    cin_g: usize,
    acc: &mut [__m256; 12],
) {
    let [
        mut c0,
        mut c1,
        mut c2,
        mut c3,
        mut c4,
        mut c5,
        mut c6,
        mut c7,
        mut c8,
        mut c9,
        mut c10,
        mut c11,
    ] = *acc;
    // SAFETY: reads only what the contract makes readable; writes only the listed registers.
    unsafe {
        std::arch::asm!(
            "test {n}, {n}",
            "jz 3f",
            "2:",
            "vmovups ymm12, ymmword ptr [{q0} + 0]",
            "vmovups ymm13, ymmword ptr [{q1} + 0]",
            "vmovups ymm14, ymmword ptr [{q2} + 0]",
            "vbroadcastss ymm15, dword ptr [{w} + 0]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 4]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 8]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 12]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q0} + 4]",
            "vmovups ymm13, ymmword ptr [{q1} + 4]",
            "vmovups ymm14, ymmword ptr [{q2} + 4]",
            "vbroadcastss ymm15, dword ptr [{w} + 32]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 36]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 40]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 44]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q0} + 8]",
            "vmovups ymm13, ymmword ptr [{q1} + 8]",
            "vmovups ymm14, ymmword ptr [{q2} + 8]",
            "vbroadcastss ymm15, dword ptr [{w} + 64]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 68]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 72]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 76]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q1} + 0]",
            "vmovups ymm13, ymmword ptr [{q2} + 0]",
            "vmovups ymm14, ymmword ptr [{q3} + 0]",
            "vbroadcastss ymm15, dword ptr [{w} + 96]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 100]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 104]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 108]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q1} + 4]",
            "vmovups ymm13, ymmword ptr [{q2} + 4]",
            "vmovups ymm14, ymmword ptr [{q3} + 4]",
            "vbroadcastss ymm15, dword ptr [{w} + 128]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 132]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 136]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 140]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q1} + 8]",
            "vmovups ymm13, ymmword ptr [{q2} + 8]",
            "vmovups ymm14, ymmword ptr [{q3} + 8]",
            "vbroadcastss ymm15, dword ptr [{w} + 160]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 164]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 168]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 172]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q2} + 0]",
            "vmovups ymm13, ymmword ptr [{q3} + 0]",
            "vmovups ymm14, ymmword ptr [{q4} + 0]",
            "vbroadcastss ymm15, dword ptr [{w} + 192]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 196]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 200]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 204]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q2} + 4]",
            "vmovups ymm13, ymmword ptr [{q3} + 4]",
            "vmovups ymm14, ymmword ptr [{q4} + 4]",
            "vbroadcastss ymm15, dword ptr [{w} + 224]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 228]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 232]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 236]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "vmovups ymm12, ymmword ptr [{q2} + 8]",
            "vmovups ymm13, ymmword ptr [{q3} + 8]",
            "vmovups ymm14, ymmword ptr [{q4} + 8]",
            "vbroadcastss ymm15, dword ptr [{w} + 256]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 260]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 264]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{w} + 268]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "add {q0}, {cs}",
            "add {q1}, {cs}",
            "add {q2}, {cs}",
            "add {q3}, {cs}",
            "add {q4}, {cs}",
            "add {w}, 288",
            "dec {n}",
            "jnz 2b",
            "3:",
            q0 = inout(reg) p => _,
            q1 = inout(reg) p.wrapping_add(pw) => _,
            q2 = inout(reg) p.wrapping_add(2 * pw) => _,
            q3 = inout(reg) p.wrapping_add(3 * pw) => _,
            q4 = inout(reg) p.wrapping_add(4 * pw) => _,
            w = inout(reg) w => _,
            n = inout(reg) cin_g => _,
            cs = in(reg) chan * 4,
            inout("ymm0") c0, inout("ymm1") c1, inout("ymm2") c2, inout("ymm3") c3,
            inout("ymm4") c4, inout("ymm5") c5, inout("ymm6") c6, inout("ymm7") c7,
            inout("ymm8") c8, inout("ymm9") c9, inout("ymm10") c10, inout("ymm11") c11,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        );
    }
    *acc = [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11];
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
///
/// # Safety
/// As for [`band512`]; also `b.out_w <= 8`.
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

/// The AVX2 twin of [`band512`]: tiles of `OB` output channels × `R` output rows × 8 consecutive
/// output columns, borders by masked loads, tails by masked stores.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `OB == b.width`, `K == b.kernel`, `S == b.stride[1]`;
/// `b.output` must be valid for writes of the band's rows of its `OB` planes, with no concurrent
/// access there.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn band256<const K: usize, const S: usize, const OB: usize, const R: usize>(b: &Band) {
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

/// Floats of stack the AVX2 row kernel keeps its zero-padded input rows in (32 KB): `cin_g · K`
/// rows of the padded width; bands that need more go to [`band256`].
const RING: usize = 8192;

/// Input channels per group up to which [`rows256`] runs grouped convs, at column stride 1 and 2.
/// It refills its rows for every block of output channels, which pays off while the rows are few;
/// measured on ResNeXt-50's shapes (`bench_grouped`, three alternated runs against [`band256`]):
/// stage 1 (4 channels, 56×56) 2.3× faster, stage 2's stride-2 conv (8 channels) 1.5–3× faster,
/// but stage 2's stride-1 convs (8 channels, 28 columns in steps of 24) 1.5–2× slower, so those and
/// stages 3–4 (16 and 32 channels per group) stay on [`band256`].
const ROWS_MAX_CIN: [usize; 2] = [4, 8];

/// AVX2 direct conv by output rows over zero-padded input rows: depthwise convs and grouped convs
/// with few channels per group, `K`×`K`, stride `S` (columns; rows any).
///
/// The input rows an output row reads, of every input channel of the group, are copied into a
/// ring of zero-padded row buffers on the stack (row `iy` in buffer `iy mod K`, copied once while
/// output rows read it), so the inner loop has no masks and no bounds logic: unaligned loads at
/// each tap's offset (stride 2: two loads, even lanes kept), then `OB` output channels × `V`
/// vectors of 8 columns in registers ([`row_block`]). The tile kernel [`band256`] worked out masks
/// and offsets for every 8-column tile and spilled registers for stride 2 (12% of the FMA peak on
/// ResNeXt's 56×56 stride-2 grouped conv, 1–2 GFLOP/s on MobileNetV2's depthwise convs). Returns
/// false (nothing written) when the band is not one it takes.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// its `b.width` planes, with no concurrent access there.
// The ring's slots read best indexed by kernel row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows256<const K: usize, const S: usize>(b: &Band) -> bool {
    // Buffer columns the loads may touch: each step's last vector starts before `out_w` rounded
    // up to 8, at most 4 vectors of 8 on, and reads S·8 + K floats from there; beyond the row's
    // padded end, only zeros.
    let cap = (b.out_w.next_multiple_of(8) + 32) * S + K + 8 * S;
    let used = b.cin_g * K * cap;
    if used > RING || b.pad_left + b.in_w > cap || b.cin_g > ROWS_MAX_CIN[S - 1] {
        return false;
    }
    // Uninitialised but for the `used` floats, zeroed here (zeroing all 32 KB cost more than the
    // conv itself on small planes). Only the input columns of a row are ever written, so the
    // padding stays zero: column `j` of buffer `(ic, slot)` is input column `j - pad_left` of the
    // row it holds, or zero.
    let mut store = std::mem::MaybeUninit::<[f32; RING]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    // SAFETY: `used <= RING` floats of `store`, zeroed before the slice is made.
    let ring = unsafe {
        std::ptr::write_bytes(base, 0, used);
        std::slice::from_raw_parts_mut(base, used)
    };
    let plane = b.in_h * b.in_w;
    let mut held = [usize::MAX; K];
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
                for ic in 0..b.cin_g {
                    let at = (ic * K + slot) * cap + b.pad_left;
                    ring[at..at + b.in_w]
                        .copy_from_slice(&b.input[ic * plane + iy * b.in_w..][..b.in_w]);
                }
                held[slot] = iy;
            }
            live[ky] = Some(slot);
        }
        let step = RowStep {
            ring: ring.as_ptr(),
            cap,
            live,
            oy,
            o0: 0,
        };
        let mut o0 = 0;
        while o0 < b.width {
            let ob = (b.width - o0).min(4);
            let step = RowStep { o0, ..step };
            // SAFETY: the ring holds `cin_g · K` buffers of `cap` floats (see `row_block`);
            // output channels `o0..o0 + ob` are in the block; forwarded from the caller.
            unsafe {
                match (ob, S) {
                    // One channel (depthwise): as many vectors as the row needs, up to 4 (a
                    // 7-column row in four vectors did four times the FMAs it kept).
                    (1, _) => match b.out_w.div_ceil(8) {
                        1 => row_block::<K, S, 1, 1>(b, &step),
                        2 => row_block::<K, S, 1, 2>(b, &step),
                        3 => row_block::<K, S, 1, 3>(b, &step),
                        _ => row_block::<K, S, 1, 4>(b, &step),
                    },
                    (2, 1) => row_block::<K, S, 2, 4>(b, &step),
                    (2, _) => row_block::<K, S, 2, 3>(b, &step),
                    (3, 1) => row_block::<K, S, 3, 3>(b, &step),
                    (3, _) => row_block::<K, S, 3, 2>(b, &step),
                    (_, 1) => row_block::<K, S, 4, 3>(b, &step),
                    (_, _) => row_block::<K, S, 4, 2>(b, &step),
                }
            }
            o0 += ob;
        }
    }
    true
}

/// One output row of [`rows256`] for some of the block's channels.
#[derive(Clone, Copy)]
struct RowStep<Live: Copy> {
    /// `cin_g · K` padded rows of `cap` floats: buffer `(ic, slot)` at `(ic · K + slot) · cap`.
    ring: *const f32,
    cap: usize,
    /// Per kernel row `ky`: the buffer slot of its input row, or none (a row of the padding).
    live: Live,
    oy: usize,
    /// The first of the block's output channels this step computes.
    o0: usize,
}

/// Output row `r.oy`, channels `r.o0..r.o0 + OB` of the block, `V` vectors of 8 columns at a time.
///
/// # Safety
/// AVX2 and FMA; `r.ring` as documented on [`RowStep`], with `cap` as [`rows256`] sizes it;
/// `r.o0 + OB <= b.width`; `b.output` as for [`rows256`].
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_block<const K: usize, const S: usize, const OB: usize, const V: usize>(
    b: &Band,
    r: &RowStep<[Option<usize>; K]>,
) {
    const L: usize = 8;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let out_plane = b.out_h * b.out_w;
    let weights = b.weights.as_ptr();
    let mut ox0 = 0;
    while ox0 < b.out_w {
        let mut acc = [[_mm256_setzero_ps(); V]; OB];
        for ic in 0..b.cin_g {
            for ky in 0..K {
                let Some(slot) = r.live[ky] else { continue };
                let row = r.ring.wrapping_add((ic * K + slot) * r.cap);
                for kx in 0..K {
                    let mut x = [_mm256_setzero_ps(); V];
                    for v in 0..V {
                        let at = (ox0 + v * L) * S + kx;
                        // SAFETY: `ox0 < out_w` and `v < V <= 4`, so `at + 8·S <= cap` (see
                        // `rows256`): inside this row buffer.
                        x[v] = unsafe { load_strided::<S>(row.add(at)) };
                    }
                    let tap = ((ic * K + ky) * K + kx) * b.wstride + r.o0;
                    for o in 0..OB {
                        // SAFETY: `tap + o` indexes tap `(ic, ky, kx)` of channel `o0 + o <
                        // width` in the block's packed weights (`Band::weights`).
                        let w = _mm256_set1_ps(unsafe { *weights.add(tap + o) });
                        for v in 0..V {
                            acc[o][v] = _mm256_fmadd_ps(w, x[v], acc[o][v]);
                        }
                    }
                }
            }
        }
        for o in 0..OB {
            let oc = r.o0 + o;
            // The bias after the sum, as the reference adds it.
            let bias = _mm256_set1_ps(b.bias.map_or(0.0, |bias| bias[oc]));
            for v in 0..V {
                let ox = ox0 + v * L;
                if ox >= b.out_w {
                    break;
                }
                let at = oc * out_plane + r.oy * b.out_w + ox;
                let y = _mm256_add_ps(acc[o][v], bias);
                // SAFETY: row `oy` is in `b.rows`, columns `ox..ox + n` of plane `oc < width`
                // (the caller vouches for exclusive access there and for the residual's layout).
                unsafe { finish8(b, y, at, L.min(b.out_w - ox), lanes) };
            }
        }
        ox0 += V * L;
    }
}
