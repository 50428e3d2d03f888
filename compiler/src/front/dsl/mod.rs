//! The `resnext!` DSL front end: a declarative [`ModelSpec`] (stage depths, cardinality C, width d,
//! classes, stem) is checked and built into the torchvision ResNet/ResNeXt graph, named like its state_dict.
//!
//! # The network
//! torchvision's `ResNet(Bottleneck, stages, groups=C, width_per_group=d)` ("v1.5": the stride sits on
//! the 3×3 conv). Stage `i` (0-based) has `planes = 64·2^i`, a grouped 3×3 conv of
//! `width = ⌊planes·d/64⌋·C` channels, and outputs `4·planes`; its first block has stride 2 (stride 1
//! in stage 0) and a 1×1 conv + BN "downsample" shortcut whenever the shape changes.
//! - [`Stem::ImageNet`]: conv 7×7/2 (64 ch) + BN + ReLU + max-pool 3×3/2, the paper's Table 1
//!   (`stages: [3, 4, 6, 3]`, C×d = 32×4d is ResNeXt-50; 1×64d is ResNet-50).
//! - [`Stem::Cifar`]: conv 3×3/1 (64 ch) + BN + ReLU, no max-pool; the paper's CIFAR ResNeXt-29
//!   is `stages: [3, 3, 3]` with 8×64d or 16×64d. The paper's CIFAR rule ("the width doubles each
//!   stage; block outputs 256, 512, 1024; the first stage's grouped conv is C·d wide") is exactly the
//!   torchvision arithmetic above, so both stems share it. Names stay torchvision's for both stems.
//!
//! Node names are the state_dict module paths (`conv1`, `bn1`, `layer2.0.conv2`,
//! `layer2.0.downsample.0`, `fc`); weights carry their state_dict key (`layer2.0.bn2.running_var`)
//! and are [`WeightSource::StateDict`]: the DSL has no values at compile time.

mod build;

pub use build::{build, load_weights, state_dict_keys};

use std::fmt;

use crate::ir::WeightSource;

/// The first layers of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Stem {
    /// Conv 7×7 stride 2 + BN + ReLU + max-pool 3×3 stride 2 (total stride 4).
    #[default]
    ImageNet,
    /// Conv 3×3 stride 1 + BN + ReLU, no max-pool (total stride 1).
    Cifar,
}

impl Stem {
    /// The stride of the stem as a whole.
    pub fn stride(self) -> usize {
        match self {
            Stem::ImageNet => 4,
            Stem::Cifar => 1,
        }
    }
}

/// A declared model. Build it with [`build`] after [`ModelSpec::problems`] found nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The generated type's name (`ResNeXt50`).
    pub name: String,
    /// `[channels, height, width]` of one input image.
    pub input: [usize; 3],
    /// Number of bottleneck blocks in each stage.
    pub stages: Vec<usize>,
    /// C: the number of groups of each grouped 3×3 conv.
    pub cardinality: usize,
    /// d: channels per group in the first stage's bottleneck (torchvision `width_per_group`).
    pub width: usize,
    /// Number of logits.
    pub classes: usize,
    pub stem: Stem,
    /// BatchNorm epsilon (PyTorch's default, 1e-5).
    pub bn_epsilon: f32,
    /// The arithmetic of the 1×1 convs and the classifier (`passes::PassOptions::precision`).
    pub precision: crate::passes::Precision,
}

/// Which field of a [`ModelSpec`] a problem is about, so the macro can point at the user's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Input,
    Stages,
    Cardinality,
    Width,
    Classes,
    Stem,
    BnEpsilon,
}

/// One thing wrong with a [`ModelSpec`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SpecProblem {
    pub field: Field,
    /// The element of an array-valued field (`stages`, `input`) at fault, if one is.
    pub index: Option<usize>,
    pub message: String,
}

