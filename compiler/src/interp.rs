//! A reference interpreter: runs a validated graph node by node on the runtime's reference kernels
//! (and, for convs and dense layers whose weights `select-kernels` packed, on the kernel it chose).
//! It is the oracle that proves passes keep the numbers and that the ONNX front end agrees with tract;
//! it is never what users ship.

use std::collections::HashMap;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{
    self, BatchNorm, ConvArgs, ConvShape, Epilogue, KernelError, PlanesArgs, PoolShape, conv,
    reference,
};

use crate::ir::{self, Graph, GraphInfo, NodeId, Op};

/// Why the interpreter could not run a graph.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("expected {expected} input tensor(s), got {actual}")]
    InputCount { expected: usize, actual: usize },
    #[error("input `{name}`: expected {expected} floats for batch {batch}, got {actual}")]
    InputLength {
        name: String,
        batch: usize,
        expected: usize,
        actual: usize,
    },
    #[error("{op} node `{node}`: {source}")]
    Kernel {
        node: String,
        op: &'static str,
        source: KernelError,
    },
}

/// Runs `graph` on `inputs` (one flat NCHW buffer per model input) for `batch` items and returns the
/// model outputs in order.
pub fn run(
    graph: &Graph,
    info: &GraphInfo,
    inputs: &[&[f32]],
    batch: usize,
) -> Result<Vec<Vec<f32>>, InterpError> {
    run_observed(graph, info, inputs, batch, &mut |_, _| {})
}

/// [`run`], showing `observe` every node's value (model inputs included) once it is computed; a
/// value is dropped as soon as its last reader has run, so a large model's peak memory is its
/// widest cut, not the sum of its values (what calibration runs on many items needs).
pub fn run_observed(
    graph: &Graph,
    info: &GraphInfo,
    inputs: &[&[f32]],
    batch: usize,
    observe: &mut dyn FnMut(NodeId, &[f32]),
) -> Result<Vec<Vec<f32>>, InterpError> {
    if inputs.len() != graph.inputs.len() {
        return Err(InterpError::InputCount {
            expected: graph.inputs.len(),
            actual: inputs.len(),
        });
    }
    let mut values: HashMap<NodeId, Vec<f32>> = HashMap::new();
    for (&id, &data) in graph.inputs.iter().zip(inputs) {
        let node = graph.node(id);
        let expected = batch * node.output.shape.item_len().unwrap_or(0);
        if data.len() != expected {
            return Err(InterpError::InputLength {
                name: node.name.clone(),
                batch,
                expected,
                actual: data.len(),
            });
        }
        observe(id, data);
        values.insert(id, data.to_vec());
    }
    // Readers left per value (each distinct reader once); model outputs are never dropped.
    let mut readers: HashMap<NodeId, usize> = HashMap::new();
    for &id in info.order() {
        for i in distinct_inputs(graph, id) {
            *readers.entry(i).or_default() += 1;
        }
    }
    for &id in info.order() {
        let node = graph.node(id);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let args: Vec<&[f32]> = graph
            .inputs_of(id)
            .iter()
            .map(|i| values[i].as_slice())
            .collect();
        let out_len = batch * node.output.shape.item_len().unwrap_or(0);
        let mut out = vec![0.0f32; out_len];
        let err = |source| InterpError::Kernel {
            node: node.name.clone(),
            op: node.op.name(),
            source,
        };
        eval(graph, id, &args, batch, &mut out).map_err(err)?;
        observe(id, &out);
        values.insert(id, out);
        for i in distinct_inputs(graph, id) {
            let left = readers.get_mut(&i).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) && !graph.is_output(i) {
                values.remove(&i);
            }
        }
    }
    Ok(graph
        .outputs
        .iter()
        .map(|(id, _)| values[id].clone())
        .collect())
}

/// The distinct producers `id` reads.
fn distinct_inputs(graph: &Graph, id: NodeId) -> Vec<NodeId> {
    let mut inputs = graph.inputs_of(id);
    inputs.sort();
    inputs.dedup();
    inputs
}

