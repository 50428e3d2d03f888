//! The body of the emitted `forward_into`: one statement per node, each a call to a runtime kernel
//! with the layer's shape written out as constants and its weights read by index.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use resnext_runtime_core::kernels::conv::ConvAlgo;
use resnext_runtime_core::kernels::{ConvShape, PoolShape};

use super::Model;
use crate::interp;
use crate::ir::{self, ConvKernel, DenseKernel, NodeId, Op};
use crate::passes::Slot;

/// An unsuffixed integer literal.
pub(super) fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

pub(super) fn usizes(values: &[usize]) -> Vec<Literal> {
    values.iter().map(|&v| lit(v)).collect()
}

/// The straight-line body. Every value but the model input lives in one arena at the offset the
/// memory plan gave it; each layer borrows its output slice mutably and its inputs shared
/// (`arena::split` checks they are disjoint), so no layer allocates.
pub(super) fn forward_body(model: &Model) -> TokenStream {
    let mut body = TokenStream::new();
    if !model.weight_order.is_empty() {
        body.extend(quote!(let w = &self.weights;));
    }
    let arena = quote!(::resnext_runtime::exec::arena);
    let range = |id: NodeId| {
        let (offset, len) = model.plan.offsets.get(&id).copied().unwrap_or_default();
        let (offset, len) = (lit(offset), lit(len));
        quote!(#arena::range(#offset, #len, batch))
    };
    for &id in &model.order {
        let node = model.graph.node(id);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let (name, kernel) = (&node.name, kernel_label(&node.op));
        if matches!(node.op, Op::Concat { .. }) {
            let copies = emit_concat(model, id);
            body.extend(quote! {
                {
                    let _span = ::resnext_runtime::exec::profile::span(#name, #kernel);
                    #copies
                }
            });
            continue;
        }
        let inputs = model.graph.inputs_of(id);
        let strided = |v: NodeId| model.plan.slot(v).is_some_and(|s| !s.is_contiguous());
        if strided(id) || inputs.iter().any(|&v| strided(v)) {
            let dst = model.plan.slot(id).unwrap_or_default();
            let per_item = emit_per_item(model, name, dst, &inputs, |args| {
                emit_node(model, id, args, quote!(out))
            });
            body.extend(quote! {
                {
                    let _span = ::resnext_runtime::exec::profile::span(#name, #kernel);
                    #per_item
                }
            });
            continue;
        }
        let mut ranges = Vec::new();
        let mut names = Vec::new();
        let args: Vec<TokenStream> = inputs
            .into_iter()
            .enumerate()
            .map(|(slot, src)| {
                if model.is_input(src) {
                    return quote!(input);
                }
                let v = format_ident!("in{slot}");
                ranges.push(range(src));
                names.push(v.clone());
                quote!(#v)
            })
            .collect();
        let call = emit_node(model, id, &args, quote!(out));
        let out = range(id);
        body.extend(quote! {
            {
                let _span = ::resnext_runtime::exec::profile::span(#name, #kernel);
                let (out, [#(#names),*]) = #arena::split(arena, #out, [#(#ranges),*])
                    .map_err(::resnext_runtime::RunError::at(#name))?;
                #call.map_err(::resnext_runtime::RunError::at(#name))?;
            }
        });
    }
    let out = range(model.output);
    body.extend(quote!(output.copy_from_slice(&arena[#out]);));
    quote! {
        self.activations.with(batch * ARENA_LEN_PER_ITEM, |arena| -> Result<(), ::resnext_runtime::RunError> {
            #body
            Ok(())
        })?;
    }
}

/// A loop over the batch that computes item after item of a value into `dst` from item after item
/// of `inputs` (slot order), with `call` (given the input names) run on one item at a time
/// (`batch` is 1 inside): how a producer writes into its channel slice of a concat's output, whose
/// items are not one contiguous run.
fn emit_per_item(
    model: &Model,
    name: &str,
    dst: Slot,
    inputs: &[NodeId],
    call: impl FnOnce(&[TokenStream]) -> TokenStream,
) -> TokenStream {
    let arena = quote!(::resnext_runtime::exec::arena);
    let item_range = |s: Slot| {
        let [base, stride, at, len] = [s.base, s.item_stride, s.at, s.len].map(lit);
        quote!(#arena::item_range(#base, #stride, #at, #len, batch, item))
    };
    let mut ranges = Vec::new();
    let mut names = Vec::new();
    let mut model_input = None;
    let args: Vec<TokenStream> = inputs
        .iter()
        .enumerate()
        .map(|(slot, &src)| {
            if model.is_input(src) {
                let len = model.graph.node(src).output.shape.item_len().unwrap_or(0);
                model_input = Some(lit(len));
                return quote!(input);
            }
            let v = format_ident!("in{slot}");
            let s = model.plan.slot(src).unwrap_or_default();
            ranges.push(item_range(s));
            names.push(v.clone());
            quote!(#v)
        })
        .collect();
    let input_item =
        model_input.map(|len| quote!(let input = &input[item * #len..(item + 1) * #len];));
    let call = call(&args);
    let out = item_range(dst);
    quote! {
        for item in 0..batch {
            #input_item
            let (out, [#(#names),*]) = #arena::split(arena, #out, [#(#ranges),*])
                .map_err(::resnext_runtime::RunError::at(#name))?;
            #[allow(unused_variables)]
            let batch = 1usize;
            #call.map_err(::resnext_runtime::RunError::at(#name))?;
        }
    }
}

/// A channel concat: each input that did not write itself into its slice of the output (see
/// `passes::plan_memory`) is copied there, item by item.
fn emit_concat(model: &Model, id: NodeId) -> TokenStream {
    let graph = model.graph;
    let dst = model.plan.slot(id).unwrap_or_default();
    let mut copies = TokenStream::new();
    let mut at = dst.at;
    for src in graph.inputs_of(id) {
        let len = graph.node(src).output.shape.item_len().unwrap_or(0);
        if !model.plan.slices.contains_key(&src) {
            let slice = Slot { at, len, ..dst };
            copies.extend(emit_per_item(
                model,
                &graph.node(id).name,
                slice,
                &[src],
                |args| emit_activation(&args[0], ir::Activation::None, quote!(out)),
            ));
        }
        at += len;
    }
    copies
}

/// What the profiler (`RESNEXT_PROFILE=1`) files a layer under: the conv algorithm, else the op.
fn kernel_label(op: &Op) -> &'static str {
    match op {
        Op::Conv(c) => match c.kernel_choice {
            ConvKernel::Reference => "conv-ref",
            ConvKernel::Fast(algo) => algo.name(),
        },
        op => op.name(),
    }
}

/// The kernel call computing node `id` from `args` (slot order) into `out`; an expression of type
/// `Result<(), KernelError>`. One arm per op.
fn emit_node(model: &Model, id: NodeId, args: &[TokenStream], out: TokenStream) -> TokenStream {
    let graph = model.graph;
    let node = graph.node(id);
    let in_type = &graph.node(graph.inputs_of(id)[0]).output;
    let reference = quote!(::resnext_runtime::kernels::reference);
    match &node.op {
        Op::Input => quote!(Ok::<(), ::resnext_runtime::kernels::KernelError>(())),
        // `forward_body` emits the copies of a concat's inputs (`emit_concat`).
        Op::Concat { .. } => quote!(Ok::<(), ::resnext_runtime::kernels::KernelError>(())),
        Op::Conv(c) => emit_conv(model, c, in_type, &node.output, args, out),
        Op::FakeQuant(f) => {
            let quant = quant_tokens(f.quant);
            let (min, max, x) = (f.min, f.max, &args[0]);
            quote!(::resnext_runtime::kernels::int8::fake_quantize(&ctx, #quant, #min, #max, #x, #out))
        }
        Op::QConv(q) => emit_qconv(model, q, in_type, args, out),
        Op::Dense(d) => emit_dense(model, d, args, out),
        Op::BatchNorm(b) => {
            let (c, spatial) = spatial_lits(in_type);
            let [scale, bias, mean, var] =
                [b.scale, b.bias, b.mean, b.var].map(|w| weight(model, w));
            let eps = f32_tokens(b.epsilon);
            let x = &args[0];
            let planes = planes_args(&c, &spatial, x, out);
            quote!(#reference::batch_norm(#planes, &::resnext_runtime::kernels::BatchNorm { gamma: #scale, beta: #bias, mean: #mean, var: #var, epsilon: #eps }))
        }
        Op::ScaleShift(s) => {
            let (c, spatial) = spatial_lits(in_type);
            let (scale, shift) = (weight(model, s.scale), weight(model, s.shift));
            let act = activation(s.activation);
            let x = &args[0];
            let planes = planes_args(&c, &spatial, x, out);
            quote!(::resnext_runtime::kernels::elementwise::scale_shift(&ctx, #planes, #scale, #shift, #act))
        }
        Op::Relu => emit_activation(&args[0], ir::Activation::Relu, out),
        Op::Clip { min, max } => emit_activation(
            &args[0],
            ir::Activation::Clip {
                min: *min,
                max: *max,
            },
            out,
        ),
        // Reshapes copy: the reference path keeps one buffer per value; passes may alias later.
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => {
            emit_activation(&args[0], ir::Activation::None, out)
        }
        Op::Reorder { to } => {
            let (c, spatial) = spatial_lits(in_type);
            let x = &args[0];
            let f = if *to == ir::Layout::Nchw8c {
                quote!(to_blocked)
            } else {
                quote!(from_blocked)
            };
            let planes = planes_args(&c, &spatial, x, out);
            quote!(::resnext_runtime::kernels::blocked::#f(&ctx, #planes))
        }
        Op::ChannelShuffle { groups } => {
            let (c, spatial) = spatial_lits(in_type);
            let planes = planes_args(&c, &spatial, &args[0], out);
            let groups = lit(*groups);
            quote!(#reference::channel_shuffle(#planes, #groups))
        }
        Op::LayerNormChannels(l) => {
            let (c, spatial) = spatial_lits(in_type);
            let planes = planes_args(&c, &spatial, &args[0], out);
            let (scale, shift) = (weight(model, l.scale), weight(model, l.shift));
            let epsilon = f32_tokens(l.epsilon);
            quote!(::resnext_runtime::kernels::layer_norm::layer_norm_channels(&ctx, #planes, #epsilon, #scale, #shift))
        }
        Op::Lrn(l) => {
            let (c, spatial) = spatial_lits(in_type);
            let planes = planes_args(&c, &spatial, &args[0], out);
            let size = lit(l.size);
            let [alpha, beta, bias] = [l.alpha, l.beta, l.bias].map(f32_tokens);
            quote!(#reference::lrn(#planes, #size, #alpha, #beta, #bias))
        }
        Op::Softmax { log } => {
            let (k, _) = spatial_lits(in_type);
            let x = &args[0];
            quote!(#reference::softmax(batch, #k, #log, #x, #out))
        }
        Op::Pad { pads } => {
            let (c, h, w) = in_type.shape.chw().unwrap_or_default();
            let (c, size, pads, x) = (lit(c), pair([h, w]), quad(*pads), &args[0]);
            quote!(#reference::pad2d(batch, #c, #size, #pads, #x, #out))
        }
        Op::SliceChannels { start, .. } => {
            let (c, spatial) = spatial_lits(in_type);
            let planes = planes_args(&c, &spatial, &args[0], out);
            let start = lit(*start);
            quote!(#reference::slice_channels(#planes, #start))
        }
        Op::Add { activation: a } => {
            let act = activation(*a);
            let (x, y) = (&args[0], &args[1]);
            quote!(::resnext_runtime::kernels::elementwise::add(&ctx, #x, #y, #act, #out))
        }
        Op::Activation(a) => emit_activation(&args[0], *a, out),
        Op::PRelu { slope } => {
            let (c, spatial) = spatial_lits(in_type);
            let slope = weight(model, *slope);
            let planes = planes_args(&c, &spatial, &args[0], out);
            quote!(#reference::prelu(#planes, #slope))
        }
        Op::Binary(b) => emit_binary(model, id, b, args, out),
        Op::MaxPool(p) => {
            let shape = pool_shape(&interp::pool_shape(p, in_type, &node.output));
            let x = &args[0];
            let args = pool_args(&shape, x, out);
            quote!(::resnext_runtime::kernels::pool::max_pool2d(&ctx, #args))
        }
        Op::AveragePool(p) => {
            let shape = pool_shape(&interp::pool_shape(p, in_type, &node.output));
            let include = p.count_include_pad;
            let x = &args[0];
            let args = pool_args(&shape, x, out);
            quote!(::resnext_runtime::kernels::pool::avg_pool2d(&ctx, #args, #include))
        }
        Op::GlobalAveragePool { .. } => {
            let (c, spatial) = spatial_lits(in_type);
            let x = &args[0];
            let planes = planes_args(&c, &spatial, x, out);
            quote!(::resnext_runtime::kernels::pool::global_avg_pool(&ctx, #planes))
        }
        Op::SqueezeExcite(se) => {
            let (c, spatial) = spatial_lits(in_type);
            let planes = planes_args(&c, &spatial, &args[0], out);
            let optional = |b| optional_weight(model, b);
            let squeezed = lit(se.squeezed);
            let (reduce, expand) = (weight(model, se.reduce), weight(model, se.expand));
            let (reduce_bias, expand_bias) = (optional(se.reduce_bias), optional(se.expand_bias));
            let (act, gate) = (activation(se.activation), activation(se.gate));
            quote! {
                ::resnext_runtime::kernels::squeeze_excite::squeeze_excite(
                    &ctx,
                    #planes,
                    &::resnext_runtime::kernels::squeeze_excite::SqueezeExcite {
                        squeezed: #squeezed,
                        reduce: #reduce,
                        reduce_bias: #reduce_bias,
                        activation: #act,
                        expand: #expand,
                        expand_bias: #expand_bias,
                        gate: #gate,
                    },
                )
            }
        }
    }
}

/// A broadcasting binary op: squeeze-excite's `[N, C, H, W] · [N, C, 1, 1]` on `scale_channels`,
/// anything else on the broadcasting `elementwise::binary` with both operands' dims written out.
fn emit_binary(
    model: &Model,
    id: NodeId,
    b: &ir::Binary,
    args: &[TokenStream],
    out: TokenStream,
) -> TokenStream {
    let graph = model.graph;
    let inputs = graph.inputs_of(id);
    let types: Vec<&ir::TensorType> = inputs.iter().map(|&i| &graph.node(i).output).collect();
    if b.kind == ir::BinaryKind::Mul
        && b.constant.is_none()
        && let Some(big) = channel_scale_operand(types[0], types[1])
    {
        let (c, spatial) = spatial_lits(types[big]);
        let (x, s) = (&args[big], &args[1 - big]);
        let planes = planes_args(&c, &spatial, x, out);
        return quote!(::resnext_runtime::kernels::elementwise::scale_channels(&ctx, #planes, #s));
    }
    let act_dims = |slot: usize| {
        let rest = usizes(&types[slot].shape.per_item().unwrap_or_default());
        quote!(&[batch, #(#rest),*])
    };
    let kind = format_ident!("{}", b.kind.name());
    let kind = quote!(::resnext_runtime::kernels::elementwise::BinaryKind::#kind);
    let operands = match b.constant {
        Some(k) => {
            let k_dims = usizes(
                &graph
                    .weights
                    .get(k)
                    .map(|t| t.dims.clone())
                    .unwrap_or_default(),
            );
            let constant = (weight(model, k), quote!(&[#(#k_dims),*]));
            let activation = (args[0].clone(), act_dims(0));
            if b.constant_first {
                [constant, activation]
            } else {
                [activation, constant]
            }
        }
        None => [
            (args[0].clone(), act_dims(0)),
            (args[1].clone(), act_dims(1)),
        ],
    };
    let [(a, a_dims), (c, c_dims)] = operands;
    quote!(::resnext_runtime::kernels::elementwise::binary(&ctx, #kind, (#a, #a_dims), (#c, #c_dims), #out))
}

/// Which operand (0 or 1) is the `[N, C, H, W]` value that the other, `[N, C, 1, 1]`, scales per
/// channel, if that is the shape of the pair.
fn channel_scale_operand(a: &ir::TensorType, b: &ir::TensorType) -> Option<usize> {
    let (ca, ha, wa) = a.shape.chw()?;
    let (cb, hb, wb) = b.shape.chw()?;
    match (ca == cb, (ha, wa), (hb, wb)) {
        (true, _, (1, 1)) if (ha, wa) != (1, 1) => Some(0),
        (true, (1, 1), _) if (hb, wb) != (1, 1) => Some(1),
        _ => None,
    }
}

fn emit_conv(
    model: &Model,
    c: &ir::Conv,
    in_type: &ir::TensorType,
    out_type: &ir::TensorType,
    args: &[TokenStream],
    out: TokenStream,
) -> TokenStream {
    let shape = conv_shape(&interp::conv_shape(c, in_type, out_type));
    let epilogue = epilogue(model, c.bias, c.epilogue, args.get(1));
    let (x, wt) = (&args[0], weight(model, c.weight));
    match c.kernel_choice {
        ConvKernel::Reference => quote! {
            ::resnext_runtime::kernels::reference::conv2d(&#shape, batch, #x, #wt, &#epilogue, #out)
        },
        ConvKernel::Fast(algo) => {
            let algo = conv_algo(algo);
            let input = input_field(x);
            quote! {
                ::resnext_runtime::kernels::conv::conv2d(&ctx, #algo, ::resnext_runtime::kernels::ConvArgs {
                    shape: #shape,
                    batch,
                    #input,
                    packed: #wt,
                    epilogue: #epilogue,
                    output: #out,
                    scratch: &mut *scratch,
                })
            }
        }
    }
}

/// The shape of an int8 conv on a validated graph (1 × 1 maps for a dense layer).
fn qconv_shape(q: &ir::quant::QConv, in_type: &ir::TensorType) -> ConvShape {
    let (h, w) = in_type.shape.chw().map_or((1, 1), |(_, h, w)| (h, w));
    q.shape(h, w)
        .expect("validated: the int8 conv's window fits its input")
}

fn quant_tokens(q: ir::quant::Quant) -> TokenStream {
    let (scale, zero_point) = (f32_tokens(q.scale), q.zero_point);
    quote!(::resnext_runtime::kernels::int8::Quant { scale: #scale, zero_point: #zero_point })
}

/// An int8 conv: on its packed weights (`pack-int8` packs every one), or with the reference kernel.
fn emit_qconv(
    model: &Model,
    q: &ir::quant::QConv,
    in_type: &ir::TensorType,
    args: &[TokenStream],
    out: TokenStream,
) -> TokenStream {
    let shape = conv_shape(&qconv_shape(q, in_type));
    let (x, wt) = (&args[0], weight(model, q.weight));
    let input = input_field(x);
    let input_quant = quant_tokens(q.input);
    let rule = match q.kernel_output() {
        resnext_runtime_core::kernels::int8::QOutput::Float { relu } => {
            quote!(::resnext_runtime::kernels::int8::QOutput::Float { relu: #relu })
        }
        resnext_runtime_core::kernels::int8::QOutput::Requant { quant, min, max } => {
            let quant = quant_tokens(quant);
            quote!(::resnext_runtime::kernels::int8::QOutput::Requant { quant: #quant, min: #min, max: #max })
        }
    };
    let residual = match q.residual {
        Some(f) => {
            let (r, quant, min, max) = (&args[1], quant_tokens(f.quant), f.min, f.max);
            let arith = match q.residual_arith {
                resnext_runtime_core::kernels::int8::SumArith::Onnx => {
                    quote!(::resnext_runtime::kernels::int8::SumArith::Onnx)
                }
                resnext_runtime_core::kernels::int8::SumArith::OnnxRuntime {
                    conv,
                    input,
                    conv_first,
                } => {
                    let (conv, input) = (quant_tokens(conv), quant_tokens(input));
                    quote!(::resnext_runtime::kernels::int8::SumArith::OnnxRuntime {
                        conv: #conv,
                        input: #input,
                        conv_first: #conv_first,
                    })
                }
            };
            quote!(Some(::resnext_runtime::kernels::int8::Residual {
                input: #r,
                quant: #quant,
                min: #min,
                max: #max,
                arith: #arith,
            }))
        }
        None => quote!(None::<::resnext_runtime::kernels::int8::Residual<'_>>),
    };
    let (codes_in, codes_out) = (q.codes.input, q.codes.output);
    let codes_residual = match q.codes.residual {
        Some(quant) => {
            let quant = quant_tokens(quant);
            quote!(Some(#quant))
        }
        None => quote!(None),
    };
    if !q.packed {
        // Without the passes (`--no-opt`): the reference kernel on the i8 values, stored as floats
        // (`int8-codes` marks packed convs only).
        let bias = &q.bias;
        let multiplier: Vec<TokenStream> = q.multipliers().into_iter().map(f32_tokens).collect();
        return quote! {{
            let weight: Vec<i8> = #wt.iter().map(|&v| v as i8).collect();
            let out = #out;
            ::resnext_runtime::kernels::reference::qconv2d(
                &#shape,
                batch,
                #x,
                #input_quant,
                ::resnext_runtime::kernels::int8::QConvParams {
                    weight: &weight,
                    bias: &[#(#bias),*],
                    multiplier: &[#(#multiplier),*],
                },
                #rule,
                &mut *out,
            )
            .and_then(|()| match #residual {
                Some(r) => ::resnext_runtime::kernels::int8::add_residual(&r, out),
                None => Ok(()),
            })
        }};
    }
    quote! {
        ::resnext_runtime::kernels::int8::qconv2d(&ctx, ::resnext_runtime::kernels::int8::QConvArgs {
            shape: #shape,
            batch,
            #input,
            input_quant: #input_quant,
            packed: #wt,
            out: #rule,
            residual: #residual,
            output: #out,
            scratch: &mut *scratch,
            codes: ::resnext_runtime::kernels::int8::Codes { input: #codes_in, output: #codes_out, residual: #codes_residual },
        })
    }
}

/// `ConvAlgo::X` as a path.
fn conv_algo(algo: ConvAlgo) -> TokenStream {
    let variant = format_ident!("{}", format!("{algo:?}"));
    quote!(::resnext_runtime::kernels::conv::ConvAlgo::#variant)
}

/// An expression for the kernel scratch (floats) node `id` needs for `batch` on `threads` threads,
/// if its kernel needs any.
pub(super) fn scratch_len(model: &Model, id: NodeId) -> Option<TokenStream> {
    let graph = model.graph;
    let node = graph.node(id);
    match &node.op {
        Op::Conv(c) => {
            let ConvKernel::Fast(algo) = c.kernel_choice else {
                return None;
            };
            let in_type = &graph.node(graph.inputs_of(id)[0]).output;
            let shape = conv_shape(&interp::conv_shape(c, in_type, &node.output));
            let algo = conv_algo(algo);
            Some(
                quote!(::resnext_runtime::kernels::conv::scratch_len(#algo, &#shape, batch, threads)),
            )
        }
        Op::QConv(q) if q.packed => {
            let in_type = &graph.node(graph.inputs_of(id)[0]).output;
            let shape = conv_shape(&qconv_shape(q, in_type));
            Some(quote!(::resnext_runtime::kernels::int8::scratch_len(&#shape, batch, threads)))
        }
        Op::Dense(d) if d.kernel == DenseKernel::Packed => {
            let k = lit(d.in_features);
            Some(quote!(::resnext_runtime::kernels::dense::scratch_len(batch, #k, threads)))
        }
        Op::Dense(d) if d.kernel == DenseKernel::PackedBf16 => {
            let k = lit(d.in_features);
            Some(quote!(::resnext_runtime::kernels::dense::scratch_len_bf16(batch, #k, threads)))
        }
        _ => None,
    }
}

fn emit_dense(model: &Model, d: &ir::Dense, args: &[TokenStream], out: TokenStream) -> TokenStream {
    let epilogue = epilogue(model, d.bias, d.epilogue, args.get(1));
    let (x, wt) = (&args[0], weight(model, d.weight));
    let (k, m) = (lit(d.in_features), lit(d.out_features));
    match d.kernel {
        DenseKernel::Reference => quote! {
            ::resnext_runtime::kernels::reference::dense(batch, #k, #m, #x, #wt, &#epilogue, #out)
        },
        DenseKernel::Packed | DenseKernel::PackedBf16 => {
            let input = input_field(x);
            let run = if d.kernel == DenseKernel::PackedBf16 {
                quote!(run_bf16)
            } else {
                quote!(run)
            };
            quote! {
            ::resnext_runtime::kernels::dense::#run(&ctx, ::resnext_runtime::kernels::dense::DenseArgs {
                batch,
                in_features: #k,
                out_features: #m,
                #input,
                packed: #wt,
                epilogue: #epilogue,
                output: #out,
                scratch: &mut *scratch,
            })
            }
        }
    }
}

/// The `input` field of a kernel's args struct reading `x`: the shorthand where `x` is the model
/// input itself (a variable named `input`).
fn input_field(x: &TokenStream) -> TokenStream {
    if x.to_string() == "input" {
        quote!(input)
    } else {
        quote!(input: #x)
    }
}

/// `PlanesArgs` over the layer's `batch · c` planes of `spatial` elements.
fn planes_args(c: &Literal, spatial: &Literal, x: &TokenStream, out: TokenStream) -> TokenStream {
    let input = input_field(x);
    quote!(::resnext_runtime::kernels::PlanesArgs { batch, channels: #c, spatial: #spatial, #input, output: #out })
}

/// `PoolArgs` of the layer.
fn pool_args(shape: &TokenStream, x: &TokenStream, out: TokenStream) -> TokenStream {
    let input = input_field(x);
    quote!(::resnext_runtime::kernels::pool::PoolArgs { shape: #shape, batch, #input, output: #out })
}

fn emit_activation(x: &TokenStream, a: ir::Activation, out: TokenStream) -> TokenStream {
    let act = activation(a);
    quote!(::resnext_runtime::kernels::elementwise::activation(&ctx, #x, #act, #out))
}

fn epilogue(
    model: &Model,
    bias: Option<ir::WeightId>,
    e: ir::Epilogue,
    residual: Option<&TokenStream>,
) -> TokenStream {
    let bias = optional_weight(model, bias);
    let residual = match residual.filter(|_| e.residual) {
        Some(r) => quote!(Some(#r)),
        None => quote!(None),
    };
    let act = activation(e.activation);
    quote! {
        ::resnext_runtime::kernels::Epilogue { bias: #bias, residual: #residual, activation: #act }
    }
}

/// `Some(w.tensor(i))` for a weight, `None` for none.
fn optional_weight(model: &Model, id: Option<ir::WeightId>) -> TokenStream {
    match id {
        Some(id) => {
            let w = weight(model, id);
            quote!(Some(#w))
        }
        None => quote!(None),
    }
}

/// `w.tensor(i)` for a weight; every weight of an op is in the index (collected from the same ops).
fn weight(model: &Model, id: ir::WeightId) -> TokenStream {
    let index = lit(model.weight_index.get(&id).copied().unwrap_or(usize::MAX));
    quote!(w.tensor(#index))
}

fn activation(a: ir::Activation) -> TokenStream {
    match a {
        ir::Activation::None => quote!(::resnext_runtime::kernels::Activation::None),
        ir::Activation::Relu => quote!(::resnext_runtime::kernels::Activation::Relu),
        ir::Activation::Clip { min, max } => {
            let (min, max) = (f32_tokens(min), f32_tokens(max));
            quote!(::resnext_runtime::kernels::Activation::Clip { min: #min, max: #max })
        }
        ir::Activation::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (f32_tokens(alpha), f32_tokens(beta));
            quote!(::resnext_runtime::kernels::Activation::HardSigmoid { alpha: #alpha, beta: #beta })
        }
        ir::Activation::LeakyRelu { alpha } => {
            let alpha = f32_tokens(alpha);
            quote!(::resnext_runtime::kernels::Activation::LeakyRelu { alpha: #alpha })
        }
        ir::Activation::Elu { alpha } => {
            let alpha = f32_tokens(alpha);
            quote!(::resnext_runtime::kernels::Activation::Elu { alpha: #alpha })
        }
        ir::Activation::Sigmoid
        | ir::Activation::Tanh
        | ir::Activation::HardSwish
        | ir::Activation::Silu
        | ir::Activation::Gelu
        | ir::Activation::GeluTanh
        | ir::Activation::Erf => {
            let variant = format_ident!("{}", format!("{a:?}"));
            quote!(::resnext_runtime::kernels::Activation::#variant)
        }
    }
}

/// An f32 constant; infinities (a one-sided Clip) have no literal.
fn f32_tokens(x: f32) -> TokenStream {
    if x == f32::INFINITY {
        quote!(f32::INFINITY)
    } else if x == f32::NEG_INFINITY {
        quote!(f32::NEG_INFINITY)
    } else if x.is_nan() {
        quote!(f32::NAN)
    } else {
        let l = Literal::f32_suffixed(x);
        quote!(#l)
    }
}

fn spatial_lits(t: &ir::TensorType) -> (Literal, Literal) {
    let (c, spatial) = interp::channels_spatial(t);
    (lit(c), lit(spatial))
}

fn pair(v: [usize; 2]) -> TokenStream {
    let [a, b] = v.map(lit);
    quote!([#a, #b])
}

fn quad(v: [usize; 4]) -> TokenStream {
    let [a, b, c, d] = v.map(lit);
    quote!([#a, #b, #c, #d])
}

fn conv_shape(s: &ConvShape) -> TokenStream {
    let [in_c, in_h, in_w, out_c, out_h, out_w, group] =
        [s.in_c, s.in_h, s.in_w, s.out_c, s.out_h, s.out_w, s.group].map(lit);
    let (kernel, stride, dilation, pads) = (
        pair(s.kernel),
        pair(s.stride),
        pair(s.dilation),
        quad(s.pads),
    );
    quote! {
        ::resnext_runtime::kernels::ConvShape {
            in_c: #in_c, in_h: #in_h, in_w: #in_w, out_c: #out_c, out_h: #out_h, out_w: #out_w,
            kernel: #kernel, stride: #stride, dilation: #dilation, pads: #pads, group: #group,
        }
    }
}

fn pool_shape(s: &PoolShape) -> TokenStream {
    let [channels, in_h, in_w, out_h, out_w] =
        [s.channels, s.in_h, s.in_w, s.out_h, s.out_w].map(lit);
    let (kernel, stride, pads) = (pair(s.kernel), pair(s.stride), quad(s.pads));
    quote! {
        ::resnext_runtime::kernels::PoolShape {
            channels: #channels, in_h: #in_h, in_w: #in_w, out_h: #out_h, out_w: #out_w,
            kernel: #kernel, stride: #stride, pads: #pads,
        }
    }
}