/// Why a graph could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DslError {
    #[error("model `{name}` is not valid: {}", join(.problems))]
    Spec {
        name: String,
        problems: Vec<SpecProblem>,
    },
    #[error(transparent)]
    Ir(#[from] crate::ir::IrError),
    #[error("weights do not match the model: {}", .0.join("; "))]
    Weights(Vec<String>),
}

fn join(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl ModelSpec {
    /// A spec with the defaults of every optional field.
    pub fn new(
        name: impl Into<String>,
        input: [usize; 3],
        stages: Vec<usize>,
        cardinality: usize,
        width: usize,
        classes: usize,
    ) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            input,
            stages,
            cardinality,
            width,
            classes,
            stem: Stem::ImageNet,
            bn_epsilon: 1e-5,
            precision: crate::passes::Precision::F32,
        }
    }

    /// `planes` of stage `i`: 64, 128, 256, ...
    pub fn planes(stage: usize) -> usize {
        64 << stage
    }

    /// Channels of stage `i`'s grouped 3×3 conv: torchvision's `int(planes * d / 64) * C`.
    pub fn group_conv_width(&self, stage: usize) -> usize {
        Self::planes(stage) * self.width / 64 * self.cardinality
    }

    /// Channels out of the last stage (what the classifier reads).
    pub fn features(&self) -> usize {
        4 * Self::planes(self.stages.len().saturating_sub(1))
    }

    /// The stride of stem and stages together: the input must be at least this tall and wide.
    pub fn total_stride(&self) -> usize {
        self.stem.stride() << self.stages.len().saturating_sub(1)
    }

    /// Everything wrong with this spec (empty when [`build`] can proceed).
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let mut at = |field, index, message: String| {
            out.push(SpecProblem {
                field,
                index,
                message,
            })
        };
        let [c, h, w] = self.input;
        if let Some(i) = self.input.iter().position(|&d| d == 0) {
            at(
                Field::Input,
                Some(i),
                format!("input dimensions must be positive, got [{c}, {h}, {w}]"),
            );
        }
        if let Some(i) = self.stages.iter().position(|&n| n == 0) {
            at(
                Field::Stages,
                Some(i),
                format!(
                    "stage {} has 0 blocks; every stage needs at least one",
                    i + 1
                ),
            );
        }
        let mut bad = |field, message| at(field, None, message);
        if self.stages.is_empty() {
            bad(Field::Stages, "stages must list at least one stage".into());
        } else if self.stages.len() > 8 {
            bad(
                Field::Stages,
                format!("{} stages is more than the 8 supported", self.stages.len()),
            );
        }
        if self.cardinality == 0 {
            bad(Field::Cardinality, "cardinality must be at least 1".into());
        }
        if self.width == 0 {
            bad(Field::Width, "width must be at least 1".into());
        }
        if self.classes == 0 {
            bad(Field::Classes, "classes must be at least 1".into());
        }
        if !(self.bn_epsilon > 0.0 && self.bn_epsilon.is_finite()) {
            bad(
                Field::BnEpsilon,
                format!("bn_epsilon must be positive, got {}", self.bn_epsilon),
            );
        }
        if (1..=8).contains(&self.stages.len()) && h > 0 && w > 0 {
            let stride = self.total_stride();
            if h < stride || w < stride {
                bad(
                    Field::Input,
                    format!(
                        "input {h}×{w} is too small for the strides: the {} stem and {} stage(s) \
                         reduce it by {stride}, so height and width must be at least {stride}",
                        self.stem,
                        self.stages.len()
                    ),
                );
            }
        }
        out
    }

    /// Every weight the model reads, as `(state_dict key, dims)`, in graph order.
    pub fn state_dict(&self) -> Result<Vec<(String, Vec<usize>)>, DslError> {
        state_dict_keys(&build(self)?)
    }
}

impl fmt::Display for Stem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stem::ImageNet => "imagenet",
            Stem::Cifar => "cifar",
        })
    }
}

/// The state_dict key of a weight, if it is read from one.
pub fn state_dict_key(source: &WeightSource) -> Option<&str> {
    match source {
        WeightSource::StateDict { key } => Some(key),
        _ => None,
    }
}
