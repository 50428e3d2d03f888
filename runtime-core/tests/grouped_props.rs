//! Property tests of the direct grouped and depthwise conv kernels against `reference::conv2d`, on
//! every ISA tier this CPU supports, random shapes and fused epilogues; plus ResNeXt's own shapes.
//!
//! Tolerance, per output element: `common::tolerance`, `(n + 4) · u · (Σ|x·w| + |bias| + |residual|)`
//! with `n` the taps per output (`cin/group · kh · kw`); the derivation is in `common/mod.rs`.

mod common;

use common::{Case, Setting, out_size, setting, tiers};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, KernelError, depthwise, grouped,
};

/// Which kernel a case exercises.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Grouped,
    Depthwise,
}

/// Runs `kind` on every supported tier and compares with the reference within the tolerance above.
fn check_case(kind: Kind, c: &Case) -> Result<(), TestCaseError> {
    let (s, batch) = (c.shape, c.setting.batch);
    let (pack, run): (PackFn, RunFn) = match kind {
        Kind::Grouped => (grouped::pack, grouped::run),
        Kind::Depthwise => (depthwise::pack, depthwise::run),
    };
    c.check(
        &format!("{kind:?}"),
        |weight| pack(&s, weight),
        |isa, input, packed, ep, threads, out| {
            run(
                &Ctx { isa, threads },
                args(s, batch, input, packed, *ep, out),
            )
        },
    )
}

/// The signatures the grouped and depthwise kernels share.
type PackFn = fn(&ConvShape, &[f32]) -> Vec<f32>;
type RunFn = fn(&Ctx, ConvArgs) -> Result<(), KernelError>;

/// The arguments of a direct conv call (which needs no scratch).
fn args<'a>(
    shape: ConvShape,
    batch: usize,
    input: &'a [f32],
    packed: &'a [f32],
    epilogue: Epilogue<'a>,
    output: &'a mut [f32],
) -> ConvArgs<'a> {
    ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch: &mut [],
    }
}

/// A grouped 3×3 conv of `group` groups of `cin_g → cout_g` channels on an `in_h × in_w` input;
/// `None` if the padded input is smaller than the kernel.
fn grouped_shape(
    group: usize,
    (cin_g, cout_g): (usize, usize),
    (in_h, in_w): (usize, usize),
    stride: (usize, usize),
    pads: [usize; 4],
) -> Option<ConvShape> {
    Some(ConvShape {
        in_c: group * cin_g,
        in_h,
        in_w,
        out_c: group * cout_g,
        out_h: out_size(in_h, 3, stride.0, 1, pads[0], pads[2])?,
        out_w: out_size(in_w, 3, stride.1, 1, pads[1], pads[3])?,
        kernel: [3, 3],
        stride: [stride.0, stride.1],
        dilation: [1, 1],
        pads,
        group,
    })
}

prop_compose! {
    /// A grouped 3×3 conv: groups 2/8/32 or one input channel per group, 1..40 channels per group,
    /// odd and even sizes, pads 0..2 per side, strides 1/2 per axis.
    fn grouped_case()(
        group_pick in 0usize..4,
        cin_g in 1usize..=40,
        cout_g in 1usize..=40,
        in_h in 1usize..=13,
        in_w in 1usize..=41,
        stride in (1usize..=2, 1usize..=2),
        pads in [0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2],
        setting in setting(),
    ) -> Option<Case> {
        let (group, cin_g) = match group_pick {
            0 => (2, cin_g),
            1 => (8, cin_g),
            2 => (32, cin_g.min(8)),
            _ => (cin_g.max(2), 1),
        };
        let shape = grouped_shape(group, (cin_g, cout_g), (in_h, in_w), stride, pads)?;
        // Keeps the f64 reference fast enough for many cases.
        (setting.batch * shape.macs() <= 3_000_000).then_some(Case { shape, setting })
    }
}

prop_compose! {
    /// A depthwise 3×3, 5×5 or 7×7 conv with 1..48 channels, strides 1/2, pads up to k-1 per side.
    fn depthwise_case()(
        channels in 1usize..=48,
        k in prop_oneof![Just(3usize), Just(5usize), Just(7usize)],
        in_h in 1usize..=19,
        in_w in 1usize..=41,
        stride in (1usize..=2, 1usize..=2),
        pads in [0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4],
        setting in setting(),
    ) -> Option<Case> {
        let pads = pads.map(|p| p.min(k - 1));
        let out_h = out_size(in_h, k, stride.0, 1, pads[0], pads[2])?;
        let out_w = out_size(in_w, k, stride.1, 1, pads[1], pads[3])?;
        let shape = ConvShape {
            in_c: channels,
            in_h,
            in_w,
            out_c: channels,
            out_h,
            out_w,
            kernel: [k, k],
            stride: [stride.0, stride.1],
            dilation: [1, 1],
            pads,
            group: channels,
        };
        Some(Case { shape, setting })
    }
}

