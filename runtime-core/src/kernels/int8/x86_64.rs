//! The x86-64 int8 tiles: AVX-512 VNNI (`vpdpbusd`) and AVX2 (bytes widened to i16, `vpmaddwd`),
//! of the im2col path and of the direct path (`direct`), and the direct path's AVX-512 input
//! quantization.

use std::arch::x86_64::*;

use super::direct::{self, LANES};
use super::{Addend, BLOCK_M, QOutput, Quant, SumRule, Tile};
use crate::kernels::SharedOut;

/// Computes `tile` into `y` with `vpdpbusd`: 2 blocks of 16 channels × 8 pixels per register tile.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX512_VNNI; `y` must be the image's output
/// (`out_c · pixels` floats) of which this tile's elements are written by no one else.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile_vnni(t: &Tile, y: SharedOut) {
    let mut m0 = t.m.start;
    while m0 < t.m.end {
        let two = t.m.end - m0 > BLOCK_M;
        let mut p = t.p.start;
        while p + 8 <= t.p.end {
            // SAFETY: as this function's contract; `m0`'s blocks and pixels `p..p + 8` are in the tile.
            unsafe {
                if two {
                    micro_vnni::<2, 8>(t, m0, p, y)
                } else {
                    micro_vnni::<1, 8>(t, m0, p, y)
                }
            }
            p += 8;
        }
        while p < t.p.end {
            // SAFETY: as above, for pixel `p`.
            unsafe {
                if two {
                    micro_vnni::<2, 1>(t, m0, p, y)
                } else {
                    micro_vnni::<1, 1>(t, m0, p, y)
                }
            }
            p += 1;
        }
        m0 += if two { 2 * BLOCK_M } else { BLOCK_M };
    }
}

/// `MB` blocks of 16 channels from `m0` × `NR` pixels from `p0`.
///
/// # Safety
/// As [`tile_vnni`]; the blocks and pixels are within the packed weights, the im2col rows and the tile.
// Register tiles index their accumulators by pixel and block: the loops are over both.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn micro_vnni<const MB: usize, const NR: usize>(
    t: &Tile,
    m0: usize,
    p0: usize,
    y: SharedOut,
) {
    let kp = t.packed.kp;
    let kq = kp / 4;
    let weight = &t.packed.weight[m0 / BLOCK_M * kq * 64..][..MB * kq * 64];
    let cols = &t.cols[p0 * kp..][..NR * kp];
    let mut acc = [[_mm512_setzero_si512(); NR]; MB];
    for q in 0..kq {
        // SAFETY: block `b`'s 64 bytes of group `q` lie within `weight` (`MB · kq · 64` bytes).
        let w: [__m512i; MB] = std::array::from_fn(|b| unsafe {
            _mm512_loadu_si512(weight.as_ptr().add((b * kq + q) * 64) as *const __m512i)
        });
        for j in 0..NR {
            // SAFETY: bytes `4q .. 4q + 4` of pixel `j`'s row lie within `cols` (`NR · kp` bytes).
            let x = unsafe { (cols.as_ptr().add(j * kp + q * 4) as *const i32).read_unaligned() };
            let x = _mm512_set1_epi32(x);
            for b in 0..MB {
                acc[b][j] = _mm512_dpbusd_epi32(acc[b][j], x, w[b]);
            }
        }
    }
    for (b, acc) in acc.iter().enumerate() {
        let mb = m0 + b * BLOCK_M;
        // SAFETY: bias and multiplier hold `m_padded` values, a multiple of 16 past `mb`.
        let (bias, mult) = unsafe {
            (
                _mm512_loadu_si512(t.packed.bias.as_ptr().add(mb) as *const __m512i),
                _mm512_loadu_ps(t.packed.multiplier.as_ptr().add(mb)),
            )
        };
        let lanes = BLOCK_M.min(t.m.end - mb);
        for (j, &a) in acc.iter().enumerate() {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, bias)), mult);
            let v = match t.out {
                QOutput::Requant { quant, min, max } => {
                    let lo = _mm512_set1_ps((min - quant.zero_point) as f32);
                    let hi = _mm512_set1_ps((max - quant.zero_point) as f32);
                    let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                        _mm512_min_ps(_mm512_max_ps(v, lo), hi),
                    );
                    _mm512_mul_ps(r, _mm512_set1_ps(quant.scale))
                }
                QOutput::Float { relu: true } => _mm512_max_ps(v, _mm512_setzero_ps()),
                QOutput::Float { relu: false } => v,
            };
            let mut lane_values = [0f32; BLOCK_M];
            // SAFETY: `lane_values` holds 16 floats.
            unsafe { _mm512_storeu_ps(lane_values.as_mut_ptr(), v) };
            for (l, &v) in lane_values.iter().enumerate().take(lanes) {
                let v = t.finish(v, mb + l, p0 + j);
                // SAFETY: channel `mb + l` and pixel `p0 + j` are this tile's (the caller's contract).
                unsafe { super::store(y, t.codes, (mb + l) * t.pixels + p0 + j, v) };
            }
        }
    }
}

