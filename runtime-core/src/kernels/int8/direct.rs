//! The direct int8 conv: output pixels in the vector lanes, output channels broadcast.
//!
//! The input is quantized once per image into blocks of 4 channels, each pixel's 4 bytes one
//! 32-bit word (one `vpdpbusd` operand lane), the image padded with the zero point and split into
//! `stride_h · stride_w` phase planes of `hs × ws` words (phase `(py, px)` holds the padded pixels
//! `(py + sy · r, px + sx · c)`). Output pixel `(oy, ox)` is the flat position `q = oy · ws + ox` of
//! a grid `ws` wide, and for every kernel tap `(ky, kx)` its input word sits at `q + offset(ky,
//! kx)` of the tap's phase plane: 16 consecutive `q` are 16 consecutive words, one unaligned load.
//! The columns `ox ≥ out_w` of that grid are computed and dropped (compressed out on the store):
//! `(ws − out_w) / ws` of the work, none for unpadded stride-1 convs.
//!
//! Weights are packed per output channel as `[ky][kx][block]` words (4 input channels' i8 each,
//! zero past a group's channels), so a grouped conv costs exactly its own channels: no padding of a
//! group's output channels to a register width, whatever the channels per group. A group's input
//! channels must be whole blocks (a multiple of 4) unless there is one group, whose last block is
//! then padded with zero weights, and the output at least 16 pixels ([`applies`]); other convs
//! take the im2col path.
//!
//! Tiers ([`Tier`]): the AVX-512 VNNI register tile (`x86_64::direct_vnni`: up to 4 channels × 4
//! vectors of 16 pixels, `vpdpbusd` with the broadcast weight word), the AVX2 one
//! (`x86_64::direct_avx2`: up to 4 channels × 16 pixels, the bytes split into even and odd i16
//! halves for two exact `vpmaddwd`) and the generic loop below; all compute the integer sums and the
//! f32 epilogue of [`QOutput::apply`], bit-exact against the reference.

use super::{Addend, Packed, QOutput, Quant, SharedBytes, Src, SumRule};
use crate::exec::Ctx;
use crate::kernels::{ConvShape, SharedOut};

/// Pixels per vector (16 i32 lanes).
pub(crate) const LANES: usize = 16;
/// Output channels per task.
const TASK_M: usize = 32;
/// Vectors of pixels per task.
const TASK_V: usize = 16;
/// Vectors per register tile.
pub(crate) const NR: usize = 4;
/// Output channels per register tile.
pub(crate) const MR: usize = 4;

/// Which register tile and input quantization the direct path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    /// AVX-512 with VNNI (`vpdpbusd`) and BW.
    Vnni,
    /// AVX2: bytes widened to i16 halves for `vpmaddwd` (`vpmaddubsw` would saturate).
    Avx2,
    Generic,
}

/// Whether the direct path applies: one group, or whole 4-channel blocks per group, and at least
/// one vector of output pixels (a dense layer, one pixel, would fill one lane in 16: it keeps the
/// im2col path, whose lanes are output channels).
pub fn applies(s: &ConvShape) -> bool {
    (s.group == 1 || (s.in_c / s.group).is_multiple_of(4)) && s.out_h * s.out_w >= LANES
}

/// The direct layout of one conv.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// 4-channel blocks per group.
    pub cbg: usize,
    /// Blocks of the whole input.
    pub blocks: usize,
    /// Phase plane height and width (the padded input divided by the stride, rounded up).
    pub hs: usize,
    pub ws: usize,
    /// Words per block: `stride_h · stride_w` planes.
    pub block_len: usize,
    /// Flat output positions `out_h · ws`.
    pub flat: usize,
}

impl Layout {
    pub fn of(s: &ConvShape) -> Layout {
        Layout::with_word(s, 4)
    }

    /// The layout of words holding `per_word` channels each (4 u8 codes here, 2 bf16 in
    /// `kernels::direct_bf16`).
    pub fn with_word(s: &ConvShape, per_word: usize) -> Layout {
        let cbg = (s.in_c / s.group).div_ceil(per_word);
        let hp = s.in_h + s.pads[0] + s.pads[2];
        let wp = s.in_w + s.pads[1] + s.pads[3];
        let (hs, ws) = (hp.div_ceil(s.stride[0]), wp.div_ceil(s.stride[1]));
        Layout {
            cbg,
            blocks: cbg * s.group,
            hs,
            ws,
            block_len: s.stride[0] * s.stride[1] * hs * ws,
            flat: s.out_h * ws,
        }
    }

