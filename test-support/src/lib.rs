//! Helpers shared by the test crates of the workspace (a dev-dependency only, never published).
//!
//! Output comparisons: `f32::max` ignores NaN, so a fold of `(a - b).abs()` with it reports an
//! all-NaN output as an exact match. Every comparison here treats a non-finite value on either side
//! as an infinitely large error, and a length mismatch as a failure, so a broken kernel cannot pass
//! for a correct one. Gated tests: [`models_dir`] and [`require`] turn a missing prerequisite of a
//! test that was asked to run (`cargo test -- --ignored`) into a failure that says what is missing.
//! Fuzz corpora: [`corpus`] lists a committed corpus (failing when it is missing or empty) and
//! [`within`] runs one input under a time limit, turning a hang or a panic into a failure.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Where two outputs differ most, and the scale the difference is judged against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// `max |got[i] − want[i]|`.
    pub max_abs_diff: f32,
    /// The first index where that maximum is reached.
    pub index: usize,
    /// `max |want[i]|`.
    pub scale: f32,
}

/// Why two outputs cannot be compared numerically.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The outputs have different lengths.
    Length { got: usize, want: usize },
    /// `got[index]` or `want[index]` is NaN or infinite.
    NonFinite { index: usize, got: f32, want: f32 },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Mismatch::Length { got, want } => {
                write!(f, "length {got}, expected {want}")
            }
            Mismatch::NonFinite { index, got, want } => {
                write!(
                    f,
                    "non-finite value at index {index}: got {got}, expected {want}"
                )
            }
        }
    }
}

/// Compares `got` with `want` element by element. Errors on a length mismatch and on the first
/// index where either side is NaN or infinite.
pub fn compare(got: &[f32], want: &[f32]) -> Result<Diff, Mismatch> {
    if got.len() != want.len() {
        return Err(Mismatch::Length {
            got: got.len(),
            want: want.len(),
        });
    }
    let mut diff = Diff {
        max_abs_diff: 0.0,
        index: 0,
        scale: 0.0,
    };
    for (index, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !g.is_finite() || !w.is_finite() {
            return Err(Mismatch::NonFinite {
                index,
                got: g,
                want: w,
            });
        }
        let d = (g - w).abs();
        if d > diff.max_abs_diff {
            diff.max_abs_diff = d;
            diff.index = index;
        }
        diff.scale = diff.scale.max(w.abs());
    }
    Ok(diff)
}

/// `max |got[i] − want[i]|`, or NaN when the lengths differ or any value on either side is NaN or
/// infinite, so that every `max_abs_diff(..) <= tolerance` check fails on such outputs.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    compare(got, want).map_or(f32::NAN, |d| d.max_abs_diff)
}

/// `max |v|`, or NaN when any value is NaN or infinite.
pub fn max_abs(values: &[f32]) -> f32 {
    values
        .iter()
        .try_fold(0.0f32, |m, v| v.is_finite().then(|| m.max(v.abs())))
        .unwrap_or(f32::NAN)
}

/// `max |got − want| / max |want|` (with the scale floored at the smallest normal float), or NaN
/// where [`max_abs_diff`] is NaN.
pub fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    compare(got, want).map_or(f32::NAN, |d| {
        d.max_abs_diff / d.scale.max(f32::MIN_POSITIVE)
    })
}

/// Asserts `max |got − want| ≤ rel_tol × max |want|` and returns the [`Diff`]. Panics, naming
/// `what`, on a length mismatch, on NaN or infinity on either side, and when the error is too large
/// (with the error, where it is, and the scale).
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], rel_tol: f32, what: &str) -> Diff {
    assert_within(got, want, rel_tol, 0.0, what)
}

