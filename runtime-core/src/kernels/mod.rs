//! Kernels and the shape descriptions they share. `reference` holds the plain-loop oracle; fast
//! kernels live beside it, per ISA, and are tested against it.

pub mod blocked;
pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod direct_bf16;
pub mod elementwise;
pub mod gemm;
pub(crate) mod gemv;
pub mod grouped;
pub mod implicit;
pub mod int8;
pub mod layer_norm;
pub(crate) mod math;
pub mod pool;
pub mod reference;
pub mod squeeze_excite;
pub mod winograd;

/// Prefetches piece `part` of `parts` of `data`'s cache lines into L2: kernels spread the fetch of
/// what their next call reads over the tiles of this one, so that data which is in no cache (the
/// weights, read once per model run) arrives while they compute. A no-op off x86-64.
#[inline]
pub(crate) fn prefetch_piece(data: &[f32], part: usize, parts: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = data.len().div_ceil(16);
        for line in part * lines / parts.max(1)..(part + 1) * lines / parts.max(1) {
            // SAFETY: SSE is part of x86-64, and a prefetch never faults (nor reads past `data`:
            // every line it names starts inside it).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                    data.as_ptr().wrapping_add(16 * line) as *const i8,
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, part, parts);
}

/// The 8 floats at `p`, `p + S`, …, `p + 7·S` (`S` 1 or 2): one load, or at stride 2 two loads
/// with their even lanes kept in order. Shared by the AVX2 row and plane conv kernels and the
/// stride-2 subsampling of strided 1×1 convs.
///
/// # Safety
/// AVX2; `p` must be readable for `8·S` floats.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn load_strided<const S: usize>(p: *const f32) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: `8·S` floats from `p` (the contract).
    unsafe {
        if S == 1 {
            _mm256_loadu_ps(p)
        } else {
            let (lo, hi) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            // Even lanes of lo, hi in order: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the
            // 64-bit quarters reordered 0, 2, 1, 3.
            let even = _mm256_shuffle_ps::<0x88>(lo, hi);
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(even)))
        }
    }
}

/// `out[j] = line[j · step]` for every `j` of `out` (`line` long enough): the subsampling of
/// strided 1×1 convs and the stems' phase-split input; at step 2 on the SIMD tiers, eight at a
/// time ([`halve_avx2`]). `isa` must be supported by this CPU.
pub(crate) fn gather_strided(
    line: &[f32],
    step: usize,
    out: &mut [f32],
    isa: crate::exec::isa::Isa,
) {
    #[cfg(target_arch = "x86_64")]
    if step == 2 && isa != crate::exec::isa::Isa::Generic {
        // SAFETY: both SIMD tiers have AVX2, and the caller passes a supported tier.
        unsafe { halve_avx2(line, out) };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    for (o, &x) in out.iter_mut().zip(line.iter().step_by(step)) {
        *o = x;
    }
}

/// `row[i] = line[2·i]`, eight at a time.
///
/// # Safety
/// AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn halve_avx2(line: &[f32], row: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut i = 0;
    // Whole vectors while 16 input floats remain from `2·i`.
    while i + 8 <= row.len() && 2 * i + 16 <= line.len() {
        // SAFETY: `line[2i..2i + 16]` and `row[i..i + 8]` are in bounds (the loop condition).
        unsafe {
            let v = load_strided::<2>(line.as_ptr().add(2 * i));
            _mm256_storeu_ps(row.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    for (o, &x) in row[i..].iter_mut().zip(line[2 * i..].iter().step_by(2)) {
        *o = x;
    }
}

/// A kernel was handed slices or a shape that do not fit together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("{what}: expected {expected} elements, got {actual}")]
    Length {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("bad shape: {0}")]
    BadShape(String),
}

pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            actual,
        })
    }
}

/// [`check_len`] for a buffer that may be longer than `needed` (kernel scratch).
pub(crate) fn check_min_len(
    what: &'static str,
    needed: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if actual >= needed {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected: needed,
            actual,
        })
    }
}

