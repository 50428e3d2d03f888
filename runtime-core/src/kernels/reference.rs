//! Reference kernels: plain loops over NCHW tensors, written to be obviously correct rather than fast.
//! They are the oracle every fast kernel is tested against, and what the emitted code runs for a node
//! no specialised kernel handles. Each checks the lengths of its slices and returns an error, never
//! panics, on a mismatch.

use super::elementwise::{BinaryKind, broadcast_shape};
use super::{
    Activation, BatchNorm, ConvShape, Epilogue, KernelError, PlanesArgs, PoolShape, check_len,
};

/// 2-D convolution, NCHW in and out, weights `[out_c, in_c / group, kh, kw]`, then the epilogue:
/// `out = act(conv + bias + residual)`.
pub fn conv2d(
    s: &ConvShape,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    epilogue: &Epilogue,
    output: &mut [f32],
) -> Result<(), KernelError> {
    s.check()?;
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv weight", s.weight_len(), weight.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    epilogue.check(batch, s.out_c, s.out_h * s.out_w)?;
    let cin_g = s.in_c / s.group;
    let cout_g = s.out_c / s.group;
    let [kh, kw] = s.kernel;
    // The sums of one output plane, in f64. Each output's products are added in the order
    // (input channel, ky, kx), as a loop over them inside the loop over outputs would; the
    // plane-at-a-time order reads input rows sequentially instead of one float per plane.
    let mut acc = vec![0.0f64; s.out_h * s.out_w];
    for n in 0..batch {
        for oc in 0..s.out_c {
            let g = oc / cout_g;
            acc.fill(0.0);
            for icg in 0..cin_g {
                let ic = g * cin_g + icg;
                let plane = &input[(n * s.in_c + ic) * s.in_h * s.in_w..][..s.in_h * s.in_w];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let w = weight[((oc * cin_g + icg) * kh + ky) * kw + kx] as f64;
                        for oy in 0..s.out_h {
                            let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                - s.pads[0] as isize;
                            if iy < 0 || iy >= s.in_h as isize {
                                continue;
                            }
                            let row = &plane[iy as usize * s.in_w..][..s.in_w];
                            let sums = &mut acc[oy * s.out_w..][..s.out_w];
                            for (ox, sum) in sums.iter_mut().enumerate() {
                                let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                    - s.pads[1] as isize;
                                if ix < 0 || ix >= s.in_w as isize {
                                    continue;
                                }
                                *sum += row[ix as usize] as f64 * w;
                            }
                        }
                    }
                }
            }
            let first = (n * s.out_c + oc) * s.out_h * s.out_w;
            for (i, &sum) in acc.iter().enumerate() {
                output[first + i] = epilogue.apply(sum as f32, oc, first + i);
            }
        }
    }
    Ok(())
}

/// Inference batch normalization over dim 1 of `[batch, channels, spatial]`:
/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn batch_norm(args: PlanesArgs, bn: &BatchNorm) -> Result<(), KernelError> {
    let BatchNorm {
        gamma: scale,
        beta: bias,
        mean,
        var,
        epsilon,
    } = *bn;
    let params = |channels| {
        for (what, p) in [
            ("scale", scale),
            ("bias", bias),
            ("mean", mean),
            ("var", var),
        ] {
            check_len(what, channels, p.len())?;
        }
        Ok(())
    };
    map_channels(
        args,
        ["batch_norm input", "batch_norm output"],
        params,
        |x, c| {
            ((x as f64 - mean[c] as f64) / (var[c] as f64 + epsilon as f64).sqrt()
                * scale[c] as f64
                + bias[c] as f64) as f32
        },
    )
}

/// Per-channel `y = act(x * scale + shift)` over `[batch, channels, spatial]`.
pub fn scale_shift(
    args: PlanesArgs,
    scale: &[f32],
    shift: &[f32],
    activation: Activation,
) -> Result<(), KernelError> {
    let params = |channels| {
        check_len("scale", channels, scale.len())?;
        check_len("shift", channels, shift.len())
    };
    map_channels(
        args,
        ["scale_shift input", "scale_shift output"],
        params,
        |x, c| activation.apply(x * scale[c] + shift[c]),
    )
}

