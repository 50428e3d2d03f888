//! `select-kernels`: gives every conv the runtime kernel its shape suits (pointwise GEMM, direct
//! grouped or depthwise, im2col + GEMM) and every dense layer the packed GEMM, prepacking weights.
//! First it turns each squeeze-excite block into one node (see
//! [`fuse_squeeze_excite`](super::fuse_squeeze_excite)), whose kernel reads the weights as they are.
//!
//! Weights known now are packed here, so the weights file holds them in the kernel's layout; weights
//! the loader reads later (the DSL's state_dict) get a [`WeightSource::PackedConv`] /
//! [`WeightSource::PackedDense`] recipe the loader evaluates with the same runtime functions.
//!
//! Dense 3×3 stride-1 convs run Winograd F(2×2, 3×3) where `winograd::preferred` (a cost model
//! calibrated by `runtime-core/examples/bench_winograd.rs`) expects it to be faster than the GEMM
//! over the 9 taps at batch 1 on one thread; F(4×4, 3×3) only when asked (`RESNEXT_WINOGRAD`,
//! read when the pass runs; [`WinogradChoice`], which says why).
//!
//! Activation layout: convs whose kernels have an NCHW8c form (1×1 and grouped convs over whole
//! blocks of 8 channels) form regions (connected through the values between them); a region whose
//! 1×1 convs do at least [`MIN_MACS_PER_REORDERED`] multiply-adds per float that would have to be
//! reordered at its edges runs on NCHW8c (`resnext_runtime_core::kernels::blocked`, where the 1×1 convs
//! need no run-time packing), with `Reorder` nodes inserted at its edges. On ResNeXt-50 that is
//! every conv after the max pool (one reorder in, one out); on MobileNetV2, whose depthwise convs
//! cut the 1×1 convs into pairs, and on ResNet-50, whose dense 3×3 convs do the same, no region
//! pays for its reorders and everything stays NCHW.

use std::collections::{HashMap, HashSet};

use petgraph::visit::EdgeRef;

use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{ConvShape, dense, direct_bf16, winograd};

use super::Precision;
use super::fuse_squeeze_excite::fuse_squeeze_excite;
use crate::interp;
use crate::ir::{
    ConvKernel, DenseKernel, Graph, IrError, Layout, NodeId, Op, WeightId, WeightSource,
};

/// Multiply-adds of a region's 1×1 convs per activation float reordered at its edges, at or above
/// which the region runs on NCHW8c: a reorder moves a float through memory twice (~1 ns a float
/// here), and the blocked 1×1 conv saves ~10% of a multiply-add (~0.003 ns at ~45 GMAC/s), so
/// break-even is near 300; 1024 leaves a margin. ResNeXt-50's one region has ~13 000.
const MIN_MACS_PER_REORDERED: u64 = 1024;

/// Which Winograd algorithm, if any, runs the dense 3×3 stride-1 convs. By default F(2×2, 3×3),
/// whose rounding error is within a small factor of the direct sum's, where `winograd::preferred`
/// expects it to be faster. F(4×4, 3×3) is faster still but opt-in: its rounding error is 17–53×
/// the implicit GEMM's per layer, which deep nets accumulate past the 1e-4 × max |logit| the compiled
/// models are held to (full-size ResNet-50, Wide ResNet-50 and Inception-v3 with random weights:
/// 2–3× that bound against PyTorch, 2026-12-07), so it is the user's choice of speed over
/// agreement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WinogradChoice {
    /// F(2×2, 3×3) where `winograd::preferred` expects it to be faster (batch 1, one thread).
    #[default]
    Accurate,
    /// F(4×4, 3×3) where the cost model expects it to be faster, else F(2×2, 3×3) where that is.
    Fast,
    /// F(4×4, 3×3) on every conv it supports.
    Always,
    /// None.
    Never,
}

impl WinogradChoice {
    /// `RESNEXT_WINOGRAD`: `off` is [`WinogradChoice::Never`], `4x4` (or `auto`)
    /// [`WinogradChoice::Fast`], `on` [`WinogradChoice::Always`]; unset, `2x2` or anything else
    /// [`WinogradChoice::Accurate`].
    pub fn from_env() -> WinogradChoice {
        match std::env::var("RESNEXT_WINOGRAD").as_deref() {
            Ok("off") => WinogradChoice::Never,
            Ok("4x4" | "auto") => WinogradChoice::Fast,
            Ok("on") => WinogradChoice::Always,
            _ => WinogradChoice::Accurate,
        }
    }

