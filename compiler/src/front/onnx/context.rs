//! What an op importer works with: the node being imported (its attributes, read with their
//! types checked) and the import state (the graph being built, what every ONNX value name stands
//! for, the weights stored so far). The driver (`import`) fills it; the op importers (`ops`) read
//! their inputs from it and add nodes to it.

use std::collections::HashMap;
use std::rc::Rc;

use tract_onnx::pb::{self, attribute_proto::AttributeType};

use super::OnnxError;
use super::tensor::{ConstData, ConstTensor};
use crate::ir::quant::Quant;
use crate::ir::{Graph, NodeId, Op, TensorType, WeightId};

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
    /// What an importer returns for a node with several outputs (Split): one value per output,
    /// which the driver binds output by output. Never bound to a name itself.
    Outputs(Vec<Value>),
    /// The NHWC view (`Transpose` perm `[0, 2, 3, 1]`) of this NCHW activation. No node computes
    /// it: the ops on it are imported as their NCHW equivalents (`ops::channels_last`), and the
    /// transpose back (perm `[0, 3, 1, 2]`) is the activation itself.
    ChannelsLast(NodeId),
    /// A partial result of LayerNorm over the last axis of a [`Value::ChannelsLast`] spelled out
    /// in primitive ops (the opset-9 export); only the next step of that spelling may read it.
    LayerNormStep(LayerNormStep),
    /// This activation flattened whole, batch included (`Reshape(x, [-1])`); only a `Gather` of
    /// every element in order ([`Value::BatchIndex`], dynamo's `as_strided`) may read it.
    Flat(NodeId),
    /// Integer indices depending on the symbolic batch size (dynamo's `as_strided` arithmetic).
    BatchIndex(BatchIndex),
}

/// One step of `ReduceMean(-1) → Sub → Pow 2 → ReduceMean(-1) → Add eps → Sqrt → Div`, each over
/// the NHWC view of the NCHW activation `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum LayerNormStep {
    Mean { x: NodeId },
    Centered { x: NodeId },
    Squared { x: NodeId },
    Variance { x: NodeId },
    VarianceEps { x: NodeId, epsilon: f32 },
    Deviation { x: NodeId, epsilon: f32 },
}

/// The index tensor `[N, dims…]` whose element `[n, j…]` is `n · stride + offset[j…]` (`offset`
/// row-major over `dims`), `N` the symbolic batch size.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BatchIndex {
    pub dims: Vec<usize>,
    pub stride: i64,
    pub offset: Vec<i64>,
}

/// A constant that is `DequantizeLinear` of an integer initializer (an ONNX QDQ weight or bias):
/// its integers and their quantization, `real = scale[c] · (values − zero_point[c])` along `axis`
/// (one scale and zero point for the whole tensor when `scale` has one value).
#[derive(Clone, Debug)]
pub(crate) struct QuantizedConst {
    /// The initializer's ONNX type name (`INT8`, `UINT8`, `INT32`, …).
    pub dtype: &'static str,
    pub dims: Vec<usize>,
    pub values: Vec<i64>,
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

/// The quantization of an 8-bit ONNX tensor (the output of `QuantizeLinear` or of a QOperator op),
/// which the IR holds as its dequantized value: `quant` in the u8 domain (an INT8 tensor's zero
/// point + 128), `signed` for INT8 codes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CodesQuant {
    pub quant: Quant,
    pub signed: bool,
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

    /// Whether the node sets attribute `name`.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// An error unless attribute `name`, when set, exists at the file's opset: from opset
    /// `since` on, and before `until` when that is given (`instead` then says what replaced it).
    pub fn attr_versions(
        &self,
        name: &str,
        since: i64,
        until: Option<(i64, &str)>,
    ) -> Result<(), OnnxError> {
        if !self.has_attr(name) {
            return Ok(());
        }
        self.form_versions(&format!("`{name}` is an attribute"), since, until)
    }

    /// An error unless input `i` (`name`), when given, exists at the file's opset: from opset
    /// `since` on (inputs that ONNX later removed do not occur among the ops we import).
    pub fn input_since(&self, i: usize, name: &str, since: i64) -> Result<(), OnnxError> {
        if self.input(i).is_none() {
            return Ok(());
        }
        self.form_versions(&format!("`{name}` is an input"), since, None)
    }

