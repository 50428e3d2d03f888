//! What the runtime reads and writes: the weights file and its hash, `.npy` arrays, PyTorch
//! state_dicts in safetensors, and the BatchNorm folding recipes applied to weights at load.

pub mod fold;
pub mod hash;
pub mod npy;
#[cfg(feature = "safetensors")]
pub mod safetensors;
pub mod weights;
