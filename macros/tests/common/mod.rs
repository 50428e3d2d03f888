//! What the macro test binaries share: the small test network (the one PyTorch exported as
//! testdata/resnext_small_8x4d_bn.onnx and resnext_small_8x4d.safetensors) and the testdata path.

use std::path::{Path, PathBuf};

resnext_macros::resnext! {
    /// The shared small test network: torchvision ResNeXt 8×4d with one block per stage.
    pub model Small {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 8,
        width: 4,
        classes: 10,
    }
}

/// A file of the workspace's `testdata/`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}
