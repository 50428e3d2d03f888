//! Operations of the IR and their attributes, with the shape rule of each.
//! An op names its weights by [`WeightId`]; activations arrive on numbered input edges ("slots").

use resnext_runtime_core::kernels::ConvShape;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense;
pub use resnext_runtime_core::kernels::elementwise::BinaryKind;

use super::quant::{FakeQuant, QConv};
use super::types::{Dim, Layout, Shape, TensorType};
use super::weights::{WeightId, WeightStore};

/// What a node computes once its inputs are known. Activations come in through the node's input edges,
/// slot 0 first; parameters are handles into the graph's [`WeightStore`].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A model input. No incoming edges.
    Input,
    /// 2-D convolution, `[N, Cin, H, W] -> [N, Cout, Ho, Wo]`, with a fused epilogue.
    /// Slot 0: input; slot 1: the residual, present iff `epilogue.residual`.
    Conv(Conv),
    /// Inference BatchNormalization over channel dim 1 (not yet folded).
    BatchNorm(BatchNorm),
    /// Per-channel `y = act(x * scale + shift)`: what a BatchNorm with no conv to fold into becomes.
    ScaleShift(ScaleShift),
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip {
        min: f32,
        max: f32,
    },
    /// Elementwise sum of two same-shaped inputs, then an activation (`Activation::None` until fused).
    Add {
        activation: Activation,
    },
    /// An elementwise activation other than Relu and Clip (Sigmoid, Tanh, HardSwish, GELU, Erf, …);
    /// `fuse-epilogue` moves it into the conv, dense, Add or ScaleShift producing its input.
    Activation(Activation),
    /// Per-channel leaky ReLU: `y = x` for `x >= 0`, else `slope[c] · x` (`slope: [channels]`).
    PRelu {
        slope: WeightId,
    },
    /// Add, Sub, Mul or Div with numpy broadcasting: of two activations (slot 0 ∘ slot 1), or of an
    /// activation and a constant weight (whose dims are its shape, aligned at the last dimension).
    /// The output is the broadcast shape and must stay batch-first.
    Binary(Binary),
    MaxPool(Pool),
    AveragePool(Pool),
    /// Mean over H and W: `[N, C, H, W] -> [N, C, 1, 1]` (`keep_dims`) or `[N, C]`.
    /// Both ONNX GlobalAveragePool and ReduceMean over axes {2, 3} land here.
    GlobalAveragePool {
        keep_dims: bool,
    },
    /// Collapse dims `[axis..]` into one: `[N, C, 1, 1] -> [N, C]` for `axis = 1`.
    Flatten {
        axis: usize,
    },
    /// Reshape to a fixed per-item shape; the batch dimension is kept.
    Reshape {
        per_item: Vec<usize>,
    },
    /// Fully connected layer `y = act(x · Wᵀ + b)`, `x: [N, K]`, `W: [M, K]`. ONNX Gemm (any transB,
    /// alpha, beta folded into the weights) and MatMul with a constant right-hand side land here.
    Dense(Dense),
    /// Passes its input through unchanged (ONNX Identity, Dropout in inference).
    Identity,
    /// The same 4-D value in another memory layout (NCHW ↔ NCHW8c); inserted by `select-kernels`
    /// at the edges of a region of convs it runs on NCHW8c.
    Reorder {
        to: Layout,
    },
    /// Concatenation of `inputs` values along the channel axis: `[N, C_i, H, W] -> [N, ΣC_i, H, W]`.
    /// Only the channel axis of 4-D values is supported; `plan-memory` lets producers write straight
    /// into their channel slice of the output (see `passes::plan_memory`).
    Concat {
        inputs: usize,
    },
    /// ShuffleNet's channel shuffle, `[N, C, H, W]` viewed as `[N, groups, C / groups, H, W]` with
    /// the two channel axes swapped: output channel `k · groups + g` is input channel
    /// `g · (C / groups) + k`. The ONNX front end recognises it in `Reshape → Transpose(0, 2, 1, 3, 4)`.
    ChannelShuffle {
        groups: usize,
    },
    /// Zero padding of H and W: `[N, C, H, W] -> [N, C, H + top + bottom, W + left + right]`.
    /// `simplify` folds it into a following conv or pool where that computes the same.
    Pad {
        /// `[top, left, bottom, right]`.
        pads: [usize; 4],
    },
    /// Softmax (or its logarithm, `log`) over the features of each item of `[N, K]`.
    Softmax {
        log: bool,
    },
    /// Local response normalisation across channels (AlexNet's LRN):
    /// `y = x / (bias + alpha / size · Σ x²)^beta`, the sum over the `size` channels around each.
    Lrn(Lrn),
    /// Channels `start .. start + len` of a 4-D value (ONNX Slice on the channel axis).
    SliceChannels {
        start: usize,
        len: usize,
    },
    /// Layer normalisation over the channels of each pixel of `[N, C, H, W]`, then a per-channel
    /// scale and shift: what LayerNorm over the last axis of the NHWC view of the value is (ConvNeXt).
    LayerNormChannels(LayerNormChannels),
    /// Squeeze-and-excitation: `x` scaled per channel by `gate(expand(act(reduce(mean(x)))))`, the
    /// means over H and W. `select-kernels` forms it from the `GlobalAveragePool → 1×1 conv → 1×1
    /// conv → Mul` of an SE block, for the CPU kernel that runs the whole block.
    SqueezeExcite(SqueezeExcite),
    /// `QuantizeLinear → DequantizeLinear` of an activation (see `ir::quant`).
    FakeQuant(FakeQuant),
    /// An int8 conv or dense layer of a QDQ model (see `ir::quant`).
    QConv(QConv),
}