    /// Words of the quantized input: every block, then slack for the last vectors' loads (which
    /// read at most `ws + LANES` words past the last block; their lanes are dropped).
    pub fn input_words(&self) -> usize {
        self.blocks * self.block_len + self.ws + LANES
    }

    /// Per kernel tap (row-major), its word offset in a block: its phase plane and its shift in
    /// the plane, so that output position `q` reads word `q + offset`.
    pub fn taps(&self, s: &ConvShape) -> Vec<usize> {
        let [kh, kw] = s.kernel;
        let plane = self.hs * self.ws;
        (0..kh * kw)
            .map(|t| {
                let (dy, dx) = ((t / kw) * s.dilation[0], (t % kw) * s.dilation[1]);
                let phase = (dy % s.stride[0]) * s.stride[1] + dx % s.stride[1];
                phase * plane + dy / s.stride[0] * self.ws + dx / s.stride[1]
            })
            .collect()
    }

    /// The word where a SIMD register tile's reads start (the group of channel `m0`, `mg`
    /// channels a group; flat output position `q0`), after checking that a read of `span` words
    /// from there at every block of the group and every tap of `taps` lies within the `len` words
    /// of the input: the bound the tiles' unchecked loads rely on.
    pub fn tile_start(
        &self,
        taps: &[usize],
        m0: usize,
        mg: usize,
        q0: usize,
        span: usize,
        len: usize,
    ) -> usize {
        let start = m0 / mg * self.cbg * self.block_len + q0;
        let max_off = taps.iter().copied().max().unwrap_or(0);
        assert!(start + (self.cbg - 1) * self.block_len + max_off + span <= len);
        start
    }

    /// Where an AMX tile of the direct layout (`x86_64::direct_amx`, `direct_bf16`'s
    /// `tile_amx`) reads its input: the words of vector `v0` and of the next one (or `v0` again
    /// when `nr` is 1) in the first block of channel `m0`'s group, before any tap's offset. Every
    /// block's `nr` vectors at every tap's offset lie within `x` ([`Layout::tile_start`]
    /// asserts it).
    pub fn amx_inputs(
        &self,
        x: &[u32],
        taps: &[usize],
        (m0, mg): (usize, usize),
        (v0, nr): (usize, usize),
    ) -> [*const u32; 2] {
        let xg = self.tile_start(taps, m0, mg, v0 * LANES, nr * LANES, x.len());
        let x0 = x[xg..].as_ptr();
        [x0, if nr > 1 { x0.wrapping_add(LANES) } else { x0 }]
    }

    /// Vectors of flat output positions.
    pub fn vectors(&self) -> usize {
        self.flat.div_ceil(LANES)
    }
}

/// Words of the packed direct weights: `[out_c][cbg][kh][kw]`.
pub(crate) fn weight_words(s: &ConvShape) -> usize {
    s.out_c * Layout::of(s).cbg * s.kernel[0] * s.kernel[1]
}

/// Appends the direct weights of `weight` (`[out_c, in_c / group, kh, kw]`) to `out`, as words.
pub(crate) fn pack_weights(s: &ConvShape, weight: &[i8], out: &mut Vec<f32>) {
    let l = Layout::of(s);
    let [kh, kw] = s.kernel;
    let cin_g = s.in_c / s.group;
    for m in 0..s.out_c {
        let w = &weight[m * cin_g * kh * kw..][..cin_g * kh * kw];
        for t in 0..kh * kw {
            for cb in 0..l.cbg {
                let mut bytes = [0u8; 4];
                for (j, b) in bytes.iter_mut().enumerate() {
                    let c = cb * 4 + j;
                    if c < cin_g {
                        *b = w[c * kh * kw + t] as u8;
                    }
                }
                out.push(f32::from_bits(u32::from_le_bytes(bytes)));
            }
        }
    }
}

/// Where a tile stores one vector of flat positions: the lanes kept (`mask`, those of output
/// columns `< out_w` and before the end) and the output index of the first kept one.
#[derive(Clone, Copy, Default)]
pub(crate) struct Store {
    pub mask: u16,
    pub start: usize,
}

