//! Property tests of the NCHW8c layout (`kernels::blocked`): the reorders against the layout's
//! definition, and the NCHW8c conv algorithms (`PointwiseNchw8c`, `GroupedNchw8c`) against the
//! reference conv, on every ISA tier this CPU supports, random shapes, thread counts and fused
//! epilogues. The blocked operands are made and read back here by plain index loops (the layout's
//! definition), not by the reorders under test. Tolerance as in `conv_props` (`common::tolerance`).

mod common;

use common::{Case, assert_ok, check_tiers_exact, setting, values};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::blocked::{self, BLOCK};
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, KernelError, PlanesArgs,
};

/// NCHW → NCHW8c by definition: element (b, c, p) at `((b·C/8 + c/8)·spatial + p)·8 + c%8`.
fn blocked_index(c: usize, p: usize, channels: usize, spatial: usize, b: usize) -> usize {
    ((b * channels / BLOCK + c / BLOCK) * spatial + p) * BLOCK + c % BLOCK
}

fn to_blocked(x: &[f32], channels: usize, spatial: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.len()];
    for (i, &v) in x.iter().enumerate() {
        let (b, c, p) = (
            i / (channels * spatial),
            i / spatial % channels,
            i % spatial,
        );
        out[blocked_index(c, p, channels, spatial, b)] = v;
    }
    out
}

fn from_blocked(x: &[f32], channels: usize, spatial: usize) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let (b, c, p) = (
                i / (channels * spatial),
                i / spatial % channels,
                i % spatial,
            );
            x[blocked_index(c, p, channels, spatial, b)]
        })
        .collect()
}

/// Runs `algo` on the blocked forms of the case's operands and compares the plain form of its
/// output with the reference conv on every tier.
fn check_blocked(algo: ConvAlgo, c: &Case) -> Result<(), TestCaseError> {
    let (s, batch) = (c.shape, c.setting.batch);
    prop_assert!(algo.supports(&s), "{algo:?} should support {s:?}");
    let (in_sp, out_sp) = (s.in_h * s.in_w, s.out_h * s.out_w);
    c.check(
        &format!("{algo:?}"),
        |weight| {
            let packed = conv::pack(algo, &s, weight).unwrap();
            assert_eq!(packed.len(), conv::packed_len(algo, &s));
            packed
        },
        |isa, input, packed, ep, threads, out| {
            let x = to_blocked(input, s.in_c, in_sp);
            let residual = ep.residual.map(|r| to_blocked(r, s.out_c, out_sp));
            let ep = Epilogue {
                residual: residual.as_deref(),
                ..*ep
            };
            let mut y = vec![f32::NAN; out.len()];
            let mut scratch = vec![f32::NAN; conv::scratch_len(algo, &s, batch, threads.count())];
            let args = ConvArgs {
                shape: s,
                batch,
                input: &x,
                packed,
                epilogue: ep,
                output: &mut y,
                scratch: &mut scratch,
            };
            conv::conv2d(&Ctx { isa, threads }, algo, args)?;
            out.copy_from_slice(&from_blocked(&y, s.out_c, out_sp));
            Ok(())
        },
    )
}

/// 1×1 convs over 8–96 channels in and out (the last weight panel half empty when the output
/// channels are an odd number of blocks), spatial sizes ragged against the 6-pixel tiles, strides
/// 1–2.
fn pointwise_case() -> impl Strategy<Value = Case> {
    (
        (1usize..=12, 1usize..=12),
        (1usize..=15, 1usize..=15, 1usize..=2, 1usize..=2),
        setting(),
    )
        .prop_map(|((ib, ob), (h, w, sy, sx), setting)| Case {
            shape: ConvShape {
                in_c: BLOCK * ib,
                in_h: h,
                in_w: w,
                out_c: BLOCK * ob,
                out_h: (h - 1) / sy + 1,
                out_w: (w - 1) / sx + 1,
                kernel: [1, 1],
                stride: [sy, sx],
                dilation: [1, 1],
                pads: [0; 4],
                group: 1,
            },
            setting,
        })
}

