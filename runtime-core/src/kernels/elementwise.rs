//! Elementwise kernels: activations, the residual add, binary arithmetic with numpy broadcasting
//! (fast for the shapes CNNs use: equal shapes, a per-channel `[1, C, 1, 1]` / `[N, C, 1, 1]`
//! operand, a scalar), and squeeze-excite's channel scale `y[n, c, ·] = x[n, c, ·] · s[n, c]`.
//! Each splits its output into contiguous pieces over the threads when it is large, and runs
//! the pieces on the tier's vector loops (`avx2`, `avx512`); `reference` is their oracle.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use super::{Activation, KernelError, PlanesArgs, SharedOut, check_len, reference};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

/// The arithmetic of a binary elementwise op (ONNX Add, Sub, Mul, Div).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryKind {
    /// The ONNX op name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "Add",
            BinaryKind::Sub => "Sub",
            BinaryKind::Mul => "Mul",
            BinaryKind::Div => "Div",
        }
    }

    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
        }
    }
}

/// The numpy broadcast of two shapes (aligned at their last dimension; a dimension of 1
/// stretches), or `None` where they do not broadcast.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Below this many output elements a kernel runs on the calling thread. A task hand-off costs
/// about as much as ten thousand transcendental activations; the other elementwise ops are bound
/// by memory bandwidth, which a second core added little to on 2-vCPU VMs while the hand-off cost
/// hundreds of microseconds when the machine was busy (`bench_activations`, `bench/RESULTS.md`
/// 2026-12-06 23:08 UTC), so they split only far beyond the caches.
const PARALLEL_MIN_TRANSCENDENTAL: usize = 1 << 15;
const PARALLEL_MIN: usize = 1 << 22;
/// [`scale_shift`] splits from this many elements whatever its activation: DenseNet's
/// pre-activations (0.2–0.8 M elements each) read a tensor the layers before just wrote, from the
/// caches of both cores.
const SCALE_SHIFT_PARALLEL_MIN: usize = 1 << 16;

/// Runs `piece(start, out)` over contiguous pieces of `output` (`out` = `output[start..]`, a
/// multiple of 16 long but for the last), one per task when `output` is at least `min_len` long,
/// else one in all.
fn for_pieces(
    ctx: &Ctx,
    output: &mut [f32],
    min_len: usize,
    piece: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let len = output.len();
    let threads = ctx.threads.count();
    if len < min_len || threads == 1 {
        piece(0, output);
        return;
    }
    let tasks = (len / (min_len / 2)).clamp(1, 4 * threads);
    let per_task = len.div_ceil(tasks).next_multiple_of(16);
    let tasks = len.div_ceil(per_task);
    let out = SharedOut(output.as_mut_ptr());
    ctx.threads.run(tasks, &|t| {
        let start = t * per_task;
        let end = (start + per_task).min(len);
        // SAFETY: task `t` alone writes `start..end`, which lies inside `output`.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(out.ptr().wrapping_add(start), end - start) };
        piece(start, dst);
    });
}

/// The size from which an elementwise op with `activation` splits over the threads.
fn parallel_min(activation: Activation) -> usize {
    if activation.is_transcendental() {
        PARALLEL_MIN_TRANSCENDENTAL
    } else {
        PARALLEL_MIN
    }
}

/// The vector loops of one tier: a supported tier, or the generic one.
#[derive(Clone, Copy)]
pub(crate) struct Lanes(Isa);

impl Lanes {
    pub(crate) fn of(ctx: &Ctx) -> Lanes {
        Lanes(if ctx.isa.supported() {
            ctx.isa
        } else {
            Isa::Generic
        })
    }

    /// `y = act(x)`, `x` and `y` equally long.
    pub(crate) fn map(self, activation: Activation, x: &[f32], y: &mut [f32]) {
        match self.0 {
            // SAFETY: the tier is supported by this CPU (`Lanes::of`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::map(activation, x, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::map(activation, x, y) },
            _ => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = activation.apply(x);
                }
            }
        }
    }

    /// `y = act(a ∘ b)`, all three equally long.
    fn zip(self, kind: BinaryKind, activation: Activation, a: &[f32], b: &[f32], y: &mut [f32]) {
        match self.0 {
            // SAFETY: the tier is supported by this CPU (`Lanes::of`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::zip(kind, activation, a, b, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::zip(kind, activation, a, b, y) },
            _ => {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    *y = activation.apply(kind.apply(a, b));
                }
            }
        }
    }

    /// `y = act(x · s + b)`, `x` and `y` equally long.
    fn affine(self, activation: Activation, x: &[f32], s: f32, b: f32, y: &mut [f32]) {
        match self.0 {
            // SAFETY: the tier is supported by this CPU (`Lanes::of`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::affine(activation, x, s, b, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::affine(activation, x, s, b, y) },
            _ => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = activation.apply(x * s + b);
                }
            }
        }
    }

    /// `y = x ∘ s`, or `s ∘ x` if `scalar_first`.
    fn scalar(self, kind: BinaryKind, x: &[f32], s: f32, scalar_first: bool, y: &mut [f32]) {
        match self.0 {
            // SAFETY: the tier is supported by this CPU (`Lanes::of`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::scalar(kind, x, s, scalar_first, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::scalar(kind, x, s, scalar_first, y) },
            _ => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = if scalar_first {
                        kind.apply(s, x)
                    } else {
                        kind.apply(x, s)
                    };
                }
            }
        }
    }
}