impl Store {
    /// Vector `v` of `flat` positions laid out `ws` to an output row of which `out_w` are kept
    /// (the direct and depthwise layouts alike).
    pub(crate) fn of(flat: usize, ws: usize, out_w: usize, v: usize) -> Store {
        let q0 = v * LANES;
        let mut mask = 0u16;
        // Position `q0 + lane`'s column, stepped (one division a vector, not one a lane).
        let mut col = q0 % ws;
        for lane in 0..LANES.min(flat.saturating_sub(q0)) {
            if col < out_w {
                mask |= 1 << lane;
            }
            col += 1;
            if col == ws {
                col = 0;
            }
        }
        Store {
            mask,
            start: q0 / ws * out_w + (q0 % ws).min(out_w),
        }
    }
}

/// One register tile's work: channels `m0 .. m0 + mr` (of one group) × the vectors of `stores`
/// from vector `v0`.
pub(crate) struct Tile<'a> {
    /// The image's quantized input (`Layout::input_words`).
    pub x: &'a [u32],
    /// The direct weights.
    pub w: &'a [u32],
    pub packed: Packed<'a>,
    /// Output channels per group, and their padded count in `packed`'s bias and multiplier.
    pub mg: usize,
    pub mp: usize,
    pub layout: Layout,
    /// Per kernel tap, its word offset in a block.
    pub taps: &'a [usize],
    pub pixels: usize,
    pub out: QOutput,
    /// The residual step and the image's residual input (indexed as the output).
    pub sum: Option<(SumRule, Addend<'a>)>,
    /// Write codes of this quantization instead of values (`int8::store`).
    pub codes: Option<Quant>,
}

impl Tile<'_> {
    /// Channel `m`'s index in `packed`'s bias and multiplier.
    #[inline]
    pub fn at(&self, m: usize) -> usize {
        m / self.mg * self.mp + m % self.mg
    }

    /// Words of one channel's weights.
    #[inline]
    pub fn k_words(&self) -> usize {
        self.layout.cbg * self.taps.len()
    }
}

/// The direct conv of one image: `x` (`[in_c, in_h, in_w]`, values or codes) quantized into `buf`,
/// convolved into `y` (`[out_c, out_h · out_w]`; codes of `codes` if some), with the residual step
/// `sum` (and the image's residual).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_image(
    ctx: &Ctx,
    tier: Tier,
    s: &ConvShape,
    x: Src,
    quant: Quant,
    packed: Packed,
    w: &[u32],
    out: QOutput,
    sum: Option<(SumRule, Addend)>,
    buf: &mut [u32],
    y: SharedOut,
    codes: Option<Quant>,
) {
    let l = Layout::of(s);
    let buf = &mut buf[..l.input_words()];
    quantize_input(ctx, tier, s, &l, x, quant, buf);
    let buf = &*buf;
    let taps = l.taps(s);
    let mg = s.out_c / s.group;
    let tile = Tile {
        x: buf,
        w,
        packed,
        mg,
        mp: packed.bias.len() / s.group,
        layout: l,
        taps: &taps,
        pixels: s.out_h * s.out_w,
        out,
        sum,
        codes,
    };
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Vnni
        && let Some(kw) = amx_step(s, &l)
    {
        use crate::kernels::gemm::x86_64::amx;
        let config = amx::DirectConfig::new(kw);
        // SAFETY: AMX-INT8 is usable (`amx_step`); every tile runs between the configure and
        // the release of its task's thread.
        let (begin, end) = (|| unsafe { config.load() }, || unsafe { amx::release() });
        for_each_tile_in(
            ctx,
            s,
            &l,
            (AMX_MR, AMX_NR),
            (&begin, &end),
            |m0, mr, v0, stores| {
                // SAFETY: `Tier::Vnni` is chosen only where the CPU has AVX-512F, BW and VNNI; the
                // channels and vectors are this tile's, within the layout; the tiles are configured
                // for `kw`.
                unsafe { super::x86_64::direct_amx(&tile, m0, mr, v0, stores, y, kw) }
            },
        );
        return;
    }
    for_each_tile(ctx, s, &l, MR, NR, |m0, mr, v0, stores| {
        run_tile(tier, &tile, m0, mr, v0, stores, y)
    });
}

/// Channels and vectors of an AMX tile (`x86_64::direct_amx`).
const AMX_MR: usize = 32;
const AMX_NR: usize = 2;