    /// The algorithm for `shape`, whose best non-Winograd algorithm is `other`.
    fn choose(self, shape: &ConvShape, other: ConvAlgo) -> ConvAlgo {
        use winograd::Variant;
        if !matches!(other, ConvAlgo::Im2col | ConvAlgo::ImplicitGemm) {
            return other;
        }
        let f2 = || winograd::preferred(Variant::F2, shape, 1, 1);
        let f4 = || winograd::preferred(Variant::F4, shape, 1, 1);
        match self {
            WinogradChoice::Accurate if f2() => ConvAlgo::Winograd2x2,
            WinogradChoice::Fast if f4() => ConvAlgo::Winograd4x4,
            WinogradChoice::Fast if f2() => ConvAlgo::Winograd2x2,
            WinogradChoice::Always if winograd::supports(shape) => ConvAlgo::Winograd4x4,
            _ => other,
        }
    }
}

/// Chooses a fast kernel for every conv and dense node still on the reference, moving regions
/// that pay for it onto NCHW8c; returns whether it changed anything.
pub fn select_kernels(graph: &mut Graph) -> Result<bool, IrError> {
    select_kernels_with(graph, true, Precision::F32)
}

/// [`select_kernels`] with every value left NCHW (`PassOptions::layout` not allowing NCHW8c).
pub fn select_kernels_nchw(graph: &mut Graph) -> Result<bool, IrError> {
    select_kernels_with(graph, false, Precision::F32)
}

/// [`select_kernels_nchw`] with the Winograd choice given rather than read from the environment.
pub fn select_kernels_nchw_with(
    graph: &mut Graph,
    winograd: WinogradChoice,
) -> Result<bool, IrError> {
    let fused = fuse_squeeze_excite(graph)?;
    Ok(select_with(graph, HashSet::new(), Precision::F32, winograd)? | fused)
}

/// [`select_kernels`], moving regions onto NCHW8c only if `nchw8c`; with [`Precision::Bf16`] the
/// NCHW 1×1 convs get `ConvAlgo::PointwiseBf16`, the other convs `direct_bf16::preferred` takes
/// `ConvAlgo::DirectBf16`, and the dense layers `DenseKernel::PackedBf16`.
/// Winograd is chosen as `RESNEXT_WINOGRAD` says ([`WinogradChoice::from_env`]).
pub fn select_kernels_with(
    graph: &mut Graph,
    nchw8c: bool,
    precision: Precision,
) -> Result<bool, IrError> {
    let fused = fuse_squeeze_excite(graph)?;
    let blocked = if nchw8c {
        nchw8c_region(graph)?
    } else {
        HashSet::new()
    };
    Ok(select_with(graph, blocked, precision, WinogradChoice::from_env())? | fused)
}

