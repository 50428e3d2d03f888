//! Int8 convolution (and dense layers, as 1×1 convs on 1×1 maps) for models quantized to the
//! ONNX QDQ form: u8 activations × i8 weights summed in i32, requantized in the epilogue.
//!
//! Activations stay `f32` in the arena, holding the exact dequantized values `s · (q − zp)`; a
//! conv quantizes its input on entry (`round_ties_even(x / s) + zp`, clamped: the same `q` back,
//! since `s · (q − zp) / s` rounds to `q − zp`), so every other op of the graph runs unchanged in
//! fp32 between quantization points, as onnxruntime runs the ops it has no int8 kernel for.
//! Between two int8 convs the compiler may store the value as u8 codes instead ([`Codes`]): the
//! writer stores the requantized code, the reader takes it where it would have quantized.
//!
//! Three paths. Depthwise convs (`depthwise.rs`, [`depthwise_applies`]: one channel per group)
//! put output pixels in the lanes and broadcast each tap's weight, a channel's plane per task. The
//! direct one (`direct.rs`, [`direct_applies`]: one group or whole 4-channel blocks
//! per group, at least 16 output pixels) puts output pixels in the vector lanes and broadcasts
//! each output channel's weight words, so grouped convs do no padded work; it documents its
//! layout. The im2col one (dense layers, odd channels per group): per image the input is quantized
//! to a u8 copy, gathered im2col-style into one row of `K = in_c / group · kh · kw` bytes per
//! output pixel and group (padding is the input's zero point, `K` padded to a multiple of 4 with
//! zeros), and multiplied by the weights packed in groups of 16 output channels × 4 `k` (64 bytes:
//! one `vpdpbusd` operand). On both, `Σ (x − zp_x) · w = Σ x · w − zp_x · Σ w`, so the input zero
//! point is folded into the packed bias at pack time and the kernels sum raw `x · w`. The
//! epilogue, per output channel `c`: `v = (acc + bias'[c]) as f32 · multiplier[c]`, then either
//! [`QOutput::Requant`]: `round_ties_even(clamp(v, min − zp, max − zp)) · s_y` (the dequantized u8
//! result; the clamp is the u8 range, or ReLU's), or [`QOutput::Float`]: `v`, optionally ReLU'd;
//! then, with a [`Residual`], `fake-quantize(v + r)`. Int8 activations (ONNX `INT8`) are the u8
//! ones shifted by 128 (zero point + 128), which changes no result.
//!
//! Tiers: AMX-INT8 for the direct path's convs of a multiple of 16 channels a group where the CPU
//! has it (`tdpbsud`, `x86_64::direct_amx`), AVX-512 with VNNI (`vpdpbusd`, exact:
//! products and their 4-sums fit in i32), AVX2
//! (`vpmaddubsw` would saturate at i16, so the bytes are widened to i16 and summed in pairs by
//! `vpmaddwd`, exact; also AVX-512 without VNNI) and generic. All compute the same integers and
//! the same f32 epilogue, so every tier is bit-exact against `reference::qconv2d`.

mod depthwise;
pub(crate) mod direct;
mod generic;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use super::{ConvShape, KernelError, check_len, check_min_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

/// Output channels per packed weight block (one 512-bit register of i32 lanes).
pub const BLOCK_M: usize = 16;
/// Output pixels per task tile.
const TILE_P: usize = 64;
/// Output channels per task.
const TILE_M: usize = 64;

/// The quantization of a u8 tensor: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quant {
    pub scale: f32,
    /// In `0..=255` (an int8 tensor's zero point plus 128).
    pub zero_point: i32,
}

impl Quant {
    /// ONNX QuantizeLinear to u8: `clamp(round_ties_even(x / scale) + zero_point, 0, 255)`.
    #[inline]
    pub fn quantize(self, x: f32) -> u8 {
        // Clamping first (to integers, so it commutes with rounding) keeps the conversion in range
        // and lets `round_even` round; NaN becomes the low end.
        let lo = -self.zero_point as f32;
        let hi = (255 - self.zero_point) as f32;
        (round_even((x / self.scale).max(lo).min(hi)) as i32 + self.zero_point) as u8
    }

    /// ONNX DequantizeLinear: `scale · (q − zero_point)`.
    #[inline]
    pub fn dequantize(self, q: u8) -> f32 {
        (q as i32 - self.zero_point) as f32 * self.scale
    }

