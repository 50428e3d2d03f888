//! The activations in every fast epilogue (each conv algorithm and the dense layer, on every ISA
//! tier) against the reference kernels, their values against published tables, NaN in → NaN out,
//! and the broadcasting binary ops against an independent index computation (the fast elementwise
//! kernels, `scale_channels` among them, are tested in `activation_simd`).
//!
//! The random-shape epilogue coverage is in `conv_props`, `grouped_props` and `blocked_props`, whose
//! shared strategy (`common::activation`) draws every activation; here each activation runs once
//! through each algorithm on a fixed ragged shape, so none is left to chance.

mod common;

use common::{Case, Setting, assert_ok, tiers};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::elementwise::{self, BinaryKind};
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, PlanesArgs, reference,
};

const ALL: [Activation; 14] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip {
        min: -0.25,
        max: 0.5,
    },
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    },
    Activation::HardSwish,
    Activation::Silu,
    Activation::LeakyRelu { alpha: 0.01 },
    Activation::Elu { alpha: 1.0 },
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Erf,
    Activation::LeakyRelu { alpha: -0.5 },
];

fn run_conv(algo: ConvAlgo, c: &Case) {
    let s = c.shape;
    assert!(algo.supports(&s), "{algo:?} should support {s:?}");
    assert_ok(c.check(
        &format!("{algo:?}"),
        |weight| conv::pack(algo, &s, weight).unwrap(),
        |isa, input, packed, ep, threads, out| {
            let mut scratch =
                vec![f32::NAN; conv::scratch_len(algo, &s, c.setting.batch, threads.count())];
            let args = ConvArgs {
                shape: s,
                batch: c.setting.batch,
                input,
                packed,
                epilogue: *ep,
                output: out,
                scratch: &mut scratch,
            };
            conv::conv2d(&Ctx { isa, threads }, algo, args)
        },
    ));
}

#[test]
fn every_activation_in_every_conv_epilogue() {
    let cases = [
        (
            ConvAlgo::Pointwise,
            ConvShape::square(19, 11, 21, 1, 1, 0, 1),
        ),
        (ConvAlgo::Im2col, ConvShape::square(5, 13, 11, 3, 2, 1, 1)),
        (ConvAlgo::Grouped, ConvShape::square(16, 9, 16, 3, 1, 1, 2)),
        (
            ConvAlgo::Depthwise,
            ConvShape::square(12, 10, 12, 3, 1, 1, 12),
        ),
    ];
    for activation in ALL {
        for (algo, shape) in cases {
            for (bias, residual) in [(true, true), (false, false)] {
                let setting = Setting {
                    batch: 2,
                    bias,
                    residual,
                    activation,
                    threads: 2,
                    seed: 0x5eed ^ shape.out_c as u64,
                };
                run_conv(algo, &Case { shape, setting });
            }
        }
    }
}

#[test]
fn every_activation_in_the_dense_epilogue() {
    let (batch, k, m) = (3, 37, 29);
    for activation in ALL {
        let input = common::values(1, batch * k);
        let weight = common::values(2, m * k);
        let bias = common::values(3, m);
        let ep = Epilogue {
            bias: Some(&bias),
            residual: None,
            activation,
        };
        let mut want = vec![0.0; batch * m];
        reference::dense(batch, k, m, &input, &weight, &ep, &mut want).unwrap();
        let packed = dense::pack(k, m, &weight).unwrap();
        let threads = Threads::new(2);
        // The dense GEMM sums in another order: compare within the conv tests' rule.
        let magnitude: Vec<f32> = (0..batch * m)
            .map(|i| {
                let (n, o) = (i / m, i % m);
                (0..k)
                    .map(|j| (input[n * k + j] * weight[o * k + j]).abs())
                    .sum::<f32>()
                    + bias[o].abs()
            })
            .collect();
        assert_ok(common::check_tiers(
            &format!("dense {activation:?}"),
            &want,
            |i| {
                common::tolerance(
                    k,
                    magnitude[i] * common::lipschitz(activation) + want[i].abs(),
                )
            },
            |isa, out| {
                let mut scratch = vec![f32::NAN; dense::scratch_len(batch, k, threads.count())];
                let args = DenseArgs {
                    batch,
                    in_features: k,
                    out_features: m,
                    input: &input,
                    packed: &packed,
                    epilogue: ep,
                    output: out,
                    scratch: &mut scratch,
                };
                dense::run(
                    &Ctx {
                        isa,
                        threads: &threads,
                    },
                    args,
                )
            },
        ));
    }
}

