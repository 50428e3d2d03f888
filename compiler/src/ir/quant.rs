//! The int8 ops of models quantized in the ONNX QDQ form. Activations stay `f32` values: a
//! [`FakeQuant`] rounds its input to the u8 grid of a quantization (what `QuantizeLinear →
//! DequantizeLinear` computes), and a [`QConv`] quantizes its input with the quantization of the
//! `FakeQuant` before it (which gives back the same integers), runs the int8 kernels, and writes
//! either real values or, with a fused `FakeQuant` after it, the dequantized u8 result (stored as
//! the u8 codes themselves where only int8 convs read it: [`QConv::codes`]). The runtime's
//! `kernels::int8` documents the arithmetic.

use resnext_runtime_core::kernels::ConvShape;
pub use resnext_runtime_core::kernels::int8::{Codes, Quant, SumArith};

use super::weights::WeightId;

/// `QuantizeLinear → DequantizeLinear` of an activation: `dequantize(clamp(quantize(x), min, max))`,
/// the u8 domain (an int8 quantization is shifted by 128: zero point + 128, range 0..=255).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FakeQuant {
    pub quant: Quant,
    pub min: i32,
    pub max: i32,
}

/// What a [`QConv`] writes (see `kernels::int8::QOutput`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QConvOutput {
    /// Real values `s_x · s_w[c] · (acc + bias[c])`, ReLU'd if `relu`.
    Float { relu: bool },
    /// Requantized by `quant` to `min..=max` and dequantized (a fused [`FakeQuant`]).
    Requant(FakeQuant),
}

/// An int8 conv (any group count); a dense layer is the 1×1 conv of a `[N, K]` input (output `[N, M]`).
#[derive(Clone, Debug, PartialEq)]
pub struct QConv {
    /// Unpacked: `[out_c, in_c / group, kh, kw]`, the i8 values as floats (exact). Packed (`packed`): the
    /// 1-D blob of `kernels::int8::pack` for this node's input zero point and output rule.
    pub weight: WeightId,
    pub packed: bool,
    /// `[out_c]`, in units of `s_x · s_w[c]` (ONNX QDQ's int32 bias).
    pub bias: Vec<i32>,
    /// `[out_c]`: the weights' per-channel scales `s_w[c]`.
    pub weight_scale: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub group: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// The input's quantization (of the `FakeQuant` producing it).
    pub input: Quant,
    pub output: QConvOutput,
    /// A fused residual step (`kernels::int8::Residual`): the output (after `output`) plus the
    /// node's slot-1 input, quantize-dequantized by this (a QDQ model's `Add → FakeQuant`).
    pub residual: Option<FakeQuant>,
    /// How the residual step rounds (`kernels::int8::SumArith`): onnxruntime's `QLinearAdd`
    /// arithmetic where both operands lie on known grids (`fuse-requant`), else ONNX's.
    pub residual_arith: SumArith,
    /// Which of its activations are stored as u8 codes (`int8-codes`): the input (written as
    /// codes by the int8 conv producing it) and the output (read only by int8 convs taking
    /// codes). The values are the same; only their storage differs.
    pub codes: Codes,
}

impl QConv {
    /// The epilogue's per-channel multiplier: `s_x · s_w[c]`, divided by `s_y` when requantizing
    /// (in f32, in that order, as onnxruntime computes its QLinearConv output scales).
    pub fn multipliers(&self) -> Vec<f32> {
        self.weight_scale
            .iter()
            .map(|&sw| {
                let real = self.input.scale * sw;
                match self.output {
                    QConvOutput::Float { .. } => real,
                    QConvOutput::Requant(f) => real / f.quant.scale,
                }
            })
            .collect()
    }

    /// What `resnextc inspect` and the printed graph say of it: window, groups, output rule,
    /// residual step (`(ort)`: onnxruntime's arithmetic) and which activations are u8 codes, e.g.
    /// `3x3 /1 g1 requant +residual(ort) codes in,out`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}x{} /{} g{} {}",
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.group,
            match self.output {
                QConvOutput::Float { relu: false } => "float",
                QConvOutput::Float { relu: true } => "float+relu",
                QConvOutput::Requant(_) => "requant",
            }
        );
        if self.residual.is_some() {
            s.push_str(match self.residual_arith {
                SumArith::Onnx => " +residual",
                SumArith::OnnxRuntime { .. } => " +residual(ort)",
            });
        }
        let codes: Vec<&str> = [
            (self.codes.input, "in"),
            (self.codes.output, "out"),
            (self.codes.residual.is_some(), "residual"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !codes.is_empty() {
            s.push_str(&format!(" codes {}", codes.join(",")));
        }
        s
    }

    /// The runtime's output rule.
    pub fn kernel_output(&self) -> resnext_runtime_core::kernels::int8::QOutput {
        use resnext_runtime_core::kernels::int8::QOutput;
        match self.output {
            QConvOutput::Float { relu } => QOutput::Float { relu },
            QConvOutput::Requant(f) => QOutput::Requant {
                quant: f.quant,
                min: f.min,
                max: f.max,
            },
        }
    }

    /// The conv's shape for an input of `in_h × in_w` (1 × 1 for a dense layer).
    pub fn shape(&self, in_h: usize, in_w: usize) -> Result<ConvShape, String> {
        let out = |size: usize, axis: usize| {
            super::window_out(
                size,
                self.kernel[axis],
                self.stride[axis],
                self.dilation[axis],
                self.pads[axis],
                self.pads[axis + 2],
                false,
            )
        };
        Ok(ConvShape {
            in_c: self.in_channels,
            in_h,
            in_w,
            out_c: self.out_channels,
            out_h: out(in_h, 0)?,
            out_w: out(in_w, 1)?,
            kernel: self.kernel,
            stride: self.stride,
            dilation: self.dilation,
            pads: self.pads,
            group: self.group,
        })
    }
}
