//! Inputs that once crashed, hung or exhausted memory in the `weights_load` fuzzer
//! (`fuzz/fuzz_targets/weights_load.rs`), kept in `testdata/fuzz/weights_load/`: each must now load
//! to an error, both as it is and with its checksum recomputed (the fuzzer's two paths).

use std::path::Path;

use resnext_runtime::Weights;

fn claimed_hash(bytes: &[u8]) -> u64 {
    bytes
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[test]
fn past_crashers_are_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/weights_load");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    eprintln!("{} regression inputs in {}", files.len(), dir.display());
    for path in files {
        let mut bytes = std::fs::read(&path).expect("read regression input");
        let hash = claimed_hash(&bytes);
        let raw = Weights::from_bytes(&bytes, hash);
        if bytes.len() >= 4 {
            let n = bytes.len() - 4;
            let sum = resnext_runtime::formats::weights::checksum(&bytes[..n]);
            bytes[n..].copy_from_slice(&sum.to_le_bytes());
        }
        let sealed = Weights::from_bytes(&bytes, hash);
        eprintln!(
            "{}: {:?} / {:?}",
            path.display(),
            raw.err(),
            sealed.as_ref().err()
        );
        assert!(sealed.is_err(), "{}: loads", path.display());
    }
}
