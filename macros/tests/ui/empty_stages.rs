resnext_macros::resnext! {
    pub model Net {
        input: [3, 224, 224],
        stages: [],
        cardinality: 32,
        width: 4,
        classes: 1000,
    }
}

fn main() {}
