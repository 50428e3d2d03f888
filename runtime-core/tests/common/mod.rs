//! Helpers shared by the kernel property tests: seeded operands, the reference output and its error
//! scale, the tiers to test, the tolerance rule and the per-tier comparison, and proptest strategies.
//!
//! Tolerance of a sum of products, per output element:
//! `|fast − reference| ≤ (n + 4) · u · (Σ|x·w| + |bias| + |residual|)` with `u = 2⁻²⁴` and `n` the
//! products summed per output. The reference accumulates in f64 and rounds once; the fast kernels
//! sum `n` products in f32 (FMA) in some order, whose rounding error is at most
//! `γ_n · Σ|x·w| ≈ n·u·Σ|x·w|`; the bias and residual adds round once each (`u` times the running
//! magnitude), the reference rounds once more, and the clamping activations are 1-Lipschitz and exact:
//! hence `n + 4`. `Σ|x·w| + |bias| + |residual|` is the reference run on the absolute values. The
//! other activations scale an input error by at most their Lipschitz constant ([`lipschitz`]) and
//! round their own result once, possibly the other way for two nearby inputs: the error scale is
//! `L · (Σ|x·w| + |bias| + |residual|) + |reference output|`.

// Each test crate uses its own subset.
#![allow(dead_code)]

use proptest::prelude::*;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::{
    Activation, ConvShape, Epilogue, KernelError, PoolShape, reference,
};

/// The unit roundoff of f32, `2⁻²⁴`.
pub const U: f32 = f32::EPSILON / 2.0;

