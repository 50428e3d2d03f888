//! The SIMD tiers' activations (`kernels::math`) within their documented error bounds of the
//! scalar f64 oracle `Activation::apply`, through the standalone `elementwise::activation` kernel
//! on every tier: a sweep over the whole f32 range (every 1021st bit pattern: denormals, ±0,
//! huge values), the special values, and random inputs and lengths; and the other standalone
//! elementwise kernels (`add`, `binary`, `scale_channels`) bit for bit against the reference.

mod common;

use common::{assert_ok, check_tiers_exact, same, tiers};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::elementwise::{self, BinaryKind};
use resnext_runtime_core::kernels::{Activation, PlanesArgs, reference};

const TRANSCENDENTAL: [Activation; 9] = [
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Silu,
    Activation::Elu { alpha: 1.0 },
    Activation::Elu { alpha: 0.3 },
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Erf,
    Activation::Elu { alpha: -2.0 },
];

const CHEAP: [Activation; 6] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { min: 0.0, max: 6.0 },
    Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Activation::HardSwish,
    Activation::LeakyRelu { alpha: 0.01 },
];

/// The bound of `kernels::math`'s module doc on `|got − want|` at input `x`: a relative part and
/// an absolute floor where the result leaves f32's normal range (sigmoid, SiLU) or the f64 oracle
/// itself loses the left tail of GELU to cancellation (`1 + erf`, `1 + tanh`, about `|x|·1e-16`).
/// GELU's relative part grows with `x²`: the rounding of its `exp` argument (`−x²/2`, `−2u`).
fn bound(a: Activation, x: f32, want: f32) -> f64 {
    let (w, x) = (want.abs() as f64, x.abs() as f64);
    match a {
        Activation::Sigmoid => 3e-7 * w + 4e-39,
        Activation::Silu => 3e-7 * w + 1e-36,
        Activation::Tanh | Activation::Elu { .. } => 3e-7 * w,
        Activation::Erf => 4e-7 * w + 2e-45,
        Activation::Gelu | Activation::GeluTanh => {
            4e-7 * (1.0 + x * x / 3.0) * w + 1e-15 * x.max(1.0)
        }
        _ => 0.0,
    }
}

/// Runs `elementwise::activation` on `xs` on one tier.
fn run(isa: Isa, threads: usize, a: Activation, xs: &[f32]) -> Vec<f32> {
    let threads = Threads::new(threads);
    let mut got = vec![f32::NAN; xs.len()];
    let ctx = Ctx {
        isa,
        threads: &threads,
    };
    elementwise::activation(&ctx, xs, a, &mut got).unwrap();
    got
}

/// Every element within [`bound`] of the oracle; NaN exactly where the oracle is NaN, infinities
/// exactly.
fn check(isa: Isa, a: Activation, xs: &[f32], got: &[f32]) -> Result<(), TestCaseError> {
    for (&x, &g) in xs.iter().zip(got) {
        let w = a.apply(x);
        let ok = if w.is_nan() || w.is_infinite() || g.is_nan() || g.is_infinite() {
            same(g, w)
        } else {
            ((g as f64) - (w as f64)).abs() <= bound(a, x, w)
        };
        prop_assert!(
            ok,
            "{} {a:?}({x:e}) = {g:e}, want {w:e} (bound {:e})",
            isa.name(),
            bound(a, x, w)
        );
    }
    Ok(())
}

/// The special inputs, each in a vector's every lane position across the lengths tested.
fn specials() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::EPSILON,
        0.5,
        -0.5,
        0.4999999,
        -0.5000001,
        88.72,
        -88.72,
        88.73,
        -88.73,
        -87.3,
        -103.9,
        -104.1,
        89.1,
        1e-20,
        -1e-20,
    ];
    let n = v.len();
    for i in 0..n {
        v.push(v[(i * 7) % n]);
    }
    v
}

#[test]
fn every_function_within_its_bound_over_the_f32_range() {
    let mut xs: Vec<f32> = (0..=u32::MAX as u64)
        .step_by(1021)
        .map(|b| f32::from_bits(b as u32))
        .collect();
    xs.extend(specials());
    for isa in tiers() {
        for a in TRANSCENDENTAL {
            let got = run(isa, 2, a, &xs);
            assert_ok(check(isa, a, &xs, &got));
        }
    }
}

