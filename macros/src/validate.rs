//! Turns the parsed fields into a [`ModelSpec`], collecting every error (unknown, duplicate, missing
//! or mistyped field; the spec's own problems) with the span of the user's tokens it is about.

use proc_macro2::Span;
use quote::ToTokens;
use resnext_compiler::front::dsl::{Field, ModelSpec, Stem};
use resnext_compiler::passes::Precision;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, Lit};

use crate::parse::{FieldDecl, ModelDecl};

const REQUIRED: &[&str] = &["input", "stages", "cardinality", "width", "classes"];
const OPTIONAL: &[&str] = &["stem", "bottleneck", "bn_epsilon", "precision"];

/// Upper bounds on the declared sizes. Every channel count, weight size and multiply-accumulate
/// count the compiler derives from them then stays far inside 64 bits (a grouped conv of the widest
/// stage has at most `MAX_CHANNELS²·9·MAX_SIDE²` MACs), while the largest published ResNeXts
/// (ResNeXt-101 64×4d: 2048 grouped channels, 23 blocks) sit well below them.
const MAX_SIDE: usize = 4096;
const MAX_BLOCKS: usize = 64;
const MAX_CHANNELS: usize = 8192;
const MAX_CLASSES: usize = 1 << 20;

/// Collects errors; the first becomes the combined error, the rest are appended to it.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
}

/// The declared spec, or every error found in the declaration.
pub fn validate(decl: &ModelDecl) -> Result<ModelSpec, syn::Error> {
    let mut errors = Errors::default();
    let mut seen: Vec<&FieldDecl> = Vec::new();
    for f in &decl.fields {
        let name = f.name.to_string();
        if !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()) {
            errors.at(
                &f.name,
                format!(
                    "unknown field `{name}`; the fields are {}",
                    REQUIRED
                        .iter()
                        .chain(OPTIONAL)
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        } else if seen.iter().any(|s| s.name == f.name) {
            errors.at(&f.name, format!("duplicate field `{name}`"));
        } else {
            seen.push(f);
        }
    }
    let get = |name: &str| seen.iter().find(|f| f.name == name).copied();
    for &name in REQUIRED {
        let has_width_alternative = name == "width" && get("bottleneck").is_some();
        if get(name).is_none() && !has_width_alternative {
            errors.push(syn::Error::new(
                decl.name.span(),
                format!("missing field `{name}` in model `{}`", decl.name),
            ));
        }
    }

    let input = get("input")
        .and_then(|f| fixed_array::<3>(f, "[channels, height, width]", &mut errors))
        .and_then(|dims| {
            let a = get("input").map(|f| &f.value);
            let ok = ["channels", "height", "width"]
                .iter()
                .zip(dims)
                .enumerate()
                .fold(true, |ok, (i, (what, d))| {
                    at_most(d, MAX_SIDE, what, element(a, i), &mut errors) && ok
                });
            ok.then_some(dims)
        });
    let stages = get("stages")
        .and_then(|f| int_array(f, &mut errors))
        .and_then(|blocks| {
            let a = get("stages").map(|f| &f.value);
            let ok = blocks.iter().enumerate().fold(true, |ok, (i, &n)| {
                at_most(
                    n,
                    MAX_BLOCKS,
                    "blocks in a stage",
                    element(a, i),
                    &mut errors,
                ) && ok
            });
            ok.then_some(blocks)
        });
    let int = |name: &str, max: usize, errors: &mut Errors| {
        let f = get(name)?;
        integer(&f.value, errors).filter(|&n| at_most(n, max, name, &f.value, errors))
    };
    let cardinality = int("cardinality", MAX_CHANNELS, &mut errors);
    let mut width = int("width", MAX_CHANNELS, &mut errors);
    let classes = int("classes", MAX_CLASSES, &mut errors);
    let bottleneck = int("bottleneck", MAX_CHANNELS, &mut errors);
    let stem = get("stem").and_then(|f| stem(&f.value, &mut errors));
    let bn_epsilon = get("bn_epsilon").and_then(|f| float(&f.value, &mut errors));
    let precision = get("precision").and_then(|f| precision(&f.value, &mut errors));

    if let (Some(total), Some(c), Some(f)) = (bottleneck, cardinality, get("bottleneck")) {
        let card = get("cardinality").map(|f| &f.value);
        if c == 0 {
            // Reported by the spec's own check below.
        } else if total % c != 0 {
            errors.at(
                card,
                format!("cardinality ({c}) must divide the bottleneck width ({total})"),
            );
        } else if let Some(d) = width {
            match d.checked_mul(c) {
                Some(product) if product == total => {}
                Some(product) => errors.at(
                    &f.value,
                    format!(
                        "bottleneck ({total}) must equal cardinality × width ({c} × {d} = {product})"
                    ),
                ),
                None => errors.at(
                    &f.value,
                    format!(
                        "bottleneck ({total}) must equal cardinality × width ({c} × {d}, which \
                         overflows)"
                    ),
                ),
            }
        } else {
            width = Some(total / c);
        }
    }

    // The grouped width doubles with each stage: bound the widest one the spec can build.
    if let (Some(blocks), Some(c), Some(d)) = (&stages, cardinality, width) {
        let deepest = blocks.len().clamp(1, 8) - 1;
        let widest = (ModelSpec::planes(deepest) * d / 64).checked_mul(c);
        if widest.is_none_or(|n| n > MAX_CHANNELS) {
            let at = get("width").or(get("bottleneck")).or(get("cardinality"));
            errors.push(syn::Error::new(
                at.map_or(decl.name.span(), |f| f.value.span()),
                format!(
                    "stage {} would have {} grouped channels (cardinality {c} × width {d} × {}); \
                     at most {MAX_CHANNELS} are supported",
                    deepest + 1,
                    widest.map_or("more than usize::MAX".into(), |n| n.to_string()),
                    1usize << deepest
                ),
            ));
            width = None;
        }
    }

    let (Some(input), Some(stages), Some(cardinality), Some(width), Some(classes)) =
        (input, stages, cardinality, width, classes)
    else {
        return Err(errors
            .0
            .unwrap_or_else(|| syn::Error::new(decl.name.span(), "invalid model declaration")));
    };
    let mut spec = ModelSpec::new(
        decl.name.to_string(),
        input,
        stages,
        cardinality,
        width,
        classes,
    );
    if let Some(s) = stem {
        spec.stem = s;
    }
    if let Some(e) = bn_epsilon {
        spec.bn_epsilon = e;
    }
    if let Some(p) = precision {
        spec.precision = p;
    }
    for p in spec.problems() {
        let field = match p.field {
            Field::Input => "input",
            Field::Stages => "stages",
            Field::Cardinality => "cardinality",
            Field::Width => {
                if get("width").is_some() {
                    "width"
                } else {
                    "bottleneck"
                }
            }
            Field::Classes => "classes",
            Field::Stem => "stem",
            Field::BnEpsilon => "bn_epsilon",
        };
        let span = get(field).map_or(decl.name.span(), |f| element_span(&f.value, p.index));
        errors.push(syn::Error::new(span, p.message));
    }
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(spec),
    }
}

