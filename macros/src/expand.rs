//! Expansion: the validated spec goes through the compiler's DSL front end (so the graph is built and
//! checked at compile time) and becomes the model type; a declaration error becomes one stub type.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use resnext_compiler::back::rust as back_rust;
use resnext_compiler::driver;
use resnext_compiler::front::dsl;
use resnext_compiler::ir::{BnParams, FoldedPart, Graph, WeightId, WeightSource};
use resnext_runtime_core::kernels::ConvShape;

use crate::parse::ModelDecl;
use crate::validate::validate;

/// The tokens for one `resnext!` invocation. Errors come back as tokens beside a stub type of the
/// declared name, so the user sees the declaration's errors and not a cascade at every use.
pub fn expand(decl: ModelDecl) -> syn::Result<TokenStream> {
    let ModelDecl {
        ref attrs,
        ref vis,
        ref name,
        ..
    } = decl;
    let spec = match validate(&decl) {
        Ok(spec) => spec,
        Err(e) => {
            let error = e.into_compile_error();
            return Ok(quote! {
                #error
                #(#attrs)*
                #vis struct #name;
            });
        }
    };
    let graph = dsl::build(&spec).map_err(|e| syn::Error::new(name.span(), e.to_string()))?;
    let keys = dsl::state_dict_keys(&graph).map_err(|e| syn::Error::new(name.span(), e))?;
    let key_names = keys.iter().map(|(k, _)| k.as_str());
    let key_dims = keys.iter().map(|(_, d)| quote!(&[#(#d),*]));
    let [c, h, w] = spec.input;
    let classes = spec.classes;
    let compile_error = |what: &str, e: &dyn std::fmt::Display| {
        syn::Error::new(name.span(), format!("resnext!: {what}: {e}"))
    };
    // The same pipeline and back end as `resnextc`; only the weights stay deferred.
    let mut driver_options = driver::Options::default();
    if let Some(p) = &mut driver_options.passes {
        p.precision = spec.precision;
    }
    let compiled = driver::compile(graph, &driver_options)
        .map_err(|e| compile_error("the compiler rejected the model", &error_chain(&e)))?;
    let options = back_rust::Options {
        deferred_weights: true,
        ..back_rust::Options::default()
    };
    let emitted = back_rust::emit(&compiled.graph, &compiled.info, &options)
        .map_err(|e| compile_error("code generation failed", &e))?;
    let items: TokenStream = emitted
        .items_rs
        .parse()
        .map_err(|e| compile_error("the generated code does not lex", &e))?;
    let loader = loader_body(&compiled.graph, &emitted.weight_order)
        .map_err(|e| compile_error("cannot generate the weight loader", &e))?;
    let module = format_ident!("__resnext_{}", name.to_string().to_lowercase());
    Ok(quote! {
        #[doc(hidden)]
        #[allow(dead_code, unused_mut, unused_variables, clippy::all)]
        mod #module {
            #items

            /// Evaluates every weight the code reads, in its order, from the state_dict tensors
            /// `tensor(key)` returns, and wraps them as this code's in-memory weights.
            pub(super) fn load(
                tensor: &mut dyn FnMut(&str) -> ::core::result::Result<::std::vec::Vec<f32>, ::resnext_runtime::formats::safetensors::StateDictError>,
            ) -> ::core::result::Result<Model, ::resnext_runtime::formats::safetensors::StateDictError> {
                use ::resnext_runtime::formats::safetensors::StateDictError;
                fn prepare(name: &str, e: impl ::std::fmt::Display) -> StateDictError {
                    StateDictError::Prepare { name: name.into(), message: e.to_string() }
                }
                #loader
            }
        }

        #(#attrs)*
        #vis struct #name {
            model: #module::Model,
        }

        impl #name {
            /// `[channels, height, width]` of one input image.
            pub const INPUT_SHAPE: [usize; 3] = [#c, #h, #w];
            /// Number of logits per image.
            pub const CLASSES: usize = #classes;
            /// Every state_dict tensor the model reads: torchvision/timm key and shape.
            pub const STATE_DICT: &'static [(&'static str, &'static [usize])] =
                &[#((#key_names, #key_dims)),*];

            /// Loads a PyTorch state_dict saved as safetensors (memory-mapped). Missing, unexpected
            /// and mis-shaped tensors are reported together in one error. BatchNorm is folded and
            /// the kernels' weights packed here, as `resnextc` does at compile time.
            pub fn load_safetensors(
                path: impl ::core::convert::AsRef<::std::path::Path>,
            ) -> ::core::result::Result<Self, ::resnext_runtime::formats::safetensors::StateDictError> {
                let dict = ::resnext_runtime::formats::safetensors::StateDict::open(path)?;
                dict.check(Self::STATE_DICT.iter().map(|&(k, d)| (k, d)))?;
                let model = #module::load(&mut |key| dict.tensor(key))?;
                Ok(#name { model })
            }

            /// A model with deterministic pseudo-random weights (BatchNorm statistics in their
            /// usual ranges), for tests and benchmarks.
            pub fn random(seed: u64) -> Self {
                let mut tensor = |key: &str| {
                    let dims = Self::STATE_DICT
                        .iter()
                        .find(|&&(k, _)| k == key)
                        .map_or(&[][..], |&(_, d)| d);
                    Ok::<_, ::resnext_runtime::formats::safetensors::StateDictError>(
                        ::resnext_runtime::formats::safetensors::random_tensor(key, dims, seed),
                    )
                };
                let model = #module::load(&mut tensor)
                    .expect("random weights in the usual ranges fold and pack");
                #name { model }
            }

            /// Runs the model on `batch` images laid out as `[batch, INPUT_SHAPE..]` and returns
            /// `[batch, CLASSES]` logits.
            pub fn forward(
                &self,
                input: &[f32],
                batch: usize,
            ) -> ::core::result::Result<::std::vec::Vec<f32>, ::resnext_runtime::RunError> {
                self.model.forward(input, batch)
            }

            /// As [`Self::forward`], writing into `output` (`batch * CLASSES` floats).
            pub fn forward_into(
                &self,
                input: &[f32],
                batch: usize,
                output: &mut [f32],
            ) -> ::core::result::Result<(), ::resnext_runtime::RunError> {
                self.model.forward_into(input, batch, output)
            }

            /// Runs the kernels on `threads` threads (at least 1; the default is one per core).
            pub fn set_threads(&mut self, threads: usize) {
                self.model.set_threads(threads);
            }
        }
    })
}

/// The error and its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The loader's body: one `let` per weight the code needs (state_dict tensors first, then the
/// recipes over them, each after its inputs), then the weights in the code's order.
fn loader_body(graph: &Graph, order: &[WeightId]) -> Result<TokenStream, String> {
    let mut done = HashSet::new();
    let mut lets = Vec::new();
    for &id in order {
        emit_weight(graph, id, &mut done, &mut lets)?;
    }
    let vars = order.iter().map(|&id| var(id));
    let names = order
        .iter()
        .map(|&id| graph.weights.get(id).map(|w| w.name.as_str()).unwrap_or(""));
    let dims = order.iter().map(|&id| {
        let d = graph
            .weights
            .get(id)
            .map(|w| w.dims.clone())
            .unwrap_or_default();
        quote!(&[#(#d),*])
    });
    Ok(quote! {
        #(#lets)*
        let mut writer = ::resnext_runtime::formats::weights::WeightsWriter::new(MODEL_HASH);
        #(writer.add(#names, #dims, &#vars).map_err(|e| prepare(#names, e))?;)*
        let weights = writer.to_weights().map_err(|e| prepare("(all)", e))?;
        drop(writer);
        Model::from_weights(weights).map_err(|e| prepare("(all)", e))
    })
}

fn var(id: WeightId) -> syn::Ident {
    format_ident!("w{}", id.0)
}

/// Pushes the `let` of weight `id` after those of its inputs (once).
fn emit_weight(
    graph: &Graph,
    id: WeightId,
    done: &mut HashSet<WeightId>,
    lets: &mut Vec<TokenStream>,
) -> Result<(), String> {
    if done.contains(&id) {
        return Ok(());
    }
    let w = graph
        .weights
        .get(id)
        .ok_or_else(|| format!("a missing weight {id:?}"))?;
    let name = w.name.as_str();
    let v = var(id);
    let part = |p: FoldedPart| match p {
        FoldedPart::Weight => quote!(0),
        FoldedPart::Bias => quote!(1),
    };
    let bn_inputs = |bn: &BnParams| [bn.gamma, bn.beta, bn.mean, bn.var];
    let value = match &w.source {
        WeightSource::Data => {
            let data = &w.data;
            quote!(::std::vec![#(#data),*])
        }
        WeightSource::StateDict { key } => quote!(tensor(#key)?),
        WeightSource::FoldedBn {
            part: p,
            weight,
            bias,
            bn,
            out_channels,
        } => {
            for input in [*weight].into_iter().chain(*bias).chain(bn_inputs(bn)) {
                emit_weight(graph, input, done, lets)?;
            }
            let (wv, [g, b, m, s]) = (var(*weight), bn_inputs(bn).map(var));
            let bias = match bias {
                Some(b) => {
                    let b = var(*b);
                    quote!(Some(&#b[..]))
                }
                None => quote!(None),
            };
            let eps = bn.epsilon;
            let p = part(*p);
            quote! {
                ::resnext_runtime::formats::fold::fold_batch_norm(
                    &#wv,
                    #bias,
                    &::resnext_runtime::kernels::BatchNorm { gamma: &#g, beta: &#b, mean: &#m, var: &#s, epsilon: #eps },
                    #out_channels,
                )
                    .map_err(|e| prepare(#name, e))?.#p
            }
        }
        WeightSource::BnScaleShift { part: p, bn } => {
            for input in bn_inputs(bn) {
                emit_weight(graph, input, done, lets)?;
            }
            let [g, b, m, s] = bn_inputs(bn).map(var);
            let eps = bn.epsilon;
            let p = part(*p);
            quote! {
                ::resnext_runtime::formats::fold::batch_norm_scale_shift(&#g, &#b, &#m, &#s, #eps)
                    .map_err(|e| prepare(#name, e))?.#p
            }
        }
        WeightSource::PackedConv {
            algo,
            shape,
            source,
        } => {
            emit_weight(graph, *source, done, lets)?;
            let src = var(*source);
            let algo = format_ident!("{}", format!("{algo:?}"));
            let ConvShape {
                in_c,
                in_h,
                in_w,
                out_c,
                out_h,
                out_w,
                kernel,
                stride,
                dilation,
                pads,
                group,
            } = *shape;
            quote! {
                ::resnext_runtime::kernels::conv::pack(
                    ::resnext_runtime::kernels::conv::ConvAlgo::#algo,
                    &::resnext_runtime::kernels::ConvShape {
                        in_c: #in_c, in_h: #in_h, in_w: #in_w,
                        out_c: #out_c, out_h: #out_h, out_w: #out_w,
                        kernel: [#(#kernel),*], stride: [#(#stride),*],
                        dilation: [#(#dilation),*], pads: [#(#pads),*], group: #group,
                    },
                    &#src,
                ).map_err(|e| prepare(#name, e))?
            }
        }
        WeightSource::PackedDense {
            in_features,
            out_features,
            source,
        } => {
            emit_weight(graph, *source, done, lets)?;
            let src = var(*source);
            quote! {
                ::resnext_runtime::kernels::dense::pack(#in_features, #out_features, &#src)
                    .map_err(|e| prepare(#name, e))?
            }
        }
        WeightSource::PackedDenseBf16 {
            in_features,
            out_features,
            source,
        } => {
            emit_weight(graph, *source, done, lets)?;
            let src = var(*source);
            quote! {
                ::resnext_runtime::kernels::dense::pack_bf16(#in_features, #out_features, &#src)
                    .map_err(|e| prepare(#name, e))?
            }
        }
    };
    done.insert(id);
    lets.push(quote!(let #v: ::std::vec::Vec<f32> = #value;));
    Ok(())
}
