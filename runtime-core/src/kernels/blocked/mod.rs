//! The blocked activation layout NCHW8c and the 1×1 conv that reads and writes it.
//!
//! NCHW8c stores a batch item's `C` channels (a multiple of [`BLOCK`]) as `C / 8` blocks, each
//! `[H·W][8]`: the eight channels of one pixel side by side, the pixels of a block in row-major
//! order. (onnxruntime's NCHWc on AVX2 is the same layout.)
//!
//! Why a 1×1 conv gains from it: in NCHW the GEMM of `gemm` must copy (pack) its activations into
//! column tiles at run time, and stores each output tile as eight short runs in eight planes. In
//! NCHW8c the activations already are what the kernel reads — for each k block of eight input
//! channels, the tile's pixels' eight channels in one contiguous run — so nothing is packed at run
//! time; the weights are the vector operand, packed at compile time as panels of [`PANEL`] output
//! channels (`[panel][in_c][16]`, zero-padded); and an output tile (up to [`TILE_PIXELS`] pixels ×
//! 16 channels, 12 ymm accumulators over the whole k) is stored as two contiguous runs, one per
//! output block, with the epilogue (bias, residual in NCHW8c, activation) applied in registers.
//! Measured in-process against the NCHW GEMM on ResNeXt-50's 1×1 shapes (cold copies, alternated
//! call by call, medians): `bench/RESULTS.md`, "2026-12-01 02:35 UTC — AMD EPYC Zen 3".
//!
//! Tasks: (batch item, chunk of pixels, range of panels). A chunk's activations (about
//! `CHUNK_FLOATS` floats over all k) stay in L2 while each panel of the range sweeps its tiles;
//! a panel's weights (`in_c × 16` floats) are read once per tile from L1/L2.

use super::{
    Activation, ConvArgs, ConvShape, KernelError, PlanesArgs, SharedOut, check_len, check_min_len,
};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Channels per block of the layout.
pub const BLOCK: usize = 8;
/// Output channels per packed weight panel (two blocks).
pub const PANEL: usize = 16;
/// Pixels per register tile (of one panel; the AVX-512 tier's tiles of two panels take up to 12).
pub const TILE_PIXELS: usize = 6;
/// Pixels per register tile of two panels (the AVX-512 tier).
#[cfg(target_arch = "x86_64")]
const PAIR_TILE_PIXELS: usize = avx512::TILE_PIXELS;
#[cfg(not(target_arch = "x86_64"))]
const PAIR_TILE_PIXELS: usize = TILE_PIXELS;
/// Floats of activations (all k rows of a chunk's pixels) a task's chunk aims at: 192 KB, which
/// leaves room in a 512 KB L2 for the weights of the panel being swept.
const CHUNK_FLOATS: usize = 48 * 1024;
/// Input channels per k block: a panel's weights for one block (16 KB) stay in L1 while the
/// chunk's tiles sweep them (deeper, at 7×7, both operands came from L2 for every tile).
const KC: usize = 256;

/// Whether [`pointwise`] runs `shape`: a 1×1 conv without padding or groups, any stride, whose
/// input and output channels are whole blocks.
pub fn supports(shape: &ConvShape) -> bool {
    shape.check().is_ok()
        && shape.kernel == [1, 1]
        && shape.pads == [0; 4]
        && shape.group == 1
        && shape.in_c.is_multiple_of(BLOCK)
        && shape.out_c.is_multiple_of(BLOCK)
}

/// Converts `batch` items of `channels` NCHW planes of `spatial` pixels to NCHW8c on `ctx`'s tier
/// and threads. `channels` must be a multiple of [`BLOCK`].
pub fn to_blocked(ctx: &Ctx, args: PlanesArgs) -> Result<(), KernelError> {
    reorder::<true>(ctx, args)
}

/// Converts NCHW8c back to NCHW (the inverse of [`to_blocked`]).
pub fn from_blocked(ctx: &Ctx, args: PlanesArgs) -> Result<(), KernelError> {
    reorder::<false>(ctx, args)
}

