//! The depthwise int8 conv (`group == in_c == out_c`, more than one group): one input plane per
//! output channel, output pixels in the vector lanes, each kernel tap's weight broadcast.
//!
//! Per image and channel, the input plane is quantized into bytes laid out as the direct path lays
//! out its words (`direct.rs`): padded with the zero point and split into `stride_h · stride_w`
//! phase planes of `hs × ws` bytes (phase `(py, px)` holds the padded pixels `(py + sy · r, px + sx
//! · c)`). Output pixel `(oy, ox)` is the flat position `q = oy · ws + ox` of a grid `ws` wide, and
//! each kernel tap's input byte sits at `q + offset(tap)` of the channel's bytes: 16 consecutive
//! `q` are 16 consecutive bytes, one 16-byte load widened to i32 lanes. The columns `ox ≥ out_w` of
//! the grid are computed and dropped on the store (so a 7×7 map fills the lanes across rows). Each
//! channel's bytes take a region of the scratch of their own ([`Layout::chan_len`], slack included
//! for the last vectors' loads), so the channels of an image run as independent tasks that quantize
//! and convolve their plane while it is in cache.
//!
//! Weights are packed per channel as one i32 per tap (the i8 sign-extended), then the channels'
//! i32 biases (the input zero point folded in, as on the other paths: the padding reads the zero
//! point) and f32 multipliers: `out_c · (kh · kw + 2)` words.
//!
//! Tiers (the direct path's [`Tier`]): AVX-512 with VNNI (4 vectors of 16 pixels per register
//! tile; `vpmovzxbd` puts each byte alone in its lane's word and `vpdpbusd` with the sign-extended
//! weight word adds `x · w` exactly, the other three byte products being 0), AVX2 (8 lanes,
//! `vpmovzxbd`, `vpmulld`, `vpaddd`) and the generic loop; all compute the exact i32 sums and the
//! f32 epilogue of [`QOutput::apply`], bit-exact against `reference::qconv2d`.

use super::direct::{Store, Tier};
use super::{Addend, QOutput, Quant, SharedBytes, Src, SumRule};
use crate::exec::Ctx;
use crate::kernels::{ConvShape, SharedOut};

/// Pixels per vector (16 i32 lanes).
pub(crate) const LANES: usize = 16;
/// Flat output positions a task wants at least (channels are grouped into tasks up to this).
const TASK_FLAT: usize = 4096;

/// Whether a conv runs on the depthwise path: one input and one output channel per group, more
/// than one group (a single channel's conv keeps the direct path), any kernel, stride, dilation
/// and padding.
pub fn applies(s: &ConvShape) -> bool {
    s.group > 1 && s.in_c == s.group && s.out_c == s.group
}

/// The byte layout of one channel's quantized input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Phase plane height and width (the padded input divided by the stride, rounded up).
    pub hs: usize,
    pub ws: usize,
    /// Bytes of the `stride_h · stride_w` phase planes.
    pub block: usize,
    /// Flat output positions `out_h · ws`.
    pub flat: usize,
    /// Bytes of a channel's region: the phase planes, then slack for the last vectors' loads (which
    /// read up to the largest tap offset plus whole vectors of flat positions), a multiple of 64.
    pub chan_len: usize,
}

impl Layout {
    pub fn of(s: &ConvShape) -> Layout {
        let hp = s.in_h + s.pads[0] + s.pads[2];
        let wp = s.in_w + s.pads[1] + s.pads[3];
        let (hs, ws) = (hp.div_ceil(s.stride[0]), wp.div_ceil(s.stride[1]));
        let block = s.stride[0] * s.stride[1] * hs * ws;
        let flat = s.out_h * ws;
        let max_off = taps(s, hs, ws).into_iter().max().unwrap_or(0);
        let chan_len = block
            .max(max_off + flat.div_ceil(LANES) * LANES)
            .next_multiple_of(64);
        Layout {
            hs,
            ws,
            block,
            flat,
            chan_len,
        }
    }

    /// Vectors of flat output positions.
    pub fn vectors(&self) -> usize {
        self.flat.div_ceil(LANES)
    }
}

/// Per kernel tap (`ky · kw + kx`), its byte offset in a channel's region.
fn taps(s: &ConvShape, hs: usize, ws: usize) -> Vec<usize> {
    let [kh, kw] = s.kernel;
    let plane = hs * ws;
    (0..kh * kw)
        .map(|t| {
            let (dy, dx) = ((t / kw) * s.dilation[0], (t % kw) * s.dilation[1]);
            let phase = (dy % s.stride[0]) * s.stride[1] + dx % s.stride[1];
            phase * plane + dy / s.stride[0] * ws + dx / s.stride[1]
        })
        .collect()
}