/// Grouped 3×3 convs whose channels are whole blocks: 2, 4, 8 or 32 groups of 1–3 units of
/// channels, a unit making the total a multiple of 8 (`whole`: a unit is a block, so each group is
/// whole blocks and the SIMD tiers run the direct NCHW8c kernel; else they convert to NCHW), odd
/// sizes, stride 1–2, padding 0–1.
fn grouped_case() -> impl Strategy<Value = Case> {
    (
        (
            prop_oneof![Just(2usize), Just(4), Just(8), Just(32)],
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
        (3usize..=11, 3usize..=11, 1usize..=2, 0usize..=1),
        setting(),
    )
        .prop_map(|((group, icu, ocu, whole), (h, w, stride, pad), setting)| {
            let unit = if whole {
                BLOCK
            } else {
                BLOCK / group.min(BLOCK)
            };
            let shape = ConvShape {
                in_c: group * unit * icu,
                in_h: h,
                in_w: w,
                out_c: group * unit * ocu,
                out_h: (h + 2 * pad - 3) / stride + 1,
                out_w: (w + 2 * pad - 3) / stride + 1,
                kernel: [3, 3],
                stride: [stride, stride],
                dilation: [1, 1],
                pads: [pad; 4],
                group,
            };
            Case { shape, setting }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pointwise_nchw8c_matches_reference(c in pointwise_case()) {
        check_blocked(ConvAlgo::PointwiseNchw8c, &c)?;
    }

    #[test]
    fn grouped_nchw8c_matches_reference(c in grouped_case()) {
        check_blocked(ConvAlgo::GroupedNchw8c, &c)?;
    }

    /// Both reorders give exactly the layout's definition, for ragged pixel counts (the 8-pixel
    /// transposes and the scalar tail), any batch and thread count.
    #[test]
    fn reorders_follow_the_layout(
        blocks in 1usize..=5, spatial in 0usize..=40, batch in 1usize..=2, threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let channels = BLOCK * blocks;
        let plain = values(seed, batch * channels * spatial);
        let threads = Threads::new(threads);
        let want = to_blocked(&plain, channels, spatial);
        check_tiers_exact("to NCHW8c", &want, |isa, output| {
            let planes = PlanesArgs { batch, channels, spatial, input: &plain, output };
            blocked::to_blocked(&Ctx { isa, threads: &threads }, planes)
        })?;
        check_tiers_exact("from NCHW8c", &plain, |isa, output| {
            let planes = PlanesArgs { batch, channels, spatial, input: &want, output };
            blocked::from_blocked(&Ctx { isa, threads: &threads }, planes)
        })?;
    }
}

/// ResNeXt-50's 1×1 shapes at small maps, with its layer epilogue, on 1 and 2 threads: the
/// 6-pixel tiles, the k blocks (1024 input channels are four), and a stride-2 projection.
#[test]
fn resnext_shapes_match_reference() {
    for (in_c, out_c, hw, stride) in [
        (1024, 512, 7, 1),
        (512, 1024, 9, 1),
        (256, 512, 13, 2),
        (64, 128, 11, 1),
    ] {
        for threads in [1, 2] {
            let shape = ConvShape::square(in_c, hw, out_c, 1, stride, 0, 1);
            assert_ok(check_blocked(
                ConvAlgo::PointwiseNchw8c,
                &Case::fused(shape, threads),
            ));
        }
    }
}

/// ResNeXt-50's grouped convs of stages 2–4 (8, 16 and 32 channels a group, stride 1 and 2) at
/// small maps, with bias and ReLU, on 1 and 2 threads: on the SIMD tiers these run the direct
/// NCHW8c kernel (`grouped::runs_nchw8c`).
#[test]
fn resnext_grouped_shapes_match_reference() {
    for (channels, hw, stride) in [
        (256, 9, 1),
        (256, 11, 2),
        (512, 7, 1),
        (1024, 5, 1),
        (1024, 7, 2),
    ] {
        let shape = ConvShape::square(channels, hw, channels, 3, stride, 1, 32);
        for isa in common::tiers() {
            let direct = resnext_runtime_core::kernels::grouped::runs_nchw8c(&shape, isa);
            assert_eq!(
                direct,
                isa != resnext_runtime_core::exec::isa::Isa::Generic,
                "{isa:?} {shape:?}"
            );
        }
        for threads in [1, 2] {
            let mut case = Case::fused(shape, threads);
            case.setting.residual = false;
            assert_ok(check_blocked(ConvAlgo::GroupedNchw8c, &case));
        }
    }
}

/// Shapes the NCHW8c algorithms do not take, and malformed operands, are errors, not panics.
#[test]
fn bad_shapes_and_lengths_are_errors() {
    let threads = Threads::new(1);
    let ragged = ConvShape::square(12, 4, 16, 1, 1, 0, 1);
    assert!(!ConvAlgo::PointwiseNchw8c.supports(&ragged));
    assert!(matches!(
        conv::pack(ConvAlgo::PointwiseNchw8c, &ragged, &[0.0; 12 * 16]),
        Err(KernelError::BadShape(_))
    ));
    let grouped_ragged = ConvShape::square(12, 5, 12, 3, 1, 1, 3);
    assert!(!ConvAlgo::GroupedNchw8c.supports(&grouped_ragged));
    let s = ConvShape::square(16, 4, 8, 1, 1, 0, 1);
    let packed = conv::pack(ConvAlgo::PointwiseNchw8c, &s, &[0.5; 128]).unwrap();
    let ep = Epilogue {
        bias: None,
        residual: None,
        activation: Activation::Relu,
    };
    let mut out = vec![0.0; s.output_len()];
    let short_input = vec![0.0; s.input_len() - 1];
    let args = ConvArgs {
        shape: s,
        batch: 1,
        input: &short_input,
        packed: &packed,
        epilogue: ep,
        output: &mut out,
        scratch: &mut [],
    };
    let r = conv::conv2d(&Ctx::new(&threads), ConvAlgo::PointwiseNchw8c, args);
    assert!(matches!(r, Err(KernelError::Length { .. })), "{r:?}");
    let mut plain = vec![0.0; 12 * 3];
    let planes = PlanesArgs {
        batch: 1,
        channels: 12,
        spatial: 3,
        input: &[0.0; 36],
        output: &mut plain,
    };
    let r = blocked::to_blocked(&Ctx::new(&threads), planes);
    assert!(matches!(r, Err(KernelError::BadShape(_))), "{r:?}");
}
