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
    pub data: Vec<f32>,
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
        });
        WeightId(self.tensors.len() as u32 - 1)
    }

    pub fn get(&self, id: WeightId) -> Option<&Weight> {
        self.tensors.get(id.0 as usize)
    }

    pub fn get_mut(&mut self, id: WeightId) -> Option<&mut Weight> {
        self.tensors.get_mut(id.0 as usize)
    }

    /// The data of a tensor that an op of a validated graph refers to.
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