/// Elementwise `y = act(x)`.
pub fn activation(
    input: &[f32],
    activation: Activation,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("activation output", input.len(), output.len())?;
    for (y, &x) in output.iter_mut().zip(input) {
        *y = activation.apply(x);
    }
    Ok(())
}

/// Elementwise `y = act(a + b)`.
pub fn add(
    a: &[f32],
    b: &[f32],
    activation: Activation,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("add second operand", a.len(), b.len())?;
    check_len("add output", a.len(), output.len())?;
    for ((y, &x), &z) in output.iter_mut().zip(a).zip(b) {
        *y = activation.apply(x + z);
    }
    Ok(())
}

/// Elementwise `y = a ∘ b` with numpy broadcasting: `a_dims` and `b_dims` are the operands' full
/// shapes (batch included), aligned at their last dimension, and `output` has their broadcast shape.
pub fn binary(
    kind: BinaryKind,
    a: &[f32],
    a_dims: &[usize],
    b: &[f32],
    b_dims: &[usize],
    output: &mut [f32],
) -> Result<(), KernelError> {
    let out_dims = broadcast_shape(a_dims, b_dims).ok_or_else(|| {
        KernelError::BadShape(format!("shapes {a_dims:?} and {b_dims:?} do not broadcast"))
    })?;
    check_len("binary first operand", a_dims.iter().product(), a.len())?;
    check_len("binary second operand", b_dims.iter().product(), b.len())?;
    check_len("binary output", out_dims.iter().product(), output.len())?;
    let rank = out_dims.len();
    // Each operand's stride along each output dimension: 0 where it is broadcast (or absent).
    let strides = |dims: &[usize]| {
        let mut strides = vec![0; rank];
        let mut step = 1;
        for (i, &d) in dims.iter().enumerate().rev() {
            let o = rank - dims.len() + i;
            strides[o] = if d == 1 { 0 } else { step };
            step *= d;
        }
        strides
    };
    let (sa, sb) = (strides(a_dims), strides(b_dims));
    let mut index = vec![0usize; rank];
    for y in output.iter_mut() {
        let ia: usize = index.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = index.iter().zip(&sb).map(|(i, s)| i * s).sum();
        *y = kind.apply(a[ia], b[ib]);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < out_dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(())
}

/// PReLU over `[batch, channels, spatial]`: `y = x` for `x >= 0`, else `slope[c] · x`.
pub fn prelu(args: PlanesArgs, slope: &[f32]) -> Result<(), KernelError> {
    let params = |channels| check_len("prelu slope", channels, slope.len());
    map_channels(args, ["prelu input", "prelu output"], params, |x, c| {
        Activation::LeakyRelu { alpha: slope[c] }.apply(x)
    })
}

/// `output[i] = f(input[i], c)` over `[batch, channels, spatial]`, `c` the channel of element `i`:
/// the per-channel maps (BatchNorm, scale-shift, PReLU). Checks the input and output lengths (named
/// by `what`), then the per-channel parameters (`params(channels)`), in that order.
fn map_channels(
    args: PlanesArgs,
    what: [&'static str; 2],
    params: impl FnOnce(usize) -> Result<(), KernelError>,
    f: impl Fn(f32, usize) -> f32,
) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let len = batch * channels * spatial;
    check_len(what[0], len, input.len())?;
    check_len(what[1], len, output.len())?;
    params(channels)?;
    for (i, (y, &x)) in output.iter_mut().zip(input).enumerate() {
        *y = f(x, (i / spatial) % channels);
    }
    Ok(())
}

/// Max pooling, NCHW. Padding never wins (it is -inf); a NaN in the window gives NaN.
pub fn max_pool2d(
    s: &PoolShape,
    batch: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    pool2d(s, batch, input, output, |window, _| {
        window
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, super::max_nan)
    })
}

