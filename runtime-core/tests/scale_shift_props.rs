//! The fast per-channel scale-shift (`elementwise::scale_shift`) against the reference on every ISA
//! tier, over random shapes (odd plane sizes, one channel, batch 1–3) and every activation. The
//! clamping activations and none must agree bit for bit (same product, same sum, same clamp); the
//! transcendental ones within the vector math's documented bounds (`kernels/math/mod.rs`: at most
//! a few 1e-7 relative, GELU's left tail a few 1e-6 of its tiny value), checked here as 1e-5 ×
//! max(1, |want|).

mod common;

use common::{activation, check_tiers, check_tiers_exact, values};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::{Activation, PlanesArgs, elementwise, reference};

fn transcendental(a: Activation) -> bool {
    matches!(
        a,
        Activation::Sigmoid
            | Activation::Tanh
            | Activation::Silu
            | Activation::Elu { .. }
            | Activation::Gelu
            | Activation::GeluTanh
            | Activation::Erf
    )
}

proptest! {
    #[test]
    fn matches_the_reference(
        (batch, channels, spatial) in prop_oneof![
            (1usize..4, 1usize..9, 1usize..70),
            // Large enough to be split over the threads, pieces cut inside planes.
            (1usize..3, 1usize..40, 1500usize..3000),
        ],
        seed in any::<u64>(),
        act in activation(),
        threads in 1usize..=3,
    ) {
        let len = batch * channels * spatial;
        let x: Vec<f32> = values(seed, len).iter().map(|v| 3.0 * v).collect();
        let scale = values(seed ^ 1, channels);
        let shift = values(seed ^ 2, channels);
        let mut want = vec![f32::NAN; len];
        let args = PlanesArgs { batch, channels, spatial, input: &x, output: &mut want };
        reference::scale_shift(args, &scale, &shift, act).unwrap();
        let threads = Threads::new(threads);
        let run = |isa, got: &mut [f32]| {
            let args = PlanesArgs { batch, channels, spatial, input: &x, output: got };
            elementwise::scale_shift(&Ctx { isa, threads: &threads }, args, &scale, &shift, act)
        };
        let what = format!("scale_shift {act:?} {batch}×{channels}×{spatial}");
        if transcendental(act) {
            check_tiers(&what, &want, |i| 1e-5 * want[i].abs().max(1.0), run)?;
        } else {
            check_tiers_exact(&what, &want, run)?;
        }
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let threads = Threads::new(1);
    let ctx = Ctx::new(&threads);
    let x = vec![0.0; 12];
    let mut y = vec![0.0; 12];
    fn args<'a>(input: &'a [f32], output: &'a mut [f32]) -> PlanesArgs<'a> {
        PlanesArgs {
            batch: 1,
            channels: 3,
            spatial: 4,
            input,
            output,
        }
    }
    let (s3, s2) = ([1.0; 3], [1.0; 2]);
    assert!(elementwise::scale_shift(&ctx, args(&x, &mut y), &s2, &s3, Activation::Relu).is_err());
    assert!(
        elementwise::scale_shift(&ctx, args(&x, &mut y[..11]), &s3, &s3, Activation::Relu).is_err()
    );
    assert!(elementwise::scale_shift(&ctx, args(&x, &mut y), &s3, &s3, Activation::Relu).is_ok());
}