/// A conv's activation function, applied last; the same set as the runtime's
/// `kernels::Activation`, whose documentation gives each formula.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    Sigmoid,
    Tanh,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Silu,
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    /// The exact (erf) GELU.
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    Erf,
}

impl Activation {
    /// The name `inspect` prints (ONNX spelling where there is one).
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "Identity",
            Activation::Relu => "Relu",
            Activation::Clip { .. } => "Clip",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::HardSwish => "HardSwish",
            Activation::Silu => "Silu",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::Elu { .. } => "Elu",
            Activation::Gelu => "Gelu",
            Activation::GeluTanh => "GeluTanh",
            Activation::Erf => "Erf",
        }
    }
}

/// A binary elementwise op (see [`Op::Binary`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    pub kind: BinaryKind,
    /// The constant operand, or `None` for two activations.
    pub constant: Option<WeightId>,
    /// With a constant: whether it is the left operand (`c ∘ x`, which matters for Sub and Div).
    pub constant_first: bool,
}

/// What a conv or dense node does after the MACs, in this order: add bias, add the residual input
/// (slot 1), apply the activation.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Epilogue {
    pub residual: bool,
    pub activation: Activation,
}

/// Which kernel computes a conv. The front ends leave `Reference` (weights in ONNX layout
/// `[out_c, in_c / group, kh, kw]`); `select-kernels` picks one of the runtime's fast algorithms and
/// replaces the weight by its prepacked form, a 1-D tensor of `conv::packed_len(algo, shape)` floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvKernel {
    #[default]
    Reference,
    /// `resnext_runtime_core::kernels::conv` with this algorithm.
    Fast(ConvAlgo),
}

impl ConvKernel {
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Reference => "reference",
            ConvKernel::Fast(algo) => algo.name(),
        }
    }
}

