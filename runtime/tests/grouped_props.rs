//! Property tests of the direct grouped and depthwise conv kernels against `reference::conv2d`, on
//! every ISA tier this CPU supports, random shapes and fused epilogues; plus ResNeXt's own shapes.
//!
//! Tolerance, per output element: `|fast − reference| ≤ (n + 4) · u · (Σ|x·w| + |bias| + |residual|)`
//! with `u = 2⁻²⁴` and `n` the taps per output (`cin/group · kh · kw`). The reference accumulates in
//! f64 and rounds once; the fast kernels accumulate `n` products in f32 (FMA), whose rounding error
//! is at most `γ_n · Σ|x·w| ≈ n·u·Σ|x·w|`, then round once more for each of the bias and residual
//! adds (`u` times the running magnitude each), and once for the reference's own final rounding;
//! the activations are 1-Lipschitz and exact. `Σ|x·w|` is computed by the reference on `|x|`, `|w|`.

use proptest::prelude::*;
use resnext_runtime::isa::Isa;
use resnext_runtime::kernels::{
    Activation, ConvShape, Epilogue, KernelError, depthwise, grouped, reference,
};
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

fn out_size(size: usize, k: usize, stride: usize, p0: usize, p1: usize) -> Option<usize> {
    let padded = size + p0 + p1;
    (padded >= k).then(|| (padded - k) / stride + 1)
}

/// Which kernel a case exercises.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Grouped,
    Depthwise,
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

/// Runs `kind` on every supported tier and compares with the reference within the tolerance above.
fn check_case(kind: Kind, c: &Case) -> Result<(), TestCaseError> {
    let s = c.shape;
    let input = values(c.seed, c.batch * s.input_len());
    let weight = values(c.seed ^ 1, s.weight_len());
    let bias = values(c.seed ^ 2, s.out_c);
    let residual = values(c.seed ^ 3, c.batch * s.output_len());
    let epilogue = Epilogue {
        bias: c.bias.then_some(&bias[..]),
        residual: c.residual.then_some(&residual[..]),
        activation: c.activation,
    };
    let mut want = vec![0.0; c.batch * s.output_len()];
    reference::conv2d(&s, c.batch, &input, &weight, &epilogue, &mut want).unwrap();
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut magnitude = vec![0.0; want.len()];
    reference::conv2d(
        &s,
        c.batch,
        &abs(&input),
        &abs(&weight),
        &Epilogue::default(),
        &mut magnitude,
    )
    .unwrap();
    let taps = (s.in_c / s.group * s.kernel[0] * s.kernel[1]) as f32;
    let u = f32::EPSILON / 2.0;
    let plane = s.out_h * s.out_w;
    let packed = match kind {
        Kind::Grouped => grouped::pack(&s, &weight),
        Kind::Depthwise => depthwise::pack(&s, &weight),
    };
    let threads = Threads::new(c.threads);
    for isa in Isa::all_supported() {
        let mut got = vec![f32::NAN; want.len()];
        let r = match kind {
            Kind::Grouped => grouped::run(
                &s, c.batch, &input, &packed, &epilogue, &mut got, isa, &threads,
            ),
            Kind::Depthwise => depthwise::run(
                &s, c.batch, &input, &packed, &epilogue, &mut got, isa, &threads,
            ),
        };
        prop_assert!(r.is_ok(), "{isa:?}: {r:?}");
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let oc = (i / plane) % s.out_c;
            let scale = magnitude[i]
                + if c.bias { bias[oc].abs() } else { 0.0 }
                + if c.residual { residual[i].abs() } else { 0.0 };
            let tol = (taps + 4.0) * u * scale;
            prop_assert!(
                (g - w).abs() <= tol,
                "{kind:?} {isa:?} element {i}: got {g}, want {w} (tolerance {tol}) in {c:?}"
            );
        }
    }
    Ok(())
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Clip { min: 0.0, max: 6.0 }),
        Just(Activation::Clip {
            min: -0.25,
            max: 0.5
        }),
    ]
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
        batch in 1usize..=2,
        bias in any::<bool>(),
        residual in any::<bool>(),
        activation in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) -> Option<Case> {
        let (group, cin_g) = match group_pick {
            0 => (2, cin_g),
            1 => (8, cin_g),
            2 => (32, cin_g.min(8)),
            _ => (cin_g.max(2), 1),
        };
        let out_h = out_size(in_h, 3, stride.0, pads[0], pads[2])?;
        let out_w = out_size(in_w, 3, stride.1, pads[1], pads[3])?;
        let shape = ConvShape {
            in_c: group * cin_g,
            in_h,
            in_w,
            out_c: group * cout_g,
            out_h,
            out_w,
            kernel: [3, 3],
            stride: [stride.0, stride.1],
            dilation: [1, 1],
            pads,
            group,
        };
        // Keeps the f64 reference fast enough for many cases.
        (batch * shape.macs() <= 3_000_000).then_some(Case {
            shape, batch, bias, residual, activation, threads, seed,
        })
    }
}