/// The activation applied last by a fused epilogue (or by a standalone activation node).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0.0, max: 6.0 }`.
    Clip {
        min: f32,
        max: f32,
    },
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    Tanh,
    /// `min(max(alpha·x + beta, 0), 1)` (ONNX HardSigmoid; PyTorch's is alpha 1/6, beta 1/2).
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · min(max(x + 3, 0), 6) / 6`.
    HardSwish,
    /// `x · sigmoid(x)` (SiLU, Swish).
    Silu,
    /// `x` for `x >= 0`, else `alpha·x`.
    LeakyRelu {
        alpha: f32,
    },
    /// `x` for `x > 0`, else `alpha·(e^x − 1)`.
    Elu {
        alpha: f32,
    },
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, the exact GELU.
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, GELU's tanh approximation.
    GeluTanh,
    /// The error function.
    Erf,
}

impl Activation {
    /// Applies the activation. A NaN stays NaN (as in PyTorch): every tier computes exactly
    /// `if x < lo { lo } else { x }` then `if y > hi { hi } else { y }` for the clamps, which is what
    /// the SIMD tiers' `max_ps(lo, x)` / `min_ps(hi, y)` do (they return the second operand on NaN);
    /// the transcendental ones propagate NaN through their arithmetic.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Activation::Clip { min, max } => clamp_nan(x, min, max),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::HardSigmoid { alpha, beta } => clamp_nan(alpha * x + beta, 0.0, 1.0),
            Activation::HardSwish => x * clamp_nan(x + 3.0, 0.0, 6.0) / 6.0,
            Activation::Silu => x * sigmoid(x),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            Activation::Gelu => {
                let x = x as f64;
                (0.5 * x * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
            }
            Activation::GeluTanh => {
                let x = x as f64;
                let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                (0.5 * x * (1.0 + inner.tanh())) as f32
            }
            Activation::Erf => erf_f64(x as f64) as f32,
        }
    }

    /// Whether the SIMD tiers compute the activation in vector registers: all of them do, the
    /// transcendental ones by the vector math of `kernels::math` (error bounds there).
    pub fn is_vectorised(self) -> bool {
        true
    }

    /// Whether the activation needs `exp` or `erf` (costly; out of line in the epilogues).
    pub fn is_transcendental(self) -> bool {
        matches!(
            self,
            Activation::Sigmoid
                | Activation::Tanh
                | Activation::Silu
                | Activation::Elu { .. }
                | Activation::Gelu
                | Activation::GeluTanh
                | Activation::Erf
        )
    }
}

/// `min(max(x, lo), hi)`, keeping a NaN `x` (see [`Activation::apply`]).
#[inline(always)]
fn clamp_nan(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x < lo { lo } else { x };
    if y > hi { hi } else { y }
}

/// `1 / (1 + e^-x)`, in f64 so that neither tail loses precision.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

/// The error function in f64, accurate to about 1e-7 absolute (plenty for an f32 result): the
/// Maclaurin series for `|x| < 0.5`, else `1 − erfc(|x|)` by the Chebyshev-fitted `erfc` of
/// Numerical Recipes (fractional error below 1.2e-7). NaN gives NaN; ±∞ give ±1.
pub fn erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let z = x.abs();
    if z < 0.5 {
        // erf(x) = 2/√π · Σ (−1)^n x^(2n+1) / (n! (2n+1)); 12 terms leave < 1e-16 at |x| = 0.5.
        let (mut term, mut sum) = (x, x);
        for n in 1..12 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        return sum * std::f64::consts::FRAC_2_SQRT_PI;
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    (1.0 - erfc).copysign(x)
}

/// The larger of `acc` and `x`, NaN-propagating (unlike `f32::max`, which drops a NaN): max pooling
/// over a window holding a NaN gives NaN, as in PyTorch. Every tier's max pool folds with this.
#[inline(always)]
pub fn max_nan(acc: f32, x: f32) -> f32 {
    if x > acc || x.is_nan() { x } else { acc }
}

/// What a conv or dense kernel does after its MACs: `out = act(acc + bias[c] + residual[i])`, where
/// `c` is the output channel and `i` the output element, in the output's own layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// Checks the bias and residual lengths for an output of `batch × channels × spatial`.
    pub fn check(&self, batch: usize, channels: usize, spatial: usize) -> Result<(), KernelError> {
        if let Some(b) = self.bias {
            check_len("bias", channels, b.len())?;
        }
        if let Some(r) = self.residual {
            check_len("residual", batch * channels * spatial, r.len())?;
        }
        Ok(())
    }

    /// The epilogue of output element `index` of channel `channel`.
    #[inline(always)]
    pub fn apply(&self, acc: f32, channel: usize, index: usize) -> f32 {
        let mut v = acc;
        if let Some(b) = self.bias {
            v += b[channel];
        }
        if let Some(r) = self.residual {
            v += r[index];
        }
        self.activation.apply(v)
    }
}

/// One conv call's shape and buffers: `output = act(conv(input) + bias + residual)` over `batch`
/// items, with weights `packed` for the algorithm that runs it and `scratch` of at least the
/// algorithm's `conv::scratch_len` floats (none for the direct kernels).
pub struct ConvArgs<'a> {
    pub shape: ConvShape,
    pub batch: usize,
    pub input: &'a [f32],
    pub packed: &'a [f32],
    pub epilogue: Epilogue<'a>,
    pub output: &'a mut [f32],
    pub scratch: &'a mut [f32],
}

/// A kernel call over `batch · channels` planes of `spatial` elements each: `input` to `output`
/// (global average pooling, NCHW8c reorders).
pub struct PlanesArgs<'a> {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub input: &'a [f32],
    pub output: &'a mut [f32],
}

impl PlanesArgs<'_> {
    /// `batch · channels · spatial` (an error if it overflows), checked against the lengths of the
    /// input and the output, named `what[0]` and `what[1]` in the errors.
    pub(crate) fn checked_len(&self, what: [&'static str; 2]) -> Result<usize, KernelError> {
        let len = self
            .batch
            .checked_mul(self.channels)
            .and_then(|planes| planes.checked_mul(self.spatial))
            .ok_or_else(|| KernelError::BadShape(format!("{} size overflows", what[0])))?;
        check_len(what[0], len, self.input.len())?;
        check_len(what[1], len, self.output.len())?;
        Ok(len)
    }
}

/// The parameters of an inference BatchNorm over channels: `y = (x − mean) / sqrt(var + epsilon) ·
/// gamma + beta`, one entry per channel in each slice.
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub mean: &'a [f32],
    pub var: &'a [f32],
    pub epsilon: f32,
}

