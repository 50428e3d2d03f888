//! The `resnext!` proc-macro: declare a ResNeXt (stage depths, cardinality, width, classes) in Rust
//! and get a model type compiled by `resnext-compiler` at build time.
//!
//! ```ignore
//! resnext_macros::resnext! {
//!     /// ResNeXt-50 (32×4d), the paper's Table 1
//!     pub model ResNeXt50 {
//!         input: [3, 224, 224],   // [channels, height, width] of one image
//!         stages: [3, 4, 6, 3],   // bottleneck blocks per stage
//!         cardinality: 32,        // C: groups of each grouped 3×3 conv
//!         width: 4,               // d: channels per group in the first stage
//!         classes: 1000,
//!         // optional:
//!         stem: imagenet,         // or `cifar` (3×3 conv, no max-pool); default `imagenet`
//!         bottleneck: 128,        // C·d of the first stage, instead of `width`
//!         bn_epsilon: 1e-5,       // BatchNorm epsilon; default 1e-5
//!     }
//! }
//! ```
//! Every declaration error points at the user's tokens; all of them are reported at once.

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Declares a ResNeXt model; see the crate documentation for the fields.
#[proc_macro]
pub fn resnext(input: TokenStream) -> TokenStream {
    let decl = syn::parse_macro_input!(input as parse::ModelDecl);
    expand::expand(decl)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
