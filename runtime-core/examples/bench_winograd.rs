//! Benchmark of Winograd F(4×4, 3×3) against im2col on the dense 3×3 stride-1 convs of ResNet-18 (at
//! 160×160 and 224×224) and VGG-11 (224×224), batch 1, 1 and 2 threads: the two algorithms alternate
//! call by call (so both see the same machine load) and each reports its median; plus what
//! `winograd::preferred` (the compiler's cost model) chooses. With `--errors`, the error of both
//! against the f64 reference conv on the ResNet-18 layers (random weights scaled like a trained
//! layer's, He init), relative to the largest output.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_winograd [-- --rounds 40]
//! [--errors] [--isa avx2] [--profile N]` (`--profile N`: Winograd alone on row N, for a profiler).

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, reference, winograd,
};

/// (model, channels in, channels out, map size, layers of the shape in the model).
const LAYERS: [(&str, usize, usize, usize, usize); 15] = [
    ("resnet18@160", 64, 64, 40, 4),
    ("resnet18@160", 128, 128, 20, 3),
    ("resnet18@160", 256, 256, 10, 3),
    ("resnet18@160", 512, 512, 5, 3),
    ("resnet18@224", 64, 64, 56, 4),
    ("resnet18@224", 128, 128, 28, 3),
    ("resnet18@224", 256, 256, 14, 3),
    ("resnet18@224", 512, 512, 7, 3),
    ("vgg11@224", 64, 128, 112, 1),
    ("vgg11@224", 128, 256, 56, 1),
    ("vgg11@224", 256, 256, 56, 1),
    ("vgg11@224", 256, 512, 28, 1),
    ("vgg11@224", 512, 512, 28, 1),
    ("vgg11@224", 512, 512, 14, 2),
    ("small", 16, 16, 32, 1),
];

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

/// One layer's operands and both algorithms' packed weights and scratch.
struct Layer {
    s: ConvShape,
    input: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    packed: [Vec<f32>; 2],
    out: Vec<f32>,
    scratch: Vec<f32>,
}

const ALGOS: [ConvAlgo; 2] = [ConvAlgo::Im2col, ConvAlgo::Winograd];

impl Layer {
    fn new(s: ConvShape, threads: usize) -> Layer {
        // He-uniform weights (trained layers have this scale); inputs in [-1, 1).
        let bound = (6.0 / (9 * s.in_c) as f32).sqrt();
        let weight = values(2, s.weight_len(), bound);
        let packed = ALGOS.map(|a| conv::pack(a, &s, &weight).expect("valid shape"));
        let scratch = ALGOS
            .iter()
            .map(|&a| conv::scratch_len(a, &s, 1, threads))
            .max()
            .unwrap_or(0);
        Layer {
            s,
            input: values(1, s.input_len(), 1.0),
            weight,
            bias: values(3, s.out_c, 0.1),
            packed,
            out: vec![0.0; s.output_len()],
            scratch: vec![0.0; scratch],
        }
    }

