//! fp32 against bf16 on ResNeXt-50's 1×1 convs, and on the other convs of ResNeXt-50 and ResNet-50
//! (grouped and dense 3×3, the 7×7 stem: the fp32 algorithm `ConvAlgo::select` picks against
//! `ConvAlgo::DirectBf16`), batch 1, bias + ReLU: each shape on 1 and 2 threads, the two
//! algorithms alternated call by call on the same data, medians of the rounds, and the bf16 / fp32
//! time ratio (the machine is shared: ratios of interleaved runs are the signal).
//!
//! With `--cold`, each call reads the weights and the input from one of enough copies (64 MiB of
//! each) to miss the caches: in a whole model the weights do not fit in them, and the input was
//! written by the layer before, partly by the other core.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_bf16 [-- --rounds N] [--cold]`.

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::gemm::bf16;
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue};

/// A conv of the tables: (in_c, out_c, input size, kernel, stride, groups, how many in the model).
type Row = (usize, usize, usize, usize, usize, usize, usize);

/// ResNeXt-50 32×4d's 1×1 convs: (in_c, out_c, input size, stride, how many in the model).
const POINTWISE: [(usize, usize, usize, usize, usize); 16] = [
    (64, 128, 56, 1, 1),
    (256, 128, 56, 1, 2),
    (128, 256, 56, 1, 3),
    (64, 256, 56, 1, 1),
    (256, 256, 56, 1, 1),
    (256, 512, 28, 1, 4),
    (256, 512, 56, 2, 1),
    (512, 256, 28, 1, 3),
    (512, 512, 28, 1, 1),
    (512, 1024, 14, 1, 6),
    (512, 1024, 28, 2, 1),
    (1024, 512, 14, 1, 5),
    (1024, 1024, 14, 1, 1),
    (1024, 2048, 7, 1, 3),
    (1024, 2048, 14, 2, 1),
    (2048, 1024, 7, 1, 2),
];

/// ResNeXt-50 32×4d's grouped 3×3 convs and stem.
const RESNEXT_OTHER: [Row; 8] = [
    (3, 64, 224, 7, 2, 1, 1),
    (128, 128, 56, 3, 1, 32, 3),
    (256, 256, 56, 3, 2, 32, 1),
    (256, 256, 28, 3, 1, 32, 3),
    (512, 512, 28, 3, 2, 32, 1),
    (512, 512, 14, 3, 1, 32, 5),
    (1024, 1024, 14, 3, 2, 32, 1),
    (1024, 1024, 7, 3, 1, 32, 2),
];

/// ResNet-50's dense 3×3 convs.
const RESNET_3X3: [Row; 7] = [
    (64, 64, 56, 3, 1, 1, 3),
    (128, 128, 56, 3, 2, 1, 1),
    (128, 128, 28, 3, 1, 1, 3),
    (256, 256, 28, 3, 2, 1, 1),
    (256, 256, 14, 3, 1, 1, 5),
    (512, 512, 14, 3, 2, 1, 1),
    (512, 512, 7, 3, 1, 1, 2),
];

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Bytes of weight copies a `--cold` call rotates through: twice the L3 of the machines measured.
const COLD_BYTES: usize = 64 << 20;

/// One algorithm's prepared call.
struct Call {
    algo: ConvAlgo,
    /// Copies of the packed weights, used in turn (one unless `--cold`).
    packed: Vec<Vec<f32>>,
    next: usize,
    scratch: Vec<f32>,
}

impl Call {
    fn new(algo: ConvAlgo, s: &ConvShape, weight: &[f32], threads: usize, cold: bool) -> Call {
        let packed = conv::pack(algo, s, weight).expect("valid shape");
        let copies = if cold {
            COLD_BYTES.div_ceil(4 * packed.len())
        } else {
            1
        };
        Call {
            algo,
            packed: vec![packed; copies],
            next: 0,
            scratch: vec![0.0; conv::scratch_len(algo, s, 1, threads)],
        }
    }

