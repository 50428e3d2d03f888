//! Property tests of the fast pools against the reference pools, on every ISA tier this CPU
//! supports: random windows, strides, pads (floor and ceil output sizes), odd sizes, 1–3 threads.
//!
//! Tolerances: max and average pooling must agree bit for bit (same values, same summation order,
//! same divisor). Global average pooling sums in f32 over 16 partial sums where the reference sums in
//! f64; each input passes through at most `⌈spatial/16⌉ + 16` f32 additions and one division, so
//! `|fast − reference| ≤ (⌈spatial/16⌉ + 18) · u · mean|x|` with `u = 2⁻²⁴`.

mod common;

use common::{U, check_tiers, check_tiers_exact, square_pool, tiers, values};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::pool::PoolArgs;
use resnext_runtime_core::kernels::{KernelError, PlanesArgs, PoolShape, pool, reference};

/// Compares max and both average poolings with the reference on every tier, bit for bit.
fn check_pools(
    s: &PoolShape,
    batch: usize,
    threads: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let input = values(seed, batch * s.channels * s.in_h * s.in_w);
    let len = batch * s.channels * s.out_h * s.out_w;
    let threads = Threads::new(threads);
    let mut want_max = vec![0.0; len];
    reference::max_pool2d(s, batch, &input, &mut want_max).unwrap();
    check_tiers_exact(&format!("max in {s:?}"), &want_max, |isa, got| {
        pool::max_pool2d(
            &Ctx {
                isa,
                threads: &threads,
            },
            PoolArgs {
                shape: *s,
                batch,
                input: &input,
                output: got,
            },
        )
    })?;
    for include in [false, true] {
        let mut want = vec![0.0; len];
        reference::avg_pool2d(s, include, batch, &input, &mut want).unwrap();
        check_tiers_exact(&format!("avg({include}) in {s:?}"), &want, |isa, got| {
            let args = PoolArgs {
                shape: *s,
                batch,
                input: &input,
                output: got,
            };
            pool::avg_pool2d(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                args,
                include,
            )
        })?;
    }
    Ok(())
}

prop_compose! {
    fn pool_case()(
        channels in 1usize..=20,
        in_h in 1usize..=23,
        in_w in 1usize..=41,
        kernel in (1usize..=4, 1usize..=4),
        stride in (1usize..=3, 1usize..=3),
        pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        ceil in any::<bool>(),
        batch in 1usize..=2,
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) -> (Option<PoolShape>, usize, usize, u64) {
        let k = [kernel.0, kernel.1];
        let st = [stride.0, stride.1];
        let pads = [pads[0].min(k[0] - 1), pads[1].min(k[1] - 1), pads[2].min(k[0] - 1), pads[3].min(k[1] - 1)];
        let size = |axis: usize, n: usize| {
            let padded = n + pads[axis] + pads[axis + 2];
            if padded < k[axis] {
                return 0;
            }
            let span = padded - k[axis];
            if ceil { span.div_ceil(st[axis]) + 1 } else { span / st[axis] + 1 }
        };
        let s = PoolShape {
            channels, in_h, in_w,
            out_h: size(0, in_h),
            out_w: size(1, in_w),
            kernel: k,
            stride: st,
            pads,
        };
        (s.check().is_ok().then_some(s), batch, threads, seed)
    }
}