#[test]
fn cheap_activations_are_exact() {
    let mut xs = common::values(7, 1000)
        .iter()
        .map(|v| 8.0 * v)
        .collect::<Vec<_>>();
    xs.extend(specials());
    for a in CHEAP {
        let mut want = vec![0.0; xs.len()];
        reference::activation(&xs, a, &mut want).unwrap();
        assert_ok(check_tiers_exact(&format!("{a:?}"), &want, |isa, out| {
            let threads = Threads::new(1);
            elementwise::activation(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                &xs,
                a,
                out,
            )
        }));
    }
}

/// Inputs mostly where the activations bend, some in their tails, some any f32 at all.
fn input() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -12.0f32..12.0,
        2 => -120.0f32..120.0,
        1 => -1e-3f32..1e-3,
        1 => any::<u32>().prop_map(f32::from_bits),
        1 => proptest::sample::select(specials()),
    ]
}

fn transcendental() -> impl Strategy<Value = Activation> {
    proptest::sample::select(TRANSCENDENTAL.to_vec())
}

fn any_activation() -> impl Strategy<Value = Activation> {
    proptest::sample::select([TRANSCENDENTAL.to_vec(), CHEAP.to_vec()].concat())
}

fn kind() -> impl Strategy<Value = BinaryKind> {
    proptest::sample::select(vec![
        BinaryKind::Add,
        BinaryKind::Sub,
        BinaryKind::Mul,
        BinaryKind::Div,
    ])
}

/// A CNN-like shape `[n, c, h, w]` and an operand shape broadcast to it: the same, per channel
/// (`[1, c, 1, 1]`, `[n, c, 1, 1]`, `[c, 1, 1]`), a scalar (`[1]`, `[]`), a row (`[w]`,
/// `[1, 1, 1, w]`), or one the fast loops leave to the reference (`[c, 1, w]`).
fn broadcast_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1usize..=3, 1usize..=9, 1usize..=7, 1usize..=9, 0usize..9).prop_map(|(n, c, h, w, form)| {
        let full = vec![n, c, h, w];
        let other = match form {
            0 => full.clone(),
            1 => vec![1, c, 1, 1],
            2 => vec![n, c, 1, 1],
            3 => vec![c, 1, 1],
            4 => vec![1],
            5 => vec![],
            6 => vec![w],
            7 => vec![1, 1, 1, w],
            _ => vec![c, 1, w],
        };
        (full, other)
    })
}

