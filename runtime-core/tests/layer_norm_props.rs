//! `reference::layer_norm_channels` against the formula evaluated independently: per pixel, the
//! channel values gathered into a vector, normalised with Welford's running mean and variance, over
//! random shapes (odd sizes, one channel, one pixel), plus NaN propagation and length checks; and
//! the fast kernel (`layer_norm::layer_norm_channels`) against the reference on every ISA tier.
//!
//! The fast kernel's tolerance, per element, first order in `u = 2⁻²⁴` and doubled for the rest:
//! its f32 mean of `C` channels is within `(C + 2)·u·mean|x|` of the exact one; its two-pass
//! variance within `(C + 4)·u·var` (the mean's error enters only squared), so `1/sqrt(var + ε)`
//! within `((C + 4)/2 + 2)·u` relative; the normalisation rounds four times. Hence
//! `|Δy| ≤ 2·(|g|·inv·((C + 2)·u·mean|x| + ((C + 4)/2 + 2)·u·|x − mean|) + 4·u·(|y| + |b|))`.

mod common;

use common::{U, check_tiers, tiers};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::{PlanesArgs, layer_norm, reference};

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

/// The module doc's tolerance of the fast kernel for every element.
fn fast_tolerance(
    (n, c, s): (usize, usize, usize),
    x: &[f32],
    eps: f32,
    scale: &[f32],
    shift: &[f32],
) -> Vec<f32> {
    let u = U as f64;
    let mut tol = vec![0.0; x.len()];
    for item in 0..n {
        for p in 0..s {
            let at = |ch: usize| (item * c + ch) * s + p;
            let v: Vec<f64> = (0..c).map(|ch| x[at(ch)] as f64).collect();
            let mean = v.iter().sum::<f64>() / c as f64;
            let mean_abs = v.iter().map(|x| x.abs()).sum::<f64>() / c as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for ch in 0..c {
                let (g, b) = (scale[ch] as f64, shift[ch] as f64);
                let y = (v[ch] - mean) * inv * g + b;
                let t = g.abs()
                    * inv
                    * ((c + 2) as f64 * u * mean_abs
                        + ((c + 4) as f64 / 2.0 + 2.0) * u * (v[ch] - mean).abs())
                    + 4.0 * u * (y.abs() + b.abs());
                tol[at(ch)] = (2.0 * t) as f32;
            }
        }
    }
    tol
}

fn fast_case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>, f32)> {
    (1usize..3, 1usize..40, 1usize..200, 0usize..3).prop_flat_map(|(n, c, s, e)| {
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
    fn fast_kernel_matches_the_reference(
        (n, c, s, x, scale, shift, eps) in fast_case(),
        threads in 1usize..4,
    ) {
        let mut want = vec![f32::NAN; x.len()];
        let args = PlanesArgs { batch: n, channels: c, spatial: s, input: &x, output: &mut want };
        reference::layer_norm_channels(args, eps, &scale, &shift).unwrap();
        let tol = fast_tolerance((n, c, s), &x, eps, &scale, &shift);
        let threads = Threads::new(threads);
        check_tiers("layer_norm_channels", &want, |i| tol[i], |isa, got| {
            let args = PlanesArgs { batch: n, channels: c, spatial: s, input: &x, output: got };
            layer_norm::layer_norm_channels(&Ctx { isa, threads: &threads }, args, eps, &scale, &shift)
        })?;
    }
}

#[test]
fn fast_kernel_keeps_nan_to_its_pixel_and_checks_lengths() {
    let (c, s) = (3, 70);
    let mut x: Vec<f32> = (0..c * s).map(|i| (i % 7) as f32 - 3.0).collect();
    x[s + 65] = f32::NAN; // channel 1, pixel 65 (the second block)
    let threads = Threads::new(2);
    for isa in tiers() {
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        let mut out = vec![0f32; c * s];
        let args = PlanesArgs {
            batch: 1,
            channels: c,
            spatial: s,
            input: &x,
            output: &mut out,
        };
        layer_norm::layer_norm_channels(&ctx, args, 1e-5, &[1.0; 3], &[0.0; 3]).unwrap();
        for ch in 0..c {
            for p in 0..s {
                let y = out[ch * s + p];
                assert_eq!(
                    y.is_nan(),
                    p == 65,
                    "{} channel {ch} pixel {p}: {y}",
                    isa.name()
                );
            }
        }
        let args = PlanesArgs {
            batch: 1,
            channels: c,
            spatial: s,
            input: &x,
            output: &mut out[1..],
        };
        assert!(layer_norm::layer_norm_channels(&ctx, args, 1e-5, &[1.0; 3], &[0.0; 3]).is_err());
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
