//! `plan-memory`: liveness-based placement of every activation value in one arena, reusing the space
//! of values that are dead, so a model allocates its scratch once, never per layer.
//!
//! Offsets and lengths are in f32 elements **per batch item**: for batch `n` the arena holds
//! `n × arena_len_per_item` elements and a value at `(offset, len)` occupies
//! `arena[n × offset .. n × (offset + len)]`, so one plan serves every batch size.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::ir::{Graph, GraphInfo, IrError, NodeId, Op};

/// Offsets are multiples of this many elements (64 bytes), so every value starts on a cache line
/// whenever the arena does.
pub const ALIGN: usize = 16;

/// What `plan-memory` may share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Flatten/Reshape/Identity reuse their input's storage (the back end emits no copy for them).
    pub views: bool,
    /// Elementwise ops (Relu, Clip, Add, ScaleShift, BatchNorm) write over an input that dies there
    /// (the back end must run them in place).
    pub in_place: bool,
}

/// Where every activation value lives in the arena. Model inputs are not in it: the caller owns them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryPlan {
    /// Arena length in elements per batch item.
    pub arena_len_per_item: usize,
    /// `(offset, len)` per batch item of each node's output value.
    pub offsets: HashMap<NodeId, (usize, usize)>,
    /// `4 × arena_len_per_item`.
    pub peak_bytes_per_item: usize,
    /// The largest total of values live at one step, in elements per item: no plan can do better.
    pub lower_bound_per_item: usize,
    /// Nodes that write over the storage of the input named here (views and in-place ops).
    pub aliases: HashMap<NodeId, NodeId>,
}

/// One block of the arena and the steps (positions in topological order) during which it is live.
struct Buffer {
    len: usize,
    first: usize,
    last: usize,
    members: Vec<NodeId>,
}

/// Plans the arena for a validated graph (`info.order()` is its topological order).
pub fn plan_memory(
    graph: &Graph,
    info: &GraphInfo,
    opts: &PlanOptions,
) -> Result<MemoryPlan, IrError> {
    let order = info.order();
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // The last step that reads each value; model outputs are read after the last step.
    let last_use = |id: NodeId| -> usize {
        if graph.is_output(id) {
            return order.len();
        }
        graph
            .consumers(id)
            .iter()
            .filter_map(|(c, _)| position.get(c).copied())
            .max()
            .unwrap_or(position[&id])
    };
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_of: HashMap<NodeId, usize> = HashMap::new();
    let mut aliases = HashMap::new();
    for (step, &id) in order.iter().enumerate() {
        let node = graph.node(id);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let len = node
            .output
            .shape
            .item_len()
            .ok_or_else(|| IrError::Invalid {
                node: node.name.clone(),
                op: node.op.name(),
                message: format!(
                    "output {} has no fixed size per batch item",
                    node.output.shape
                ),
            })?;
        let shares = match node.op {
            Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => opts.views,
            Op::Relu | Op::Clip { .. } | Op::Add { .. } | Op::ScaleShift(_) | Op::BatchNorm(_) => {
                opts.in_place
            }
            _ => false,
        };
        // An input whose storage ends here (no later reader, not a model output) can be reused.
        let reuse = shares
            .then(|| {
                graph.inputs_of(id).into_iter().find(|u| {
                    buffer_of
                        .get(u)
                        .is_some_and(|&b| buffers[b].len == len && buffers[b].last == step)
                })
            })
            .flatten();
        let last = last_use(id);
        match reuse {
            Some(u) => {
                let b = buffer_of[&u];
                buffers[b].last = last;
                buffers[b].members.push(id);
                buffer_of.insert(id, b);
                aliases.insert(id, u);
            }
            None => {
                buffer_of.insert(id, buffers.len());
                buffers.push(Buffer {
                    len,
                    first: step,
                    last,
                    members: vec![id],
                });
            }
        }
    }
    let placed = place_greedy_by_size(&buffers);
    let mut offsets = HashMap::new();
    let mut arena_len = 0;
    for (b, &offset) in buffers.iter().zip(&placed) {
        arena_len = arena_len.max(offset + b.len);
        for &m in &b.members {
            offsets.insert(m, (offset, b.len));
        }
    }
    let arena_len = arena_len.next_multiple_of(ALIGN);
    let lower_bound = (0..=order.len())
        .map(|step| {
            buffers
                .iter()
                .filter(|b| b.first <= step && step <= b.last)
                .map(|b| b.len)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    Ok(MemoryPlan {
        arena_len_per_item: arena_len,
        offsets,
        peak_bytes_per_item: arena_len * 4,
        lower_bound_per_item: lower_bound,
        aliases,
    })
}

/// Greedy by size: the largest buffers are placed first, each at the offset of the smallest gap
/// between already placed buffers that are live at the same time (or after the last of them).
fn place_greedy_by_size(buffers: &[Buffer]) -> Vec<usize> {
    let mut by_size: Vec<usize> = (0..buffers.len()).collect();
    by_size.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].len), buffers[b].first));
    let mut offset: Vec<Option<usize>> = vec![None; buffers.len()];
    for &b in &by_size {
        let this = &buffers[b];
        let mut taken: Vec<(usize, usize)> = (0..buffers.len())
            .filter_map(|o| {
                let other = &buffers[o];
                let overlaps = other.first <= this.last && this.first <= other.last;
                offset[o]
                    .filter(|_| overlaps)
                    .map(|at| (at, at + other.len))
            })
            .collect();
        taken.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for &(start, end) in &taken {
            if start >= cursor + this.len {
                let gap = start - cursor;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(end.next_multiple_of(ALIGN));
        }
        offset[b] = Some(best.map_or(cursor, |(_, at)| at));
    }
    offset.into_iter().map(|o| o.unwrap_or(0)).collect()
}

impl MemoryPlan {
    /// One line per planned value, in topological order, for `--print-after plan-memory`.
    pub fn text(&self, graph: &Graph) -> String {
        let mut s = format!(
            "memory plan: arena {} elements ({} bytes) per batch item, lower bound {} elements\n",
            self.arena_len_per_item, self.peak_bytes_per_item, self.lower_bound_per_item
        );
        for id in graph.topo_order().unwrap_or_default() {
            if let Some(&(offset, len)) = self.offsets.get(&id) {
                let alias = self
                    .aliases
                    .get(&id)
                    .map(|a| format!(" (reuses `{}`)", graph.node(*a).name))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  [{offset:>9}, +{len:<9}] {}{alias}",
                    graph.node(id).name
                );
            }
        }
        s
    }
}
