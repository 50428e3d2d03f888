//! Property tests of the conv entry point (`kernels::conv`: pointwise and im2col GEMMs, and the
//! dispatch to grouped/depthwise) and of the dense layer, against the reference kernels, on every
//! ISA tier this CPU supports, random shapes, thread counts and fused epilogues.
//!
//! Tolerance, per output element: `common::tolerance`, `(n + 4) · u · (Σ|x·w| + |bias| + |residual|)`
//! with `n` the products summed per output (`cin/group · kh · kw`, or `in_features`); the derivation
//! is in `common/mod.rs`. It holds for the GEMM's summation order too (runs of at most `ACC_CHUNK`
//! k steps, each added to the partial sums stored in the output): any order has rounding error at
//! most `γ_n · Σ|x·w|`.

mod common;

use common::{
    Case, Operands, Setting, activation, assert_ok, check_tiers, out_size, setting, tolerance,
};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{ConvArgs, ConvShape, Epilogue, KernelError, reference};

/// Runs `algo` (through `conv2d`, the tier set in its `Ctx`) on every supported tier and compares with the reference.
fn check_case(algo: ConvAlgo, c: &Case) -> Result<(), TestCaseError> {
    let (s, batch) = (c.shape, c.setting.batch);
    prop_assert!(algo.supports(&s), "{algo:?} should support {s:?}");
    c.check(
        &format!("{algo:?}"),
        |weight| {
            let packed = conv::pack(algo, &s, weight).unwrap();
            assert_eq!(packed.len(), conv::packed_len(algo, &s));
            packed
        },
        |isa, input, packed, ep, threads, out| {
            let mut scratch = vec![f32::NAN; conv::scratch_len(algo, &s, batch, threads.count())];
            let args = ConvArgs {
                shape: s,
                batch,
                input,
                packed,
                epilogue: *ep,
                output: out,
                scratch: &mut scratch,
            };
            conv::conv2d(&Ctx { isa, threads }, algo, args)
        },
    )
}

/// 1×1 convs without padding: channels up to 80 (ragged against the 8-row panels), spatial sizes
/// ragged against the 48-column tiles, strides 1–2, groups 1/2/4.
fn pointwise_case() -> impl Strategy<Value = Case> {
    (
        (1usize..=3, 1usize..=20, 1usize..=20),
        (1usize..=14, 1usize..=14, 1usize..=2, 1usize..=2),
        setting(),
    )
        .prop_map(|((groups_log, icg, ocg), (h, w, sy, sx), setting)| {
            let group = 1 << (groups_log - 1);
            let shape = ConvShape {
                in_c: icg * group,
                in_h: h,
                in_w: w,
                out_c: ocg * group,
                out_h: (h - 1) / sy + 1,
                out_w: (w - 1) / sx + 1,
                kernel: [1, 1],
                stride: [sy, sx],
                dilation: [1, 1],
                pads: [0; 4],
                group,
            };
            Case { shape, setting }
        })
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
        setting(),
    )
        .prop_map(
            |((gsel, icg, ocg), (h, w, kh, kw), (sy, sx, dy, dx, pads), setting)| {
                let group = [1, 2, 8, 32, 0][gsel];
                let (group, icg, ocg) = if group == 0 {
                    (3 * icg, 1, 1)
                } else {
                    (group, icg, ocg)
                };
                let shape = ConvShape {
                    in_c: icg * group,
                    in_h: h,
                    in_w: w,
                    out_c: ocg * group,
                    out_h: out_size(h, kh, sy, dy, pads[0], pads[2])?,
                    out_w: out_size(w, kw, sx, dx, pads[1], pads[3])?,
                    kernel: [kh, kw],
                    stride: [sy, sx],
                    dilation: [dy, dx],
                    pads,
                    group,
                };
                Some(Case { shape, setting })
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
        // A window wider than its padded input has no conv: proptest draws another case instead.
        prop_assume!(c.is_some(), "the window does not fit in the padded input");
        let c = c.expect("assumed above");
        check_case(ConvAlgo::Im2col, &c)?;
        // The selected algorithm (grouped/depthwise when they apply) through the same entry.
        check_case(ConvAlgo::select(&c.shape), &c)?;
    }

    /// Im2col tiled by output row (`conv::im2col_by_rows`): wide odd rows (ragged against the
    /// 16-lane vectors and 48-column tiles), column strides 2–3 (column phases; row tiling takes
    /// no stride-1 layer), dilations, asymmetric pads, groups, and up to 2·KC taps per group (k
    /// blocks).
    #[test]
    fn im2col_by_rows_matches_reference(
        (group, icg, ocg) in (1usize..=2, 1usize..=60, 1usize..=20),
        (h, w, kh, kw) in (1usize..=9, 12usize..=130, 1usize..=3, 1usize..=7),
        (sy, sx, dy, dx) in (1usize..=2, 2usize..=3, 1usize..=2, 1usize..=2),
        pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        setting in setting(),
    ) {
        let out_h = out_size(h, kh, sy, dy, pads[0], pads[2]);
        let out_w = out_size(w, kw, sx, dx, pads[1], pads[3]);
        if let (Some(out_h), Some(out_w)) = (out_h, out_w) {
            let shape = ConvShape {
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
            };
            if conv::im2col_by_rows(&shape) {
                check_case(ConvAlgo::Im2col, &Case { shape, setting })?;
            }
        }
    }

    /// Deep 1×1 convs on small maps: k past `gemm::ACC_CHUNK` (and past the B block's k depth),
    /// so a tile's k is summed in several runs, each added to C, and only the last finishes.
    #[test]
    fn deep_pointwise_matches_reference(
        (in_c, out_c) in (250usize..=1100, 1usize..=20),
        (h, w) in (1usize..=9, 1usize..=9),
        setting in setting(),
    ) {
        let shape = ConvShape {
            in_c,
            in_h: h,
            in_w: w,
            out_c,
            out_h: h,
            out_w: w,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            group: 1,
        };
        check_case(ConvAlgo::Pointwise, &Case { shape, setting })?;
    }

    /// Many output channels on small maps (7×7 to 16×16 and ragged ones), the shapes whose rows
    /// are split into chunks on 2–3 threads: tasks of one thread that share their columns reuse
    /// the B block an earlier task packed (on AVX-512), across batch items and groups too.
    #[test]
    fn row_chunks_sharing_columns_match_reference(
        (in_c, out_c, group) in (1usize..=200, 17usize..=200, 1usize..=2),
        (h, w) in (1usize..=16, 1usize..=16),
        setting in setting(),
    ) {
        let shape = ConvShape {
            in_c: in_c * group,
            in_h: h,
            in_w: w,
            out_c: out_c * group,
            out_h: h,
            out_w: w,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            group,
        };
        check_case(ConvAlgo::Pointwise, &Case { shape, setting })?;
    }

    #[test]
    fn dense_matches_reference(
        batch in 1usize..=10,
        in_f in prop_oneof![1usize..=300, 250usize..=1100],
        out_f in 1usize..=120,
        bias in any::<bool>(),
        residual in any::<bool>(),
        activation in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let setting = Setting { batch, bias, residual, activation, threads, seed };
        check_dense(in_f, out_f, setting)?;
    }
}

