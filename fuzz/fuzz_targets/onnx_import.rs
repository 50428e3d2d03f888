//! Fuzzes the ONNX front end and everything after it up to code generation: bytes → import →
//! the optimisation passes → validate. Each input must give `Ok` or `Err`, never a panic, hang or OOM.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnext_compiler::driver::{self, Options};
use resnext_compiler::front::onnx;
use resnext_compiler::ir;

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = onnx::from_bytes(data, None) else {
        return;
    };
    // The imported graph on its own must validate or be rejected cleanly...
    let _ = ir::validate(&graph);
    // ...and so must the whole pipeline (passes, then validation).
    let _ = driver::compile(graph, &Options::default());
});
