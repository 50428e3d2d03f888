//! Placeholder until the DSL issue lands.
use proc_macro::TokenStream;

/// Declares a ResNeXt model (not implemented yet).
#[proc_macro]
pub fn resnext(_input: TokenStream) -> TokenStream {
    "compile_error!(\"resnext! is not implemented yet\");"
        .parse()
        .unwrap_or_default()
}
