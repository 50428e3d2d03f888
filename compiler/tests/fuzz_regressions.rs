//! Inputs that once crashed, hung or exhausted memory in the `onnx_import` fuzzer
//! (`fuzz/fuzz_targets/onnx_import.rs`), kept in `testdata/fuzz/onnx_import/`: each must now be
//! rejected with an error by the same pipeline (import → validate → passes → validate), in time.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use resnext_compiler::driver::{self, Options};
use resnext_compiler::front::onnx;
use resnext_compiler::ir;

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
fn past_crashers_are_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/onnx_import");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    eprintln!("{} regression inputs in {}", files.len(), dir.display());
    for path in files {
        let bytes = std::fs::read(&path).expect("read regression input");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(pipeline(&bytes));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(error)) => eprintln!("{}: {error}", path.display()),
            Ok(None) => panic!("{}: accepted", path.display()),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{}: hung (> 60 s)", path.display()),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: panicked", path.display()),
        }
    }
}
