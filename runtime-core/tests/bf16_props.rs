//! Property tests of the bf16 kernels (the GEMM of `ConvAlgo::PointwiseBf16` and
//! `dense::run_bf16`, and the direct conv of `ConvAlgo::DirectBf16`) on every ISA tier this CPU
//! has (the AVX-512 tier runs `vdpbf16ps` where the CPU has AVX512_BF16, the others widen the bf16
//! operands to fp32), random odd shapes, thread counts and fused epilogues.
//!
//! Two oracles, both the f64 reference kernels:
//!
//! (a) On the operands rounded to bf16 by this file's own [`round`] (ties to even, subnormals to
//! zero, as `vcvtne2ps2bf16`): the kernel computes the same products `x̃·w̃`, each exact in f32
//! (two 8-bit significands give at most 16 bits), and differs from the reference only in how it
//! sums them in f32. That is the fp32 GEMM's situation, so the bound is `common`'s:
//! `(k + 4) · u · (Σ|x̃·w̃| + |bias| + |residual|)` (the same Lipschitz scaling for the
//! activations), with `k` the products per output and `u = 2⁻²⁴`.
//!
//! (b) On the exact fp32 operands: bf16 keeps 8 significant bits, so rounding to nearest has
//! relative error `|δ| ≤ 2⁻⁹` (the operands here are multiples of 2⁻²³ in [-1, 1), never subnormal,
//! where the flush to zero would be an absolute error instead). Then `x̃·w̃ = x·w·(1 + δ₁)(1 + δ₂)`
//! with `|(1 + δ₁)(1 + δ₂) − 1| ≤ 2·2⁻⁹ + 2⁻¹⁸`, so `|Σx̃·w̃ − Σx·w| ≤ (2⁻⁸ + 2⁻¹⁸) · Σ|x·w|`; the
//! f32 summation adds at most `(k + 4) · u · Σ|x̃·w̃| ≤ (k + 4) · u · (1 + 2⁻⁸ + 2⁻¹⁸) · Σ|x·w|`
//! (as in (a)). Both together are below `(2·2⁻⁸ + (k + 4)·u) · Σ|x·w|` whenever
//! `(k + 4)·u·(2⁻⁸ + 2⁻¹⁸) ≤ 2⁻⁸ − 2⁻¹⁸`, i.e. for any `k` below ~2²⁴. The bias and residual
//! are not rounded (fp32 epilogue), so the same factor applied to the whole error scale of
//! `common` (which includes them) only loosens their part.

mod common;

use common::{Operands, Setting, U, assert_ok, check_tiers, check_tiers_exact, out_size, setting};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue, reference};

/// `x` rounded to bf16, computed independently of the kernels: the two bf16 neighbours by
/// truncation, the nearer by f64 distance, ties to the even one; NaN stays NaN, subnormals (and
/// zeros) become a zero of their sign, and a value past the largest bf16 by half a step or more
/// becomes infinite.
fn round(x: f32) -> f32 {
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    if x.abs() < f32::MIN_POSITIVE {
        return 0.0f32.copysign(x);
    }
    let down = f32::from_bits(x.to_bits() & 0xffff_0000);
    let up_bits = (x.to_bits() & 0xffff_0000) + 0x1_0000;
    let up = f32::from_bits(up_bits);
    // Past the largest bf16 the next step up is 2¹²⁸, which f32 calls infinity.
    let up64 = if up.is_infinite() {
        2f64.powi(128).copysign(f64::from(x))
    } else {
        f64::from(up)
    };
    let (dd, du) = (
        (f64::from(x) - f64::from(down)).abs(),
        (up64 - f64::from(x)).abs(),
    );
    if dd < du || (dd == du && (down.to_bits() >> 16) & 1 == 0) {
        down
    } else {
        up
    }
}

/// The error bound of oracle (b) for `k` products and error scale `magnitude`.
fn tolerance_fp32(k: usize, magnitude: f32) -> f32 {
    (2.0 * 2f32.powi(-8) + (k as f32 + 4.0) * U) * magnitude
}

/// The error bound of oracle (a).
fn tolerance_rounded(k: usize, magnitude: f32) -> f32 {
    (k as f32 + 4.0) * U * magnitude
}

