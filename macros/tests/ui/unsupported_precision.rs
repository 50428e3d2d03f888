resnext_macros::resnext! {
    pub model Net {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 8,
        width: 4,
        classes: 10,
        precision: int8,
    }
}

fn main() {}