    /// Whether the scale is positive and finite and the zero point a u8.
    pub fn check(self) -> Result<(), KernelError> {
        if self.scale > 0.0 && self.scale.is_finite() && (0..=255).contains(&self.zero_point) {
            Ok(())
        } else {
            Err(KernelError::BadShape(format!(
                "quantization scale {} must be positive and finite, zero point {} in 0..=255",
                self.scale, self.zero_point
            )))
        }
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| ≤ 2²²`: adding and subtracting
/// `1.5 · 2²³` rounds in the FPU's (default, nearest-even) mode. The same result as
/// `f32::round_ties_even`, which without SSE4.1 in the baseline target is a libm call per element,
/// where this vectorises.
#[inline]
pub fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// What an int8 conv writes, per output channel `c`, from `v = (acc + bias[c]) as f32 · multiplier[c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QOutput {
    /// `v` is in output quantization steps (`multiplier = s_x · s_w[c] / s_y`): requantize to u8
    /// clamped to `min..=max` (0..=255, or from the zero point up for a fused ReLU) and write the
    /// dequantized value `quant.scale · (q − quant.zero_point)`.
    Requant { quant: Quant, min: i32, max: i32 },
    /// `v` is the real value (`multiplier = s_x · s_w[c]`): write it, ReLU'd if `relu`.
    Float { relu: bool },
}

impl QOutput {
    fn check(self) -> Result<(), KernelError> {
        match self {
            QOutput::Requant { quant, min, max } => {
                quant.check()?;
                if 0 <= min && min <= max && max <= 255 {
                    Ok(())
                } else {
                    Err(KernelError::BadShape(format!(
                        "requantization range {min}..={max} is not within 0..=255"
                    )))
                }
            }
            QOutput::Float { .. } => Ok(()),
        }
    }

    /// The epilogue of one output value: `(acc + bias) as f32 · multiplier`, then the output rule.
    /// Every tier computes exactly this.
    #[inline]
    pub fn apply(self, acc: i32, bias: i32, multiplier: f32) -> f32 {
        let v = acc.wrapping_add(bias) as f32 * multiplier;
        match self {
            QOutput::Requant { quant, min, max } => {
                let (lo, hi) = (
                    (min - quant.zero_point) as f32,
                    (max - quant.zero_point) as f32,
                );
                round_even(v.max(lo).min(hi)) * quant.scale
            }
            QOutput::Float { relu: true } => v.max(0.0),
            QOutput::Float { relu: false } => v,
        }
    }
}

/// The residual step fused into an int8 conv (ONNX QDQ's `Add → QuantizeLinear →
/// DequantizeLinear` after the conv): each output `y` (after the [`QOutput`] rule) becomes
/// `fake-quantize(y + r)` by `quant` clamped to `min..=max` (u8 domain), `r` the element of `input`
/// (same shape as the output) at the same index, all in f32 as the unfused `Add` and
/// [`fake_quantize`] compute it.
#[derive(Clone, Copy, Debug)]
pub struct Residual<'a> {
    pub input: &'a [f32],
    pub quant: Quant,
    pub min: i32,
    pub max: i32,
    pub arith: SumArith,
}

/// How a [`Residual`] step rounds the sum `y + r` to its quantization `(s_c, z_c)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SumArith {
    /// ONNX's definition, in f32: `round_ties_even((y + r) / s_c)`, `y` and `r` the dequantized
    /// operands.
    #[default]
    Onnx,
    /// onnxruntime's `QLinearAdd` on x86 (MLAS: what it runs for a QDQ model's
    /// `DequantizeLinear → Add → QuantizeLinear`), from the operands' u8 codes `a` (the Add's
    /// first input) and `b`: `round_ties_even(fma(a, r_a, fma(b, r_b, z_c − fma(r_a, z_a, r_b·z_b))))`
    /// in f32, `r_a = s_a/s_c`, `r_b = s_b/s_c` (onnxruntime 1.32 on all 65536 operand
    /// pairs for 82 scale sets, 40 random and those of three QDQ models: no difference;
    /// `bench/qladd_probe.py`). It differs from
    /// [`SumArith::Onnx`] by one step on up to ~1% of operands; matching it keeps a model's
    /// logits equal to onnxruntime's where one step in a residual sum grows through the layers
    /// after it. `conv` is the conv output's
    /// quantization (its [`QOutput::Requant`]), `input` the residual input's; both operands must
    /// lie on their grids.
    OnnxRuntime {
        conv: Quant,
        input: Quant,
        /// Whether the conv's output is the Add's first input.
        conv_first: bool,
    },
}

/// [`Residual`]'s arithmetic, without its input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SumRule {
    pub scale: f32,
    pub zero_point: i32,
    /// The clamp in quantization steps: `min − zp`, `max − zp`.
    pub lo: f32,
    pub hi: f32,
    /// [`SumArith::OnnxRuntime`]'s constants.
    pub ort: Option<OrtSum>,
}

/// [`SumArith::OnnxRuntime`] precomputed: the operands' quantizations, their scales over the
/// sum's and the f32 constant, each computed as MLAS computes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OrtSum {
    pub conv: Quant,
    pub input: Quant,
    /// `s_conv / s_c`, `s_input / s_c`.
    pub conv_ratio: f32,
    pub input_ratio: f32,
    /// Whether the conv's output is the Add's first operand `a`.
    pub conv_first: bool,
    /// `z_c − fma(r_a, z_a, r_b · z_b)`.
    pub fixed: f32,
}