/// The operands of a call with input and weight rounded by [`round`] (bias and residual as they are).
fn rounded(ops: &Operands) -> Operands {
    Operands {
        input: ops.input.iter().map(|&x| round(x)).collect(),
        weight: ops.weight.iter().map(|&x| round(x)).collect(),
        bias: ops.bias.clone(),
        residual: ops.residual.clone(),
        setting: ops.setting,
    }
}

/// Runs the bf16 pointwise conv on every tier against both oracles.
fn check_pointwise(s: ConvShape, setting: Setting) -> Result<(), TestCaseError> {
    check_conv(ConvAlgo::PointwiseBf16, s, setting)
}

/// Runs a bf16 conv algorithm on every tier against both oracles.
fn check_conv(algo: ConvAlgo, s: ConvShape, setting: Setting) -> Result<(), TestCaseError> {
    prop_assert!(algo.supports(&s), "{algo:?} should support {s:?}");
    let batch = setting.batch;
    let lens = [
        batch * s.input_len(),
        s.weight_len(),
        s.out_c,
        batch * s.output_len(),
    ];
    let ops = Operands::new(lens, setting);
    let packed = conv::pack(algo, &s, &ops.weight).expect("pack");
    prop_assert_eq!(packed.len(), conv::packed_len(algo, &s));
    let k = s.in_c / s.group * s.kernel[0] * s.kernel[1];
    let threads = Threads::new(setting.threads);
    let ep = ops.epilogue();
    let run = |isa, out: &mut [f32]| {
        let mut scratch = vec![f32::NAN; conv::scratch_len(algo, &s, batch, threads.count())];
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
    };
    let conv_ref = |x: &[f32], w: &[f32], e: &Epilogue, out: &mut [f32]| {
        reference::conv2d(&s, batch, x, w, e, out)
    };
    let out_len = batch * s.output_len();
    let (want, magnitude) = rounded(&ops).reference(out_len, conv_ref);
    check_tiers(
        &format!("{algo:?} vs rounded reference, {s:?} {setting:?}"),
        &want,
        |i| tolerance_rounded(k, magnitude[i]),
        run,
    )?;
    let (want, magnitude) = ops.reference(out_len, conv_ref);
    check_tiers(
        &format!("{algo:?} vs fp32 reference, {s:?} {setting:?}"),
        &want,
        |i| tolerance_fp32(k, magnitude[i]),
        run,
    )
}

/// Runs the bf16 dense layer on every tier against both oracles.
fn check_dense(in_f: usize, out_f: usize, setting: Setting) -> Result<(), TestCaseError> {
    let batch = setting.batch;
    let ops = Operands::new([batch * in_f, out_f * in_f, out_f, batch * out_f], setting);
    let packed = dense::pack_bf16(in_f, out_f, &ops.weight).expect("pack");
    prop_assert_eq!(packed.len(), dense::packed_len_bf16(in_f, out_f));
    let threads = Threads::new(setting.threads);
    let ep = ops.epilogue();
    let run = |isa, out: &mut [f32]| {
        let mut scratch = vec![f32::NAN; dense::scratch_len_bf16(batch, in_f, threads.count())];
        let args = DenseArgs {
            batch,
            in_features: in_f,
            out_features: out_f,
            input: &ops.input,
            packed: &packed,
            epilogue: ep,
            output: out,
            scratch: &mut scratch,
        };
        dense::run_bf16(
            &Ctx {
                isa,
                threads: &threads,
            },
            args,
        )
    };
    let dense_ref = |x: &[f32], w: &[f32], e: &Epilogue, out: &mut [f32]| {
        reference::dense(batch, in_f, out_f, x, w, e, out)
    };
    let (want, magnitude) = rounded(&ops).reference(batch * out_f, dense_ref);
    check_tiers(
        &format!("bf16 dense {in_f}→{out_f} vs rounded reference, {setting:?}"),
        &want,
        |i| tolerance_rounded(in_f, magnitude[i]),
        run,
    )?;
    let (want, magnitude) = ops.reference(batch * out_f, dense_ref);
    check_tiers(
        &format!("bf16 dense {in_f}→{out_f} vs fp32 reference, {setting:?}"),
        &want,
        |i| tolerance_fp32(in_f, magnitude[i]),
        run,
    )
}

