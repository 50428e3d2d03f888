//! The implicit-GEMM conv on small output maps (7×7, 14×14), vectorised over output channels
//! instead of output pixels.
//!
//! Numbering columns across padded rows wastes the padding columns and the last vector's idle
//! lanes: a 7×7 map is 49 outputs in 64 computed columns. Here a micro-tile is one output row's
//! pixels (up to [`MAX_PIXELS`]) × [`PANEL`] output channels (two zmm; two halves of two ymm on
//! AVX2): per k step two weight vectors and one broadcast per pixel, read from the same
//! phase-split copy as the column tiles (a row's pixels are contiguous there), so no lane is idle.
//! The weights are packed `[panel][k][PANEL]` with k in `(ic, ky, kx)` order, and the sums are
//! the column tiles' in the same order. A task owns one panel of one image: it sweeps k in blocks
//! of whole input channels, about [`K_BLOCK`] steps (the block's weights stay in L1 across the
//! map's rows), keeps the partial sums in a per-thread buffer `[pixel][PANEL]`, and after the last
//! block transposes them into the NCHW output through the epilogue.

use super::{Phases, k_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use crate::kernels::{ConvShape, Epilogue, SharedOut};

/// Output channels per weight panel and micro-tile.
pub(super) const PANEL: usize = 32;
/// Pixels per micro-tile at most: 14 × 2 accumulators of 16 lanes.
pub(super) const MAX_PIXELS: usize = 14;
/// k steps per block, about: a block's weights (`K_BLOCK × PANEL` floats, 16 KB) stay in L1.
const K_BLOCK: usize = 128;
/// Largest map (output pixels) taken: its partial sums, `PANEL` floats a pixel, stay in L2.
pub(super) const MAX_PIXELS_PER_MAP: usize = 1024;

/// Floats [`pack`] returns.
pub(super) fn packed_len(s: &ConvShape) -> usize {
    s.out_c.div_ceil(PANEL) * PANEL * k_len(s)
}

/// Packs ONNX weights `[out_c, in_c, kh, kw]` into panels `[panel][k][PANEL]` (zero-padded).
pub(super) fn pack(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let (m, k) = (s.out_c, k_len(s));
    let mut packed = Vec::with_capacity(packed_len(s));
    for panel in 0..m.div_ceil(PANEL) {
        for kk in 0..k {
            for o in panel * PANEL..(panel + 1) * PANEL {
                packed.push(if o < m { weight[o * k + kk] } else { 0.0 });
            }
        }
    }
    packed
}

/// Floats of one thread's partial sums.
pub(super) fn sums_len(s: &ConvShape) -> usize {
    s.out_h * s.out_w * PANEL
}

/// One micro-tile: a run of one output row's pixels × one panel, over a block of input channels.
#[derive(Clone, Copy)]
pub(super) struct RowTile<'a> {
    /// The panel's packed weights at the block's first k step: `PANEL` floats a step.
    pub w: *const f32,
    /// The phase-split copy at the block's first channel and the run's first pixel (tap
    /// offsets and channels to be added); the run's pixels are consecutive floats.
    pub x: *const f32,
    /// Floats between consecutive input channels of the copy.
    pub plane: usize,
    /// Input channels of the block.
    pub channels: usize,
    pub taps: &'a [usize],
    /// Partial sums `[pixel][PANEL]` at the run's first pixel.
    pub sums: *mut f32,
    /// Add to the sums (every block but the first); otherwise overwrite them.
    pub accumulate: bool,
}

