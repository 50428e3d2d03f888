//! `plan-memory`: liveness-based placement of every activation value in one arena, reusing the space
//! of values that are dead, so a model allocates its scratch once, never per layer.
//!
//! Offsets and lengths are in f32 elements **per batch item**: for batch `n` the arena holds
//! `n × arena_len_per_item` elements and a value at `(offset, len)` occupies
//! `arena[n × offset .. n × (offset + len)]`, so one plan serves every batch size.
//!
//! With [`PlanOptions::concat_in_place`], a channel `Concat` costs no copy for the inputs whose
//! producers can write straight into their channel slice of its output. The output's block holds
//! item after item (`[N, C, H, W]`), so a slice of channels is one contiguous run *per item*, the
//! runs `C × H × W` apart: such a value is a [`Slot`] in [`MemoryPlan::slices`] (base, item
//! stride, offset in the item), and the back end runs its producer once per item into each run.
//! A producer writes in place when the concat is the only reader of its value, once: not a model
//! input (the caller owns it), not a model output, not read by anything else or by two concats,
//! not the same value concatenated twice. Every other input is copied in by the concat. A concat
//! written in place into an outer concat (Inception's nested ones) passes its slice on to its own
//! producers, so the whole tree lives in the outermost concat's block, which is live from the
//! first producer's step to the concat's last reader.

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
    /// Producers of a channel `Concat` write into their slice of its output (the back end runs them
    /// once per item into [`MemoryPlan::slices`]) instead of the concat copying them.
    pub concat_in_place: bool,
}

/// Where a value that lives inside a concat's output is: item `n` of it is
/// `arena[batch × base + n × item_stride + at ..][..len]`, for a run of `batch` items. A value with
/// a block of its own at `(offset, len)` is the slot `{ base: offset, item_stride: len, at: 0, len }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub base: usize,
    pub item_stride: usize,
    pub at: usize,
    pub len: usize,
}

impl Slot {
    /// Whether item after item of the value is one contiguous run (a block of its own).
    pub fn is_contiguous(&self) -> bool {
        self.at == 0 && self.item_stride == self.len
    }
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
    /// Values written into their channel slice of a concat's output (not in `offsets`).
    pub slices: HashMap<NodeId, Slot>,
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
    let item_len = |id: NodeId| -> Result<usize, IrError> {
        let node = graph.node(id);
        node.output
            .shape
            .item_len()
            .ok_or_else(|| IrError::Invalid {
                node: node.name.clone(),
                op: node.op.name(),
                message: format!(
                    "output {} has no fixed size per batch item",
                    node.output.shape
                ),
            })
    };
    // The concat each in-place producer writes into, and where its slice starts in an item.
    let mut parent: HashMap<NodeId, (NodeId, usize)> = HashMap::new();
    if opts.concat_in_place {
        for &id in order {
            if !matches!(graph.node(id).op, Op::Concat { .. }) {
                continue;
            }
            let mut at = 0;
            for p in graph.inputs_of(id) {
                let writes_in_place = !matches!(graph.node(p).op, Op::Input)
                    && !graph.is_output(p)
                    && graph.consumers(p).len() == 1;
                if writes_in_place {
                    parent.insert(p, (id, at));
                }
                at += item_len(p)?;
            }
        }
    }
    // The outermost concat whose block holds a value, and the value's offset in one of its items.
    let root = |mut id: NodeId| {
        let mut at = 0;
        while let Some(&(c, offset)) = parent.get(&id) {
            at += offset;
            id = c;
        }
        (id, at)
    };
    // A concat's block is live from the first step that writes into it.
    let mut first_write: HashMap<NodeId, usize> = HashMap::new();
    for &id in parent.keys() {
        let (r, _) = root(id);
        let step = position[&id];
        first_write
            .entry(r)
            .and_modify(|s| *s = (*s).min(step))
            .or_insert(step);
    }
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_of: HashMap<NodeId, usize> = HashMap::new();
    let mut aliases = HashMap::new();
    for (step, &id) in order.iter().enumerate() {
        let node = graph.node(id);
        if matches!(node.op, Op::Input) || parent.contains_key(&id) {
            continue;
        }
        let len = item_len(id)?;
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
                    first: first_write.get(&id).map_or(step, |&s| s.min(step)),
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
    let mut slices = HashMap::new();
    for &id in parent.keys() {
        let (r, at) = root(id);
        let (base, item_stride) = offsets[&r];
        let len = item_len(id)?;
        slices.insert(
            id,
            Slot {
                base,
                item_stride,
                at,
                len,
            },
        );
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
        slices,
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
    /// Where the value of `id` lives, if it is in the arena (model inputs are not).
    pub fn slot(&self, id: NodeId) -> Option<Slot> {
        if let Some(&s) = self.slices.get(&id) {
            return Some(s);
        }
        self.offsets.get(&id).map(|&(offset, len)| Slot {
            base: offset,
            item_stride: len,
            at: 0,
            len,
        })
    }

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
            if let Some(slot) = self.slices.get(&id) {
                let _ = writeln!(
                    s,
                    "  [{:>9}, +{:<9}] {} (in a concat: {} elements at +{} of each item)",
                    slot.base,
                    slot.item_stride,
                    graph.node(id).name,
                    slot.len,
                    slot.at
                );
            }
        }
        s
    }
}
