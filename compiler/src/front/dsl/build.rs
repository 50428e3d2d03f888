//! Builds the torchvision ResNet/ResNeXt graph for a [`ModelSpec`], with state_dict names and
//! deferred weights, and fills those weights from a state_dict when the caller has one.

use super::{DslError, ModelSpec, Stem, state_dict_key};
use crate::ir::{
    self, Activation, BatchNorm, Conv, ConvKernel, Dense, Epilogue, Graph, NodeId, Op, Pool, Shape,
    TensorType, WeightSource,
};

/// Builds the graph of `spec`: unfused ops (Conv, BatchNormalization, Relu, Add, ...) exactly as
/// the ONNX front end produces them for a torchvision export, every weight deferred to the
/// state_dict key of the same name. A spec with [`ModelSpec::problems`] is an error listing them.
pub fn build(spec: &ModelSpec) -> Result<Graph, DslError> {
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(DslError::Spec {
            name: spec.name.clone(),
            problems,
        });
    }
    let mut b = Builder {
        graph: Graph::new(),
        epsilon: spec.bn_epsilon,
    };
    b.graph.batch_name = "batch".into();
    let [c, h, w] = spec.input;
    let input = b
        .graph
        .add_input("input", TensorType::f32(Shape::nchw(c, h, w)));
    let mut x = match spec.stem {
        Stem::ImageNet => {
            let x = b.conv_bn(("conv1", "bn1"), input, 64, 7, 2, 1)?;
            let x = b.graph.add_node("relu", Op::Relu, &[x])?;
            let pool = Pool {
                kernel: [3, 3],
                stride: [2, 2],
                pads: [1; 4],
                ceil_mode: false,
                count_include_pad: false,
            };
            b.graph.add_node("maxpool", Op::MaxPool(pool), &[x])?
        }
        Stem::Cifar => {
            let x = b.conv_bn(("conv1", "bn1"), input, 64, 3, 1, 1)?;
            b.graph.add_node("relu", Op::Relu, &[x])?
        }
    };
    let mut in_channels = 64;
    for (stage, &blocks) in spec.stages.iter().enumerate() {
        let width = spec.group_conv_width(stage);
        let out_channels = 4 * ModelSpec::planes(stage);
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("layer{}.{block}", stage + 1);
            let y = b.conv_bn(
                (&format!("{p}.conv1"), &format!("{p}.bn1")),
                x,
                width,
                1,
                1,
                1,
            )?;
            let y = b.graph.add_node(format!("{p}.relu1"), Op::Relu, &[y])?;
            let (conv2, bn2) = (format!("{p}.conv2"), format!("{p}.bn2"));
            let y = b.conv_bn((&conv2, &bn2), y, width, 3, stride, spec.cardinality)?;
            let y = b.graph.add_node(format!("{p}.relu2"), Op::Relu, &[y])?;
            let (conv3, bn3) = (format!("{p}.conv3"), format!("{p}.bn3"));
            let y = b.conv_bn((&conv3, &bn3), y, out_channels, 1, 1, 1)?;
            let shortcut = if stride != 1 || in_channels != out_channels {
                let (conv, bn) = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                b.conv_bn((&conv, &bn), x, out_channels, 1, stride, 1)?
            } else {
                x
            };
            let add = Op::Add {
                activation: Activation::None,
            };
            let y = b.graph.add_node(format!("{p}.add"), add, &[y, shortcut])?;
            x = b.graph.add_node(format!("{p}.relu3"), Op::Relu, &[y])?;
            in_channels = out_channels;
        }
    }
    let gap = Op::GlobalAveragePool { keep_dims: true };
    let x = b.graph.add_node("avgpool", gap, &[x])?;
    let x = b.graph.add_node("flatten", Op::Flatten { axis: 1 }, &[x])?;
    let features = spec.features();
    let fc = Dense {
        weight: b.deferred("fc.weight", vec![spec.classes, features]),
        bias: Some(b.deferred("fc.bias", vec![spec.classes])),
        in_features: features,
        out_features: spec.classes,
        epilogue: Epilogue::default(),
        kernel: crate::ir::DenseKernel::Reference,
    };
    let logits = b.graph.add_node("fc", Op::Dense(fc), &[x])?;
    b.graph.outputs.push((logits, "logits".into()));
    Ok(b.graph)
}

/// Every state_dict tensor `graph` reads, as `(key, dims)`, in weight-store order.
pub fn state_dict_keys(graph: &Graph) -> Result<Vec<(String, Vec<usize>)>, DslError> {
    Ok(graph
        .weights
        .iter()
        .filter_map(|(_, w)| state_dict_key(&w.source).map(|k| (k.to_string(), w.dims.clone())))
        .collect())
}

/// Gives every state_dict weight of `graph` its values: `lookup(key, dims)` returns the tensor's
/// data or why it cannot (missing, wrong shape). All failures are reported together.
pub fn load_weights(
    graph: &mut Graph,
    mut lookup: impl FnMut(&str, &[usize]) -> Result<Vec<f32>, String>,
) -> Result<(), DslError> {
    let ids: Vec<_> = graph.weights.iter().map(|(id, _)| id).collect();
    let mut errors = Vec::new();
    for id in ids {
        let Some(w) = graph.weights.get_mut(id) else {
            continue;
        };
        let WeightSource::StateDict { key } = &w.source else {
            continue;
        };
        match lookup(key, &w.dims) {
            Ok(data) if data.len() == w.dims.iter().product::<usize>() => {
                w.data = data;
                w.source = WeightSource::Data;
            }
            Ok(data) => errors.push(format!(
                "`{key}` has {} values, expected {:?}",
                data.len(),
                w.dims
            )),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DslError::Weights(errors))
    }
}

struct Builder {
    graph: Graph,
    epsilon: f32,
}

impl Builder {
    fn deferred(&mut self, key: &str, dims: Vec<usize>) -> ir::WeightId {
        let source = WeightSource::StateDict { key: key.into() };
        self.graph.weights.add_deferred(key, dims, source)
    }

    /// A bias-free `k×k` conv (padding `k/2`) named `conv` followed by the BatchNorm named `bn`.
    fn conv_bn(
        &mut self,
        (conv, bn): (&str, &str),
        x: NodeId,
        out_channels: usize,
        k: usize,
        stride: usize,
        group: usize,
    ) -> Result<NodeId, DslError> {
        let in_channels = self
            .graph
            .node(x)
            .output
            .shape
            .chw()
            .map_or(0, |(c, _, _)| c);
        let weight = self.deferred(
            &format!("{conv}.weight"),
            vec![out_channels, in_channels / group, k, k],
        );
        let op = Op::Conv(Conv {
            weight,
            bias: None,
            in_channels,
            out_channels,
            group,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [k / 2; 4],
            epilogue: Epilogue::default(),
            kernel_choice: ConvKernel::Reference,
        });
        let y = self.graph.add_node(conv, op, &[x])?;
        let c = vec![out_channels];
        let norm = BatchNorm {
            scale: self.deferred(&format!("{bn}.weight"), c.clone()),
            bias: self.deferred(&format!("{bn}.bias"), c.clone()),
            mean: self.deferred(&format!("{bn}.running_mean"), c.clone()),
            var: self.deferred(&format!("{bn}.running_var"), c),
            epsilon: self.epsilon,
        };
        Ok(self.graph.add_node(bn, Op::BatchNorm(norm), &[y])?)
    }
}
