//! Benchmarks the depthwise convs of MobileNetV2, MnasNet-1.0 and EfficientNet-B0 (batch 1, the
//! model's epilogue: bias + ReLU6, or bias + SiLU for EfficientNet), and ConvNeXt-T's 7×7 ones
//! both by im2col and by the depthwise kernel, on every supported tier at 1
//! and 2 threads: median µs of each shape, and the sum over the model's layers.
//!
//! `cargo run --release -p resnext-runtime-core --example bench_depthwise [-- --quick] [--simd]
//! [--tier NAME]` (`--simd`: leave out the generic tier; `--tier`: run only that one).
//! Compare with onnxruntime's per-node profile (`bench/ort_profile.py MODEL 1 50 --nodes`).

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue};

/// Median wall time of `f` in µs over `runs` runs after two warm-up runs.
fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn fill(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// `(channels, input size, kernel, stride, layers with this shape)` per model.
type Layers = &'static [(usize, usize, usize, usize, usize)];

const MOBILENET_V2: Layers = &[
    (32, 112, 3, 1, 1),
    (96, 112, 3, 2, 1),
    (144, 56, 3, 1, 1),
    (144, 56, 3, 2, 1),
    (192, 28, 3, 1, 2),
    (192, 28, 3, 2, 1),
    (384, 14, 3, 1, 3),
    (576, 14, 3, 1, 2),
    (576, 14, 3, 2, 1),
    (960, 7, 3, 1, 2),
];

const MNASNET1_0: Layers = &[
    (32, 112, 3, 1, 1),
    (48, 112, 3, 2, 1),
    (72, 56, 3, 1, 2),
    (72, 56, 5, 2, 1),
    (120, 28, 5, 1, 2),
    (240, 28, 5, 2, 1),
    (480, 14, 5, 1, 2),
    (480, 14, 3, 1, 1),
    (576, 14, 3, 1, 1),
    (576, 14, 5, 2, 1),
    (1152, 7, 5, 1, 3),
    (1152, 7, 3, 1, 1),
];

const EFFICIENTNET_B0: Layers = &[
    (32, 112, 3, 1, 1),
    (96, 112, 3, 2, 1),
    (144, 56, 3, 1, 1),
    (144, 56, 5, 2, 1),
    (240, 28, 5, 1, 1),
    (240, 28, 3, 2, 1),
    (480, 14, 3, 1, 2),
    (480, 14, 5, 1, 1),
    (672, 14, 5, 1, 2),
    (672, 14, 5, 2, 1),
    (1152, 7, 5, 1, 3),
    (1152, 7, 3, 1, 1),
];

/// ConvNeXt-T's depthwise 7×7 convs (bias only: the layer norm follows).
const CONVNEXT_T: Layers = &[
    (96, 56, 7, 1, 3),
    (192, 28, 7, 1, 3),
    (384, 14, 7, 1, 9),
    (768, 7, 7, 1, 3),
];

/// Median µs of one depthwise conv by `algo`, batch 1.
fn bench(
    s: &ConvShape,
    algo: ConvAlgo,
    activation: Activation,
    isa: Isa,
    threads: &Threads,
    runs: usize,
) -> f64 {
    let input = fill(s.input_len());
    let packed = conv::pack(algo, s, &fill(s.weight_len())).expect("benchmark shapes are valid");
    let bias = fill(s.out_c);
    let mut out = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(algo, s, 1, threads.count())];
    let ep = Epilogue {
        bias: Some(&bias),
        residual: None,
        activation,
    };
    median_us(runs, || {
        let args = ConvArgs {
            shape: *s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: ep,
            output: &mut out,
            scratch: &mut scratch,
        };
        conv::conv2d(&Ctx { isa, threads }, algo, args).expect("benchmark shapes are valid");
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let simd = args.iter().any(|a| a == "--simd");
    let only = args
        .iter()
        .position(|a| a == "--tier")
        .and_then(|i| args.get(i + 1));
    let runs = if quick { 21 } else { 201 };
    let tiers: Vec<Isa> = Isa::all_supported()
        .into_iter()
        .filter(|isa| only.is_none_or(|name| isa.name() == name))
        .filter(|&isa| !simd || isa != Isa::Generic)
        .collect();
    println!("median of {runs} runs, batch 1, µs");
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let dw = ConvAlgo::Depthwise;
    for (model, layers, activation, algos) in [
        ("MobileNetV2", MOBILENET_V2, relu6, &[dw][..]),
        ("MnasNet-1.0", MNASNET1_0, Activation::Relu, &[dw]),
        ("EfficientNet-B0", EFFICIENTNET_B0, Activation::Silu, &[dw]),
        (
            "ConvNeXt-T (im2col, then depthwise)",
            CONVNEXT_T,
            Activation::None,
            &[ConvAlgo::Im2col, dw],
        ),
    ] {
        for &algo in algos {
            println!("\n== {model}: {} ==", algo.name());
            let mut total = vec![0.0; 2 * tiers.len()];
            for &(c, size, k, stride, count) in layers {
                let s = ConvShape::square(c, size, c, k, stride, k / 2, c);
                let mut row = format!("dw{k} c{c}@{size}→{} s{stride} ×{count}", s.out_h);
                row = format!("{row:<28}");
                for (i, &isa) in tiers.iter().enumerate() {
                    for t in [1, 2] {
                        let us = bench(&s, algo, activation, isa, &Threads::new(t), runs);
                        total[2 * i + t - 1] += us * count as f64;
                        row += &format!(" | {:>7} {t}t {us:>7.1}", isa.name());
                    }
                }
                println!("{row}");
            }
            let mut row = format!("{:<28}", "all depthwise layers");
            for (i, isa) in tiers.iter().enumerate() {
                for t in [1, 2] {
                    row += &format!(" | {:>7} {t}t {:>7.1}", isa.name(), total[2 * i + t - 1]);
                }
            }
            println!("{row}");
        }
    }
}
