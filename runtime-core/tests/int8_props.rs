//! Property tests of the int8 conv (`kernels::int8`) against `reference::qconv2d` on every ISA tier
//! this CPU supports (the AVX-512 tier runs the VNNI kernel where the CPU has it): random shapes
//! (odd sizes, padding, strides, dilations, groups), thread counts, per-channel multipliers, zero points at
//! the ends of the u8 range, both output rules. The results are integers requantized by the same
//! f32 steps, so they must agree bit for bit.

mod common;

use common::{out_size, same, tiers, values};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::int8::{
    self, Codes, QConvArgs, QConvParams, QOutput, Quant, SumArith,
};
use resnext_runtime_core::kernels::{ConvShape, reference};

#[derive(Clone, Debug)]
struct QCase {
    shape: ConvShape,
    batch: usize,
    threads: usize,
    input_zero_point: i32,
    output: QOutput,
    seed: u64,
}

fn zero_point() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(255), Just(128), 0i32..=255]
}

fn case() -> impl Strategy<Value = QCase> {
    (
        (1usize..=24, 1usize..=24, 1usize..=9, 1usize..=9, 0usize..=3),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2, 0usize..=2),
        (
            1usize..=2,
            1usize..=3,
            zero_point(),
            zero_point(),
            any::<u64>(),
        ),
        prop_oneof![Just(0u8), Just(1), Just(2)],
    )
        .prop_filter_map(
            "kernel larger than the padded input",
            |(
                (icg, ocg, h, w, groups_log),
                (kh, kw, stride, dilation, pad),
                (batch, threads, izp, ozp, seed),
                mode,
            )| {
                let out_h = out_size(h, kh, stride, dilation, pad, pad)?;
                let out_w = out_size(w, kw, stride, dilation, pad, pad)?;
                let group = [1, 2, 3, 8][groups_log];
                let (in_c, out_c) = (icg * group, ocg * group);
                let shape = ConvShape {
                    in_c,
                    in_h: h,
                    in_w: w,
                    out_c,
                    out_h,
                    out_w,
                    kernel: [kh, kw],
                    stride: [stride; 2],
                    dilation: [dilation; 2],
                    pads: [pad; 4],
                    group,
                };
                let output = match mode {
                    0 => QOutput::Float { relu: false },
                    1 => QOutput::Float { relu: true },
                    _ => QOutput::Requant {
                        quant: Quant {
                            scale: 0.037,
                            zero_point: ozp,
                        },
                        // A fused ReLU clamps at the zero point.
                        min: if seed % 2 == 0 { 0 } else { ozp },
                        max: 255,
                    },
                };
                Some(QCase {
                    shape,
                    batch,
                    threads,
                    input_zero_point: izp,
                    output,
                    seed,
                })
            },
        )
}

fn check(c: &QCase) -> Result<(), TestCaseError> {
    check_with(c, false)
}

/// `v`, or where `non_finite` NaN, +∞ or −∞ for three indices in seven.
fn poke(non_finite: bool, i: usize, v: f32) -> f32 {
    match i % 7 {
        _ if !non_finite => v,
        0 => f32::NAN,
        1 => f32::INFINITY,
        2 => f32::NEG_INFINITY,
        _ => v,
    }
}

/// A case's operands: the input (with NaN and ±infinity where `non_finite`), its quantization,
/// the i8 weights, the i32 bias and the multipliers.
struct Operands {
    input: Vec<f32>,
    in_quant: Quant,
    weight: Vec<i8>,
    bias: Vec<i32>,
    multiplier: Vec<f32>,
}

impl Operands {
    fn params(&self) -> QConvParams<'_> {
        QConvParams {
            weight: &self.weight,
            bias: &self.bias,
            multiplier: &self.multiplier,
        }
    }
}