/// Computes `tile` into `y` with AVX2: 16 channels × 2 pixels per register tile.
///
/// # Safety
/// The CPU must have AVX2; `y` as for [`tile_vnni`].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile_avx2(t: &Tile, y: SharedOut) {
    for m0 in t.m.clone().step_by(BLOCK_M) {
        let mut p = t.p.start;
        while p + 2 <= t.p.end {
            // SAFETY: as this function's contract, for pixels `p..p + 2` of the tile.
            unsafe { micro_avx2::<2>(t, m0, p, y) };
            p += 2;
        }
        if p < t.p.end {
            // SAFETY: as above, for pixel `p`.
            unsafe { micro_avx2::<1>(t, m0, p, y) };
        }
    }
}

/// The 16 channels from `m0` × `NR` pixels from `p0`. Each 4-channel quarter of a 64-byte weight
/// group widens to 16 i16 (`[c0k0..c0k3, c1k0..]`); `vpmaddwd` with the pixel's 4 bytes (as i16,
/// repeated) gives each channel's two pair sums, added per channel by one `vphaddd` at the end.
///
/// # Safety
/// As [`tile_avx2`]; the block and pixels are within the packed weights, the rows and the tile.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2")]
unsafe fn micro_avx2<const NR: usize>(t: &Tile, m0: usize, p0: usize, y: SharedOut) {
    let kp = t.packed.kp;
    let kq = kp / 4;
    let weight = &t.packed.weight[m0 / BLOCK_M * kq * 64..][..kq * 64];
    let cols = &t.cols[p0 * kp..][..NR * kp];
    let mut acc = [[_mm256_setzero_si256(); NR]; 4];
    for q in 0..kq {
        // SAFETY: quarter `g` of group `q` (16 bytes) lies within `weight` (`kq · 64` bytes).
        let w: [__m256i; 4] = std::array::from_fn(|g| unsafe {
            _mm256_cvtepi8_epi16(_mm_loadu_si128(
                weight.as_ptr().add(q * 64 + g * 16) as *const __m128i
            ))
        });
        for j in 0..NR {
            // SAFETY: bytes `4q .. 4q + 4` of pixel `j`'s row lie within `cols`.
            let x = unsafe { (cols.as_ptr().add(j * kp + q * 4) as *const i32).read_unaligned() };
            let x = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(x)));
            for g in 0..4 {
                acc[g][j] = _mm256_add_epi32(acc[g][j], _mm256_madd_epi16(w[g], x));
            }
        }
    }
    // `vphaddd` of quarters (0, 1) gives channels [0, 1, 4, 5, 2, 3, 6, 7]: put them in order.
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    let lanes = BLOCK_M.min(t.m.end - m0);
    for j in 0..NR {
        let mut sums = [0i32; BLOCK_M];
        for half in 0..2 {
            let h = _mm256_hadd_epi32(acc[2 * half][j], acc[2 * half + 1][j]);
            let h = _mm256_permutevar8x32_epi32(h, order);
            // SAFETY: `sums` holds 16 i32, this half's 8 at `8 · half`.
            unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(8 * half) as *mut __m256i, h) };
        }
        for (l, &a) in sums.iter().enumerate().take(lanes) {
            let m = m0 + l;
            let v = t.out.apply(a, t.packed.bias[m], t.packed.multiplier[m]);
            let v = t.finish(v, m, p0 + j);
            // SAFETY: channel `m` and pixel `p0 + j` are this tile's (the caller's contract).
            unsafe { super::store(y, t.codes, m * t.pixels + p0 + j, v) };
        }
    }
}