impl OrtSum {
    /// `(a, r_a)` and `(b, r_b)` of the conv's and the input's `(code, ratio)`, in the Add's order.
    #[inline(always)]
    pub fn ordered<T>(&self, conv: (T, f32), input: (T, f32)) -> ((T, f32), (T, f32)) {
        if self.conv_first {
            (conv, input)
        } else {
            (input, conv)
        }
    }
}

impl SumRule {
    fn of(r: &Residual) -> SumRule {
        let ort = match r.arith {
            SumArith::Onnx => None,
            SumArith::OnnxRuntime {
                conv,
                input,
                conv_first,
            } => {
                let mut o = OrtSum {
                    conv,
                    input,
                    conv_ratio: conv.scale / r.quant.scale,
                    input_ratio: input.scale / r.quant.scale,
                    conv_first,
                    fixed: 0.0,
                };
                let ((za, ra), (zb, rb)) = o.ordered(
                    (conv.zero_point as f32, o.conv_ratio),
                    (input.zero_point as f32, o.input_ratio),
                );
                o.fixed = r.quant.zero_point as f32 - ra.mul_add(za, rb * zb);
                Some(o)
            }
        };
        SumRule {
            scale: r.quant.scale,
            zero_point: r.quant.zero_point,
            lo: (r.min.clamp(0, 255) - r.quant.zero_point) as f32,
            hi: (r.max.clamp(0, 255) - r.quant.zero_point) as f32,
            ort,
        }
    }

    /// The step on the conv's output `y` and the residual input `r` (dequantized values):
    /// `fake-quantize(y + r)` as [`fake_quantize`] computes it, or onnxruntime's arithmetic
    /// ([`SumArith::OnnxRuntime`]) on their codes.
    #[inline]
    pub fn apply(self, y: f32, r: f32) -> f32 {
        let steps = match self.ort {
            None => round_even(((y + r) / self.scale).max(self.lo).min(self.hi)),
            Some(o) => {
                // The codes of the operands (exact: each is `(q − z) · s` rounded once).
                let conv = round_even(y / o.conv.scale) + o.conv.zero_point as f32;
                let input = round_even(r / o.input.scale) + o.input.zero_point as f32;
                let ((a, ra), (b, rb)) = o.ordered((conv, o.conv_ratio), (input, o.input_ratio));
                // Rounded to the code first: the clamp and the zero point then act on integers.
                let code = round_even(a.mul_add(ra, b.mul_add(rb, o.fixed)));
                (code - self.zero_point as f32).max(self.lo).min(self.hi)
            }
        };
        steps * self.scale
    }
}

/// Applies `residual`'s step to `output` in place: `output[i] = fake-quantize(output[i] +
/// residual.input[i])` (what the kernels fuse; for the unfused reference composition).
pub fn add_residual(residual: &Residual, output: &mut [f32]) -> Result<(), KernelError> {
    residual.quant.check()?;
    check_len("int8 conv residual", output.len(), residual.input.len())?;
    let rule = SumRule::of(residual);
    for (y, &r) in output.iter_mut().zip(residual.input) {
        *y = rule.apply(*y, r);
    }
    Ok(())
}

/// The unpacked parameters of an int8 conv: weights `[out_c, in_c / group, kh, kw]`, the i32
/// bias (in units of `s_x · s_w[c]`, as ONNX QDQ stores it) and the per-channel multiplier of the
/// epilogue (see [`QOutput`]).
#[derive(Clone, Copy, Debug)]
pub struct QConvParams<'a> {
    pub weight: &'a [i8],
    pub bias: &'a [i32],
    pub multiplier: &'a [f32],
}

/// One int8 conv call: `input` (`[batch, in_c, in_h, in_w]`, f32) quantized with `input_quant`,
/// convolved with weights packed by [`pack`] for that input zero point, written to `output` by
/// `out` and then, if any, the `residual` step; `scratch` of at least [`scratch_len`] floats.
pub struct QConvArgs<'a> {
    pub shape: ConvShape,
    pub batch: usize,
    pub input: &'a [f32],
    pub input_quant: Quant,
    pub packed: &'a [f32],
    pub out: QOutput,
    pub residual: Option<Residual<'a>>,
    pub output: &'a mut [f32],
    pub scratch: &'a mut [f32],
    pub codes: Codes,
}