/// Values from tables (erf: Abramowitz & Stegun 7.1; Φ for GELU) and closed forms.
#[test]
fn activation_values_match_tables() {
    let cases: [(Activation, f32, f64); 14] = [
        (Activation::Erf, 0.5, 0.520_499_877_8),
        (Activation::Erf, 1.0, 0.842_700_792_9),
        (Activation::Erf, -2.0, -0.995_322_265_0),
        (Activation::Erf, 0.1, 0.112_462_916_0),
        (Activation::Erf, 3.5, 0.999_999_256_9),
        (Activation::Gelu, 1.0, 0.841_344_746_1),
        (Activation::Gelu, -1.5, -1.5 * 0.066_807_201_3),
        (Activation::GeluTanh, 1.0, 0.841_191_990_6),
        (Activation::Sigmoid, 0.0, 0.5),
        (Activation::Sigmoid, 2.0, 0.880_797_077_98),
        (Activation::Silu, 1.0, 0.731_058_578_6),
        (Activation::Tanh, 0.5, 0.462_117_157_3),
        (Activation::Elu { alpha: 1.0 }, -1.0, -0.632_120_558_8),
        (Activation::HardSwish, 1.0, 2.0 / 3.0),
    ];
    for (a, x, want) in cases {
        let got = a.apply(x) as f64;
        assert!(
            (got - want).abs() <= 3e-7 * want.abs().max(1.0),
            "{a:?}({x}) = {got}, want {want}"
        );
    }
    let hs = Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    assert_eq!(
        [-10.0, -2.5, 0.0, 2.5, 10.0].map(|x| hs.apply(x)),
        [0.0, 0.0, 0.5, 1.0, 1.0]
    );
    let leaky = Activation::LeakyRelu { alpha: 0.01 };
    assert_eq!([-2.0, 3.0].map(|x| leaky.apply(x)), [-0.02, 3.0]);
    assert_eq!(Activation::Sigmoid.apply(-200.0), 0.0);
    assert_eq!(Activation::Sigmoid.apply(200.0), 1.0);
    assert_eq!(Activation::Erf.apply(f32::INFINITY), 1.0);
    assert_eq!(Activation::Erf.apply(f32::NEG_INFINITY), -1.0);
}

/// NaN in → NaN out, for every activation, scalar and in a fused epilogue on every tier (the
/// residual carries the NaN into the accumulator).
#[test]
fn nan_in_nan_out() {
    for a in ALL {
        assert!(a.apply(f32::NAN).is_nan(), "{a:?}");
    }
    let shape = ConvShape::square(8, 6, 16, 1, 1, 0, 1);
    for activation in ALL {
        let input = common::values(4, shape.input_len());
        let weight = common::values(5, shape.weight_len());
        let mut residual = common::values(6, shape.output_len());
        for i in [0, 7, 40, shape.output_len() - 1] {
            residual[i] = f32::NAN;
        }
        let ep = Epilogue {
            bias: None,
            residual: Some(&residual),
            activation,
        };
        for isa in tiers() {
            let threads = Threads::new(1);
            let packed = conv::pack(ConvAlgo::Pointwise, &shape, &weight).unwrap();
            let mut scratch =
                vec![0.0; conv::scratch_len(ConvAlgo::Pointwise, &shape, 1, threads.count())];
            let mut out = vec![0.0; shape.output_len()];
            let args = ConvArgs {
                shape,
                batch: 1,
                input: &input,
                packed: &packed,
                epilogue: ep,
                output: &mut out,
                scratch: &mut scratch,
            };
            conv::conv2d(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                ConvAlgo::Pointwise,
                args,
            )
            .unwrap();
            for (i, (&o, &r)) in out.iter().zip(&residual).enumerate() {
                assert_eq!(
                    o.is_nan(),
                    r.is_nan(),
                    "{activation:?} {} element {i}: {o}",
                    isa.name()
                );
            }
        }
    }
}