/// The direct conv's register tile (`direct` module): `MR` channels from `m0` (of one group) × `NR`
/// vectors of 16 flat output positions from `v0`; per kernel word, `NR` input loads, `MR` weight
/// broadcasts and `MR · NR` `vpdpbusd`. The epilogue keeps each vector's lanes of `stores` (the
/// output columns, compressed together) and writes them to consecutive outputs.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX512_VNNI; `y` must be the image's output
/// (`out_c · pixels` floats) of which these channels' kept pixels are written by no one else;
/// `stores` holds `NR` entries.
// Register tiles index their accumulators by channel and vector: the loops are over both.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn direct_vnni<const MR: usize, const NR: usize>(
    t: &direct::Tile,
    m0: usize,
    v0: usize,
    stores: &[direct::Store],
    y: SharedOut,
) {
    let l = &t.layout;
    let kk = t.k_words();
    // Every load below reads words `xg + cb · block_len + off + j · 16 ..+ 16` for the group's
    // blocks `cb`, the taps' offsets `off` and `j < NR`: all within `t.x` (`tile_start` checks).
    let xg = l.tile_start(t.taps, m0, t.mg, v0 * LANES, NR * LANES, t.x.len());
    let w = &t.w[m0 * kk..][..MR * kk];
    let (x, w) = (t.x.as_ptr(), w.as_ptr());
    // The residual the epilogue reads, requested now so that it arrives during the products (it
    // was written layers ago: at batch 8 it has left the caches). Never faults.
    if let Some((_, r)) = &t.sum {
        let (first, last) = (stores[0].start, stores[NR - 1].start + LANES);
        let (base, size) = match r {
            Addend::Real(r) => (r.as_ptr() as *const i8, 4),
            Addend::Codes(r, _) => (r.as_ptr() as *const i8, 1),
        };
        for i in 0..MR {
            let at = (m0 + i) * t.pixels;
            let lo = base.wrapping_add((at + first) * size);
            let hi = base.wrapping_add((at + last) * size);
            let mut p = lo;
            while p < hi {
                _mm_prefetch::<_MM_HINT_T0>(p);
                p = p.wrapping_add(64);
            }
            _mm_prefetch::<_MM_HINT_T0>(hi);
        }
    }
    let mut acc = [[_mm512_setzero_si512(); NR]; MR];
    for cb in 0..l.cbg {
        let xb = xg + cb * l.block_len;
        for (ti, &off) in t.taps.iter().enumerate() {
            // SAFETY: vector `j`'s 16 words lie within `t.x` (checked by `tile_start`).
            let xv: [__m512i; NR] = std::array::from_fn(|j| unsafe {
                _mm512_loadu_si512(x.add(xb + off + j * LANES) as *const __m512i)
            });
            let k = ti * l.cbg + cb;
            for i in 0..MR {
                // SAFETY: `i · kk + k < MR · kk`, the length of `w`.
                let wv = _mm512_set1_epi32(unsafe { *w.add(i * kk + k) } as i32);
                for j in 0..NR {
                    acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv[j], wv);
                }
            }
        }
    }
    let mut values = [[_mm512_setzero_ps(); NR]; MR];
    for (i, acc) in acc.iter().enumerate() {
        let at = t.at(m0 + i);
        let bias = _mm512_set1_epi32(t.packed.bias[at]);
        let mult = _mm512_set1_ps(t.packed.multiplier[at]);
        for (j, &a) in acc.iter().enumerate() {
            values[i][j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, bias)), mult);
        }
    }
    if let Some((rule, r)) = &t.sum {
        let place = Place {
            base: m0 * t.pixels,
            stride: t.pixels,
        };
        // SAFETY: forwarded from the caller.
        return unsafe { finish_sums_512(t.out, t.codes, rule, r, &values, place, stores, y) };
    }
    for (i, values) in values.iter().enumerate() {
        let m = m0 + i;
        for (j, &v) in values.iter().enumerate() {
            let st = stores[j];
            // SAFETY: the kept lanes are outputs `start .. start + kept` of channel `m`, this
            // tile's (the caller's contract).
            unsafe { finish_512!(t.out, t.codes, None, v, st, y, m * t.pixels + st.start) };
        }
    }
}

