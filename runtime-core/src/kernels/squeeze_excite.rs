//! Squeeze-and-excitation (SENet, used by EfficientNet, MobileNetV3, MnasNet variants and RegNetY) as
//! one kernel: per item, the channel means of `x` (the squeeze), a small fully connected layer to
//! `squeezed` features with its activation, a second one back to `channels` with the gate activation
//! (usually a sigmoid), and `x` scaled channel by channel by the gate (the excitation).
//!
//! Unfused, the block is four kernel calls (global pool, two 1×1 convs on 1×1 maps, a broadcast
//! multiply), each with its own thread dispatch and intermediate buffer; the two convs go through the
//! packed GEMM, whose packing dominates at these sizes. Here the pool and the scale are split over
//! planes like the pools, and the two layers (a few thousand multiply-adds) run as dot products on
//! the calling thread.

use super::{Activation, KernelError, PlanesArgs, SharedOut, check_len, pool};
use crate::exec::Ctx;

/// The two fully connected layers of a squeeze-excite block, weights in ONNX layout (`[out, in]`,
/// the 1×1 convs' `[out, in, 1, 1]` as they are).
#[derive(Clone, Copy, Debug)]
pub struct SqueezeExcite<'a> {
    /// Features between the two layers.
    pub squeezed: usize,
    /// `[squeezed, channels]`.
    pub reduce: &'a [f32],
    /// `[squeezed]`.
    pub reduce_bias: Option<&'a [f32]>,
    /// Applied to the first layer's output (ReLU, SiLU …).
    pub activation: Activation,
    /// `[channels, squeezed]`.
    pub expand: &'a [f32],
    /// `[channels]`.
    pub expand_bias: Option<&'a [f32]>,
    /// Applied to the second layer's output, the per-channel scale (Sigmoid, HardSigmoid …).
    pub gate: Activation,
}

impl SqueezeExcite<'_> {
    /// Checks the weight and bias lengths for `channels` channels.
    pub fn check(&self, channels: usize) -> Result<(), KernelError> {
        let weights = self
            .squeezed
            .checked_mul(channels)
            .ok_or_else(|| KernelError::BadShape("squeeze-excite weights overflow".into()))?;
        check_len("squeeze_excite reduce weight", weights, self.reduce.len())?;
        check_len("squeeze_excite expand weight", weights, self.expand.len())?;
        if let Some(b) = self.reduce_bias {
            check_len("squeeze_excite reduce bias", self.squeezed, b.len())?;
        }
        if let Some(b) = self.expand_bias {
            check_len("squeeze_excite expand bias", channels, b.len())?;
        }
        Ok(())
    }

    /// The per-channel scales of `means` (`[batch, channels]`), in place: `means` becomes the gates.
    fn gates(&self, channels: usize, means: &mut [f32]) {
        let mut hidden = vec![0.0f32; self.squeezed];
        for item in means.chunks_exact_mut(channels) {
            for (j, (h, w)) in hidden
                .iter_mut()
                .zip(self.reduce.chunks_exact(channels))
                .enumerate()
            {
                let b = self.reduce_bias.map_or(0.0, |b| b[j]);
                *h = self.activation.apply(dot(w, item) + b);
            }
            for (c, (g, w)) in item
                .iter_mut()
                .zip(self.expand.chunks_exact(self.squeezed))
                .enumerate()
            {
                let b = self.expand_bias.map_or(0.0, |b| b[c]);
                *g = self.gate.apply(dot(w, &hidden) + b);
            }
        }
    }
}

/// `Σ a[i] · b[i]` in eight interleaved partial sums (which the compiler keeps in vector registers).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `output = input · gate(expand(act(reduce(mean(input)))))` per channel of each of the `batch`
/// items of `channels × spatial` (NCHW); see the module documentation.
pub fn squeeze_excite(ctx: &Ctx, args: PlanesArgs, se: &SqueezeExcite) -> Result<(), KernelError> {
    args.checked_len(["squeeze_excite input", "squeeze_excite output"])?;
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    se.check(channels)?;
    let planes = batch * channels;
    let mut gates = vec![0.0f32; planes];
    pool::global_avg_pool(
        ctx,
        PlanesArgs {
            batch,
            channels,
            spatial,
            input,
            output: &mut gates,
        },
    )?;
    se.gates(channels, &mut gates);

    let threads = ctx.threads;
    let per_task = planes.div_ceil(4 * threads.count()).max(16);
    let tasks = planes.div_ceil(per_task);
    let out = SharedOut(output.as_mut_ptr());
    threads.run(tasks, &|t| {
        let range = t * per_task..((t + 1) * per_task).min(planes);
        let src = &input[range.start * spatial..range.end * spatial];
        // SAFETY: task `t` alone writes planes `range`, which lie inside `output` (its length is
        // `planes · spatial`, checked above).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                out.ptr().wrapping_add(range.start * spatial),
                range.len() * spatial,
            )
        };
        for ((y, x), &g) in dst
            .chunks_exact_mut(spatial)
            .zip(src.chunks_exact(spatial))
            .zip(&gates[range])
        {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * g;
            }
        }
    });
    Ok(())
}
