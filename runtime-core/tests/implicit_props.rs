//! Property tests of the implicit-GEMM conv (`kernels::implicit`, `ConvAlgo::ImplicitGemm`) against
//! the reference conv on every ISA tier this CPU supports: random ungrouped shapes (kernels 1–7,
//! not square; strides 1–3; dilations 1–2; asymmetric pads; channels ragged against the 8-channel
//! panels; maps ragged against the 16-lane vectors and 48-column tiles, narrower than a vector and
//! wider than a tile, small maps on the by-channel tiles), batches 1–3, 1–3 threads and random
//! fused epilogues; and the layer shapes of ResNets, VGG and the stems. Tolerance as in `conv_props` (`common::tolerance`).

mod common;

use common::{Case, Setting, activation, assert_ok, out_size, setting};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, implicit};

/// Runs `ConvAlgo::ImplicitGemm` through `conv2d` on every supported tier against the reference;
/// the scratch starts as NaN, so a read of a float the kernel did not write shows.
fn check(c: &Case) -> Result<(), TestCaseError> {
    let (s, batch) = (c.shape, c.setting.batch);
    let algo = ConvAlgo::ImplicitGemm;
    prop_assert!(algo.supports(&s), "should support {s:?}");
    c.check(
        "implicit",
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

fn batch_setting() -> impl Strategy<Value = Setting> {
    (setting(), 1usize..=3).prop_map(|(s, batch)| Setting { batch, ..s })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn implicit_matches_reference(
        (in_c, out_c) in (1usize..=19, 1usize..=21),
        (h, w, kh, kw) in (1usize..=23, 1usize..=61, 1usize..=7, 1usize..=7),
        (sy, sx, dy, dx) in (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        setting in batch_setting(),
    ) {
        let out_h = out_size(h, kh, sy, dy, pads[0], pads[2]);
        let out_w = out_size(w, kw, sx, dx, pads[1], pads[3]);
        // A window wider than its padded input has no conv: proptest draws another case.
        prop_assume!(out_h.is_some() && out_w.is_some(), "the window does not fit");
        let shape = ConvShape {
            in_c,
            in_h: h,
            in_w: w,
            out_c,
            out_h: out_h.expect("assumed above"),
            out_w: out_w.expect("assumed above"),
            kernel: [kh, kw],
            stride: [sy, sx],
            dilation: [dy, dx],
            pads,
            group: 1,
        };
        check(&Case { shape, setting })?;
    }

    /// ResNet-like 3×3 convs (stride 1 and 2, pad 1) with more channels: several k steps per
    /// channel block, whole and ragged panels, every activation.
    #[test]
    fn implicit_3x3_matches_reference(
        (in_c, out_c) in (8usize..=70, 8usize..=40),
        hw in 3usize..=30,
        stride in 1usize..=2,
        act in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let shape = ConvShape::square(in_c, hw, out_c, 3, stride, 1, 1);
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: true,
            activation: act,
            threads,
            seed,
        };
        check(&Case { shape, setting })?;
    }
}

#[test]
fn model_layer_shapes() {
    for s in [
        // ResNet-18/50 3×3 convs (channels cut where the generic tier would be slow).
        ConvShape::square(64, 56, 64, 3, 1, 1, 1),
        ConvShape::square(64, 56, 64, 3, 2, 1, 1),
        ConvShape::square(128, 28, 128, 3, 1, 1, 1),
        ConvShape::square(96, 14, 256, 3, 1, 1, 1),
        ConvShape::square(64, 7, 72, 3, 1, 1, 1),
        ConvShape::square(128, 14, 40, 3, 2, 1, 1),
        // Small maps (vectorised over output channels): 15 wide, two runs a row; ragged panels.
        ConvShape::square(20, 15, 40, 5, 1, 2, 1),
        ConvShape::square(256, 14, 72, 3, 1, 1, 1),
        // Stems: 7×7/2 (ResNet), 3×3/2 (MobileNet), 11×11/4 (AlexNet).
        ConvShape::square(3, 224, 64, 7, 2, 3, 1),
        ConvShape::square(3, 224, 32, 3, 2, 1, 1),
        ConvShape::square(3, 224, 64, 11, 4, 2, 1),
    ] {
        for threads in [1, 2] {
            assert_ok(check(&Case::fused(s, threads)));
        }
    }
}

#[test]
fn select_picks_implicit_for_dense_convs() {
    for s in [
        ConvShape::square(64, 56, 64, 3, 1, 1, 1),
        ConvShape::square(128, 56, 128, 3, 2, 1, 1),
        ConvShape::square(3, 224, 64, 7, 2, 3, 1),
        ConvShape::square(3, 224, 64, 11, 4, 2, 1),
        // Small maps, on the by-channel tiles.
        ConvShape::square(512, 7, 512, 3, 1, 1, 1),
        ConvShape::square(256, 28, 256, 3, 2, 1, 1),
    ] {
        assert_eq!(ConvAlgo::select(&s), ConvAlgo::ImplicitGemm, "{s:?}");
    }
    // 3-channel 3×3 stems (27 products an output) stay on im2col.
    for s in [
        ConvShape::square(3, 224, 64, 3, 1, 1, 1),
        ConvShape::square(3, 224, 32, 3, 2, 1, 1),
    ] {
        assert_eq!(ConvAlgo::select(&s), ConvAlgo::Im2col, "{s:?}");
    }
    // 1×1 convs stay plain GEMMs, grouped convs on their own kernels.
    assert_eq!(
        ConvAlgo::select(&ConvShape::square(64, 56, 256, 1, 1, 0, 1)),
        ConvAlgo::Pointwise
    );
    assert!(!implicit::supports(&ConvShape::square(
        128, 56, 128, 3, 1, 1, 32
    )));
}

/// A 1×1 output whose only window lies in the padding: the epilogue alone.
#[test]
fn a_window_entirely_in_the_padding() {
    let shape = ConvShape {
        in_c: 3,
        in_h: 1,
        in_w: 1,
        out_c: 9,
        out_h: 2,
        out_w: 2,
        kernel: [1, 1],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [0, 0, 2, 2],
        group: 1,
    };
    let mut c = Case::fused(shape, 2);
    c.setting.activation = Activation::None;
    assert_ok(check(&c));
}