/// Whether `value` is at most `max`; if not, an error at `tokens` says so.
fn at_most(
    value: usize,
    max: usize,
    what: &str,
    tokens: impl ToTokens,
    errors: &mut Errors,
) -> bool {
    if value > max {
        errors.at(
            tokens,
            format!("{what} ({value}) is above the supported maximum of {max}"),
        );
    }
    value <= max
}

/// Element `index` of an array value, or the whole value (or nothing) when it is not an array.
fn element(value: Option<&Expr>, index: usize) -> Option<&Expr> {
    match value {
        Some(Expr::Array(a)) => a.elems.iter().nth(index),
        other => other,
    }
}

/// The span of element `index` of an array value, or of the whole value.
fn element_span(value: &Expr, index: Option<usize>) -> Span {
    match (value, index) {
        (Expr::Array(a), Some(i)) => a.elems.iter().nth(i).map_or(value.span(), |e| e.span()),
        _ => value.span(),
    }
}

fn integer(value: &Expr, errors: &mut Errors) -> Option<usize> {
    if let Expr::Lit(lit) = value
        && let Lit::Int(i) = &lit.lit
    {
        return match i.base10_parse::<usize>() {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(e);
                None
            }
        };
    }
    errors.at(value, "expected a non-negative integer literal");
    None
}

fn float(value: &Expr, errors: &mut Errors) -> Option<f32> {
    if let Expr::Lit(lit) = value {
        let parsed = match &lit.lit {
            Lit::Float(f) => Some(f.base10_parse::<f32>()),
            Lit::Int(i) => Some(i.base10_parse::<f32>()),
            _ => None,
        };
        match parsed {
            Some(Ok(x)) => return Some(x),
            Some(Err(e)) => {
                errors.push(e);
                return None;
            }
            None => {}
        }
    }
    errors.at(value, "expected a number such as `1e-5`");
    None
}

fn array<'a>(f: &'a FieldDecl, what: &str, errors: &mut Errors) -> Option<&'a ExprArray> {
    match &f.value {
        Expr::Array(a) => Some(a),
        other => {
            errors.at(other, format!("expected an array `{what}`"));
            None
        }
    }
}

fn int_array(f: &FieldDecl, errors: &mut Errors) -> Option<Vec<usize>> {
    let a = array(f, "[blocks, ...]", errors)?;
    let values: Vec<_> = a.elems.iter().map(|e| integer(e, errors)).collect();
    values.into_iter().collect()
}

fn fixed_array<const N: usize>(
    f: &FieldDecl,
    what: &str,
    errors: &mut Errors,
) -> Option<[usize; N]> {
    let a = array(f, what, errors)?;
    if a.elems.len() != N {
        errors.at(
            a,
            format!("expected {N} values `{what}`, found {}", a.elems.len()),
        );
        return None;
    }
    let values: Option<Vec<usize>> = a.elems.iter().map(|e| integer(e, errors)).collect();
    values?.try_into().ok()
}

fn stem(value: &Expr, errors: &mut Errors) -> Option<Stem> {
    if let Expr::Path(p) = value
        && let Some(ident) = p.path.get_ident()
    {
        match ident.to_string().as_str() {
            "imagenet" => return Some(Stem::ImageNet),
            "cifar" => return Some(Stem::Cifar),
            _ => {}
        }
    }
    errors.at(value, "expected `imagenet` or `cifar`");
    None
}

/// `fp32` or `bf16` (`Precision::parse`); `int8` is refused: it needs calibration items or a QDQ
/// model, and a declared model's weights are only known at run time.
fn precision(value: &Expr, errors: &mut Errors) -> Option<Precision> {
    if let Expr::Path(p) = value
        && let Some(ident) = p.path.get_ident()
    {
        return match Precision::parse(&ident.to_string()) {
            Ok(Precision::Int8) => {
                errors.at(
                    value,
                    "precision `int8` is not supported yet; use `fp32` or `bf16`",
                );
                None
            }
            Ok(p) => Some(p),
            Err(message) => {
                errors.at(value, message);
                None
            }
        };
    }
    errors.at(value, "expected `fp32` or `bf16`");
    None
}