/// The words of one AMX step where the VNNI tier runs `s` on AMX-INT8 tiles
/// (`x86_64::direct_amx`): a CPU with AMX-INT8 whose tile state the OS granted, `RESNEXT_INT8`
/// not `vnni`, and at least 4 words (16 input channels) a step: the largest power of two up to
/// 16 that divides a group's blocks. Any kernel, stride, dilation and group count (a tile's
/// rows past its group's channels are computed and dropped). With fewer, `tdpbsud` does fewer
/// multiply-adds an instruction than `vpdpbusd` does at its rate.
#[cfg(target_arch = "x86_64")]
pub(crate) fn amx_step(_s: &ConvShape, l: &Layout) -> Option<usize> {
    let kw = [16, 8, 4]
        .into_iter()
        .find(|&kw| l.cbg.is_multiple_of(kw))?;
    (l.cbg > 0 && amx_enabled()).then_some(kw)
}

/// AMX-INT8 usable in this process and not turned off by `RESNEXT_INT8=vnni` (read once; tests
/// run the VNNI tiles that way on CPUs with AMX).
#[cfg(target_arch = "x86_64")]
pub fn amx_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("RESNEXT_INT8").map_or(true, |v| v != "vnni")
            && crate::kernels::gemm::x86_64::amx::usable_int8()
    })
}

/// Runs `tile(m0, mr, v0, stores)` for every register tile of the direct layout `l` of `s`, at
/// most `mr_max` channels (of one group: its channels share the input blocks) × `nr_max ≤ NR`
/// vectors of flat output positions from `v0` (`stores` their kept lanes), in tasks of
/// [`TASK_M`] channels × [`TASK_V`] vectors over `ctx`'s threads.
pub(crate) fn for_each_tile<F: Fn(usize, usize, usize, &[Store]) + Sync>(
    ctx: &Ctx,
    s: &ConvShape,
    l: &Layout,
    mr_max: usize,
    nr_max: usize,
    tile: F,
) {
    for_each_tile_in(ctx, s, l, (mr_max, nr_max), (&|| {}, &|| {}), tile)
}

/// [`for_each_tile`] with `begin` run before each task's tiles and `end` after them, on the
/// task's thread.
#[allow(clippy::type_complexity)]
pub(crate) fn for_each_tile_in<F: Fn(usize, usize, usize, &[Store]) + Sync>(
    ctx: &Ctx,
    s: &ConvShape,
    l: &Layout,
    (mr_max, nr_max): (usize, usize),
    (begin, end): (&(dyn Fn() + Sync), &(dyn Fn() + Sync)),
    tile: F,
) {
    let mg = s.out_c / s.group;
    let vectors = l.vectors();
    let v_tiles = vectors.div_ceil(TASK_V);
    let m_tiles = s.out_c.div_ceil(TASK_M);
    ctx.threads.run(m_tiles * v_tiles, &|task| {
        begin();
        let (mt, vt) = (task / v_tiles, task % v_tiles);
        let m_end = ((mt + 1) * TASK_M).min(s.out_c);
        let v_end = ((vt + 1) * TASK_V).min(vectors);
        let mut v0 = vt * TASK_V;
        while v0 < v_end {
            let nr = nr_max.min(NR).min(v_end - v0);
            let mut stores = [Store::default(); NR];
            for (j, st) in stores.iter_mut().enumerate().take(nr) {
                *st = Store::of(l.flat, l.ws, s.out_w, v0 + j);
            }
            let mut m0 = mt * TASK_M;
            while m0 < m_end {
                let group_end = (m0 / mg + 1) * mg;
                let mr = mr_max.min(m_end - m0).min(group_end - m0);
                tile(m0, mr, v0, &stores[..nr]);
                m0 += mr;
            }
            v0 += nr;
        }
        end();
    });
}