fn select_with(
    graph: &mut Graph,
    blocked: HashSet<NodeId>,
    precision: Precision,
    winograd: WinogradChoice,
) -> Result<bool, IrError> {
    let bf16 = precision == Precision::Bf16;
    let mut changed = false;
    for id in graph.topo_order()? {
        let node = graph.node(id);
        match &node.op {
            Op::Conv(c) if c.kernel_choice == ConvKernel::Reference => {
                let input = graph.inputs_of(id)[0];
                let shape = interp::conv_shape(c, &graph.node(input).output, &node.output);
                let nchw = winograd.choose(&shape, ConvAlgo::select(&shape));
                let algo = match nchw.nchw8c() {
                    Some(nchw8c) if blocked.contains(&id) => nchw8c,
                    _ if bf16 && nchw == ConvAlgo::Pointwise => ConvAlgo::PointwiseBf16,
                    _ if bf16 && nchw != ConvAlgo::Depthwise && direct_bf16::preferred(&shape) => {
                        ConvAlgo::DirectBf16
                    }
                    _ => nchw,
                };
                let weight = c.weight;
                let packed = pack(
                    graph,
                    id,
                    weight,
                    algo.name(),
                    conv::packed_len(algo, &shape),
                    |data| conv::pack(algo, &shape, data).map_err(|e| e.to_string()),
                    || WeightSource::PackedConv {
                        algo,
                        shape,
                        source: weight,
                    },
                )?;
                if let Op::Conv(c) = &mut graph.nodes[id].op {
                    c.weight = packed;
                    c.kernel_choice = ConvKernel::Fast(algo);
                }
                changed = true;
            }
            Op::Dense(d) if d.kernel == DenseKernel::Reference => {
                let (k, m, weight) = (d.in_features, d.out_features, d.weight);
                let packed = if bf16 {
                    pack(
                        graph,
                        id,
                        weight,
                        "dense-bf16",
                        dense::packed_len_bf16(k, m),
                        |data| dense::pack_bf16(k, m, data).map_err(|e| e.to_string()),
                        || WeightSource::PackedDenseBf16 {
                            in_features: k,
                            out_features: m,
                            source: weight,
                        },
                    )?
                } else {
                    pack(
                        graph,
                        id,
                        weight,
                        "dense",
                        dense::packed_len(k, m),
                        |data| dense::pack(k, m, data).map_err(|e| e.to_string()),
                        || WeightSource::PackedDense {
                            in_features: k,
                            out_features: m,
                            source: weight,
                        },
                    )?
                };
                if let Op::Dense(d) = &mut graph.nodes[id].op {
                    d.weight = packed;
                    d.kernel = if bf16 {
                        DenseKernel::PackedBf16
                    } else {
                        DenseKernel::Packed
                    };
                }
                changed = true;
            }
            _ => {}
        }
    }
    insert_reorders(graph, &blocked)?;
    Ok(changed)
}

/// The NCHW8c-capable algorithm for conv `id` (still on the reference), if it has one.
fn nchw8c_algo(graph: &Graph, id: NodeId) -> Option<ConvAlgo> {
    let node = graph.node(id);
    let Op::Conv(c) = &node.op else {
        return None;
    };
    if c.kernel_choice != ConvKernel::Reference {
        return None;
    }
    let input = graph.inputs_of(id)[0];
    let shape = interp::conv_shape(c, &graph.node(input).output, &node.output);
    ConvAlgo::select(&shape)
        .nchw8c()
        .filter(|a| a.supports(&shape))
}

/// The convs that will run on NCHW8c: every region of NCHW8c-capable convs that pays for its
/// reorders (see the module doc).
fn nchw8c_region(graph: &Graph) -> Result<HashSet<NodeId>, IrError> {
    let order = graph.topo_order()?;
    let capable: HashMap<NodeId, ConvAlgo> = order
        .iter()
        .filter_map(|&id| Some((id, nchw8c_algo(graph, id)?)))
        .collect();
    // Regions: connected components of the capable convs through the values between them.
    let mut region: HashMap<NodeId, usize> = HashMap::new();
    let mut members: Vec<Vec<NodeId>> = Vec::new();
    for &start in &order {
        if !capable.contains_key(&start) || region.contains_key(&start) {
            continue;
        }
        let r = members.len();
        let mut stack = vec![start];
        let mut nodes = Vec::new();
        region.insert(start, r);
        while let Some(n) = stack.pop() {
            nodes.push(n);
            let neighbours = graph
                .inputs_of(n)
                .into_iter()
                .chain(graph.consumers(n).into_iter().map(|(c, _)| c));
            for m in neighbours {
                if capable.contains_key(&m) && !region.contains_key(&m) {
                    region.insert(m, r);
                    stack.push(m);
                }
            }
        }
        members.push(nodes);
    }
    let mut chosen = HashSet::new();
    for nodes in members {
        let inside: HashSet<NodeId> = nodes.iter().copied().collect();
        let item_len = |id: NodeId| graph.node(id).output.shape.item_len().unwrap_or(0) as u64;
        let mut macs = 0u64;
        let mut reordered: HashSet<NodeId> = HashSet::new();
        let mut reordered_len = 0u64;
        for &n in &nodes {
            if capable.get(&n) == Some(&ConvAlgo::PointwiseNchw8c) {
                macs += graph.node(n).op.macs(&graph.node(n).output);
            }
            // Values coming in from outside, and values leaving (to a consumer outside or as a
            // model output), each reordered once.
            for p in graph.inputs_of(n) {
                if !inside.contains(&p) && reordered.insert(p) {
                    reordered_len += item_len(p);
                }
            }
            let leaves =
                graph.is_output(n) || graph.consumers(n).iter().any(|(c, _)| !inside.contains(c));
            if leaves && reordered.insert(n) {
                reordered_len += item_len(n);
            }
        }
        if macs >= MIN_MACS_PER_REORDERED * reordered_len.max(1) {
            chosen.extend(nodes);
        }
    }
    Ok(chosen)
}

