//! Errors a generated model returns from `forward`: bad input sizes, or a kernel that refused its
//! arguments (which would mean a compiler bug, and names the node).

use crate::kernels::KernelError;

/// Why a forward pass did not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("batch size must be at least 1")]
    ZeroBatch,
    #[error(
        "input has {actual} floats; batch {batch} needs {expected} ({per_item} per item, shape {shape:?})"
    )]
    InputLength {
        batch: usize,
        per_item: usize,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("output buffer has {actual} floats; batch {batch} needs {expected}")]
    OutputLength {
        batch: usize,
        expected: usize,
        actual: usize,
    },
    #[error("node `{node}`: {source}")]
    Kernel {
        node: &'static str,
        #[source]
        source: KernelError,
    },
}

impl RunError {
    /// Checks an input buffer against `batch` items of `shape` (per item).
    pub fn check_input(shape: &[usize], batch: usize, actual: usize) -> Result<(), RunError> {
        if batch == 0 {
            return Err(RunError::ZeroBatch);
        }
        let per_item: usize = shape.iter().product();
        let expected = per_item.checked_mul(batch);
        if expected != Some(actual) {
            return Err(RunError::InputLength {
                batch,
                per_item,
                shape: shape.to_vec(),
                expected: expected.unwrap_or(usize::MAX),
                actual,
            });
        }
        Ok(())
    }

    /// Checks an output buffer against `batch` items of `per_item` floats.
    pub fn check_output(per_item: usize, batch: usize, actual: usize) -> Result<(), RunError> {
        let expected = per_item.saturating_mul(batch);
        if expected != actual {
            return Err(RunError::OutputLength {
                batch,
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// A closure that wraps a kernel error with the node's name, for `map_err`.
    pub fn at(node: &'static str) -> impl Fn(KernelError) -> RunError {
        move |source| RunError::Kernel { node, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_checks() {
        assert_eq!(
            RunError::check_input(&[3, 2], 0, 0),
            Err(RunError::ZeroBatch)
        );
        assert!(RunError::check_input(&[3, 2], 2, 12).is_ok());
        let e = RunError::check_input(&[3, 2], 2, 11).unwrap_err();
        assert!(e.to_string().contains("needs 12"), "{e}");
        assert!(RunError::check_output(5, 2, 9).is_err());
    }
}
