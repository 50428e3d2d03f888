//! Parsing `resnext!`'s input: doc comments and attributes, `pub model NAME { field: value, ... }`.
//! Values stay expressions here; `validate` interprets them so every error can point at one.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Token, Visibility, braced};

syn::custom_keyword!(model);

/// The whole macro input.
pub struct ModelDecl {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
}

/// One `name: value` line.
pub struct FieldDecl {
    pub name: Ident,
    pub value: Expr,
}

impl Parse for ModelDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<model>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let fields = Punctuated::<FieldDecl, Token![,]>::parse_terminated(&body)?
            .into_iter()
            .collect();
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the model declaration"));
        }
        Ok(ModelDecl {
            attrs,
            vis,
            name,
            fields,
        })
    }
}

impl Parse for FieldDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let value: Expr = input.parse()?;
        Ok(FieldDecl { name, value })
    }
}