/// Average pooling, NCHW; divides by the whole window if `count_include_pad`, else by its in-bounds part.
pub fn avg_pool2d(
    s: &PoolShape,
    count_include_pad: bool,
    batch: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    pool2d(s, batch, input, output, |window, padded_count| {
        let sum: f32 = window.iter().sum();
        let count = if count_include_pad {
            padded_count
        } else {
            window.len()
        };
        sum / count as f32
    })
}

/// Shared window walk of the pools: `reduce(values in bounds, window cells inside the padded input)`.
fn pool2d(
    s: &PoolShape,
    batch: usize,
    input: &[f32],
    output: &mut [f32],
    reduce: impl Fn(&[f32], usize) -> f32,
) -> Result<(), KernelError> {
    s.check()?;
    check_len(
        "pool input",
        batch * s.channels * s.in_h * s.in_w,
        input.len(),
    )?;
    check_len(
        "pool output",
        batch * s.channels * s.out_h * s.out_w,
        output.len(),
    )?;
    let mut window = Vec::with_capacity(s.kernel[0] * s.kernel[1]);
    let (padded_h, padded_w) = (
        s.in_h + s.pads[0] + s.pads[2],
        s.in_w + s.pads[1] + s.pads[3],
    );
    for nc in 0..batch * s.channels {
        let plane = &input[nc * s.in_h * s.in_w..(nc + 1) * s.in_h * s.in_w];
        for oy in 0..s.out_h {
            for ox in 0..s.out_w {
                window.clear();
                let mut padded_count = 0;
                for ky in 0..s.kernel[0] {
                    for kx in 0..s.kernel[1] {
                        let (py, px) = (oy * s.stride[0] + ky, ox * s.stride[1] + kx);
                        if py < padded_h && px < padded_w {
                            padded_count += 1;
                        }
                        let (iy, ix) = (
                            py as isize - s.pads[0] as isize,
                            px as isize - s.pads[1] as isize,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < s.in_h && (ix as usize) < s.in_w {
                            window.push(plane[iy as usize * s.in_w + ix as usize]);
                        }
                    }
                }
                output[(nc * s.out_h + oy) * s.out_w + ox] = reduce(&window, padded_count);
            }
        }
    }
    Ok(())
}

/// Mean over the spatial dim of `[batch * channels, spatial]`.
pub fn global_avg_pool(
    batch: usize,
    channels: usize,
    spatial: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len(
        "global_avg_pool input",
        batch * channels * spatial,
        input.len(),
    )?;
    check_len("global_avg_pool output", batch * channels, output.len())?;
    if spatial == 0 {
        return Err(KernelError::BadShape(
            "global_avg_pool over an empty plane".into(),
        ));
    }
    for (y, plane) in output.iter_mut().zip(input.chunks_exact(spatial)) {
        *y = (plane.iter().map(|&x| x as f64).sum::<f64>() / spatial as f64) as f32;
    }
    Ok(())
}

/// Fully connected: `out[n, m] = act(Σ_k x[n, k] · w[m, k] + bias[m] + residual[n, m])`.
pub fn dense(
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &[f32],
    weight: &[f32],
    epilogue: &Epilogue,
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("dense input", batch * in_features, input.len())?;
    check_len("dense weight", out_features * in_features, weight.len())?;
    check_len("dense output", batch * out_features, output.len())?;
    epilogue.check(batch, out_features, 1)?;
    for n in 0..batch {
        let x = &input[n * in_features..(n + 1) * in_features];
        for m in 0..out_features {
            let w = &weight[m * in_features..(m + 1) * in_features];
            let acc: f64 = x.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
            let o = n * out_features + m;
            output[o] = epilogue.apply(acc as f32, m, o);
        }
    }
    Ok(())
}

/// Concatenation along the channel axis of NCHW values: `parts[i]` holds `batch` items of
/// `parts[i].len() / batch` elements (its channels × H × W); item `n` of the output is item `n` of
/// every part, in order.
pub fn concat_channels(
    batch: usize,
    parts: &[&[f32]],
    output: &mut [f32],
) -> Result<(), KernelError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    check_len("concat output", total, output.len())?;
    if batch == 0 {
        return Ok(());
    }
    for (i, p) in parts.iter().enumerate() {
        if !p.len().is_multiple_of(batch) {
            return Err(KernelError::BadShape(format!(
                "concat input {i} has {} elements, not whole items of a batch of {batch}",
                p.len()
            )));
        }
    }
    let item_len = total / batch;
    for n in 0..batch {
        let mut at = n * item_len;
        for p in parts {
            let len = p.len() / batch;
            output[at..at + len].copy_from_slice(&p[n * len..(n + 1) * len]);
            at += len;
        }
    }
    Ok(())
}