prop_compose! {
    /// A depthwise 3×3 or 5×5 conv with 1..48 channels, strides 1/2, pads up to k-1 per side.
    fn depthwise_case()(
        channels in 1usize..=48,
        k in prop_oneof![Just(3usize), Just(5usize)],
        in_h in 1usize..=19,
        in_w in 1usize..=41,
        stride in (1usize..=2, 1usize..=2),
        pads in [0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4],
        batch in 1usize..=2,
        bias in any::<bool>(),
        residual in any::<bool>(),
        activation in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) -> Option<Case> {
        let pads = pads.map(|p| p.min(k - 1));
        let out_h = out_size(in_h, k, stride.0, pads[0], pads[2])?;
        let out_w = out_size(in_w, k, stride.1, pads[1], pads[3])?;
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
        Some(Case { shape, batch, bias, residual, activation, threads, seed })
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
    fn depthwise_matches_reference(case in depthwise_case()) {
        prop_assume!(case.is_some());
        let case = case.unwrap();
        // One channel per group and a single channel is not "grouped"; depthwise needs group == C.
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

fn resnext_shape(c: usize, size: usize, stride: usize) -> ConvShape {
    let out = (size + 2 - 3) / stride + 1;
    ConvShape {
        in_c: c,
        in_h: size,
        in_w: size,
        out_c: c,
        out_h: out,
        out_w: out,
        kernel: [3, 3],
        stride: [stride, stride],
        dilation: [1, 1],
        pads: [1, 1, 1, 1],
        group: 32,
    }
}

#[test]
fn resnext50_grouped_shapes_match_reference() {
    println!("tiers tested: {:?}", Isa::all_supported());
    for (i, &(c, size, stride)) in RESNEXT50.iter().enumerate() {
        let case = Case {
            shape: resnext_shape(c, size, stride),
            batch: 1,
            bias: true,
            residual: i % 2 == 0,
            activation: Activation::Relu,
            threads: 2,
            seed: i as u64,
        };
        check_case(Kind::Grouped, &case).unwrap();
    }
}

#[test]
fn mobilenet_v2_depthwise_shapes_match_reference() {
    for (i, &(c, size, stride)) in [(32, 112, 1), (96, 112, 2), (144, 56, 1), (960, 7, 1)]
        .iter()
        .enumerate()
    {
        let mut shape = resnext_shape(c, size, stride);
        shape.group = c;
        let case = Case {
            shape,
            batch: 1,
            bias: true,
            residual: false,
            activation: Activation::Clip { min: 0.0, max: 6.0 },
            threads: 2,
            seed: 100 + i as u64,
        };
        check_case(Kind::Depthwise, &case).unwrap();
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
    for isa in Isa::all_supported() {
        let short = grouped::run(&s, 1, &input[1..], &packed, &ep, &mut out, isa, &t);
        assert!(
            matches!(short, Err(KernelError::Length { .. })),
            "{short:?}"
        );
        let two = grouped::run(&s, 2, &input, &packed, &ep, &mut out, isa, &t);
        assert!(matches!(two, Err(KernelError::Length { .. })), "{two:?}");
        let bias = [0.0; 3];
        let ep_bad = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        let b = grouped::run(&s, 1, &input, &packed, &ep_bad, &mut out, isa, &t);
        assert!(matches!(b, Err(KernelError::Length { .. })), "{b:?}");
        let mut dilated = s;
        dilated.dilation = [2, 2];
        let d = grouped::run(&dilated, 1, &input, &packed, &ep, &mut out, isa, &t);
        assert!(matches!(d, Err(KernelError::BadShape(_))), "{d:?}");
        let mut wrong_out = s;
        wrong_out.out_h += 1;
        let w = grouped::run(&wrong_out, 1, &input, &packed, &ep, &mut out, isa, &t);
        assert!(matches!(w, Err(KernelError::BadShape(_))), "{w:?}");
        let not_dw = depthwise::run(&s, 1, &input, &packed, &ep, &mut out, isa, &t);
        assert!(
            matches!(not_dw, Err(KernelError::BadShape(_))),
            "{not_dw:?}"
        );
    }
    // A weight slice of the wrong length packs to nothing, which `run` rejects.
    assert!(grouped::pack(&s, &[1.0; 5]).is_empty());
    assert!(!grouped::supports(&ConvShape { group: 1, ..s }));
}
