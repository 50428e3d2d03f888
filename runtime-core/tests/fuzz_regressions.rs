//! Replays the committed corpus of the `weights_load` fuzzer (`fuzz/fuzz_targets/weights_load.rs`),
//! `testdata/fuzz/weights_load/`, both as each file is and with its checksum recomputed (the
//! fuzzer's two paths): every input must load or be rejected with an error, in time and without a
//! panic, and a file that loads must hand out every tensor with the length its dims say. Past
//! crashers (libFuzzer's `crash-…`, `timeout-…`, `slow-unit-…` artifacts) must be rejected. The corpus
//! must exist and not be empty; `fuzz/README.md` says how to rebuild it.

use std::path::Path;
use std::time::Duration;

use resnext_runtime_core::Weights;
use resnext_test_support::{corpus, within};

fn claimed_hash(bytes: &[u8]) -> u64 {
    bytes
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Loads `bytes` against `hash`: `Ok(true)` if it loads (and every tensor checks out), `Ok(false)`
/// if it is rejected with an error, `Err` for a loaded file whose tensors disagree with their dims.
fn load(bytes: &[u8], hash: u64) -> Result<bool, String> {
    match Weights::from_bytes(bytes, hash) {
        Ok(w) => {
            for i in 0..w.len() {
                let info = w
                    .info(i)
                    .ok_or(format!("tensor {i} of {} has no info", w.len()))?;
                let expected: usize = info.dims.iter().product();
                if w.tensor(i).len() != expected {
                    return Err(format!(
                        "tensor {i}: {} values, dims {:?}",
                        w.tensor(i).len(),
                        info.dims
                    ));
                }
            }
            Ok(true)
        }
        Err(e) => {
            if e.to_string().trim().is_empty() {
                return Err("rejected without a message".into());
            }
            Ok(false)
        }
    }
}

#[test]
fn corpus_replays_without_panics_or_hangs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/weights_load");
    let files = corpus(&dir);
    let mut loaded = 0;
    for file in &files {
        let what = file.path.display().to_string();
        let mut bytes = std::fs::read(&file.path).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (raw, sealed) = within(&what, Duration::from_secs(60), move || {
            let hash = claimed_hash(&bytes);
            let raw = load(&bytes, hash);
            if bytes.len() >= 4 {
                let n = bytes.len() - 4;
                let sum = resnext_runtime_core::formats::weights::checksum(&bytes[..n]);
                bytes[n..].copy_from_slice(&sum.to_le_bytes());
            }
            (raw, load(&bytes, hash))
        });
        let raw = raw.unwrap_or_else(|e| panic!("{what}: {e}"));
        let sealed = sealed.unwrap_or_else(|e| panic!("{what} (checksum recomputed): {e}"));
        if file.past_crasher {
            assert!(!sealed, "{what}: a past crasher loads");
        }
        loaded += usize::from(raw || sealed);
    }
    eprintln!(
        "{} inputs in {}: {loaded} load on at least one path",
        files.len(),
        dir.display()
    );
}
