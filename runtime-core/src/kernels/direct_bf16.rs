//! The direct bf16 conv behind `--precision bf16` for the convs that are not 1×1 (ResNeXt's grouped
//! 3×3 convs, dense 3×3 convs, the stems): output pixels in the vector lanes, output channels
//! broadcast, two input channels a 32-bit word, products accumulated in fp32.
//!
//! The layout is the direct int8 conv's (`int8::direct`, [`Layout::with_word`]) with words of
//! two bf16 instead of four u8 codes: each image's input is rounded once into blocks of 2 channels
//! of one group (the bf16 of the even channel in the low half of a word, the odd one in the high
//! half, zero past the group's channels), padded with zeros and split into `stride_h · stride_w`
//! phase planes, so that for every kernel tap 16 consecutive output positions read 16 consecutive
//! words. That is what AVX512_BF16's `vdpbf16ps` reads: one instruction adds `x_lo·w_lo +
//! x_hi·w_hi` into each fp32 lane, from a vector of 16 pixels' words and a broadcast weight word
//! (the two channels' weights of one output channel and tap). Weights are rounded and packed at
//! compile time ([`pack`]) as `[out_c][kh][kw][block]` words. Columns of the phase grid past the
//! output's width are computed and dropped, as in the int8 kernel.
//!
//! Rounding is `gemm::bf16::to_bf16` (`vcvtne2ps2bf16`'s), and every tier computes the same
//! products (a product of two bf16 is exact in fp32): AVX512_BF16 with `vdpbf16ps`, AVX2 (and
//! AVX-512 without BF16) by widening the halves of each word to fp32 for two FMAs, the generic
//! tier in plain fp32. They differ only in the order of the fp32 sums. The fused epilogue (bias,
//! residual, activation) is the fp32 kernels'. On a CPU with AMX-BF16, convs of a multiple of 4
//! channels a group (and the 3-channel stems) run on AMX tiles instead (`x86::tile_amx`, the
//! same products).

use super::int8::direct::{LANES, Layout, Store, fill_layout, for_each_tile, for_each_tile_in};
use super::{Activation, ConvArgs, ConvShape, KernelError, SharedOut, check_len, check_min_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use crate::kernels::gemm::bf16::to_bf16;

/// Output channels per register tile.
const MR: usize = 4;
/// Vectors of 16 output positions per register tile.
const NR: usize = 4;

/// Which register tile runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    /// AVX512_BF16 (`vdpbf16ps`) with AVX-512F and BW.
    Dot,
    /// AVX2 + FMA on the words' halves widened to fp32.
    Avx2,
    /// The same widening on AVX-512 without AVX512_BF16, on the `vdpbf16ps` tile's registers.
    Widen512,
    Generic,
}

fn tier(isa: Isa) -> Tier {
    match isa {
        Isa::Avx512 if isa.supported() && super::gemm::bf16::dot_enabled() => Tier::Dot,
        Isa::Avx512 if isa.supported() => Tier::Widen512,
        Isa::Avx2 | Isa::Avx512 if isa.supported() => Tier::Avx2,
        _ => Tier::Generic,
    }
}

/// The words of one AMX step where the AVX512_BF16 tier runs a conv of layout `l` on AMX tiles
/// (`x86::tile_amx`): the bf16 GEMM's AMX path is on (`gemm::bf16::amx_path`: a CPU with
/// AMX-BF16, the tile state granted, no `RESNEXT_BF16` forcing another path), and the largest
/// power of two up to 16 that divides a group's blocks is at least 2 (4 input channels). Any
/// kernel, stride, dilation and group count (a tile's rows past its group's channels are
/// computed and dropped).
#[cfg(target_arch = "x86_64")]
fn amx_step(l: &Layout) -> Option<usize> {
    let kw = [16, 8, 4, 2]
        .into_iter()
        .find(|&kw| l.cbg.is_multiple_of(kw))?;
    (l.cbg > 0 && super::gemm::bf16::amx_path()).then_some(kw)
}

/// Whether the direct bf16 conv takes `s`: at least two input channels a group (a depthwise conv
/// would leave half of every word zero) and at least one vector of output pixels.
pub fn supports(s: &ConvShape) -> bool {
    s.check().is_ok() && s.in_c / s.group >= 2 && s.out_h * s.out_w >= LANES
}

