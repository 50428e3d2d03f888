//! NaN and infinity inputs: every kernel tier propagates them exactly as the reference kernels do,
//! and a NaN is never dropped (ReLU, Clip and max pooling of a NaN give NaN, as in PyTorch).
//!
//! The oracle is `kernels::reference`; the documented rule (README "NaN and infinity") is checked
//! on both: outputs whose window sees a NaN are NaN, and the NaN/±inf pattern of every fast tier
//! equals the reference's, element by element.

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::pool::PoolArgs;
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, PoolShape, pool, reference,
};

mod common;

/// Finite values in [-1, 1) with a NaN, a +inf and a -inf planted at the given indices.
fn input(len: usize, nan: usize, pos_inf: usize, neg_inf: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..len)
        .map(|i| ((i * 37 % 101) as f32 / 50.5) - 1.0)
        .collect();
    v[nan] = f32::NAN;
    v[pos_inf] = f32::INFINITY;
    v[neg_inf] = f32::NEG_INFINITY;
    v
}

/// Same class (NaN, +inf, -inf) everywhere, finite values within `tol` (relative to 1 + |ref|).
fn assert_same_specials(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            g.is_finite() && (g - w).abs() <= tol * (1.0 + w.abs())
        };
        assert!(ok, "{what}: element {i} is {g}, the reference gives {w}");
    }
}

#[test]
fn activations_keep_nan() {
    for act in [Activation::Relu, Activation::Clip { min: 0.0, max: 6.0 }] {
        assert!(act.apply(f32::NAN).is_nan(), "{act:?}");
    }
    assert_eq!(Activation::Relu.apply(f32::NEG_INFINITY), 0.0);
    assert_eq!(Activation::Relu.apply(f32::INFINITY), f32::INFINITY);
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    assert_eq!(relu6.apply(f32::INFINITY), 6.0);
    assert_eq!(relu6.apply(f32::NEG_INFINITY), 0.0);
    let mut out = [0.0f32; 3];
    reference::activation(&[f32::NAN, -1.0, 2.0], Activation::Relu, &mut out).unwrap();
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &[0.0, 2.0]);
}

#[test]
fn convs_propagate_nan_and_inf_like_the_reference() {
    let shapes = [
        (ConvAlgo::Pointwise, 16, 24, [1, 1], 1, [0; 4]),
        (ConvAlgo::Im2col, 8, 16, [3, 3], 1, [1; 4]),
        (ConvAlgo::ImplicitGemm, 8, 16, [3, 3], 1, [1; 4]),
        (ConvAlgo::ImplicitGemm, 8, 16, [3, 1], 1, [1, 0, 1, 0]),
        (ConvAlgo::Grouped, 16, 16, [3, 3], 4, [1; 4]),
        (ConvAlgo::Depthwise, 16, 16, [3, 3], 16, [1; 4]),
    ];
    let threads = Threads::new(2);
    for (algo, in_c, out_c, kernel, group, pads) in shapes {
        let (h, w) = (9, 11);
        let s = ConvShape {
            in_c,
            in_h: h,
            in_w: w,
            out_c,
            out_h: h + pads[0] + pads[2] - kernel[0] + 1,
            out_w: w + pads[1] + pads[3] - kernel[1] + 1,
            kernel,
            stride: [1, 1],
            dilation: [1, 1],
            pads,
            group,
        };
        assert!(algo.supports(&s), "{algo:?} {s:?}");
        let batch = 2;
        let x = input(batch * s.input_len(), 5, 200, 2 * s.input_len() - 7);
        // Weights bounded away from zero, alternating in sign: an inf times them stays infinite.
        let wt: Vec<f32> = (0..s.weight_len())
            .map(|i| if i % 2 == 0 { 0.25 } else { -0.5 } * (1.0 + (i % 3) as f32))
            .collect();
        let bias: Vec<f32> = (0..out_c).map(|i| i as f32 * 0.1 - 0.4).collect();
        for activation in [
            Activation::None,
            Activation::Relu,
            Activation::Clip { min: 0.0, max: 6.0 },
        ] {
            let ep = Epilogue {
                bias: Some(&bias),
                residual: None,
                activation,
            };
            let mut want = vec![0.0; batch * s.output_len()];
            reference::conv2d(&s, batch, &x, &wt, &ep, &mut want).unwrap();
            // The NaN of image 0 reaches output pixel 0..: at least one output is NaN, in image 0.
            assert!(
                want[..s.output_len()].iter().any(|v| v.is_nan()),
                "{algo:?}"
            );
            let packed = conv::pack(algo, &s, &wt).unwrap();
            for isa in common::tiers() {
                let mut got = vec![0.0; want.len()];
                let mut scratch = vec![0.0; conv::scratch_len(algo, &s, batch, threads.count())];
                let args = ConvArgs {
                    shape: s,
                    batch,
                    input: &x,
                    packed: &packed,
                    epilogue: ep,
                    output: &mut got,
                    scratch: &mut scratch,
                };
                let ctx = Ctx {
                    isa,
                    threads: &threads,
                };
                conv::conv2d(&ctx, algo, args).unwrap();
                let what = format!("{algo:?} {activation:?} {}", isa.name());
                assert_same_specials(&what, &got, &want, 1e-5);
            }
        }
    }
}

