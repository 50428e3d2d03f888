//! The import driver: binds initializers and graph inputs, walks the nodes in file order through
//! the op registry it is given, and collects every problem instead of stopping at the first.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use tract_onnx::pb::{self, tensor_proto::DataType};

use super::context::{Importer, NodeCtx, Value};
use super::ops::Registry;
use super::tensor;
use super::{OnnxError, UnsupportedOp};
use crate::ir::{Graph, Shape, TensorType};

/// Imports `g` (the model's graph at `opset` of the default domain; `domains` is every domain's
/// declared opset) into an IR graph, or reports every problem found.
pub(crate) fn import_graph(
    g: &pb::GraphProto,
    opset: i64,
    domains: &HashMap<String, i64>,
    base_dir: Option<&Path>,
    registry: &Registry,
) -> Result<Graph, OnnxError> {
    let mut errors = Vec::new();
    let producers: HashMap<String, String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(|o| (o.clone(), n.name.clone())))
        .collect();
    let mut im = Importer::new(producers);
    for t in &g.initializer {
        match tensor::decode(t, base_dir) {
            Ok(c) => {
                im.bind(t.name.clone(), Value::Const(Rc::new(c)));
            }
            Err(message) => {
                errors.push(OnnxError::Initializer {
                    name: t.name.clone(),
                    message,
                });
                im.bind(t.name.clone(), Value::Poisoned);
            }
        }
    }
    for s in &g.sparse_initializer {
        let name = s
            .values
            .as_ref()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        errors.push(OnnxError::Initializer {
            name: name.clone(),
            message: "sparse initializers are not supported".into(),
        });
        im.bind(name, Value::Poisoned);
    }
    let mut batch_name = None;
    for input in &g.input {
        // Old exporters list initializers among the graph inputs too; those are weights.
        if im.get(&input.name).is_some() {
            continue;
        }
        match input_type(input) {
            Ok((ty, batch)) => {
                match batch {
                    BatchDim::Named(n) => batch_name = batch_name.or(Some(n)),
                    BatchDim::Fixed(n) => im.export_batch = Some(n),
                }
                let id = im.graph.add_input(input.name.clone(), ty);
                im.bind(input.name.clone(), Value::Act(id));
            }
            Err(message) => {
                errors.push(OnnxError::Input {
                    name: input.name.clone(),
                    message,
                });
                im.bind(input.name.clone(), Value::Poisoned);
            }
        }
    }
    if let Some(n) = batch_name {
        im.graph.batch_name = n;
    }
    if g.input
        .iter()
        .all(|i| im.get(&i.name).is_none_or(|v| matches!(v, Value::Const(_))))
    {
        errors.push(OnnxError::NotAModel("the graph has no inputs".into()));
    }

    let mut unsupported = Vec::new();
    let mut node_errors = Vec::new();
    for (index, proto) in g.node.iter().enumerate() {
        let name = if proto.name.is_empty() {
            format!("{}_{index}", proto.op_type)
        } else {
            proto.name.clone()
        };
        let ctx = NodeCtx { proto, name, opset };
        let entry = registry.lookup(&proto.domain, &proto.op_type);
        let result = match entry {
            None => {
                let default = proto.domain.is_empty() || proto.domain == "ai.onnx";
                unsupported.push(UnsupportedOp {
                    node: ctx.name.clone(),
                    op: if default {
                        proto.op_type.clone()
                    } else {
                        format!("{}.{}", proto.domain, proto.op_type)
                    },
                    opset: if default {
                        opset
                    } else {
                        domains.get(&proto.domain).copied().unwrap_or(0)
                    },
                });
                Err(None)
            }
            Some(entry) => {
                let poisoned = proto
                    .input
                    .iter()
                    .any(|i| matches!(im.get(i), Some(Value::Poisoned)));
                if poisoned {
                    Err(None)
                } else {
                    check_attributes(&ctx, entry.attributes)
                        .and_then(|()| super::ops::import_node(entry, &mut im, &ctx))
                        .map_err(Some)
                }
            }
        };
        let first = match result {
            Ok(v) => v,
            Err(e) => {
                node_errors.extend(e);
                Value::Poisoned
            }
        };
        for (k, out) in proto.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            if im.get(out).is_some() {
                node_errors.push(ctx.err(format!(
                    "output `{out}` is already defined by an initializer, input or earlier node"
                )));
                continue;
            }
            let v = match (k, &first) {
                (_, Value::Outputs(values)) => values.get(k).cloned().unwrap_or_else(|| {
                    Value::Unavailable(format!(
                        "{} node `{}` has no output {k}",
                        proto.op_type, ctx.name
                    ))
                }),
                (0, v) => v.clone(),
                (_, Value::Poisoned) => Value::Poisoned,
                _ => Value::Unavailable(format!(
                    "output {k} of {} node `{}` is not supported",
                    proto.op_type, ctx.name
                )),
            };
            im.bind(out.clone(), v);
        }
    }
    if !unsupported.is_empty() {
        errors.push(OnnxError::UnsupportedOps(unsupported));
    }
    errors.extend(node_errors);

    for out in &g.output {
        if im.codes(&out.name).is_some() {
            errors.push(OnnxError::Output {
                name: out.name.clone(),
                message: "is an 8-bit tensor (the output of QuantizeLinear or of a QLinear op); \
                          outputs must be FLOAT: dequantize it with DequantizeLinear"
                    .into(),
            });
            continue;
        }
        let problem = match im.get(&out.name) {
            Some(Value::Act(id)) => {
                im.graph.outputs.push((*id, out.name.clone()));
                continue;
            }
            Some(Value::Poisoned) => continue,
            Some(Value::Const(_)) => "is a constant; constant outputs are not supported".into(),
            Some(Value::Unavailable(why)) => why.clone(),
            Some(Value::Outputs(_)) => "names several outputs at once".into(),
            Some(Value::ChannelsLast(_) | Value::LayerNormStep(_)) => {
                "is an NHWC view (Transpose perm [0, 2, 3, 1]) of an activation; outputs must be \
                 NCHW (transpose back with perm [0, 3, 1, 2])"
                    .into()
            }
            Some(Value::Flat(_) | Value::BatchIndex(_)) => {
                "is a tensor that only the batch-index (as_strided) Gather pattern may read".into()
            }
            None => "is not produced by any node".to_string(),
        };
        errors.push(OnnxError::Output {
            name: out.name.clone(),
            message: problem,
        });
    }
    if g.output.is_empty() {
        errors.push(OnnxError::NotAModel("the graph has no outputs".into()));
    }
    if errors.is_empty() {
        Ok(im.graph)
    } else {
        Err(OnnxError::from_list(errors))
    }
}