fn check_dense(in_f: usize, out_f: usize, setting: Setting) -> Result<(), TestCaseError> {
    let batch = setting.batch;
    let ops = Operands::new([batch * in_f, out_f * in_f, out_f, batch * out_f], setting);
    let (want, magnitude) = ops.reference(batch * out_f, |x, w, ep, out| {
        reference::dense(batch, in_f, out_f, x, w, ep, out)
    });
    let packed = dense::pack(in_f, out_f, &ops.weight).unwrap();
    let threads = Threads::new(setting.threads);
    let ep = ops.epilogue();
    check_tiers(
        "dense",
        &want,
        |i| tolerance(in_f, magnitude[i]),
        |isa, got| {
            let mut scratch = vec![f32::NAN; dense::scratch_len(batch, in_f, threads.count())];
            let args = DenseArgs {
                batch,
                in_features: in_f,
                out_features: out_f,
                input: &ops.input,
                packed: &packed,
                epilogue: ep,
                output: got,
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
    )
}

/// ResNeXt-50's own pointwise shapes (scaled down in channels where the reference would be slow),
/// covering K beyond one k block (at 1 thread 512 for 4-tile column chunks, 1024 for 2-tile
/// ones), the 49-pixel stage-4 maps and the stride-2 projection.
#[test]
fn resnext_pointwise_shapes() {
    let shapes = [
        ConvShape::square(64, 56, 128, 1, 1, 0, 1),
        ConvShape::square(300, 14, 40, 1, 1, 0, 1),
        ConvShape::square(520, 7, 64, 1, 1, 0, 1),
        ConvShape::square(600, 28, 20, 1, 1, 0, 1),
        ConvShape::square(1100, 7, 12, 1, 1, 0, 1),
        ConvShape::square(256, 28, 24, 1, 2, 0, 1),
        ConvShape::square(96, 14, 200, 1, 2, 0, 1),
    ];
    for s in shapes {
        for threads in [1, 2] {
            assert_ok(check_case(ConvAlgo::Pointwise, &Case::fused(s, threads)));
        }
    }
}

/// Pointwise convs with panels of fewer than 4 rows (1–3 output channels, or 17 split into row
/// chunks on 2–3 threads, the last chunk a 1-row panel) and both full and ragged 48-column tiles
/// (9×9 = 81 columns): the micro-kernels' narrow-row paths beside the full ones.
#[test]
fn pointwise_few_output_channels() {
    for out_c in [1, 2, 3, 17] {
        for threads in [1, 2, 3] {
            let s = ConvShape::square(20, 9, out_c, 1, 1, 0, 1);
            assert_ok(check_case(ConvAlgo::Pointwise, &Case::fused(s, threads)));
        }
    }
}

/// Ragged ends of 1–4 columns (7×7 = 48 + 1, 10×10 = 96 + 4, 1×1 and 5×10 as shapes below one
/// tile) with panels of 1–8 rows, k within one block and beyond it (700 > 512): the compact B rows
/// of the narrow kernel, packed per task at 1 thread and up front when 2 or 3 threads split the
/// rows; and the same ends through im2col (a padded 3×3 over 7×7).
#[test]
fn narrow_column_tiles() {
    let maps = [(7, 7), (10, 10), (1, 1), (5, 10)];
    for (h, w) in maps {
        for (in_c, out_c) in [(20, 1), (20, 2), (33, 3), (20, 8), (700, 10), (64, 200)] {
            for threads in [1, 2, 3] {
                let mut s = ConvShape::square(in_c, 1, out_c, 1, 1, 0, 1);
                (s.in_h, s.in_w, s.out_h, s.out_w) = (h, w, h, w);
                assert_ok(check_case(ConvAlgo::Pointwise, &Case::fused(s, threads)));
            }
        }
    }
    for threads in [1, 2] {
        let s = ConvShape::square(24, 7, 40, 3, 1, 1, 1);
        assert_ok(check_case(ConvAlgo::Im2col, &Case::fused(s, threads)));
    }
}

/// The 7×7/2 stem (on a smaller image) and a dense 3×3 with padding.
#[test]
fn stem_and_dense_3x3() {
    for s in [
        ConvShape::square(3, 40, 64, 7, 2, 3, 1),
        ConvShape::square(16, 15, 24, 3, 1, 1, 1),
    ] {
        assert_ok(check_case(ConvAlgo::select(&s), &Case::fused(s, 2)));
        assert_ok(check_case(ConvAlgo::Im2col, &Case::fused(s, 2)));
        assert_eq!(ConvAlgo::select(&s), ConvAlgo::ImplicitGemm);
    }
    // The real stems run tiled by output row; narrow maps and large weights by the flattened
    // im2col (which `im2col_matches_reference` covers with its small maps).
    assert!(conv::im2col_by_rows(&ConvShape::square(
        3, 224, 64, 7, 2, 3, 1
    )));
    assert!(conv::im2col_by_rows(&ConvShape::square(
        3, 224, 32, 3, 2, 1, 1
    )));
    assert!(!conv::im2col_by_rows(&ConvShape::square(
        64, 7, 64, 3, 1, 1, 1
    )));
    // Stride 1 (ResNet-50's stage-1 3×3 convs): the flattened im2col's tiles span output rows.
    assert!(!conv::im2col_by_rows(&ConvShape::square(
        64, 56, 64, 3, 1, 1, 1
    )));
    assert!(!conv::im2col_by_rows(&ConvShape::square(
        256, 14, 256, 3, 1, 1, 1
    )));
}

#[test]
fn select_picks_the_specialised_kernels() {
    let expected = [
        (
            ConvShape::square(256, 56, 64, 1, 1, 0, 1),
            ConvAlgo::Pointwise,
        ),
        (
            ConvShape::square(512, 28, 1024, 1, 2, 0, 1),
            ConvAlgo::Pointwise,
        ),
        (
            ConvShape::square(128, 56, 128, 3, 1, 1, 32),
            ConvAlgo::Grouped,
        ),
        (
            ConvShape::square(96, 28, 96, 3, 2, 1, 96),
            ConvAlgo::Depthwise,
        ),
        (
            ConvShape::square(3, 224, 64, 7, 2, 3, 1),
            ConvAlgo::ImplicitGemm,
        ),
        (
            ConvShape::square(512, 7, 512, 3, 1, 1, 1),
            ConvAlgo::ImplicitGemm,
        ),
        (ConvShape::square(3, 224, 32, 3, 2, 1, 1), ConvAlgo::Im2col),
    ];
    for (s, algo) in expected {
        assert_eq!(ConvAlgo::select(&s), algo, "{s:?}");
    }
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let s = ConvShape::square(16, 9, 24, 1, 1, 0, 1);
    let w = common::values(1, s.weight_len());
    assert!(matches!(
        conv::pack(ConvAlgo::Pointwise, &s, &w[1..]),
        Err(KernelError::Length { .. })
    ));
    assert!(
        conv::pack(
            ConvAlgo::Pointwise,
            &ConvShape::square(16, 9, 24, 3, 1, 1, 1),
            &w
        )
        .is_err()
    );
    let packed = conv::pack(ConvAlgo::Pointwise, &s, &w).unwrap();
    let threads = Threads::new(2);
    let input = common::values(2, s.input_len());
    let mut out = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(ConvAlgo::Pointwise, &s, 1, 2)];
    let ep = Epilogue::default();
    let run =
        |input: &[f32], packed: &[f32], out: &mut [f32], scratch: &mut [f32], ep: &Epilogue| {
            let args = ConvArgs {
                shape: s,
                batch: 1,
                input,
                packed,
                epilogue: *ep,
                output: out,
                scratch,
            };
            conv::conv2d(&Ctx::new(&threads), ConvAlgo::Pointwise, args)
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
    assert!(dense::pack(10, 5, &w[..49]).is_err());
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
        assert_ok(check_case(ConvAlgo::Im2col, &Case::fused(s, threads)));
    }
}