/// Which of an int8 conv's activations are stored as u8 codes rather than `f32` values: code `q`
/// of element `i` (NCHW order, the whole batch) in byte `i` of the buffer, which keeps its `f32`
/// length (a quarter of it used). Between two int8 convs this moves a quarter of the bytes and
/// skips the consumer's quantization (`round_ties_even(x / s)` gives back `q` exactly).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Codes {
    /// `input` holds codes of `input_quant`.
    pub input: bool,
    /// `output` gets codes: of the [`Residual`]'s quantization with a residual step, else of
    /// [`QOutput::Requant`]'s (a conv writing real values and no residual step has none).
    pub output: bool,
    /// The residual input holds codes of this quantization.
    pub residual: Option<Quant>,
}

/// A residual input: `f32` values, or u8 codes of a quantization (read as their dequantized
/// values, the same `f32` an int8 conv writing values would have stored).
#[derive(Clone, Copy)]
pub(crate) enum Addend<'a> {
    Real(&'a [f32]),
    Codes(&'a [u8], Quant),
}

impl<'a> Addend<'a> {
    /// Elements `at .. at + len`.
    #[inline]
    pub fn slice(self, at: usize, len: usize) -> Addend<'a> {
        match self {
            Addend::Real(x) => Addend::Real(&x[at..][..len]),
            Addend::Codes(x, q) => Addend::Codes(&x[at..][..len], q),
        }
    }

    /// Element `i`'s value.
    #[inline]
    pub fn at(self, i: usize) -> f32 {
        match self {
            Addend::Real(x) => x[i],
            Addend::Codes(x, q) => q.dequantize(x[i]),
        }
    }
}

/// One plane (or run) of an int8 conv's input: `f32` values to quantize, or u8 codes.
#[derive(Clone, Copy)]
pub(crate) enum Src<'a> {
    Real(&'a [f32]),
    Codes(&'a [u8]),
}

impl<'a> Src<'a> {
    /// Elements `at .. at + len`.
    #[inline]
    pub fn slice(self, at: usize, len: usize) -> Src<'a> {
        match self {
            Src::Real(x) => Src::Real(&x[at..][..len]),
            Src::Codes(x) => Src::Codes(&x[at..][..len]),
        }
    }

    pub fn len(self) -> usize {
        match self {
            Src::Real(x) => x.len(),
            Src::Codes(x) => x.len(),
        }
    }

    /// Element `i`'s code by `quant`.
    #[inline]
    pub fn code(self, i: usize, quant: Quant) -> u8 {
        match self {
            Src::Real(x) => quant.quantize(x[i]),
            Src::Codes(x) => x[i],
        }
    }
}

/// The address of element `at` of the output `y` points to: `at` floats on, or with `codes` `at`
/// bytes on (the pointer then only used through [`store`] and the byte stores of the kernels).
pub(crate) fn at_element(y: super::SharedOut, codes: Option<Quant>, at: usize) -> super::SharedOut {
    super::SharedOut(match codes {
        None => y.ptr().wrapping_add(at),
        Some(_) => (y.ptr() as *mut u8).wrapping_add(at) as *mut f32,
    })
}

/// Writes output element `at` (an index into the whole output) through `y`: the value `v`, or with
/// `codes` its u8 code at byte `at` (`v / s + zp`: `v` is a whole number of steps of `s`, so the
/// division is exact after rounding).
///
/// # Safety
/// Element `at` (byte `at` with `codes`) lies within the output buffer `y` points to, and no
/// other task writes it.
#[inline]
pub(crate) unsafe fn store(y: super::SharedOut, codes: Option<Quant>, at: usize, v: f32) {
    match codes {
        // SAFETY: the caller's contract.
        None => unsafe { *y.ptr().add(at) = v },
        Some(q) => {
            let code = (round_even(v / q.scale) as i32 + q.zero_point) as u8;
            // SAFETY: the caller's contract.
            unsafe { *(y.ptr() as *mut u8).add(at) = code };
        }
    }
}

/// `K` of one group, the bytes of one im2col row, padded to a multiple of 4.
fn k_padded(s: &ConvShape) -> usize {
    (s.in_c / s.group * s.kernel[0] * s.kernel[1]).next_multiple_of(4)
}

/// Output channels of one group, padded to whole blocks.
fn m_padded(s: &ConvShape) -> usize {
    (s.out_c / s.group).next_multiple_of(BLOCK_M)
}

/// Floats [`pack`] returns: for a depthwise conv ([`depthwise_applies`]) per channel its taps'
/// weights as i32, then the biases and multipliers; otherwise per group the weight bytes, then per group one i32 bias and then one
/// f32 multiplier per padded output channel; then, where the direct path applies
/// ([`direct_applies`]), its weights (`[out_c][in_c / group / 4][kh][kw]` words).
pub fn packed_len(s: &ConvShape) -> usize {
    if depthwise::applies(s) {
        return depthwise::packed_len(s);
    }
    let mp = m_padded(s);
    let direct = if direct::applies(s) {
        direct::weight_words(s)
    } else {
        0
    };
    s.group * (mp * k_padded(s) / 4 + 2 * mp) + direct
}

