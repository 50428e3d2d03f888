//! Benchmark of Winograd F(2×2, 3×3) and F(4×4, 3×3) against the conv the compiler would otherwise
//! choose (`ConvAlgo::select`: the implicit GEMM or im2col, "gemm" below) on the dense 3×3 stride-1
//! convs of ResNet-18 (at 160×160 and 224×224), ResNet-50 and VGG-11 (224×224), batch 1, 1 and 2
//! threads: the three algorithms alternate call by call (so all see the same machine load) and each
//! reports its median; plus which sizes `winograd::preferred` (the compiler's cost model) expects
//! to beat the GEMM ("pick"). With
//! `--errors`, the error of each against the f64 reference conv on the ResNet layers (random
//! weights scaled like a trained layer's, He init), relative to the largest output.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_winograd [-- --rounds 40]
//! [--errors] [--isa avx2] [--only MODEL] [--profile N [2|4]]` (`--only`: the rows whose model
//! starts so; `--profile N`: Winograd F(4×4), or the size given, alone on row N, for a profiler).

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::winograd::{self, Variant};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue, reference};

/// (model, channels in, channels out, map size, layers of the shape in the model).
const LAYERS: [(&str, usize, usize, usize, usize); 25] = [
    ("resnet18@160", 64, 64, 40, 4),
    ("resnet18@160", 128, 128, 20, 3),
    ("resnet18@160", 256, 256, 10, 3),
    ("resnet18@160", 512, 512, 5, 3),
    ("resnet18@224", 64, 64, 56, 4),
    ("resnet18@224", 128, 128, 28, 3),
    ("resnet18@224", 256, 256, 14, 3),
    ("resnet18@224", 512, 512, 7, 3),
    ("resnet50@224", 64, 64, 56, 3),
    ("resnet50@224", 128, 128, 28, 3),
    ("resnet50@224", 256, 256, 14, 5),
    ("resnet50@224", 512, 512, 7, 2),
    ("vgg11@224", 64, 128, 112, 1),
    ("vgg11@224", 128, 256, 56, 1),
    ("vgg11@224", 256, 256, 56, 1),
    ("vgg11@224", 256, 512, 28, 1),
    ("vgg11@224", 512, 512, 28, 1),
    ("vgg11@224", 512, 512, 14, 2),
    ("effnetv2s@224", 24, 24, 112, 2),
    ("effnetv2s@224", 48, 192, 56, 3),
    ("effnetv2s@224", 64, 256, 28, 3),
    ("squeezenet1_1", 32, 128, 27, 2),
    ("squeezenet1_1", 48, 192, 13, 2),
    ("squeezenet1_1", 64, 256, 13, 2),
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

/// One layer's operands and the three algorithms' packed weights and scratch.
struct Layer {
    s: ConvShape,
    algos: [ConvAlgo; 3],
    input: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    packed: [Vec<f32>; 3],
    out: Vec<f32>,
    scratch: Vec<f32>,
}

impl Layer {
    fn new(s: ConvShape, threads: usize) -> Layer {
        let algos = [
            ConvAlgo::select(&s),
            ConvAlgo::Winograd2x2,
            ConvAlgo::Winograd4x4,
        ];
        // He-uniform weights (trained layers have this scale); inputs in [-1, 1).
        let bound = (6.0 / (9 * s.in_c) as f32).sqrt();
        let weight = values(2, s.weight_len(), bound);
        let packed = algos.map(|a| conv::pack(a, &s, &weight).expect("valid shape"));
        let scratch = algos
            .iter()
            .map(|&a| conv::scratch_len(a, &s, 1, threads))
            .max()
            .unwrap_or(0);
        Layer {
            s,
            algos,
            input: values(1, s.input_len(), 1.0),
            weight,
            bias: values(3, s.out_c, 0.1),
            packed,
            out: vec![0.0; s.output_len()],
            scratch: vec![0.0; scratch],
        }
    }

    fn run(&mut self, ctx: &Ctx, which: usize, activation: Activation) {
        let args = ConvArgs {
            shape: self.s,
            batch: 1,
            input: &self.input,
            packed: &self.packed[which],
            epilogue: Epilogue {
                bias: Some(&self.bias),
                residual: None,
                activation,
            },
            output: &mut self.out,
            scratch: &mut self.scratch,
        };
        conv::conv2d(ctx, self.algos[which], args).expect("conv runs");
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
    println!(
        "ISA: {}, {rounds} interleaved rounds, medians, ms",
        isa.name()
    );
    if args.iter().any(|a| a == "--errors") {
        errors(isa);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        // Profiling aid: one Winograd size alone on layer N of the table, one thread, 3 seconds.
        let n: usize = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let which = if args.get(i + 2).map(String::as_str) == Some("2") {
            1
        } else {
            2
        };
        let (model, in_c, out_c, hw, _) = LAYERS[n.min(LAYERS.len() - 1)];
        let threads = Threads::new(1);
        let ctx = Ctx {
            isa,
            threads: &threads,
        };
        let mut layer = Layer::new(ConvShape::square(in_c, hw, out_c, 3, 1, 1, 1), 1);
        let (start, mut calls) = (Instant::now(), 0);
        while start.elapsed().as_secs() < 3 {
            layer.run(&ctx, which, Activation::Relu);
            calls += 1;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(calls);
        let name = layer.algos[which].name();
        println!("{model} {in_c}→{out_c} at {hw}×{hw}, {name}: {ms:.3} ms a call");
        return;
    }
    println!(
        "{:<13} {:>4} {:>4} {:>4} | {:>7} {:>6} {:>6} {:>5} | {:>7} {:>6} {:>6} {:>5}",
        "model",
        "in",
        "out",
        "hw",
        "1T gemm",
        "F2/g",
        "F4/g",
        "pick",
        "2T gemm",
        "F2/g",
        "F4/g",
        "pick"
    );
    let pools = [Threads::new(1), Threads::new(2)];
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let layers = LAYERS
        .iter()
        .filter(|l| only.is_none_or(|m| l.0.starts_with(m.as_str())));
    for &(model, in_c, out_c, hw, _) in layers {
        let s = ConvShape::square(in_c, hw, out_c, 3, 1, 1, 1);
        let mut line = format!("{model:<13} {in_c:>4} {out_c:>4} {hw:>4} |");
        for threads in &pools {
            let ctx = Ctx { isa, threads };
            let mut layer = Layer::new(s, threads.count());
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            for which in 0..3 {
                layer.run(&ctx, which, Activation::Relu);
            }
            for r in 0..rounds {
                for k in 0..3 {
                    // Rotate which goes first.
                    let which = (r + k) % 3;
                    let t = Instant::now();
                    layer.run(&ctx, which, Activation::Relu);
                    times[which].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            let [gemm, f2, f4] = times.map(median);
            let n = threads.count();
            let pick = match [Variant::F2, Variant::F4].map(|v| winograd::preferred(v, &s, 1, n)) {
                [true, true] => "F2 F4",
                [true, false] => "F2",
                [false, true] => "F4",
                [false, false] => "-",
            };
            line += &format!(
                " {gemm:>7.3} {:>6.2} {:>6.2} {pick:>5} |",
                f2 / gemm,
                f4 / gemm
            );
        }
        println!("{line}");
    }
}

/// Max |error| of the three algorithms against the f64 reference, relative to max |output|, and
/// the Winograd bounds of the `winograd` module doc.
fn errors(isa: Isa) {
    let threads = Threads::new(1);
    let ctx = Ctx {
        isa,
        threads: &threads,
    };
    println!(
        "{:<13} {:>4} {:>4} {:>4} | {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>9}",
        "model", "in", "out", "hw", "max|y|", "gemm", "F2", "F4", "F2 bound", "F4 bound"
    );
    for (model, in_c, out_c, hw, _) in LAYERS.iter().filter(|l| l.0.starts_with("resnet")) {
        let s = ConvShape::square(*in_c, *hw, *out_c, 3, 1, 1, 1);
        let mut layer = Layer::new(s, 1);
        let bias = layer.bias.clone();
        let ep = Epilogue {
            bias: Some(&bias),
            residual: None,
            activation: Activation::None,
        };
        let mut want = vec![0.0; s.output_len()];
        reference::conv2d(&s, 1, &layer.input, &layer.weight, &ep, &mut want).expect("runs");
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let mut rel = [0.0f32; 3];
        for (which, r) in rel.iter_mut().enumerate() {
            layer.run(&ctx, which, Activation::None);
            let err = layer
                .out
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            *r = err / scale;
        }
        let xw = layer.weight.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let bound = |v: Variant| {
            let n = (in_c + v.rounding_steps()) as f64 * f64::from(f32::EPSILON / 2.0);
            n / (1.0 - n) * *in_c as f64 * v.error_growth() * f64::from(xw) / f64::from(scale)
        };
        println!(
            "{model:<13} {in_c:>4} {out_c:>4} {hw:>4} | {scale:>7.3} | {:>9.2e} {:>9.2e} {:>9.2e} | {:>9.2e} {:>9.2e}",
            rel[0],
            rel[1],
            rel[2],
            bound(Variant::F2),
            bound(Variant::F4),
        );
    }
}