/// A 1×1 conv without padding.
fn pointwise(
    in_c: usize,
    out_c: usize,
    h: usize,
    w: usize,
    stride: usize,
    group: usize,
) -> ConvShape {
    ConvShape {
        in_c,
        in_h: h,
        in_w: w,
        out_c,
        out_h: (h - 1) / stride + 1,
        out_w: (w - 1) / stride + 1,
        kernel: [1, 1],
        stride: [stride, stride],
        dilation: [1, 1],
        pads: [0; 4],
        group,
    }
}

prop_compose! {
    /// A conv the direct bf16 kernel takes: 1–4 groups of 2–13 input channels (odd counts leave
    /// a word's high half zero) and 1–9 output channels, kernels 1–7 per axis, strides 1–3,
    /// dilations 1–2, pads up to the kernel's size, odd and even maps.
    fn direct_case()(
        (group, cin_g, cout_g) in (1usize..=4, 2usize..=13, 1usize..=9),
        (kh, kw) in (1usize..=7, 1usize..=7),
        (sy, sx, dy, dx) in (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        pads in [0usize..=7, 0usize..=7, 0usize..=7, 0usize..=7],
        (in_h, in_w) in (1usize..=19, 1usize..=37),
        setting in setting(),
    ) -> Option<(ConvShape, Setting)> {
        let pads = [pads[0] % (kh + 1), pads[1] % (kw + 1), pads[2] % (kh + 1), pads[3] % (kw + 1)];
        let s = ConvShape {
            in_c: group * cin_g,
            in_h,
            in_w,
            out_c: group * cout_g,
            out_h: out_size(in_h, kh, sy, dy, pads[0], pads[2])?,
            out_w: out_size(in_w, kw, sx, dx, pads[1], pads[3])?,
            kernel: [kh, kw],
            stride: [sy, sx],
            dilation: [dy, dx],
            pads,
            group,
        };
        (s.out_h * s.out_w >= 16 && setting.batch * s.macs() <= 2_000_000).then_some((s, setting))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The direct bf16 conv on random kernels, strides, dilations, pads and groups.
    #[test]
    fn direct_matches_reference(case in direct_case()) {
        prop_assume!(case.is_some());
        let (s, setting) = case.unwrap();
        check_conv(ConvAlgo::DirectBf16, s, setting)?;
    }

    /// Odd channel counts (k not a multiple of 2, m ragged against the 8-row panels), spatial
    /// sizes ragged against the 48-column tiles, strides 1–2, groups 1/2.
    #[test]
    fn pointwise_matches_reference(
        (icg, ocg, h, w) in (1usize..=41, 1usize..=21, 1usize..=15, 1usize..=15),
        (stride, group) in (1usize..=2, 1usize..=2),
        setting in setting(),
    ) {
        check_pointwise(pointwise(icg * group, ocg * group, h, w, stride, group), setting)?;
    }

    /// Dense layers with odd and even widths.
    #[test]
    fn dense_matches_reference(
        in_f in 1usize..=130,
        out_f in 1usize..=110,
        setting in setting(),
    ) {
        check_dense(in_f, out_f, setting)?;
    }
}

/// ResNeXt's bottleneck epilogue on a k deep enough for two blocks of K-pairs (`k/2` past the B
/// block's depth), odd, with a ragged last tile, at 1 and 2 threads.
#[test]
fn deep_k_in_two_blocks() {
    for threads in [1, 2] {
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: true,
            activation: Activation::Relu,
            threads,
            seed: 11,
        };
        assert_ok(check_pointwise(pointwise(1201, 19, 20, 21, 1, 1), setting));
    }
}

/// Many output rows (a row split across tasks) over few columns, as ResNeXt-50's 7×7 layers.
#[test]
fn tall_and_narrow() {
    let setting = Setting {
        batch: 2,
        bias: true,
        residual: false,
        activation: Activation::Clip { min: 0.0, max: 6.0 },
        threads: 3,
        seed: 5,
    };
    assert_ok(check_pointwise(pointwise(66, 203, 7, 7, 1, 1), setting));
    assert_ok(check_dense(257, 1001, setting));
}

/// A full tile next to a ragged one of 1–4 columns (which runs over A's rows, from B packed
/// compactly), for panels of 8, 3 and 2 rows, with k odd and, on one thread, deep enough for two
/// blocks of K-pairs (the first panel of each block packing B as it computes).
#[test]
fn ragged_narrow_tiles() {
    for (cols, threads) in [(1, 1), (2, 2), (3, 1), (4, 2)] {
        for out_c in [11, 2] {
            let setting = Setting {
                batch: 1,
                bias: true,
                residual: true,
                activation: Activation::Relu,
                threads,
                seed: 20 + cols as u64,
            };
            assert_ok(check_pointwise(
                pointwise(2051, out_c, 1, 48 + cols, 1, 1),
                setting,
            ));
        }
    }
}

/// Row blocks of 16 and 8 (two packed panels, or one left over) over full and ragged tiles,
/// k a whole number of 32, odd, or ragged against AMX's 16 K-pairs a step, at 1 and 2 threads,
/// and maps of few pixels (AMX with the operands swapped): the shapes the AMX tiles see on the AVX-512 tier of a CPU with AMX-BF16 (and `vdpbf16ps` or the
/// widening kernels elsewhere).
#[test]
fn amx_row_blocks() {
    for (i, &(in_c, out_c, h, w)) in [
        (64, 32, 7, 7),
        (96, 40, 13, 11),
        (33, 24, 28, 28),
        (256, 16, 14, 14),
        (31, 8, 9, 10),
        (130, 72, 5, 20),
        // Maps of at most 256 pixels with k a whole number of 32 (the swapped operands: weight
        // panels in place, pixels transposed): two k blocks, ragged panels, ragged and single
        // pixel blocks.
        (1024, 40, 7, 7),
        (512, 27, 14, 14),
        (64, 8, 1, 3),
        (96, 24, 16, 16),
        (32, 200, 2, 9),
        (2048, 17, 3, 7),
    ]
    .iter()
    .enumerate()
    {
        for threads in [1, 2] {
            let setting = Setting {
                batch: 1,
                bias: true,
                residual: i % 2 == 0,
                activation: Activation::Relu,
                threads,
                seed: 40 + i as u64,
            };
            assert_ok(check_pointwise(pointwise(in_c, out_c, h, w, 1, 1), setting));
        }
    }
}

/// The paths this CPU has besides its default one (AMX, `vdpbf16ps`, widening; see
/// `gemm::bf16::dot_enabled`), each tested too: this test binary again, every test but this one,
/// with `RESNEXT_BF16=dot` (where `vdpbf16ps` is supported) and `RESNEXT_BF16=widen`.
#[test]
fn every_bf16_path() {
    use resnext_runtime_core::kernels::gemm::bf16;
    if std::env::var_os("RESNEXT_BF16").is_some() {
        return;
    }
    let mut forced = vec!["widen"];
    if bf16::dot_supported() {
        forced.push("dot");
    }
    for f in forced {
        common::rerun_with("RESNEXT_BF16", f, "every_bf16_path");
    }
}

/// Rounding of the activations while packing, bit for bit on every tier: a 1×1 conv with one
/// input channel and weight 1 outputs each input rounded to bf16 (exact in f32), for ties, carries
/// into the exponent, the largest floats (rounding to infinity), subnormals (flushed), NaN.
#[test]
fn packing_rounds_to_nearest_even() {
    let mut input: Vec<f32> = vec![
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        -(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
        1.0 + 2f32.powi(-7) - 2f32.powi(-23),
        2.0 - 2f32.powi(-23),
        f32::MAX,
        -f32::MAX,
        3.38e38,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
    ];
    input.extend(common::values(3, 83).iter().map(|v| v * 1e3));
    let s = pointwise(1, 1, 1, input.len(), 1, 1);
    let packed = conv::pack(ConvAlgo::PointwiseBf16, &s, &[1.0]).unwrap();
    // `round(x)·1 + 0` in f32 is `round(x)` (a negative zero comes out positive, equal to it).
    let want: Vec<f32> = input.iter().map(|&x| round(x)).collect();
    let threads = Threads::new(1);
    assert_ok(check_tiers_exact(
        "bf16 rounding of activations",
        &want,
        |isa, out| {
            let mut scratch = vec![0.0; conv::scratch_len(ConvAlgo::PointwiseBf16, &s, 1, 1)];
            let args = ConvArgs {
                shape: s,
                batch: 1,
                input: &input,
                packed: &packed,
                epilogue: Epilogue::default(),
                output: out,
                scratch: &mut scratch,
            };
            conv::conv2d(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                ConvAlgo::PointwiseBf16,
                args,
            )
        },
    ));
}

/// A NaN weight or activation reaches the outputs it feeds.
#[test]
fn nan_propagates() {
    let s = pointwise(3, 2, 2, 2, 1, 1);
    let mut w = common::values(1, 6);
    w[4] = f32::NAN;
    let packed = conv::pack(ConvAlgo::PointwiseBf16, &s, &w).unwrap();
    let mut input = common::values(2, 12);
    input[1] = f32::NAN;
    let threads = Threads::new(1);
    for isa in common::tiers() {
        let mut out = vec![0.0; 8];
        let mut scratch = vec![0.0; conv::scratch_len(ConvAlgo::PointwiseBf16, &s, 1, 1)];
        let args = ConvArgs {
            shape: s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: Epilogue::default(),
            output: &mut out,
            scratch: &mut scratch,
        };
        conv::conv2d(
            &Ctx {
                isa,
                threads: &threads,
            },
            ConvAlgo::PointwiseBf16,
            args,
        )
        .unwrap();
        // Output channel 1 (weights 3..6) is NaN everywhere; channel 0 at pixel 1 only.
        let nan: Vec<bool> = out.iter().map(|v| v.is_nan()).collect();
        assert_eq!(
            nan,
            [false, true, false, false, true, true, true, true],
            "{}: {out:?}",
            isa.name()
        );
    }
}

/// The AVX-512 tier's bf16 path is `vdpbf16ps` only where the CPU has AVX512_BF16; this test says
/// (as ignored) when the build host lacks it, so that path went untested.
#[test]
#[cfg_attr(not(host_avx512bf16), ignore = "CPU lacks AVX512_BF16")]
fn avx512_bf16_tier_is_tested() {
    assert!(resnext_runtime_core::kernels::gemm::bf16::dot_supported());
    assert!(common::tiers().contains(&resnext_runtime_core::exec::isa::Isa::Avx512));
}

/// Wrong lengths are errors, not panics.
#[test]
fn bad_lengths_are_errors() {
    assert!(dense::pack_bf16(10, 5, &[0.0; 49]).is_err());
    let s = pointwise(4, 4, 3, 3, 1, 1);
    assert!(conv::pack(ConvAlgo::PointwiseBf16, &s, &[0.0; 15]).is_err());
    let packed = conv::pack(ConvAlgo::PointwiseBf16, &s, &[0.5; 16]).unwrap();
    let threads = Threads::new(1);
    let mut out = vec![0.0; 36];
    let args = ConvArgs {
        shape: s,
        batch: 1,
        input: &[0.0; 36],
        packed: &packed,
        epilogue: Epilogue::default(),
        output: &mut out,
        scratch: &mut [],
    };
    assert!(conv::conv2d(&Ctx::new(&threads), ConvAlgo::PointwiseBf16, args).is_err());
}

/// Grouped convs and stems (on a CPU with AMX-BF16 the AMX tiles in steps of 2, 4 or 8 words,
/// several steps a tap, tiles of fewer channels than their 16 rows): ResNeXt's groups of 4 and 8
/// channels, 24 and 48 channels a group, the 7×7/2 stem on 3 channels.
#[test]
fn direct_amx_short_steps() {
    for (i, &(group, icg, ocg, size, k, stride)) in [
        (32, 4, 4, 12, 3, 1),
        (32, 8, 8, 9, 3, 1),
        (2, 24, 20, 9, 3, 1),
        (1, 48, 40, 8, 3, 2),
        (1, 3, 16, 29, 7, 2),
    ]
    .iter()
    .enumerate()
    {
        let pad = k / 2;
        let out = (size + 2 * pad - k) / stride + 1;
        let s = ConvShape {
            in_c: group * icg,
            in_h: size,
            in_w: size,
            out_c: group * ocg,
            out_h: out,
            out_w: out,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            group,
        };
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: i % 2 == 0,
            activation: Activation::Relu,
            threads: 1 + i % 2,
            seed: 80 + i as u64,
        };
        assert_ok(check_conv(ConvAlgo::DirectBf16, s, setting));
    }
}

/// Dense convs over multiples of 32 input channels (on a CPU with AMX-BF16 the AMX tiles: 32
/// channels × 2 vectors, ragged channel blocks, a lone last vector, one k step and more, 3×3,
/// 5×5 and 7×7, strides 1 and 2, dilation 2), with and without bias, residual and activation.
#[test]
fn direct_multiples_of_32_channels() {
    for (i, &(in_c, out_c, size, k, stride, dilation)) in [
        (32, 40, 9, 3, 1, 1),
        (64, 33, 12, 3, 2, 1),
        (32, 24, 11, 5, 1, 1),
        (96, 64, 7, 3, 1, 1),
        (64, 17, 20, 7, 2, 1),
        (512, 48, 7, 3, 1, 1),
        (32, 16, 13, 3, 1, 2),
    ]
    .iter()
    .enumerate()
    {
        let pad = dilation * (k / 2);
        let out = (size + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
        let s = ConvShape {
            in_c,
            in_h: size,
            in_w: size,
            out_c,
            out_h: out,
            out_w: out,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [dilation, dilation],
            pads: [pad; 4],
            group: 1,
        };
        for threads in [1, 2] {
            let setting = Setting {
                batch: 1 + i % 2,
                bias: i % 3 != 0,
                residual: i % 2 == 0,
                activation: if i % 2 == 0 {
                    Activation::Relu
                } else {
                    Activation::None
                },
                threads,
                seed: 60 + i as u64,
            };
            assert_ok(check_conv(ConvAlgo::DirectBf16, s, setting));
        }
    }
}

/// The direct bf16 conv on ResNeXt-50's shapes, scaled down: a grouped 3×3 stride-2 conv of 4
/// channels a group with a residual (two groups meet inside a 4-channel register tile), a grouped
/// one of 32 channels a group on a 7×7 map, and the 7×7/2 stem on 3 channels.
#[test]
fn direct_resnext_shapes() {
    let conv = |in_c, out_c, size: usize, k: usize, stride: usize, group| {
        let pad = k / 2;
        ConvShape {
            in_c,
            in_h: size,
            in_w: size,
            out_c,
            out_h: (size + 2 * pad - k) / stride + 1,
            out_w: (size + 2 * pad - k) / stride + 1,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            group,
        }
    };
    for (s, threads) in [
        (conv(64, 64, 23, 3, 2, 16), 2),
        (conv(256, 256, 7, 3, 1, 8), 1),
        (conv(3, 16, 45, 7, 2, 1), 2),
    ] {
        let setting = Setting {
            batch: 2,
            bias: true,
            residual: true,
            activation: Activation::Relu,
            threads,
            seed: 31,
        };
        assert_ok(check_conv(ConvAlgo::DirectBf16, s, setting));
    }
}

/// The direct bf16 conv refuses what it cannot run: one input channel a group (depthwise), fewer
/// than 16 output pixels, and short buffers.
#[test]
fn direct_refuses_bad_calls() {
    let s = ConvShape {
        in_c: 4,
        in_h: 5,
        in_w: 5,
        out_c: 4,
        out_h: 5,
        out_w: 5,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [1; 4],
        group: 1,
    };
    let algo = ConvAlgo::DirectBf16;
    assert!(algo.supports(&s));
    assert!(!algo.supports(&ConvShape {
        group: 4,
        out_c: 4,
        ..s
    }));
    let tiny = ConvShape {
        in_h: 3,
        in_w: 3,
        out_h: 3,
        out_w: 3,
        ..s
    };
    assert!(!algo.supports(&tiny));
    assert!(conv::pack(algo, &tiny, &[0.0; 144]).is_err());
    let packed = conv::pack(algo, &s, &[0.5; 144]).unwrap();
    let threads = Threads::new(1);
    let input = vec![1.0; s.input_len()];
    let mut output = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(algo, &s, 1, 1) - 1];
    let args = ConvArgs {
        shape: s,
        batch: 1,
        input: &input,
        packed: &packed,
        epilogue: Epilogue::default(),
        output: &mut output,
        scratch: &mut scratch,
    };
    assert!(conv::conv2d(&Ctx::new(&threads), algo, args).is_err());
}