/// Scratch floats [`qconv2d`] needs: the quantized input and every group's im2col rows, as
/// bytes, or the direct path's quantized input, whichever is larger (the tier picks the path); for
/// a depthwise conv, its channels' quantized planes.
pub fn scratch_len(s: &ConvShape, _batch: usize, _threads: usize) -> usize {
    if depthwise::applies(s) {
        return depthwise::scratch_len(s);
    }
    let bytes = s.input_len() + s.group * s.out_h * s.out_w * k_padded(s);
    let direct = if direct::applies(s) {
        direct::Layout::of(s).input_words()
    } else {
        0
    };
    bytes.div_ceil(4).max(direct)
}

/// Whether a conv of this shape runs on the direct path (`direct.rs`: pixels in the lanes, no
/// padding of a group's channels), on every tier: one group, or a multiple of 4 input channels per
/// group, and at least 16 output pixels. Other convs run the im2col path.
pub fn direct_applies(s: &ConvShape) -> bool {
    direct::applies(s)
}

/// Whether a conv of this shape runs on the depthwise path (`depthwise.rs`, on every tier): one
/// input and one output channel per group, more than one group.
pub fn depthwise_applies(s: &ConvShape) -> bool {
    depthwise::applies(s)
}

/// Whether the int8 kernels support this conv: any group count, kernel, stride, dilation, padding
/// ([`ConvShape::check`]).
pub fn supports(s: &ConvShape) -> Result<(), KernelError> {
    s.check()
}

/// Packs an int8 conv's parameters for [`qconv2d`] with input zero point `input_zero_point` (u8
/// domain). Done at compile time. Fails where a sum could overflow i32.
pub fn pack(s: &ConvShape, input_zero_point: i32, p: QConvParams) -> Result<Vec<f32>, KernelError> {
    supports(s)?;
    let k = s.in_c / s.group * s.kernel[0] * s.kernel[1];
    check_len("int8 conv weight", s.out_c * k, p.weight.len())?;
    check_len("int8 conv bias", s.out_c, p.bias.len())?;
    check_len("int8 conv multiplier", s.out_c, p.multiplier.len())?;
    if let Some(m) = p.multiplier.iter().position(|v| !v.is_finite()) {
        return Err(KernelError::BadShape(format!(
            "int8 conv output channel {m}: multiplier {} is not finite",
            p.multiplier[m]
        )));
    }
    let fold = |m: usize| fold_bias(m, &p.weight[m * k..][..k], p.bias[m], input_zero_point);
    if depthwise::applies(s) {
        let bias = (0..s.out_c).map(fold).collect::<Result<Vec<_>, _>>()?;
        return Ok(depthwise::pack(s, p.weight, &bias, p.multiplier));
    }
    let (kp, mp) = (k_padded(s), m_padded(s));
    let mg = s.out_c / s.group;
    let mut bytes = vec![0u8; s.group * mp * kp];
    let mut bias = vec![0i32; s.group * mp];
    let mut mult = vec![0f32; s.group * mp];
    for oc in 0..s.out_c {
        let row = &p.weight[oc * k..][..k];
        // Group `g`'s channel `m` sits at padded channel `g · mp + m`.
        let (g, m) = (oc / mg, oc % mg);
        let block = &mut bytes[g * mp * kp..][..mp * kp];
        for (kk, &w) in row.iter().enumerate() {
            let at = ((m / BLOCK_M * kp / 4 + kk / 4) * BLOCK_M + m % BLOCK_M) * 4 + kk % 4;
            block[at] = w as u8;
        }
        let at = g * mp + m;
        bias[at] = fold(oc)?;
        mult[at] = p.multiplier[oc];
    }
    let mut out: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    out.extend(bias.iter().map(|&b| f32::from_bits(b as u32)));
    out.extend_from_slice(&mult);
    if direct::applies(s) {
        direct::pack_weights(s, p.weight, &mut out);
    }
    Ok(out)
}

/// Output channel `m`'s bias with the input zero point folded in (`bias − zp · Σ w` over its weight
/// `row`), or an error where it and the sum of the row's products could overflow i32.
fn fold_bias(m: usize, row: &[i8], bias: i32, input_zero_point: i32) -> Result<i32, KernelError> {
    // |Σ x·w| ≤ K · 255 · 128, and the bias correction as much again: keep both within i32.
    let bound = (row.len() as i64) * 255 * 128;
    let sum: i64 = row.iter().map(|&w| w as i64).sum();
    let folded = bias as i64 - input_zero_point as i64 * sum;
    if folded.abs() + bound > i32::MAX as i64 {
        return Err(KernelError::BadShape(format!(
            "int8 conv output channel {m}: bias {bias} and {} products may overflow i32",
            row.len()
        )));
    }
    Ok(folded as i32)
}

