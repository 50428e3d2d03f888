//! Replays the committed corpus of the `onnx_import` fuzzer (`fuzz/fuzz_targets/onnx_import.rs`),
//! `testdata/fuzz/onnx_import/`, through the same pipeline (import → validate → passes →
//! validate): every input must finish in time without a panic, either accepted or rejected with an
//! error. Past crashers (libFuzzer's `crash-…`, `timeout-…`, `slow-unit-…` artifacts) must be
//! rejected. The corpus must exist and not be empty; `fuzz/README.md` says how to rebuild it.

use std::path::Path;
use std::time::Duration;

use resnext_compiler::driver::{self, Options};
use resnext_compiler::front::onnx;
use resnext_compiler::ir;
use resnext_test_support::{corpus, within};

/// What the fuzz target does, returning the first error as text (or `None` when all stages pass).
fn pipeline(bytes: &[u8]) -> Option<String> {
    let graph = match onnx::from_bytes(bytes, None) {
        Ok(graph) => graph,
        Err(e) => return Some(e.to_string()),
    };
    let validated = ir::validate(&graph).err().map(|e| e.to_string());
    match driver::compile(graph, &Options::default()) {
        Ok(_) => validated,
        Err(e) => Some(format!("{:#}", anyhow::Error::new(e))),
    }
}

#[test]
fn corpus_replays_without_panics_or_hangs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/onnx_import");
    let files = corpus(&dir);
    let (mut accepted, mut rejected) = (0, 0);
    for file in &files {
        let what = file.path.display().to_string();
        let bytes = std::fs::read(&file.path).unwrap_or_else(|e| panic!("{what}: {e}"));
        match within(&what, Duration::from_secs(60), move || pipeline(&bytes)) {
            Some(error) => {
                assert!(
                    !error.trim().is_empty(),
                    "{what}: rejected without a message"
                );
                rejected += 1;
            }
            None => {
                assert!(!file.past_crasher, "{what}: a past crasher is accepted");
                accepted += 1;
            }
        }
    }
    eprintln!(
        "{} inputs in {}: {accepted} accepted, {rejected} rejected",
        files.len(),
        dir.display()
    );
}