/// The direct path's register tile on AMX-INT8, in steps of `kw` words ([`direct::amx_step`]): channels `m0 .. m0 + mr` (`mr <= 32`) × the
/// vectors of `stores` (1 or 2) from `v0`. Per kernel tap, the packed direct weights (a channel's
/// words of the tap in a row) are AMX's first operand as they are, and the quantized input's
/// blocks at the tap's offset (16 pixels' words a row, a block's plane apart) its second; `tdpbsud` sums the same integer products as `vpdpbusd`,
/// which then go through the same epilogue.
///
/// # Safety
/// As [`direct_vnni`]; the AMX tiles configured on this thread (`amx::configure`), AMX-INT8
/// usable, configured for `kw` (`amx::DirectConfig`), and `kw` [`direct::amx_step`]'s.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn direct_amx(
    t: &direct::Tile,
    m0: usize,
    mr: usize,
    v0: usize,
    stores: &[direct::Store],
    y: SharedOut,
    kw: usize,
) {
    use crate::kernels::gemm::x86_64::amx;
    let l = &t.layout;
    let kk = t.k_words();
    let nr = stores.len();
    let x = l
        .amx_inputs(t.x, t.taps, (m0, t.mg), (v0, nr))
        .map(|p| p as *const u8);
    let mut padded = Vec::new();
    let w = amx::weight_blocks(t.w, kk, m0, mr, &mut padded).map(|p| p as *const u8);
    let mut stage = [0i32; 1024];
    // SAFETY: the tiles are configured for `kw` and AMX-INT8 usable (the caller's contract). Per
    // tap, the weight rows as chosen above (16 rows of `kk` words from the tap's `cbg` words,
    // `cbg = kw · steps`) and the code rows inside `t.x` (`Layout::amx_inputs`: every block's
    // `nr` vectors at every tap's offset).
    unsafe {
        amx::zero_acc();
        for (ti, &off) in t.taps.iter().enumerate() {
            let at = |p: *const u8| p.wrapping_add(4 * (ti * l.cbg));
            let x = x.map(|p| p.wrapping_add(4 * off));
            amx::accumulate_i8(w.map(at), 4 * kk, x, 4 * l.block_len, l.cbg / kw, kw);
        }
        amx::store_acc(stage.as_mut_ptr() as *mut u8);
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match nr {
            1 => finish_amx::<1>(t, m0, mr, &stage, stores, y),
            _ => finish_amx::<2>(t, m0, mr, &stage, stores, y),
        }
    }
}

/// [`direct_amx`]'s epilogue: channel by channel, [`direct_vnni`]'s.
///
/// # Safety
/// As [`direct_vnni`]; `NR == stores.len()`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn finish_amx<const NR: usize>(
    t: &direct::Tile,
    m0: usize,
    mr: usize,
    stage: &[i32; 1024],
    stores: &[direct::Store],
    y: SharedOut,
) {
    // With a residual step, whole blocks of 8 channels in one call of the out-of-line epilogue
    // (a call per channel cost more than the sums of a 1×1 conv over 64 channels).
    let mut c = 0;
    if let Some((rule, r)) = &t.sum {
        while c + 8 <= mr {
            let values: [[__m512; NR]; 8] = std::array::from_fn(|i| {
                let at = t.at(m0 + c + i);
                let bias = _mm512_set1_epi32(t.packed.bias[at]);
                let mult = _mm512_set1_ps(t.packed.multiplier[at]);
                std::array::from_fn(|j| {
                    let row = c + i;
                    // SAFETY: block `2·(row / 16) + j` (< 4) row `row % 16` of `stage`: 16
                    // i32 inside it.
                    let acc = unsafe {
                        _mm512_loadu_si512(
                            stage
                                .as_ptr()
                                .add(256 * (2 * (row / 16) + j) + 16 * (row % 16))
                                as *const __m512i,
                        )
                    };
                    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, bias)), mult)
                })
            });
            let place = Place {
                base: (m0 + c) * t.pixels,
                stride: t.pixels,
            };
            // SAFETY: forwarded from the caller.
            unsafe { finish_sums_512::<8, NR>(t.out, t.codes, rule, r, &values, place, stores, y) };
            c += 8;
        }
    }
    for c in c..mr {
        let m = m0 + c;
        let at = t.at(m);
        let bias = _mm512_set1_epi32(t.packed.bias[at]);
        let mult = _mm512_set1_ps(t.packed.multiplier[at]);
        let values: [[__m512; NR]; 1] = [std::array::from_fn(|j| {
            // SAFETY: block `2·(c / 16) + j` (< 4) row `c % 16` of `stage`: 16 i32 inside it.
            let acc = unsafe {
                _mm512_loadu_si512(
                    stage.as_ptr().add(256 * (2 * (c / 16) + j) + 16 * (c % 16)) as *const __m512i
                )
            };
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, bias)), mult)
        })];
        if let Some((rule, r)) = &t.sum {
            let place = Place {
                base: m * t.pixels,
                stride: t.pixels,
            };
            // SAFETY: forwarded from the caller.
            unsafe { finish_sums_512::<1, NR>(t.out, t.codes, rule, r, &values, place, stores, y) };
            continue;
        }
        for (j, &v) in values[0].iter().enumerate() {
            let st = stores[j];
            // SAFETY: the kept lanes are outputs `start .. start + kept` of channel `m`, this
            // tile's (the caller's contract).
            unsafe { finish_512!(t.out, t.codes, None, v, st, y, m * t.pixels + st.start) };
        }
    }
}

