//! Differential test: our front end + reference interpreter against tract-onnx (its own ONNX loader
//! and optimiser, an independent implementation) on the same models and seeded random inputs.

use std::path::{Path, PathBuf};

use resnext_compiler::front::onnx;
use resnext_compiler::{interp, ir};
use tract_onnx::prelude::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

/// Seeded N(0,1)-ish inputs without a rand crate: a 64-bit LCG (Knuth's MMIX constants), the sum of
/// four uniforms recentred and rescaled to unit variance (Irwin–Hall), like the images PyTorch saw.
fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64
    };
    (0..len)
        .map(|_| {
            let s: f64 = (0..4).map(|_| uniform()).sum();
            ((s - 2.0) * 3f64.sqrt()) as f32
        })
        .collect()
}

fn run_tract(model: &Path, chw: (usize, usize, usize), batch: usize, x: &[f32]) -> Vec<f32> {
    let (c, h, w) = chw;
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .and_then(|m| m.with_input_fact(0, f32::fact([batch, c, h, w]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract on {}: {e:?}", model.display()));
    let input =
        tract_ndarray::Array4::from_shape_vec((batch, c, h, w), x.to_vec()).expect("input shape");
    let out = plan
        .run(tvec!(Tensor::from(input).into()))
        .expect("tract runs");
    out[0]
        .to_plain_array_view::<f32>()
        .expect("f32 output")
        .iter()
        .copied()
        .collect()
}

fn differential(model: &Path, batch: usize, seed: u64) {
    let graph = onnx::load(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let info = ir::validate(&graph).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let chw = graph
        .node(graph.inputs[0])
        .output
        .shape
        .chw()
        .expect("4-D input");
    let x = random_input(batch * chw.0 * chw.1 * chw.2, seed);
    let ours = interp::run(&graph, &info, &[&x], batch).expect("interpreter runs");
    let theirs = run_tract(model, chw, batch, &x);
    assert_eq!(ours[0].len(), theirs.len(), "output sizes");
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours[0]
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "{}: batch {batch}, max |ours - tract| = {err:e}, max |output| = {scale}",
        model.display()
    );
    // Both sides compute the same fp32 math in different orders (tract folds BatchNorm, reorders
    // sums, may use FMA; the reference kernels accumulate in f64). Rounding differences then grow
    // with depth like a few ulps per layer relative to the activations, far below 1e-4 of the
    // largest output, while any real import mistake (a wrong pad, group, transpose or epsilon)
    // moves the logits by percent. This is the PyTorch criterion of the end-to-end tests too.
    assert!(scale > 0.0, "outputs are not all zero");
    assert!(
        err <= 1e-4 * scale,
        "{}: max |ours - tract| = {err} > 1e-4 × {scale}",
        model.display()
    );
}

#[test]
fn resnext_small_agrees_with_tract() {
    differential(&testdata("resnext_small_8x4d_bn.onnx"), 2, 17);
}

#[test]
fn mobilenet_v2_agrees_with_tract() {
    differential(&testdata("mobilenet_v2_bn.onnx"), 1, 42);
}

#[test]
fn resnext50_agrees_with_tract() {
    let Some(dir) = std::env::var_os("RESNEXT_MODELS") else {
        eprintln!("skipping: RESNEXT_MODELS not set");
        return;
    };
    differential(&PathBuf::from(dir).join("resnext50_32x4d_bn.onnx"), 1, 7);
}