proptest! {
    #[test]
    fn random_inputs_within_bounds(
        a in transcendental(),
        xs in proptest::collection::vec(input(), 0..80),
        threads in 1usize..=3,
    ) {
        for isa in tiers() {
            let got = run(isa, threads, a, &xs);
            check(isa, a, &xs, &got)?;
        }
    }

    #[test]
    fn add_is_the_reference_add(
        a in any_activation(),
        len in 0usize..200,
        seed in any::<u64>(),
    ) {
        let x: Vec<f32> = common::values(seed, len).iter().map(|v| 6.0 * v).collect();
        let y = common::values(seed ^ 1, len);
        let mut want = vec![0.0; len];
        reference::add(&x, &y, a, &mut want).unwrap();
        let threads = Threads::new(2);
        for isa in tiers() {
            let mut got = vec![f32::NAN; len];
            elementwise::add(&Ctx { isa, threads: &threads }, &x, &y, a, &mut got).unwrap();
            for (i, ((&g, &w), (&p, &q))) in got.iter().zip(&want).zip(x.iter().zip(&y)).enumerate() {
                let ok = if a.is_transcendental() {
                    ((g - w).abs() as f64) <= bound(a, p + q, w)
                } else {
                    same(g, w)
                };
                prop_assert!(ok, "{} {a:?} element {i}: {g} vs {w}", isa.name());
            }
        }
    }

    #[test]
    fn binary_is_the_reference_binary(
        (full, other) in broadcast_shapes(),
        kind in kind(),
        other_first in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let big = common::values(seed, full.iter().product());
        let small = common::values(seed ^ 1, other.iter().product());
        let (a, b) = if other_first {
            ((&small, &other), (&big, &full))
        } else {
            ((&big, &full), (&small, &other))
        };
        let mut want = vec![0.0; big.len()];
        reference::binary(kind, a.0, a.1, b.0, b.1, &mut want).unwrap();
        let threads = Threads::new(3);
        check_tiers_exact(&format!("{kind:?} {:?} {:?}", a.1, b.1), &want, |isa, out| {
            let ctx = Ctx { isa, threads: &threads };
            elementwise::binary(&ctx, kind, (a.0, a.1), (b.0, b.1), out)
        })?;
    }

    #[test]
    fn scale_channels_is_a_broadcast_mul(
        batch in 1usize..=3, channels in 1usize..=9, h in 1usize..=6, w in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let x = common::values(seed, batch * channels * h * w);
        let s = common::values(seed ^ 1, batch * channels);
        let mut want = vec![0.0; x.len()];
        reference::binary(
            BinaryKind::Mul, &x, &[batch, channels, h, w], &s, &[batch, channels, 1, 1], &mut want,
        ).unwrap();
        let threads = Threads::new(2);
        check_tiers_exact("scale_channels", &want, |isa, out| {
            let args = PlanesArgs { batch, channels, spatial: h * w, input: &x, output: out };
            elementwise::scale_channels(&Ctx { isa, threads: &threads }, args, &s)
        })?;
    }
}

/// Outputs large enough to be split over the threads, with pieces ending inside runs and rows:
/// 4 258 930 elements, above both sizes from which the kernels split their output.
#[test]
fn large_outputs_split_over_threads_match() {
    let (n, c, h, w) = (1, 65, 181, 362);
    let full = [n, c, h, w];
    let x: Vec<f32> = common::values(11, n * c * h * w)
        .iter()
        .map(|v| 5.0 * v)
        .collect();
    let threads = Threads::new(3);
    for other in [
        vec![n, c, h, w],
        vec![1, c, 1, 1],
        vec![c, 1, 1],
        vec![w],
        vec![1],
    ] {
        let s = common::values(12, other.iter().product());
        let mut want = vec![0.0; x.len()];
        reference::binary(BinaryKind::Div, &s, &other, &x, &full, &mut want).unwrap();
        assert_ok(check_tiers_exact(
            &format!("{other:?}"),
            &want,
            |isa, out| {
                let ctx = Ctx {
                    isa,
                    threads: &threads,
                };
                elementwise::binary(&ctx, BinaryKind::Div, (&s, &other), (&x, &full), out)
            },
        ));
    }
    for a in TRANSCENDENTAL {
        for isa in tiers() {
            let got = run(isa, 3, a, &x);
            assert_ok(check(isa, a, &x, &got));
        }
    }
    let y = common::values(13, x.len());
    let mut want = vec![0.0; x.len()];
    reference::add(&x, &y, Activation::Relu, &mut want).unwrap();
    assert_ok(check_tiers_exact("add", &want, |isa, out| {
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        elementwise::add(&ctx, &x, &y, Activation::Relu, out)
    }));
}

#[test]
fn mismatched_lengths_are_errors() {
    let threads = Threads::new(1);
    let ctx = Ctx::new(&threads);
    let mut out = vec![0.0; 6];
    let act = Activation::Silu;
    assert!(elementwise::activation(&ctx, &[0.0; 5], act, &mut out).is_err());
    assert!(elementwise::add(&ctx, &[0.0; 6], &[0.0; 5], act, &mut out).is_err());
    let bad = elementwise::binary(
        &ctx,
        BinaryKind::Add,
        (&[0.0; 6], &[2, 3]),
        (&[0.0; 2], &[2]),
        &mut out,
    );
    assert!(bad.is_err());
    let short = elementwise::binary(
        &ctx,
        BinaryKind::Add,
        (&[0.0; 6], &[2, 3]),
        (&[0.0; 3], &[3]),
        &mut out[..5],
    );
    assert!(short.is_err());
}
