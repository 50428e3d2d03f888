//! The graph IR every front end produces and every back end consumes.
//!
//! A [`Graph`] is a petgraph `StableDiGraph`. A **node** is one operation ([`Op`]) with the name the
//! source gave it and the [`TensorType`] of its single output. An **edge** carries that output value to
//! one input *slot* of a consumer; a value read by three nodes has three edges. Every value is typed at
//! all times: [`Graph::add_node`] infers the output type from the inputs when the node is created, and
//! [`validate`] re-checks all of it.
//!
//! **Shapes** are logical NCHW (`[N, C, H, W]`, or `[N, F]` after flattening) whatever the physical
//! [`Layout`]; the first dimension is the symbolic batch ([`Dim::Batch`]) and every other dimension is
//! known at compile time, which is what lets the back ends specialise every kernel.
//!
//! **Weights** live in the graph's [`WeightStore`] and ops refer to them by [`WeightId`]; they are
//! never graph inputs and never inlined in emitted code.
//!
//! **Who changes what:** front ends build graphs of unfused ops (`Conv` without epilogue, `BatchNorm`,
//! `Relu`, `Add`...). Passes (`crate::passes`) may replace nodes, rewrite epilogues, add derived weights
//! and set layouts and kernel choices; each must leave a graph that [`validate`] accepts. Back ends take
//! a graph together with the [`GraphInfo`] that only [`validate`] can produce.

mod graph;
mod op;
pub mod quant;
mod types;
mod validate;
mod weights;

pub use graph::{Edge, Graph, Node, NodeId};
pub use op::{
    Activation, BatchNorm, Binary, BinaryKind, Conv, ConvKernel, Dense, DenseKernel, Epilogue,
    LayerNormChannels, Lrn, Op, Pool, ScaleShift, SqueezeExcite, window_out,
};
pub use types::{DType, Dim, Layout, Shape, TensorType};
pub use validate::{GraphInfo, validate};
pub use weights::{BnParams, FoldedPart, Weight, WeightId, WeightSource, WeightStore};

/// A violation of the IR's rules, naming the node at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrError {
    #[error("{op} node `{node}`: {message}")]
    Shape {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error("{op} node `{node}` reads a value that does not exist")]
    Dangling { node: String, op: &'static str },
    #[error("the graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("{op} node `{node}`: {message}")]
    Invalid {
        node: String,
        op: &'static str,
        message: String,
    },
}

/// Every violation the validator found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid graph: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct IrErrors(pub Vec<IrError>);
