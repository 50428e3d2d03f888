resnext_macros::resnext! {
    pub model Net {
        input: [3, 224],
        stages: 4,
        cardinality: "32",
        width: 4,
        classes: 1000,
        stem: resnet,
    }
}

fn main() {}
