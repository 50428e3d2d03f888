//! Folding inference BatchNormalization into the layer before it, computed in f64. The compiler folds
//! ONNX models at compile time; the `resnext!` DSL folds torchvision weights at load time, with these.

use crate::kernels::BatchNorm;

/// The tensors handed to a fold do not fit together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FoldError {
    #[error(
        "batch norm {what} has {actual} elements, expected {expected} (one per output channel)"
    )]
    Channels {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("weight has {len} elements, not a multiple of the {out_channels} output channels")]
    Weight { len: usize, out_channels: usize },
    #[error("batch norm variance + epsilon is {value} on channel {channel}; it must be positive")]
    Variance { channel: usize, value: f64 },
}

/// The per-channel affine map an inference BatchNorm computes, `y = x · scale + shift`, with
/// `scale = γ / √(var + ε)` and `shift = β − mean · scale`.
pub fn batch_norm_scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> Result<(Vec<f32>, Vec<f32>), FoldError> {
    let (scale, shift) = scale_shift_f64(gamma, beta, mean, var, epsilon)?;
    Ok((
        scale.iter().map(|&s| s as f32).collect(),
        shift.iter().map(|&s| s as f32).collect(),
    ))
}

/// Folds a BatchNorm that reads the output of a conv or dense layer into that layer's parameters.
///
/// `weight` is `[out_channels, ...]` (conv `[oc, ic/g, kh, kw]` or dense `[out, in]`), `bias` its
/// optional `[out_channels]` bias. Returns the new weight (each output channel's row times its
/// scale) and the new bias `(bias − mean) · scale + β`; the layer with these computes what the layer
/// followed by the BatchNorm computed.
pub fn fold_batch_norm(
    weight: &[f32],
    bias: Option<&[f32]>,
    bn: &BatchNorm,
    out_channels: usize,
) -> Result<(Vec<f32>, Vec<f32>), FoldError> {
    let BatchNorm {
        gamma,
        beta,
        mean,
        var,
        epsilon,
    } = *bn;
    if out_channels == 0 || !weight.len().is_multiple_of(out_channels) {
        return Err(FoldError::Weight {
            len: weight.len(),
            out_channels,
        });
    }
    check("gamma", out_channels, gamma.len())?;
    if let Some(b) = bias {
        check("conv bias", out_channels, b.len())?;
    }
    let (scale, shift) = scale_shift_f64(gamma, beta, mean, var, epsilon)?;
    let row = weight.len() / out_channels;
    let new_weight = weight
        .chunks_exact(row)
        .zip(&scale)
        .flat_map(|(w, &s)| w.iter().map(move |&x| (x as f64 * s) as f32))
        .collect();
    let new_bias = (0..out_channels)
        .map(|c| {
            let b = bias.map_or(0.0, |b| b[c] as f64);
            (b * scale[c] + shift[c]) as f32
        })
        .collect();
    Ok((new_weight, new_bias))
}

fn scale_shift_f64(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> Result<(Vec<f64>, Vec<f64>), FoldError> {
    let c = gamma.len();
    check("beta", c, beta.len())?;
    check("mean", c, mean.len())?;
    check("var", c, var.len())?;
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for ch in 0..c {
        let denom = var[ch] as f64 + epsilon as f64;
        // A NaN or non-positive denominator would silently poison the folded weights.
        if denom.is_nan() || denom <= 0.0 {
            return Err(FoldError::Variance {
                channel: ch,
                value: denom,
            });
        }
        let s = gamma[ch] as f64 / denom.sqrt();
        scale.push(s);
        shift.push(beta[ch] as f64 - mean[ch] as f64 * s);
    }
    Ok((scale, shift))
}

fn check(what: &'static str, expected: usize, actual: usize) -> Result<(), FoldError> {
    if expected == actual {
        Ok(())
    } else {
        Err(FoldError::Channels {
            what,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bn<'a>(
        gamma: &'a [f32],
        beta: &'a [f32],
        mean: &'a [f32],
        var: &'a [f32],
        epsilon: f32,
    ) -> BatchNorm<'a> {
        BatchNorm {
            gamma,
            beta,
            mean,
            var,
            epsilon,
        }
    }

    /// Conv-free check against the BatchNorm formula itself, on a 1×1 "conv" of 2 channels.
    #[test]
    fn folded_dense_matches_layer_then_batch_norm() {
        let weight = [1.0f32, -2.0, 0.5, 3.0]; // [2 out, 2 in]
        let bias = [0.25f32, -0.5];
        let (gamma, beta, mean, var, eps) = (
            [1.5f32, 0.7],
            [0.1f32, -0.2],
            [0.3f32, -1.0],
            [2.0f32, 0.5],
            1e-5,
        );
        let x = [0.8f32, -1.3];
        let (w2, b2) = fold_batch_norm(
            &weight,
            Some(&bias),
            &bn(&gamma, &beta, &mean, &var, eps),
            2,
        )
        .unwrap();
        for c in 0..2 {
            let y = weight[2 * c] as f64 * x[0] as f64
                + weight[2 * c + 1] as f64 * x[1] as f64
                + bias[c] as f64;
            let bn = (y - mean[c] as f64) / (var[c] as f64 + eps as f64).sqrt() * gamma[c] as f64
                + beta[c] as f64;
            let folded =
                w2[2 * c] as f64 * x[0] as f64 + w2[2 * c + 1] as f64 * x[1] as f64 + b2[c] as f64;
            assert!((bn - folded).abs() < 1e-6, "channel {c}: {bn} vs {folded}");
        }
    }

    #[test]
    fn mismatched_lengths_and_bad_variance_are_errors() {
        let ok = [1.0f32; 2];
        assert!(matches!(
            fold_batch_norm(&[1.0; 3], None, &bn(&ok, &ok, &ok, &ok, 1e-5), 2),
            Err(FoldError::Weight { .. })
        ));
        assert!(matches!(
            fold_batch_norm(&[1.0; 4], None, &bn(&ok, &[0.0; 3], &ok, &ok, 1e-5), 2),
            Err(FoldError::Channels { what: "beta", .. })
        ));
        assert!(matches!(
            batch_norm_scale_shift(&ok, &ok, &ok, &[-1.0, 1.0], 0.0),
            Err(FoldError::Variance { channel: 0, .. })
        ));
    }
}