/// Scratch floats of one image's channel regions.
pub(crate) fn scratch_len(s: &ConvShape) -> usize {
    s.in_c * Layout::of(s).chan_len / 4
}

/// Words of the packed depthwise parameters: per channel its taps, then the biases and multipliers.
pub(crate) fn packed_len(s: &ConvShape) -> usize {
    s.out_c * (s.kernel[0] * s.kernel[1] + 2)
}

/// The packed parameters from the weights (`[out_c, 1, kh, kw]`), the biases with the input zero
/// point folded in and the multipliers.
pub(crate) fn pack(s: &ConvShape, weight: &[i8], bias: &[i32], multiplier: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(packed_len(s));
    out.extend(weight.iter().map(|&w| f32::from_bits(w as i32 as u32)));
    out.extend(bias.iter().map(|&b| f32::from_bits(b as u32)));
    out.extend_from_slice(multiplier);
    out
}

/// One channel's work.
pub(crate) struct Chan<'a> {
    /// The channel's quantized bytes (`Layout::chan_len`).
    pub x: &'a [u8],
    /// Its weights, one i32 per tap.
    pub w: &'a [i32],
    pub bias: i32,
    pub multiplier: f32,
    /// Per tap, its byte offset in `x`.
    pub taps: &'a [usize],
    /// Per vector of flat positions, its store.
    pub stores: &'a [Store],
    pub out: QOutput,
    /// The residual step and the channel's residual input (indexed as its output).
    pub sum: Option<(SumRule, Addend<'a>)>,
    /// Write codes of this quantization instead of values (`int8::store`).
    pub codes: Option<Quant>,
}

impl Chan<'_> {
    /// Output `at`'s final value from its sum.
    #[inline]
    fn finish(&self, acc: i32, at: usize) -> f32 {
        let v = self.out.apply(acc, self.bias, self.multiplier);
        match self.sum {
            Some((rule, r)) => rule.apply(v, r.at(at)),
            None => v,
        }
    }

    /// Writes the kept lanes of vector `v`'s sums `acc` through `y` (the channel's output).
    ///
    /// # Safety
    /// `y` points to the channel's output (`out_h · out_w` elements, bytes with codes), which
    /// no one else writes.
    #[inline]
    unsafe fn store_lanes(&self, v: usize, acc: &[i32; LANES], y: SharedOut) {
        let st = self.stores[v];
        let mut at = st.start;
        for (lane, &a) in acc.iter().enumerate() {
            if st.mask & (1 << lane) != 0 {
                // SAFETY: `at < out_h · out_w` (a kept lane), the channel's (the contract).
                unsafe { super::store(y, self.codes, at, self.finish(a, at)) };
                at += 1;
            }
        }
    }
}