/// Whether `--precision bf16` runs `s` on this kernel rather than on its fp32 algorithm: every
/// conv it supports that is not 1×1 (those run the bf16 GEMM), except grouped convs of stride 2
/// with fewer than 32 channels a group. Measured with `examples/bench_bf16` (Zen 4, 1 thread,
/// against the fp32 grouped kernel): stride-2 grouped convs of ResNeXt-50 with 8 and 16 channels
/// a group took 1.27× and 1.00× the fp32 time (the input, four times the output's pixels, is
/// rounded and phase-split for few products a word), stride-1 ones 0.67–0.78×, 32 channels a group
/// at stride 2 0.76×; dense 3×3 convs 0.51–0.57× of the implicit GEMM, the 7×7/2 stem 0.76×.
pub fn preferred(s: &ConvShape) -> bool {
    let pointwise = s.kernel == [1, 1] && s.pads == [0; 4];
    let thin_strided_group = s.group > 1 && s.stride != [1, 1] && s.in_c / s.group < 32;
    supports(s) && !pointwise && !thin_strided_group
}

/// Words of the packed weights: `[out_c][blocks of a group][kh][kw]`.
pub fn packed_len(s: &ConvShape) -> usize {
    s.out_c * Layout::with_word(s, 2).cbg * s.kernel[0] * s.kernel[1]
}

/// Packs ONNX-layout weights `[out_c, in_c / group, kh, kw]` as bf16 pairs (a word's bits stored
/// as an `f32`), `[out_c][kh][kw][block]`: word `(m, t, b)` holds input channels `2b` and
/// `2b + 1` of channel `m`'s group at tap `t`, zero past the group's channels (a tap's words in a
/// row, as AMX reads them). Done at compile time.
pub fn pack(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let cbg = Layout::with_word(s, 2).cbg;
    let taps = s.kernel[0] * s.kernel[1];
    let cin_g = s.in_c / s.group;
    let mut out = Vec::with_capacity(packed_len(s));
    for m in 0..s.out_c {
        let w = &weight[m * cin_g * taps..][..cin_g * taps];
        let at = |c: usize, t: usize| if c < cin_g { w[c * taps + t] } else { 0.0 };
        for t in 0..taps {
            for b in 0..cbg {
                out.push(pair_word(at(2 * b, t), at(2 * b + 1, t)));
            }
        }
    }
    out
}

/// `lo` and `hi` rounded to bf16, as the two halves of one word (its bits in an `f32`).
fn pair_word(lo: f32, hi: f32) -> f32 {
    f32::from_bits(u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16))
}

/// Scratch floats [`run`] needs: one image's input in the direct layout.
pub fn scratch_len(s: &ConvShape) -> usize {
    Layout::with_word(s, 2).input_words()
}

/// One register tile's inputs: the image's words, the weights and the epilogue.
struct Tile<'a> {
    x: &'a [u32],
    w: &'a [u32],
    /// Output channels per group.
    mg: usize,
    layout: Layout,
    /// Per kernel tap, its word offset in a block.
    taps: &'a [usize],
    pixels: usize,
    bias: Option<&'a [f32]>,
    /// The image's residual (indexed as its output).
    residual: Option<&'a [f32]>,
    activation: Activation,
}

impl Tile<'_> {
    /// Words of one channel's weights.
    fn k_words(&self) -> usize {
        self.layout.cbg * self.taps.len()
    }

    /// The epilogue of the sum `acc` of channel `m`'s output `at` (of the image).
    #[inline(always)]
    fn finish(&self, acc: f32, m: usize, at: usize) -> f32 {
        let mut v = acc;
        if let Some(b) = self.bias {
            v += b[m];
        }
        if let Some(r) = self.residual {
            v += r[m * self.pixels + at];
        }
        self.activation.apply(v)
    }
}

