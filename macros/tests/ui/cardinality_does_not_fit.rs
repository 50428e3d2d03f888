resnext_macros::resnext! {
    /// `bottleneck` is the first stage's total grouped width C·d; C must divide it.
    pub model Net {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 3,
        bottleneck: 128,
        classes: 1000,
    }
}

fn main() {}