/// The packed operands as the kernels read them.
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    /// `[m_padded / 16][k_padded / 4][16][4]`.
    pub weight: &'a [u8],
    pub bias: &'a [i32],
    pub multiplier: &'a [f32],
    pub kp: usize,
}

/// One tile of work of one group: its output channels `m` (from a multiple of 16) × pixels `p`, reading
/// im2col rows `cols` (`[pixels][kp]`), writing `out[c · pixels + p]`.
pub(crate) struct Tile<'a> {
    pub packed: Packed<'a>,
    pub cols: &'a [u8],
    pub pixels: usize,
    pub m: std::ops::Range<usize>,
    pub p: std::ops::Range<usize>,
    pub out: QOutput,
    /// The residual step and the group's residual input (indexed as the group's output).
    pub sum: Option<(SumRule, Addend<'a>)>,
    /// Write codes of this quantization instead of values ([`store`]).
    pub codes: Option<Quant>,
}

impl Tile<'_> {
    /// Output `(m, p)`'s final value from its conv value `v` (after the output rule).
    #[inline]
    pub fn finish(&self, v: f32, m: usize, p: usize) -> f32 {
        match self.sum {
            Some((rule, r)) => rule.apply(v, r.at(m * self.pixels + p)),
            None => v,
        }
    }
}

