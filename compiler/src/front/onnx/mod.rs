//! The ONNX front end: decodes a `ModelProto` with tract-onnx's generated protobuf types and maps
//! every node through an op registry onto the IR, reporting every problem of the model at once.
//!
//! Only this module sees tract types, and only the protobuf ones: tract's own model loader is not
//! used, so what we accept and how we read it is ours alone (tract serves as an independent oracle
//! in the tests).
//!
//! Supported: the default ONNX domain at opsets 7 to 28 (from the ONNX model zoo's opset 7–10
//! files to the newest opset `onnx` 1.23 defines; PyTorch's dynamo exporter writes 18 and later),
//! any IR version (nothing the importer reads changed meaning between IR 3, which opset 7 files
//! have, and IR 14, which `onnx` 1.23 writes, so `ir_version` is not checked); 4-D float inputs whose first dimension is the batch (symbolic like `batch`, or any
//! fixed value); initializers stored as `raw_data`, `float_data`, `int64_data`/`int32_data` or in
//! external data files. The ops are those of [`supported_ops`], each read with the semantics of
//! the version the file's opset selects: where an op moved an attribute to an input (Clip's bounds
//! at 11, Dropout's ratio at 12, Unsqueeze's axes at 13, ReduceMean's axes at 18) or gained or lost
//! one (BatchNormalization's `spatial` before 9 and `training_mode` from 14, the pools'
//! `ceil_mode` and `dilations`, Reshape's `allowzero` from 14, Shape's `start`/`end` from 15), the
//! form of another version is an error naming the node, the op and both versions. Every form
//! that changes the result at inference and that we do not implement (non-spatial BatchNorm,
//! training mode, a used MaxPool `Indices` or Dropout `mask`) is an error too.

mod context;
mod import;
mod ops;
mod tensor;

use std::fmt;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

use crate::ir::{self, IrError};

/// The lowest and highest opset of the default ONNX domain we accept.
///
/// 7 is the oldest whose ops all have their current inputs (Add's multidirectional broadcast,
/// BatchNormalization without `is_test`); 28 is the newest `onnx` 1.23 defines. An op's semantics
/// at a given opset are those of its newest version at or below it, as in the ONNX changelog.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=28;

/// Why an ONNX model could not be imported. Every variant names what is at fault: the file, the
/// node (name and op), the initializer, or the graph input/output.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ONNX model: protobuf decode failed: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("not an ONNX model: {0}")]
    NotAModel(String),
    #[error(
        "unsupported opset {version} of the default ONNX domain (the model's `opset_import`): opsets {} to {} are supported",
        OPSETS.start(),
        OPSETS.end()
    )]
    Opset { version: i64 },
    #[error("unsupported ops ({}): {}", .0.len(), join(.0))]
    UnsupportedOps(Vec<UnsupportedOp>),
    #[error("{op} node `{node}`: {message}")]
    Node {
        node: String,
        op: String,
        message: String,
    },
    #[error("initializer `{name}`: {message}")]
    Initializer { name: String, message: String },
    #[error("graph input `{name}`: {message}")]
    Input { name: String, message: String },
    #[error("graph output `{name}`: {message}")]
    Output { name: String, message: String },
    /// A shape rule of the IR rejected a node; the IR error names the node and op.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// Several independent problems, all found in one pass over the model.
    #[error("{} problems: {}", .0.len(), join(.0))]
    Many(Vec<OnnxError>),
}

impl OnnxError {
    /// The individual problems: the list of [`OnnxError::Many`], or this error alone.
    pub fn problems(&self) -> Vec<&OnnxError> {
        match self {
            OnnxError::Many(all) => all.iter().collect(),
            one => vec![one],
        }
    }

    /// One error for a non-empty list of problems.
    fn from_list(mut list: Vec<OnnxError>) -> OnnxError {
        if list.len() == 1 {
            list.remove(0)
        } else {
            OnnxError::Many(list)
        }
    }
}

/// A node whose op the front end does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub node: String,
    /// `op_type`, prefixed with the domain for ops outside the default one (`com.microsoft.Gelu`).
    pub op: String,
    /// The opset the model declares for the node's domain (0 when it declares none).
    pub opset: i64,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` op {} (opset {})",
            self.node, self.op, self.opset
        )?;
        if self.op.contains('.') {
            f.write_str(", outside the default ONNX domain")?;
        }
        Ok(())
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The ops the front end imports: the `op_type` for the default domain, else `domain.op_type`
/// (onnxruntime's `com.microsoft.QGemm`, …).
pub fn supported_ops() -> impl Iterator<Item = String> {
    ops::Registry::standard().op_types()
}

/// Reads and imports the ONNX model at `path`; external data files are found relative to its
/// directory.
pub fn load(path: &Path) -> Result<ir::Graph, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    from_bytes(&bytes, Some(dir))
}

/// Imports an ONNX model from its serialized bytes. `base_dir` is where external data files are
/// looked up; a model with external data and no `base_dir` is an error.
pub fn from_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<ir::Graph, OnnxError> {
    if bytes.is_empty() {
        return Err(OnnxError::NotAModel("the file is empty".into()));
    }
    let model = pb::ModelProto::decode(bytes)?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(OnnxError::NotAModel(
            "the protobuf holds no graph (is this an ONNX file?)".into(),
        ));
    };
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            OnnxError::NotAModel("it declares no opset for the default ONNX domain".into())
        })?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Opset { version: opset });
    }
    let domains = model
        .opset_import
        .iter()
        .map(|o| (o.domain.clone(), o.version))
        .collect();
    import::import_graph(graph, opset, &domains, base_dir, ops::Registry::standard())
}