fn eval(
    graph: &Graph,
    id: NodeId,
    args: &[&[f32]],
    batch: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let node = graph.node(id);
    let w = |id| graph.weights.data(id);
    let in_type = &graph.node(graph.inputs_of(id)[0]).output;
    match &node.op {
        Op::Input => unreachable!("inputs are bound before evaluation"),
        Op::Conv(c) => {
            let shape = conv_shape(c, in_type, &node.output);
            let epilogue = Epilogue {
                bias: c.bias.map(w),
                residual: c.epilogue.residual.then(|| args[1]),
                activation: activation(c.epilogue.activation),
            };
            match c.kernel_choice {
                ir::ConvKernel::Reference => {
                    reference::conv2d(&shape, batch, args[0], w(c.weight), &epilogue, out)
                }
                // After `select-kernels` the weight is packed for the runtime's kernel: run that.
                ir::ConvKernel::Fast(algo) => {
                    let mut scratch = vec![0.0; conv::scratch_len(algo, &shape, batch, 1)];
                    let threads = Threads::new(1);
                    let args = ConvArgs {
                        shape,
                        batch,
                        input: args[0],
                        packed: w(c.weight),
                        epilogue,
                        output: out,
                        scratch: &mut scratch,
                    };
                    conv::conv2d(&Ctx::new(&threads), algo, args)
                }
            }
        }
        Op::FakeQuant(f) => {
            let threads = Threads::new(1);
            kernels::int8::fake_quantize(&Ctx::new(&threads), f.quant, f.min, f.max, args[0], out)
        }
        Op::QConv(q) => eval_qconv(graph, q, in_type, args, batch, out),
        Op::BatchNorm(b) => {
            let (c, spatial) = channels_spatial(in_type);
            let bn = BatchNorm {
                gamma: w(b.scale),
                beta: w(b.bias),
                mean: w(b.mean),
                var: w(b.var),
                epsilon: b.epsilon,
            };
            reference::batch_norm(planes(batch, c, spatial, args[0], out), &bn)
        }
        Op::ScaleShift(s) => {
            let (c, spatial) = channels_spatial(in_type);
            let (scale, shift) = (w(s.scale), w(s.shift));
            let act = activation(s.activation);
            reference::scale_shift(planes(batch, c, spatial, args[0], out), scale, shift, act)
        }
        Op::Relu => reference::activation(args[0], kernels::Activation::Relu, out),
        Op::Clip { min, max } => reference::activation(
            args[0],
            kernels::Activation::Clip {
                min: *min,
                max: *max,
            },
            out,
        ),
        Op::Add { activation: a } => reference::add(args[0], args[1], activation(*a), out),
        Op::Activation(a) => reference::activation(args[0], activation(*a), out),
        Op::PRelu { slope } => {
            let (c, spatial) = channels_spatial(in_type);
            reference::prelu(planes(batch, c, spatial, args[0], out), w(*slope))
        }
        Op::Binary(b) => {
            let inputs = graph.inputs_of(id);
            let act_dims = |slot: usize| dims(&graph.node(inputs[slot]).output, batch);
            let (a, a_dims, c, c_dims) = match b.constant {
                Some(k) => {
                    let k_dims = graph
                        .weights
                        .get(k)
                        .map(|t| t.dims.clone())
                        .unwrap_or_default();
                    if b.constant_first {
                        (w(k), k_dims, args[0], act_dims(0))
                    } else {
                        (args[0], act_dims(0), w(k), k_dims)
                    }
                }
                None => (args[0], act_dims(0), args[1], act_dims(1)),
            };
            reference::binary(b.kind, a, &a_dims, c, &c_dims, out)
        }
        Op::MaxPool(p) => {
            reference::max_pool2d(&pool_shape(p, in_type, &node.output), batch, args[0], out)
        }
        Op::AveragePool(p) => reference::avg_pool2d(
            &pool_shape(p, in_type, &node.output),
            p.count_include_pad,
            batch,
            args[0],
            out,
        ),
        Op::GlobalAveragePool { .. } => {
            let (c, spatial) = channels_spatial(in_type);
            reference::global_avg_pool(batch, c, spatial, args[0], out)
        }
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
            kernels::reference::activation(args[0], kernels::Activation::None, out)
        }
        Op::Concat { .. } => reference::concat_channels(batch, args, out),
        Op::ChannelShuffle { groups } => {
            let (c, spatial) = channels_spatial(in_type);
            reference::channel_shuffle(planes(batch, c, spatial, args[0], out), *groups)
        }
        Op::SqueezeExcite(se) => {
            let (c, spatial) = channels_spatial(in_type);
            let se = kernels::squeeze_excite::SqueezeExcite {
                squeezed: se.squeezed,
                reduce: w(se.reduce),
                reduce_bias: se.reduce_bias.map(w),
                activation: activation(se.activation),
                expand: w(se.expand),
                expand_bias: se.expand_bias.map(w),
                gate: activation(se.gate),
            };
            reference::squeeze_excite(planes(batch, c, spatial, args[0], out), &se)
        }
        Op::LayerNormChannels(l) => {
            let (c, spatial) = channels_spatial(in_type);
            let planes = planes(batch, c, spatial, args[0], out);
            reference::layer_norm_channels(planes, l.epsilon, w(l.scale), w(l.shift))
        }
        Op::Lrn(l) => {
            let (c, spatial) = channels_spatial(in_type);
            let planes = planes(batch, c, spatial, args[0], out);
            reference::lrn(planes, l.size, l.alpha, l.beta, l.bias)
        }
        Op::Softmax { log } => {
            let (k, _) = channels_spatial(in_type);
            reference::softmax(batch, k, *log, args[0], out)
        }
        Op::Pad { pads } => {
            let (c, h, w) = in_type.shape.chw().expect("validated pad input is NCHW");
            reference::pad2d(batch, c, [h, w], *pads, args[0], out)
        }
        Op::SliceChannels { start, .. } => {
            let (c, spatial) = channels_spatial(in_type);
            reference::slice_channels(planes(batch, c, spatial, args[0], out), *start)
        }
        Op::Reorder { to } => {
            let (c, spatial) = channels_spatial(in_type);
            let threads = Threads::new(1);
            let (ctx, planes) = (Ctx::new(&threads), planes(batch, c, spatial, args[0], out));
            if *to == ir::Layout::Nchw8c {
                kernels::blocked::to_blocked(&ctx, planes)
            } else {
                kernels::blocked::from_blocked(&ctx, planes)
            }
        }
        Op::Dense(d) => {
            let epilogue = Epilogue {
                bias: d.bias.map(w),
                residual: d.epilogue.residual.then(|| args[1]),
                activation: activation(d.epilogue.activation),
            };
            let (k, m) = (d.in_features, d.out_features);
            match d.kernel {
                ir::DenseKernel::Reference => {
                    reference::dense(batch, k, m, args[0], w(d.weight), &epilogue, out)
                }
                ir::DenseKernel::PackedBf16 => {
                    let mut scratch = vec![0.0; dense::scratch_len_bf16(batch, k, 1)];
                    let threads = Threads::new(1);
                    let args = DenseArgs {
                        batch,
                        in_features: k,
                        out_features: m,
                        input: args[0],
                        packed: w(d.weight),
                        epilogue,
                        output: out,
                        scratch: &mut scratch,
                    };
                    dense::run_bf16(&Ctx::new(&threads), args)
                }
                ir::DenseKernel::Packed => {
                    let mut scratch = vec![0.0; dense::scratch_len(batch, k, 1)];
                    let threads = Threads::new(1);
                    let args = DenseArgs {
                        batch,
                        in_features: k,
                        out_features: m,
                        input: args[0],
                        packed: w(d.weight),
                        epilogue,
                        output: out,
                        scratch: &mut scratch,
                    };
                    dense::run(&Ctx::new(&threads), args)
                }
            }
        }
    }
}

