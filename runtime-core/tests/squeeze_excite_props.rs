//! The fused squeeze-excite kernel against the reference (global pool, two dense layers, channel
//! scale as separate reference kernels, in f64), on every ISA tier, over random shapes: odd channel
//! counts and plane sizes, a squeeze of 1, with and without biases, every activation, 1–3 threads.
//!
//! Tolerance, per output element, from the error of each step (first order in `u = 2⁻²⁴`, doubled to
//! cover the higher-order terms): the fast mean of channel `i` is within
//! `e_i = (⌈s/16⌉ + 18) · u · mean|x_i|` of the reference's (see `pool_props.rs`); a dense layer's
//! f32 dot product of `n` terms adds `(n + 4) · u · (Σ|w·v| + |b|)`, and input errors pass through
//! scaled by `Σ|w|·err`; the activation multiplies by its Lipschitz constant `L` and rounds
//! (`u · |result|`); the scale adds `|x| · err(gate) + u · |y|`.

mod common;

use common::{U, activation, check_tiers, lipschitz, tiers, values};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::squeeze_excite::{SqueezeExcite, squeeze_excite};
use resnext_runtime_core::kernels::{Activation, KernelError, PlanesArgs, reference};

#[derive(Debug)]
struct Case {
    batch: usize,
    channels: usize,
    squeezed: usize,
    spatial: usize,
    x: Vec<f32>,
    reduce: Vec<f32>,
    reduce_bias: Option<Vec<f32>>,
    expand: Vec<f32>,
    expand_bias: Option<Vec<f32>>,
    activation: Activation,
    gate: Activation,
}

impl Case {
    fn se(&self) -> SqueezeExcite<'_> {
        SqueezeExcite {
            squeezed: self.squeezed,
            reduce: &self.reduce,
            reduce_bias: self.reduce_bias.as_deref(),
            activation: self.activation,
            expand: &self.expand,
            expand_bias: self.expand_bias.as_deref(),
            gate: self.gate,
        }
    }

    /// The tolerance of each output element (module doc), from the f64 intermediate values.
    fn tolerances(&self) -> Vec<f32> {
        let (c, r, s) = (self.channels, self.squeezed, self.spatial);
        let u = U as f64;
        let mut tol = Vec::with_capacity(self.x.len());
        for item in self.x.chunks_exact(c * s) {
            let planes: Vec<&[f32]> = item.chunks_exact(s).collect();
            let mean = |p: &[f32]| p.iter().map(|&v| v as f64).sum::<f64>() / s as f64;
            let mean_abs = |p: &[f32]| p.iter().map(|&v| (v as f64).abs()).sum::<f64>() / s as f64;
            let m: Vec<f64> = planes.iter().map(|p| mean(p)).collect();
            let e_m: Vec<f64> = planes
                .iter()
                .map(|p| (s.div_ceil(16) + 18) as f64 * u * mean_abs(p))
                .collect();
            let layer = |w: &[f32], b: Option<&Vec<f32>>, v: &[f64], e: &[f64], act: Activation| {
                let n = v.len();
                let mut out = Vec::new();
                let mut err = Vec::new();
                for (j, row) in w.chunks_exact(n).enumerate() {
                    let bias = b.map_or(0.0, |b| b[j] as f64);
                    let pre: f64 =
                        row.iter().zip(v).map(|(&w, &v)| w as f64 * v).sum::<f64>() + bias;
                    let abs: f64 = row
                        .iter()
                        .zip(v)
                        .map(|(&w, &v)| (w as f64 * v).abs())
                        .sum::<f64>()
                        + bias.abs();
                    let through: f64 = row.iter().zip(e).map(|(&w, &e)| (w as f64).abs() * e).sum();
                    let y = act.apply(pre as f32) as f64;
                    let l = lipschitz(act) as f64;
                    err.push(l * ((n + 4) as f64 * u * abs + through) + u * y.abs());
                    out.push(y);
                }
                (out, err)
            };
            let (h, e_h) = layer(
                &self.reduce,
                self.reduce_bias.as_ref(),
                &m,
                &e_m,
                self.activation,
            );
            let (g, e_g) = layer(&self.expand, self.expand_bias.as_ref(), &h, &e_h, self.gate);
            for (ch, p) in planes.iter().enumerate() {
                for &v in p.iter() {
                    let x = v as f64;
                    tol.push((2.0 * (x.abs() * e_g[ch] + u * (x * g[ch]).abs())) as f32);
                }
            }
            debug_assert_eq!(r, h.len());
        }
        tol
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..3,
        1usize..41,
        1usize..9,
        1usize..70,
        any::<u64>(),
        any::<[bool; 2]>(),
        activation(),
        prop_oneof![
            Just(Activation::Sigmoid),
            Just(Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5
            }),
            activation(),
        ],
    )
        .prop_map(
            |(batch, channels, squeezed, spatial, seed, [rb, eb], activation, gate)| {
                let weights = channels * squeezed;
                Case {
                    batch,
                    channels,
                    squeezed,
                    spatial,
                    x: values(seed, batch * channels * spatial),
                    reduce: values(seed ^ 1, weights),
                    reduce_bias: rb.then(|| values(seed ^ 2, squeezed)),
                    expand: values(seed ^ 3, weights),
                    expand_bias: eb.then(|| values(seed ^ 4, channels)),
                    activation,
                    gate,
                }
            },
        )
}