/// One task per block of eight channels of one item: that block's `8 × spatial` floats, as 8 × 8
/// transposes where the tier has them.
pub(crate) fn reorder<const TO_BLOCKED: bool>(
    ctx: &Ctx,
    args: PlanesArgs,
) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    if !channels.is_multiple_of(BLOCK) {
        return Err(KernelError::BadShape(format!(
            "{channels} channels are not whole blocks of {BLOCK} (NCHW8c)"
        )));
    }
    let len = batch * channels * spatial;
    check_len("reorder input", len, input.len())?;
    check_len("reorder output", len, output.len())?;
    let block_len = BLOCK * spatial;
    let out = SharedOut(output.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    let simd = isa.supported() && isa != Isa::Generic;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    threads.run(len / block_len.max(1), &|t| {
        let src = &input[t * block_len..][..block_len];
        // SAFETY: block `t` of the output (`len` floats, checked above) is written by this task
        // alone.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(out.ptr().add(t * block_len), block_len) };
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the tier has AVX; `src` and `dst` hold `8 × spatial` floats.
            done = unsafe { avx2::reorder_block::<TO_BLOCKED>(src, dst, spatial) };
        }
        for p in done..spatial {
            for c in 0..BLOCK {
                let (plain, blocked) = (c * spatial + p, p * BLOCK + c);
                if TO_BLOCKED {
                    dst[blocked] = src[plain];
                } else {
                    dst[plain] = src[blocked];
                }
            }
        }
    });
    Ok(())
}

/// Floats [`pack`] returns for `shape`.
pub fn packed_len(shape: &ConvShape) -> usize {
    shape.out_c.div_ceil(PANEL) * PANEL * shape.in_c
}

/// Packs ONNX-layout weights `[out_c, in_c, 1, 1]` into panels `[panel][in_c][16]` (zero-padded).
/// Done at compile time; every ISA tier reads this layout.
pub fn pack(shape: &ConvShape, weight: &[f32]) -> Result<Vec<f32>, KernelError> {
    if !supports(shape) {
        return Err(unsupported(shape));
    }
    check_len("conv weight", shape.weight_len(), weight.len())?;
    let (m, k) = (shape.out_c, shape.in_c);
    let mut packed = Vec::with_capacity(packed_len(shape));
    for panel in 0..m.div_ceil(PANEL) {
        for kk in 0..k {
            for o in panel * PANEL..(panel + 1) * PANEL {
                packed.push(if o < m { weight[o * k + kk] } else { 0.0 });
            }
        }
    }
    Ok(packed)
}

/// Scratch floats [`pointwise`] needs: a subsampled copy of the input for a strided conv.
pub fn scratch_len(shape: &ConvShape, batch: usize) -> usize {
    if shape.stride == [1, 1] {
        0
    } else {
        batch * shape.in_c * shape.out_h * shape.out_w
    }
}

fn unsupported(shape: &ConvShape) -> KernelError {
    KernelError::BadShape(format!(
        "the blocked (NCHW8c) pointwise conv does not support {shape:?}"
    ))
}

/// One register tile's operands; pointers at the tile's first pixel.
#[derive(Clone, Copy)]
struct Tile {
    /// Input, NCHW8c: block 0 of the tile's first pixel; k block `j` at `x + j·stride`.
    x: *const f32,
    /// Floats between consecutive blocks, of the input and of the output (`H·W·8`).
    stride: usize,
    /// The panel's packed weights, `k × 16`.
    w: *const f32,
    /// Floats between consecutive panels' weights (`in_c × 16`), for tiles of two panels.
    panel_len: usize,
    /// Input channels (a multiple of 8).
    k: usize,
    /// Output, NCHW8c: the panel's first block at the tile's first pixel.
    out: *mut f32,
    /// Laid out like `out`, or null.
    residual: *const f32,
    /// The panel's `8·blocks` bias entries, or null.
    bias: *const f32,
    activation: Activation,
    /// Output blocks of the panel that exist: 2, or 1 for a last half panel.
    blocks: usize,
    /// Add the output's current values (partial sums of the earlier k blocks).
    accumulate: bool,
    /// Apply the epilogue (the last k block); otherwise store the plain sums.
    finish: bool,
}