/// Int8 conv on `ctx`'s tier and threads (see [`QConvArgs`] and the module doc).
pub fn qconv2d(ctx: &Ctx, args: QConvArgs) -> Result<(), KernelError> {
    let QConvArgs {
        shape: s,
        batch,
        input,
        input_quant,
        packed,
        out,
        residual,
        output,
        scratch,
        codes,
    } = args;
    supports(&s)?;
    input_quant.check()?;
    out.check()?;
    let out_codes = match (codes.output, out, &residual) {
        (false, _, _) => None,
        (true, _, Some(r)) => Some(r.quant),
        (true, QOutput::Requant { quant, .. }, None) => Some(quant),
        (true, QOutput::Float { .. }, None) => {
            return Err(KernelError::BadShape(
                "int8 conv: u8 output codes need a requantized output or a residual step".into(),
            ));
        }
    };
    if let Some(q) = codes.residual {
        q.check()?;
    }
    if let Some(r) = &residual {
        r.quant.check()?;
        check_len("int8 conv residual", batch * s.output_len(), r.input.len())?;
        if let SumArith::OnnxRuntime { conv, input, .. } = r.arith {
            input.check()?;
            if !matches!(out, QOutput::Requant { quant, .. } if quant == conv) {
                return Err(KernelError::BadShape(format!(
                    "int8 conv: onnxruntime's residual arithmetic needs the conv's output \
                     quantization ({conv:?}) as its requantization, not {out:?}"
                )));
            }
        }
    }
    let sum = residual.as_ref().map(SumRule::of);
    check_len("int8 conv input", batch * s.input_len(), input.len())?;
    check_len("int8 conv packed", packed_len(&s), packed.len())?;
    check_len("int8 conv output", batch * s.output_len(), output.len())?;
    check_min_len(
        "int8 conv scratch",
        scratch_len(&s, batch, 1),
        scratch.len(),
    )?;
    // The residual step and its input, as the paths read it.
    let sum = residual.as_ref().zip(sum).map(|(r, rule)| {
        let addend = match codes.residual {
            Some(q) => Addend::Codes(
                &bytemuck::cast_slice::<f32, u8>(r.input)[..batch * s.output_len()],
                q,
            ),
            None => Addend::Real(r.input),
        };
        (rule, addend)
    });
    // The input as the paths read it (image `n` at element `n · input_len`).
    let input = if codes.input {
        Src::Codes(&bytemuck::cast_slice::<f32, u8>(input)[..batch * s.input_len()])
    } else {
        Src::Real(input)
    };
    let tier = if use_vnni(ctx) {
        direct::Tier::Vnni
    } else if matches!(ctx.isa, Isa::Avx2 | Isa::Avx512) {
        direct::Tier::Avx2
    } else {
        direct::Tier::Generic
    };
    if depthwise::applies(&s) {
        depthwise::conv(
            ctx,
            tier,
            &s,
            batch,
            input,
            input_quant,
            packed,
            out,
            sum,
            scratch,
            output,
            out_codes,
        );
        return Ok(());
    }
    let (kp, mp, groups) = (k_padded(&s), m_padded(&s), s.group);
    let (cin_g, mg) = (s.in_c / groups, s.out_c / groups);
    let words: &[u32] = bytemuck::cast_slice(packed);
    let (w_words, rest) = words.split_at(groups * mp * kp / 4);
    let (bias, rest) = rest.split_at(groups * mp);
    let (mult, direct_w) = rest.split_at(groups * mp);
    let weight: &[u8] = bytemuck::cast_slice(w_words);
    let bias: &[i32] = bytemuck::cast_slice(bias);
    let mult: &[f32] = bytemuck::cast_slice(mult);
    let vnni = use_vnni(ctx);
    if direct::applies(&s) {
        let packed = Packed {
            weight,
            bias,
            multiplier: mult,
            kp,
        };
        let buf: &mut [u32] = bytemuck::cast_slice_mut(scratch);
        let output_ptr = super::SharedOut(output.as_mut_ptr());
        for n in 0..batch {
            let image_sum =
                sum.map(|(rule, r)| (rule, r.slice(n * s.output_len(), s.output_len())));
            direct::conv_image(
                ctx,
                tier,
                &s,
                input.slice(n * s.input_len(), s.input_len()),
                input_quant,
                packed,
                direct_w,
                out,
                image_sum,
                buf,
                at_element(output_ptr, out_codes, n * s.output_len()),
                out_codes,
            );
        }
        return Ok(());
    }
    let scratch: &mut [u8] = bytemuck::cast_slice_mut(scratch);
    let (quantized, rest) = scratch.split_at_mut(s.input_len());
    let pixels = s.out_h * s.out_w;
    let cols = &mut rest[..groups * pixels * kp];
    let isa = ctx.isa;
    let hw = s.in_h * s.in_w;
    let output_ptr = super::SharedOut(output.as_mut_ptr());
    for n in 0..batch {
        let image_sum = sum.map(|(rule, r)| (rule, r.slice(n * s.output_len(), s.output_len())));
        // The image's codes: the input's own, or quantized, a channel per task.
        let quantized: &[u8] = match input.slice(n * s.input_len(), s.input_len()) {
            Src::Codes(x) => x,
            Src::Real(x) => {
                let q_out = SharedBytes(quantized.as_mut_ptr());
                ctx.threads.run(s.in_c, &|c| {
                    // SAFETY: task `c` writes only channel `c`'s `hw` bytes of the `in_c · hw`
                    // buffer, which outlives the `run`.
                    let plane =
                        unsafe { std::slice::from_raw_parts_mut(q_out.ptr().add(c * hw), hw) };
                    for (q, &v) in plane.iter_mut().zip(&x[c * hw..][..hw]) {
                        *q = input_quant.quantize(v);
                    }
                });
                &*quantized
            }
        };
        // Gather every group's im2col rows, a group's tile of pixels per task.
        let p_tiles = pixels.div_ceil(TILE_P);
        let cols_out = SharedBytes(cols.as_mut_ptr());
        ctx.threads.run(groups * p_tiles, &|t| {
            let (g, pt) = (t / p_tiles, t % p_tiles);
            let p = pt * TILE_P..((pt + 1) * TILE_P).min(pixels);
            let at = (g * pixels + p.start) * kp;
            // SAFETY: task `t` writes only group `g`'s rows of pixels `p`, disjoint from every
            // other task's, inside the `groups · pixels · kp` bytes that outlive the `run`.
            let rows =
                unsafe { std::slice::from_raw_parts_mut(cols_out.ptr().add(at), p.len() * kp) };
            let x = &quantized[g * cin_g * hw..][..cin_g * hw];
            im2col(&s, cin_g, x, input_quant.zero_point as u8, kp, p, rows);
        });
        let cols = &*cols;
        let m_tiles = mg.div_ceil(TILE_M);
        let shared = at_element(output_ptr, out_codes, n * s.output_len());
        ctx.threads.run(groups * m_tiles * p_tiles, &|t| {
            let (g, rest) = (t / (m_tiles * p_tiles), t % (m_tiles * p_tiles));
            let (pt, mt) = (rest % p_tiles, rest / p_tiles);
            let tile = Tile {
                packed: Packed {
                    weight: &weight[g * mp * kp..][..mp * kp],
                    bias: &bias[g * mp..][..mp],
                    multiplier: &mult[g * mp..][..mp],
                    kp,
                },
                cols: &cols[g * pixels * kp..][..pixels * kp],
                pixels,
                m: mt * TILE_M..((mt + 1) * TILE_M).min(mg),
                p: pt * TILE_P..((pt + 1) * TILE_P).min(pixels),
                out,
                // Group `g`'s residual, as its output, from channel `g · mg`.
                sum: image_sum.map(|(rule, r)| (rule, r.slice(g * mg * pixels, mg * pixels))),
                codes: out_codes,
            };
            // Group `g`'s output channels start `g · mg · pixels` elements into the image's.
            let y = at_element(shared, out_codes, g * mg * pixels);
            run_tile(isa, vnni, &tile, y);
        });
    }
    Ok(())
}

/// A `*mut u8` that tasks write disjoint parts of (see `SharedOut`).
#[derive(Clone, Copy)]
struct SharedBytes(*mut u8);
// SAFETY: tasks write disjoint parts, and the buffer outlives them (each use says why).
unsafe impl Send for SharedBytes {}
// SAFETY: as above.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    fn ptr(self) -> *mut u8 {
        self.0
    }
}