/// The lanes of `v` that `st` keeps, moved side by side to the low lanes, the mask of those low
/// lanes and their count.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn compress_kept_512(st: direct::Store, v: __m512) -> (__m512, u16, usize) {
    let kept = st.mask.count_ones() as usize;
    if st.mask == u16::MAX {
        (v, u16::MAX, kept)
    } else {
        let low = ((1u32 << kept) - 1) as u16;
        (_mm512_maskz_compress_ps(st.mask, v), low, kept)
    }
}

/// The rest of an epilogue (see [`finish_sum_512`]; that one, out of line, for the outputs with a
/// residual step), as a macro so the kernels' loops inline it: as an `#[inline]` function LLVM
/// kept it out of line, a call per vector. Expands to unsafe calls: use it in an `unsafe` block
/// under [`finish_sum_512`]'s contract.
macro_rules! finish_512 {
    ($out:expr, $codes:expr, $sum:expr, $v:expr, $st:expr, $y:expr, $at:expr) => {{
        // The residual step's rule and input by reference: they live in the tile, and passing
        // copies made on the stack for each call stalled its first loads (store forwarding).
        let (out, codes, sum, v, st, y, at) = ($out, $codes, &$sum, $v, $st, $y, $at);
        match (sum, codes) {
            (Some((rule, r)), _) => {
                $crate::kernels::int8::x86_64::finish_sum_512(out, codes, rule, r, v, st, y, at)
            }
            (None, Some(quant)) => {
                $crate::kernels::int8::x86_64::store_codes_512(out, quant, v, st, y, at)
            }
            (None, None) => {
                let (v, low, _) = $crate::kernels::int8::x86_64::compress_kept_512(
                    st,
                    $crate::kernels::int8::x86_64::epilogue_512(out, v),
                );
                std::arch::x86_64::_mm512_mask_storeu_ps(y.ptr().wrapping_add(at), low, v)
            }
        }
    }};
}
pub(super) use finish_512;

/// The rest of an epilogue with a residual step, on 16 values `v = (acc + bias) · multiplier` of
/// which `st` keeps some: the output rule, the residual step (`v + r` requantized by `rule`, `r`
/// the residual's elements from `at`), then the kept lanes stored side by side from element `at`
/// of `y`, as `f32` values or, with `codes`, as u8 codes of the residual step's quantization.
///
/// # Safety
/// The CPU must have AVX-512F and BW; the kept outputs `at .. at + kept` of the buffer `y` points
/// to (bytes with `codes`) are the caller's alone.
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn finish_sum_512(
    out: QOutput,
    codes: Option<Quant>,
    rule: &SumRule,
    r: &Addend,
    v: __m512,
    st: direct::Store,
    y: SharedOut,
    at: usize,
) {
    let place = Place {
        base: at - st.start,
        stride: 0,
    };
    // SAFETY: forwarded from the caller.
    unsafe { finish_sums_512(out, codes, rule, r, &[[v]], place, &[st], y) }
}

/// Where a tile's vectors go: vector `j` of channel `i` from output `base + i · stride +
/// stores[j].start`.
#[derive(Clone, Copy)]
struct Place {
    base: usize,
    stride: usize,
}