/// Per-channel `y = act(x · scale[c] + shift[c])` over `batch · channels` planes (a BatchNorm no
/// conv absorbs: DenseNet's pre-activations), in pieces over `ctx`'s threads on its tier; the same
/// arithmetic as [`reference::scale_shift`] (exactly so for the clamping activations).
pub fn scale_shift(
    ctx: &Ctx,
    args: PlanesArgs,
    scale: &[f32],
    shift: &[f32],
    activation: Activation,
) -> Result<(), KernelError> {
    args.checked_len(["scale_shift input", "scale_shift output"])?;
    let PlanesArgs {
        channels,
        spatial,
        input,
        output,
        ..
    } = args;
    check_len("scale_shift scale", channels, scale.len())?;
    check_len("scale_shift shift", channels, shift.len())?;
    if spatial == 0 {
        return Ok(());
    }
    let lanes = Lanes::of(ctx);
    // Pieces of the output over the threads, each cut at plane boundaries into runs of one
    // channel.
    let min = parallel_min(activation).min(SCALE_SHIFT_PARALLEL_MIN);
    for_pieces(ctx, output, min, &|start, out| {
        let end = start + out.len();
        let mut at = start;
        while at < end {
            let p = at / spatial;
            let run = at..((p + 1) * spatial).min(end);
            let c = p % channels;
            let (x, y) = (
                &input[run.clone()],
                &mut out[run.start - start..run.end - start],
            );
            lanes.affine(activation, x, scale[c], shift[c], y);
            at = run.end;
        }
    });
    Ok(())
}

/// Elementwise `y = act(x)`.
pub fn activation(
    ctx: &Ctx,
    input: &[f32],
    activation: Activation,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("activation output", input.len(), output.len())?;
    let lanes = Lanes::of(ctx);
    for_pieces(ctx, output, parallel_min(activation), &|start, out| {
        lanes.map(activation, &input[start..start + out.len()], out)
    });
    Ok(())
}

/// Elementwise `y = act(a + b)` (the residual add).
pub fn add(
    ctx: &Ctx,
    a: &[f32],
    b: &[f32],
    activation: Activation,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("add second operand", a.len(), b.len())?;
    check_len("add output", a.len(), output.len())?;
    let lanes = Lanes::of(ctx);
    for_pieces(ctx, output, parallel_min(activation), &|start, out| {
        let range = start..start + out.len();
        lanes.zip(
            BinaryKind::Add,
            activation,
            &a[range.clone()],
            &b[range],
            out,
        )
    });
    Ok(())
}

/// How a broadcast pairs output elements with operand elements, where the fast loops apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broadcast {
    /// Both operands have the output's shape (or are both one element).
    Same,
    /// One operand (`a` if `small_is_a`) has the output's shape; the other, of `count` elements,
    /// holds its dims in one run of the output's dims and 1 elsewhere: output element `i` pairs
    /// with its element `(i / inner) % count` (`inner` the product of the output dims after the
    /// run). A scalar has `count` 1.
    Small {
        small_is_a: bool,
        inner: usize,
        count: usize,
    },
}

impl Broadcast {
    /// The fast pairing of operands `a_dims` and `b_dims` broadcast to `out`, if there is one.
    fn of(a_dims: &[usize], b_dims: &[usize], out: &[usize]) -> Option<Broadcast> {
        let rank = out.len();
        let pad = |d: &[usize]| {
            let mut v = vec![1; rank - d.len()];
            v.extend_from_slice(d);
            v
        };
        let (a, b) = (pad(a_dims), pad(b_dims));
        if a == b {
            return Some(Broadcast::Same);
        }
        let small = |big: &[usize], small: &[usize], small_is_a: bool| {
            if big != out {
                return None;
            }
            let kept: Vec<usize> = (0..rank).filter(|&i| small[i] != 1).collect();
            let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
                // A scalar: one run over the whole output.
                return Some(Broadcast::Small {
                    small_is_a,
                    inner: out.iter().product(),
                    count: 1,
                });
            };
            if (first..=last).any(|i| small[i] != out[i]) {
                return None;
            }
            Some(Broadcast::Small {
                small_is_a,
                inner: out[last + 1..].iter().product(),
                count: small.iter().product(),
            })
        };
        small(&a, &b, false).or_else(|| small(&b, &a, true))
    }
}

