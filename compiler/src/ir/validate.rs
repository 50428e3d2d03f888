//! The validator: checks a whole graph and returns the [`GraphInfo`] that every back end requires, so
//! an unvalidated graph cannot reach code generation.

use std::collections::HashSet;

use petgraph::Direction;

use super::graph::{Graph, NodeId};
use super::op::Op;
use super::{IrError, IrErrors};

/// What validation proved about a graph, and facts derived on the way.
///
/// Only [`validate`] makes one: its fields are private, so holding a `GraphInfo` means the graph
/// passed validation (a back end cannot be handed a hand-made one).
///
/// ```compile_fail,E0451
/// let info = resnext_compiler::ir::GraphInfo { order: Vec::new(), macs: 0, params: 0 };
/// ```
#[derive(Clone, Debug)]
pub struct GraphInfo {
    order: Vec<NodeId>,
    macs: u64,
    params: u64,
}

impl GraphInfo {
    /// Every node, producers before consumers.
    pub fn order(&self) -> &[NodeId] {
        &self.order
    }

    /// Multiply-accumulates per batch item, whole graph.
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// Number of weight elements referenced by ops.
    pub fn params(&self) -> u64 {
        self.params
    }
}

/// Checks every invariant of the IR and reports every violation found, not only the first:
/// acyclic; each node has exactly its op's arity of inputs on slots `0..arity`; every weight handle
/// exists; the stored output type equals the re-inferred one; inputs are `Op::Input` nodes and every
/// output names a live node.
pub fn validate(graph: &Graph) -> Result<GraphInfo, IrErrors> {
    let mut errors = Vec::new();
    for id in graph.nodes.node_indices() {
        let node = &graph.nodes[id];
        let mut slots: Vec<usize> = graph
            .nodes
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.weight().slot)
            .collect();
        slots.sort_unstable();
        if slots != (0..node.op.arity()).collect::<Vec<_>>() {
            errors.push(IrError::Invalid {
                node: node.name.clone(),
                op: node.op.name(),
                message: format!(
                    "input slots {slots:?}, expected {} input(s)",
                    node.op.arity()
                ),
            });
            continue;
        }
        for w in node.op.weights() {
            if graph.weights.get(w).is_none() {
                errors.push(IrError::Invalid {
                    node: node.name.clone(),
                    op: node.op.name(),
                    message: format!("refers to missing weight {w:?}"),
                });
            }
        }
        if matches!(node.op, Op::Input) {
            if !graph.inputs.contains(&id) {
                errors.push(IrError::Invalid {
                    node: node.name.clone(),
                    op: "Input",
                    message: "is not listed among the model inputs".into(),
                });
            }
            continue;
        }
        match graph.infer(&node.name, &node.op, &graph.inputs_of(id)) {
            Ok(ty) if ty == node.output => {}
            Ok(ty) => errors.push(IrError::Invalid {
                node: node.name.clone(),
                op: node.op.name(),
                message: format!(
                    "stored output type {} but its inputs give {ty}",
                    node.output
                ),
            }),
            Err(e) => errors.push(e),
        }
    }
    for &i in &graph.inputs {
        if !graph.nodes.contains_node(i) || !matches!(graph.nodes[i].op, Op::Input) {
            errors.push(IrError::Invalid {
                node: format!("{i:?}"),
                op: "Input",
                message: "model input is not an Input node".into(),
            });
        }
    }
    if graph.outputs.is_empty() {
        errors.push(IrError::Invalid {
            node: String::new(),
            op: "",
            message: "the model has no outputs".into(),
        });
    }
    for (o, name) in &graph.outputs {
        if !graph.nodes.contains_node(*o) {
            errors.push(IrError::Invalid {
                node: name.clone(),
                op: "",
                message: "model output refers to a removed node".into(),
            });
        }
    }
    let order = match graph.topo_order() {
        Ok(order) => order,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(IrErrors(errors));
    }
    let mut macs = 0;
    let mut seen = HashSet::new();
    let mut params = 0u64;
    for &id in &order {
        let node = &graph.nodes[id];
        macs += node.op.macs(&node.output);
        for w in node.op.weights() {
            if seen.insert(w) {
                params += graph
                    .weights
                    .get(w)
                    .map_or(0, |t| t.dims.iter().product::<usize>())
                    as u64;
            }
        }
    }
    Ok(GraphInfo {
        order,
        macs,
        params,
    })
}