fn operands(c: &QCase, non_finite: bool) -> Operands {
    let s = c.shape;
    let k = s.in_c / s.group * s.kernel[0] * s.kernel[1];
    let in_quant = Quant {
        scale: 0.02,
        zero_point: c.input_zero_point,
    };
    // Inputs spanning beyond the u8 range on both sides, so quantization clamps too.
    let poke = |i: usize, v: f32| poke(non_finite, i, v);
    let input: Vec<f32> = values(c.seed, c.batch * s.input_len())
        .iter()
        .enumerate()
        .map(|(i, v)| poke(i, v * 4.0))
        .collect();
    // Weights over all of i8, the extremes included.
    let weight: Vec<i8> = values(c.seed ^ 1, s.out_c * k)
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 17 {
            0 => -128,
            1 => 127,
            _ => (v * 128.0) as i8,
        })
        .collect();
    let bias: Vec<i32> = values(c.seed ^ 2, s.out_c)
        .iter()
        .map(|v| (v * 5000.0) as i32)
        .collect();
    let scale = if matches!(c.output, QOutput::Requant { .. }) {
        1e-3
    } else {
        1e-4
    };
    let multiplier: Vec<f32> = values(c.seed ^ 3, s.out_c)
        .iter()
        .map(|v| scale * (1.5 + v))
        .collect();
    Operands {
        input,
        in_quant,
        weight,
        bias,
        multiplier,
    }
}

