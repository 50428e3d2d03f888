resnext_macros::resnext! {
    pub model Net {
        input: [3, 16, 16],
        stages: [3, 4, 6, 3],
        cardinality: 32,
        width: 4,
        classes: 1000,
    }
}

fn main() {}