/// Bands of rows on 2 and 3 threads at the models' shapes: a stem's 3×3/2 max pool in ceil mode
/// (the last window in the bottom padding), GoogLeNet's 3×3/1 branch pools, DenseNet's 2×2/2
/// transition, bands whose windows straddle the band edges, every tier.
#[test]
fn row_bands_match_reference() {
    let shape = |channels, in_h: usize, k: usize, st: usize, p: usize, ceil: bool| {
        let span = in_h + 2 * p - k;
        let out = if ceil {
            span.div_ceil(st) + 1
        } else {
            span / st + 1
        };
        PoolShape {
            channels,
            in_h,
            in_w: in_h + 3,
            out_h: out,
            out_w: (in_h + 3 + 2 * p - k) / st + 1,
            kernel: [k, k],
            stride: [st, st],
            pads: [p; 4],
        }
    };
    for s in [
        shape(5, 112, 3, 2, 1, false),
        shape(3, 56, 3, 2, 0, true),
        shape(7, 28, 3, 1, 1, false),
        shape(5, 35, 3, 1, 1, false),
        shape(9, 7, 3, 1, 1, true),
        shape(4, 14, 2, 2, 0, false),
        shape(6, 9, 3, 2, 1, true),
    ] {
        s.check().unwrap();
        for threads in [2, 3] {
            check_pools(&s, 2, threads, 7).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pools_match_reference((s, batch, threads, seed) in pool_case()) {
        prop_assume!(s.is_some());
        check_pools(&s.unwrap(), batch, threads, seed)?;
    }

    /// Stride-1 pools whose output has the input's size (AVX-512 pools them as flat runs of
    /// vectors across rows): any window up to 7×7, the padding split either way, rows narrower
    /// and wider than a vector, 1–3 threads.
    #[test]
    fn same_size_stride_1_pools_match_reference(
        channels in 1usize..=9,
        in_h in 1usize..=40,
        in_w in 1usize..=40,
        kernel in (1usize..=7, 1usize..=7),
        top in 0usize..=6,
        left in 0usize..=6,
        batch in 1usize..=2,
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let (top, left) = (top % kernel.0, left % kernel.1);
        let s = PoolShape {
            channels, in_h, in_w,
            out_h: in_h,
            out_w: in_w,
            kernel: [kernel.0, kernel.1],
            stride: [1, 1],
            pads: [top, left, kernel.0 - 1 - top, kernel.1 - 1 - left],
        };
        prop_assume!(s.check().is_ok());
        check_pools(&s, batch, threads, seed)?;
    }

    #[test]
    fn global_avg_pool_matches_reference(
        batch in 1usize..=3,
        channels in 1usize..=200,
        spatial in 1usize..=300,
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let input = values(seed, batch * channels * spatial);
        let mut want = vec![0.0; batch * channels];
        reference::global_avg_pool(batch, channels, spatial, &input, &mut want).unwrap();
        let threads = Threads::new(threads);
        check_tiers(
            "global_avg_pool",
            &want,
            |p| {
                let plane = &input[p * spatial..(p + 1) * spatial];
                let mean_abs = plane.iter().map(|x| x.abs()).sum::<f32>() / spatial as f32;
                (spatial.div_ceil(16) as f32 + 18.0) * U * mean_abs
            },
            |isa, got| {
                let args = PlanesArgs { batch, channels, spatial, input: &input, output: got };
                pool::global_avg_pool(&Ctx { isa, threads: &threads }, args)
            },
        )?;
    }
}

/// A found case: a one-pixel row under a 1×3 window of stride 2 padded on both sides has no
/// interior window, and the AVX-512 3×2 row kernel must not be handed the (empty) row past it.
#[test]
fn max_pool_without_interior_windows_matches_reference() {
    let s = PoolShape {
        channels: 1,
        in_h: 1,
        in_w: 1,
        out_h: 1,
        out_w: 1,
        kernel: [1, 3],
        stride: [1, 2],
        pads: [0, 1, 0, 1],
    };
    check_pools(&s, 1, 1, 0).unwrap();
}

#[test]
fn resnext_stem_max_pool_matches_reference() {
    let s = square_pool(64, 112, 3, 2, 1);
    check_pools(&s, 2, 2, 7).unwrap();
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let s = square_pool(4, 9, 3, 2, 1);
    let input = vec![0.0; 4 * 81];
    let mut out = vec![0.0; 4 * 25];
    let t = Threads::new(2);
    for isa in tiers() {
        let ctx = Ctx { isa, threads: &t };
        let short = pool::max_pool2d(
            &ctx,
            PoolArgs {
                shape: s,
                batch: 1,
                input: &input[1..],
                output: &mut out,
            },
        );
        assert!(
            matches!(short, Err(KernelError::Length { .. })),
            "{short:?}"
        );
        let bad = PoolShape {
            pads: [3, 0, 0, 0],
            ..s
        };
        let e = pool::avg_pool2d(
            &ctx,
            PoolArgs {
                shape: bad,
                batch: 1,
                input: &input,
                output: &mut out,
            },
            true,
        );
        assert!(matches!(e, Err(KernelError::BadShape(_))), "{e:?}");
        let g = pool::global_avg_pool(
            &ctx,
            PlanesArgs {
                batch: 1,
                channels: 4,
                spatial: 0,
                input: &[],
                output: &mut out[..4],
            },
        );
        assert!(matches!(g, Err(KernelError::BadShape(_))), "{g:?}");
        let g = pool::global_avg_pool(
            &ctx,
            PlanesArgs {
                batch: 1,
                channels: 4,
                spatial: 81,
                input: &input,
                output: &mut out[..3],
            },
        );
        assert!(matches!(g, Err(KernelError::Length { .. })), "{g:?}");
    }
}
