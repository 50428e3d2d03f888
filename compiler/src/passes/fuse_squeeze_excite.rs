//! Squeeze-excite blocks as one node: `Mul(x, conv₂(conv₁(GlobalAveragePool(x))))`, where both
//! convs are 1×1 on the pooled 1×1 map (any activations fused into them; the second one's is the
//! gate), becomes one [`Op::SqueezeExcite`] reading `x`. Run by `select-kernels` before it packs the
//! convs, since the fused op is a CPU kernel (the CUDA back end, which does not run that pass, keeps
//! the unfused nodes). torchvision's `SqueezeExcitation` (EfficientNet, MobileNetV3, RegNetY) is
//! exactly this pattern; blocks written with `Linear` layers on a flattened vector are left alone.

use super::sole_consumer;
use crate::ir::{
    BinaryKind, Conv, ConvKernel, Graph, IrError, NodeId, Op, SqueezeExcite, TensorType,
};

/// Fuses every squeeze-excite block; returns whether it changed anything.
pub fn fuse_squeeze_excite(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        if !graph.nodes.contains_node(id) {
            continue;
        }
        if let Some(block) = match_block(graph, id) {
            fuse(graph, id, block)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The parts of the block whose Mul is `mul`.
struct Block {
    x: NodeId,
    pool: NodeId,
    reduce: NodeId,
    expand: NodeId,
    op: SqueezeExcite,
}

fn match_block(graph: &Graph, mul: NodeId) -> Option<Block> {
    let Op::Binary(b) = &graph.node(mul).op else {
        return None;
    };
    if b.kind != BinaryKind::Mul || b.constant.is_some() {
        return None;
    }
    let operands = graph.inputs_of(mul);
    let &[a, c] = operands.as_slice() else {
        return None;
    };
    // Either operand order: the gate is the conv, `x` the value pooled at the block's start.
    [(a, c), (c, a)].into_iter().find_map(|(x, expand)| {
        let reduce = single_input_of(graph, expand, mul)?;
        let pool = single_input_of(graph, reduce, expand)?;
        let pooled_x = single_input_of(graph, pool, reduce)?;
        if pooled_x != x
            || !matches!(
                graph.node(pool).op,
                Op::GlobalAveragePool { keep_dims: true }
            )
        {
            return None;
        }
        let (Op::Conv(r), Op::Conv(e)) = (&graph.node(reduce).op, &graph.node(expand).op) else {
            return None;
        };
        let channels = graph.node(x).output.shape.chw()?.0;
        let pixel = |t: &TensorType| t.shape.chw().is_some_and(|(_, h, w)| (h, w) == (1, 1));
        let fits = pointwise(r, channels)
            && pointwise(e, r.out_channels)
            && e.out_channels == channels
            && pixel(&graph.node(reduce).output)
            && pixel(&graph.node(expand).output)
            && graph.node(mul).output == graph.node(x).output;
        fits.then_some(Block {
            x,
            pool,
            reduce,
            expand,
            op: SqueezeExcite {
                squeezed: r.out_channels,
                reduce: r.weight,
                reduce_bias: r.bias,
                activation: r.epilogue.activation,
                expand: e.weight,
                expand_bias: e.bias,
                gate: e.epilogue.activation,
            },
        })
    })
}

/// The one input of `id`, if `id` is read by `reader` alone.
fn single_input_of(graph: &Graph, id: NodeId, reader: NodeId) -> Option<NodeId> {
    if sole_consumer(graph, id) != Some(reader) {
        return None;
    }
    match graph.inputs_of(id).as_slice() {
        &[input] => Some(input),
        _ => None,
    }
}

/// A 1×1 conv of `in_channels` channels, ungrouped, unstrided and unpadded, without residual, its
/// weights still in ONNX layout.
fn pointwise(c: &Conv, in_channels: usize) -> bool {
    c.kernel == [1, 1]
        && c.stride == [1, 1]
        && c.dilation == [1, 1]
        && c.pads == [0; 4]
        && c.group == 1
        && c.in_channels == in_channels
        && !c.epilogue.residual
        && c.kernel_choice == ConvKernel::Reference
}

fn fuse(graph: &mut Graph, mul: NodeId, block: Block) -> Result<(), IrError> {
    graph.nodes[mul].op = Op::SqueezeExcite(block.op);
    graph.set_inputs(mul, &[block.x]);
    for id in [block.expand, block.reduce, block.pool] {
        graph.remove_node(id);
    }
    graph.retype(mul)
}