/// [`finish_sum_512`] for a register tile, one call for all its vectors (a call per vector cost
/// more than the products of a 1×1 conv over 64 channels): `values[i][j]` of channel `i` and
/// vector `stores[j]`, placed by `place`.
///
/// # Safety
/// As [`finish_sum_512`], for every channel and vector of the tile.
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn finish_sums_512<const MR: usize, const NR: usize>(
    out: QOutput,
    codes: Option<Quant>,
    rule: &SumRule,
    r: &Addend,
    values: &[[__m512; NR]; MR],
    place: Place,
    stores: &[direct::Store],
    y: SharedOut,
) {
    let (rule, r) = (*rule, *r);
    let round = |x| _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
    let clamp = |z| {
        // `max` returns its second operand (`lo`) where `z` is NaN, as `f32::max`.
        _mm512_min_ps(
            _mm512_max_ps(z, _mm512_set1_ps(rule.lo)),
            _mm512_set1_ps(rule.hi),
        )
    };
    if let (Some(o), QOutput::Requant { quant, min, max }) = (rule.ort, out) {
        // onnxruntime's arithmetic (`SumRule::apply`) on the operands' codes: the conv's from its
        // requantized steps, the residual's read as codes or recovered from its values.
        let lo = _mm512_set1_ps((min - quant.zero_point) as f32);
        let hi = _mm512_set1_ps((max - quant.zero_point) as f32);
        for (i, values) in values.iter().enumerate() {
            for (&v, &st) in values.iter().zip(stores) {
                let at = place.base + i * place.stride + st.start;
                let steps = round(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
                let (steps, low, kept) = compress_kept_512(st, steps);
                let conv = _mm512_add_ps(steps, _mm512_set1_ps(quant.zero_point as f32));
                let residual = match r.slice(at, kept) {
                    Addend::Real(r) => {
                        // SAFETY: `low` is the low `kept` lanes: the masked load reads only
                        // elements of `r`.
                        let r = unsafe { _mm512_maskz_loadu_ps(low, r.as_ptr()) };
                        _mm512_add_ps(
                            round(_mm512_div_ps(r, _mm512_set1_ps(o.input.scale))),
                            _mm512_set1_ps(o.input.zero_point as f32),
                        )
                    }
                    Addend::Codes(r, _) => {
                        // SAFETY: as above, bytes of `r`.
                        let b =
                            unsafe { _mm512_maskz_loadu_epi8(low as u64, r.as_ptr() as *const i8) };
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(b)))
                    }
                };
                // `fma(a, r_a, fma(b, r_b, fixed))`, `a` the Add's first operand.
                let ((a, ra), (b, rb)) = o.ordered((conv, o.conv_ratio), (residual, o.input_ratio));
                let sum = _mm512_fmadd_ps(
                    a,
                    _mm512_set1_ps(ra),
                    _mm512_fmadd_ps(b, _mm512_set1_ps(rb), _mm512_set1_ps(o.fixed)),
                );
                let z = clamp(_mm512_sub_ps(
                    round(sum),
                    _mm512_set1_ps(rule.zero_point as f32),
                ));
                // SAFETY: forwarded from the caller.
                unsafe { store_sum_512(codes, rule, z, low, y, at) };
            }
        }
        return;
    }
    for (i, values) in values.iter().enumerate() {
        for (&v, &st) in values.iter().zip(stores) {
            let at = place.base + i * place.stride + st.start;
            let (v, low, kept) = compress_kept_512(st, epilogue_512(out, v));
            let r = match r.slice(at, kept) {
                // SAFETY: `low` is the low `kept` lanes: the masked load reads only elements of
                // `r`.
                Addend::Real(r) => unsafe { _mm512_maskz_loadu_ps(low, r.as_ptr()) },
                Addend::Codes(r, q) => {
                    // SAFETY: as above, bytes of `r`.
                    let b = unsafe { _mm512_maskz_loadu_epi8(low as u64, r.as_ptr() as *const i8) };
                    let steps = _mm512_sub_epi32(
                        _mm512_cvtepu8_epi32(_mm512_castsi512_si128(b)),
                        _mm512_set1_epi32(q.zero_point),
                    );
                    // `Quant::dequantize`: `(q − zp) as f32 · s`.
                    _mm512_mul_ps(_mm512_cvtepi32_ps(steps), _mm512_set1_ps(q.scale))
                }
            };
            let z = round(clamp(_mm512_div_ps(
                _mm512_add_ps(v, r),
                _mm512_set1_ps(rule.scale),
            )));
            // SAFETY: forwarded from the caller.
            unsafe { store_sum_512(codes, rule, z, low, y, at) };
        }
    }
}

/// Stores a residual step's results `z` (whole steps from the zero point, clamped) of the lanes
/// `low` from element `at` of `y`: as codes with `codes`, else as values.
///
/// # Safety
/// As [`finish_sum_512`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn store_sum_512(
    codes: Option<Quant>,
    rule: SumRule,
    z: __m512,
    low: u16,
    y: SharedOut,
    at: usize,
) {
    if codes.is_some() {
        let q = _mm512_add_epi32(_mm512_cvtps_epi32(z), _mm512_set1_epi32(rule.zero_point));
        // SAFETY: the masked store writes only bytes `at .. at + kept` (the contract).
        unsafe { store_bytes_512((y.ptr() as *mut u8).wrapping_add(at), low, q) };
    } else {
        let v = _mm512_mul_ps(z, _mm512_set1_ps(rule.scale));
        // SAFETY: the masked store writes only the kept outputs `at ..` (the contract).
        unsafe { _mm512_mask_storeu_ps(y.ptr().wrapping_add(at), low, v) };
    }
}