/// Which kernel computes a dense layer: the reference (weight `[out, in]`) or the runtime's packed
/// GEMM (weight prepacked by `dense::pack`, 1-D).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DenseKernel {
    #[default]
    Reference,
    Packed,
    /// bf16 products, fp32 sums (weight prepacked by `dense::pack_bf16`, 1-D: two bf16 a float).
    PackedBf16,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// `[out_channels, in_channels / group, kernel[0], kernel[1]]`.
    pub weight: WeightId,
    /// `[out_channels]`.
    pub bias: Option<WeightId>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub group: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`, explicit (ONNX auto_pad is resolved by the front end).
    pub pads: [usize; 4],
    pub epilogue: Epilogue,
    pub kernel_choice: ConvKernel,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub scale: WeightId,
    pub bias: WeightId,
    pub mean: WeightId,
    pub var: WeightId,
    pub epsilon: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScaleShift {
    pub scale: WeightId,
    pub shift: WeightId,
    pub activation: Activation,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub ceil_mode: bool,
    /// AveragePool only: divide by the full window (true) or by the in-bounds part (false).
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
}

/// See [`Op::LayerNormChannels`]: `y = (x − mean) / sqrt(var + epsilon) · scale[c] + shift[c]`, mean
/// and biased variance over the channels of one pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormChannels {
    pub epsilon: f32,
    /// `[channels]`.
    pub scale: WeightId,
    /// `[channels]`.
    pub shift: WeightId,
}

/// See [`Op::SqueezeExcite`]: the two 1×1 convs of the block, weights in their ONNX layout.
#[derive(Clone, Debug, PartialEq)]
pub struct SqueezeExcite {
    /// Features between the two layers.
    pub squeezed: usize,
    /// `[squeezed, channels, 1, 1]`.
    pub reduce: WeightId,
    /// `[squeezed]`.
    pub reduce_bias: Option<WeightId>,
    pub activation: Activation,
    /// `[channels, squeezed, 1, 1]`.
    pub expand: WeightId,
    /// `[channels]`.
    pub expand_bias: Option<WeightId>,
    /// The activation giving the per-channel scale (Sigmoid, HardSigmoid …).
    pub gate: Activation,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// `[out_features, in_features]`.
    pub weight: WeightId,
    /// `[out_features]`.
    pub bias: Option<WeightId>,
    pub in_features: usize,
    pub out_features: usize,
    pub epilogue: Epilogue,
    pub kernel: DenseKernel,
}

/// Why an op cannot apply to its inputs; the caller adds which node it was.
pub type ShapeError = String;

impl Op {
    /// The op's name as `inspect` prints it (ONNX spelling where there is one).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Conv(_) => "Conv",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::ScaleShift(_) => "ScaleShift",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::Add { .. } => "Add",
            Op::Activation(a) => a.name(),
            Op::PRelu { .. } => "PRelu",
            Op::Binary(b) => b.kind.name(),
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool { .. } => "GlobalAveragePool",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Dense(_) => "Dense",
            Op::Identity => "Identity",
            Op::Reorder { .. } => "Reorder",
            Op::Concat { .. } => "Concat",
            Op::ChannelShuffle { .. } => "ChannelShuffle",
            Op::SliceChannels { .. } => "SliceChannels",
            Op::Pad { .. } => "Pad",
            Op::Softmax { log: false } => "Softmax",
            Op::Softmax { log: true } => "LogSoftmax",
            Op::Lrn(_) => "LRN",
            Op::LayerNormChannels(_) => "LayerNormChannels",
            Op::SqueezeExcite(_) => "SqueezeExcite",
            Op::FakeQuant(_) => "QuantizeDequantize",
            Op::QConv(_) => "QConv",
        }
    }

    /// How many activation inputs (incoming edges) the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input => 0,
            Op::Conv(c) => 1 + c.epilogue.residual as usize,
            Op::Dense(d) => 1 + d.epilogue.residual as usize,
            Op::QConv(q) => 1 + q.residual.is_some() as usize,
            Op::Add { .. } => 2,
            Op::Binary(b) => 2 - b.constant.is_some() as usize,
            Op::Concat { inputs } => *inputs,
            _ => 1,
        }
    }

    /// Every weight the op refers to.
    pub fn weights(&self) -> Vec<WeightId> {
        match self {
            Op::Conv(c) => std::iter::once(c.weight).chain(c.bias).collect(),
            Op::Dense(d) => std::iter::once(d.weight).chain(d.bias).collect(),
            Op::BatchNorm(b) => vec![b.scale, b.bias, b.mean, b.var],
            Op::ScaleShift(s) => vec![s.scale, s.shift],
            Op::PRelu { slope } => vec![*slope],
            Op::LayerNormChannels(l) => vec![l.scale, l.shift],
            Op::SqueezeExcite(se) => [
                Some(se.reduce),
                se.reduce_bias,
                Some(se.expand),
                se.expand_bias,
            ]
            .into_iter()
            .flatten()
            .collect(),
            Op::Binary(b) => b.constant.into_iter().collect(),
            Op::QConv(q) => vec![q.weight],
            _ => Vec::new(),
        }
    }

    /// Multiply-accumulates per batch item for an output of type `out`.
    pub fn macs(&self, out: &TensorType) -> u64 {
        let out_len = out.shape.item_len().unwrap_or(0) as u64;
        match self {
            Op::Conv(c) => {
                out_len * (c.in_channels / c.group.max(1) * c.kernel[0] * c.kernel[1]) as u64
            }
            Op::Dense(d) => (d.in_features * d.out_features) as u64,
            Op::QConv(q) => {
                out_len * (q.in_channels / q.group.max(1) * q.kernel[0] * q.kernel[1]) as u64
            }
            Op::SqueezeExcite(se) => {
                let channels = out.shape.chw().map_or(0, |(c, _, _)| c);
                2 * (se.squeezed * channels) as u64
            }
            _ => 0,
        }
    }

    /// The output type for these input types, checking every shape constraint of the op.
    pub fn infer(
        &self,
        inputs: &[&TensorType],
        weights: &WeightStore,
    ) -> Result<TensorType, ShapeError> {
        if inputs.len() != self.arity() {
            return Err(format!(
                "expects {} input(s), has {}",
                self.arity(),
                inputs.len()
            ));
        }
        let expect_weight = |id: WeightId, what: &str, dims: &[usize]| -> Result<(), ShapeError> {
            let t = weights
                .get(id)
                .ok_or_else(|| format!("{what} refers to a missing weight {id:?}"))?;
            if t.dims != dims {
                return Err(format!(
                    "{what} `{}` has shape {:?}, expected {dims:?}",
                    t.name, t.dims
                ));
            }
            Ok(())
        };
        // Only convs and reorders take NCHW8c values; a conv keeps the layout of its input, which
        // its kernel must read.
        let blocked = |t: &TensorType| t.layout == Layout::Nchw8c;
        if !matches!(self, Op::Conv(_) | Op::Reorder { .. }) && inputs.iter().any(|t| blocked(t)) {
            return Err("takes NCHW activations, not NCHW8c".into());
        }
        match self {
            Op::Input => Err("an Input node's type is given, not inferred".into()),
            Op::Reorder { to } => {
                chw(inputs[0])?;
                match (inputs[0].layout, to) {
                    (Layout::Nchw, Layout::Nchw8c) | (Layout::Nchw8c, Layout::Nchw) => {}
                    (from, to) => {
                        return Err(format!("cannot reorder {} to {}", from.name(), to.name()));
                    }
                }
                let channels = channels(inputs[0])?;
                if *to == Layout::Nchw8c && !channels.is_multiple_of(8) {
                    return Err(format!(
                        "{channels} channels are not whole blocks of 8 for NCHW8c"
                    ));
                }
                Ok(TensorType {
                    layout: *to,
                    ..inputs[0].clone()
                })
            }
            Op::Conv(c) => {
                let (ci, h, w) = chw(inputs[0])?;
                let nchw8c = matches!(c.kernel_choice, ConvKernel::Fast(a) if a.is_nchw8c());
                if blocked(inputs[0]) != nchw8c {
                    return Err(format!(
                        "input in {} but the {} kernel reads {}",
                        inputs[0].layout.name(),
                        c.kernel_choice.name(),
                        if nchw8c { "NCHW8c" } else { "NCHW" }
                    ));
                }
                if ci != c.in_channels {
                    return Err(format!(
                        "input has {ci} channels, the weights expect {}",
                        c.in_channels
                    ));
                }
                if c.group == 0
                    || !ci.is_multiple_of(c.group)
                    || !c.out_channels.is_multiple_of(c.group)
                {
                    return Err(format!(
                        "group {} must divide both input channels {ci} and output channels {}",
                        c.group, c.out_channels
                    ));
                }
                if c.stride.contains(&0) || c.dilation.contains(&0) || c.kernel.contains(&0) {
                    return Err("kernel, strides and dilations must be positive".into());
                }
                let ho = window_out(
                    h,
                    c.kernel[0],
                    c.stride[0],
                    c.dilation[0],
                    c.pads[0],
                    c.pads[2],
                    false,
                )?;
                let wo = window_out(
                    w,
                    c.kernel[1],
                    c.stride[1],
                    c.dilation[1],
                    c.pads[1],
                    c.pads[3],
                    false,
                )?;
                match c.kernel_choice {
                    ConvKernel::Reference => expect_weight(
                        c.weight,
                        "weight",
                        &[c.out_channels, ci / c.group, c.kernel[0], c.kernel[1]],
                    )?,
                    ConvKernel::Fast(algo) => {
                        let shape = ConvShape {
                            in_c: ci,
                            in_h: h,
                            in_w: w,
                            out_c: c.out_channels,
                            out_h: ho,
                            out_w: wo,
                            kernel: c.kernel,
                            stride: c.stride,
                            dilation: c.dilation,
                            pads: c.pads,
                            group: c.group,
                        };
                        if !algo.supports(&shape) {
                            return Err(format!(
                                "the {} kernel does not support {shape:?}",
                                algo.name()
                            ));
                        }
                        expect_weight(
                            c.weight,
                            "packed weight",
                            &[conv::packed_len(algo, &shape)],
                        )?;
                    }
                }
                if let Some(b) = c.bias {
                    expect_weight(b, "bias", &[c.out_channels])?;
                }
                let out = TensorType {
                    layout: inputs[0].layout,
                    ..TensorType::f32(Shape::nchw(c.out_channels, ho, wo))
                };
                if c.epilogue.residual {
                    same_shape(&out, inputs[1], "residual")?;
                    if inputs[1].layout != out.layout {
                        return Err(format!(
                            "residual in {}, the output in {}",
                            inputs[1].layout.name(),
                            out.layout.name()
                        ));
                    }
                }
                Ok(out)
            }
            Op::BatchNorm(b) => {
                let c = channels(inputs[0])?;
                for (id, what) in [
                    (b.scale, "scale"),
                    (b.bias, "bias"),
                    (b.mean, "mean"),
                    (b.var, "var"),
                ] {
                    expect_weight(id, what, &[c])?;
                }
                Ok(inputs[0].clone())
            }
            Op::ScaleShift(s) => {
                let c = channels(inputs[0])?;
                expect_weight(s.scale, "scale", &[c])?;
                expect_weight(s.shift, "shift", &[c])?;
                Ok(inputs[0].clone())
            }
            Op::Relu | Op::Clip { .. } | Op::Identity | Op::Activation(_) => Ok(inputs[0].clone()),
            Op::PRelu { slope } => {
                let c = channels(inputs[0])?;
                expect_weight(*slope, "slope", &[c])?;
                Ok(inputs[0].clone())
            }
            Op::Binary(b) => {
                let constant = match b.constant {
                    Some(id) => {
                        let t = weights
                            .get(id)
                            .ok_or_else(|| format!("constant refers to a missing weight {id:?}"))?;
                        Some(Shape(t.dims.iter().map(|&d| Dim::Fixed(d)).collect()))
                    }
                    None => None,
                };
                let (a, c) = match (&constant, b.constant_first) {
                    (Some(c), true) => (c, &inputs[0].shape),
                    (Some(c), false) => (&inputs[0].shape, c),
                    (None, _) => (&inputs[0].shape, &inputs[1].shape),
                };
                let shape = broadcast(a, c)?;
                if shape.per_item().is_none() {
                    return Err(format!(
                        "the broadcast of {a} and {c} is {shape}, not batch-first"
                    ));
                }
                Ok(TensorType::f32(shape))
            }
            Op::Add { .. } => {
                same_shape(inputs[0], inputs[1], "second operand")?;
                Ok(inputs[0].clone())
            }
            Op::Concat { .. } => {
                let Some((first, rest)) = inputs.split_first() else {
                    return Err("concatenates no values".into());
                };
                let (mut total, h, w) = chw(first)?;
                for (slot, t) in rest.iter().enumerate() {
                    let (c, th, tw) = chw(t)?;
                    if (th, tw) != (h, w) {
                        return Err(format!(
                            "input {} is {}, input 0 is {}: only the channel axis may differ",
                            slot + 1,
                            t.shape,
                            first.shape
                        ));
                    }
                    total = total
                        .checked_add(c)
                        .ok_or_else(|| "the channel count overflows".to_string())?;
                }
                Ok(TensorType::f32(Shape::nchw(total, h, w)))
            }
            Op::ChannelShuffle { groups } => {
                let (c, _, _) = chw(inputs[0])?;
                if *groups == 0 || !c.is_multiple_of(*groups) {
                    return Err(format!("{groups} groups do not divide {c} channels"));
                }
                Ok(inputs[0].clone())
            }
            Op::Softmax { .. } => match per_item(inputs[0])?[..] {
                [k] if k > 0 => Ok(inputs[0].clone()),
                _ => Err(format!(
                    "input {} must be [N, K] with K > 0",
                    inputs[0].shape
                )),
            },
            Op::Lrn(l) => {
                chw(inputs[0])?;
                if l.size == 0 {
                    return Err("LRN size must be positive".into());
                }
                Ok(inputs[0].clone())
            }
            Op::LayerNormChannels(_) => {
                chw(inputs[0])?;
                Ok(inputs[0].clone())
            }
            Op::SqueezeExcite(se) => {
                let (c, _, _) = chw(inputs[0])?;
                expect_weight(se.reduce, "reduce weight", &[se.squeezed, c, 1, 1])?;
                expect_weight(se.expand, "expand weight", &[c, se.squeezed, 1, 1])?;
                if let Some(b) = se.reduce_bias {
                    expect_weight(b, "reduce bias", &[se.squeezed])?;
                }
                if let Some(b) = se.expand_bias {
                    expect_weight(b, "expand bias", &[c])?;
                }
                Ok(inputs[0].clone())
            }
            Op::FakeQuant(f) => {
                f.quant.check().map_err(|e| e.to_string())?;
                Ok(inputs[0].clone())
            }
            Op::QConv(q) => {
                // A dense layer is the 1×1 conv of a `[N, K]` input.
                let dense = per_item(inputs[0])?.len() == 1;
                let (ci, h, w) = if dense {
                    (channels(inputs[0])?, 1, 1)
                } else {
                    chw(inputs[0])?
                };
                if ci != q.in_channels {
                    return Err(format!(
                        "input has {ci} channels, the weights expect {}",
                        q.in_channels
                    ));
                }
                let shape = q.shape(h, w)?;
                resnext_runtime_core::kernels::int8::supports(&shape).map_err(|e| e.to_string())?;
                if dense && (shape.out_h, shape.out_w) != (1, 1) {
                    return Err("a dense int8 layer must be a 1×1 conv without padding".into());
                }
                if q.codes.output
                    && q.residual.is_none()
                    && !matches!(q.output, super::quant::QConvOutput::Requant(_))
                {
                    return Err(
                        "u8 output codes need a requantized output or a residual step".into(),
                    );
                }
                if q.bias.len() != q.out_channels || q.weight_scale.len() != q.out_channels {
                    return Err(format!(
                        "{} biases and {} weight scales for {} output channels",
                        q.bias.len(),
                        q.weight_scale.len(),
                        q.out_channels
                    ));
                }
                if q.packed {
                    expect_weight(
                        q.weight,
                        "packed int8 weight",
                        &[resnext_runtime_core::kernels::int8::packed_len(&shape)],
                    )?;
                } else {
                    expect_weight(
                        q.weight,
                        "int8 weight",
                        &[q.out_channels, ci / q.group, q.kernel[0], q.kernel[1]],
                    )?;
                }
                let out = if dense {
                    TensorType::f32(Shape::nc(q.out_channels))
                } else {
                    TensorType::f32(Shape::nchw(q.out_channels, shape.out_h, shape.out_w))
                };
                if let Some(f) = q.residual {
                    f.quant.check().map_err(|e| e.to_string())?;
                    same_shape(&out, inputs[1], "residual")?;
                    if inputs[1].layout != out.layout {
                        return Err(format!(
                            "residual in {}, the output in {}",
                            inputs[1].layout.name(),
                            out.layout.name()
                        ));
                    }
                }
                Ok(out)
            }
            Op::Pad { pads } => {
                let (c, h, w) = chw(inputs[0])?;
                let grow = |size: usize, a: usize, b: usize| {
                    size.checked_add(a)
                        .and_then(|s| s.checked_add(b))
                        .ok_or_else(|| format!("pads {pads:?} overflow the size"))
                };
                let (ho, wo) = (grow(h, pads[0], pads[2])?, grow(w, pads[1], pads[3])?);
                Ok(TensorType::f32(Shape::nchw(c, ho, wo)))
            }
            Op::SliceChannels { start, len } => {
                let (c, h, w) = chw(inputs[0])?;
                if *len == 0 || start.checked_add(*len).is_none_or(|end| end > c) {
                    return Err(format!(
                        "channels {start}..{} are not a non-empty part of the input's {c}",
                        start.saturating_add(*len)
                    ));
                }
                Ok(TensorType::f32(Shape::nchw(*len, h, w)))
            }
            Op::MaxPool(p) | Op::AveragePool(p) => {
                let (c, h, w) = chw(inputs[0])?;
                if p.stride.contains(&0) || p.kernel.contains(&0) {
                    return Err("kernel and strides must be positive".into());
                }
                // As in PyTorch (and the runtime's pools): a window must not lie wholly in padding.
                if (0..4).any(|i| p.pads[i] >= p.kernel[i % 2]) {
                    return Err(format!(
                        "pads {:?} must be smaller than the kernel {:?}",
                        p.pads, p.kernel
                    ));
                }
                let ho = window_out(
                    h,
                    p.kernel[0],
                    p.stride[0],
                    1,
                    p.pads[0],
                    p.pads[2],
                    p.ceil_mode,
                )?;
                let wo = window_out(
                    w,
                    p.kernel[1],
                    p.stride[1],
                    1,
                    p.pads[1],
                    p.pads[3],
                    p.ceil_mode,
                )?;
                Ok(TensorType::f32(Shape::nchw(c, ho, wo)))
            }
            Op::GlobalAveragePool { keep_dims } => {
                let (c, _, _) = chw(inputs[0])?;
                Ok(TensorType::f32(if *keep_dims {
                    Shape::nchw(c, 1, 1)
                } else {
                    Shape::nc(c)
                }))
            }
            Op::Flatten { axis } => {
                let dims = per_item(inputs[0])?;
                if *axis != 1 {
                    return Err(format!(
                        "Flatten axis {axis} would mix the batch into features; only axis 1 is supported"
                    ));
                }
                Ok(TensorType::f32(Shape::nc(dims.iter().product())))
            }
            Op::Reshape { per_item: target } => {
                let dims = per_item(inputs[0])?;
                let (from, to) = (
                    dims.iter().product::<usize>(),
                    target.iter().product::<usize>(),
                );
                if from != to {
                    return Err(format!(
                        "cannot reshape {} elements per item into {target:?}",
                        from
                    ));
                }
                let mut shape = vec![Dim::Batch];
                shape.extend(target.iter().map(|&d| Dim::Fixed(d)));
                Ok(TensorType::f32(Shape(shape)))
            }
            Op::Dense(d) => {
                let dims = per_item(inputs[0])?;
                if dims != [d.in_features] {
                    return Err(format!(
                        "input {} must be [N, {}]",
                        inputs[0].shape, d.in_features
                    ));
                }
                match d.kernel {
                    DenseKernel::Reference => {
                        expect_weight(d.weight, "weight", &[d.out_features, d.in_features])?
                    }
                    DenseKernel::Packed => expect_weight(
                        d.weight,
                        "packed weight",
                        &[dense::packed_len(d.in_features, d.out_features)],
                    )?,
                    DenseKernel::PackedBf16 => expect_weight(
                        d.weight,
                        "packed bf16 weight",
                        &[dense::packed_len_bf16(d.in_features, d.out_features)],
                    )?,
                }
                if let Some(b) = d.bias {
                    expect_weight(b, "bias", &[d.out_features])?;
                }
                let out = TensorType::f32(Shape::nc(d.out_features));
                if d.epilogue.residual {
                    same_shape(&out, inputs[1], "residual")?;
                }
                Ok(out)
            }
        }
    }
}

/// The numpy broadcast of two shapes (aligned at the last dimension; a fixed 1 stretches).
fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, ShapeError> {
    let rank = a.rank().max(b.rank());
    let dim = |s: &Shape, i: usize| {
        (i + s.rank())
            .checked_sub(rank)
            .map_or(Dim::Fixed(1), |j| s.0[j])
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (Dim::Fixed(1), y) => Ok(y),
            (x, Dim::Fixed(1)) => Ok(x),
            _ => Err(format!("shapes {a} and {b} do not broadcast")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Shape)
}

fn per_item(t: &TensorType) -> Result<Vec<usize>, ShapeError> {
    t.shape.per_item().ok_or_else(|| {
        format!(
            "input {} must be batch-first with fixed other dimensions",
            t.shape
        )
    })
}

fn chw(t: &TensorType) -> Result<(usize, usize, usize), ShapeError> {
    t.shape
        .chw()
        .ok_or_else(|| format!("input {} must be 4-D [N, C, H, W]", t.shape))
}

fn channels(t: &TensorType) -> Result<usize, ShapeError> {
    match per_item(t)?.first() {
        Some(&c) => Ok(c),
        None => Err(format!("input {} has no channel dimension", t.shape)),
    }
}

fn same_shape(a: &TensorType, b: &TensorType, what: &str) -> Result<(), ShapeError> {
    if a.shape != b.shape {
        return Err(format!(
            "{what} has shape {}, expected {}",
            b.shape, a.shape
        ));
    }
    Ok(())
}

/// Output size of a sliding window (conv or pool) along one axis.
pub fn window_out(
    size: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Result<usize, ShapeError> {
    // Checked: a hand-built op (or a front end's bug) may carry absurd sizes; that is an error.
    let padded = size
        .checked_add(pad_begin)
        .and_then(|p| p.checked_add(pad_end));
    let span = kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|s| s.checked_add(1));
    let (Some(padded), Some(span), true) = (padded, span, stride > 0) else {
        return Err(format!(
            "kernel {kernel}, stride {stride}, dilation {dilation} and pads {pad_begin}, {pad_end} \
             over an input of {size} give no valid window"
        ));
    };
    if span > padded {
        return Err(format!(
            "kernel extent {span} is larger than the padded input {padded} ({size} + pads {pad_begin}, {pad_end})"
        ));
    }
    let steps = padded - span;
    let mut out = if ceil_mode {
        steps.div_ceil(stride)
    } else {
        steps / stride
    } + 1;
    // ONNX/PyTorch rule: with ceil_mode the last window must start inside the input or left padding.
    if ceil_mode && (out - 1) * stride >= size + pad_begin {
        out -= 1;
    }
    Ok(out)
}