/// `output[start..]` of the `Small` pairing of `big` (the output's shape) with `small`.
#[allow(clippy::too_many_arguments)]
fn small_piece(
    lanes: Lanes,
    kind: BinaryKind,
    (small_is_a, inner, count): (bool, usize, usize),
    big: &[f32],
    small: &[f32],
    start: usize,
    out: &mut [f32],
) {
    let end = start + out.len();
    let mut i = start;
    while i < end {
        let dst = &mut out[i - start..];
        if inner == 1 {
            // The small operand repeats along the output's last dims: vector against vector.
            let p = i % count;
            let n = (count - p).min(end - i);
            let (x, s) = (&big[i..i + n], &small[p..p + n]);
            let (a, b) = if small_is_a { (s, x) } else { (x, s) };
            lanes.zip(kind, Activation::None, a, b, &mut dst[..n]);
            i += n;
        } else {
            let run = i / inner;
            let n = ((run + 1) * inner).min(end) - i;
            let s = small[run % count];
            lanes.scalar(kind, &big[i..i + n], s, small_is_a, &mut dst[..n]);
            i += n;
        }
    }
}

/// Elementwise `y = a ∘ b` with numpy broadcasting: `a_dims` and `b_dims` are the operands' full
/// shapes (batch included), aligned at their last dimension, and `output` has their broadcast
/// shape. Equal shapes, a scalar and a per-channel (or other single-run) operand take the vector
/// loops; any other broadcast runs [`reference::binary`].
pub fn binary(
    ctx: &Ctx,
    kind: BinaryKind,
    (a, a_dims): (&[f32], &[usize]),
    (b, b_dims): (&[f32], &[usize]),
    output: &mut [f32],
) -> Result<(), KernelError> {
    let out_dims = broadcast_shape(a_dims, b_dims).ok_or_else(|| {
        KernelError::BadShape(format!("shapes {a_dims:?} and {b_dims:?} do not broadcast"))
    })?;
    check_len("binary first operand", a_dims.iter().product(), a.len())?;
    check_len("binary second operand", b_dims.iter().product(), b.len())?;
    check_len("binary output", out_dims.iter().product(), output.len())?;
    let lanes = Lanes::of(ctx);
    match Broadcast::of(a_dims, b_dims, &out_dims) {
        Some(Broadcast::Same) if a.len() == output.len() => {
            for_pieces(ctx, output, PARALLEL_MIN, &|start, out| {
                let range = start..start + out.len();
                lanes.zip(kind, Activation::None, &a[range.clone()], &b[range], out)
            })
        }
        Some(Broadcast::Small {
            small_is_a,
            inner,
            count,
        }) => {
            let (big, small) = if small_is_a { (b, a) } else { (a, b) };
            for_pieces(ctx, output, PARALLEL_MIN, &|start, out| {
                small_piece(
                    lanes,
                    kind,
                    (small_is_a, inner, count),
                    big,
                    small,
                    start,
                    out,
                )
            })
        }
        _ => return reference::binary(kind, a, a_dims, b, b_dims, output),
    }
    Ok(())
}

/// `y[n, c, i] = x[n, c, i] · scale[n, c]` over `batch · channels` planes of `spatial` elements:
/// a `[N, C, H, W]` value times a `[N, C, 1, 1]` one (squeeze-excite).
pub fn scale_channels(ctx: &Ctx, args: PlanesArgs, scale: &[f32]) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let len = batch * channels * spatial;
    check_len("scale_channels input", len, input.len())?;
    check_len("scale_channels output", len, output.len())?;
    check_len("scale_channels scale", batch * channels, scale.len())?;
    if spatial == 0 {
        return Ok(());
    }
    let lanes = Lanes::of(ctx);
    let pairing = (false, spatial, batch * channels);
    for_pieces(ctx, output, PARALLEL_MIN, &|start, out| {
        small_piece(lanes, BinaryKind::Mul, pairing, input, scale, start, out)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_pair_as_documented() {
        let of = |a: &[usize], b: &[usize]| Broadcast::of(a, b, &broadcast_shape(a, b).unwrap());
        let small = |small_is_a, inner, count| {
            Some(Broadcast::Small {
                small_is_a,
                inner,
                count,
            })
        };
        assert_eq!(of(&[2, 3, 4, 5], &[2, 3, 4, 5]), Some(Broadcast::Same));
        assert_eq!(of(&[2, 3, 4, 5], &[2, 3, 1, 1]), small(false, 20, 6));
        assert_eq!(of(&[1, 3, 1, 1], &[2, 3, 4, 5]), small(true, 20, 3));
        assert_eq!(of(&[2, 3, 4, 5], &[1]), small(false, 120, 1));
        assert_eq!(of(&[2, 3, 4, 5], &[5]), small(false, 1, 5));
        assert_eq!(of(&[2, 3, 4, 5], &[3, 1, 5]), None);
        assert_eq!(of(&[2, 1, 4, 5], &[2, 3, 1, 1]), None);
    }
}