/// Like [`assert_close`], with the scale floored at `min_scale`: `max |got − want| ≤ rel_tol ×
/// max(max |want|, min_scale)`, for outputs whose values may all be near zero.
#[track_caller]
pub fn assert_within(got: &[f32], want: &[f32], rel_tol: f32, min_scale: f32, what: &str) -> Diff {
    let diff = compare(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    let bound = rel_tol * diff.scale.max(min_scale);
    assert!(
        diff.max_abs_diff <= bound,
        "{what}: max abs error {:e} at index {} (got {}, expected {}) > {rel_tol:e} × scale {}",
        diff.max_abs_diff,
        diff.index,
        got[diff.index],
        want[diff.index],
        diff.scale.max(min_scale),
    );
    diff
}

/// The directory of the unpacked shared models (`RESNEXT_MODELS`). The tests that need it are
/// `#[ignore = "needs RESNEXT_MODELS"]`; run on request without it, they fail here.
#[track_caller]
pub fn models_dir() -> PathBuf {
    match std::env::var_os("RESNEXT_MODELS") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "RESNEXT_MODELS={} is not a directory (unpack the shared models there)",
                dir.display()
            );
            dir
        }
        _ => panic!(
            "this test needs the shared models: set RESNEXT_MODELS to the directory they are \
             unpacked in"
        ),
    }
}

/// Fails the running (ignored, explicitly requested) test when its prerequisite is missing:
/// `check` gives the reason it is unavailable.
#[track_caller]
pub fn require<E: fmt::Display>(what: &str, check: Result<(), E>) {
    if let Err(e) = check {
        panic!("this test needs {what}: {e}");
    }
}

/// The prefixes libFuzzer gives the inputs that crashed, hung, leaked or ran out of memory or time.
const ARTIFACT_PREFIXES: [&str; 5] = ["crash-", "timeout-", "oom-", "slow-unit-", "leak-"];

/// One file of a fuzz corpus.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    pub path: PathBuf,
    /// A libFuzzer artifact (a past crasher, named `crash-…`, `timeout-…`, `slow-unit-…`, …)
    /// rather than an input the fuzzer kept for its coverage.
    pub past_crasher: bool,
}

/// The files of the fuzz corpus `dir`, sorted. Panics when the directory is missing or empty: a
/// replay of nothing must not pass.
#[track_caller]
pub fn corpus(dir: &Path) -> Vec<CorpusFile> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "fuzz corpus {}: {e} (see fuzz/README.md to rebuild it)",
            dir.display()
        )
    });
    let mut files: Vec<CorpusFile> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display())))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            CorpusFile {
                past_crasher: ARTIFACT_PREFIXES.iter().any(|p| name.starts_with(p)),
                path: e.path(),
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
}