/// The runtime's activation for an IR activation.
/// `batch · channels` planes of `spatial` elements from `input` to `output`.
fn planes<'a>(
    batch: usize,
    channels: usize,
    spatial: usize,
    input: &'a [f32],
    output: &'a mut [f32],
) -> PlanesArgs<'a> {
    PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    }
}

pub fn activation(a: ir::Activation) -> kernels::Activation {
    match a {
        ir::Activation::None => kernels::Activation::None,
        ir::Activation::Relu => kernels::Activation::Relu,
        ir::Activation::Clip { min, max } => kernels::Activation::Clip { min, max },
        ir::Activation::Sigmoid => kernels::Activation::Sigmoid,
        ir::Activation::Tanh => kernels::Activation::Tanh,
        ir::Activation::HardSigmoid { alpha, beta } => {
            kernels::Activation::HardSigmoid { alpha, beta }
        }
        ir::Activation::HardSwish => kernels::Activation::HardSwish,
        ir::Activation::Silu => kernels::Activation::Silu,
        ir::Activation::LeakyRelu { alpha } => kernels::Activation::LeakyRelu { alpha },
        ir::Activation::Elu { alpha } => kernels::Activation::Elu { alpha },
        ir::Activation::Gelu => kernels::Activation::Gelu,
        ir::Activation::GeluTanh => kernels::Activation::GeluTanh,
        ir::Activation::Erf => kernels::Activation::Erf,
    }
}