    /// An error unless output `i` (`name`), when named, exists at the file's opset.
    pub fn output_since(&self, i: usize, name: &str, since: i64) -> Result<(), OnnxError> {
        if self.proto.output.get(i).is_none_or(|o| o.is_empty()) {
            return Ok(());
        }
        self.form_versions(&format!("`{name}` is an output"), since, None)
    }

    fn form_versions(
        &self,
        form: &str,
        since: i64,
        until: Option<(i64, &str)>,
    ) -> Result<(), OnnxError> {
        let opset = self.opset;
        if opset < since {
            return Err(self.err(format!(
                "{form} from opset {since}; this file declares opset {opset}"
            )));
        }
        match until {
            Some((until, instead)) if opset >= until => Err(self.err(format!(
                "{form} only before opset {until} ({instead}); this file declares opset {opset}"
            ))),
            _ => Ok(()),
        }
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
pub(crate) struct Importer {
    pub graph: Graph,
    values: HashMap<String, Value>,
    /// Weights already in the store, by initializer name, so a shared initializer is stored once.
    weight_ids: HashMap<String, WeightId>,
    /// The first dimension of the inputs when the exporter fixed it (`1` for a batch-1 export):
    /// a Reshape target starting with it keeps the batch.
    pub export_batch: Option<usize>,
    /// Every node output name and the node producing it, to say when an input comes from a later
    /// node (ONNX lists nodes in topological order, so that is a cycle or a misordered graph).
    producers: HashMap<String, String>,
    /// The constants that are dequantized integers, by the name of the dequantized value.
    quantized: HashMap<String, Rc<QuantizedConst>>,
    /// The 8-bit tensors, by ONNX name, with their quantization (each bound to its dequantized
    /// value): what a reader of the codes needs to know to read them as real values.
    codes: HashMap<String, CodesQuant>,
}

impl Importer {
    /// An empty graph with no names bound. `producers` maps every node output name of the model
    /// to the node that produces it.
    pub fn new(producers: HashMap<String, String>) -> Importer {
        Importer {
            graph: Graph::new(),
            values: HashMap::new(),
            weight_ids: HashMap::new(),
            export_batch: None,
            producers,
            quantized: HashMap::new(),
            codes: HashMap::new(),
        }
    }

    /// The quantization of ONNX tensor `name` when it holds 8-bit codes.
    pub fn codes(&self, name: &str) -> Option<CodesQuant> {
        self.codes.get(name).copied()
    }

    /// Records that ONNX tensor `name` holds 8-bit codes of quantization `q`.
    pub fn set_codes(&mut self, name: String, q: CodesQuant) {
        self.codes.insert(name, q);
    }

    /// The integers behind constant `name`, when it is `DequantizeLinear` of an initializer.
    pub fn quantized(&self, name: &str) -> Option<Rc<QuantizedConst>> {
        self.quantized.get(name).cloned()
    }

    /// Records that constant `name` is the dequantization of `q`.
    pub fn set_quantized(&mut self, name: String, q: QuantizedConst) {
        self.quantized.insert(name, Rc::new(q));
    }

    /// What the ONNX value `name` stands for, if it is bound yet.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Binds the ONNX value `name` (an initializer, graph input or node output).
    pub fn bind(&mut self, name: String, value: Value) {
        self.values.insert(name, value);
    }

    /// Removes the binding of `name` (a temporary one an importer made for a node it delegates).
    pub fn unbind(&mut self, name: &str) {
        self.values.remove(name);
    }

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
            Some(Value::ChannelsLast(_) | Value::LayerNormStep(_)) => Err(ctx.err(format!(
                "input {i} is the NHWC view (Transpose perm [0, 2, 3, 1]) of an activation, which \
                 {} does not support",
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

    /// Adds an IR node with its own name (a second node of one ONNX node).
    pub fn add_named(
        &mut self,
        name: String,
        op: Op,
        inputs: &[NodeId],
    ) -> Result<Value, OnnxError> {
        Ok(Value::Act(self.graph.add_node(name, op, inputs)?))
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.graph.node(id).output
    }
}