/// The u8 codes of [`QOutput::Requant`] (`quant`, the rule's own) of 16 values `v = (acc + bias) ·
/// multiplier`, `round_ties_even(clamp(v, min − zp, max − zp)) + zp` (what `int8::store` writes
/// for the rule's value), the lanes `st` keeps written side by side from byte `at` of `y`.
///
/// # Safety
/// The CPU must have AVX-512F and BW; bytes `at .. at + kept` of the buffer `y` points to are the
/// caller's alone.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn store_codes_512(
    out: QOutput,
    quant: Quant,
    v: __m512,
    st: direct::Store,
    y: SharedOut,
    at: usize,
) {
    let (min, max) = match out {
        QOutput::Requant { min, max, .. } => (min, max),
        QOutput::Float { .. } => (0, 255),
    };
    let lo = _mm512_set1_ps((min - quant.zero_point) as f32);
    let hi = _mm512_set1_ps((max - quant.zero_point) as f32);
    // Clamped first (to whole numbers, so it commutes with rounding), then converted rounding to
    // nearest even in the conversion itself.
    let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_min_ps(_mm512_max_ps(v, lo), hi),
    );
    let q = _mm512_add_epi32(r, _mm512_set1_epi32(quant.zero_point));
    let kept = st.mask.count_ones();
    let q = if st.mask == u16::MAX {
        q
    } else {
        _mm512_maskz_compress_epi32(st.mask, q)
    };
    let low = ((1u32 << kept) - 1) as u16;
    // SAFETY: the masked store writes bytes `at .. at + kept` only (the caller's contract).
    unsafe { store_bytes_512((y.ptr() as *mut u8).wrapping_add(at), low, q) };
}

/// Stores the low byte of each lane of `q` in `mask` at `dst` (lane `i` to byte `i`): `vpmovdb` to
/// a register, then a masked byte store (the memory form of `vpmovdb` takes 2–3 times as long on
/// Zen 4).
///
/// # Safety
/// The CPU must have AVX-512F and BW; the bytes of `dst` for the lanes in `mask` are writable and
/// the caller's alone.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn store_bytes_512(dst: *mut u8, mask: u16, q: __m512i) {
    let bytes = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(q));
    // SAFETY: the masked store writes only the bytes of the lanes in `mask` (the contract).
    unsafe { _mm512_mask_storeu_epi8(dst as *mut i8, mask as u64, bytes) };
}

/// [`QOutput::apply`]'s output rule on 16 values `v = (acc + bias) · multiplier`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn epilogue_512(out: QOutput, v: __m512) -> __m512 {
    match out {
        QOutput::Requant { quant, min, max } => {
            let lo = _mm512_set1_ps((min - quant.zero_point) as f32);
            let hi = _mm512_set1_ps((max - quant.zero_point) as f32);
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_min_ps(_mm512_max_ps(v, lo), hi),
            );
            _mm512_mul_ps(r, _mm512_set1_ps(quant.scale))
        }
        QOutput::Float { relu: true } => _mm512_max_ps(v, _mm512_setzero_ps()),
        QOutput::Float { relu: false } => v,
    }
}

/// The direct layout's words of the `out.len()` pixels of the first `channels` planes: byte `j`
/// is channel `j`'s [`Quant::quantize`] (`round_ties_even(clamp(x / s, −zp, 255 − zp)) + zp`; a
/// NaN clamps to the low end, as `f32::max` there), 0 for `j ≥ channels`.
///
/// # Safety
/// The CPU must have AVX-512F; each of the first `channels` planes holds `out.len()` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn quantize_words_avx512(
    planes: &[&[f32]; 4],
    channels: usize,
    quant: Quant,
    out: &mut [u32],
) {
    let n = out.len();
    let lo = _mm512_set1_ps(-quant.zero_point as f32);
    let hi = _mm512_set1_ps((255 - quant.zero_point) as f32);
    let scale = _mm512_set1_ps(quant.scale);
    let zp = _mm512_set1_epi32(quant.zero_point);
    let mut i = 0;
    while i < n {
        let k = (n - i).min(LANES);
        let mask = ((1u32 << k) - 1) as u16;
        let mut word = _mm512_setzero_si512();
        for (j, plane) in planes.iter().enumerate().take(channels) {
            let plane = &plane[i..][..k];
            // SAFETY: the masked load reads only the `k` elements of `plane`.
            let v = unsafe { _mm512_maskz_loadu_ps(mask, plane.as_ptr()) };
            // `max` returns its second operand (`lo`) where `v / s` is NaN.
            let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(v, scale), lo), hi),
            );
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(q), zp);
            word = _mm512_or_si512(word, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * j as i32)));
        }
        // SAFETY: the masked store writes only words `i .. i + k` of `out`.
        unsafe { _mm512_mask_storeu_epi32(out.as_mut_ptr().add(i) as *mut i32, mask, word) };
        i += LANES;
    }
}

