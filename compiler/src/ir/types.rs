//! Value types of the IR: element type, shape with a symbolic batch dimension, and memory layout.
//! Every edge of the graph carries a value of a [`TensorType`].

use std::fmt;

/// Element type of a tensor. The compiler computes in fp32 only; other types exist so the front end
/// can name what it rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
}

/// One dimension of a shape: the model's symbolic batch size, or a size known at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The batch size, chosen by the caller at run time. Only ever the first dimension.
    Batch,
    Fixed(usize),
}

impl Dim {
    pub fn fixed(self) -> Option<usize> {
        match self {
            Dim::Batch => None,
            Dim::Fixed(n) => Some(n),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Batch => f.write_str("N"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A shape in logical (NCHW) order, whatever the physical [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// `[N, c, h, w]`.
    pub fn nchw(c: usize, h: usize, w: usize) -> Shape {
        Shape(vec![
            Dim::Batch,
            Dim::Fixed(c),
            Dim::Fixed(h),
            Dim::Fixed(w),
        ])
    }

    /// `[N, features]`.
    pub fn nc(c: usize) -> Shape {
        Shape(vec![Dim::Batch, Dim::Fixed(c)])
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The sizes of every dimension but the batch, or `None` if one of them is not fixed.
    pub fn per_item(&self) -> Option<Vec<usize>> {
        match self.0.split_first() {
            Some((Dim::Batch, rest)) => rest.iter().map(|d| d.fixed()).collect(),
            _ => None,
        }
    }

    /// Number of elements of one batch item.
    pub fn item_len(&self) -> Option<usize> {
        self.per_item().map(|d| d.iter().product())
    }

    /// `(c, h, w)` of a rank-4 `[N, C, H, W]` shape.
    pub fn chw(&self) -> Option<(usize, usize, usize)> {
        match self.per_item()?.as_slice() {
            &[c, h, w] => Some((c, h, w)),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Physical order of a value's elements in memory. Shapes are always logical NCHW; the layout says how
/// they are stored. The front ends produce `Nchw` (rank 4) and `RowMajor` (other ranks); the kernel
/// selection pass may put a region of convs on `Nchw8c` and insert reorders at its edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
    /// Channels blocked by 8: `[N, C/8, H, W, 8]` (`resnext_runtime_core::kernels::blocked`).
    Nchw8c,
    /// Plain row-major order for ranks other than 4.
    RowMajor,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
            Layout::Nchw8c => "NCHW8c",
            Layout::RowMajor => "row-major",
        }
    }
}

/// The type of a value: what flows along an edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
    pub layout: Layout,
}

impl TensorType {
    pub fn f32(shape: Shape) -> TensorType {
        let layout = if shape.rank() == 4 {
            Layout::Nchw
        } else {
            Layout::RowMajor
        };
        TensorType {
            dtype: DType::F32,
            shape,
            layout,
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "f32{} {}", self.shape, self.layout.name())
    }
}
