resnext_macros::resnext! {
    pub model Net {
        input: [3, 64, 64],
        stages: [1, 1, 1, 1],
        cardinality: 0,
        width: 4,
        classes: 10,
    }
}

// The declaration's error is the only one: the stub type `Net` exists.
fn takes(_: Option<Net>) {}

fn main() {
    takes(None);
}