/// Runs the register tile of channels `m0 .. m0 + mr` × the vectors of `stores` from `v0`, writing
/// through `y` (the image's output, of which these channels' pixels are this tile's alone).
#[allow(unused_variables)]
fn run_tile(tier: Tier, t: &Tile, m0: usize, mr: usize, v0: usize, stores: &[Store], y: SharedOut) {
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Vnni {
        macro_rules! dispatch {
            ($($m:literal $n:literal),*) => {
                match (mr, stores.len()) {
                    // SAFETY: `Tier::Vnni` is chosen only where the CPU has AVX-512F, BW and VNNI
                    // (`use_vnni`); the channels and vectors are this tile's, within the layout.
                    $(($m, $n) => unsafe { super::x86_64::direct_vnni::<$m, $n>(t, m0, v0, stores, y) },)*
                    _ => unreachable!("register tiles are 1..=4 channels × 1..=4 vectors"),
                }
            };
        }
        return dispatch!(1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4);
    }
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Avx2 {
        for (j, &st) in stores.iter().enumerate() {
            // SAFETY: `Tier::Avx2` is chosen only on the AVX2 and AVX-512 tiers, which imply AVX2
            // (`Isa::supported`); the channels and vector are this tile's, within the layout.
            unsafe {
                match mr {
                    1 => super::x86_64::direct_avx2::<1>(t, m0, v0 + j, st, y),
                    2 => super::x86_64::direct_avx2::<2>(t, m0, v0 + j, st, y),
                    3 => super::x86_64::direct_avx2::<3>(t, m0, v0 + j, st, y),
                    _ => super::x86_64::direct_avx2::<4>(t, m0, v0 + j, st, y),
                }
            }
        }
        return;
    }
    generic_tile(t, m0, mr, v0, stores, y);
}

/// The portable register tile: plain i32 sums per lane.
fn generic_tile(t: &Tile, m0: usize, mr: usize, v0: usize, stores: &[Store], y: SharedOut) {
    let l = &t.layout;
    let kk = t.k_words();
    let xg = m0 / t.mg * l.cbg * l.block_len;
    for m in m0..m0 + mr {
        let w = &t.w[m * kk..][..kk];
        let (bias, mult) = (t.packed.bias[t.at(m)], t.packed.multiplier[t.at(m)]);
        for (j, st) in stores.iter().enumerate() {
            let q0 = (v0 + j) * LANES;
            let mut acc = [0i32; LANES];
            for cb in 0..l.cbg {
                for (ti, &off) in t.taps.iter().enumerate() {
                    let wb = w[ti * l.cbg + cb].to_le_bytes();
                    let xs = &t.x[xg + cb * l.block_len + off + q0..][..LANES];
                    for (a, &xv) in acc.iter_mut().zip(xs) {
                        let xb = xv.to_le_bytes();
                        for k in 0..4 {
                            *a = a.wrapping_add(xb[k] as i32 * wb[k] as i8 as i32);
                        }
                    }
                }
            }
            let mut at = st.start;
            for (lane, &a) in acc.iter().enumerate() {
                if st.mask & (1 << lane) != 0 {
                    let mut v = t.out.apply(a, bias, mult);
                    if let Some((rule, r)) = t.sum {
                        v = rule.apply(v, r.at(m * t.pixels + at));
                    }
                    // SAFETY: kept lanes are output pixels of channel `m` (`at < pixels`), this
                    // tile's alone, within the image's `out_c · pixels` outputs.
                    unsafe { super::store(y, t.codes, m * t.pixels + at, v) };
                    at += 1;
                }
            }
        }
    }
}

/// Quantizes `x` into the direct layout `buf`: every block's words the zero point (the padding),
/// then each input pixel's 4 channels (0 past the input's channels) at its phase position, for the
/// phases the kernel reads; a block per task.
fn quantize_input(
    ctx: &Ctx,
    tier: Tier,
    s: &ConvShape,
    l: &Layout,
    x: Src,
    quant: Quant,
    buf: &mut [u32],
) {
    let hw = s.in_h * s.in_w;
    let cin_g = s.in_c / s.group;
    let zp_word = quant.zero_point as u32 * 0x0101_0101;
    fill_layout(ctx, s, l, zp_word, buf, &|b, at, out| {
        let (g, cb) = (b / l.cbg, b % l.cbg);
        let c0 = g * cin_g + cb * 4;
        let channels = 4.min(cin_g - cb * 4);
        let planes: [Src; 4] =
            std::array::from_fn(|j| x.slice((c0 + j.min(channels - 1)) * hw, hw));
        quantize_words(tier, &planes, channels, at, quant, out);
    });
}

