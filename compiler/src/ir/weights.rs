//! The weight store: every constant tensor of a model lives here, referenced from ops by [`WeightId`],
//! never inlined in the graph or in emitted source.

/// Handle of a tensor in a [`WeightStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub u32);

/// One constant fp32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Where it came from: the ONNX initializer, the state_dict key, or what a pass derived it from.
    pub name: String,
    pub dims: Vec<usize>,
    /// The values, when known at compile time ([`WeightSource::Data`]); empty otherwise.
    pub data: Vec<f32>,
    /// How the values are obtained.
    pub source: WeightSource,
}

/// Where a weight's values come from. ONNX models carry their data ([`WeightSource::Data`]); a model
/// declared with the `resnext!` DSL has none at compile time: its weights are read from a PyTorch
/// state_dict at load time, and a pass that derives a tensor from such weights records a recipe
/// for the loader instead of computing data.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum WeightSource {
    /// `Weight::data` holds the values.
    #[default]
    Data,
    /// The state_dict tensor of this key (torchvision naming), loaded at run time.
    StateDict { key: String },
    /// One output of `resnext_runtime_core::formats::fold::fold_batch_norm` applied at load time to a layer's
    /// weight/bias and the BatchNorm parameters after it.
    FoldedBn {
        part: FoldedPart,
        weight: WeightId,
        bias: Option<WeightId>,
        bn: BnParams,
        out_channels: usize,
    },
    /// One output of `resnext_runtime_core::formats::fold::batch_norm_scale_shift` applied at load time.
    BnScaleShift { part: FoldedPart, bn: BnParams },
    /// `resnext_runtime_core::kernels::conv::pack(algo, shape, ·)` of another weight, at load time.
    PackedConv {
        algo: resnext_runtime_core::kernels::conv::ConvAlgo,
        shape: resnext_runtime_core::kernels::ConvShape,
        source: WeightId,
    },
    /// `resnext_runtime_core::kernels::dense::pack(in_features, out_features, ·)` of another weight,
    /// at load time.
    PackedDense {
        in_features: usize,
        out_features: usize,
        source: WeightId,
    },
    /// `resnext_runtime_core::kernels::dense::pack_bf16(in_features, out_features, ·)` of another
    /// weight, at load time.
    PackedDenseBf16 {
        in_features: usize,
        out_features: usize,
        source: WeightId,
    },
}

/// Which of a fold's two results a derived weight is: the weight (or scale) or the bias (or shift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldedPart {
    Weight,
    Bias,
}

/// The BatchNorm parameters a load-time fold reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnParams {
    pub gamma: WeightId,
    pub beta: WeightId,
    pub mean: WeightId,
    pub var: WeightId,
    pub epsilon: f32,
}

/// All constant tensors of a graph. Passes add derived tensors (folded weights); tensors no op refers
/// to any more are dropped when the back end writes the weights file.
#[derive(Clone, Debug, Default)]
pub struct WeightStore {
    tensors: Vec<Weight>,
}

impl WeightStore {
    pub fn new() -> WeightStore {
        WeightStore::default()
    }

    /// Adds a tensor. `data.len()` must equal the product of `dims`; the caller checks that (the
    /// front ends turn a mismatch into an error naming the initializer).
    pub fn add(&mut self, name: impl Into<String>, dims: Vec<usize>, data: Vec<f32>) -> WeightId {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.tensors.push(Weight {
            name: name.into(),
            dims,
            data,
            source: WeightSource::Data,
        });
        WeightId(self.tensors.len() as u32 - 1)
    }

    /// Adds a tensor whose values are not known at compile time: `source` says how the loader
    /// obtains them (not [`WeightSource::Data`]).
    pub fn add_deferred(
        &mut self,
        name: impl Into<String>,
        dims: Vec<usize>,
        source: WeightSource,
    ) -> WeightId {
        self.tensors.push(Weight {
            name: name.into(),
            dims,
            data: Vec::new(),
            source,
        });
        WeightId(self.tensors.len() as u32 - 1)
    }

    /// Whether tensor `id` has its values now (false for deferred and missing tensors).
    pub fn is_loaded(&self, id: WeightId) -> bool {
        self.get(id).is_some_and(|w| w.source == WeightSource::Data)
    }

    pub fn get(&self, id: WeightId) -> Option<&Weight> {
        self.tensors.get(id.0 as usize)
    }

    pub fn get_mut(&mut self, id: WeightId) -> Option<&mut Weight> {
        self.tensors.get_mut(id.0 as usize)
    }

    /// The data of a tensor that an op of a validated graph refers to (empty for a deferred
    /// tensor, whose values only the loader of the emitted code computes).
    ///
    /// # Panics
    /// If `id` is not in the store: the validator guarantees every op's handles are.
    pub fn data(&self, id: WeightId) -> &[f32] {
        &self.tensors[id.0 as usize].data
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (WeightId, &Weight)> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (WeightId(i as u32), t))
    }
}
