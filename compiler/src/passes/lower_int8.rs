//! `fuse-requant` and `pack-int8`: the int8 convs of a QDQ model. `fuse-requant` moves the ReLU
//! and the `QuantizeLinear → DequantizeLinear` after an int8 conv into its epilogue (the conv then
//! writes the dequantized u8 result, as onnxruntime's QLinearConv does), and then a residual
//! `Add → QuantizeLinear → DequantizeLinear` after such a conv (the conv adds its slot-1 input and
//! quantize-dequantizes the sum, the same f32 steps: no separate pass over the sum); `pack-int8`
//! packs every int8 conv's weights, bias and multipliers for `kernels::int8` (run with
//! `select-kernels`).

use super::{bypass, sole_consumer};
use crate::ir::quant::{FakeQuant, QConvOutput, Quant, SumArith};
use crate::ir::{Activation, Graph, IrError, NodeId, Op};
use resnext_runtime_core::kernels::int8::{self, QConvParams};

/// Fuses `QConv → [Relu] → FakeQuant` (each the sole reader of the one before) into the conv, and a
/// ReLU alone into a conv writing real values.
pub fn fuse_requant(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        if !graph.nodes.contains_node(id) {
            continue;
        }
        let Op::QConv(q) = &graph.node(id).op else {
            continue;
        };
        let QConvOutput::Float { relu } = q.output else {
            continue;
        };
        let Some(next) = sole_consumer(graph, id) else {
            continue;
        };
        match graph.node(next).op {
            Op::Relu if !relu => {
                if let Op::QConv(q) = &mut graph.nodes[id].op {
                    q.output = QConvOutput::Float { relu: true };
                }
                changed |= bypass(graph, next);
            }
            Op::FakeQuant(f) => {
                // ReLU clamps the real value at 0, the quantized one at the zero point.
                let min = if relu {
                    f.min.max(f.quant.zero_point)
                } else {
                    f.min
                };
                if let Op::QConv(q) = &mut graph.nodes[id].op {
                    q.output = QConvOutput::Requant(FakeQuant { min, ..f });
                }
                changed |= bypass(graph, next);
            }
            _ => {}
        }
    }
    for add in graph.topo_order()? {
        if graph.nodes.contains_node(add) {
            changed |= fuse_residual(graph, add)?;
        }
    }
    Ok(changed)
}

/// Makes `Add(a, b) → FakeQuant` (each the sole reader of the one before) the residual step of the
/// requantizing int8 conv computing `a` or `b` (alone read by the Add; of two, the later in
/// topological order: a ResNet block's last conv, not its shortcut's downsample conv), the other
/// operand becoming that conv's slot-1 input.
fn fuse_residual(graph: &mut Graph, add: NodeId) -> Result<bool, IrError> {
    if !matches!(
        graph.node(add).op,
        Op::Add {
            activation: Activation::None
        }
    ) {
        return Ok(false);
    }
    let operands = graph.inputs_of(add);
    let [a, b] = operands[..] else {
        return Ok(false);
    };
    let Some(fq) = sole_consumer(graph, add) else {
        return Ok(false);
    };
    let Op::FakeQuant(sum) = graph.node(fq).op else {
        return Ok(false);
    };
    let order = graph.topo_order()?;
    let position = |x: NodeId| order.iter().position(|&n| n == x);
    let fusable = |x: NodeId| {
        a != b
            && sole_consumer(graph, x) == Some(add)
            && matches!(&graph.node(x).op,
                Op::QConv(q) if q.residual.is_none() && matches!(q.output, QConvOutput::Requant(_)))
    };
    let Some(conv) = [a, b]
        .into_iter()
        .filter(|&x| fusable(x))
        .max_by_key(|&x| position(x))
    else {
        return Ok(false);
    };
    let other = if conv == a { b } else { a };
    let Some(&conv_input) = graph.inputs_of(conv).first() else {
        return Ok(false);
    };
    // onnxruntime's QLinearAdd arithmetic where both operands are on known grids (as in the QDQ
    // models onnxruntime runs that way), ONNX's otherwise.
    let arith = match (&graph.node(conv).op, grid(graph, other)) {
        (Op::QConv(q), Some(input)) => match q.output {
            QConvOutput::Requant(f) => SumArith::OnnxRuntime {
                conv: f.quant,
                input,
                conv_first: conv == a,
            },
            QConvOutput::Float { .. } => SumArith::Onnx,
        },
        _ => SumArith::Onnx,
    };
    if let Op::QConv(q) = &mut graph.nodes[conv].op {
        q.residual = Some(sum);
        q.residual_arith = arith;
    }
    graph.set_inputs(conv, &[conv_input, other]);
    graph.replace_uses(fq, conv);
    graph.remove_node(fq);
    graph.remove_node(add);
    graph.retype(conv)?;
    Ok(true)
}