/// Deterministic values in [-1, 1) from a seed (xorshift64*).
pub fn values(seed: u64, len: usize) -> Vec<f32> {
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

/// Element-wise `|v|`.
pub fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Equal, or both NaN: the bit-for-bit agreement of kernels that compute exactly what the
/// reference computes.
pub fn same(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The tolerance of the module doc for `n` products summed per output and error scale `magnitude`.
pub fn tolerance(n: usize, magnitude: f32) -> f32 {
    (n as f32 + 4.0) * U * magnitude
}

/// The output size of one axis, or `None` where the window does not fit in the padded input.
pub fn out_size(
    size: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    p0: usize,
    p1: usize,
) -> Option<usize> {
    let padded = size + p0 + p1;
    let span = dilation * (k - 1) + 1;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

/// The tiers to test: those this CPU has, as the build script probed them (`host_avx2`,
/// `host_avx512`); each must also be detected at run time. A tier the CPU lacks is reported by the
/// ignored test of [`tier_coverage`] in every binary that includes this module.
pub fn tiers() -> Vec<Isa> {
    let mut tiers = vec![Isa::Generic];
    if cfg!(host_avx2) {
        tiers.push(Isa::Avx2);
    }
    if cfg!(host_avx512) {
        tiers.push(Isa::Avx512);
    }
    for isa in &tiers {
        assert!(
            isa.supported(),
            "the build host has the {} tier but this CPU lacks it",
            isa.name()
        );
    }
    tiers
}

/// One test per tier in each kernel test binary: the tests loop over [`tiers`], so a tier this CPU
/// lacks is untested, and its test here says so as ignored (and fails when run on request).
mod tier_coverage {
    use super::*;

    fn covered(isa: Isa) {
        assert!(
            isa.supported() && tiers().contains(&isa),
            "the {} kernels are not tested: this CPU lacks the tier",
            isa.name()
        );
    }

    #[test]
    fn generic() {
        covered(Isa::Generic);
    }

    #[test]
    #[cfg_attr(not(host_avx2), ignore = "CPU lacks AVX2+FMA")]
    fn avx2() {
        covered(Isa::Avx2);
    }

    #[test]
    #[cfg_attr(not(host_avx512), ignore = "CPU lacks AVX-512")]
    fn avx512() {
        covered(Isa::Avx512);
    }
}

/// One conv test case: a shape and its setting.
#[derive(Clone, Debug)]
pub struct Case {
    pub shape: ConvShape,
    pub setting: Setting,
}

/// How a kernel is run, besides its shape: the batch, the fused epilogue, the thread count and the
/// seed of the operands.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub batch: usize,
    pub bias: bool,
    pub residual: bool,
    pub activation: Activation,
    pub threads: usize,
    pub seed: u64,
}

impl Case {
    /// ResNeXt's usual layer epilogue (bias, residual, ReLU) on one image with seed 7.
    pub fn fused(shape: ConvShape, threads: usize) -> Case {
        let setting = Setting {
            batch: 1,
            bias: true,
            residual: true,
            activation: Activation::Relu,
            threads,
            seed: 7,
        };
        Case { shape, setting }
    }

    /// The operands of this case.
    pub fn operands(&self) -> Operands {
        let (s, batch) = (&self.shape, self.setting.batch);
        let lens = [
            batch * s.input_len(),
            s.weight_len(),
            s.out_c,
            batch * s.output_len(),
        ];
        Operands::new(lens, self.setting)
    }

    /// Packs the weight with `pack`, then runs `run(isa, input, packed, epilogue, threads, out)` on
    /// every supported tier and checks it against `reference::conv2d` within [`tolerance`].
    pub fn check<P>(
        &self,
        what: &str,
        pack: impl FnOnce(&[f32]) -> P,
        run: impl Fn(Isa, &[f32], &P, &Epilogue, &Threads, &mut [f32]) -> Result<(), KernelError>,
    ) -> Result<(), TestCaseError> {
        let (s, batch) = (self.shape, self.setting.batch);
        let ops = self.operands();
        let (want, magnitude) = ops.reference(batch * s.output_len(), |x, w, ep, out| {
            reference::conv2d(&s, batch, x, w, ep, out)
        });
        let taps = self.taps();
        let packed = pack(&ops.weight);
        let threads = Threads::new(self.setting.threads);
        let ep = ops.epilogue();
        check_tiers(
            &format!("{what} in {self:?}"),
            &want,
            |i| tolerance(taps, magnitude[i]),
            |isa, out| run(isa, &ops.input, &packed, &ep, &threads, out),
        )
    }

    /// The products summed per output element (`cin/group · kh · kw`).
    pub fn taps(&self) -> usize {
        let s = &self.shape;
        s.in_c / s.group * s.kernel[0] * s.kernel[1]
    }
}

/// The operands of one kernel call, drawn from the setting's seed (input, weight, bias and residual
/// from `seed`, `seed ^ 1`, `seed ^ 2`, `seed ^ 3`), and the setting's epilogue.
pub struct Operands {
    pub input: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub residual: Vec<f32>,
    pub setting: Setting,
}

impl Operands {
    /// Operands of lengths `[input, weight, bias, residual]`.
    pub fn new(lens: [usize; 4], setting: Setting) -> Operands {
        let seed = setting.seed;
        Operands {
            input: values(seed, lens[0]),
            weight: values(seed ^ 1, lens[1]),
            bias: values(seed ^ 2, lens[2]),
            residual: values(seed ^ 3, lens[3]),
            setting,
        }
    }

    /// The fused epilogue of the call.
    pub fn epilogue(&self) -> Epilogue<'_> {
        Epilogue {
            bias: self.setting.bias.then_some(&self.bias[..]),
            residual: self.setting.residual.then_some(&self.residual[..]),
            activation: self.setting.activation,
        }
    }

    /// The expected output (`reference` on the operands) and the error scale of each element
    /// (`reference` on their absolute values, without activation: `Σ|x·w| + |bias| + |residual|`).
    /// `reference(input, weight, epilogue, out)` writes `out_len` values.
    pub fn reference(
        &self,
        out_len: usize,
        reference: impl Fn(&[f32], &[f32], &Epilogue, &mut [f32]) -> Result<(), KernelError>,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut want = vec![0.0; out_len];
        reference(&self.input, &self.weight, &self.epilogue(), &mut want)
            .expect("the reference accepts the case");
        let (abs_bias, abs_residual) = (abs(&self.bias), abs(&self.residual));
        let abs_epilogue = Epilogue {
            bias: self.setting.bias.then_some(&abs_bias[..]),
            residual: self.setting.residual.then_some(&abs_residual[..]),
            activation: Activation::None,
        };
        let mut magnitude = vec![0.0; out_len];
        reference(
            &abs(&self.input),
            &abs(&self.weight),
            &abs_epilogue,
            &mut magnitude,
        )
        .expect("the reference accepts the case");
        let l = lipschitz(self.setting.activation);
        for (m, w) in magnitude.iter_mut().zip(&want) {
            *m = *m * l + w.abs();
        }
        (want, magnitude)
    }
}

/// Runs `run(isa, out)` on every supported tier into a NaN-filled output and requires
/// `|got − want| ≤ tol(i)` for every element `i`; `what` names the kernel and case in failures.
pub fn check_tiers(
    what: &str,
    want: &[f32],
    tol: impl Fn(usize) -> f32,
    run: impl FnMut(Isa, &mut [f32]) -> Result<(), KernelError>,
) -> Result<(), TestCaseError> {
    each_tier(what, want, run, |i, g, w| {
        let t = tol(i);
        ((g - w).abs() <= t).then_some(()).ok_or(t)
    })
}

/// As [`check_tiers`], but every element must equal the reference bit for bit ([`same`]).
pub fn check_tiers_exact(
    what: &str,
    want: &[f32],
    run: impl FnMut(Isa, &mut [f32]) -> Result<(), KernelError>,
) -> Result<(), TestCaseError> {
    each_tier(what, want, run, |_, g, w| {
        same(g, w).then_some(()).ok_or(0.0)
    })
}

/// `accept(i, got, want)` is `Err(tolerance)` for an element out of tolerance.
fn each_tier(
    what: &str,
    want: &[f32],
    mut run: impl FnMut(Isa, &mut [f32]) -> Result<(), KernelError>,
    accept: impl Fn(usize, f32, f32) -> Result<(), f32>,
) -> Result<(), TestCaseError> {
    for isa in tiers() {
        let mut got = vec![f32::NAN; want.len()];
        let r = run(isa, &mut got);
        prop_assert!(r.is_ok(), "{} {}: {:?}", isa.name(), what, r);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            if let Err(tol) = accept(i, g, w) {
                prop_assert!(
                    false,
                    "{} {} element {}: got {}, want {} (tolerance {})",
                    isa.name(),
                    what,
                    i,
                    g,
                    w,
                    tol
                );
            }
        }
    }
    Ok(())
}

