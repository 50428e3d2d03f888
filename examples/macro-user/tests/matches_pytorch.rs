//! The crate with `resnext-runtime` as its only dependency computes PyTorch's logits.

use std::path::PathBuf;

use resnext_macro_user::Small;
use resnext_runtime::formats::npy;
use resnext_test_support::assert_close;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

#[test]
fn small_model_matches_pytorch() {
    let model = Small::load_safetensors(testdata("resnext_small_8x4d.safetensors")).expect("loads");
    let (shape, input) = npy::read_f32(testdata("resnext_small_8x4d_bn.input.npy")).expect("input");
    let (_, expected) =
        npy::read_f32(testdata("resnext_small_8x4d_bn.output.npy")).expect("output");
    let logits = model.forward(&input, shape[0]).expect("forward");
    assert_close(
        &logits,
        &expected,
        1e-4,
        "resnext! through resnext-runtime vs PyTorch",
    );
}
