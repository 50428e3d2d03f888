//! Depthwise convolution (one input and one output channel per group, as in MobileNetV2), 3×3,
//! 5×5 or 7×7 (ConvNeXt), stride 1 or 2, NCHW: the direct kernel of `grouped.rs` with single-channel groups.

use super::grouped;
use super::{ConvArgs, ConvShape, KernelError};
use crate::exec::Ctx;

/// Whether [`run`] handles this conv: `group == in_c == out_c`, a 3×3, 5×5 or 7×7 kernel, dilation 1,
/// strides 1 or 2.
pub fn supports(shape: &ConvShape) -> bool {
    shape.group == shape.in_c
        && shape.group == shape.out_c
        && (shape.kernel == [3, 3] || shape.kernel == [5, 5] || shape.kernel == [7, 7])
        && shape.dilation == [1, 1]
        && shape.stride.iter().all(|s| (1..=2).contains(s))
        && shape.check().is_ok()
}

/// The packed layout is `grouped`'s, which for one channel per group is the ONNX layout
/// `[c, 1, kh, kw]` itself. A weight slice of the wrong length gives an empty vector.
pub fn pack(shape: &ConvShape, weight: &[f32]) -> Vec<f32> {
    grouped::pack(shape, weight)
}

/// Depthwise conv with its fused epilogue: `output = act(conv(input) + bias + residual)`.
/// `args.packed` comes from [`pack`]; no scratch. A `ctx.isa` the CPU lacks falls back to the
/// generic tier.
pub fn run(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let shape = &args.shape;
    if !supports(shape) {
        shape.check()?;
        return Err(KernelError::BadShape(format!(
            "depthwise kernel needs group == in_c == out_c, a 3×3, 5×5 or 7×7 kernel, dilation 1 \
             and stride 1 or 2: {shape:?}"
        )));
    }
    grouped::run_direct(ctx, args, grouped::Layout::Nchw)
}
