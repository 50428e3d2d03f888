//! `reference::layer_norm_channels` against the formula evaluated independently: per pixel, the
//! channel values gathered into a vector, normalised with Welford's running mean and variance, over
//! random shapes (odd sizes, one channel, one pixel), plus NaN propagation and length checks.

use proptest::prelude::*;
use resnext_runtime_core::kernels::{PlanesArgs, reference};

/// `(x − mean) / sqrt(var + eps) · scale + shift` over one pixel's channels, Welford's variance.
fn normalise(pixel: &[f32], epsilon: f32, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let (mut mean, mut m2) = (0f64, 0f64);
    for (k, &x) in pixel.iter().enumerate() {
        let d = x as f64 - mean;
        mean += d / (k + 1) as f64;
        m2 += d * (x as f64 - mean);
    }
    let sd = (m2 / pixel.len() as f64 + epsilon as f64).sqrt();
    pixel
        .iter()
        .zip(scale.iter().zip(shift))
        .map(|(&x, (&g, &b))| ((x as f64 - mean) / sd * g as f64 + b as f64) as f32)
        .collect()
}

fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>, f32)> {
    (1usize..4, 1usize..21, 1usize..30, 0usize..3).prop_flat_map(|(n, c, s, e)| {
        (
            Just(n),
            Just(c),
            Just(s),
            prop::collection::vec(-3f32..3.0, n * c * s),
            prop::collection::vec(-2f32..2.0, c),
            prop::collection::vec(-1f32..1.0, c),
            Just([1e-6f32, 1e-5, 0.1][e]),
        )
    })
}

proptest! {
    #[test]
    fn matches_the_formula((n, c, s, x, scale, shift, eps) in case()) {
        let mut out = vec![f32::NAN; x.len()];
        let args = PlanesArgs { batch: n, channels: c, spatial: s, input: &x, output: &mut out };
        reference::layer_norm_channels(args, eps, &scale, &shift).unwrap();
        for item in 0..n {
            for p in 0..s {
                let at = |ch: usize| (item * c + ch) * s + p;
                let pixel: Vec<f32> = (0..c).map(|ch| x[at(ch)]).collect();
                let want = normalise(&pixel, eps, &scale, &shift);
                for (ch, w) in want.iter().enumerate() {
                    let got = out[at(ch)];
                    prop_assert!(
                        (got - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "item {item} pixel {p} channel {ch}: got {got}, want {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn nan_in_a_channel_makes_its_pixel_nan() {
    let (c, s) = (3, 2);
    let mut x = vec![0.5f32, 1.0, -1.0, 2.0, 0.25, 4.0];
    x[2] = f32::NAN; // channel 1, pixel 0
    let mut out = vec![0f32; 6];
    let args = PlanesArgs {
        batch: 1,
        channels: c,
        spatial: s,
        input: &x,
        output: &mut out,
    };
    reference::layer_norm_channels(args, 1e-5, &[1.0; 3], &[0.0; 3]).unwrap();
    for ch in 0..c {
        assert!(
            out[ch * s].is_nan(),
            "pixel 0 channel {ch}: {}",
            out[ch * s]
        );
        assert!(
            out[ch * s + 1].is_finite(),
            "pixel 1 channel {ch}: {}",
            out[ch * s + 1]
        );
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let x = vec![0f32; 12];
    let mut out = vec![0f32; 12];
    let args = PlanesArgs {
        batch: 1,
        channels: 3,
        spatial: 4,
        input: &x,
        output: &mut out,
    };
    assert!(reference::layer_norm_channels(args, 1e-5, &[1.0; 2], &[0.0; 3]).is_err());
    let args = PlanesArgs {
        batch: 2,
        channels: 3,
        spatial: 4,
        input: &x,
        output: &mut out,
    };
    assert!(reference::layer_norm_channels(args, 1e-5, &[1.0; 3], &[0.0; 3]).is_err());
}
