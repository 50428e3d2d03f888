//! Kernel shape checks on absurd shapes (as a corrupt or hand-built graph could carry): an error,
//! never an arithmetic overflow or a panic. Regression for the overflow found by
//! `compiler/tests/ir_errors.rs` (`ConvShape::check` added pads to the input size unchecked).

use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{ConvShape, PoolShape};

fn conv_shape() -> ConvShape {
    ConvShape {
        in_c: 4,
        in_h: 8,
        in_w: 8,
        out_c: 4,
        out_h: 8,
        out_w: 8,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [1; 4],
        group: 1,
    }
}

#[test]
fn absurd_conv_shapes_are_errors() {
    assert!(conv_shape().check().is_ok());
    let huge = usize::MAX / 2 + 1;
    let cases = [
        ConvShape {
            pads: [huge, 0, huge, 0],
            ..conv_shape()
        },
        ConvShape {
            dilation: [huge, 1],
            ..conv_shape()
        },
        ConvShape {
            kernel: [usize::MAX, 3],
            ..conv_shape()
        },
        ConvShape {
            in_c: huge,
            out_c: huge,
            ..conv_shape()
        },
        ConvShape {
            in_h: huge,
            out_h: huge,
            pads: [0; 4],
            kernel: [1, 3],
            ..conv_shape()
        },
        ConvShape {
            out_c: huge,
            ..conv_shape()
        },
    ];
    for s in cases {
        assert!(s.check().is_err(), "{s:?}");
        assert!(conv::pack(ConvAlgo::Im2col, &s, &[0.0; 16]).is_err());
    }
}

#[test]
fn absurd_pool_shapes_are_errors() {
    let ok = PoolShape {
        channels: 2,
        in_h: 8,
        in_w: 8,
        out_h: 4,
        out_w: 4,
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0; 4],
    };
    assert!(ok.check().is_ok());
    let huge = usize::MAX / 2 + 1;
    for s in [
        PoolShape {
            stride: [huge, 2],
            ..ok
        },
        PoolShape {
            channels: huge,
            in_h: huge,
            ..ok
        },
        PoolShape {
            pads: [1, 0, 0, 0],
            kernel: [1, 2],
            ..ok
        },
    ] {
        assert!(s.check().is_err(), "{s:?}");
    }
}

/// `ConvShape::square` works out the output size (ResNet's stem: 224 → 112 at 7×7/2 with pad 3;
/// a 3×3 pad-1 conv keeps the size), and shapes whose kernel does not fit, whose stride is 0 or
/// whose padding overflows come out as shapes `check` rejects instead of a panic.
#[test]
fn square_shapes() {
    let stem = ConvShape::square(3, 224, 64, 7, 2, 3, 1);
    assert_eq!((stem.out_h, stem.out_w), (112, 112));
    assert!(stem.check().is_ok());
    assert_eq!(ConvShape::square(4, 8, 4, 3, 1, 1, 1), conv_shape());
    for bad in [
        ConvShape::square(4, 2, 4, 5, 1, 0, 1),
        ConvShape::square(4, 8, 4, 3, 0, 1, 1),
        ConvShape::square(4, usize::MAX / 2, 4, 3, 1, usize::MAX / 4, 1),
        ConvShape::square(4, 8, 4, 3, 1, usize::MAX, 1),
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}
