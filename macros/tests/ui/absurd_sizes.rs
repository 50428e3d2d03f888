// Sizes no machine could run are errors at the literal, never a panic or a wrapped product.

resnext_macros::resnext! {
    /// `cardinality × width` overflows `usize`.
    pub model Overflow {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 18446744073709551615,
        width: 2,
        bottleneck: 4,
        classes: 1000,
    }
}

resnext_macros::resnext! {
    /// Every literal fits, but the last stage doubles the grouped width three times.
    pub model TooWide {
        input: [3, 224, 224],
        stages: [3, 4, 6, 3],
        cardinality: 64,
        width: 64,
        classes: 1000,
    }
}

resnext_macros::resnext! {
    pub model Huge {
        input: [3, 1000000, 224],
        stages: [3, 4, 100000, 3],
        cardinality: 32,
        width: 4,
        classes: 99999999999,
    }
}

fn main() {}