/// ShuffleNet's channel shuffle over `batch` items of `channels` planes of `spatial` elements:
/// output channel `k · groups + g` is input channel `g · (channels / groups) + k`.
pub fn channel_shuffle(args: PlanesArgs, groups: usize) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(KernelError::BadShape(format!(
            "{groups} groups do not divide {channels} channels"
        )));
    }
    let len = batch * channels * spatial;
    check_len("channel_shuffle input", len, input.len())?;
    check_len("channel_shuffle output", len, output.len())?;
    let per_group = channels / groups;
    for n in 0..batch {
        for j in 0..channels {
            let (k, g) = (j / groups, j % groups);
            let src = (n * channels + g * per_group + k) * spatial;
            let dst = (n * channels + j) * spatial;
            output[dst..dst + spatial].copy_from_slice(&input[src..src + spatial]);
        }
    }
    Ok(())
}

/// Channels `start .. start + output.len() / (batch · spatial)` of `batch` items of `channels`
/// planes of `spatial` elements each.
pub fn slice_channels(args: PlanesArgs, start: usize) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    check_len(
        "slice_channels input",
        batch * channels * spatial,
        input.len(),
    )?;
    let item = (batch * spatial).max(1);
    let len = output.len() / item;
    if output.len() != len * item || start + len > channels {
        return Err(KernelError::BadShape(format!(
            "slice_channels: {} output elements are not channels {start}.. of {channels} planes \
             of {spatial} for a batch of {batch}",
            output.len()
        )));
    }
    for n in 0..batch {
        let src = (n * channels + start) * spatial;
        let dst = n * len * spatial;
        output[dst..dst + len * spatial].copy_from_slice(&input[src..src + len * spatial]);
    }
    Ok(())
}

/// Zero padding of `batch · channels` planes of `in_h × in_w`: `pads` is `[top, left, bottom,
/// right]`, the output planes `(in_h + top + bottom) × (in_w + left + right)`.
pub fn pad2d(
    batch: usize,
    channels: usize,
    [in_h, in_w]: [usize; 2],
    pads: [usize; 4],
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    let [top, left, bottom, right] = pads;
    let (out_h, out_w) = (in_h + top + bottom, in_w + left + right);
    check_len("pad input", batch * channels * in_h * in_w, input.len())?;
    check_len("pad output", batch * channels * out_h * out_w, output.len())?;
    output.fill(0.0);
    for plane in 0..batch * channels {
        for y in 0..in_h {
            let src = (plane * in_h + y) * in_w;
            let dst = (plane * out_h + y + top) * out_w + left;
            output[dst..dst + in_w].copy_from_slice(&input[src..src + in_w]);
        }
    }
    Ok(())
}

