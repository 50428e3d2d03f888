//! Binary elementwise arithmetic with numpy broadcasting, and its fast case: squeeze-excite's
//! channel scale `y[n, c, ·] = x[n, c, ·] · s[n, c]`.

use super::{KernelError, PlanesArgs, check_len};

/// The arithmetic of a binary elementwise op (ONNX Add, Sub, Mul, Div).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryKind {
    /// The ONNX op name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "Add",
            BinaryKind::Sub => "Sub",
            BinaryKind::Mul => "Mul",
            BinaryKind::Div => "Div",
        }
    }

    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
        }
    }
}

/// The numpy broadcast of two shapes (aligned at their last dimension; a dimension of 1
/// stretches), or `None` where they do not broadcast.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// `y[n, c, i] = x[n, c, i] · scale[n, c]` over `batch · channels` planes of `spatial` elements:
/// a `[N, C, H, W]` value times a `[N, C, 1, 1]` one (squeeze-excite).
pub fn scale_channels(args: PlanesArgs, scale: &[f32]) -> Result<(), KernelError> {
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    let len = batch * channels * spatial;
    check_len("scale_channels input", len, input.len())?;
    check_len("scale_channels output", len, output.len())?;
    check_len("scale_channels scale", batch * channels, scale.len())?;
    if spatial == 0 {
        return Ok(());
    }
    for ((y, x), &s) in output
        .chunks_exact_mut(spatial)
        .zip(input.chunks_exact(spatial))
        .zip(scale)
    {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * s;
        }
    }
    Ok(())
}