/// The conv with its fused epilogue over `args.batch` images, NCHW: `args.packed` from [`pack`],
/// `args.scratch` at least [`scratch_len`] floats. Allocates only the taps' offsets.
pub fn run(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let ConvArgs {
        shape: s,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    if !supports(&s) {
        s.check()?;
        return Err(KernelError::BadShape(format!(
            "the direct bf16 conv needs at least 2 input channels a group and 16 output pixels: \
             {s:?}"
        )));
    }
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv packed weight", packed_len(&s), packed.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    epilogue.check(batch, s.out_c, s.out_h * s.out_w)?;
    check_min_len("conv scratch", scratch_len(&s), scratch.len())?;
    let l = Layout::with_word(&s, 2);
    let tier = tier(ctx.isa);
    let taps = l.taps(&s);
    let buf: &mut [u32] = bytemuck::cast_slice_mut(&mut scratch[..l.input_words()]);
    let w: &[u32] = bytemuck::cast_slice(packed);
    let (in_len, out_len) = (s.input_len(), s.output_len());
    let hw = s.in_h * s.in_w;
    let cin_g = s.in_c / s.group;
    // The words past the blocks are read by the last vectors' loads and dropped: zeroed (once:
    // `fill_layout` writes only the blocks) so that they are finite.
    buf[l.blocks * l.block_len..].fill(0);
    for n in 0..batch {
        let x = &input[n * in_len..][..in_len];
        fill_layout(ctx, &s, &l, 0, buf, &|b, at, out| {
            let (g, cb) = (b / l.cbg, b % l.cbg);
            let c0 = g * cin_g + 2 * cb;
            let lo = &x[c0 * hw + at..][..out.len()];
            let hi = (2 * cb + 1 < cin_g).then(|| &x[(c0 + 1) * hw + at..][..out.len()]);
            pair_words(tier, lo, hi, out);
        });
        let tile = Tile {
            x: buf,
            w,
            mg: s.out_c / s.group,
            layout: l,
            taps: &taps,
            pixels: s.out_h * s.out_w,
            bias: epilogue.bias,
            residual: epilogue.residual.map(|r| &r[n * out_len..][..out_len]),
            activation: epilogue.activation,
        };
        let y = SharedOut(output[n * out_len..].as_mut_ptr());
        #[cfg(target_arch = "x86_64")]
        if tier == Tier::Dot
            && let Some(kw) = amx_step(&l)
        {
            use crate::kernels::gemm::x86_64::amx;
            let config = amx::DirectConfig::new(kw);
            // SAFETY: AMX-BF16 is usable (`amx_step`); every tile runs between the configure
            // and the release of its task's thread.
            let (begin, end) = (|| unsafe { config.load() }, || unsafe { amx::release() });
            let hooks: (&(dyn Fn() + Sync), &(dyn Fn() + Sync)) = (&begin, &end);
            for_each_tile_in(ctx, &s, &l, (32, 2), hooks, |m0, mr, v0, stores| {
                // SAFETY: `Tier::Dot` implies AVX-512F, BW and AVX512_BF16; the channels and
                // vectors are this tile's, within the layout; the tiles are configured for `kw`.
                unsafe { x86::tile_amx(&tile, m0, mr, v0, stores, y, kw) }
            });
            continue;
        }
        for_each_tile(ctx, &s, &l, MR, NR, |m0, mr, v0, stores| {
            run_tile(tier, &tile, m0, mr, v0, stores, y)
        });
    }
    Ok(())
}

/// The words of `lo.len()` pixels: `lo`'s bf16 in the low halves, `hi`'s (or zero) in the high.
#[allow(unused_variables)]
fn pair_words(tier: Tier, lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Dot {
        // SAFETY: `Tier::Dot` is chosen only where the CPU has AVX512_BF16, F and BW; `lo` and
        // `hi` hold `out.len()` floats (sliced so above).
        return unsafe { x86::pair_words(lo, hi, out) };
    }
    match hi {
        Some(hi) => {
            for ((o, &a), &b) in out.iter_mut().zip(lo).zip(hi) {
                *o = pair_word(a, b).to_bits();
            }
        }
        None => {
            for (o, &a) in out.iter_mut().zip(lo) {
                *o = u32::from(to_bf16(a));
            }
        }
    }
}

/// Runs the register tile of channels `m0 .. m0 + mr` × the vectors of `stores` from `v0`,
/// writing through `y` (the image's output, of which these channels' kept pixels are this
/// tile's alone).
fn run_tile(tier: Tier, t: &Tile, m0: usize, mr: usize, v0: usize, stores: &[Store], y: SharedOut) {
    #[cfg(target_arch = "x86_64")]
    match tier {
        Tier::Dot => {
            macro_rules! dispatch {
                ($($m:literal $n:literal),*) => {
                    match (mr, stores.len()) {
                        // SAFETY: `Tier::Dot` is chosen only where the CPU has AVX512_BF16, F and
                        // BW; the channels and vectors are this tile's, within the layout.
                        $(($m, $n) => unsafe { x86::tile_dot::<$m, $n>(t, m0, v0, stores, y) },)*
                        _ => unreachable!("register tiles are 1..=4 channels × 1..=4 vectors"),
                    }
                };
            }
            return dispatch!(1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4);
        }
        Tier::Widen512 => {
            macro_rules! dispatch {
                ($($m:literal $n:literal),*) => {
                    match (mr, stores.len()) {
                        // SAFETY: `Tier::Widen512` is chosen only where the CPU has AVX-512F; the
                        // channels and vectors are this tile's, within the layout.
                        $(($m, $n) => unsafe { x86::tile_widen::<$m, $n>(t, m0, v0, stores, y) },)*
                        _ => unreachable!("register tiles are 1..=4 channels × 1..=4 vectors"),
                    }
                };
            }
            return dispatch!(1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4);
        }
        Tier::Avx2 => {
            for (j, &st) in stores.iter().enumerate() {
                // SAFETY: `Tier::Avx2` is chosen only on the AVX2 and AVX-512 tiers of a CPU that
                // has them (which imply AVX2 and FMA); the channels and vector are this tile's.
                unsafe {
                    match mr {
                        1 => x86::tile_avx2::<1>(t, m0, v0 + j, st, y),
                        2 => x86::tile_avx2::<2>(t, m0, v0 + j, st, y),
                        3 => x86::tile_avx2::<3>(t, m0, v0 + j, st, y),
                        _ => x86::tile_avx2::<4>(t, m0, v0 + j, st, y),
                    }
                }
            }
            return;
        }
        Tier::Generic => {}
    }
    generic_tile(t, m0, mr, v0, stores, y);
}

/// The two fp32 values of a word.
#[inline(always)]
fn unpair(word: u32) -> (f32, f32) {
    (
        f32::from_bits(word << 16),
        f32::from_bits(word & 0xffff_0000),
    )
}

/// The portable register tile: plain fp32 sums per lane.
fn generic_tile(t: &Tile, m0: usize, mr: usize, v0: usize, stores: &[Store], y: SharedOut) {
    let l = &t.layout;
    let kk = t.k_words();
    let xg = m0 / t.mg * l.cbg * l.block_len;
    for m in m0..m0 + mr {
        let w = &t.w[m * kk..][..kk];
        for (j, st) in stores.iter().enumerate() {
            let q0 = (v0 + j) * LANES;
            let mut acc = [0f32; LANES];
            for cb in 0..l.cbg {
                for (ti, &off) in t.taps.iter().enumerate() {
                    let (wl, wh) = unpair(w[ti * l.cbg + cb]);
                    let xs = &t.x[xg + cb * l.block_len + off + q0..][..LANES];
                    for (a, &xv) in acc.iter_mut().zip(xs) {
                        let (xl, xh) = unpair(xv);
                        *a += xl * wl + xh * wh;
                    }
                }
            }
            store_lanes(t, &acc, m, *st, y);
        }
    }
}

/// The kept lanes of `acc` (channel `m`'s sums over one vector), finished and stored.
fn store_lanes(t: &Tile, acc: &[f32; LANES], m: usize, st: Store, y: SharedOut) {
    let mut at = st.start;
    for (lane, &a) in acc.iter().enumerate() {
        if st.mask & (1 << lane) != 0 {
            let v = t.finish(a, m, at);
            // SAFETY: kept lanes are output pixels of channel `m` (`at < pixels`), this tile's
            // alone, within the image's `out_c · pixels` outputs.
            unsafe { *y.ptr().add(m * t.pixels + at) = v };
            at += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, Store, Tile};
    use crate::kernels::SharedOut;
    use crate::kernels::gemm::bf16::pair_order;
    use crate::kernels::gemm::x86_64::avx512::activate512_inline;

    /// `super::pair_words` with `vcvtne2ps2bf16`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and AVX512_BF16; `lo` (and `hi`) hold `out.len()` floats.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pair_words(lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
        let n = out.len();
        assert!(lo.len() >= n && hi.is_none_or(|h| h.len() >= n));
        let order = pair_order();
        let mut i = 0;
        while i < n {
            let mask = if n - i >= 16 {
                u16::MAX
            } else {
                (1u16 << (n - i)) - 1
            };
            // SAFETY: the lanes of `mask` are elements `i .. min(i + 16, n)`, within `lo`, `hi`
            // and `out` (asserted above).
            unsafe {
                let l = _mm512_maskz_loadu_ps(mask, lo.as_ptr().add(i));
                let h = match hi {
                    Some(h) => _mm512_maskz_loadu_ps(mask, h.as_ptr().add(i)),
                    None => _mm512_setzero_ps(),
                };
                let both = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l));
                let words = _mm512_permutexvar_epi16(order, both);
                _mm512_mask_storeu_epi32(out.as_mut_ptr().add(i) as *mut i32, mask, words);
            }
            i += 16;
        }
    }

    /// The register tile on `vdpbf16ps`: `MR` channels from `m0` (of one group) × `NR` vectors of
    /// 16 flat output positions from `v0`; per weight word, `NR` input loads, `MR` broadcasts and
    /// `MR · NR` `vdpbf16ps`. The epilogue keeps each vector's lanes of `stores` (the output
    /// columns), compressed together to consecutive outputs.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and AVX512_BF16; `y` must be the image's output (`out_c ·
    /// pixels` floats) of which these channels' kept pixels are written by no one else; `stores`
    /// holds `NR` entries of vectors `v0 ..`.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn tile_dot<const MR: usize, const NR: usize>(
        t: &Tile,
        m0: usize,
        v0: usize,
        stores: &[Store],
        y: SharedOut,
    ) {
        let l = &t.layout;
        let kk = t.k_words();
        // Every load reads words `xg + cb · block_len + off + j · 16 ..+ 16` for the group's
        // blocks `cb`, the taps' offsets `off` and `j < NR`: all within `t.x` (`tile_start`
        // checks).
        let xg = l.tile_start(t.taps, m0, t.mg, v0 * LANES, NR * LANES, t.x.len());
        let w = &t.w[m0 * kk..][..MR * kk];
        let (x, w) = (t.x.as_ptr(), w.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        for cb in 0..l.cbg {
            let xb = xg + cb * l.block_len;
            for (ti, &off) in t.taps.iter().enumerate() {
                // SAFETY: vector `j`'s 16 words lie within `t.x` (checked by `tile_start`); 32 bf16
                // are 512 bits like any other vector.
                let xv: [__m512bh; NR] = std::array::from_fn(|j| unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        x.add(xb + off + j * LANES) as *const __m512i,
                    ))
                });
                let k = ti * l.cbg + cb;
                for i in 0..MR {
                    // SAFETY: `i · kk + k < MR · kk`, the length of `w`.
                    let wv = unsafe {
                        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                            *w.add(i * kk + k) as i32,
                        ))
                    };
                    for j in 0..NR {
                        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[j], wv);
                    }
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { finish_tile(t, m0, &acc, stores, y) }
    }

    /// The register tile on AMX-BF16, in steps of `kw` words ([`super::amx_step`]): channels `m0 .. m0 + mr` (`mr <= 32`) × the vectors of
    /// `stores` (1 or 2) from `v0`. Per kernel tap, the packed weights (a channel's words of the
    /// tap in a row) are AMX's first operand as they are, and the input's blocks at the tap's
    /// offset (16 pixels' words a row, a block's plane apart) its second; `tdpbf16ps` sums the
    /// same products as `vdpbf16ps`, which then go through [`finish_tile`].
    ///
    /// # Safety
    /// As [`tile_dot`]; the AMX tiles configured on this thread (`amx::configure`), AMX-BF16
    /// usable, configured for `kw` (`amx::DirectConfig`), and `kw` `amx_step`'s.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_amx(
        t: &Tile,
        m0: usize,
        mr: usize,
        v0: usize,
        stores: &[Store],
        y: SharedOut,
        kw: usize,
    ) {
        use crate::kernels::gemm::x86_64::amx;
        let l = &t.layout;
        let kk = t.k_words();
        let nr = stores.len();
        let x = l.amx_inputs(t.x, t.taps, (m0, t.mg), (v0, nr));
        let mut padded = Vec::new();
        let w = amx::weight_blocks(t.w, kk, m0, mr, &mut padded);
        let mut stage = [0f32; 1024];
        // SAFETY: the tiles are configured for `kw` and AMX-BF16 usable (the caller's contract).
        // Per tap, the weight rows as chosen above (16 rows of `kk` words from the tap's `cbg`
        // words, `cbg = kw · steps`) and the input rows inside `t.x` (`Layout::amx_inputs`:
        // every block's `nr` vectors at every tap's offset).
        unsafe {
            amx::zero_acc();
            for (ti, &off) in t.taps.iter().enumerate() {
                let w = w.map(|p| p.wrapping_add(ti * l.cbg));
                let x = x.map(|p| p.wrapping_add(off));
                amx::accumulate_bf16(w, 4 * kk, x, 4 * l.block_len, l.cbg / kw, kw);
            }
            amx::store_acc(stage.as_mut_ptr() as *mut u8);
        }
        for c in 0..mr {
            let acc: [[__m512; 2]; 1] = [std::array::from_fn(|j| {
                // SAFETY: block `2·(c / 16) + j` (< 4) row `c % 16` of `stage`: 16 floats.
                unsafe {
                    _mm512_loadu_ps(stage.as_ptr().add(256 * (2 * (c / 16) + j) + 16 * (c % 16)))
                }
            })];
            // SAFETY: forwarded from the caller.
            unsafe {
                if nr == 1 {
                    finish_tile::<1, 1>(t, m0 + c, &[[acc[0][0]]], stores, y)
                } else {
                    finish_tile::<1, 2>(t, m0 + c, &acc, stores, y)
                }
            }
        }
    }

    /// The epilogue of a register tile: bias, residual and activation on each vector's sums, the
    /// lanes of `stores` (the output columns) compressed together to consecutive outputs.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `y` and `stores` as for [`tile_dot`].
    #[target_feature(enable = "avx512f")]
    unsafe fn finish_tile<const MR: usize, const NR: usize>(
        t: &Tile,
        m0: usize,
        acc: &[[__m512; NR]; MR],
        stores: &[Store],
        y: SharedOut,
    ) {
        for (i, acc) in acc.iter().enumerate() {
            let m = m0 + i;
            let bias = _mm512_set1_ps(t.bias.map_or(0.0, |b| b[m]));
            for (j, &a) in acc.iter().enumerate() {
                let st = stores[j];
                let kept = st.mask.count_ones() as usize;
                let low = ((1u32 << kept) - 1) as u16;
                let at = m * t.pixels + st.start;
                let mut v = _mm512_add_ps(a, bias);
                if let Some(r) = t.residual {
                    assert!(at + kept <= r.len());
                    // SAFETY: the kept outputs `at .. at + kept` lie within the residual
                    // (asserted); masked-off lanes are not read.
                    let r = unsafe { _mm512_maskz_loadu_ps(low, r.as_ptr().add(at)) };
                    v = _mm512_add_ps(v, _mm512_maskz_expand_ps(st.mask, r));
                }
                let v = activate512_inline!(t.activation, v);
                let v = if st.mask == u16::MAX {
                    v
                } else {
                    _mm512_maskz_compress_ps(st.mask, v)
                };
                // SAFETY: the kept lanes are outputs `at .. at + kept` of channel `m`, this
                // tile's (the caller's contract).
                unsafe { _mm512_mask_storeu_ps(y.ptr().add(at), low, v) };
            }
        }
    }

    /// [`tile_dot`] without `vdpbf16ps` (AVX-512 without AVX512_BF16): each word's halves widened
    /// to fp32 (`x << 16`, `x & 0xffff0000`: exact) for two FMAs per accumulator, the weight
    /// word's halves split in scalar registers and broadcast. A product of two bf16 is exact in
    /// fp32, so each FMA rounds as the AVX2 tile's.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; the rest as for [`tile_dot`].
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_widen<const MR: usize, const NR: usize>(
        t: &Tile,
        m0: usize,
        v0: usize,
        stores: &[Store],
        y: SharedOut,
    ) {
        let l = &t.layout;
        let kk = t.k_words();
        // Every load reads words `xg + cb · block_len + off + j · 16 ..+ 16` for the group's
        // blocks `cb`, the taps' offsets `off` and `j < NR`: all within `t.x` (`tile_start`
        // checks).
        let xg = l.tile_start(t.taps, m0, t.mg, v0 * LANES, NR * LANES, t.x.len());
        let w = &t.w[m0 * kk..][..MR * kk];
        let (x, w) = (t.x.as_ptr(), w.as_ptr());
        let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        for cb in 0..l.cbg {
            let xb = xg + cb * l.block_len;
            for (ti, &off) in t.taps.iter().enumerate() {
                let halves: [(__m512, __m512); NR] = std::array::from_fn(|j| {
                    // SAFETY: vector `j`'s 16 words lie within `t.x` (checked by `tile_start`).
                    let xv = unsafe {
                        _mm512_loadu_si512(x.add(xb + off + j * LANES) as *const __m512i)
                    };
                    (
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(xv)),
                        _mm512_castsi512_ps(_mm512_and_si512(xv, high)),
                    )
                });
                let k = ti * l.cbg + cb;
                for i in 0..MR {
                    // SAFETY: `i · kk + k < MR · kk`, the length of `w`.
                    let word = unsafe { *w.add(i * kk + k) };
                    let wl = _mm512_set1_ps(f32::from_bits(word << 16));
                    let wh = _mm512_set1_ps(f32::from_bits(word & 0xffff_0000));
                    for j in 0..NR {
                        acc[i][j] = _mm512_fmadd_ps(halves[j].0, wl, acc[i][j]);
                        acc[i][j] = _mm512_fmadd_ps(halves[j].1, wh, acc[i][j]);
                    }
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { finish_tile(t, m0, &acc, stores, y) }
    }

    /// The AVX2 register tile: `MR` channels × one vector `v` of 16 positions (two ymm of 8), each
    /// word's halves widened to fp32 (`x << 16` and `x & 0xffff0000`) for two FMAs; the kept
    /// lanes are finished one by one.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `y` as for [`tile_dot`].
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2<const MR: usize>(
        t: &Tile,
        m0: usize,
        v: usize,
        st: Store,
        y: SharedOut,
    ) {
        let l = &t.layout;
        let kk = t.k_words();
        let xg = l.tile_start(t.taps, m0, t.mg, v * LANES, LANES, t.x.len());
        let w = &t.w[m0 * kk..][..MR * kk];
        let (x, w) = (t.x.as_ptr(), w.as_ptr());
        let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for cb in 0..l.cbg {
            let xb = xg + cb * l.block_len;
            for (ti, &off) in t.taps.iter().enumerate() {
                let halves: [(__m256, __m256); 2] = std::array::from_fn(|j| {
                    // SAFETY: the 16 words at `xb + off` lie within `t.x` (checked by
                    // `tile_start`).
                    let xv =
                        unsafe { _mm256_loadu_si256(x.add(xb + off + 8 * j) as *const __m256i) };
                    (
                        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(xv)),
                        _mm256_castsi256_ps(_mm256_and_si256(xv, high)),
                    )
                });
                let k = ti * l.cbg + cb;
                for i in 0..MR {
                    // SAFETY: `i · kk + k < MR · kk`, the length of `w`.
                    let word = unsafe { *w.add(i * kk + k) };
                    let wl = _mm256_set1_ps(f32::from_bits(word << 16));
                    let wh = _mm256_set1_ps(f32::from_bits(word & 0xffff_0000));
                    for j in 0..2 {
                        acc[i][j] = _mm256_fmadd_ps(halves[j].0, wl, acc[i][j]);
                        acc[i][j] = _mm256_fmadd_ps(halves[j].1, wh, acc[i][j]);
                    }
                }
            }
        }
        for i in 0..MR {
            let mut sums = [0f32; LANES];
            for j in 0..2 {
                // SAFETY: `sums` holds 16 floats, this half's 8 at `8 · j`.
                unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * j), acc[i][j]) };
            }
            super::store_lanes(t, &sums, m0 + i, st, y);
        }
    }
}
