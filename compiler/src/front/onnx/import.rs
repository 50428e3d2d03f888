//! The import driver: binds initializers and graph inputs, walks the nodes in file order through
//! the op registry, and collects every problem instead of stopping at the first.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};

use super::tensor::{self, ConstData, ConstTensor};
use super::{OnnxError, UnsupportedOp, ops};
use crate::ir::{Graph, NodeId, Op, Shape, TensorType, WeightId};

/// What an ONNX value name stands for while importing.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A tensor computed at run time: the output of this IR node.
    Act(NodeId),
    /// A tensor known now (initializer, `Constant`, or a pass-through of one).
    Const(Rc<ConstTensor>),
    /// Produced by a node that failed (its error is already reported); readers are skipped
    /// silently so one bad node does not bury the report under follow-on errors.
    Poisoned,
    /// An extra output we do not produce (Dropout's mask...): reading it is an error.
    Unavailable(String),
}

/// The node being imported: its proto, display name and the model's opset.
pub(crate) struct NodeCtx<'a> {
    pub proto: &'a pb::NodeProto,
    pub name: String,
    pub opset: i64,
}

impl NodeCtx<'_> {
    pub fn op(&self) -> &str {
        &self.proto.op_type
    }

    /// An error about this node.
    pub fn err(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: self.name.clone(),
            op: self.proto.op_type.clone(),
            message: message.into(),
        }
    }

    /// Name of input `i`, or `None` when absent (ONNX marks a skipped optional input with "").
    pub fn input(&self, i: usize) -> Option<&str> {
        self.proto
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    fn attr_typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&pb::AttributeProto>, OnnxError> {
        match self.attr(name) {
            None => Ok(None),
            // IR versions before 2 left `type` unset; trust the field the caller reads.
            Some(a) if a.r#type == want as i32 || a.r#type == AttributeType::Undefined as i32 => {
                Ok(Some(a))
            }
            Some(a) => Err(self.err(format!(
                "attribute `{name}` must be {}, is {}",
                want.as_str_name(),
                AttributeType::try_from(a.r#type).map_or("of an unknown type", |t| t.as_str_name())
            ))),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self
            .attr_typed(name, AttributeType::Int)?
            .map_or(default, |a| a.i))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, OnnxError> {
        Ok(self.attr_typed(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        Ok(self
            .attr_typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OnnxError> {
        Ok(self
            .attr_typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        match self.attr_typed(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => String::from_utf8(a.s.clone())
                .map(Some)
                .map_err(|_| self.err(format!("attribute `{name}` is not UTF-8"))),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&pb::TensorProto>, OnnxError> {
        Ok(self
            .attr_typed(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }
}

/// The state of one import: the graph being built and what every ONNX value name stands for.
pub(crate) struct Importer<'a> {
    pub graph: Graph,
    values: HashMap<String, Value>,
    /// Weights already in the store, by initializer name, so a shared initializer is stored once.
    weight_ids: HashMap<String, WeightId>,
    base_dir: Option<&'a Path>,
    /// The first dimension of the inputs when the exporter fixed it (`1` for a batch-1 export):
    /// a Reshape target starting with it keeps the batch.
    pub export_batch: Option<usize>,
    /// Every node output name and the node producing it, to say when an input comes from a later
    /// node (ONNX lists nodes in topological order, so that is a cycle or a misordered graph).
    producers: HashMap<String, String>,
}

impl<'a> Importer<'a> {
    /// The value that input `i` of the node names, or an error naming the node and the value.
    fn value(&self, ctx: &NodeCtx, i: usize) -> Result<Option<&Value>, OnnxError> {
        let Some(name) = ctx.input(i) else {
            return Ok(None);
        };
        match self.values.get(name) {
            Some(Value::Unavailable(why)) => Err(ctx.err(format!("input `{name}`: {why}"))),
            Some(v) => Ok(Some(v)),
            None => Err(ctx.err(match self.producers.get(name) {
                Some(later) => format!(
                    "input `{name}` is produced by node `{later}`, which does not come before this \
                     one: the graph has a cycle or is not in topological order"
                ),
                None => format!(
                    "input `{name}` is not defined by any initializer, graph input or earlier node"
                ),
            })),
        }
    }

    /// Input `i` as a run-time activation (required).
    pub fn act(&self, ctx: &NodeCtx, i: usize) -> Result<NodeId, OnnxError> {
        match self.value(ctx, i)? {
            Some(Value::Act(id)) => Ok(*id),
            Some(Value::Const(t)) => Err(ctx.err(format!(
                "input {i} `{}` is a constant; {} on constants (constant folding) is not supported",
                t.name,
                ctx.op()
            ))),
            Some(_) => Err(ctx.err(format!("input {i} is unavailable"))),
            None => Err(ctx.err(format!("input {i} is missing"))),
        }
    }

    /// Optional input `i` as a constant; an activation there is an error.
    pub fn opt_const(
        &self,
        ctx: &NodeCtx,
        i: usize,
        what: &str,
    ) -> Result<Option<Rc<ConstTensor>>, OnnxError> {
        match self.value(ctx, i)? {
            None => Ok(None),
            Some(Value::Const(t)) => Ok(Some(t.clone())),
            Some(_) => Err(ctx.err(format!(
                "{what} (input {i} `{}`) must be an initializer or a Constant, not computed at run time",
                ctx.input(i).unwrap_or_default()
            ))),
        }
    }

    /// Required input `i` as a constant.
    pub fn req_const(
        &self,
        ctx: &NodeCtx,
        i: usize,
        what: &str,
    ) -> Result<Rc<ConstTensor>, OnnxError> {
        self.opt_const(ctx, i, what)?
            .ok_or_else(|| ctx.err(format!("{what} (input {i}) is missing")))
    }

    /// Whether input `i` is a constant (false for absent inputs).
    pub fn is_const(&self, ctx: &NodeCtx, i: usize) -> bool {
        matches!(
            ctx.input(i).and_then(|n| self.values.get(n)),
            Some(Value::Const(_))
        )
    }

    /// Stores a float constant as a weight (once per initializer name) and returns its handle.
    pub fn weight(
        &mut self,
        ctx: &NodeCtx,
        t: &ConstTensor,
        what: &str,
    ) -> Result<WeightId, OnnxError> {
        let ConstData::F32(data) = &t.data else {
            return Err(ctx.err(format!(
                "{what} `{}` has data type {}; only FLOAT weights are supported",
                t.name,
                t.dtype_name()
            )));
        };
        if !t.name.is_empty()
            && let Some(&id) = self.weight_ids.get(&t.name)
        {
            return Ok(id);
        }
        let name = if t.name.is_empty() {
            format!("{}.{what}", ctx.name)
        } else {
            t.name.clone()
        };
        let id = self
            .graph
            .weights
            .add(name.clone(), t.dims.clone(), data.clone());
        self.weight_ids.insert(name, id);
        Ok(id)
    }

    /// Stores a tensor the importer derived (a transposed or scaled weight).
    pub fn derived_weight(&mut self, name: String, dims: Vec<usize>, data: Vec<f32>) -> WeightId {
        self.graph.weights.add(name, dims, data)
    }

    /// Adds an IR node named after the ONNX node; a shape error names node and op.
    pub fn add(&mut self, ctx: &NodeCtx, op: Op, inputs: &[NodeId]) -> Result<Value, OnnxError> {
        Ok(Value::Act(self.graph.add_node(
            ctx.name.clone(),
            op,
            inputs,
        )?))
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.graph.node(id).output
    }
}

/// Imports `g` (the model's graph at `opset`) into an IR graph, or reports every problem found.
pub(crate) fn import_graph(
    g: &pb::GraphProto,
    opset: i64,
    base_dir: Option<&Path>,
) -> Result<Graph, OnnxError> {
    let mut errors = Vec::new();
    let mut im = Importer {
        graph: Graph::new(),
        values: HashMap::new(),
        weight_ids: HashMap::new(),
        base_dir,
        export_batch: None,
        producers: g
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(|o| (o.clone(), n.name.clone())))
            .collect(),
    };
    for t in &g.initializer {
        match tensor::decode(t, im.base_dir) {
            Ok(c) => {
                im.values.insert(t.name.clone(), Value::Const(Rc::new(c)));
            }
            Err(message) => {
                errors.push(OnnxError::Initializer {
                    name: t.name.clone(),
                    message,
                });
                im.values.insert(t.name.clone(), Value::Poisoned);
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
        im.values.insert(name, Value::Poisoned);
    }
    let mut batch_name = None;
    for input in &g.input {
        // Old exporters list initializers among the graph inputs too; those are weights.
        if im.values.contains_key(&input.name) {
            continue;
        }
        match input_type(input) {
            Ok((ty, batch)) => {
                match batch {
                    BatchDim::Named(n) => batch_name = batch_name.or(Some(n)),
                    BatchDim::Fixed(n) => im.export_batch = Some(n),
                }
                let id = im.graph.add_input(input.name.clone(), ty);
                im.values.insert(input.name.clone(), Value::Act(id));
            }
            Err(message) => {
                errors.push(OnnxError::Input {
                    name: input.name.clone(),
                    message,
                });
                im.values.insert(input.name.clone(), Value::Poisoned);
            }
        }
    }
    if let Some(n) = batch_name {
        im.graph.batch_name = n;
    }
    if g.input.iter().all(|i| {
        im.values
            .get(&i.name)
            .is_none_or(|v| matches!(v, Value::Const(_)))
    }) {
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
        let entry = if proto.domain.is_empty() || proto.domain == "ai.onnx" {
            ops::lookup(&proto.op_type)
        } else {
            None
        };
        let result = match entry {
            None => {
                unsupported.push(UnsupportedOp {
                    node: ctx.name.clone(),
                    op: if proto.domain.is_empty() || proto.domain == "ai.onnx" {
                        proto.op_type.clone()
                    } else {
                        format!("{}.{}", proto.domain, proto.op_type)
                    },
                    opset,
                });
                Err(None)
            }
            Some(entry) => {
                let poisoned = proto
                    .input
                    .iter()
                    .any(|i| matches!(im.values.get(i), Some(Value::Poisoned)));
                if poisoned {
                    Err(None)
                } else {
                    check_attributes(&ctx, entry.attributes)
                        .and_then(|()| (entry.import)(&mut im, &ctx))
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
            if im.values.contains_key(out) {
                node_errors.push(ctx.err(format!(
                    "output `{out}` is already defined by an initializer, input or earlier node"
                )));
                continue;
            }
            let v = match (k, &first) {
                (0, v) => v.clone(),
                (_, Value::Poisoned) => Value::Poisoned,
                _ => Value::Unavailable(format!(
                    "output {k} of {} node `{}` is not supported",
                    proto.op_type, ctx.name
                )),
            };
            im.values.insert(out.clone(), v);
        }
    }
    if !unsupported.is_empty() {
        errors.push(OnnxError::UnsupportedOps(unsupported));
    }
    errors.extend(node_errors);

    for out in &g.output {
        let problem = match im.values.get(&out.name) {
            Some(Value::Act(id)) => {
                im.graph.outputs.push((*id, out.name.clone()));
                continue;
            }
            Some(Value::Poisoned) => continue,
            Some(Value::Const(_)) => "is a constant; constant outputs are not supported".into(),
            Some(Value::Unavailable(why)) => why.clone(),
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
