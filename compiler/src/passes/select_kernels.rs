//! `select-kernels`: gives every conv the runtime kernel its shape suits (pointwise GEMM, direct
//! grouped or depthwise, im2col + GEMM) and every dense layer the packed GEMM, prepacking weights.
//!
//! Weights known now are packed here, so the weights file holds them in the kernel's layout; weights
//! the loader reads later (the DSL's state_dict) get a [`WeightSource::PackedConv`] /
//! [`WeightSource::PackedDense`] recipe the loader evaluates with the same runtime functions.

use resnext_runtime::kernels::conv::{self, ConvAlgo};

use crate::interp;
use crate::ir::{ConvKernel, DenseKernel, Graph, IrError, NodeId, Op, WeightId, WeightSource};

/// Chooses a fast kernel for every conv and dense node still on the reference; returns whether any.
pub fn select_kernels(graph: &mut Graph) -> Result<bool, IrError> {
    let mut changed = false;
    for id in graph.topo_order()? {
        let node = graph.node(id);
        match &node.op {
            Op::Conv(c) if c.kernel_choice == ConvKernel::Reference => {
                let input = graph.inputs_of(id)[0];
                let shape = interp::conv_shape(c, &graph.node(input).output, &node.output);
                let algo = ConvAlgo::select(&shape);
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
                let packed = pack(
                    graph,
                    id,
                    weight,
                    "dense",
                    conv::dense_packed_len(k, m),
                    |data| conv::dense_pack(k, m, data).map_err(|e| e.to_string()),
                    || WeightSource::PackedDense {
                        in_features: k,
                        out_features: m,
                        source: weight,
                    },
                )?;
                if let Op::Dense(d) = &mut graph.nodes[id].op {
                    d.weight = packed;
                    d.kernel = DenseKernel::Packed;
                }
                changed = true;
            }
            _ => {}
        }
    }
    Ok(changed)
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