/// `output = act(conv(input) + bias + residual)` for a 1×1 conv ([`supports`]) with input,
/// output and residual in NCHW8c; `packed` from [`pack`]; `scratch` holds [`scratch_len`] floats.
/// Allocates nothing.
pub fn pointwise(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    let ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let shape = &shape;
    if !supports(shape) {
        return Err(unsupported(shape));
    }
    let s = shape;
    let n = s.out_h * s.out_w;
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    check_len("packed conv weight", packed_len(s), packed.len())?;
    epilogue.check(batch, s.out_c, n)?;
    check_min_len("conv scratch", scratch_len(s, batch), scratch.len())?;
    let isa = if isa.supported() { isa } else { Isa::Generic };
    let input: &[f32] = if s.stride == [1, 1] {
        input
    } else {
        let sub = &mut scratch[..scratch_len(s, batch)];
        subsample(s, batch, input, sub);
        sub
    };
    let item_in = s.in_c * n;
    let item_out = s.out_c * n;
    let panels = s.out_c.div_ceil(PANEL);
    // Chunks of pixels as equal as they come, about `CHUNK_FLOATS` each (their count rounded to
    // the nearest, so that a map a little over one chunk is not swept twice for a few pixels).
    let chunk_pixels = (CHUNK_FLOATS / s.in_c).max(TILE_PIXELS);
    let chunks = if s.out_c >= 8 * n {
        // Weights far larger than the activations (7×7 maps): each extra chunk would read them
        // from memory again.
        1
    } else {
        ((n + chunk_pixels / 2) / chunk_pixels).clamp(1, n.div_ceil(TILE_PIXELS))
    };
    // About four tasks per thread: split the panels once the pixel chunks run out.
    let mut parts = 1;
    while batch * chunks * parts < 4 * threads.count() && 2 * parts <= panels {
        parts *= 2;
    }
    let out = SharedOut(output.as_mut_ptr());
    let stride = n * BLOCK;
    let pairs = cfg!(target_arch = "x86_64") && isa == Isa::Avx512;
    threads.run(batch * chunks * parts, &|t| {
        let (b, c, part) = (t / (chunks * parts), t / parts % chunks, t % parts);
        let (first, len) = (c * n / chunks, (c + 1) * n / chunks - c * n / chunks);
        let weights = |panel: usize| packed.get(panel * s.in_c * PANEL..).unwrap_or(&[]);
        let (mut panel, end) = (part * panels / parts, (part + 1) * panels / parts);
        while panel < end {
            let blocks = (s.out_c / BLOCK - 2 * panel).min(2);
            // Two whole panels at once where the tier has a tile for them.
            let pair = pairs && panel + 1 < end && s.out_c >= (panel + 2) * PANEL;
            let (step, max_width) = if pair {
                (2, PAIR_TILE_PIXELS)
            } else {
                (1, TILE_PIXELS)
            };
            // The chunk's pixels in tiles of as equal widths as they come (5 or 6 on ResNeXt's
            // maps with 6-pixel tiles): a narrow ragged tile has too few accumulators to hide the
            // FMA latency (a 1-pixel tile after eight of 6 pixels took 15% of a 7×7 conv's time).
            let chunk_tiles = len.div_ceil(max_width);
            let tile_pixels =
                |i: usize| first + i * len / chunk_tiles..first + (i + 1) * len / chunk_tiles;
            // The next `step` panels' weights (none after the last panel).
            let next = weights(panel + step);
            let next = &next[..next.len().min(s.in_c * PANEL * step)];
            let k_blocks = s.in_c.div_ceil(KC);
            for (kb, i) in (0..k_blocks).flat_map(|kb| (0..chunk_tiles).map(move |i| (kb, i))) {
                let pixels = tile_pixels(i);
                let (p, width) = (pixels.start, pixels.len());
                let k0 = kb * KC;
                // The next panels' weights, into L2 over these panels' tiles: the first tile to
                // read a panel would otherwise wait on memory (the weights of the 7×7 and 14×14
                // maps' convs are read only once or twice per run).
                super::prefetch_piece(next, kb * chunk_tiles + i, k_blocks * chunk_tiles);
                let at = b * item_out + 2 * panel * stride + p * BLOCK;
                let tile = Tile {
                    x: input[b * item_in + k0 / BLOCK * stride + p * BLOCK..].as_ptr(),
                    stride,
                    w: weights(panel)[k0 * PANEL..].as_ptr(),
                    panel_len: s.in_c * PANEL,
                    k: KC.min(s.in_c - k0),
                    out: out.ptr().wrapping_add(at),
                    residual: epilogue
                        .residual
                        .map_or(std::ptr::null(), |r| r.as_ptr().wrapping_add(at)),
                    bias: epilogue
                        .bias
                        .map_or(std::ptr::null(), |bias| bias[panel * PANEL..].as_ptr()),
                    activation: epilogue.activation,
                    blocks,
                    accumulate: kb > 0,
                    finish: kb + 1 == k_blocks,
                };
                // SAFETY: the tile reads `k / 8` blocks of `width` pixels of item `b`'s input
                // (`input` holds `batch` items of `in_c · n`, checked above), `k × 16` packed
                // weights of its `step` panels (`packed_len` checked), and writes (and reads of
                // the residual, checked to be as long as the output) `blocks` blocks — four for
                // a pair, whose panels are whole — of `width` pixels of item `b`'s output: block
                // `2·panel + blocks <= out_c / 8`. Tasks write disjoint (item, panel, pixel)
                // ranges; the bias holds `out_c` entries. `pair` only on the AVX-512 tier.
                unsafe { run_tile(&tile, width, pair, isa) };
            }
            panel += step;
        }
    });
    Ok(())
}