/// `a ∘ b` by turning each flat output index into coordinates and back: the oracle for
/// `reference::binary`, written without strides.
fn oracle(kind: BinaryKind, a: &[f32], ad: &[usize], b: &[f32], bd: &[usize]) -> Vec<f32> {
    let rank = ad.len().max(bd.len());
    let pad = |d: &[usize]| {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (ad, bd) = (pad(ad), pad(bd));
    let out: Vec<usize> = ad.iter().zip(&bd).map(|(&x, &y)| x.max(y)).collect();
    let total: usize = out.iter().product();
    (0..total)
        .map(|flat| {
            let mut coords = vec![0; rank];
            let mut rest = flat;
            for d in (0..rank).rev() {
                coords[d] = rest % out[d];
                rest /= out[d];
            }
            let index = |dims: &[usize]| {
                coords
                    .iter()
                    .zip(dims)
                    .fold(0, |acc, (&c, &d)| acc * d + if d == 1 { 0 } else { c })
            };
            kind.apply(a[index(&ad)], b[index(&bd)])
        })
        .collect()
}

/// Two broadcast-compatible shapes: a full shape of rank 1–4, and for each operand a suffix of it
/// with some dims set to 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        proptest::collection::vec(1usize..=5, 1..=4),
        any::<u8>(),
        any::<u8>(),
        0usize..=3,
        0usize..=3,
    )
        .prop_map(|(full, ma, mb, da, db)| {
            let operand = |mask: u8, drop: usize| -> Vec<usize> {
                let drop = drop.min(full.len() - 1);
                full[drop..]
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d })
                    .collect()
            };
            (operand(ma, da), operand(mb, db))
        })
}

fn kind() -> impl Strategy<Value = BinaryKind> {
    prop_oneof![
        Just(BinaryKind::Add),
        Just(BinaryKind::Sub),
        Just(BinaryKind::Mul),
        Just(BinaryKind::Div),
    ]
}

proptest! {
    #[test]
    fn binary_broadcasts_as_numpy((ad, bd) in broadcast_pair(), kind in kind(), seed in any::<u64>()) {
        let a = common::values(seed, ad.iter().product());
        let b = common::values(seed ^ 1, bd.iter().product());
        let want = oracle(kind, &a, &ad, &b, &bd);
        let mut got = vec![f32::NAN; want.len()];
        reference::binary(kind, &a, &ad, &b, &bd, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert!(common::same(*g, *w), "{kind:?} {ad:?} {bd:?} element {i}: {g} vs {w}");
        }
    }

    #[test]
    fn prelu_is_leaky_relu_per_channel(
        batch in 1usize..=2, channels in 1usize..=7, spatial in 1usize..=20, seed in any::<u64>(),
    ) {
        let x = common::values(seed, batch * channels * spatial);
        let slope = common::values(seed ^ 1, channels);
        let mut got = vec![f32::NAN; x.len()];
        let args = PlanesArgs { batch, channels, spatial, input: &x, output: &mut got };
        reference::prelu(args, &slope).unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            let want = if v < 0.0 { slope[(i / spatial) % channels] * v } else { v };
            prop_assert!(common::same(g, want), "element {i}: {g} vs {want}");
        }
    }
}

#[test]
fn mismatched_shapes_are_errors() {
    let mut out = vec![0.0; 6];
    assert!(
        reference::binary(
            BinaryKind::Add,
            &[0.0; 6],
            &[2, 3],
            &[0.0; 2],
            &[2],
            &mut out
        )
        .is_err()
    );
    assert!(
        reference::binary(
            BinaryKind::Add,
            &[0.0; 6],
            &[2, 3],
            &[0.0; 3],
            &[3],
            &mut out[..5]
        )
        .is_err()
    );
    let args = PlanesArgs {
        batch: 1,
        channels: 2,
        spatial: 3,
        input: &[0.0; 6],
        output: &mut out,
    };
    let threads = Threads::new(1);
    assert!(elementwise::scale_channels(&Ctx::new(&threads), args, &[1.0; 3]).is_err());
}
