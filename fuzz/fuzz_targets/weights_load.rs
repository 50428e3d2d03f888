//! Fuzzes the runtime's weights-file parser (`Weights::from_bytes`): header, checksum, model hash,
//! tensor table and data. Each input must give `Ok` or `Err`, never a panic, hang or OOM.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnext_runtime_core::Weights;

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as they are, against the model hash they claim (a mutated checksum or header
    //    must be rejected cleanly).
    let claimed = data
        .get(16..24)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0);
    check(data, claimed);
    // 2. The same bytes with the trailing checksum recomputed over the mutated body, so mutations of
    //    the tensor table and data get past the checksum and reach the table parser.
    if data.len() >= 4 {
        let mut sealed = data.to_vec();
        let n = sealed.len() - 4;
        let sum = resnext_runtime_core::formats::weights::checksum(&sealed[..n]);
        sealed[n..].copy_from_slice(&sum.to_le_bytes());
        check(&sealed, claimed);
    }
});

fn check(bytes: &[u8], hash: u64) {
    if let Ok(w) = Weights::from_bytes(bytes, hash) {
        // A file that loads must hand out every tensor it lists, with the length its dims say.
        for i in 0..w.len() {
            let info = w.info(i).expect("index below len");
            let expected: usize = info.dims.iter().product();
            assert_eq!(w.tensor(i).len(), expected);
        }
    }
}