/// The depthwise conv of `batch` images: `input` (`[batch, c, in_h, in_w]`, values or codes)
/// quantized by `quant` into `scratch` ([`scratch_len`] floats) an image at a time, convolved with
/// `packed` ([`pack`]) into `output` (codes of `codes` if some), with the residual step `sum` (and
/// the whole residual input).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    ctx: &Ctx,
    tier: Tier,
    s: &ConvShape,
    batch: usize,
    input: Src,
    quant: Quant,
    packed: &[f32],
    out: QOutput,
    sum: Option<(SumRule, Addend)>,
    scratch: &mut [f32],
    output: &mut [f32],
    codes: Option<Quant>,
) {
    let l = Layout::of(s);
    let ntaps = s.kernel[0] * s.kernel[1];
    let words: &[u32] = bytemuck::cast_slice(packed);
    let (w, rest) = words.split_at(s.out_c * ntaps);
    let (bias, mult) = rest.split_at(s.out_c);
    let w: &[i32] = bytemuck::cast_slice(w);
    let bias: &[i32] = bytemuck::cast_slice(bias);
    let mult: &[f32] = bytemuck::cast_slice(mult);
    let taps = taps(s, l.hs, l.ws);
    let runs = column_runs(s, &l);
    let stores: Vec<Store> = (0..l.vectors())
        .map(|v| Store::of(l.flat, l.ws, s.out_w, v))
        .collect();
    let (hw, pixels) = (s.in_h * s.in_w, s.out_h * s.out_w);
    let channels = s.in_c;
    let chunk = (TASK_FLAT / l.flat.max(1)).clamp(1, channels);
    let tasks = channels.div_ceil(chunk);
    let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut scratch[..scratch_len(s)]);
    let buf = SharedBytes(buf.as_mut_ptr());
    let output = SharedOut(output.as_mut_ptr());
    for n in 0..batch {
        let x = input.slice(n * s.input_len(), s.input_len());
        let y = super::at_element(output, codes, n * s.output_len());
        let image_sum = sum.map(|(rule, r)| (rule, r.slice(n * s.output_len(), s.output_len())));
        ctx.threads.run(tasks, &|t| {
            for c in t * chunk..((t + 1) * chunk).min(channels) {
                // SAFETY: channel `c`'s region of `chan_len` bytes is this task's alone, inside the
                // `in_c · chan_len` bytes of the scratch, which outlives the `run`.
                let xq = unsafe {
                    std::slice::from_raw_parts_mut(buf.ptr().add(c * l.chan_len), l.chan_len)
                };
                quantize_plane(tier, s, &l, &runs, x.slice(c * hw, hw), quant, xq);
                // Channel `c`'s `pixels` outputs are this task's alone, inside the image's
                // `out_c · pixels` outputs, which outlive the `run`.
                let yc = super::at_element(y, codes, c * pixels);
                let chan = Chan {
                    x: xq,
                    w: &w[c * ntaps..][..ntaps],
                    bias: bias[c],
                    multiplier: mult[c],
                    taps: &taps,
                    stores: &stores,
                    out,
                    sum: image_sum.map(|(rule, r)| (rule, r.slice(c * pixels, pixels))),
                    codes,
                };
                // SAFETY: `yc` is channel `c`'s output, this task's alone (above).
                unsafe { run_chan(tier, &chan, yc) };
            }
        });
    }
}

/// Convolves one channel through `y` (its `out_h · out_w` outputs) on `tier`.
///
/// # Safety
/// `y` points to the channel's output (elements, or bytes with codes), which no one else writes.
unsafe fn run_chan(tier: Tier, t: &Chan, y: SharedOut) {
    #[cfg(target_arch = "x86_64")]
    match tier {
        // SAFETY: `Tier::Vnni` is chosen only where the CPU has AVX-512F, BW and VNNI (`use_vnni`).
        Tier::Vnni => return unsafe { x86::chan_vnni(t, y) },
        // SAFETY: `Tier::Avx2` is chosen only on the AVX2 and AVX-512 tiers, which imply AVX2
        // (`Isa::supported`).
        Tier::Avx2 => return unsafe { x86::chan_avx2(t, y) },
        Tier::Generic => {}
    }
    let _ = tier;
    // SAFETY: as this function's contract.
    unsafe { chan_generic(t, y) };
}

/// The portable kernel: plain i32 sums per kept lane.
///
/// # Safety
/// As [`run_chan`].
unsafe fn chan_generic(t: &Chan, y: SharedOut) {
    for v in 0..t.stores.len() {
        let q0 = v * LANES;
        let mut acc = [0i32; LANES];
        for (&off, &w) in t.taps.iter().zip(t.w) {
            let xs = &t.x[off + q0..][..LANES];
            for (a, &x) in acc.iter_mut().zip(xs) {
                *a = a.wrapping_add(x as i32 * w);
            }
        }
        // SAFETY: as this function's contract.
        unsafe { t.store_lanes(v, &acc, y) };
    }
}