/// [`check`], with NaN and ±infinity among the inputs and the residual inputs where `non_finite`.
fn check_with(c: &QCase, non_finite: bool) -> Result<(), TestCaseError> {
    let s = c.shape;
    let ops = operands(c, non_finite);
    let (input, in_quant, params) = (&ops.input, ops.in_quant, ops.params());
    // The residual's values are poked like the input's.
    let poke = |i: usize, v: f32| poke(non_finite, i, v);
    let mut want = vec![f32::NAN; c.batch * s.output_len()];
    reference::qconv2d(&s, c.batch, input, in_quant, params, c.output, &mut want).unwrap();
    // A NaN input quantizes to the low end of the range, ±inf clamp: the conv stays finite.
    prop_assert!(want.iter().all(|v| v.is_finite()));
    // Every third case adds a residual input and quantize-dequantizes the sum (a QDQ model's
    // residual Add fused into the conv); the oracle is the unfused composition, by
    // `Quant::quantize` and `Quant::dequantize`.
    let sum_quant = Quant {
        scale: 0.05,
        zero_point: (c.seed % 256) as i32,
    };
    let sum_min = if c.seed.is_multiple_of(2) {
        0
    } else {
        sum_quant.zero_point
    };
    let residual_input: Vec<f32> = values(c.seed ^ 4, want.len())
        .iter()
        .enumerate()
        .map(|(i, v)| poke(i + 3, v * 3.0))
        .collect();
    let residual = c.seed.is_multiple_of(3).then(|| int8::Residual {
        input: &residual_input,
        quant: sum_quant,
        min: sum_min,
        max: 255,
        arith: SumArith::Onnx,
    });
    // The conv's values before the residual step.
    let base = want.clone();
    if residual.is_some() {
        for (y, &r) in want.iter_mut().zip(&residual_input) {
            let q = sum_quant.quantize(*y + r).clamp(sum_min as u8, 255);
            *y = sum_quant.dequantize(q);
        }
    }
    let packed = int8::pack(&s, c.input_zero_point, params).unwrap();
    prop_assert_eq!(packed.len(), int8::packed_len(&s));
    let threads = Threads::new(c.threads);
    for isa in tiers() {
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        let mut got = vec![f32::NAN; want.len()];
        let mut scratch = vec![f32::NAN; int8::scratch_len(&s, c.batch, c.threads)];
        let args = QConvArgs {
            shape: s,
            batch: c.batch,
            input,
            input_quant: in_quant,
            packed: &packed,
            out: c.output,
            residual,
            output: &mut got,
            scratch: &mut scratch,
            codes: Codes::default(),
        };
        int8::qconv2d(&ctx, args).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert!(
                same(*g, *w),
                "{}: element {i}: got {g}, want {w}",
                isa.name()
            );
        }
        // The same conv on u8 codes: the input and any residual input given as `Quant::quantize`'s
        // codes, and the output, where it is requantized or has a residual step, written as
        // codes, which must be the reference's values quantized back (exact: whole steps). The
        // residual's values are then those of its codes.
        let to_codes = |values: &[f32], quant: Quant| {
            let mut codes = vec![0f32; values.len()];
            for (b, &x) in bytemuck::cast_slice_mut::<f32, u8>(&mut codes)
                .iter_mut()
                .zip(values)
            {
                *b = quant.quantize(x);
            }
            codes
        };
        let input_codes = to_codes(input, in_quant);
        let r_quant = Quant {
            scale: 0.03,
            zero_point: 77,
        };
        let residual_codes = to_codes(&residual_input, r_quant);
        let (want_values, out_quant): (Vec<f32>, Option<Quant>) = match (c.output, residual) {
            (_, Some(_)) => {
                let r_bytes: &[u8] = bytemuck::cast_slice(&residual_codes);
                let values = base
                    .iter()
                    .zip(r_bytes)
                    .map(|(&y, &r)| {
                        let q = sum_quant
                            .quantize(y + r_quant.dequantize(r))
                            .clamp(sum_min as u8, 255);
                        sum_quant.dequantize(q)
                    })
                    .collect();
                (values, Some(sum_quant))
            }
            (QOutput::Requant { quant, .. }, None) => (want.clone(), Some(quant)),
            (QOutput::Float { .. }, None) => (want.clone(), None),
        };
        let mut got = vec![f32::NAN; want.len()];
        let mut scratch = vec![f32::NAN; int8::scratch_len(&s, c.batch, c.threads)];
        let args = QConvArgs {
            shape: s,
            batch: c.batch,
            input: &input_codes,
            input_quant: in_quant,
            packed: &packed,
            out: c.output,
            residual: residual.map(|r| int8::Residual {
                input: &residual_codes,
                ..r
            }),
            output: &mut got,
            scratch: &mut scratch,
            codes: Codes {
                input: true,
                output: out_quant.is_some(),
                residual: residual.map(|_| r_quant),
            },
        };
        int8::qconv2d(&ctx, args).unwrap();
        match out_quant {
            Some(quant) => {
                let got: &[u8] = bytemuck::cast_slice(&got);
                for (i, (&g, &w)) in got.iter().zip(&want_values).enumerate() {
                    let w = quant.quantize(w);
                    prop_assert_eq!(g, w, "{}: codes, element {}", isa.name(), i);
                }
            }
            None => {
                for (i, (g, w)) in got.iter().zip(&want_values).enumerate() {
                    prop_assert!(
                        same(*g, *w),
                        "{}: code input, element {i}: got {g}, want {w}",
                        isa.name()
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn qconv_matches_reference(c in case()) {
        check(&c)?;
    }
}
/// onnxruntime's `QLinearAdd` on the operands' codes `a` (the Add's first input) and `b`, by this
/// file's own arithmetic: each fused multiply-add in f64 (exact: a u8 or small integer times an
/// f32 fits its significand) rounded once to f32, then to the nearest code, ties to even.
fn ort_sum(a: u8, qa: Quant, b: u8, qb: Quant, qc: Quant) -> f64 {
    let f32_of = |x: f64| f64::from(x as f32);
    let ra = f32_of(f64::from(qa.scale) / f64::from(qc.scale));
    let rb = f32_of(f64::from(qb.scale) / f64::from(qc.scale));
    let fixed = f32_of(
        f64::from(qc.zero_point)
            - f32_of(ra * f64::from(qa.zero_point) + f32_of(rb * f64::from(qb.zero_point))),
    );
    f32_of(f64::from(a) * ra + f32_of(f64::from(b) * rb + fixed)).round_ties_even()
}

/// A requantizing conv with onnxruntime's residual arithmetic (`SumArith::OnnxRuntime`), the
/// conv's output first or second in the Add, the residual given as values and as codes, on every
/// tier, against [`ort_sum`] on the reference conv's codes.
fn check_ort_sum(c: &QCase) -> Result<(), TestCaseError> {
    let QOutput::Requant {
        quant: conv_quant, ..
    } = c.output
    else {
        return Ok(());
    };
    let s = c.shape;
    let ops = operands(c, false);
    let mut base = vec![f32::NAN; c.batch * s.output_len()];
    reference::qconv2d(
        &s,
        c.batch,
        &ops.input,
        ops.in_quant,
        ops.params(),
        c.output,
        &mut base,
    )
    .unwrap();
    let r_quant = Quant {
        scale: 0.021 + (c.seed % 7) as f32 * 0.013,
        zero_point: (c.seed % 256 * 37 % 256) as i32,
    };
    let sum_quant = Quant {
        scale: 0.031 + (c.seed % 5) as f32 * 0.011,
        zero_point: (c.seed % 256 * 91 % 256) as i32,
    };
    let sum_min = if c.seed.is_multiple_of(2) {
        0
    } else {
        sum_quant.zero_point
    };
    let conv_first = c.seed % 4 < 2;
    let r_codes: Vec<u8> = values(c.seed ^ 9, base.len())
        .iter()
        .map(|v| ((v + 1.0) * 127.9) as u8)
        .collect();
    let r_values: Vec<f32> = r_codes.iter().map(|&q| r_quant.dequantize(q)).collect();
    let want: Vec<f32> = base
        .iter()
        .zip(&r_codes)
        .map(|(&y, &r)| {
            let y = conv_quant.quantize(y);
            let code = if conv_first {
                ort_sum(y, conv_quant, r, r_quant, sum_quant)
            } else {
                ort_sum(r, r_quant, y, conv_quant, sum_quant)
            };
            sum_quant.dequantize(code.clamp(f64::from(sum_min), 255.0) as u8)
        })
        .collect();
    let packed = int8::pack(&s, c.input_zero_point, ops.params()).unwrap();
    // Codes in the first bytes of a buffer as long as the values (as the runtime lays them out).
    let mut r_bytes = vec![0f32; r_codes.len()];
    bytemuck::cast_slice_mut::<f32, u8>(&mut r_bytes)[..r_codes.len()].copy_from_slice(&r_codes);
    let threads = Threads::new(c.threads);
    for isa in tiers() {
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        for as_codes in [false, true] {
            let mut got = vec![f32::NAN; want.len()];
            let mut scratch = vec![f32::NAN; int8::scratch_len(&s, c.batch, c.threads)];
            let args = QConvArgs {
                shape: s,
                batch: c.batch,
                input: &ops.input,
                input_quant: ops.in_quant,
                packed: &packed,
                out: c.output,
                residual: Some(int8::Residual {
                    input: if as_codes { &r_bytes } else { &r_values },
                    quant: sum_quant,
                    min: sum_min,
                    max: 255,
                    arith: SumArith::OnnxRuntime {
                        conv: conv_quant,
                        input: r_quant,
                        conv_first,
                    },
                }),
                output: &mut got,
                scratch: &mut scratch,
                codes: Codes {
                    residual: as_codes.then_some(r_quant),
                    ..Codes::default()
                },
            };
            int8::qconv2d(&ctx, args).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!(
                    same(*g, *w),
                    "{} (residual codes: {as_codes}): element {i}: got {g}, want {w}",
                    isa.name()
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// onnxruntime's residual arithmetic on the im2col, direct and depthwise paths.
    #[test]
    fn ort_residual_sum_matches_reference(
        c in prop_oneof![case(), direct_case(), depthwise_case()]
    ) {
        check_ort_sum(&c)?;
    }
}

/// Shapes of the direct path (`int8::direct_applies`: pixels in the lanes): 16 or more output
/// pixels; whole 4-channel blocks per group (1, 2, 4, 8 or 16 groups, any output channels per
/// group, odd ones included) or one group of any channel count; strides and dilations per axis and
/// padding per side, so the phase planes and the dropped columns of the flat output grid are all
/// exercised.
fn direct_case() -> impl Strategy<Value = QCase> {
    (
        (1usize..=4, 1usize..=9, 1usize..=20, 1usize..=20, 0usize..=4),
        (
            [1usize..=3, 1usize..=3],
            [1usize..=3, 1usize..=3],
            [1usize..=2, 1usize..=2],
        ),
        [0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2],
        (
            1usize..=2,
            1usize..=3,
            zero_point(),
            zero_point(),
            any::<u64>(),
        ),
        (prop_oneof![Just(0u8), Just(1), Just(2)], 1usize..=7),
    )
        .prop_filter_map(
            "kernel larger than the padded input",
            |(
                (blocks, ocg, h, w, groups_log),
                (kernel, stride, dilation),
                pads,
                (batch, threads, izp, ozp, seed),
                (mode, odd_c),
            )| {
                let out_h = out_size(h, kernel[0], stride[0], dilation[0], pads[0], pads[2])?;
                let out_w = out_size(w, kernel[1], stride[1], dilation[1], pads[1], pads[3])?;
                // The direct path wants a vector's worth of output pixels.
                if out_h * out_w < 16 {
                    return None;
                }
                let group = [1, 2, 4, 8, 16][groups_log];
                // One group may have any channel count (its last block part zero weights).
                let icg = if group == 1 {
                    odd_c + 4 * (blocks - 1)
                } else {
                    4 * blocks
                };
                let shape = ConvShape {
                    in_c: icg * group,
                    in_h: h,
                    in_w: w,
                    out_c: ocg * group,
                    out_h,
                    out_w,
                    kernel,
                    stride,
                    dilation,
                    pads,
                    group,
                };
                let output = match mode {
                    0 => QOutput::Float { relu: false },
                    1 => QOutput::Float { relu: true },
                    _ => QOutput::Requant {
                        quant: Quant {
                            scale: 0.037,
                            zero_point: ozp,
                        },
                        min: if seed % 2 == 0 { 0 } else { ozp },
                        max: 255,
                    },
                };
                Some(QCase {
                    shape,
                    batch,
                    threads,
                    input_zero_point: izp,
                    output,
                    seed,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn qconv_direct_matches_reference(c in direct_case()) {
        prop_assert!(int8::direct_applies(&c.shape));
        check(&c)?;
    }
}

/// Shapes of the depthwise path (`int8::depthwise_applies`: one channel per group): 2 to 40
/// channels, odd map sizes from 1 (rows up to 70 wide: several 32-input steps of the stride-2
/// quantization), kernels 3, 5 and 7 (and others) per axis, strides 1 and 2 and
/// dilations per axis, padding per side up to 3, so the phase planes, the dropped columns of the flat
/// output grid, vectors spanning rows and the partial last vectors are all exercised; batches 1–3,
/// 1–3 threads (channels grouped into tasks), both output rules and the residual step.
fn depthwise_case() -> impl Strategy<Value = QCase> {
    (
        (
            2usize..=40,
            1usize..=30,
            prop_oneof![3 => 1usize..=30, 1 => 31usize..=70],
        ),
        (
            [
                prop_oneof![Just(3usize), Just(5), Just(7), 1usize..=4],
                prop_oneof![Just(3usize), Just(5), Just(7), 1usize..=4],
            ],
            [1usize..=2, 1usize..=2],
            [
                prop_oneof![3 => Just(1usize), 1 => Just(2)],
                prop_oneof![3 => Just(1usize), 1 => Just(2)],
            ],
        ),
        [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        (
            1usize..=3,
            1usize..=3,
            zero_point(),
            zero_point(),
            any::<u64>(),
        ),
        prop_oneof![Just(0u8), Just(1), Just(2)],
    )
        .prop_filter_map(
            "kernel larger than the padded input",
            |(
                (c, h, w),
                (kernel, stride, dilation),
                pads,
                (batch, threads, izp, ozp, seed),
                mode,
            )| {
                let out_h = out_size(h, kernel[0], stride[0], dilation[0], pads[0], pads[2])?;
                let out_w = out_size(w, kernel[1], stride[1], dilation[1], pads[1], pads[3])?;
                let shape = ConvShape {
                    in_c: c,
                    in_h: h,
                    in_w: w,
                    out_c: c,
                    out_h,
                    out_w,
                    kernel,
                    stride,
                    dilation,
                    pads,
                    group: c,
                };
                let output = match mode {
                    0 => QOutput::Float { relu: false },
                    1 => QOutput::Float { relu: true },
                    _ => QOutput::Requant {
                        quant: Quant {
                            scale: 0.037,
                            zero_point: ozp,
                        },
                        min: if seed % 2 == 0 { 0 } else { ozp },
                        max: 255,
                    },
                };
                Some(QCase {
                    shape,
                    batch,
                    threads,
                    input_zero_point: izp,
                    output,
                    seed,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn qconv_depthwise_matches_reference(c in depthwise_case()) {
        prop_assert!(int8::depthwise_applies(&c.shape));
        prop_assert!(!int8::direct_applies(&c.shape));
        check(&c)?;
    }
}

/// MobileNetV2's depthwise convs (3×3, stride 1 and 2, its map sizes and channel counts, the
/// stride-2 ones padded as onnxruntime's quantizer leaves them) and a 5×5 and 7×7 of other
/// families, with a fused ReLU and a residual step (seed 3 is a multiple of 3).
#[test]
fn depthwise_model_shapes() {
    for (c, hw, kernel, stride, pad) in [
        (32, 112, 3, 1, 1),
        (96, 112, 3, 2, 1),
        (144, 56, 3, 1, 1),
        (192, 28, 3, 2, 1),
        (576, 14, 3, 2, 1),
        (960, 7, 3, 1, 1),
        (40, 28, 5, 1, 2),
        (24, 15, 7, 2, 3),
    ] {
        let shape = ConvShape::square(c, hw, c, kernel, stride, pad, c);
        assert!(int8::depthwise_applies(&shape));
        check(&QCase {
            shape,
            batch: 1,
            threads: 2,
            input_zero_point: 0,
            output: QOutput::Requant {
                quant: Quant {
                    scale: 0.05,
                    zero_point: 0,
                },
                min: 0,
                max: 255,
            },
            seed: 3,
        })
        .unwrap();
    }
}

/// Channel counts ragged against the 16- and 32-channel register blocks and the 64-channel task
/// tiles, pixels against the 8-pixel register tile and the 64-pixel task tiles; ResNeXt's grouped
/// 3×3 (32 groups of 4 channels) and a depthwise conv.
#[test]
fn ragged_blocks() {
    for (in_c, out_c, hw, group) in [
        (3, 17, 9, 1),
        (33, 65, 11, 1),
        (64, 96, 8, 1),
        (5, 31, 1, 1),
        (128, 128, 9, 32),
        (256, 256, 15, 32),
        (512, 512, 7, 32),
        (24, 24, 7, 24),
        (16, 48, 10, 4),
    ] {
        let out = QOutput::Requant {
            quant: Quant {
                scale: 0.05,
                zero_point: 7,
            },
            min: 7,
            max: 255,
        };
        // Each as a 3×3 with padding and as a 1×1 (whose rows are a transpose of the input).
        for (kernel, pad) in [(3, 1), (1, 0)] {
            let shape = ConvShape::square(in_c, hw, out_c, kernel, 1, pad, group);
            check(&QCase {
                shape,
                batch: 2,
                threads: 2,
                input_zero_point: 250,
                output: out,
                seed: 9,
            })
            .unwrap();
        }
    }
}

/// Convs of one group over multiples of 64 input channels (on a CPU with AMX-INT8 the AMX tiles:
/// 32 channels × 2 vectors, ragged channel blocks, a lone last vector, stride 2, one k step and
/// more, 1×1, 3×3 and 5×5 with padding), with and without the residual step, in both residual
/// arithmetics.
#[test]
fn multiples_of_64_channels() {
    for (i, &(in_c, out_c, hw, kernel, stride, pad)) in [
        (64, 96, 8, 1, 1, 0),
        (128, 40, 7, 1, 1, 0),
        (256, 17, 9, 1, 1, 0),
        (64, 33, 20, 1, 2, 0),
        (192, 64, 5, 1, 1, 0),
        (1024, 48, 7, 1, 1, 0),
        (64, 40, 9, 3, 1, 1),
        (128, 33, 12, 3, 2, 1),
        (64, 24, 10, 5, 1, 2),
        (256, 64, 7, 3, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        for (j, output) in [
            QOutput::Float { relu: true },
            QOutput::Requant {
                quant: Quant {
                    scale: 0.041,
                    zero_point: 12,
                },
                min: 12,
                max: 255,
            },
        ]
        .into_iter()
        .enumerate()
        {
            for seed in 0..3u64 {
                let c = QCase {
                    shape: ConvShape::square(in_c, hw, out_c, kernel, stride, pad, 1),
                    batch: 1 + (i + j) % 2,
                    threads: 1 + (seed as usize % 2),
                    input_zero_point: 131,
                    output,
                    seed: 3 * i as u64 + seed,
                };
                check(&c).unwrap();
                check_ort_sum(&c).unwrap();
            }
        }
    }
}

/// Grouped and dense convs whose groups' channels are no multiple of 64 (on a CPU with AMX-INT8
/// the AMX tiles in steps of 4 or 8 blocks, several steps a tap, tiles of fewer channels than a
/// group's 16 rows), 3×3 and 1×1, strides 1 and 2.
#[test]
fn amx_short_steps() {
    for (i, &(group, icg, ocg, hw, kernel, stride)) in [
        (2, 48, 20, 9, 3, 1),
        (1, 96, 40, 8, 3, 1),
        (4, 16, 16, 10, 3, 2),
        (32, 16, 16, 7, 3, 1),
        (8, 32, 8, 6, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let c = QCase {
            shape: ConvShape::square(
                group * icg,
                hw,
                group * ocg,
                kernel,
                stride,
                kernel / 2,
                group,
            ),
            batch: 1,
            threads: 1 + i % 2,
            input_zero_point: 77,
            output: QOutput::Requant {
                quant: Quant {
                    scale: 0.043,
                    zero_point: 9,
                },
                min: 9,
                max: 255,
            },
            seed: 40 + i as u64,
        };
        assert!(int8::direct_applies(&c.shape));
        check(&c).unwrap();
    }
}

/// Where AMX-INT8 runs the 1×1 convs (`RESNEXT_INT8` unset on a CPU with it), the VNNI tiles it
/// replaces are tested too: this test binary again, every test but this one, with
/// `RESNEXT_INT8=vnni`.
#[test]
fn without_amx() {
    if std::env::var_os("RESNEXT_INT8").is_some() || !int8::amx_enabled() {
        return;
    }
    common::rerun_with("RESNEXT_INT8", "vnni", "without_amx");
}

/// The stem of a ResNet (3 channels, 7×7, stride 2, padding 3: one zero-padded block, 4 phase
/// planes) and its stride-2 1×1 and 3×3 downsampling convs, on odd and even sizes.
#[test]
fn strided_direct_convs() {
    for (in_c, out_c, hw, kernel, pad, group) in [
        (3, 64, 29, 7, 3, 1),
        (3, 20, 32, 7, 3, 1),
        (64, 40, 17, 1, 0, 1),
        (64, 64, 18, 3, 1, 16),
    ] {
        let shape = ConvShape::square(in_c, hw, out_c, kernel, 2, pad, group);
        assert!(int8::direct_applies(&shape));
        check(&QCase {
            shape,
            batch: 2,
            threads: 2,
            input_zero_point: 3,
            output: QOutput::Float { relu: true },
            seed: 11,
        })
        .unwrap();
    }
}

/// Rows wider than the strided quantization's chunk of 256 words (stride 2 and 3, odd widths and
/// left padding), so a row's later chunks land in their phases' runs too.
#[test]
fn wide_strided_rows() {
    for (w, k, stride, pad) in [
        (301, 3, 2, 1),
        (517, 1, 2, 0),
        (263, 3, 3, 2),
        (260, 5, 2, 2),
    ] {
        let out_w = (w + 2 * pad - k) / stride + 1;
        let out_h = (3 + 2 * pad - k) / stride + 1;
        let shape = ConvShape {
            in_c: 5,
            in_h: 3,
            in_w: w,
            out_c: 6,
            out_h,
            out_w,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            group: 1,
        };
        assert!(int8::direct_applies(&shape));
        check(&QCase {
            shape,
            batch: 1,
            threads: 2,
            input_zero_point: 7,
            output: QOutput::Float { relu: false },
            seed: w as u64,
        })
        .unwrap();
    }
}

/// NaN and ±infinity inputs (and residual inputs, every shape below having a residual step):
/// quantized as `Quant::quantize` does (NaN to the low end, ±inf clamped) on both paths, every
/// tier.
#[test]
fn non_finite_inputs_match_reference() {
    for (shape, seed) in [
        (ConvShape::square(16, 9, 12, 3, 1, 1, 4), 3),
        (ConvShape::square(3, 20, 8, 7, 2, 3, 1), 6),
        (ConvShape::square(6, 5, 6, 3, 1, 1, 3), 9),
        (ConvShape::square(7, 9, 7, 3, 2, 1, 7), 12),
    ] {
        check_with(
            &QCase {
                shape,
                batch: 1,
                threads: 2,
                input_zero_point: 128,
                output: QOutput::Requant {
                    quant: Quant {
                        scale: 0.04,
                        zero_point: 20,
                    },
                    min: 0,
                    max: 255,
                },
                seed,
            },
            true,
        )
        .unwrap();
    }
}

#[test]
#[cfg_attr(not(host_avx512vnni), ignore = "CPU lacks AVX512_VNNI")]
fn vnni_kernel_covered() {
    assert!(std::is_x86_feature_detected!("avx512vnni"));
    assert!(tiers().contains(&resnext_runtime_core::exec::isa::Isa::Avx512));
}

#[test]
fn bad_quantization_is_an_error() {
    let s = ConvShape::square(2, 3, 2, 1, 1, 0, 1);
    let params = QConvParams {
        weight: &[1; 4],
        bias: &[0; 2],
        multiplier: &[1.0; 2],
    };
    let packed = int8::pack(&s, 0, params).unwrap();
    let threads = Threads::new(1);
    let run = |scale: f32, codes: Codes| {
        let mut out = vec![0.0; s.output_len()];
        let mut scratch = vec![0.0; int8::scratch_len(&s, 1, 1)];
        let args = QConvArgs {
            shape: s,
            batch: 1,
            input: &[0.0; 18],
            input_quant: Quant {
                scale,
                zero_point: 0,
            },
            packed: &packed,
            out: QOutput::Float { relu: false },
            residual: None,
            output: &mut out,
            scratch: &mut scratch,
            codes,
        };
        int8::qconv2d(&Ctx::new(&threads), args).unwrap_err()
    };
    let err = run(0.0, Codes::default());
    assert!(err.to_string().contains("scale"), "{err}");
    // Output codes of a conv that writes real values: refused.
    let err = run(
        0.1,
        Codes {
            output: true,
            ..Codes::default()
        },
    );
    assert!(err.to_string().contains("codes"), "{err}");
    let bad_groups = ConvShape::square(2, 3, 2, 1, 1, 0, 3);
    assert!(int8::pack(&bad_groups, 0, params).is_err());
}

/// The kernels' rounding (`int8::round_even`) is `round_ties_even` on the range they use it for:
/// every half-integer tie and random values within ±300.
#[test]
fn round_even_is_round_ties_even() {
    let ties = (-1200..=1200).map(|k| k as f32 / 4.0);
    let random = values(5, 4096).into_iter().map(|v| v * 300.0);
    for v in ties.chain(random) {
        let (got, want) = (int8::round_even(v), v.round_ties_even());
        assert!(got == want, "round_even({v}) = {got}, want {want}");
    }
}

/// `fake_quantize` against QuantizeLinear → clamp → DequantizeLinear written out, element by
/// element, on inputs past both ends of the range, zero points at the ends, with and without a
/// ReLU clamp, split over two threads.
#[test]
fn fake_quantize_matches_quantize_dequantize() {
    let threads = Threads::new(2);
    let input: Vec<f32> = values(11, 40_000).iter().map(|v| v * 9.0).collect();
    for zero_point in [0, 1, 128, 254, 255] {
        for min in [0, zero_point] {
            let scale = 0.0173;
            let quant = Quant { scale, zero_point };
            let mut got = vec![f32::NAN; input.len()];
            int8::fake_quantize(&Ctx::new(&threads), quant, min, 255, &input, &mut got).unwrap();
            for (i, (&x, &g)) in input.iter().zip(&got).enumerate() {
                let q = ((x / scale).round_ties_even() + zero_point as f32).clamp(0.0, 255.0);
                let want = (q.max(min as f32) - zero_point as f32) * scale;
                assert!(
                    same(g, want),
                    "zp {zero_point}, min {min}: element {i} ({x}): got {g}, want {want}"
                );
            }
        }
    }
}