/// The quantization whose grid `node`'s values lie on: a `FakeQuant`'s, a requantizing int8
/// conv's (or its residual step's), or that of the input of a max pool or a reshape of one.
fn grid(graph: &Graph, node: NodeId) -> Option<Quant> {
    match &graph.node(node).op {
        Op::FakeQuant(f) => Some(f.quant),
        Op::QConv(q) => match (q.residual, q.output) {
            (Some(f), _) | (None, QConvOutput::Requant(f)) => Some(f.quant),
            (None, QConvOutput::Float { .. }) => None,
        },
        Op::MaxPool(_) | Op::Reshape { .. } | Op::Flatten { .. } => {
            grid(graph, *graph.inputs_of(node).first()?)
        }
        _ => None,
    }
}

/// Stores as u8 codes (`QConv::codes`) every value a packed int8 conv writes on a quantization's
/// grid (requantized, or through a residual step) that only packed int8 convs read, as their
/// quantized input (slot 0, of the same quantization) or as their residual input (slot 1), and
/// that is not a model output: between such convs a quarter of the bytes move and the readers
/// skip quantizing. The values are unchanged: a reader's quantization of the dequantized value
/// gives back the code, and a residual reader dequantizes it to the `f32` it read before.
pub fn int8_codes(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        let Op::QConv(q) = &graph.node(id).op else {
            continue;
        };
        let quant = match (q.residual, q.output) {
            (Some(f), _) | (None, QConvOutput::Requant(f)) => f.quant,
            (None, QConvOutput::Float { .. }) => continue,
        };
        if !q.packed || q.codes.output || graph.is_output(id) {
            continue;
        }
        let readers = graph.consumers(id);
        let all_int8 = !readers.is_empty()
            && readers.iter().all(|&(r, slot)| match &graph.node(r).op {
                Op::QConv(c) if c.packed => (slot == 0 && c.input == quant) || slot == 1,
                _ => false,
            });
        if !all_int8 {
            continue;
        }
        if let Op::QConv(q) = &mut graph.nodes[id].op {
            q.codes.output = true;
        }
        for (r, slot) in readers {
            if let Op::QConv(c) = &mut graph.nodes[r].op {
                if slot == 0 {
                    c.codes.input = true;
                } else {
                    c.codes.residual = Some(quant);
                }
            }
        }
        changed = true;
    }
    Ok(changed)
}

/// Replaces every unpacked int8 conv's weight by its `int8::pack`ed form.
pub fn pack_int8(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        let node = graph.node(id);
        let Op::QConv(q) = &node.op else {
            continue;
        };
        if q.packed {
            continue;
        }
        let fail = |message: String| IrError::Invalid {
            node: node.name.clone(),
            op: node.op.name(),
            message,
        };
        let in_type = &graph.node(graph.inputs_of(id)[0]).output;
        let (h, w) = in_type.shape.chw().map_or((1, 1), |(_, h, w)| (h, w));
        let shape = q.shape(h, w).map_err(fail)?;
        let weight: Vec<i8> = graph
            .weights
            .data(q.weight)
            .iter()
            .map(|&v| v as i8)
            .collect();
        let multiplier = q.multipliers();
        let params = QConvParams {
            weight: &weight,
            bias: &q.bias,
            multiplier: &multiplier,
        };
        let packed =
            int8::pack(&shape, q.input.zero_point, params).map_err(|e| fail(e.to_string()))?;
        let name = format!(
            "{} (int8 packed)",
            graph.weights.get(q.weight).map_or("", |w| &w.name)
        );
        let len = packed.len();
        let packed = graph.weights.add(name, vec![len], packed);
        if let Op::QConv(q) = &mut graph.nodes[id].op {
            q.weight = packed;
            q.packed = true;
        }
        changed = true;
    }
    Ok(changed)
}