/// Quantizes one input plane `x` into the channel region `dst`: the phase planes the zero point
/// (the padding), then each input pixel's byte at its phase position.
/// `runs` is [`column_runs`]'s.
fn quantize_plane(
    tier: Tier,
    s: &ConvShape,
    l: &Layout,
    runs: &[(usize, usize)],
    x: Src,
    quant: Quant,
    dst: &mut [u8],
) {
    let [sy, sx] = s.stride;
    if s.pads == [0; 4] && s.stride == [1, 1] {
        // Unpadded, one phase: the plane's bytes in order.
        return quantize_bytes(tier, x, quant, &mut dst[..x.len()]);
    }
    dst[..l.block].fill(quant.zero_point as u8);
    let plane = l.hs * l.ws;
    let pl = s.pads[1];
    // Padded row `py = iy + pt`: phase `py % sy`, row `py / sy`, stepped.
    let (mut phase_y, mut row_y) = (s.pads[0] % sy, s.pads[0] / sy);
    for iy in 0..s.in_h {
        let src = x.slice(iy * s.in_w, s.in_w);
        let base = phase_y * sx * plane + row_y * l.ws;
        phase_y += 1;
        if phase_y == sy {
            phase_y = 0;
            row_y += 1;
        }
        if sx == 1 {
            quantize_bytes(tier, src, quant, &mut dst[base + pl..][..s.in_w]);
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if tier == Tier::Vnni && sx == 2 && s.in_w >= 2 {
            // The two runs lie in different phase planes, one row each: disjoint.
            let ((r0, len0), (r1, len1)) = (runs[0], runs[1]);
            let (r0, r1) = (base + r0, base + r1);
            let (even, odd) = if r0 < r1 {
                let (a, b) = dst.split_at_mut(r1);
                (&mut a[r0..][..len0], &mut b[..len1])
            } else {
                let (a, b) = dst.split_at_mut(r0);
                (&mut b[..len0], &mut a[r1..][..len1])
            };
            match src {
                // SAFETY: `Tier::Vnni` implies AVX-512F and BW (`use_vnni`); `even` and `odd`
                // hold `ceil(n / 2)` and `floor(n / 2)` bytes for the `n = src.len()` inputs.
                Src::Real(src) => unsafe {
                    x86::quantize_bytes_stride2_avx512(src, quant, even, odd)
                },
                // SAFETY: as above.
                Src::Codes(src) => unsafe { x86::split_bytes_stride2_avx512(src, even, odd) },
            }
            continue;
        }
        for (r, &(run, len)) in runs.iter().enumerate() {
            let out = &mut dst[base + run..][..len];
            for (k, q) in out.iter_mut().enumerate() {
                *q = src.code(r + k * sx, quant);
            }
        }
    }
}

/// Where a strided conv's input row goes in the phase planes: input column `ix = sx · i + r` is
/// padded column `ix + pl`, phase `(r + pl) % sx`, column `i + (r + pl) / sx`, so each residue
/// `r`'s columns are one run of a phase row: `(offset from the row's start, length)` per residue
/// (none for a stride of 1), worked out once per conv rather than per row.
fn column_runs(s: &ConvShape, l: &Layout) -> Vec<(usize, usize)> {
    let (sx, pl) = (s.stride[1], s.pads[1]);
    if sx == 1 {
        return Vec::new();
    }
    (0..sx.min(s.in_w))
        .map(|r| {
            let at = (r + pl) % sx * l.hs * l.ws + (r + pl) / sx;
            (at, (s.in_w - r).div_ceil(sx))
        })
        .collect()
}

/// `dst[i]` = element `i`'s code: `quant.quantize(x[i])`, or the code itself.
fn quantize_bytes(tier: Tier, x: Src, quant: Quant, dst: &mut [u8]) {
    let x = match x {
        Src::Real(x) => x,
        Src::Codes(x) => return dst.copy_from_slice(x),
    };
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Vnni {
        // SAFETY: `Tier::Vnni` implies AVX-512F and BW (`use_vnni`).
        return unsafe { x86::quantize_bytes_avx512(x, quant, dst) };
    }
    let _ = tier;
    for (q, &v) in dst.iter_mut().zip(x) {
        *q = quant.quantize(v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86-64 depthwise kernels and the AVX-512 input quantization.

    use std::arch::x86_64::*;

    use super::{Chan, LANES, Quant};
    use crate::kernels::SharedOut;
    use crate::kernels::int8::x86_64::{finish_512, store_bytes_512};

    /// Vectors per AVX-512 register tile.
    const NV: usize = 4;

    /// One channel with `vpdpbusd`: tiles of 4 vectors, then single vectors.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW and AVX512_VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn chan_vnni(t: &Chan, y: SharedOut) {
        let vectors = t.stores.len();
        // Every load reads bytes `off + v · 16 ..+ 16` for a tap offset `off` and vector `v <
        // vectors`: within `t.x` (`Layout::chan_len`), checked once here.
        let max_off = t.taps.iter().copied().max().unwrap_or(0);
        assert!(max_off + vectors * LANES <= t.x.len());
        assert_eq!(t.w.len(), t.taps.len());
        let mut v = 0;
        while v + NV <= vectors {
            // SAFETY: the loads are within `t.x` (the assertion above); the CPU as this function's.
            unsafe { tile_vnni::<NV>(t, v, y) };
            v += NV;
        }
        while v < vectors {
            // SAFETY: as above.
            unsafe { tile_vnni::<1>(t, v, y) };
            v += 1;
        }
    }

    /// `N` vectors from `v0`: per tap, `N` widened loads and `vpdpbusd` with the broadcast weight.
    ///
    /// # Safety
    /// As [`chan_vnni`]; bytes `off + (v0 + N) · 16` are within `t.x` for every tap offset.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_vnni<const N: usize>(t: &Chan, v0: usize, y: SharedOut) {
        let x = t.x.as_ptr().wrapping_add(v0 * LANES);
        let mut acc = [_mm512_setzero_si512(); N];
        for (&off, &w) in t.taps.iter().zip(t.w) {
            let wv = _mm512_set1_epi32(w);
            for j in 0..N {
                // SAFETY: bytes `off + (v0 + j) · 16 ..+ 16` lie within `t.x` (the contract).
                let xv = unsafe { _mm_loadu_si128(x.add(off + j * LANES) as *const __m128i) };
                acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_cvtepu8_epi32(xv), wv);
            }
        }
        let bias = _mm512_set1_epi32(t.bias);
        let mult = _mm512_set1_ps(t.multiplier);
        for (j, &a) in acc.iter().enumerate() {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, bias)), mult);
            let st = t.stores[v0 + j];
            // SAFETY: the kept lanes are outputs `start .. start + kept` of the channel, whose
            // output `y` points to (the contract: the caller's alone).
            unsafe { finish_512!(t.out, t.codes, t.sum, v, st, y, st.start) };
        }
    }

    /// One channel with AVX2: per vector of 16 positions, two halves of 8 lanes, `vpmulld` and
    /// `vpaddd` per tap; the epilogue per kept lane.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn chan_avx2(t: &Chan, y: SharedOut) {
        let vectors = t.stores.len();
        // Every load reads bytes `off + v · 16 ..+ 16`: within `t.x`, checked once here.
        let max_off = t.taps.iter().copied().max().unwrap_or(0);
        assert!(max_off + vectors * LANES <= t.x.len());
        let x = t.x.as_ptr();
        for v in 0..vectors {
            let mut acc = [_mm256_setzero_si256(); 2];
            for (&off, &w) in t.taps.iter().zip(t.w) {
                let wv = _mm256_set1_epi32(w);
                for (h, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: bytes `off + v · 16 + 8h ..+ 8` lie within `t.x` (the assertion).
                    let xv = unsafe {
                        _mm_loadl_epi64(x.add(off + v * LANES + 8 * h) as *const __m128i)
                    };
                    let p = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(xv), wv);
                    *acc = _mm256_add_epi32(*acc, p);
                }
            }
            let mut sums = [0i32; LANES];
            for (h, &a) in acc.iter().enumerate() {
                // SAFETY: `sums` holds 16 i32, this half's 8 at `8 · h`.
                unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(8 * h) as *mut __m256i, a) };
            }
            // SAFETY: `y` is the channel's output (this function's contract).
            unsafe { t.store_lanes(v, &sums, y) };
        }
    }

    /// The quantization constants as vectors: `-zp` and `255 − zp` (the clamp), the scale, `zp`.
    #[derive(Clone, Copy)]
    struct Q512 {
        lo: __m512,
        hi: __m512,
        scale: __m512,
        zp: __m512i,
    }

    impl Q512 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn new(quant: Quant) -> Q512 {
            Q512 {
                lo: _mm512_set1_ps(-quant.zero_point as f32),
                hi: _mm512_set1_ps((255 - quant.zero_point) as f32),
                scale: _mm512_set1_ps(quant.scale),
                zp: _mm512_set1_epi32(quant.zero_point),
            }
        }

        /// [`Quant::quantize`] of 16 values, as i32 lanes (`round_ties_even(clamp(x / s, −zp,
        /// 255 − zp)) + zp`; a NaN clamps to the low end, as `f32::max` there).
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn quantize(self, v: __m512) -> __m512i {
            // `max` returns its second operand (`lo`) where `v / s` is NaN.
            let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_min_ps(
                    _mm512_max_ps(_mm512_div_ps(v, self.scale), self.lo),
                    self.hi,
                ),
            );
            _mm512_add_epi32(_mm512_cvtps_epi32(q), self.zp)
        }
    }

    /// `dst[i] = quant.quantize(x[i])`, 16 at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_bytes_avx512(x: &[f32], quant: Quant, dst: &mut [u8]) {
        let n = x.len().min(dst.len());
        let q = Q512::new(quant);
        let mut i = 0;
        while i < n {
            let k = (n - i).min(LANES);
            let mask = ((1u32 << k) - 1) as u16;
            // SAFETY: the masked load reads only elements `i .. i + k` of `x` (`k ≤ n − i`).
            let v = unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(i)) };
            let v = q.quantize(v);
            // SAFETY: the masked store writes only bytes `i .. i + k` of `dst` (`k ≤ n − i`).
            unsafe { store_bytes_512(dst.as_mut_ptr().add(i), mask, v) };
            i += LANES;
        }
    }

    /// `even[i] = quant.quantize(x[2i])`, `odd[i] = quant.quantize(x[2i + 1])`: a row of a
    /// stride-2 conv's input into its two column phases, 32 inputs at a time (two loads, split
    /// into the even and odd elements by `vpermt2ps`).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and BW; `even` must hold `ceil(x.len() / 2)` bytes and `odd`
    /// `floor(x.len() / 2)`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_bytes_stride2_avx512(
        x: &[f32],
        quant: Quant,
        even: &mut [u8],
        odd: &mut [u8],
    ) {
        let n = x.len();
        assert!(even.len() >= n.div_ceil(2) && odd.len() >= n / 2);
        let q = Q512::new(quant);
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
        let mask = |k: usize| ((1u32 << k.min(LANES)) - 1) as u16;
        let mut i = 0;
        while i < n {
            let left = n - i;
            // SAFETY: the masked loads read only elements `i .. i + min(left, 32)` of `x` (the
            // second none where `left ≤ 16`, its address then unused).
            let (a, b) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask(left), x.as_ptr().add(i)),
                    _mm512_maskz_loadu_ps(
                        mask(left.saturating_sub(LANES)),
                        x.as_ptr().wrapping_add(i + LANES),
                    ),
                )
            };
            let e = q.quantize(_mm512_permutex2var_ps(a, evens, b));
            let o = q.quantize(_mm512_permutex2var_ps(a, odds, b));
            // SAFETY: the masked stores write bytes `i / 2 ..` of `even` (`ceil(left / 2)` of
            // them, at most 16) and of `odd` (`floor(left / 2)`), within their lengths.
            unsafe {
                let out = even.as_mut_ptr().add(i / 2);
                store_bytes_512(out, mask(left.div_ceil(2)), e);
                let out = odd.as_mut_ptr().add(i / 2);
                store_bytes_512(out, mask(left / 2), o);
            }
            i += 2 * LANES;
        }
    }

    /// `even[i] = x[2i]`, `odd[i] = x[2i + 1]`: a row of u8 codes into its two column phases, 64
    /// at a time (each pair one 16-bit lane: `vpmovwb` of the lanes and of their high bytes).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and BW; `even` must hold `ceil(x.len() / 2)` bytes and `odd`
    /// `floor(x.len() / 2)`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn split_bytes_stride2_avx512(x: &[u8], even: &mut [u8], odd: &mut [u8]) {
        let n = x.len();
        assert!(even.len() >= n.div_ceil(2) && odd.len() >= n / 2);
        let mask32 = |k: usize| if k >= 32 { u32::MAX } else { (1u32 << k) - 1 };
        let mut i = 0;
        while i < n {
            let left = n - i;
            let load = if left >= 64 {
                u64::MAX
            } else {
                (1u64 << left) - 1
            };
            // SAFETY: the masked load reads only bytes `i .. i + min(left, 64)` of `x`.
            let v = unsafe { _mm512_maskz_loadu_epi8(load, x.as_ptr().add(i) as *const i8) };
            // SAFETY: the masked stores write bytes `i / 2 ..` of `even` (`ceil(left / 2)`, at
            // most 32) and of `odd` (`floor(left / 2)`), within their lengths.
            unsafe {
                let out = even.as_mut_ptr().add(i / 2);
                let bytes = _mm512_castsi256_si512(_mm512_cvtepi16_epi8(v));
                _mm512_mask_storeu_epi8(out as *mut i8, mask32(left.div_ceil(2)) as u64, bytes);
                let out = odd.as_mut_ptr().add(i / 2);
                let bytes = _mm512_castsi256_si512(_mm512_cvtepi16_epi8(_mm512_srli_epi16::<8>(v)));
                _mm512_mask_storeu_epi8(out as *mut i8, mask32(left / 2) as u64, bytes);
            }
            i += 64;
        }
    }
}