prop_compose! {
    /// One image of a grouped 3×3 conv on a map tall enough (24–40 output rows) that the kernel
    /// splits it into a band of rows per thread (2–3 threads), odd and even sizes, strides 1/2.
    fn banded_case()(
        group in prop_oneof![Just(2usize), Just(8usize)],
        cin_g in 1usize..=9,
        cout_g in 1usize..=9,
        out_h in 24usize..=40,
        in_w in 1usize..=37,
        stride in (1usize..=2, 1usize..=2),
        pads in [0usize..=1, 0usize..=1, 0usize..=1, 0usize..=1],
        setting in setting(),
        threads in 2usize..=3,
    ) -> Option<Case> {
        // The input height that gives `out_h` rows (the last row may leave input rows unread).
        let in_h = ((out_h - 1) * stride.0 + 3).checked_sub(pads[0] + pads[2])?;
        let shape = grouped_shape(group, (cin_g, cout_g), (in_h, in_w), stride, pads)?;
        let setting = Setting { batch: 1, threads, ..setting };
        (shape.macs() <= 3_000_000).then_some(Case { shape, setting })
    }
}

prop_compose! {
    /// A depthwise conv on a small map with output rows as wide as the input's (stride 1, left +
    /// right padding `k - 1`): at most 512 output pixels, what the AVX-512 tier runs plane by plane
    /// with masked loads where its rows would leave many lanes of the direct kernel idle; odd
    /// sizes, uneven top/bottom padding, 1..40 channels, batch 1–3.
    fn small_depthwise_case()(
        channels in 1usize..=40,
        k in prop_oneof![Just(3usize), Just(5usize), Just(7usize)],
        in_h in 1usize..=26,
        in_w in 1usize..=26,
        left in 0usize..=4,
        (top, bottom) in (0usize..=4, 0usize..=4),
        batch in 1usize..=3,
        setting in setting(),
    ) -> Option<Case> {
        let left = left.min(k - 1);
        let pads = [top.min(k - 1), left, bottom.min(k - 1), k - 1 - left];
        let out_h = out_size(in_h, k, 1, 1, pads[0], pads[2])?;
        let shape = ConvShape {
            in_c: channels,
            in_h,
            in_w,
            out_c: channels,
            out_h,
            out_w: in_w,
            kernel: [k, k],
            stride: [1, 1],
            dilation: [1, 1],
            pads,
            group: channels,
        };
        (out_h * in_w <= 512).then_some(Case { shape, setting: Setting { batch, ..setting } })
    }
}

prop_compose! {
    /// A depthwise conv on a wide, tall map (9..70 columns, 20..60 rows), strides 1/2 per axis,
    /// odd and even padding on either side: rows wider than 8 (the AVX-512 direct kernel, one or
    /// two vectors of columns a block, its masked loads reaching into either padding; the plane
    /// kernel at unequal strides), several bands per plane, 1–3 threads, batch 1–3.
    fn wide_depthwise_case()(
        channels in 1usize..=6,
        k in prop_oneof![Just(3usize), Just(5usize), Just(7usize)],
        in_h in 20usize..=60,
        in_w in 9usize..=70,
        stride in (1usize..=2, 1usize..=2),
        pads in [0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4],
        batch in 1usize..=3,
        setting in setting(),
    ) -> Option<Case> {
        let pads = pads.map(|p| p.min(k - 1));
        let shape = ConvShape {
            in_c: channels,
            in_h,
            in_w,
            out_c: channels,
            out_h: out_size(in_h, k, stride.0, 1, pads[0], pads[2])?,
            out_w: out_size(in_w, k, stride.1, 1, pads[1], pads[3])?,
            kernel: [k, k],
            stride: [stride.0, stride.1],
            dilation: [1, 1],
            pads,
            group: channels,
        };
        Some(Case { shape, setting: Setting { batch, ..setting } })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn grouped_matches_reference(case in grouped_case()) {
        prop_assume!(case.is_some());
        check_case(Kind::Grouped, &case.unwrap())?;
    }

    #[test]
    fn grouped_bands_of_one_image_match_reference(case in banded_case()) {
        prop_assume!(case.is_some());
        let case = case.unwrap();
        check_case(Kind::Grouped, &case)?;
    }

    #[test]
    fn depthwise_matches_reference(case in depthwise_case()) {
        prop_assume!(case.is_some());
        let case = case.unwrap();
        // One channel per group and a single channel is not "grouped"; depthwise needs group == C.
        prop_assume!(depthwise::supports(&case.shape));
        check_case(Kind::Depthwise, &case)?;
    }

    #[test]
    fn small_depthwise_maps_match_reference(case in small_depthwise_case()) {
        prop_assume!(case.is_some());
        let case = case.unwrap();
        prop_assume!(depthwise::supports(&case.shape));
        check_case(Kind::Depthwise, &case)?;
    }

    #[test]
    fn wide_depthwise_maps_match_reference(case in wide_depthwise_case()) {
        prop_assume!(case.is_some());
        let case = case.unwrap();
        prop_assume!(depthwise::supports(&case.shape));
        check_case(Kind::Depthwise, &case)?;
    }
}

/// The grouped 3×3 convs of ResNeXt-50 (32×4d): `(channels, input size, stride)`.
const RESNEXT50: [(usize, usize, usize); 7] = [
    (128, 56, 1),
    (256, 56, 2),
    (256, 28, 1),
    (512, 28, 2),
    (512, 14, 1),
    (1024, 14, 2),
    (1024, 7, 1),
];

/// A ResNeXt grouped 3×3 conv: 32 groups, padding 1.
fn resnext_shape(c: usize, size: usize, stride: usize) -> ConvShape {
    ConvShape::square(c, size, c, 3, stride, 1, 32)
}

#[test]
fn resnext50_grouped_shapes_match_reference() {
    println!("tiers tested: {:?}", tiers());
    for (i, &(c, size, stride)) in RESNEXT50.iter().enumerate() {
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: i % 2 == 0,
            activation: Activation::Relu,
            threads: 2,
            seed: i as u64,
        };
        let case = Case {
            shape: resnext_shape(c, size, stride),
            setting,
        };
        check_case(Kind::Grouped, &case).unwrap();
    }
}

