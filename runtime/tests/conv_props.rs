//! Property tests of the conv entry point (`kernels::conv`: pointwise and im2col GEMMs, and the
//! dispatch to grouped/depthwise) and of the dense layer, against the reference kernels, on every
//! ISA tier this CPU supports, random shapes, thread counts and fused epilogues.
//!
//! Tolerance, per output element: `|fast − reference| ≤ (n + 4) · u · (Σ|x·w| + |bias| + |residual|)`
//! with `u = 2⁻²⁴` and `n` the products summed per output (`cin/group · kh · kw`, or `in_features`).
//! The reference accumulates in f64 and rounds once. The GEMM sums `n` products in f32 with FMAs in
//! some order (k blocks of `KC`, partial sums stored to the output between blocks); any order has
//! rounding error at most `γ_n · Σ|x·w| ≈ n·u·Σ|x·w|`. The bias and residual adds round once each
//! (`u` times the running magnitude), the reference rounds once more, and the activations are
//! 1-Lipschitz and exact: hence `n + 4`. `Σ|x·w|` is the reference conv of `|x|` and `|w|`.

use proptest::prelude::*;
use resnext_runtime::isa::Isa;
use resnext_runtime::kernels::conv::{self, ConvAlgo};
use resnext_runtime::kernels::{Activation, ConvShape, Epilogue, KernelError, reference};
use resnext_runtime::threads::Threads;

/// Deterministic values in [-1, 1) from a seed (xorshift64*).
fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            r as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn out_size(
    size: usize,
    k: usize,
    stride: usize,
    dil: usize,
    p0: usize,
    p1: usize,
) -> Option<usize> {
    let padded = size + p0 + p1;
    let span = dil * (k - 1) + 1;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

#[derive(Clone, Debug)]
struct Case {
    shape: ConvShape,
    batch: usize,
    bias: bool,
    residual: bool,
    activation: Activation,
    threads: usize,
    seed: u64,
}

/// Output tolerance per element: see the module doc.
fn tolerance(n: usize, magnitude: f32) -> f32 {
    (n as f32 + 4.0) * f32::EPSILON / 2.0 * magnitude
}

/// Runs `algo` (through `conv2d_with_isa`) on every supported tier and compares with the reference.
fn check_case(algo: ConvAlgo, c: &Case) -> Result<(), TestCaseError> {
    let s = c.shape;
    prop_assert!(algo.supports(&s), "{algo:?} should support {s:?}");
    let input = values(c.seed, c.batch * s.input_len());
    let weight = values(c.seed ^ 1, s.weight_len());
    let bias = values(c.seed ^ 2, s.out_c);
    let residual = values(c.seed ^ 3, c.batch * s.output_len());
    let ep = Epilogue {
        bias: c.bias.then_some(&bias[..]),
        residual: c.residual.then_some(&residual[..]),
        activation: c.activation,
    };
    let mut want = vec![0.0; c.batch * s.output_len()];
    reference::conv2d(&s, c.batch, &input, &weight, &ep, &mut want).unwrap();
    // Σ|x·w| + |bias| + |residual| per output element.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let (abs_bias, abs_res) = (abs(&bias), abs(&residual));
    let abs_ep = Epilogue {
        bias: c.bias.then_some(&abs_bias[..]),
        residual: c.residual.then_some(&abs_res[..]),
        activation: Activation::None,
    };
    let mut magnitude = vec![0.0; want.len()];
    reference::conv2d(
        &s,
        c.batch,
        &abs(&input),
        &abs(&weight),
        &abs_ep,
        &mut magnitude,
    )
    .unwrap();
    let taps = s.in_c / s.group * s.kernel[0] * s.kernel[1];

    let packed = conv::pack(algo, &s, &weight).unwrap();
    prop_assert_eq!(packed.len(), conv::packed_len(algo, &s));
    let threads = Threads::new(c.threads);
    for isa in Isa::all_supported() {
        let mut scratch = vec![f32::NAN; conv::scratch_len(algo, &s, c.batch, threads.count())];
        let mut got = vec![f32::NAN; want.len()];
        conv::conv2d_with_isa(
            algo,
            &s,
            c.batch,
            &input,
            &packed,
            &ep,
            &mut got,
            &mut scratch,
            isa,
            &threads,
        )
        .unwrap();
        for (i, ((&g, &w), &m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
            let tol = tolerance(taps, m);
            prop_assert!(
                (g - w).abs() <= tol,
                "{} {:?} element {}: got {}, want {} (tolerance {})",
                isa.name(),
                algo,
                i,
                g,
                w,
                tol
            );
        }
    }
    Ok(())
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Clip {
            min: -0.25,
            max: 0.5
        }),
    ]
}