/// Puts `Reorder` nodes at the edges of the NCHW8c convs `blocked`: one to NCHW8c per value read
/// from outside, one to NCHW per value read outside (or a model output); then retypes the graph.
fn insert_reorders(graph: &mut Graph, blocked: &HashSet<NodeId>) -> Result<(), IrError> {
    if blocked.is_empty() {
        return Ok(());
    }
    let order = graph.topo_order()?;
    let mut to_blocked: HashMap<NodeId, NodeId> = HashMap::new();
    for &id in order.iter().filter(|id| blocked.contains(id)) {
        for (slot, p) in graph.inputs_of(id).into_iter().enumerate() {
            if blocked.contains(&p) {
                continue;
            }
            let r = match to_blocked.get(&p) {
                Some(&r) => r,
                None => {
                    let name = format!("{}/to_nchw8c", graph.node(p).name);
                    let r = graph.add_node(name, Op::Reorder { to: Layout::Nchw8c }, &[p])?;
                    to_blocked.insert(p, r);
                    r
                }
            };
            rewire(graph, p, r, id, slot);
        }
    }
    for &id in order.iter().filter(|id| blocked.contains(id)) {
        let outside: Vec<(NodeId, usize)> = graph
            .consumers(id)
            .into_iter()
            .filter(|(c, _)| !blocked.contains(c))
            .collect();
        if outside.is_empty() && !graph.is_output(id) {
            continue;
        }
        let name = format!("{}/to_nchw", graph.node(id).name);
        // Typed once the region is (below): a reorder of a value still typed NCHW is refused.
        let r = graph.nodes.add_node(crate::ir::Node {
            name,
            op: Op::Reorder { to: Layout::Nchw },
            output: graph.node(id).output.clone(),
        });
        graph.nodes.add_edge(id, r, crate::ir::Edge { slot: 0 });
        for (c, slot) in outside {
            rewire(graph, id, r, c, slot);
        }
        for (o, _) in &mut graph.outputs {
            if *o == id {
                *o = r;
            }
        }
    }
    for id in graph.topo_order()? {
        if !matches!(graph.node(id).op, Op::Input) {
            graph.retype(id)?;
        }
    }
    Ok(())
}

/// Makes input `slot` of `consumer` read `to` instead of `from`.
fn rewire(graph: &mut Graph, from: NodeId, to: NodeId, consumer: NodeId, slot: usize) {
    let edge = graph
        .nodes
        .edges_connecting(from, consumer)
        .find(|e| e.weight().slot == slot)
        .map(|e| e.id());
    if let Some(e) = edge {
        graph.nodes.remove_edge(e);
        graph.nodes.add_edge(to, consumer, crate::ir::Edge { slot });
    }
}

/// Adds the packed form of `weight` (node `id`): computed now if its data is known, else a recipe.
fn pack(
    graph: &mut Graph,
    id: NodeId,
    weight: WeightId,
    layout: &str,
    len: usize,
    pack_now: impl FnOnce(&[f32]) -> Result<Vec<f32>, String>,
    recipe: impl FnOnce() -> WeightSource,
) -> Result<WeightId, IrError> {
    let node = graph.node(id);
    let fail = |message: String| IrError::Invalid {
        node: node.name.clone(),
        op: node.op.name(),
        message,
    };
    let w = graph
        .weights
        .get(weight)
        .ok_or_else(|| fail(format!("missing weight {weight:?}")))?;
    let name = format!("{}@{layout}", w.name);
    if graph.weights.is_loaded(weight) {
        let data = pack_now(&w.data).map_err(|e| fail(format!("packing `{}`: {e}", w.name)))?;
        if data.len() != len {
            return Err(fail(format!(
                "packing `{}` gave {} floats, expected {len}",
                w.name,
                data.len()
            )));
        }
        Ok(graph.weights.add(name, vec![len], data))
    } else {
        Ok(graph.weights.add_deferred(name, vec![len], recipe()))
    }
}