/// Panics with the message of a failed check (for the `#[test]`s outside `proptest!`).
pub fn assert_ok(r: Result<(), TestCaseError>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// The epilogue activations: none, ReLU, ReLU6, an asymmetric clip, and every other activation
/// (with non-default parameters where it has them).
pub fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Clip { min: 0.0, max: 6.0 }),
        Just(Activation::Clip {
            min: -0.25,
            max: 0.5
        }),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        Just(Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5
        }),
        Just(Activation::HardSwish),
        Just(Activation::Silu),
        Just(Activation::LeakyRelu { alpha: 0.1 }),
        Just(Activation::Elu { alpha: 1.5 }),
        Just(Activation::Gelu),
        Just(Activation::GeluTanh),
        Just(Activation::Erf),
    ]
}

/// A bound on `|f(a) − f(b)| / |a − b|` for the activation `f`.
pub fn lipschitz(a: Activation) -> f32 {
    match a {
        Activation::None | Activation::Relu | Activation::Clip { .. } | Activation::Tanh => 1.0,
        Activation::Sigmoid => 0.25,
        Activation::HardSigmoid { alpha, .. } => alpha.abs(),
        // (2x + 3) / 6 at x = 3.
        Activation::HardSwish => 1.5,
        Activation::Silu => 1.1,
        Activation::LeakyRelu { alpha } => alpha.abs().max(1.0),
        Activation::Elu { alpha } => alpha.abs().max(1.0),
        Activation::Gelu | Activation::GeluTanh => 1.13,
        // 2/√π.
        Activation::Erf => 1.13,
    }
}

/// A case's setting: batch 1–2, with or without bias and residual, any [`activation`], 1–3 threads,
/// any seed.
pub fn setting() -> impl Strategy<Value = Setting> {
    (
        1usize..=2,
        any::<bool>(),
        any::<bool>(),
        activation(),
        1usize..=3,
        any::<u64>(),
    )
        .prop_map(
            |(batch, bias, residual, activation, threads, seed)| Setting {
                batch,
                bias,
                residual,
                activation,
                threads,
                seed,
            },
        )
}

/// A square pool with square window and stride and equal padding on every side (floor sizes).
pub fn square_pool(channels: usize, size: usize, k: usize, stride: usize, pad: usize) -> PoolShape {
    let out = (size + 2 * pad - k) / stride + 1;
    PoolShape {
        channels,
        in_h: size,
        in_w: size,
        out_h: out,
        out_w: out,
        kernel: [k, k],
        stride: [stride, stride],
        pads: [pad; 4],
    }
}

/// Runs this test binary again, every test but `skip`, with the environment variable `key` set to
/// `value` (a kernel path forced by it), and panics unless they all ran and passed: how a test
/// covers the paths a CPU has besides the one it picks by default.
pub fn rerun_with(key: &str, value: &str, skip: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args(["--skip", skip, "--test-threads", "2"])
        .env(key, value)
        .output()
        .expect("running the test binary again");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" passed;") && !text.contains(" 0 passed;"),
        "with {key}={value}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
