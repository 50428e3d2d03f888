//! `resnextc compile --check`: runs the compiled graph (the kernels `select-kernels` and
//! `pack-int8` chose, at the compiled precision) and the model as imported (every layer on the
//! reference kernels, fp32 for an fp32 model) on the same items with the reference interpreter, and
//! measures how far the compiled outputs are from the reference ones.

use std::fmt;

use crate::interp::{self, InterpError};
use crate::ir::{self, Graph, IrErrors};
use crate::passes::{CalibrateError, Samples};

/// How one model output of the compiled graph compares with the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputCheck {
    pub name: String,
    /// `[N, …]` of the items checked.
    pub dims: Vec<usize>,
    /// `max |compiled − reference|`; NaN if either side has a NaN the other lacks.
    pub max_abs_err: f32,
    /// `max |reference|`.
    pub max_abs_ref: f32,
    /// Items whose argmax (over the item's values) is the same in both, NaN never agreeing.
    pub top1_agree: usize,
    pub items: usize,
}

impl OutputCheck {
    /// `max_abs_err / max_abs_ref` (the error relative to the output's scale).
    pub fn relative_err(&self) -> f32 {
        self.max_abs_err / self.max_abs_ref
    }

    /// The fraction of items whose top-1 agrees.
    pub fn top1(&self) -> f64 {
        self.top1_agree as f64 / self.items as f64
    }
}

/// Every output's comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    pub items: usize,
    pub outputs: Vec<OutputCheck>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outputs {
            writeln!(
                f,
                "output `{}` {:?}: max abs err {:.4e}, max |reference| {:.4e}, err / max |reference| \
                 {:.4e}, top-1 agreement {}/{} ({:.1}%)",
                o.name,
                o.dims,
                o.max_abs_err,
                o.max_abs_ref,
                o.relative_err(),
                o.top1_agree,
                o.items,
                100.0 * o.top1()
            )?;
        }
        Ok(())
    }
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Samples(#[from] CalibrateError),
    #[error("the {which} graph is invalid: {errors}")]
    Invalid {
        which: &'static str,
        errors: IrErrors,
    },
    #[error("running the {which} graph: {source}")]
    Interp {
        which: &'static str,
        #[source]
        source: InterpError,
    },
    #[error("the compiled graph has {compiled} outputs, the reference {reference}")]
    OutputCount { compiled: usize, reference: usize },
}

/// Runs `compiled` and `reference` (same inputs and outputs) on `samples` and compares each output.
pub fn check(
    reference: &Graph,
    compiled: &Graph,
    samples: &Samples,
) -> Result<CheckReport, CheckError> {
    samples.check_against(reference)?;
    samples.check_against(compiled)?;
    let items = samples.items();
    let run = |which: &'static str, g: &Graph| {
        let info = ir::validate(g).map_err(|errors| CheckError::Invalid { which, errors })?;
        interp::run(g, &info, &[&samples.data], items)
            .map_err(|source| CheckError::Interp { which, source })
    };
    let want = run("reference", reference)?;
    let got = run("compiled", compiled)?;
    if want.len() != got.len() {
        return Err(CheckError::OutputCount {
            compiled: got.len(),
            reference: want.len(),
        });
    }
    let outputs = compiled
        .outputs
        .iter()
        .zip(got.iter().zip(&want))
        .map(|((id, name), (got, want))| {
            let dims = interp::dims(&compiled.node(*id).output, items);
            compare(name, dims, items, got, want)
        })
        .collect();
    Ok(CheckReport { items, outputs })
}

fn compare(name: &str, dims: Vec<usize>, items: usize, got: &[f32], want: &[f32]) -> OutputCheck {
    let mut max_abs_err = 0.0f32;
    for (&g, &w) in got.iter().zip(want) {
        let d = (g - w).abs();
        // NaN on one side only is an infinite error; on both sides, a match.
        let d = if g.is_nan() != w.is_nan() {
            f32::NAN
        } else if g.is_nan() || g == w {
            0.0
        } else {
            d
        };
        max_abs_err = if d.is_nan() || max_abs_err.is_nan() {
            f32::NAN
        } else {
            max_abs_err.max(d)
        };
    }
    if got.len() != want.len() {
        max_abs_err = f32::NAN;
    }
    let max_abs_ref = want.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let per_item = want.len() / items.max(1);
    let top1_agree = (0..items)
        .filter(|&i| {
            let range = i * per_item..(i + 1) * per_item;
            match (
                got.get(range.clone()).and_then(argmax),
                want.get(range).and_then(argmax),
            ) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        })
        .count();
    OutputCheck {
        name: name.to_string(),
        dims,
        max_abs_err,
        max_abs_ref,
        top1_agree,
        items,
    }
}

/// The index of the largest value; `None` for an empty slice or one holding a NaN.
fn argmax(v: &[f32]) -> Option<usize> {
    if v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    (!v.is_empty()).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_measures_error_and_top1_and_nan_fails() {
        let want = [1.0, 3.0, 2.0, 0.5, 0.2, 0.1];
        let got = [1.1, 2.9, 2.0, 0.1, 0.3, 0.1];
        let c = compare("y", vec![2, 3], 2, &got, &want);
        assert!((c.max_abs_err - 0.4).abs() < 1e-6, "{c:?}");
        assert_eq!(c.max_abs_ref, 3.0);
        assert_eq!(c.top1_agree, 1);
        let mut nan = got;
        nan[0] = f32::NAN;
        let c = compare("y", vec![2, 3], 2, &nan, &want);
        assert!(c.max_abs_err.is_nan());
        assert_eq!(c.top1_agree, 0);
    }
}