/// The static shape of one conv layer (per batch item), NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub group: usize,
}

impl ConvShape {
    /// A square `hw × hw` input, a square `kernel`, the same `stride` both ways and `pad` on every
    /// side, dilation 1; the output size follows (0 where the kernel does not fit the padded input,
    /// the stride is 0 or the padded size overflows, which [`ConvShape::check`] then rejects).
    pub fn square(
        in_c: usize,
        hw: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        group: usize,
    ) -> ConvShape {
        let out = pad
            .checked_mul(2)
            .and_then(|pads| pads.checked_add(hw))
            .and_then(|padded| padded.checked_sub(kernel))
            .and_then(|span| span.checked_div(stride))
            .map_or(0, |steps| steps + 1);
        ConvShape {
            in_c,
            in_h: hw,
            in_w: hw,
            out_c,
            out_h: out,
            out_w: out,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            group,
        }
    }

    pub fn input_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    pub fn output_len(&self) -> usize {
        self.out_c * self.out_h * self.out_w
    }

    pub fn weight_len(&self) -> usize {
        self.out_c * (self.in_c / self.group.max(1)) * self.kernel[0] * self.kernel[1]
    }

    /// Multiply-accumulates per batch item.
    pub fn macs(&self) -> usize {
        self.output_len() * (self.in_c / self.group.max(1)) * self.kernel[0] * self.kernel[1]
    }

    /// Checks that the shape is self-consistent: groups divide channels, and the output size is what
    /// the input, kernel, stride, dilation and pads give.
    pub fn check(&self) -> Result<(), KernelError> {
        let bad = |m: String| Err(KernelError::BadShape(m));
        if self.group == 0
            || !self.in_c.is_multiple_of(self.group)
            || !self.out_c.is_multiple_of(self.group)
        {
            return bad(format!(
                "group {} must divide {} and {} channels",
                self.group, self.in_c, self.out_c
            ));
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return bad("kernel, stride and dilation must be positive".into());
        }
        // Checked arithmetic: absurd sizes are an error, not an overflow.
        let fits = [
            [self.in_c, self.in_h, self.in_w],
            [self.out_c, self.out_h, self.out_w],
        ]
        .iter()
        .all(|l| {
            l.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_some()
        }) && self.weight_len_checked().is_some()
            && self.macs_checked().is_some();
        if !fits {
            return bad(format!("{self:?} is too large"));
        }
        for axis in 0..2 {
            let size = [self.in_h, self.in_w][axis]
                .checked_add(self.pads[axis])
                .and_then(|s| s.checked_add(self.pads[axis + 2]));
            let span = (self.kernel[axis] - 1)
                .checked_mul(self.dilation[axis])
                .and_then(|s| s.checked_add(1));
            let want = match (size, span) {
                (Some(size), Some(span)) if span <= size => (size - span) / self.stride[axis] + 1,
                _ => 0,
            };
            if want == 0 || want != [self.out_h, self.out_w][axis] {
                return bad(format!("{self:?} has an inconsistent output size"));
            }
        }
        Ok(())
    }

