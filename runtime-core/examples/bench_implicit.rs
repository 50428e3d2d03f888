//! Benchmark of the implicit-GEMM conv against im2col on the dense convs of ResNet-18/50, VGG-11
//! and the stems, batch 1, 1 and 2 threads: the two algorithms alternate call by call (so both see
//! the same machine load), each on its own cold-ish copy of the operands, and each reports its
//! median and fastest call, and the share of the FMA peak (`fma_peak`) the
//! fastest implicit call reached; plus the largest difference of their outputs relative to the largest output.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_implicit [-- --rounds 40]
//! [--isa avx2] [--only N] [--threads T]`.

use std::time::{Duration, Instant};

mod fma_peak;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue};

/// (model, in, out, map size, kernel, stride, pad).
const LAYERS: [(&str, usize, usize, usize, usize, usize, usize); 19] = [
    ("resnet stem", 3, 64, 224, 7, 2, 3),
    ("resnet18", 64, 64, 56, 3, 1, 1),
    ("resnet18", 64, 128, 56, 3, 2, 1),
    ("resnet18", 128, 128, 28, 3, 1, 1),
    ("resnet18", 128, 256, 28, 3, 2, 1),
    ("resnet18", 256, 256, 14, 3, 1, 1),
    ("resnet18", 256, 512, 14, 3, 2, 1),
    ("resnet18", 512, 512, 7, 3, 1, 1),
    ("resnet50", 128, 128, 56, 3, 2, 1),
    ("resnet50", 256, 256, 28, 3, 2, 1),
    ("resnet50", 512, 512, 14, 3, 2, 1),
    ("vgg11", 64, 128, 112, 3, 1, 1),
    ("vgg11", 256, 256, 56, 3, 1, 1),
    ("vgg11", 512, 512, 28, 3, 1, 1),
    ("vgg11 stem", 3, 64, 224, 3, 1, 1),
    ("alexnet stem", 3, 64, 224, 11, 4, 2),
    ("mobilenet stem", 3, 32, 224, 3, 2, 1),
    ("inception 5x5", 48, 64, 35, 5, 1, 2),
    ("densenet", 128, 32, 14, 3, 1, 1),
];

const ALGOS: [ConvAlgo; 2] = [ConvAlgo::Im2col, ConvAlgo::ImplicitGemm];

fn values(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * 2.0 * scale
        })
        .collect()
}

/// One algorithm's operands.
struct Layer {
    s: ConvShape,
    algo: ConvAlgo,
    input: Vec<f32>,
    bias: Vec<f32>,
    packed: Vec<f32>,
    out: Vec<f32>,
    scratch: Vec<f32>,
}

impl Layer {
    fn new(s: ConvShape, algo: ConvAlgo, threads: usize) -> Layer {
        let bound = (6.0 / (s.kernel[0] * s.kernel[1] * s.in_c) as f32).sqrt();
        let weight = values(2, s.weight_len(), bound);
        Layer {
            s,
            algo,
            input: values(1, s.input_len(), 1.0),
            bias: values(3, s.out_c, 0.1),
            packed: conv::pack(algo, &s, &weight).expect("valid shape"),
            out: vec![0.0; s.output_len()],
            scratch: vec![0.0; conv::scratch_len(algo, &s, 1, threads)],
        }
    }

    fn run(&mut self, ctx: &Ctx) {
        let args = ConvArgs {
            shape: self.s,
            batch: 1,
            input: &self.input,
            packed: &self.packed,
            epilogue: Epilogue {
                bias: Some(&self.bias),
                residual: None,
                activation: Activation::Relu,
            },
            output: &mut self.out,
            scratch: &mut self.scratch,
        };
        conv::conv2d(ctx, self.algo, args).expect("conv runs");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = arg(&args, "--rounds").unwrap_or(30usize);
    let only: Option<usize> = arg(&args, "--only");
    let isa = match arg::<String>(&args, "--isa").as_deref() {
        Some("generic") => Isa::Generic,
        Some("avx2") => Isa::Avx2,
        Some(_) => Isa::Avx512,
        None => isa::isa(),
    };
    let thread_counts: Vec<usize> = match arg(&args, "--threads") {
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    println!(
        "ISA: {}, {rounds} interleaved rounds, medians (ms)",
        isa.name()
    );
    println!(
        "{:<15} {:>4} {:>4} {:>4} {:>3} {:>2} | {:>2} {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} {:>6} | {:>9}",
        "model",
        "in",
        "out",
        "hw",
        "k",
        "s",
        "T",
        "im2col",
        "implicit",
        "ratio",
        "min i2c",
        "min impl",
        "ratio",
        "peak",
        "max diff"
    );
    for (i, (model, in_c, out_c, hw, k, stride, pad)) in LAYERS.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let s = ConvShape::square(in_c, hw, out_c, k, stride, pad, 1);
        for &t in &thread_counts {
            let threads = Threads::new(t);
            let peak = fma_peak::fma_peak_gflops(&threads, isa, Duration::from_millis(300));
            let ctx = Ctx {
                isa,
                threads: &threads,
            };
            let mut layers = ALGOS.map(|a| Layer::new(s, a, t));
            for l in &mut layers {
                l.run(&ctx);
            }
            let scale = layers[0].out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let diff = layers[0]
                .out
                .iter()
                .zip(&layers[1].out)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let mut times = [Vec::new(), Vec::new()];
            for r in 0..rounds {
                for k in 0..2 {
                    let which = (r + k) % 2;
                    let start = Instant::now();
                    layers[which].run(&ctx);
                    times[which].push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            let [old_min, new_min] =
                [&times[0], &times[1]].map(|v| v.iter().copied().fold(f64::MAX, f64::min));
            let [old, new] = times.map(median);
            // Share of the FMA peak the fastest implicit call reached.
            let flop = 2.0 * s.out_c as f64 * (s.in_c * k * k * s.out_h * s.out_w) as f64;
            let share = peak.map_or(f64::NAN, |p| flop / (new_min * 1e6) / p);
            println!(
                "{model:<15} {in_c:>4} {out_c:>4} {hw:>4} {k:>3} {stride:>2} | {t:>2} {old:>8.3} {new:>8.3} {:>6.2} | {old_min:>8.3} {new_min:>8.3} {:>6.2} {:>5.0}% | {:>9.1e}",
                new / old,
                new_min / old_min,
                100.0 * share,
                diff / scale
            );
        }
    }
}
