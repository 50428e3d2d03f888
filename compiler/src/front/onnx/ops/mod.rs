//! The op registry: one import function per ONNX `op_type`, mapping a node onto IR ops, with the
//! attributes each one understands (any other attribute is an error, never silently ignored).
//!
//! Each op family is one file with a `register` function that adds its importers;
//! [`Registry::standard`] calls them all, and the import driver is handed the registry. Importers
//! see only the parsing context (`front::onnx::context`), so adding an op family is one new file
//! here and one line in `standard`.

mod activation;
mod batch_index;
mod binary;
mod channels;
mod channels_last;
mod constant;
mod conv;
mod dense;
mod elementwise;
mod identity;
mod norm;
mod pool;
mod qoperator;
mod quantize;
mod shape;
mod shape_arith;
mod window;

use std::sync::LazyLock;

use super::OnnxError;
use super::context::{Importer, NodeCtx, Value};

/// Imports one node: reads its inputs and attributes from the context and adds IR nodes, or
/// returns the value (a constant) that its output stands for.
pub(crate) type ImportFn = fn(&mut Importer, &NodeCtx) -> Result<Value, OnnxError>;

/// How to import one `op_type` of one domain.
pub(crate) struct OpImport {
    /// `""` for the default ONNX domain, else e.g. `com.microsoft` (onnxruntime's contrib ops).
    pub domain: &'static str,
    pub op_type: &'static str,
    pub import: ImportFn,
    /// Every attribute `import` reads or knows to be harmless.
    pub attributes: &'static [&'static str],
    /// Whether `import` reads 8-bit tensors (QuantizeLinear's output, the QOperator form's
    /// values) itself; any other op reading one goes through `qoperator::import_on_codes`.
    pub reads_codes: bool,
}

/// The importers, by domain and `op_type`, in the order they were registered.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<OpImport>,
}

/// Imports one node: with `entry`, its registered importer, unless an input is one of the values
/// that stand for a pattern being recognised (an NHWC view, a LayerNorm step, batch indices),
/// whose next step the pattern's own module imports, or an 8-bit tensor that `entry` does not
/// read itself (MaxPool, Flatten, … on the QOperator form's codes).
pub(crate) fn import_node(
    entry: &OpImport,
    im: &mut Importer,
    ctx: &NodeCtx,
) -> Result<Value, OnnxError> {
    if !entry.reads_codes && qoperator::reads_codes(im, ctx) {
        qoperator::import_on_codes(entry, im, ctx)
    } else if channels_last::reads_view(im, ctx) {
        channels_last::import(entry, im, ctx)
    } else if batch_index::reads_index(im, ctx) {
        batch_index::import(im, ctx)
    } else {
        (entry.import)(im, ctx)
    }
}

impl Registry {
    /// Every op this front end supports.
    pub fn standard() -> &'static Registry {
        static STANDARD: LazyLock<Registry> = LazyLock::new(|| {
            let mut reg = Registry::default();
            conv::register(&mut reg);
            norm::register(&mut reg);
            elementwise::register(&mut reg);
            pool::register(&mut reg);
            dense::register(&mut reg);
            constant::register(&mut reg);
            shape::register(&mut reg);
            identity::register(&mut reg);
            activation::register(&mut reg);
            binary::register(&mut reg);
            channels::register(&mut reg);
            shape_arith::register(&mut reg);
            channels_last::register(&mut reg);
            batch_index::register(&mut reg);
            quantize::register(&mut reg);
            qoperator::register(&mut reg);
            reg
        });
        &STANDARD
    }

    /// Adds the importer of `op_type` of the default domain, which reads exactly `attributes`.
    fn insert(
        &mut self,
        op_type: &'static str,
        import: ImportFn,
        attributes: &'static [&'static str],
    ) {
        self.push(OpImport {
            domain: "",
            op_type,
            import,
            attributes,
            reads_codes: false,
        });
    }

    /// Adds the importer of an op of `domain` that reads 8-bit tensors itself (`DequantizeLinear`,
    /// the QOperator ops).
    fn insert_quantized(
        &mut self,
        domain: &'static str,
        op_type: &'static str,
        import: ImportFn,
        attributes: &'static [&'static str],
    ) {
        self.push(OpImport {
            domain,
            op_type,
            import,
            attributes,
            reads_codes: true,
        });
    }

    /// Two families claiming one op is a bug of this crate, caught by the debug builds of the tests.
    fn push(&mut self, entry: OpImport) {
        debug_assert!(
            self.lookup(entry.domain, entry.op_type).is_none(),
            "op `{}` is registered twice",
            entry.op_type
        );
        self.entries.push(entry);
    }

    /// The importer of `op_type` in `domain` (`""` and `ai.onnx` both name the default domain).
    pub fn lookup(&self, domain: &str, op_type: &str) -> Option<&OpImport> {
        let domain = if domain == "ai.onnx" { "" } else { domain };
        self.entries
            .iter()
            .find(|e| e.domain == domain && e.op_type == op_type)
    }

    /// The registered ops in registration order: the `op_type` for the default domain, else
    /// `domain.op_type` (`com.microsoft.QGemm`).
    pub fn op_types(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|e| {
            if e.domain.is_empty() {
                e.op_type.to_string()
            } else {
                format!("{}.{}", e.domain, e.op_type)
            }
        })
    }
}