/// Softmax over each of `batch` rows of `features` elements, `exp(x − max) / Σ exp(x − max)`, or
/// with `log` its logarithm, `x − max − ln Σ exp(x − max)`; sums in f64.
pub fn softmax(
    batch: usize,
    features: usize,
    log: bool,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    check_len("softmax input", batch * features, input.len())?;
    check_len("softmax output", batch * features, output.len())?;
    if features == 0 {
        return Ok(());
    }
    for (x, y) in input
        .chunks_exact(features)
        .zip(output.chunks_exact_mut(features))
    {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (o, &v) in y.iter_mut().zip(x) {
            let shifted = v as f64 - max;
            *o = if log {
                (shifted - sum.ln()) as f32
            } else {
                (shifted.exp() / sum) as f32
            };
        }
    }
    Ok(())
}

/// Local response normalisation across channels over `batch · channels` planes of `spatial`:
/// `y = x / (bias + alpha / size · Σ x²)^beta`, the sum over channels
/// `c − ⌊(size − 1) / 2⌋ ..= c + ⌈(size − 1) / 2⌉` that exist (ONNX LRN); sums in f64.
pub fn lrn(
    args: PlanesArgs,
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let len = batch * channels * spatial;
    check_len("lrn input", len, input.len())?;
    check_len("lrn output", len, output.len())?;
    if size == 0 {
        return Err(KernelError::BadShape("LRN size must be positive".into()));
    }
    let (before, after) = ((size - 1) / 2, size / 2);
    for n in 0..batch {
        for c in 0..channels {
            let (lo, hi) = (c.saturating_sub(before), (c + after).min(channels - 1));
            for s in 0..spatial {
                let at = |ch: usize| (n * channels + ch) * spatial + s;
                let sum: f64 = (lo..=hi).map(|ch| (input[at(ch)] as f64).powi(2)).sum();
                let scale = bias as f64 + alpha as f64 / size as f64 * sum;
                output[at(c)] = (input[at(c)] as f64 / scale.powf(beta as f64)) as f32;
            }
        }
    }
    Ok(())
}

/// Layer normalisation over the channels of each pixel (ConvNeXt's LayerNorm on the channels-last
/// view of an NCHW tensor): per item and pixel, `y = (x − mean) / sqrt(var + epsilon) · scale[c] +
/// shift[c]`, mean and biased variance over the `channels` values of that pixel, in f64.
pub fn layer_norm_channels(
    args: PlanesArgs,
    epsilon: f32,
    scale: &[f32],
    shift: &[f32],
) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let len = batch * channels * spatial;
    check_len("layer norm input", len, input.len())?;
    check_len("layer norm output", len, output.len())?;
    check_len("layer norm scale", channels, scale.len())?;
    check_len("layer norm shift", channels, shift.len())?;
    if channels == 0 {
        return Ok(());
    }
    for n in 0..batch {
        for s in 0..spatial {
            let at = |c: usize| (n * channels + c) * spatial + s;
            let mean = (0..channels).map(|c| input[at(c)] as f64).sum::<f64>() / channels as f64;
            let var = (0..channels)
                .map(|c| (input[at(c)] as f64 - mean).powi(2))
                .sum::<f64>()
                / channels as f64;
            let inv = 1.0 / (var + epsilon as f64).sqrt();
            for c in 0..channels {
                let y = (input[at(c)] as f64 - mean) * inv * scale[c] as f64 + shift[c] as f64;
                output[at(c)] = y as f32;
            }
        }
    }
    Ok(())
}

