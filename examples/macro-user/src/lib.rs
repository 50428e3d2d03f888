//! What a user's crate looks like: one dependency, `resnext-runtime` with its `macros` feature, and
//! a model declared with `resnext_runtime::resnext!`.
//!
//! The model is the workspace's small test network, the torchvision ResNeXt whose state_dict is
//! `testdata/resnext_small_8x4d.safetensors` (PyTorch's logits for `resnext_small_8x4d_bn.input.npy`
//! are in `resnext_small_8x4d_bn.output.npy`; `tests/matches_pytorch.rs` compares the two).

resnext_runtime::resnext! {
    /// torchvision's ResNeXt with 8 groups of 4 channels and one block a stage, 64×64 inputs.
    pub model Small {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 8,
        width: 4,
        classes: 10,
    }
}