/// Runs the by-channel conv of one image: `copy` its phase-split input, `output` its NCHW output
/// (`out_c · out_h · out_w` floats) and the epilogue's residual that image's, `sums` one buffer
/// of [`sums_len`] floats per thread.
/// `isa` must be supported by this CPU.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_image(
    ctx: &Ctx,
    isa: Isa,
    s: &ConvShape,
    ph: Phases,
    taps: &[usize],
    copy: &[f32],
    packed: &[f32],
    epilogue: &Epilogue,
    output: SharedOut,
    sums: SharedOut,
) {
    let n = s.out_h * s.out_w;
    let k = k_len(s);
    let panels = s.out_c.div_ceil(PANEL);
    let block = (K_BLOCK / taps.len()).max(1);
    let segments = s.out_w.div_ceil(MAX_PIXELS);
    let sums_len = sums_len(s);
    ctx.threads.run_indexed(panels, &|q, worker| {
        let sums = sums.ptr().wrapping_add(worker * sums_len);
        let weights = &packed[q * PANEL * k..][..PANEL * k];
        for ic0 in (0..s.in_c).step_by(block) {
            let channels = block.min(s.in_c - ic0);
            for oy in 0..s.out_h {
                for seg in 0..segments {
                    let ox0 = seg * s.out_w / segments;
                    let pixels = (seg + 1) * s.out_w / segments - ox0;
                    let tile = RowTile {
                        w: weights[ic0 * taps.len() * PANEL..].as_ptr(),
                        x: copy[ic0 * ph.plane + oy * ph.wq + ox0..].as_ptr(),
                        plane: ph.plane,
                        channels,
                        taps,
                        sums: sums.wrapping_add((oy * s.out_w + ox0) * PANEL),
                        accumulate: ic0 > 0,
                    };
                    // SAFETY: the weights hold `channels · taps` steps of `PANEL` floats from the
                    // block's first; a tap's run of `pixels` floats from a channel of the block
                    // lies in the copy (the output pixels' windows); the sums of these pixels lie
                    // in worker `worker`'s buffer, which only this task uses now. `isa` is
                    // supported.
                    unsafe { run_tile(&tile, pixels, isa) };
                }
            }
        }
        // The epilogue, transposing `[pixel][PANEL]` into the channels' planes.
        for c in 0..PANEL.min(s.out_c - q * PANEL) {
            let o = q * PANEL + c;
            let bias = epilogue.bias.map_or(0.0, |b| b[o]);
            let plane = output.ptr().wrapping_add(o * n);
            for i in 0..n {
                // SAFETY: pixel `i`'s sum of channel `c` is in this worker's buffer; output
                // channel `o` of the image (`out_c · n` floats, checked by the caller) is
                // written by this task alone.
                unsafe {
                    let mut v = *sums.add(i * PANEL + c) + bias;
                    if let Some(r) = epilogue.residual {
                        v += r[o * n + i];
                    }
                    *plane.add(i) = epilogue.activation.apply(v);
                }
            }
        }
    });
}

/// Runs one micro-tile of `pixels` (`1..=MAX_PIXELS`) on `isa`.
///
/// # Safety
/// The pointers of `t` valid as documented on [`RowTile`] for `pixels` pixels, the sums ours
/// alone; `isa` supported by this CPU.
unsafe fn run_tile(t: &RowTile, pixels: usize, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: forwarded; the tier has AVX-512F.
        Isa::Avx512 => return unsafe { super::avx512::row_tile(t, pixels) },
        // SAFETY: forwarded; the tier has AVX2 and FMA.
        Isa::Avx2 => return unsafe { super::avx2::row_tile(t, pixels) },
        Isa::Generic => {}
    }
    let _ = isa;
    for p in 0..pixels {
        for c in 0..PANEL {
            let mut acc = 0.0f32;
            let mut w = t.w;
            for ic in 0..t.channels {
                for &off in t.taps {
                    // SAFETY: weight `c` of this step and pixel `p` of the tap's run.
                    unsafe {
                        acc = (*w.add(c)).mul_add(*t.x.add(ic * t.plane + off + p), acc);
                    }
                    w = w.wrapping_add(PANEL);
                }
            }
            // The block's sum added to the earlier blocks', as on the SIMD tiers.
            // SAFETY: the sums of pixel `p < pixels`, channel `c < PANEL` (the contract).
            let sum = unsafe { t.sums.add(p * PANEL + c) };
            if t.accumulate {
                // SAFETY: as above.
                acc += unsafe { *sum };
            }
            // SAFETY: as above.
            unsafe { *sum = acc };
        }
    }
}