/// Fills the direct layout `buf` (of `l`, for `s`), a block per task: every block's words `pad`
/// (the padding), then each input pixel's word at its phase position, for the phases the kernel
/// reads. `words(b, at, out)` writes block `b`'s words of the `out.len()` input pixels from
/// element `at` of a plane.
pub(crate) fn fill_layout(
    ctx: &Ctx,
    s: &ConvShape,
    l: &Layout,
    pad: u32,
    buf: &mut [u32],
    words: &(dyn Fn(usize, usize, &mut [u32]) + Sync),
) {
    let hw = s.in_h * s.in_w;
    let [sy, sx] = s.stride;
    let plane = l.hs * l.ws;
    // The phases some kernel tap reads (a strided 1×1 conv reads one row and column phase of
    // `stride`): the others are left unwritten.
    let phases_read = |stride: usize, k: usize, dilation: usize| {
        let mut read = vec![false; stride];
        for t in 0..k {
            read[t * dilation % stride] = true;
        }
        read
    };
    let rows_read = phases_read(sy, s.kernel[0], s.dilation[0]);
    let cols_read = phases_read(sx, s.kernel[1], s.dilation[1]);
    assert!(buf.len() >= l.blocks * l.block_len);
    let shared = SharedBytes(buf.as_mut_ptr() as *mut u8);
    ctx.threads.run(l.blocks, &|b| {
        // SAFETY: task `b` writes only block `b`'s `block_len` words of `buf` (which holds every
        // block: asserted above), and `buf` outlives the `run`.
        let block = unsafe {
            std::slice::from_raw_parts_mut(
                (shared.ptr() as *mut u32).add(b * l.block_len),
                l.block_len,
            )
        };
        if s.pads == [0; 4] && s.stride == [1, 1] {
            // Unpadded, one phase: the block is the input's pixels in order.
            words(b, 0, &mut block[..hw]);
            return;
        }
        block.fill(pad);
        let mut row = [0u32; 256];
        for iy in 0..s.in_h {
            let py = iy + s.pads[0];
            if !rows_read[py % sy] {
                continue;
            }
            let row_base = (py % sy) * sx * plane + py / sy * l.ws;
            let at = iy * s.in_w;
            if sx == 1 {
                // One phase column: the row's words are consecutive.
                words(b, at, &mut block[row_base + s.pads[1]..][..s.in_w]);
                continue;
            }
            // Filled in chunks of `row`; a chunk's words `r, r + sx, …` then go to one run of a
            // phase row (input column `ix` is padded column `ix + pl`: phase `(ix + pl) % sx`,
            // column `(ix + pl) / sx`), copied rather than scattered word by word.
            let mut ix = 0;
            while ix < s.in_w {
                let n = row.len().min(s.in_w - ix);
                let chunk = &mut row[..n];
                words(b, at + ix, chunk);
                for r in 0..sx.min(n) {
                    let px = ix + r + s.pads[1];
                    if !cols_read[px % sx] {
                        continue;
                    }
                    let run =
                        &mut block[row_base + px % sx * plane + px / sx..][..(n - r).div_ceil(sx)];
                    for (dst, &word) in run.iter_mut().zip(chunk[r..].iter().step_by(sx)) {
                        *dst = word;
                    }
                }
                ix += n;
            }
        }
    });
}

/// The words of `out.len()` pixels from element `at` of `channels` planes: byte `j` is channel
/// `j`'s code ([`Quant::quantize`] of a value), 0 for `j ≥ channels`.
#[allow(unused_variables)]
fn quantize_words(
    tier: Tier,
    planes: &[Src; 4],
    channels: usize,
    at: usize,
    quant: Quant,
    out: &mut [u32],
) {
    #[cfg(target_arch = "x86_64")]
    if tier == Tier::Vnni {
        let n = out.len();
        match planes {
            [Src::Real(_), ..] => {
                let planes = planes.map(|p| match p {
                    Src::Real(x) => &x[at..][..n],
                    Src::Codes(_) => &[][..],
                });
                // SAFETY: `Tier::Vnni` implies AVX-512F and BW (`use_vnni`); each of the first
                // `channels` planes holds the `n` elements.
                return unsafe {
                    super::x86_64::quantize_words_avx512(&planes, channels, quant, out)
                };
            }
            [Src::Codes(_), ..] => {
                let planes = planes.map(|p| match p {
                    Src::Codes(x) => &x[at..][..n],
                    Src::Real(_) => &[][..],
                });
                // SAFETY: as above.
                return unsafe { super::x86_64::words_from_codes_avx512(&planes, channels, out) };
            }
        }
    }
    for (i, word) in out.iter_mut().enumerate() {
        let mut bytes = [0u8; 4];
        for (j, b) in bytes.iter_mut().enumerate().take(channels) {
            *b = planes[j].code(at + i, quant);
        }
        *word = u32::from_le_bytes(bytes);
    }
}