/// Grouped convs with whole blocks of 8 output channels per group (the AVX2 tier's output-channel
/// kernel): outputs 1–7 wide (one tile a row, two rows a tile at stride 2) and wider (7-pixel
/// tiles and a shorter last one), strides 1 and 2 (also mixed), asymmetric padding, one input
/// channel per group, 2 groups (so that bands of rows split across threads) and 32, with and
/// without a residual, batch 1 and 2.
#[test]
fn output_channel_blocks_match_reference() {
    let cases = [
        // (in_h, in_w, stride, pads, group, cin_g, cout_g)
        (7, 7, [1, 1], [1, 1, 1, 1], 32, 32, 32),
        (14, 14, [2, 2], [1, 1, 1, 1], 32, 32, 32),
        (9, 5, [1, 1], [0, 2, 1, 0], 2, 3, 8),
        (13, 12, [2, 2], [2, 0, 0, 1], 2, 5, 24),
        (11, 3, [1, 2], [1, 1, 1, 1], 2, 16, 16),
        (1, 1, [1, 1], [1, 1, 1, 1], 2, 4, 8),
        (6, 13, [2, 2], [1, 1, 1, 1], 32, 2, 16),
        (10, 17, [1, 1], [1, 1, 1, 1], 2, 8, 8),
        (9, 30, [2, 2], [1, 0, 1, 2], 2, 6, 16),
        (5, 16, [1, 1], [0, 0, 0, 0], 2, 1, 8),
        (14, 28, [1, 2], [1, 1, 1, 1], 32, 3, 8),
    ];
    for (i, &(in_h, in_w, stride, pads, group, cin_g, cout_g)) in cases.iter().enumerate() {
        let shape = ConvShape {
            in_c: group * cin_g,
            in_h,
            in_w,
            out_c: group * cout_g,
            out_h: out_size(in_h, 3, stride[0], 1, pads[0], pads[2]).unwrap(),
            out_w: out_size(in_w, 3, stride[1], 1, pads[1], pads[3]).unwrap(),
            kernel: [3, 3],
            stride,
            dilation: [1, 1],
            pads,
            group,
        };
        for threads in [1, 2, 3] {
            let setting = Setting {
                batch: 1 + i % 2,
                bias: true,
                residual: (i + threads) % 2 == 0,
                activation: Activation::Relu,
                threads,
                seed: (10 * i + threads) as u64,
            };
            check_case(Kind::Grouped, &Case { shape, setting }).unwrap();
        }
    }
}