/// Squeeze-excite (see [`squeeze_excite`](super::squeeze_excite)) as the layers it is made of:
/// [`global_avg_pool`], two [`dense`] layers with their activations, and a per-channel scale.
pub fn squeeze_excite(
    args: PlanesArgs,
    se: &super::squeeze_excite::SqueezeExcite,
) -> Result<(), KernelError> {
    args.checked_len(["squeeze_excite input", "squeeze_excite output"])?;
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    se.check(channels)?;
    let mut means = vec![0.0; batch * channels];
    global_avg_pool(batch, channels, spatial, input, &mut means)?;
    let mut hidden = vec![0.0; batch * se.squeezed];
    let reduce = Epilogue {
        bias: se.reduce_bias,
        residual: None,
        activation: se.activation,
    };
    dense(
        batch,
        channels,
        se.squeezed,
        &means,
        se.reduce,
        &reduce,
        &mut hidden,
    )?;
    let expand = Epilogue {
        bias: se.expand_bias,
        residual: None,
        activation: se.gate,
    };
    let mut gates = vec![0.0; batch * channels];
    dense(
        batch,
        se.squeezed,
        channels,
        &hidden,
        se.expand,
        &expand,
        &mut gates,
    )?;
    for (i, (y, &x)) in output.iter_mut().zip(input).enumerate() {
        *y = x * gates[i / spatial];
    }
    Ok(())
}

/// Int8 convolution as ONNX QDQ defines it (weights `[out_c, in_c / group, kh, kw]`): the input
/// quantized with `input_quant` (`clamp(round_ties_even(x / s)) + zp`), the padding its zero
/// point, `acc = Σ (x − zp) · w + bias` summed in i64, then `v = acc · multiplier[c]` in f32 and
/// the output rule of `int8::QOutput`. The oracle of `int8::qconv2d`.
pub fn qconv2d(
    s: &ConvShape,
    batch: usize,
    input: &[f32],
    input_quant: super::int8::Quant,
    p: super::int8::QConvParams,
    out: super::int8::QOutput,
    output: &mut [f32],
) -> Result<(), KernelError> {
    super::int8::supports(s)?;
    let [kh, kw] = s.kernel;
    check_len("int8 conv input", batch * s.input_len(), input.len())?;
    let (cin_g, cout_g) = (s.in_c / s.group, s.out_c / s.group);
    check_len(
        "int8 conv weight",
        s.out_c * cin_g * kh * kw,
        p.weight.len(),
    )?;
    check_len("int8 conv bias", s.out_c, p.bias.len())?;
    check_len("int8 conv multiplier", s.out_c, p.multiplier.len())?;
    check_len("int8 conv output", batch * s.output_len(), output.len())?;
    let zp = input_quant.zero_point as i64;
    for n in 0..batch {
        let x = &input[n * s.input_len()..][..s.input_len()];
        for m in 0..s.out_c {
            for oy in 0..s.out_h {
                for ox in 0..s.out_w {
                    let mut acc = p.bias[m] as i64;
                    for cg in 0..cin_g {
                        let c = m / cout_g * cin_g + cg;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                    - s.pads[0] as isize;
                                let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                    - s.pads[1] as isize;
                                let inside = (0..s.in_h as isize).contains(&iy)
                                    && (0..s.in_w as isize).contains(&ix);
                                let q = if inside {
                                    let at = (c * s.in_h + iy as usize) * s.in_w + ix as usize;
                                    let r = (x[at] / input_quant.scale)
                                        .max(-zp as f32)
                                        .min((255 - zp) as f32)
                                        .round_ties_even();
                                    r as i64 + zp
                                } else {
                                    zp
                                };
                                let w = p.weight[((m * cin_g + cg) * kh + ky) * kw + kx] as i64;
                                acc += (q - zp) * w;
                            }
                        }
                    }
                    let acc = i32::try_from(acc).map_err(|_| {
                        KernelError::BadShape(format!("int8 conv sum {acc} overflows i32"))
                    })?;
                    let v = acc as f32 * p.multiplier[m];
                    output[((n * s.out_c + m) * s.out_h + oy) * s.out_w + ox] = match out {
                        super::int8::QOutput::Requant { quant, min, max } => {
                            let zp = quant.zero_point;
                            v.max((min - zp) as f32)
                                .min((max - zp) as f32)
                                .round_ties_even()
                                * quant.scale
                        }
                        super::int8::QOutput::Float { relu: true } => v.max(0.0),
                        super::int8::QOutput::Float { relu: false } => v,
                    };
                }
            }
        }
    }
    Ok(())
}