fn run(case: &Case, ctx: &Ctx, out: &mut [f32]) -> Result<(), KernelError> {
    let args = PlanesArgs {
        batch: case.batch,
        channels: case.channels,
        spatial: case.spatial,
        input: &case.x,
        output: out,
    };
    squeeze_excite(ctx, args, &case.se())
}

proptest! {
    #[test]
    fn fused_matches_the_layers(case in case(), threads in 1usize..4) {
        let mut want = vec![0.0; case.x.len()];
        let args = PlanesArgs {
            batch: case.batch,
            channels: case.channels,
            spatial: case.spatial,
            input: &case.x,
            output: &mut want,
        };
        reference::squeeze_excite(args, &case.se()).unwrap();
        let tol = case.tolerances();
        let threads = Threads::new(threads);
        check_tiers("squeeze_excite", &want, |i| tol[i], |isa, got| {
            run(&case, &Ctx { isa, threads: &threads }, got)
        })?;
    }
}

#[test]
fn nan_propagates_to_its_channel_and_through_the_gate() {
    let mut case = Case {
        batch: 1,
        channels: 3,
        squeezed: 2,
        spatial: 5,
        x: values(7, 15),
        reduce: values(8, 6),
        reduce_bias: None,
        expand: values(9, 6),
        expand_bias: None,
        activation: Activation::Relu,
        gate: Activation::Sigmoid,
    };
    case.x[6] = f32::NAN;
    let threads = Threads::new(2);
    for isa in tiers() {
        let mut out = vec![0.0; 15];
        run(
            &case,
            &Ctx {
                isa,
                threads: &threads,
            },
            &mut out,
        )
        .unwrap();
        // A NaN in channel 1 makes its mean NaN, every hidden feature NaN (unless ReLU drops it:
        // `x < 0 ? 0 : x` keeps NaN), every gate NaN, hence every output.
        assert!(out.iter().all(|v| v.is_nan()), "{}: {out:?}", isa.name());
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let threads = Threads::new(1);
    let ctx = Ctx::new(&threads);
    let (x, w) = (vec![0.0; 12], vec![0.0; 6]);
    let mut out = vec![0.0; 12];
    let se = SqueezeExcite {
        squeezed: 2,
        reduce: &w,
        reduce_bias: None,
        activation: Activation::Relu,
        expand: &w[..5],
        expand_bias: None,
        gate: Activation::Sigmoid,
    };
    fn args<'a>(input: &'a [f32], output: &'a mut [f32]) -> PlanesArgs<'a> {
        PlanesArgs {
            batch: 1,
            channels: 3,
            spatial: 4,
            input,
            output,
        }
    }
    assert!(squeeze_excite(&ctx, args(&x, &mut out), &se).is_err());
    let se = SqueezeExcite { expand: &w, ..se };
    assert!(squeeze_excite(&ctx, args(&x, &mut out), &se).is_ok());
    assert!(squeeze_excite(&ctx, args(&x, &mut out[..11]), &se).is_err());
    let empty = PlanesArgs {
        batch: 1,
        channels: 3,
        spatial: 0,
        input: &[],
        output: &mut [],
    };
    assert!(squeeze_excite(&ctx, empty, &se).is_err());
}