/// MobileNetV2's, EfficientNet-B0's and ConvNeXt-T's depthwise shapes (ReLU6 and SiLU epilogues).
#[test]
fn mobile_depthwise_shapes_match_reference() {
    for (i, &(c, size, stride, k)) in [
        (32, 112, 1, 3),
        (96, 112, 2, 3),
        (144, 56, 1, 3),
        (960, 7, 1, 3),
        (576, 14, 2, 3),
        (144, 56, 2, 5),
        (672, 14, 1, 5),
        (1152, 7, 1, 5),
        (96, 56, 1, 7),
        (768, 7, 1, 7),
    ]
    .iter()
    .enumerate()
    {
        let shape = ConvShape::square(c, size, c, k, stride, k / 2, c);
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: false,
            activation: if i % 2 == 0 {
                Activation::Clip { min: 0.0, max: 6.0 }
            } else {
                Activation::Silu
            },
            threads: 2,
            seed: 100 + i as u64,
        };
        let case = Case { shape, setting };
        check_case(Kind::Depthwise, &case).unwrap();
    }
}

/// Planes too wide for the AVX2 row kernel's buffers (32 KB: `K` padded rows per channel) take the
/// tile kernel instead; both sides of that limit (3×3 stride 1: about 2680 columns; 5×5 stride 2:
/// about 1550), and wide planes on every other tier.
#[test]
fn wide_depthwise_planes_match_reference() {
    for (i, &(k, stride, width)) in [(3, 1, 2600), (3, 1, 2800), (5, 2, 1500), (5, 2, 1700)]
        .iter()
        .enumerate()
    {
        let pad = k / 2;
        let out_w = out_size(width, k, stride, 1, pad, pad).unwrap();
        let out_h = out_size(3, k, stride, 1, pad, pad).unwrap();
        let shape = ConvShape {
            in_c: 3,
            in_h: 3,
            in_w: width,
            out_c: 3,
            out_h,
            out_w,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            group: 3,
        };
        let setting = Setting {
            batch: 2,
            bias: true,
            residual: i % 2 == 1,
            activation: Activation::Relu,
            threads: 2,
            seed: 200 + i as u64,
        };
        check_case(Kind::Depthwise, &Case { shape, setting }).unwrap();
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let s = resnext_shape(64, 9, 1);
    let input = vec![0.0; s.input_len()];
    let packed = grouped::pack(&s, &vec![0.0; s.weight_len()]);
    let mut out = vec![0.0; s.output_len()];
    let t = Threads::new(2);
    let ep = Epilogue::default();
    for isa in tiers() {
        let ctx = Ctx { isa, threads: &t };
        let short = grouped::run(&ctx, args(s, 1, &input[1..], &packed, ep, &mut out));
        assert!(
            matches!(short, Err(KernelError::Length { .. })),
            "{short:?}"
        );
        let two = grouped::run(&ctx, args(s, 2, &input, &packed, ep, &mut out));
        assert!(matches!(two, Err(KernelError::Length { .. })), "{two:?}");
        let bias = [0.0; 3];
        let ep_bad = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        let b = grouped::run(&ctx, args(s, 1, &input, &packed, ep_bad, &mut out));
        assert!(matches!(b, Err(KernelError::Length { .. })), "{b:?}");
        let mut dilated = s;
        dilated.dilation = [2, 2];
        let d = grouped::run(&ctx, args(dilated, 1, &input, &packed, ep, &mut out));
        assert!(matches!(d, Err(KernelError::BadShape(_))), "{d:?}");
        let mut wrong_out = s;
        wrong_out.out_h += 1;
        let w = grouped::run(&ctx, args(wrong_out, 1, &input, &packed, ep, &mut out));
        assert!(matches!(w, Err(KernelError::BadShape(_))), "{w:?}");
        let not_dw = depthwise::run(&ctx, args(s, 1, &input, &packed, ep, &mut out));
        assert!(
            matches!(not_dw, Err(KernelError::BadShape(_))),
            "{not_dw:?}"
        );
    }
    // A weight slice of the wrong length packs to nothing, which `run` rejects.
    assert!(grouped::pack(&s, &[1.0; 5]).is_empty());
    assert!(!grouped::supports(&ConvShape { group: 1, ..s }));
}

/// A batch of no images writes nothing and is no error, on every tier and kernel (small maps,
/// wide maps, grouped).
#[test]
fn empty_batch_is_a_no_op() {
    let shapes = [
        ConvShape::square(16, 7, 16, 3, 1, 1, 16),
        ConvShape::square(16, 40, 16, 5, 2, 2, 16),
        resnext_shape(64, 9, 1),
    ];
    let t = Threads::new(2);
    for s in shapes {
        let packed = grouped::pack(&s, &vec![0.5; s.weight_len()]);
        for isa in tiers() {
            let ctx = Ctx { isa, threads: &t };
            let r = if s.group == s.in_c {
                depthwise::run(&ctx, args(s, 0, &[], &packed, Epilogue::default(), &mut []))
            } else {
                grouped::run(&ctx, args(s, 0, &[], &packed, Epilogue::default(), &mut []))
            };
            assert!(r.is_ok(), "{s:?} on {}: {r:?}", isa.name());
        }
    }
}