    fn weight_len_checked(&self) -> Option<usize> {
        [
            self.in_c / self.group.max(1),
            self.kernel[0],
            self.kernel[1],
        ]
        .iter()
        .try_fold(self.out_c, |a, &d| a.checked_mul(d))
    }

    fn macs_checked(&self) -> Option<usize> {
        [
            self.in_c / self.group.max(1),
            self.kernel[0],
            self.kernel[1],
        ]
        .iter()
        .try_fold(self.output_len(), |a, &d| a.checked_mul(d))
    }
}

/// The static shape of one pooling layer (per batch item), NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolShape {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl PoolShape {
    /// Every window must hold at least one in-bounds element: pads smaller than the kernel, and the
    /// last window starting inside the input or its leading padding.
    pub fn check(&self) -> Result<(), KernelError> {
        let bad = |m: String| Err(KernelError::BadShape(m));
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return bad("pool kernel and stride must be positive".into());
        }
        let lens = [
            [self.channels, self.in_h, self.in_w],
            [self.channels, self.out_h, self.out_w],
        ];
        if !lens.iter().all(|l| {
            l.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_some()
        }) {
            return bad(format!("{self:?} is too large"));
        }
        for axis in 0..2 {
            let (k, p0, p1) = (self.kernel[axis], self.pads[axis], self.pads[axis + 2]);
            if p0 >= k || p1 >= k {
                return bad(format!(
                    "pool pads {:?} must be smaller than the kernel {:?}",
                    self.pads, self.kernel
                ));
            }
            let (size, out) = ([self.in_h, self.in_w][axis], [self.out_h, self.out_w][axis]);
            let last = (out.max(1) - 1).checked_mul(self.stride[axis]);
            if out == 0 || last.is_none_or(|l| l >= size.saturating_add(p0)) {
                return bad(format!("{self:?}: the last window lies in the padding"));
            }
        }
        Ok(())
    }
}

/// The transpose of an 8 × 8 matrix held as 8 row vectors. Shared by the grouped conv's output
/// tiles and the NCHW8c reorders.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx")]
pub(crate) fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// A `*mut f32` that tasks on other threads write through, for kernels that split one output
/// buffer among the tasks of [`Threads::run`](crate::exec::threads::Threads::run): each task writes a
/// disjoint part, and the owning `&mut [f32]` outlives the `run`, which returns only when every
/// task is done. Each use states, at its `unsafe` block, why its parts are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub(crate) *mut f32);
// SAFETY: see the type's documentation: tasks write disjoint parts, and the buffer outlives them.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Through a method, so closures capture the whole (`Sync`) wrapper, not its field.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::arch::x86_64::*;

    #[test]
    fn transpose8_transposes() {
        if !is_x86_feature_detected!("avx") {
            eprintln!("skipped: no AVX");
            return;
        }
        let m: Vec<f32> = (0..64).map(|i| i as f32).collect();
        // SAFETY: AVX was detected above; each load reads 8 of the 64 floats.
        let out = unsafe {
            transpose8(std::array::from_fn(|r| {
                _mm256_loadu_ps(m.as_ptr().add(8 * r))
            }))
        };
        for (c, v) in out.iter().enumerate() {
            let mut col = [0.0f32; 8];
            // SAFETY: AVX was detected; `col` holds 8 floats.
            unsafe { _mm256_storeu_ps(col.as_mut_ptr(), *v) };
            let want: Vec<f32> = (0..8).map(|r| m[8 * r + c]).collect();
            assert_eq!(col.to_vec(), want, "column {c}");
        }
    }
}