/// Rejects attributes the op's importer does not read: silently ignoring one could change the result.
fn check_attributes(ctx: &NodeCtx, known: &[&str]) -> Result<(), OnnxError> {
    let unknown: Vec<&str> = ctx
        .proto
        .attribute
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| !known.contains(n))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ctx.err(format!(
            "unsupported attribute(s) {} (opset {})",
            unknown
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            ctx.opset
        )))
    }
}

enum BatchDim {
    Named(String),
    Fixed(usize),
}

/// The IR type of a graph input: 4-D float, first dimension the batch, the others fixed.
fn input_type(input: &pb::ValueInfoProto) -> Result<(TensorType, BatchDim), String> {
    use pb::tensor_shape_proto::dimension::Value as D;
    let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("is not a tensor".into());
    };
    if t.elem_type != DataType::Float as i32 {
        let name = DataType::try_from(t.elem_type).map_or("an unknown type", |d| d.as_str_name());
        return Err(format!(
            "has element type {name}; only FLOAT inputs are supported"
        ));
    }
    let shape = t
        .shape
        .as_ref()
        .ok_or("has no shape; a 4-D [N, C, H, W] shape is required")?;
    if shape.dim.len() != 4 {
        return Err(format!(
            "has rank {}; only 4-D [N, C, H, W] inputs are supported",
            shape.dim.len()
        ));
    }
    let batch = match &shape.dim[0].value {
        Some(D::DimParam(p)) if !p.is_empty() => BatchDim::Named(p.clone()),
        Some(D::DimValue(v)) if *v > 0 => BatchDim::Fixed(*v as usize),
        _ => BatchDim::Named("N".into()),
    };
    let mut chw = [0usize; 3];
    for (k, d) in shape.dim[1..].iter().enumerate() {
        chw[k] = match &d.value {
            Some(D::DimValue(v)) if *v > 0 => *v as usize,
            Some(D::DimParam(p)) => {
                return Err(format!(
                    "dimension {} is symbolic (`{p}`); only the batch (first) dimension may be",
                    k + 1
                ));
            }
            _ => {
                return Err(format!(
                    "dimension {} has no fixed positive size; only the batch (first) dimension may be unknown",
                    k + 1
                ));
            }
        };
    }
    // A bound far above any image keeps every later size computation clear of overflow.
    if chw
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_none_or(|n| n > 1 << 40)
    {
        return Err(format!("shape {chw:?} per item is unreasonably large"));
    }
    Ok((TensorType::f32(Shape::nchw(chw[0], chw[1], chw[2])), batch))
}