/// The runtime's conv shape for a conv node with these input and output types (validated graph).
pub fn conv_shape(c: &ir::Conv, input: &ir::TensorType, output: &ir::TensorType) -> ConvShape {
    let (in_c, in_h, in_w) = input.shape.chw().expect("validated conv input is NCHW");
    let (out_c, out_h, out_w) = output.shape.chw().expect("validated conv output is NCHW");
    ConvShape {
        in_c,
        in_h,
        in_w,
        out_c,
        out_h,
        out_w,
        kernel: c.kernel,
        stride: c.stride,
        dilation: c.dilation,
        pads: c.pads,
        group: c.group,
    }
}

/// The runtime's pool shape for a pool node with these input and output types (validated graph).
pub fn pool_shape(p: &ir::Pool, input: &ir::TensorType, output: &ir::TensorType) -> PoolShape {
    let (channels, in_h, in_w) = input.shape.chw().expect("validated pool input is NCHW");
    let (_, out_h, out_w) = output.shape.chw().expect("validated pool output is NCHW");
    PoolShape {
        channels,
        in_h,
        in_w,
        out_h,
        out_w,
        kernel: p.kernel,
        stride: p.stride,
        pads: p.pads,
    }
}

/// The full dims of a batch-first value for `batch` items.
pub fn dims(t: &ir::TensorType, batch: usize) -> Vec<usize> {
    std::iter::once(batch)
        .chain(t.shape.per_item().unwrap_or_default())
        .collect()
}

/// `(channels, elements per channel)` of a batch-first value.
pub fn channels_spatial(t: &ir::TensorType) -> (usize, usize) {
    let dims = t.shape.per_item().unwrap_or_default();
    let c = dims.first().copied().unwrap_or(1);
    (c, dims.iter().skip(1).product())
}

/// An int8 conv: the reference on unpacked weights, the runtime's kernel (one thread, this CPU's
/// tier) on packed ones.
fn eval_qconv(
    graph: &Graph,
    q: &ir::quant::QConv,
    in_type: &ir::TensorType,
    args: &[&[f32]],
    batch: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let input = args[0];
    let residual = q.residual.map(|f| kernels::int8::Residual {
        input: args[1],
        quant: f.quant,
        min: f.min,
        max: f.max,
        arith: q.residual_arith,
    });
    let (h, w) = in_type.shape.chw().map_or((1, 1), |(_, h, w)| (h, w));
    let shape = q.shape(h, w).map_err(KernelError::BadShape)?;
    let multiplier = q.multipliers();
    let data = graph.weights.data(q.weight);
    if q.packed {
        let mut scratch = vec![0.0; kernels::int8::scratch_len(&shape, batch, 1)];
        let threads = Threads::new(1);
        let args = kernels::int8::QConvArgs {
            shape,
            batch,
            input,
            input_quant: q.input,
            packed: data,
            out: q.kernel_output(),
            residual,
            output: out,
            scratch: &mut scratch,
            codes: q.codes,
        };
        kernels::int8::qconv2d(&Ctx::new(&threads), args)
    } else {
        let weight: Vec<i8> = data.iter().map(|&v| v as i8).collect();
        let params = kernels::int8::QConvParams {
            weight: &weight,
            bias: &q.bias,
            multiplier: &multiplier,
        };
        reference::qconv2d(
            &shape,
            batch,
            input,
            q.input,
            params,
            q.kernel_output(),
            out,
        )?;
        // The unfused composition: the residual step after the whole conv.
        residual.map_or(Ok(()), |r| kernels::int8::add_residual(&r, out))
    }
}
