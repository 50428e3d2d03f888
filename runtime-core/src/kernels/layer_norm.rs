//! Layer normalisation over the channels of each pixel of NCHW values (ConvNeXt's LayerNorm, the
//! NHWC transposes around it folded away by the compiler): `y = (x − mean) / sqrt(var + ε) ·
//! scale[c] + shift[c]`, mean and biased variance over the pixel's channels.
//!
//! A pixel's channels are a plane apart in NCHW, so the kernel works on blocks of [`BLOCK`]
//! neighbouring pixels: each pass walks the channels reading one contiguous row of the block per
//! channel and keeps the block's per-pixel sums in registers-sized arrays (vectorised over pixels).
//! Three passes (sum, sum of squared deviations, normalise), the classic two-pass variance in f32;
//! blocks of every batch item are spread over the threads.

use super::{KernelError, PlanesArgs, SharedOut, check_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

/// Pixels per block: four 16-float vectors, a row of 256 bytes per channel.
const BLOCK: usize = 64;

/// One block's job: pixels `start .. start + len` of the item whose planes begin at `item` in
/// both the input and the output.
struct Job<'a> {
    input: &'a [f32],
    output: SharedOut,
    item: usize,
    channels: usize,
    spatial: usize,
    start: usize,
    len: usize,
    epsilon: f32,
    scale: &'a [f32],
    shift: &'a [f32],
}

/// Layer normalisation over channels; same contract as
/// [`reference::layer_norm_channels`](super::reference::layer_norm_channels).
pub fn layer_norm_channels(
    ctx: &Ctx,
    args: PlanesArgs,
    epsilon: f32,
    scale: &[f32],
    shift: &[f32],
) -> Result<(), KernelError> {
    let len = args.checked_len(["layer norm input", "layer norm output"])?;
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let item_len = channels * spatial;
    check_len("layer norm scale", channels, scale.len())?;
    check_len("layer norm shift", channels, shift.len())?;
    if len == 0 {
        return Ok(());
    }
    let blocks = spatial.div_ceil(BLOCK);
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        Isa::Generic
    };
    let out = SharedOut(output.as_mut_ptr());
    ctx.threads.run(batch * blocks, &|t| {
        let (n, b) = (t / blocks, t % blocks);
        let start = b * BLOCK;
        let job = Job {
            input,
            output: out,
            item: n * item_len,
            channels,
            spatial,
            start,
            len: BLOCK.min(spatial - start),
            epsilon,
            scale,
            shift,
        };
        match isa {
            // SAFETY: the tier is supported by this CPU (checked above).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { block_avx512(&job) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { block_avx2(&job) },
            _ => block(&job),
        }
    });
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn block_avx512(job: &Job) {
    block(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn block_avx2(job: &Job) {
    block(job)
}

/// Normalises the pixels of one block (see the module documentation).
#[inline(always)]
fn block(job: &Job) {
    let Job {
        input,
        output,
        item,
        channels,
        spatial,
        start,
        len,
        epsilon,
        scale,
        shift,
    } = *job;
    let row = |c: usize| item + c * spatial + start;
    let (mut mean, mut inv) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mean, inv) = (&mut mean[..len], &mut inv[..len]);
    for c in 0..channels {
        for (m, &x) in mean.iter_mut().zip(&input[row(c)..row(c) + len]) {
            *m += x;
        }
    }
    let per_channel = 1.0 / channels as f32;
    for m in mean.iter_mut() {
        *m *= per_channel;
    }
    for c in 0..channels {
        let x = &input[row(c)..row(c) + len];
        for ((s, &m), &x) in inv.iter_mut().zip(mean.iter()).zip(x) {
            let d = x - m;
            *s += d * d;
        }
    }
    for s in inv.iter_mut() {
        *s = 1.0 / (*s * per_channel + epsilon).sqrt();
    }
    for c in 0..channels {
        let x = &input[row(c)..row(c) + len];
        // SAFETY: this block's rows (pixels `start .. start + len` of each channel of one item) lie
        // inside the output (its length equals the input's, checked by the caller) and no other
        // task writes them: tasks are distinct (item, block) pairs.
        let y = unsafe { std::slice::from_raw_parts_mut(output.ptr().wrapping_add(row(c)), len) };
        let (g, b) = (scale[c], shift[c]);
        for ((y, &x), (&m, &i)) in y.iter_mut().zip(x).zip(mean.iter().zip(inv.iter())) {
            *y = (x - m) * i * g + b;
        }
    }
}
