//! The runtime of models compiled by `resnext-compiler`, and the one dependency of a crate that
//! uses them: code emitted by `resnextc` or by `build.rs` calls only this crate, and with the
//! `macros` feature it also provides [`resnext!`], which declares a ResNeXt in Rust.
//!
//! ```toml
//! [dependencies]
//! resnext-runtime = { version = "0.1", features = ["macros"] }
//! ```
//!
//! ```ignore
//! resnext_runtime::resnext! {
//!     /// ResNeXt-50 (32×4d), weights from torchvision's `resnext50_32x4d`.
//!     pub model ResNeXt50 {
//!         input: [3, 224, 224],
//!         stages: [3, 4, 6, 3],
//!         cardinality: 32,
//!         width: 4,
//!         classes: 1000,
//!     }
//! }
//! let model = ResNeXt50::load_safetensors("resnext50_32x4d.safetensors")?;
//! let logits = model.forward(&images, batch)?;
//! ```
//!
//! Everything else is `resnext-runtime-core`, re-exported here whole. The two are separate crates
//! because the macro runs the compiler, which itself uses the runtime's kernels and file formats to
//! pack weights: a runtime that depended on the macro and was depended on by the compiler would be
//! a dependency cycle, which Cargo refuses.

pub use resnext_runtime_core::*;

#[cfg(feature = "macros")]
pub use resnext_macros::resnext;