/// Runs `f` on its own thread and returns its result; panics, naming `what`, when it takes longer
/// than `limit` (the thread is left running) or panics itself.
#[track_caller]
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung (more than {limit:?})"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = worker.join().err();
            let message = payload
                .as_ref()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                })
                .unwrap_or("(no message)");
            panic!("{what}: panicked: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_outputs_are_close() {
        let want = [1.0, -2.0, 3.0];
        let d = assert_close(&want, &want, 0.0, "same");
        assert_eq!(d.max_abs_diff, 0.0);
        assert_eq!(d.scale, 3.0);
    }

    #[test]
    fn reports_the_largest_error_and_its_index() {
        let d = compare(&[1.0, 2.5, 3.0], &[1.0, 2.0, 3.1]).unwrap();
        assert_eq!(d.index, 1);
        assert_eq!(d.max_abs_diff, 0.5);
        assert!((d.scale - 3.1).abs() < 1e-6);
    }

    #[test]
    fn all_nan_output_is_never_close() {
        let want = vec![0.5f32; 8];
        let got = vec![f32::NAN; 8];
        assert!(max_abs_diff(&got, &want).is_nan());
        // The way the callers test it: the bound check must fail.
        let within_bound = max_abs_diff(&got, &want) <= 1e-4;
        assert!(!within_bound);
        assert!(rel_diff(&got, &want).is_nan());
        assert!(max_abs(&got).is_nan());
        match compare(&got, &want) {
            Err(Mismatch::NonFinite {
                index: 0,
                got,
                want,
            }) => {
                assert!(got.is_nan());
                assert_eq!(want, 0.5);
            }
            other => panic!("all-NaN output compared as {other:?}"),
        }
        let panicked = std::panic::catch_unwind(|| assert_close(&got, &want, 1.0, "all NaN"));
        let message = panicked.expect_err("an all-NaN output must fail");
        let text = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(
            text.contains("all NaN: non-finite value at index 0"),
            "{text}"
        );
    }

    #[test]
    fn nan_or_infinity_anywhere_fails() {
        let want = [1.0f32, 2.0, 3.0];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut got = want;
            got[2] = bad;
            assert!(max_abs_diff(&got, &want).is_nan(), "{bad} in got");
            assert!(max_abs_diff(&want, &got).is_nan(), "{bad} in want");
            let r = std::panic::catch_unwind(|| assert_close(&got, &want, 1e9, "x"));
            assert!(r.is_err(), "{bad} in got passed");
            let r = std::panic::catch_unwind(|| assert_close(&want, &got, 1e9, "x"));
            assert!(r.is_err(), "{bad} in want passed");
        }
    }

    #[test]
    fn length_mismatch_fails() {
        assert!(max_abs_diff(&[1.0], &[1.0, 2.0]).is_nan());
        assert!(max_abs_diff(&[], &[1.0]).is_nan());
        let r = std::panic::catch_unwind(|| assert_close(&[1.0, 2.0], &[1.0], 1.0, "len"));
        assert!(r.is_err());
    }

    #[test]
    fn too_large_an_error_fails_and_says_where() {
        let r = std::panic::catch_unwind(|| {
            assert_close(&[1.0, 2.0, 4.0], &[1.0, 2.0, 3.0], 1e-4, "logits")
        });
        let message = r.expect_err("error 1 > 1e-4 × 3");
        let text = message.downcast_ref::<String>().unwrap();
        assert!(
            text.contains("logits: max abs error 1e0 at index 2"),
            "{text}"
        );
        assert!(text.contains("scale 3"), "{text}");
    }

    #[test]
    fn a_missing_or_empty_corpus_fails() {
        let dir = std::env::temp_dir().join(format!("resnext-empty-corpus-{}", std::process::id()));
        let missing = std::panic::catch_unwind(|| corpus(&dir));
        assert!(missing.is_err());
        std::fs::create_dir_all(&dir).unwrap();
        let empty = std::panic::catch_unwind(|| corpus(&dir));
        std::fs::write(dir.join("crash-0123"), b"x").unwrap();
        std::fs::write(dir.join("0123abcd"), b"y").unwrap();
        let files = corpus(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(empty.is_err());
        assert_eq!(files.len(), 2);
        assert!(!files[0].past_crasher && files[1].past_crasher, "{files:?}");
    }

    #[test]
    fn within_fails_on_a_hang_or_a_panic() {
        assert_eq!(within("quick", Duration::from_secs(10), || 7), 7);
        let hang = std::panic::catch_unwind(|| {
            within("slow", Duration::from_millis(10), || {
                std::thread::sleep(Duration::from_secs(2))
            })
        });
        assert!(hang.is_err());
        let panic =
            std::panic::catch_unwind(|| within("bad", Duration::from_secs(10), || panic!("boom")));
        let message = panic.expect_err("a panic inside must fail");
        let text = message.downcast_ref::<String>().unwrap();
        assert!(text.contains("bad: panicked: boom"), "{text}");
    }

    #[test]
    fn min_scale_floors_the_scale() {
        assert_within(&[1e-5], &[0.0], 1e-4, 1.0, "near zero");
        let r = std::panic::catch_unwind(|| assert_close(&[1e-5], &[0.0], 1e-4, "zero scale"));
        assert!(r.is_err());
    }
}