/// 1×1 convs without padding: channels up to 80 (ragged against the 8-row panels), spatial sizes
/// ragged against the 48-column tiles, strides 1–2, groups 1/2/4.
fn pointwise_case() -> impl Strategy<Value = Case> {
    (
        (1usize..=3, 1usize..=20, 1usize..=20),
        (1usize..=14, 1usize..=14, 1usize..=2, 1usize..=2),
        (
            1usize..=2,
            any::<bool>(),
            any::<bool>(),
            activation(),
            1usize..=3,
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (groups_log, icg, ocg),
                (h, w, sy, sx),
                (batch, bias, residual, activation, threads, seed),
            )| {
                let group = 1 << (groups_log - 1);
                let (in_c, out_c) = (icg * group, ocg * group);
                Case {
                    shape: ConvShape {
                        in_c,
                        in_h: h,
                        in_w: w,
                        out_c,
                        out_h: (h - 1) / sy + 1,
                        out_w: (w - 1) / sx + 1,
                        kernel: [1, 1],
                        stride: [sy, sx],
                        dilation: [1, 1],
                        pads: [0; 4],
                        group,
                    },
                    batch,
                    bias,
                    residual,
                    activation,
                    threads,
                    seed,
                }
            },
        )
}

/// Any conv: kernels 1–7 (not square), strides 1–3, dilations 1–2, asymmetric pads, groups
/// 1/2/8/32/C.
fn general_case() -> impl Strategy<Value = Option<Case>> {
    (
        (0usize..5, 1usize..=4, 1usize..=3),
        (1usize..=12, 1usize..=12, 1usize..=7, 1usize..=7),
        (
            1usize..=3,
            1usize..=3,
            1usize..=2,
            1usize..=2,
            [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        ),
        (
            1usize..=2,
            any::<bool>(),
            any::<bool>(),
            activation(),
            1usize..=3,
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (gsel, icg, ocg),
                (h, w, kh, kw),
                (sy, sx, dy, dx, pads),
                (batch, bias, residual, activation, threads, seed),
            )| {
                let group = [1, 2, 8, 32, 0][gsel];
                let (group, icg, ocg) = if group == 0 {
                    (3 * icg, 1, 1)
                } else {
                    (group, icg, ocg)
                };
                let out_h = out_size(h, kh, sy, dy, pads[0], pads[2])?;
                let out_w = out_size(w, kw, sx, dx, pads[1], pads[3])?;
                Some(Case {
                    shape: ConvShape {
                        in_c: icg * group,
                        in_h: h,
                        in_w: w,
                        out_c: ocg * group,
                        out_h,
                        out_w,
                        kernel: [kh, kw],
                        stride: [sy, sx],
                        dilation: [dy, dx],
                        pads,
                        group,
                    },
                    batch,
                    bias,
                    residual,
                    activation,
                    threads,
                    seed,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pointwise_matches_reference(c in pointwise_case()) {
        check_case(ConvAlgo::Pointwise, &c)?;
        check_case(ConvAlgo::Im2col, &c)?;
    }

    #[test]
    fn im2col_matches_reference(c in general_case()) {
        if let Some(c) = c {
            check_case(ConvAlgo::Im2col, &c)?;
            // The selected algorithm (grouped/depthwise when they apply) through the same entry.
            check_case(ConvAlgo::select(&c.shape), &c)?;
        }
    }

    #[test]
    fn dense_matches_reference(
        batch in 1usize..=10,
        in_f in 1usize..=300,
        out_f in 1usize..=120,
        bias in any::<bool>(),
        residual in any::<bool>(),
        activation in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        check_dense(batch, in_f, out_f, bias, residual, activation, threads, seed)?;
    }
}

#[allow(clippy::too_many_arguments)]
fn check_dense(
    batch: usize,
    in_f: usize,
    out_f: usize,
    bias: bool,
    residual: bool,
    activation: Activation,
    threads: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = values(seed, batch * in_f);
    let w = values(seed ^ 1, out_f * in_f);
    let b = values(seed ^ 2, out_f);
    let r = values(seed ^ 3, batch * out_f);
    let ep = Epilogue {
        bias: bias.then_some(&b[..]),
        residual: residual.then_some(&r[..]),
        activation,
    };
    let mut want = vec![0.0; batch * out_f];
    reference::dense(batch, in_f, out_f, &x, &w, &ep, &mut want).unwrap();
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let (ab, ar) = (abs(&b), abs(&r));
    let abs_ep = Epilogue {
        bias: bias.then_some(&ab[..]),
        residual: residual.then_some(&ar[..]),
        activation: Activation::None,
    };
    let mut magnitude = vec![0.0; want.len()];
    reference::dense(
        batch,
        in_f,
        out_f,
        &abs(&x),
        &abs(&w),
        &abs_ep,
        &mut magnitude,
    )
    .unwrap();
    let packed = conv::dense_pack(in_f, out_f, &w).unwrap();
    let threads = Threads::new(threads);
    for isa in Isa::all_supported() {
        let mut scratch = vec![f32::NAN; conv::dense_scratch_len(batch, in_f, threads.count())];
        let mut got = vec![f32::NAN; want.len()];
        conv::dense_with_isa(
            batch,
            in_f,
            out_f,
            &x,
            &packed,
            &ep,
            &mut got,
            &mut scratch,
            isa,
            &threads,
        )
        .unwrap();
        for (i, ((&g, &wv), &m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
            let tol = tolerance(in_f, m);
            prop_assert!(
                (g - wv).abs() <= tol,
                "dense {} element {}: got {}, want {} (tolerance {})",
                isa.name(),
                i,
                g,
                wv,
                tol
            );
        }
    }
    Ok(())
}

fn shape(
    in_c: usize,
    hw: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    group: usize,
) -> ConvShape {
    let out = (hw + 2 * pad - k) / stride + 1;
    ConvShape {
        in_c,
        in_h: hw,
        in_w: hw,
        out_c,
        out_h: out,
        out_w: out,
        kernel: [k, k],
        stride: [stride, stride],
        dilation: [1, 1],
        pads: [pad; 4],
        group,
    }
}

fn case(shape: ConvShape, threads: usize) -> Case {
    Case {
        shape,
        batch: 1,
        bias: true,
        residual: true,
        activation: Activation::Relu,
        threads,
        seed: 7,
    }
}

/// ResNeXt-50's own pointwise shapes (scaled down in channels where the reference would be slow),
/// covering K beyond one k block (KC = 256), the 49-pixel stage-4 maps and the stride-2 projection.
#[test]
fn resnext_pointwise_shapes() {
    let shapes = [
        shape(64, 56, 128, 1, 1, 0, 1),
        shape(300, 14, 40, 1, 1, 0, 1),
        shape(520, 7, 64, 1, 1, 0, 1),
        shape(256, 28, 24, 1, 2, 0, 1),
        shape(96, 14, 200, 1, 2, 0, 1),
    ];
    for s in shapes {
        for threads in [1, 2] {
            check_case(ConvAlgo::Pointwise, &case(s, threads)).unwrap();
        }
    }
}

/// The 7×7/2 stem (on a smaller image) and a dense 3×3 with padding.
#[test]
fn stem_and_dense_3x3() {
    for s in [shape(3, 40, 64, 7, 2, 3, 1), shape(16, 15, 24, 3, 1, 1, 1)] {
        prop_assert_ok(check_case(ConvAlgo::select(&s), &case(s, 2)));
        assert_eq!(ConvAlgo::select(&s), ConvAlgo::Im2col);
    }
}

fn prop_assert_ok(r: Result<(), TestCaseError>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn select_picks_the_specialised_kernels() {
    assert_eq!(
        ConvAlgo::select(&shape(256, 56, 64, 1, 1, 0, 1)),
        ConvAlgo::Pointwise
    );
    assert_eq!(
        ConvAlgo::select(&shape(512, 28, 1024, 1, 2, 0, 1)),
        ConvAlgo::Pointwise
    );
    assert_eq!(
        ConvAlgo::select(&shape(128, 56, 128, 3, 1, 1, 32)),
        ConvAlgo::Grouped
    );
    assert_eq!(
        ConvAlgo::select(&shape(96, 28, 96, 3, 2, 1, 96)),
        ConvAlgo::Depthwise
    );
    assert_eq!(
        ConvAlgo::select(&shape(3, 224, 64, 7, 2, 3, 1)),
        ConvAlgo::Im2col
    );
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let s = shape(16, 9, 24, 1, 1, 0, 1);
    let w = values(1, s.weight_len());
    assert!(matches!(
        conv::pack(ConvAlgo::Pointwise, &s, &w[1..]),
        Err(KernelError::Length { .. })
    ));
    assert!(conv::pack(ConvAlgo::Pointwise, &shape(16, 9, 24, 3, 1, 1, 1), &w).is_err());
    let packed = conv::pack(ConvAlgo::Pointwise, &s, &w).unwrap();
    let threads = Threads::new(2);
    let input = values(2, s.input_len());
    let mut out = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(ConvAlgo::Pointwise, &s, 1, 2)];
    let ep = Epilogue::default();
    let run =
        |input: &[f32], packed: &[f32], out: &mut [f32], scratch: &mut [f32], ep: &Epilogue| {
            conv::conv2d(
                ConvAlgo::Pointwise,
                &s,
                1,
                input,
                packed,
                ep,
                out,
                scratch,
                &threads,
            )
        };
    assert!(run(&input[1..], &packed, &mut out, &mut scratch, &ep).is_err());
    assert!(run(&input, &packed[1..], &mut out, &mut scratch, &ep).is_err());
    assert!(run(&input, &packed, &mut out[1..], &mut scratch, &ep).is_err());
    let mut small = vec![0.0; 10];
    assert!(run(&input, &packed, &mut out, &mut small, &ep).is_err());
    let short_bias = [0.0; 3];
    let bad = Epilogue {
        bias: Some(&short_bias),
        ..Epilogue::default()
    };
    assert!(run(&input, &packed, &mut out, &mut scratch, &bad).is_err());
    assert!(run(&input, &packed, &mut out, &mut scratch, &ep).is_ok());
    assert!(conv::dense_pack(10, 5, &w[..49]).is_err());
}

/// Regression (found by proptest): a dilated 1×4 kernel whose first tap reads only left padding
/// for a whole output run, so the run's valid range is empty.
#[test]
fn a_run_entirely_in_the_padding() {
    let s = ConvShape {
        in_c: 1,
        in_h: 7,
        in_w: 8,
        out_c: 1,
        out_h: 7,
        out_w: 7,
        kernel: [1, 4],
        stride: [1, 1],
        dilation: [1, 2],
        pads: [0, 3, 0, 2],
        group: 1,
    };
    for threads in [1, 2] {
        prop_assert_ok(check_case(ConvAlgo::Im2col, &case(s, threads)));
    }
}
