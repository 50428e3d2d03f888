//! Property tests of the Winograd F(2×2, 3×3) and F(4×4, 3×3) convs (`ConvAlgo::Winograd2x2`,
//! `ConvAlgo::Winograd4x4`) against the reference conv, on every ISA tier this CPU supports: random channels (ragged against the 8-row panels and the
//! vector widths), odd sizes (partial edge tiles), pads 0–1 (asymmetric too), batch 1–3, 1–3
//! threads, every fused epilogue.
//!
//! Tolerance, per output element: the direct sum's `common::tolerance` plus, scaled by the
//! activation's Lipschitz constant, the Winograd bound of the `winograd` module doc,
//! `γ_{in_c + s} · in_c · β² · max|x| · max|w|`.

mod common;

use common::{Case, Setting, U, assert_ok, check_tiers, lipschitz, setting, tolerance};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::winograd::Variant;
use resnext_runtime_core::kernels::{ConvArgs, ConvShape, Epilogue, reference};

/// Both Winograd algorithms and their variants.
const ALGOS: [(ConvAlgo, Variant); 2] = [
    (ConvAlgo::Winograd2x2, Variant::F2),
    (ConvAlgo::Winograd4x4, Variant::F4),
];

/// The bound of the module doc for `variant`, `in_c` channels and `max|x| · max|w|` = `xw`.
fn winograd_bound(variant: Variant, in_c: usize, xw: f32) -> f32 {
    let n = (in_c + variant.rounding_steps()) as f64 * U as f64;
    (n / (1.0 - n) * in_c as f64 * variant.error_growth() * xw as f64) as f32
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Runs both Winograd convs on every tier and compares them with the reference.
fn check(c: &Case) -> Result<(), TestCaseError> {
    for (algo, variant) in ALGOS {
        check_one(c, algo, variant)?;
    }
    Ok(())
}

/// Runs `algo` on every tier and compares it with the reference.
fn check_one(c: &Case, algo: ConvAlgo, variant: Variant) -> Result<(), TestCaseError> {
    let (s, batch) = (c.shape, c.setting.batch);
    prop_assert!(algo.supports(&s), "should support {s:?}");
    let ops = c.operands();
    let (want, magnitude) = ops.reference(batch * s.output_len(), |x, w, ep, out| {
        reference::conv2d(&s, batch, x, w, ep, out)
    });
    let packed = conv::pack(algo, &s, &ops.weight).unwrap();
    prop_assert_eq!(packed.len(), conv::packed_len(algo, &s));
    let extra = lipschitz(c.setting.activation)
        * winograd_bound(variant, s.in_c, max_abs(&ops.input) * max_abs(&ops.weight));
    let threads = Threads::new(c.setting.threads);
    let ep = ops.epilogue();
    check_tiers(
        &format!("{} in {c:?}", algo.name()),
        &want,
        |i| tolerance(c.taps(), magnitude[i]) + extra,
        |isa, out| {
            let len = conv::scratch_len(algo, &s, batch, threads.count());
            let mut scratch = vec![f32::NAN; len];
            let args = ConvArgs {
                shape: s,
                batch,
                input: &ops.input,
                packed: &packed,
                epilogue: ep,
                output: out,
                scratch: &mut scratch,
            };
            conv::conv2d(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                algo,
                args,
            )
        },
    )
}

/// A 3×3 stride-1 conv of `in_c → out_c` channels on `h × w` with `pads` `[top, left, bottom,
/// right]`.
fn shape(in_c: usize, out_c: usize, h: usize, w: usize, pads: [usize; 4]) -> ConvShape {
    ConvShape {
        in_c,
        in_h: h,
        in_w: w,
        out_c,
        out_h: h + pads[0] + pads[2] - 2,
        out_w: w + pads[1] + pads[3] - 2,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pads,
        group: 1,
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=40, 1usize..=40),
        (3usize..=19, 3usize..=19),
        prop_oneof![
            Just([1usize; 4]),
            Just([0usize; 4]),
            [0usize..=1, 0usize..=1, 0usize..=1, 0usize..=1]
        ],
        setting(),
        1usize..=3,
    )
        .prop_map(|((ic, oc), (h, w), pads, setting, batch)| Case {
            shape: shape(ic, oc, h, w, pads),
            setting: Setting { batch, ..setting },
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn winograd_matches_reference(c in case()) {
        check(&c)?;
    }
}

/// ResNet-like layers, with the fused epilogue: several blocks of tile rows (the 160-channel
/// 30×30 layer at batch 2), a map smaller than one tile, and a single row; on 2 and 3 threads
/// the larger maps split their tile rows between the threads (unevenly on 3), the smaller ones
/// split each step.
#[test]
fn winograd_layers_match_reference() {
    for (s, batch) in [
        (shape(160, 160, 30, 30, [1; 4]), 2),
        (shape(64, 64, 28, 28, [1; 4]), 1),
        (shape(16, 24, 3, 3, [1; 4]), 3),
        (shape(17, 9, 1, 40, [1; 4]), 1),
        (shape(8, 8, 3, 3, [0; 4]), 2),
    ] {
        for threads in [1, 2, 3] {
            let mut c = Case::fused(s, threads);
            c.setting.batch = batch;
            assert_ok(check(&c));
        }
    }
}

/// `algo` on `isa` with `threads` threads, batch 1, no epilogue.
fn run(
    algo: ConvAlgo,
    isa: resnext_runtime_core::exec::isa::Isa,
    threads: &Threads,
    s: ConvShape,
    input: &[f32],
    weight: &[f32],
) -> Vec<f32> {
    let packed = conv::pack(algo, &s, weight).unwrap();
    let mut out = vec![f32::NAN; s.output_len()];
    let mut scratch = vec![f32::NAN; conv::scratch_len(algo, &s, 1, threads.count())];
    let args = ConvArgs {
        shape: s,
        batch: 1,
        input,
        packed: &packed,
        epilogue: Epilogue::default(),
        output: &mut out,
        scratch: &mut scratch,
    };
    conv::conv2d(&Ctx { isa, threads }, algo, args).unwrap();
    out
}

/// A NaN in one input pixel reaches the outputs whose windows hold it (and, through the tile's
/// transform, the rest of its tile: Winograd mixes a tile's pixels), never the other tiles.
#[test]
fn winograd_propagates_nan() {
    let s = shape(16, 16, 12, 12, [1; 4]);
    let mut input = common::values(3, s.input_len());
    input[5 * 12 + 6] = f32::NAN;
    let weight = common::values(4, s.weight_len());
    let threads = Threads::new(2);
    for (algo, _) in ALGOS {
        for isa in common::tiers() {
            let out = run(algo, isa, &threads, s, &input, &weight);
            for oc in 0..s.out_c {
                for (y, x) in [(4, 5), (5, 6), (6, 7)] {
                    let nan = out[(oc * 12 + y) * 12 + x].is_nan();
                    assert!(nan, "{algo:?} {isa:?} ({y}, {x})");
                }
                // Tiles away from (5, 6) are untouched by it.
                assert!(!out[oc * 144].is_nan(), "{algo:?} {isa:?}");
                assert!(!out[oc * 144 + 11 * 12 + 11].is_nan(), "{algo:?} {isa:?}");
            }
        }
    }
}

/// Shapes Winograd does not run are refused with an error, not a panic.
#[test]
fn winograd_refuses_other_shapes() {
    for (algo, _) in ALGOS {
        for s in [
            ConvShape::square(16, 12, 16, 3, 2, 1, 1),
            ConvShape::square(16, 12, 16, 3, 1, 1, 2),
            ConvShape::square(16, 12, 16, 5, 1, 2, 1),
            ConvShape::square(16, 12, 16, 1, 1, 0, 1),
        ] {
            assert!(!algo.supports(&s), "{algo:?} {s:?}");
            assert!(conv::pack(algo, &s, &vec![0.0; s.weight_len()]).is_err());
        }
        let s = shape(16, 16, 12, 12, [1; 4]);
        let packed = conv::pack(algo, &s, &vec![0.0; s.weight_len()]).unwrap();
        let threads = Threads::new(1);
        let (input, mut out) = (vec![0.0; s.input_len()], vec![0.0; s.output_len()]);
        let mut scratch = vec![0.0; 10];
        let args = ConvArgs {
            shape: s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: Epilogue::default(),
            output: &mut out,
            scratch: &mut scratch,
        };
        assert!(conv::conv2d(&Ctx::new(&threads), algo, args).is_err());
    }
}

/// On ResNet-like layers (He-uniform weights, inputs in [−1, 1)) the error is far below the
/// worst-case bound. F(2×2, 3×3), the compiler's default, is at most 3× as far from the f64
/// reference as the conv it replaces (`ConvAlgo::select`'s GEMM over the 9 taps; measured
/// 1.1–2.4×, `bench/RESULTS.md`); F(4×4, 3×3) at most 1e-4 of the largest output (measured about
/// 1e-5, against about 3e-7 for the GEMM), the scale the end-to-end tests allow for a whole model.
#[test]
fn winograd_error_on_resnet_layers_is_small() {
    let threads = Threads::new(2);
    for (c, hw) in [(64, 20), (128, 14), (256, 7)] {
        let s = shape(c, c, hw, hw, [1; 4]);
        let input = common::values(11, s.input_len());
        let he = (6.0 / (9 * c) as f32).sqrt();
        let weight: Vec<f32> = common::values(12, s.weight_len())
            .iter()
            .map(|w| w * he)
            .collect();
        let mut want = vec![0.0; s.output_len()];
        reference::conv2d(&s, 1, &input, &weight, &Epilogue::default(), &mut want).unwrap();
        for isa in common::tiers() {
            let rel = |algo| {
                let got = run(algo, isa, &threads, s, &input, &weight);
                resnext_test_support::rel_diff(&got, &want)
            };
            let (gemm, f2, f4) = (
                rel(ConvAlgo::select(&s)),
                rel(ConvAlgo::Winograd2x2),
                rel(ConvAlgo::Winograd4x4),
            );
            println!(
                "{} {c}×{hw}²: of max |y|, GEMM {gemm:e}, F(2×2) {f2:e}, F(4×4) {f4:e}",
                isa.name()
            );
            assert!(
                f2 <= 3.0 * gemm,
                "{isa:?} {s:?}: F(2×2) {f2:e}, GEMM {gemm:e}"
            );
            assert!(f4 <= 1e-4, "{isa:?} {s:?}: F(4×4) {f4:e}");
        }
    }
}
