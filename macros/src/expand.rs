//! Expansion: the validated spec goes through the compiler's DSL front end (so the graph is built and
//! checked at compile time) and becomes the model type; a declaration error becomes one stub type.

use proc_macro2::TokenStream;
use quote::quote;
use resnext_compiler::front::dsl;

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
    Ok(quote! {
        #(#attrs)*
        #vis struct #name {
            /// The state_dict tensors in [`Self::STATE_DICT`] order.
            weights: ::std::vec::Vec<::std::vec::Vec<f32>>,
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
            /// and mis-shaped tensors are reported together in one error.
            pub fn load_safetensors(
                path: impl ::core::convert::AsRef<::std::path::Path>,
            ) -> ::core::result::Result<Self, ::resnext_runtime::safetensors::StateDictError> {
                let dict = ::resnext_runtime::safetensors::StateDict::open(path)?;
                dict.check(Self::STATE_DICT.iter().map(|&(k, d)| (k, d)))?;
                let weights = Self::STATE_DICT
                    .iter()
                    .map(|&(k, _)| dict.tensor(k))
                    .collect::<::core::result::Result<_, _>>()?;
                Ok(#name { weights })
            }

            /// A model with deterministic pseudo-random weights (BatchNorm statistics in their
            /// usual ranges), for tests and benchmarks.
            pub fn random(seed: u64) -> Self {
                let weights = Self::STATE_DICT
                    .iter()
                    .map(|&(k, d)| ::resnext_runtime::safetensors::random_tensor(k, d, seed))
                    .collect();
                #name { weights }
            }

            /// The state_dict tensor `key`'s values, if the model reads it.
            pub fn tensor(&self, key: &str) -> ::core::option::Option<&[f32]> {
                Self::STATE_DICT
                    .iter()
                    .position(|&(k, _)| k == key)
                    .map(|i| self.weights[i].as_slice())
            }
        }
    })
}