/// Runs one tile of `width` pixels (1..=6, or 1..=12 for a `pair` of panels) on `isa`.
///
/// # Safety
/// The pointers of `t` valid as documented on [`Tile`] for `width` pixels, `out` ours alone;
/// `isa` supported by this CPU; `pair` only on the AVX-512 tier, with two whole panels.
unsafe fn run_tile(t: &Tile, width: usize, pair: bool, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if pair {
        // SAFETY: forwarded; the AVX-512 tier has AVX-512F, AVX2 and FMA.
        unsafe { avx512::tile_pair(t, width) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Generic {
        // SAFETY: forwarded; both SIMD tiers have AVX2 and FMA.
        unsafe { avx2::tile(t, width) };
        return;
    }
    let _ = (isa, pair);
    // SAFETY: forwarded.
    unsafe { generic_tile(t, width) };
}

/// The plain-loop tile: the same sums in a fixed order (k ascending).
///
/// # Safety
/// As for [`run_tile`].
unsafe fn generic_tile(t: &Tile, width: usize) {
    for blk in 0..t.blocks {
        for p in 0..width {
            for c in 0..BLOCK {
                let o = blk * BLOCK + c;
                let at = blk * t.stride + p * BLOCK + c;
                let mut acc = if t.accumulate {
                    // SAFETY: output element of block `blk < blocks`, pixel `p` (the contract).
                    unsafe { *t.out.add(at) }
                } else {
                    0.0
                };
                for k in 0..t.k {
                    // SAFETY: pixel `p < width` of k block `k / 8` and the panel's weight row
                    // `k` (the contract).
                    unsafe {
                        acc += *t.x.add(k / BLOCK * t.stride + p * BLOCK + k % BLOCK)
                            * *t.w.add(k * PANEL + o);
                    }
                }
                if !t.finish {
                    // SAFETY: as above.
                    unsafe { *t.out.add(at) = acc };
                    continue;
                }
                // SAFETY: as above, for the bias entry `o < 8·blocks`, and the residual and
                // output element of block `blk < blocks`, pixel `p`.
                unsafe {
                    if !t.bias.is_null() {
                        acc += *t.bias.add(o);
                    }
                    if !t.residual.is_null() {
                        acc += *t.residual.add(at);
                    }
                    *t.out.add(at) = t.activation.apply(acc);
                }
            }
        }
    }
}

/// Copies the pixels a strided 1×1 conv reads (`(oy·sy, ox·sx)`) of every block into `out`.
fn subsample(s: &ConvShape, batch: usize, input: &[f32], out: &mut [f32]) {
    let [sy, sx] = s.stride;
    let (in_plane, out_plane) = (s.in_h * s.in_w * BLOCK, s.out_h * s.out_w * BLOCK);
    for (src, dst) in input
        .chunks_exact(in_plane)
        .zip(out.chunks_exact_mut(out_plane))
        .take(batch * s.in_c / BLOCK)
    {
        for oy in 0..s.out_h {
            for ox in 0..s.out_w {
                let from = ((oy * sy) * s.in_w + ox * sx) * BLOCK;
                let to = (oy * s.out_w + ox) * BLOCK;
                dst[to..to + BLOCK].copy_from_slice(&src[from..from + BLOCK]);
            }
        }
    }
}