    /// Seconds of one call.
    fn time(
        &mut self,
        ctx: &Ctx,
        s: &ConvShape,
        input: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) -> f64 {
        self.next = (self.next + 1) % self.packed.len();
        let args = ConvArgs {
            shape: *s,
            batch: 1,
            input,
            packed: &self.packed[self.next],
            epilogue: Epilogue {
                bias: Some(bias),
                residual: None,
                activation: Activation::Relu,
            },
            output: out,
            scratch: &mut self.scratch,
        };
        let t = Instant::now();
        conv::conv2d(ctx, self.algo, args).expect("conv runs");
        t.elapsed().as_secs_f64()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(200);
    let cold = args.iter().any(|a| a == "--cold");
    let isa = isa::isa();
    println!(
        "ISA: {}, vdpbf16ps: {}, {rounds} alternated rounds per shape, weights {}",
        isa.name(),
        bf16::dot_supported(),
        if cold { "cold" } else { "hot" }
    );
    let pointwise: Vec<Row> = POINTWISE
        .iter()
        .map(|&(i, o, hw, s, n)| (i, o, hw, 1, s, 1, n))
        .collect();
    let tables: [(&str, &[Row]); 3] = [
        ("1×1 convs of ResNeXt-50", &pointwise),
        ("grouped 3×3 convs and stem of ResNeXt-50", &RESNEXT_OTHER),
        ("dense 3×3 convs of ResNet-50", &RESNET_3X3),
    ];
    for (name, rows) in tables {
        println!(
            "{:>5} {:>5} {:>4} {:>2} {:>2} {:>3} {:>2} | {:>14} {:>8} {:>7} | {:>8} {:>7} | {:>6}",
            "in",
            "out",
            "hw",
            "k",
            "s",
            "g",
            "T",
            "fp32",
            "µs",
            "GFLOP/s",
            "bf16 µs",
            "GFLOP/s",
            "ratio"
        );
        for threads in [1, 2] {
            let totals = bench_table(isa, rows, threads, rounds, cold);
            println!(
                "all {name}, {threads} thread(s): fp32 {:.2} ms, bf16 {:.2} ms ({:.2}×)",
                totals[0] * 1e3,
                totals[1] * 1e3,
                totals[1] / totals[0]
            );
        }
    }
}

/// Times every row of `rows` (fp32 against bf16, alternated) and prints it; returns the model's
/// totals (each row's median times its count) in seconds.
fn bench_table(isa: isa::Isa, rows: &[Row], threads: usize, rounds: usize, cold: bool) -> [f64; 2] {
    let pool = Threads::new(threads);
    let ctx = Ctx {
        isa,
        threads: &pool,
    };
    let mut totals = [0.0f64; 2];
    for &(in_c, out_c, hw, k, stride, group, count) in rows {
        let s = ConvShape::square(in_c, hw, out_c, k, stride, k / 2, group);
        let inputs = vec![
            values(1, s.input_len());
            if cold {
                COLD_BYTES.div_ceil(4 * s.input_len())
            } else {
                1
            }
        ];
        let (weight, bias) = (values(2, s.weight_len()), values(3, s.out_c));
        let mut out = vec![0.0; s.output_len()];
        let (fp32, bf16) = if k == 1 {
            (ConvAlgo::Pointwise, ConvAlgo::PointwiseBf16)
        } else {
            (ConvAlgo::select(&s), ConvAlgo::DirectBf16)
        };
        let mut calls = [
            Call::new(fp32, &s, &weight, threads, cold),
            Call::new(bf16, &s, &weight, threads, cold),
        ];
        let mut times = [Vec::new(), Vec::new()];
        for round in 0..rounds + 5 {
            for (c, t) in calls.iter_mut().zip(&mut times) {
                let input = &inputs[round % inputs.len()];
                let secs = c.time(&ctx, &s, input, &bias, &mut out);
                // The first rounds warm the caches and the pool.
                if round >= 5 {
                    t.push(secs);
                }
            }
        }
        let ratio = median(times[0].iter().zip(&times[1]).map(|(f, b)| b / f).collect());
        let [f, b] = times.map(median);
        totals[0] += count as f64 * f;
        totals[1] += count as f64 * b;
        let gflop = 2.0 * s.macs() as f64 / 1e9;
        println!(
            "{in_c:>5} {out_c:>5} {hw:>4} {k:>2} {stride:>2} {group:>3} {threads:>2} | {:>14} {:>8.1} {:>7.0} | {:>8.1} {:>7.0} | {ratio:>6.2}",
            fp32.name(),
            f * 1e6,
            gflop / f,
            b * 1e6,
            gflop / b
        );
    }
    totals
}
