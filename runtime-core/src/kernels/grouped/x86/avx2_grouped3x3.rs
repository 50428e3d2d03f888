//! AVX2 grouped 3×3 stride-1 conv of blocks of 8 output channels over a zero-padded copy of the
//! group's rows: tiles of 4 channels × 3 rows × 8 columns, the k loop in `asm!`.

use std::arch::x86_64::*;

use super::{Band, finish8, pad_rows, plane_width};

/// Grouped 3×3 stride-1 convs with at least 8 input channels per group, blocks of 8 output
/// channels and rows wider than one vector (ResNeXt-50's stages 2–3) on [`grouped3x3`]; false
/// otherwise (nothing written). Measured in-process against `tiles8`, alternating call by
/// call on cold copies (medians of ~1000 calls): 512 channels (16 a group) at 14×14 0.90–0.92×
/// the time at 1 thread, 0.79–0.89× at 2; 256 (8 a group) at 28×28 0.94–0.98×; at 7×7 (stage 4,
/// one vector a row, 3-row tiles over 7 rows) it took 1.25× and stays on `tiles8`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for `tiles_avx512`.
pub(crate) unsafe fn grouped3x3_avx2(b: &Band) -> bool {
    if b.kernel == 3
        && b.stride == [1, 1]
        && b.width == 8
        && b.wstride == 8
        && b.cin_g >= 8
        && b.out_w > 8
    {
        // SAFETY: forwarded from the caller.
        unsafe { grouped3x3(b) }
    } else {
        false
    }
}

/// Floats of stack [`grouped3x3`] copies zero-padded input rows into (24 KB), plus one vector of
/// slack for the copy's last whole-vector store.
const GROUPED3X3_BUF: usize = 6144;

/// Output rows of a [`grouped3x3`] tile.
const GROUPED3X3_ROWS: usize = 3;

/// AVX2 grouped 3×3 stride-1 conv of one block of 8 output channels over a zero-padded copy of
/// its group's input rows: tiles of 4 channels × [`GROUPED3X3_ROWS`] rows × 8 columns (12 accumulators),
/// each input vector loaded once per tap for 4 channels and each weight broadcast once for 3
/// rows, in one `asm!` loop over the input channels ([`taps_4x3`]). Output rows go in chunks whose
/// padded input rows, of every input channel, fit [`GROUPED3X3_BUF`]. Returns false (nothing written)
/// when even one tile's rows do not fit.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.width == b.wstride == 8`, `b.kernel == 3`, stride 1;
/// `b.output` valid for writes of the band's rows of its 8 planes, with no concurrent access.
#[target_feature(enable = "avx2,fma")]
unsafe fn grouped3x3(b: &Band) -> bool {
    const L: usize = 8;
    const R: usize = GROUPED3X3_ROWS;
    if b.rows.is_empty() {
        return true;
    }
    let pw = plane_width(b.out_w, 1, 3, b.pad_left, b.in_w);
    let fit_rows = GROUPED3X3_BUF / (pw * b.cin_g);
    if fit_rows < R + 2 {
        return false;
    }
    let chunk = (fit_rows - 2) / R * R;
    let out_plane = b.out_h * b.out_w;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut store = std::mem::MaybeUninit::<[f32; GROUPED3X3_BUF + L]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    let mut oy0 = b.rows.start;
    while oy0 < b.rows.end {
        let oy1 = (oy0 + chunk).min(b.rows.end);
        // Padded rows `oy0..oy0 + rows` (padded row `p` is input row `p - pad_top`) hold what
        // output rows `oy0..oy0 + n_out` read, `n_out` rounded up to whole tiles.
        let n_out = (oy1 - oy0).next_multiple_of(R);
        let rows = n_out + 2;
        // SAFETY: `rows <= fit_rows`, so `cin_g · rows · pw + 8 <= GROUPED3X3_BUF + 8` floats of
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

/// One tile of [`grouped3x3`]: `acc[o·3 + r]` += the 3×3 taps of output row `r`, channel `o`, over
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