#[test]
fn dense_propagates_nan_like_the_reference() {
    let (batch, k, m) = (3, 40, 10);
    let x = input(batch * k, 3, k + 1, 2 * k + 5);
    let wt: Vec<f32> = (0..m * k)
        .map(|i| if i % 2 == 0 { 0.5 } else { -0.25 })
        .collect();
    let packed = dense::pack(k, m, &wt).unwrap();
    let threads = Threads::new(2);
    for activation in [Activation::Relu, Activation::Clip { min: 0.0, max: 6.0 }] {
        let ep = Epilogue {
            bias: None,
            residual: None,
            activation,
        };
        let mut want = vec![0.0; batch * m];
        reference::dense(batch, k, m, &x, &wt, &ep, &mut want).unwrap();
        assert!(want[..m].iter().all(|v| v.is_nan()), "{want:?}");
        for isa in common::tiers() {
            let mut got = vec![0.0; want.len()];
            let mut scratch = vec![0.0; dense::scratch_len(batch, k, threads.count())];
            let args = DenseArgs {
                batch,
                in_features: k,
                out_features: m,
                input: &x,
                packed: &packed,
                epilogue: ep,
                output: &mut got,
                scratch: &mut scratch,
            };
            let ctx = Ctx {
                isa,
                threads: &threads,
            };
            dense::run(&ctx, args).unwrap();
            let what = format!("dense {activation:?} {}", isa.name());
            assert_same_specials(&what, &got, &want, 1e-5);
        }
    }
}

#[test]
fn max_pool_propagates_nan_like_the_reference() {
    let s = PoolShape {
        channels: 3,
        in_h: 8,
        in_w: 9,
        out_h: 4,
        out_w: 5,
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1, 1, 1, 1],
    };
    let batch = 2;
    let plane = s.in_h * s.in_w;
    // One NaN at (row 0, col 0) of the first plane, in a border window (output (0, 0)); another
    // at (row 2, col 4), in the window of interior output (1, 2), which the SIMD rows compute.
    let mut x = input(batch * s.channels * plane, 0, 20, plane + 40);
    x[2 * s.in_w + 4] = f32::NAN;
    let mut want = vec![0.0; batch * s.channels * s.out_h * s.out_w];
    reference::max_pool2d(&s, batch, &x, &mut want).unwrap();
    assert!(want[0].is_nan(), "reference max pool dropped the NaN");
    assert!(
        want[s.out_w + 2].is_nan(),
        "reference max pool dropped the NaN"
    );
    for isa in common::tiers() {
        for threads in [1, 2] {
            let mut got = vec![0.0; want.len()];
            let args = PoolArgs {
                shape: s,
                batch,
                input: &x,
                output: &mut got,
            };
            let pool_threads = Threads::new(threads);
            let ctx = Ctx {
                isa,
                threads: &pool_threads,
            };
            pool::max_pool2d(&ctx, args).unwrap();
            let what = format!("max pool {} {threads} threads", isa.name());
            assert_same_specials(&what, &got, &want, 0.0);
        }
    }
}

/// The same in rows wide enough for the AVX-512 tier's 16-output steps of 3×3/2 windows: NaNs at
/// an even column, an odd one and the column one past a step's last window start (which that step
/// reads as its lane-shifted `row[32]`), each in an interior window.
#[test]
fn max_pool_propagates_nan_in_wide_rows() {
    let s = PoolShape {
        channels: 2,
        in_h: 9,
        in_w: 75,
        out_h: 5,
        out_w: 38,
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1, 1, 1, 1],
    };
    let plane = s.in_h * s.in_w;
    let mut x = input(s.channels * plane, 3, 5 * s.in_w + 20, plane + 61);
    for (row, col) in [(2, 12), (4, 23), (6, 33), (plane / s.in_w + 3, 64)] {
        x[row * s.in_w + col] = f32::NAN;
    }
    let mut want = vec![0.0; s.channels * s.out_h * s.out_w];
    reference::max_pool2d(&s, 1, &x, &mut want).unwrap();
    assert!(want.iter().filter(|v| v.is_nan()).count() >= 8, "{want:?}");
    for isa in common::tiers() {
        let mut got = vec![0.0; want.len()];
        let args = PoolArgs {
            shape: s,
            batch: 1,
            input: &x,
            output: &mut got,
        };
        pool::max_pool2d(
            &Ctx {
                isa,
                threads: &Threads::new(1),
            },
            args,
        )
        .unwrap();
        assert_same_specials(&format!("wide max pool {}", isa.name()), &got, &want, 0.0);
    }
}
