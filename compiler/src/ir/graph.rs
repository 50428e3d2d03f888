//! The graph itself: a petgraph `StableDiGraph` whose nodes are ops and whose edges are the values
//! flowing between them, plus the model's inputs, outputs and weights.

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::IrError;
use super::op::Op;
use super::types::TensorType;
use super::weights::WeightStore;

/// Handle of a node. Stable across removals of other nodes.
pub type NodeId = NodeIndex<u32>;

/// One operation of the model.
#[derive(Clone, Debug)]
pub struct Node {
    /// The source's name for it (the ONNX node name, or the DSL's generated path such as
    /// `layer2.0.conv2`), so every error and every row of `inspect` can say which node.
    pub name: String,
    pub op: Op,
    /// Type of the node's single output value. Kept in step with the inputs by [`Graph::add_node`]
    /// and [`Graph::retype`]; the validator re-checks it.
    pub output: TensorType,
}

/// An edge carries the producer's output value into input `slot` of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub slot: usize,
}

/// A model: nodes, value edges, inputs/outputs and the weights they use.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: StableDiGraph<Node, Edge>,
    /// `Op::Input` nodes in the model's input order.
    pub inputs: Vec<NodeId>,
    /// Nodes whose values are the model's outputs, with the output names.
    pub outputs: Vec<(NodeId, String)>,
    pub weights: WeightStore,
    /// Name of the symbolic batch dimension in the source (`batch` for the shared models).
    pub batch_name: String,
}

impl Graph {
    pub fn new() -> Graph {
        Graph {
            batch_name: "N".into(),
            ..Graph::default()
        }
    }

    /// Adds a model input of the given type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeId {
        let id = self.nodes.add_node(Node {
            name: name.into(),
            op: Op::Input,
            output: ty,
        });
        self.inputs.push(id);
        id
    }

    /// Adds `op` reading `inputs` (slot order), inferring its output type now, so the graph is typed
    /// at all times. An op that cannot apply to these inputs is an error naming the node.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[NodeId],
    ) -> Result<NodeId, IrError> {
        let name = name.into();
        let output = self.infer(&name, &op, inputs)?;
        let id = self.nodes.add_node(Node { name, op, output });
        for (slot, &src) in inputs.iter().enumerate() {
            self.nodes.add_edge(src, id, Edge { slot });
        }
        Ok(id)
    }

    /// The output type `op` would have on these inputs.
    pub fn infer(&self, name: &str, op: &Op, inputs: &[NodeId]) -> Result<TensorType, IrError> {
        let mut types = Vec::with_capacity(inputs.len());
        for &i in inputs {
            let node = self.nodes.node_weight(i).ok_or_else(|| IrError::Dangling {
                node: name.to_string(),
                op: op.name(),
            })?;
            types.push(&node.output);
        }
        op.infer(&types, &self.weights)
            .map_err(|message| IrError::Shape {
                node: name.to_string(),
                op: op.name(),
                message,
            })
    }

    /// Recomputes a node's output type from its current op and inputs.
    pub fn retype(&mut self, id: NodeId) -> Result<(), IrError> {
        let node = &self.nodes[id];
        let ty = self.infer(&node.name, &node.op, &self.inputs_of(id))?;
        self.nodes[id].output = ty;
        Ok(())
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The producers feeding `id`, in slot order.
    pub fn inputs_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .nodes
            .edges_directed(id, Direction::Incoming)
            .map(|e| (e.weight().slot, e.source()))
            .collect();
        edges.sort_by_key(|&(slot, _)| slot);
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Every `(consumer, slot)` reading the value of `id`.
    pub fn consumers(&self, id: NodeId) -> Vec<(NodeId, usize)> {
        let mut out: Vec<_> = self
            .nodes
            .edges_directed(id, Direction::Outgoing)
            .map(|e| (e.target(), e.weight().slot))
            .collect();
        out.sort();
        out
    }

    /// Whether the value of `id` is one of the model's outputs.
    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.iter().any(|(o, _)| *o == id)
    }

    /// Makes every reader of `old` (consumers and model outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for (consumer, slot) in self.consumers(old) {
            if let Some(e) = self.nodes.find_edge(old, consumer) {
                self.nodes.remove_edge(e);
            }
            self.nodes.add_edge(new, consumer, Edge { slot });
        }
        for (o, _) in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Replaces the incoming edges of `id` by `inputs` (slot order).
    pub fn set_inputs(&mut self, id: NodeId, inputs: &[NodeId]) {
        let old: Vec<_> = self
            .nodes
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.nodes.remove_edge(e);
        }
        for (slot, &src) in inputs.iter().enumerate() {
            self.nodes.add_edge(src, id, Edge { slot });
        }
    }

    /// Removes a node and its edges.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.nodes.remove_node(id)
    }

    /// Nodes in an order where every producer comes before its consumers; ties keep insertion order,
    /// so the order (and the emitted code) is deterministic. A cycle is an error naming a node on it.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        let mut indegree: std::collections::HashMap<NodeId, usize> =
            self.nodes.node_indices().map(|n| (n, 0)).collect();
        for e in self.nodes.edge_references() {
            *indegree.entry(e.target()).or_default() += 1;
        }
        let mut ready: std::collections::BTreeSet<NodeId> = indegree
            .iter()
            .filter(|&(_, &d)| d == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.nodes.edges_directed(n, Direction::Outgoing) {
                let d = indegree
                    .get_mut(&e.target())
                    .expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        if order.len() != self.nodes.node_count() {
            let stuck = indegree
                .iter()
                .filter(|&(_, &d)| d > 0)
                .map(|(&n, _)| n)
                .min();
            let node = stuck
                .map(|n| self.nodes[n].name.clone())
                .unwrap_or_default();
            return Err(IrError::Cycle { node });
        }
        Ok(order)
    }

    /// Counts of each op name, for pass statistics and tests.
    pub fn op_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for n in self.nodes.node_weights() {
            *counts.entry(n.op.name()).or_default() += 1;
        }
        counts
    }
}