/// Whether the direct path's convs of a multiple of 16 channels a group run on AMX-INT8 tiles in
/// this process (a CPU with AMX-INT8, the tile state granted, `RESNEXT_INT8` not `vnni`), on the
/// VNNI tier.
pub fn amx_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        direct::amx_enabled()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this call runs the VNNI kernel (AVX-512 tier on a CPU with AVX512_VNNI and BW).
fn use_vnni(ctx: &Ctx) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ctx.isa == Isa::Avx512
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ctx;
        false
    }
}

/// Runs one tile, writing through `y`: the image's output, `out_c · pixels` floats, of which each
/// tile writes only its own channels' pixels, disjoint from every other tile's.
#[allow(unused_variables)]
fn run_tile(isa: crate::exec::isa::Isa, vnni: bool, tile: &Tile, y: super::SharedOut) {
    #[cfg(target_arch = "x86_64")]
    {
        if vnni {
            // SAFETY: `use_vnni` checked AVX-512F, BW and VNNI at run time.
            return unsafe { x86_64::tile_vnni(tile, y) };
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512) {
            // SAFETY: both tiers imply AVX2 (`Isa::supported`), which the context's tier was
            // checked for.
            return unsafe { x86_64::tile_avx2(tile, y) };
        }
    }
    generic::tile(tile, y);
}

/// One im2col row of `kp` bytes for each output pixel of `pixels`, into `rows`, from the `cin`
/// channels of one group `x`: `row[(c · kh + ky) · kw + kx]` is the input at that window position,
/// the zero point in the padding, zero past `K`.
fn im2col(
    s: &ConvShape,
    cin: usize,
    x: &[u8],
    zero_point: u8,
    kp: usize,
    pixels: std::ops::Range<usize>,
    rows: &mut [u8],
) {
    let [kh, kw] = s.kernel;
    let hw = s.in_h * s.in_w;
    if s.kernel == [1, 1] && s.stride == [1, 1] && s.pads == [0; 4] {
        // A 1×1 conv's rows are the input transposed: a channel at a time, its pixels in order.
        for (c, plane) in x.chunks_exact(hw).take(cin).enumerate() {
            for (row, &v) in rows.chunks_exact_mut(kp).zip(&plane[pixels.clone()]) {
                row[c] = v;
            }
        }
        for row in rows.chunks_exact_mut(kp) {
            row[cin..].fill(0);
        }
        return;
    }
    for (p, row) in pixels.zip(rows.chunks_exact_mut(kp)) {
        let (oy, ox) = (p / s.out_w, p % s.out_w);
        let mut at = 0;
        for c in 0..cin {
            let plane = &x[c * hw..][..hw];
            for ky in 0..kh {
                let iy = (oy * s.stride[0] + ky * s.dilation[0]).wrapping_sub(s.pads[0]);
                for kx in 0..kw {
                    let ix = (ox * s.stride[1] + kx * s.dilation[1]).wrapping_sub(s.pads[1]);
                    row[at] = if iy < s.in_h && ix < s.in_w {
                        plane[iy * s.in_w + ix]
                    } else {
                        zero_point
                    };
                    at += 1;
                }
            }
        }
        row[at..].fill(0);
    }
}

/// Quantize-dequantize (`QuantizeLinear → DequantizeLinear`) of every element, clamped to
/// `min..=max` in the u8 domain: `quant.dequantize(clamp(quant.quantize(x), min, max))`, computed
/// as `round_even(clamp(x / s, min − zp, max − zp)) · s` (the same value, all in f32), on `ctx`'s
/// threads.
pub fn fake_quantize(
    ctx: &Ctx,
    quant: Quant,
    min: i32,
    max: i32,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    quant.check()?;
    check_len("quantize output", input.len(), output.len())?;
    let lo = (min.clamp(0, 255) - quant.zero_point) as f32;
    let hi = (max.clamp(0, 255) - quant.zero_point) as f32;
    const CHUNK: usize = 1 << 14;
    let chunks = input.len().div_ceil(CHUNK);
    let shared = super::SharedOut(output.as_mut_ptr());
    let len = input.len();
    ctx.threads.run(chunks, &|t| {
        let range = t * CHUNK..((t + 1) * CHUNK).min(len);
        // SAFETY: task `t` writes only elements `range` of `output`, disjoint from every other
        // task's; `output` (of `len` elements) outlives the `run`.
        let out =
            unsafe { std::slice::from_raw_parts_mut(shared.ptr().add(range.start), range.len()) };
        for (y, &x) in out.iter_mut().zip(&input[range]) {
            *y = round_even((x / quant.scale).max(lo).min(hi)) * quant.scale;
        }
    });
    Ok(())
}