    fn run(&mut self, ctx: &Ctx, which: usize) {
        let args = ConvArgs {
            shape: self.s,
            batch: 1,
            input: &self.input,
            packed: &self.packed[which],
            epilogue: Epilogue {
                bias: Some(&self.bias),
                residual: None,
                activation: Activation::Relu,
            },
            output: &mut self.out,
            scratch: &mut self.scratch,
        };
        conv::conv2d(ctx, ALGOS[which], args).expect("conv runs");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(30usize);
    let isa = match args.iter().position(|a| a == "--isa") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("generic") => Isa::Generic,
            Some("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        },
        None => isa::isa(),
    };
    println!("ISA: {}, {rounds} interleaved rounds, medians", isa.name());
    if args.iter().any(|a| a == "--errors") {
        errors(isa);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        // Profiling aid: Winograd alone on layer N of the table, one thread, for three seconds.
        let n: usize = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let (model, in_c, out_c, hw, _) = LAYERS[n.min(LAYERS.len() - 1)];
        let threads = Threads::new(1);
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        let mut layer = Layer::new(ConvShape::square(in_c, hw, out_c, 3, 1, 1, 1), 1);
        let (start, mut calls) = (Instant::now(), 0);
        while start.elapsed().as_secs() < 3 {
            layer.run(&ctx, 1);
            calls += 1;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(calls);
        println!("{model} {in_c}→{out_c} at {hw}×{hw}: {ms:.3} ms a call");
        return;
    }
    println!(
        "{:<13} {:>4} {:>4} {:>4} | {:>8} {:>8} {:>6} {:>5} | {:>8} {:>8} {:>6} {:>5}",
        "model",
        "in",
        "out",
        "hw",
        "1T i2c",
        "1T wino",
        "ratio",
        "pick",
        "2T i2c",
        "2T wino",
        "ratio",
        "pick"
    );
    let pools = [Threads::new(1), Threads::new(2)];
    for (model, in_c, out_c, hw, _) in LAYERS {
        let s = ConvShape::square(in_c, hw, out_c, 3, 1, 1, 1);
        let mut line = format!("{model:<13} {in_c:>4} {out_c:>4} {hw:>4} |");
        for threads in &pools {
            let ctx = Ctx { isa, threads };
            let mut layer = Layer::new(s, threads.count());
            let mut times = [Vec::new(), Vec::new()];
            for which in [0, 1] {
                layer.run(&ctx, which);
            }
            for r in 0..rounds {
                for k in 0..2 {
                    // Alternate which goes first.
                    let which = (r + k) % 2;
                    let t = Instant::now();
                    layer.run(&ctx, which);
                    times[which].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            let [i2c, wino] = times.map(median);
            let pick = if winograd::preferred(&s, 1, threads.count()) {
                "wino"
            } else {
                "i2c"
            };
            line += &format!(" {i2c:>8.3} {wino:>8.3} {:>6.2} {pick:>5} |", wino / i2c);
        }
        println!("{line}");
    }
}

/// Max |error| of im2col and Winograd against the f64 reference, relative to max |output|.
fn errors(isa: Isa) {
    let threads = Threads::new(1);
    let ctx = Ctx {
        isa,
        threads: &threads,
    };
    println!(
        "{:<13} {:>4} {:>4} {:>4} | {:>10} | {:>12} {:>12} | {:>12}",
        "model", "in", "out", "hw", "max|y|", "im2col rel", "wino rel", "wino bound rel"
    );
    for (model, in_c, out_c, hw, _) in LAYERS.iter().filter(|l| l.0.starts_with("resnet18")) {
        let s = ConvShape::square(*in_c, *hw, *out_c, 3, 1, 1, 1);
        let mut layer = Layer::new(s, 1);
        let ep = Epilogue {
            bias: Some(&layer.bias),
            residual: None,
            activation: Activation::None,
        };
        let mut want = vec![0.0; s.output_len()];
        reference::conv2d(&s, 1, &layer.input, &layer.weight, &ep, &mut want).expect("runs");
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let mut rel = [0.0f32; 2];
        for (which, r) in rel.iter_mut().enumerate() {
            let args = ConvArgs {
                shape: s,
                batch: 1,
                input: &layer.input,
                packed: &layer.packed[which],
                epilogue: ep,
                output: &mut layer.out,
                scratch: &mut layer.scratch,
            };
            conv::conv2d(&ctx, ALGOS[which], args).expect("conv runs");
            let err = layer
                .out
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            *r = err / scale;
        }
        let xw = layer.weight.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let n = (in_c + 24) as f64 * f64::from(f32::EPSILON / 2.0);
        let bound = n / (1.0 - n) * *in_c as f64 * winograd::ERROR_GROWTH * f64::from(xw);
        println!(
            "{model:<13} {in_c:>4} {out_c:>4} {hw:>4} | {scale:>10.3} | {:>12.2e} {:>12.2e} | {:>12.2e}",
            rel[0],
            rel[1],
            bound / f64::from(scale)
        );
    }
}
