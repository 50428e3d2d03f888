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

/// How to import one `op_type` of the default domain.
pub(crate) struct OpImport {
    pub op_type: &'static str,
    pub import: ImportFn,
    /// Every attribute `import` reads or knows to be harmless.
    pub attributes: &'static [&'static str],
}

/// The importers of the default ONNX domain, by `op_type`, in the order they were registered.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<OpImport>,
}

/// Imports one node: with `entry`, its registered importer, unless an input is one of the values
/// that stand for a pattern being recognised (an NHWC view, a LayerNorm step, batch indices),
/// whose next step the pattern's own module imports.
pub(crate) fn import_node(
    entry: &OpImport,
    im: &mut Importer,
    ctx: &NodeCtx,
) -> Result<Value, OnnxError> {
    if channels_last::reads_view(im, ctx) {
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
            reg
        });
        &STANDARD
    }

    /// Adds the importer of `op_type`, which reads exactly `attributes`.
    ///
    /// Two families claiming one op is a bug of this crate, caught by the debug builds of the tests.
    fn insert(
        &mut self,
        op_type: &'static str,
        import: ImportFn,
        attributes: &'static [&'static str],
    ) {
        debug_assert!(
            self.lookup(op_type).is_none(),
            "op `{op_type}` is registered twice"
        );
        self.entries.push(OpImport {
            op_type,
            import,
            attributes,
        });
    }

    pub fn lookup(&self, op_type: &str) -> Option<&OpImport> {
        self.entries.iter().find(|e| e.op_type == op_type)
    }

    /// The registered `op_type`s, in registration order.
    pub fn op_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.op_type)
    }
}