/// The direct layout's words of the `out.len()` pixels of the first `channels` planes of u8
/// codes: byte `j` of a word is plane `j`'s byte, 0 for `j ≥ channels`.
///
/// # Safety
/// The CPU must have AVX-512F and BW; each of the first `channels` planes holds `out.len()`
/// bytes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn words_from_codes_avx512(
    planes: &[&[u8]; 4],
    channels: usize,
    out: &mut [u32],
) {
    let n = out.len();
    let mut i = 0;
    while i < n {
        let k = (n - i).min(LANES);
        let mask = ((1u32 << k) - 1) as u16;
        let mut word = _mm512_setzero_si512();
        for (j, plane) in planes.iter().enumerate().take(channels) {
            let plane = &plane[i..][..k];
            // SAFETY: the masked load reads only the `k` bytes of `plane`.
            let b = unsafe { _mm512_maskz_loadu_epi8(mask as u64, plane.as_ptr() as *const i8) };
            let q = _mm512_cvtepu8_epi32(_mm512_castsi512_si128(b));
            word = _mm512_or_si512(word, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * j as i32)));
        }
        // SAFETY: the masked store writes only words `i .. i + k` of `out`.
        unsafe { _mm512_mask_storeu_epi32(out.as_mut_ptr().add(i) as *mut i32, mask, word) };
        i += LANES;
    }
}

/// The direct conv's AVX2 tile: `MR` channels from `m0` (of one group) × the 16 flat output
/// positions of vector `v` (two 8-word halves). A word's 4 bytes split into the even bytes (0, 2)
/// and the odd ones (1, 3), each zero-extended to i16 (the weights sign-extended), and `vpmaddwd`
/// of the halves gives each lane its two pair sums exactly; the epilogue is [`QOutput::apply`] per
/// kept lane.
///
/// # Safety
/// The CPU must have AVX2; `y` must be the image's output (`out_c · pixels` floats) of which these
/// channels' kept pixels are written by no one else.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn direct_avx2<const MR: usize>(
    t: &direct::Tile,
    m0: usize,
    v: usize,
    st: direct::Store,
    y: SharedOut,
) {
    let l = &t.layout;
    let kk = t.k_words();
    // Every load reads words `xg + cb · block_len + off ..+ 16`: within `t.x` (`tile_start`
    // checks).
    let xg = l.tile_start(t.taps, m0, t.mg, v * LANES, LANES, t.x.len());
    let w = &t.w[m0 * kk..][..MR * kk];
    let (x, w) = (t.x.as_ptr(), w.as_ptr());
    let even = _mm256_set1_epi32(0x00FF_00FF);
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for cb in 0..l.cbg {
        let xb = xg + cb * l.block_len;
        for (ti, &off) in t.taps.iter().enumerate() {
            // SAFETY: both halves' 8 words lie within `t.x` (checked by `tile_start`).
            let xh: [__m256i; 2] = std::array::from_fn(|h| unsafe {
                _mm256_loadu_si256(x.add(xb + off + 8 * h) as *const __m256i)
            });
            let xe = xh.map(|v| _mm256_and_si256(v, even));
            let xo = xh.map(|v| _mm256_srli_epi16::<8>(v));
            let k = ti * l.cbg + cb;
            for i in 0..MR {
                // SAFETY: `i · kk + k < MR · kk`, the length of `w`.
                let wv = _mm256_set1_epi32(unsafe { *w.add(i * kk + k) } as i32);
                let we = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(wv));
                let wo = _mm256_srai_epi16::<8>(wv);
                for h in 0..2 {
                    let sum = _mm256_add_epi32(
                        _mm256_madd_epi16(xe[h], we),
                        _mm256_madd_epi16(xo[h], wo),
                    );
                    acc[i][h] = _mm256_add_epi32(acc[i][h], sum);
                }
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let m = m0 + i;
        let at = t.at(m);
        let (bias, mult) = (t.packed.bias[at], t.packed.multiplier[at]);
        let mut sums = [0i32; LANES];
        for (h, &a) in acc.iter().enumerate() {
            // SAFETY: `sums` holds 16 i32, this half's 8 at `8 · h`.
            unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(8 * h) as *mut __m256i, a) };
        }
        let mut o = st.start;
        for (lane, &a) in sums.iter().enumerate() {
            if st.mask & (1 << lane) != 0 {
                let mut v = t.out.apply(a, bias, mult);
                if let Some((rule, r)) = t.sum {
                    v = rule.apply(v, r.at(m * t.pixels + o));
                }
                // SAFETY: kept lanes are output pixels of channel `m` (`o < pixels`), this tile's
                // alone (the caller's contract).
                unsafe { super::store(y, t.codes, m * t.pixels + o, v) };
                o += 1;
            }
        }
    }
}
