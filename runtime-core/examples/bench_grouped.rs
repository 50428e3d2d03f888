//! Benchmarks the direct grouped 3×3 convs on ResNeXt-50's shapes, MobileNetV2's depthwise convs and
//! the pools: median µs and GFLOP/s per tier at 1 and 2 threads, batch 1 and 8, beside the reference.
//!
//! `cargo run --release -p resnext-runtime-core --example bench_grouped [-- --quick]`. Compare with
//! onnxruntime's per-layer numbers in shared/PERF.md (batch 1, 2 threads).

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::pool::PoolArgs;
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, PlanesArgs, PoolShape, depthwise, grouped, pool,
    reference,
};

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

/// `(channels, input size, stride, layers of ResNeXt-50 with this shape)`.
const RESNEXT50: [(usize, usize, usize, usize); 7] = [
    (128, 56, 1, 3),
    (256, 56, 2, 1),
    (256, 28, 1, 3),
    (512, 28, 2, 1),
    (512, 14, 1, 5),
    (1024, 14, 2, 1),
    (1024, 7, 1, 2),
];

fn bench_conv(
    name: &str,
    s: &ConvShape,
    depthwise_conv: bool,
    runs: usize,
    with_reference: bool,
) -> [f64; 2] {
    let mut us_b1_2t = [0.0; 2];
    for batch in [1, 8] {
        let input = fill(batch * s.input_len());
        let weight = fill(s.weight_len());
        let bias = fill(s.out_c);
        let packed = if depthwise_conv {
            depthwise::pack(s, &weight)
        } else {
            grouped::pack(s, &weight)
        };
        let ep = Epilogue {
            bias: Some(&bias),
            residual: None,
            activation: Activation::Relu,
        };
        let mut out = vec![0.0; batch * s.output_len()];
        let flop = 2.0 * (batch * s.macs()) as f64;
        let mut row = format!("{name:<28} b{batch}");
        for isa in Isa::all_supported() {
            for t in [1, 2] {
                let threads = Threads::new(t);
                let us = median_us(runs, || {
                    let ctx = Ctx {
                        isa,
                        threads: &threads,
                    };
                    let args = ConvArgs {
                        shape: *s,
                        batch,
                        input: &input,
                        packed: &packed,
                        epilogue: ep,
                        output: &mut out,
                        scratch: &mut [],
                    };
                    let r = if depthwise_conv {
                        depthwise::run(&ctx, args)
                    } else {
                        grouped::run(&ctx, args)
                    };
                    r.expect("benchmark shapes are valid");
                });
                if batch == 1 && isa == Isa::detect() {
                    us_b1_2t[t - 1] = us;
                }
                row += &format!(
                    " | {:>7} {t}t {:>8.1} µs {:>6.1} GF/s",
                    isa.name(),
                    us,
                    flop / us / 1e3
                );
            }
        }
        if with_reference && batch == 1 {
            let us = median_us(1, || {
                reference::conv2d(s, batch, &input, &weight, &ep, &mut out).expect("valid");
            });
            row += &format!(" | reference {us:>9.1} µs {:>5.2} GF/s", flop / us / 1e3);
        }
        println!("{row}");
    }
    us_b1_2t
}

/// `--profile I`: runs ResNeXt-50 grouped shape `I` on the detected tier, 1 thread, batch 1, for a
/// few seconds, for `perf`.
fn profile(i: usize) {
    let Some(&(c, size, stride, _)) = RESNEXT50.get(i) else {
        eprintln!("--profile takes 0..{}", RESNEXT50.len());
        return;
    };
    let s = ConvShape::square(c, size, c, 3, stride, 1, 32);
    let input = fill(s.input_len());
    let packed = grouped::pack(&s, &fill(s.weight_len()));
    let mut out = vec![0.0; s.output_len()];
    let threads = Threads::new(1);
    let ep = Epilogue::default();
    let us = median_us(5000, || {
        let args = ConvArgs {
            shape: s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: ep,
            output: &mut out,
            scratch: &mut [],
        };
        let ctx = Ctx {
            isa: Isa::detect(),
            threads: &threads,
        };
        grouped::run(&ctx, args).expect("valid");
    });
    println!("{us:.1} µs, {:.1} GF/s", 2.0 * s.macs() as f64 / us / 1e3);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        profile(args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runs = if quick { 5 } else { 31 };
    println!(
        "tiers: {:?}; detected {}; median of {runs} runs; GF/s = 2·MACs / time",
        Isa::all_supported(),
        Isa::detect().name()
    );
    println!("\n== ResNeXt-50 grouped 3×3 convs (32 groups), bias + ReLU fused ==");
    let mut total = [0.0; 2];
    for &(c, size, stride, layers) in &RESNEXT50 {
        let s = ConvShape::square(c, size, c, 3, stride, 1, 32);
        let name = format!("c{c}@{size}→{} s{stride} ×{layers}", s.out_h);
        let us = bench_conv(&name, &s, false, runs, true);
        for t in 0..2 {
            total[t] += us[t] * layers as f64;
        }
    }
    println!(
        "all 16 grouped layers, batch 1, {}: {:.0} µs at 1 thread, {:.0} µs at 2 threads \
         (onnxruntime, 2 threads: ≈ 5000–6500 µs)",
        Isa::detect().name(),
        total[0],
        total[1]
    );

    println!("\n== MobileNetV2 depthwise convs, bias + ReLU fused ==");
    for (c, size, stride, k) in [
        (32, 112, 1, 3),
        (96, 112, 2, 3),
        (144, 56, 1, 3),
        (960, 7, 1, 3),
        (144, 56, 1, 5),
    ] {
        let s = ConvShape::square(c, size, c, k, stride, k / 2, c);
        bench_conv(
            &format!("dw{k} c{c}@{size}→{} s{stride}", s.out_h),
            &s,
            true,
            runs,
            false,
        );
    }

    println!("\n== Pools ==");
    let stem = PoolShape {
        channels: 64,
        in_h: 112,
        in_w: 112,
        out_h: 56,
        out_w: 56,
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1, 1, 1, 1],
    };
    let input = fill(64 * 112 * 112);
    let mut out = vec![0.0; 64 * 56 * 56];
    let mut row = "max 3×3/2 64×112×112".to_string();
    for isa in Isa::all_supported() {
        for t in [1, 2] {
            let threads = Threads::new(t);
            let us = median_us(runs, || {
                let args = PoolArgs {
                    shape: stem,
                    batch: 1,
                    input: &input,
                    output: &mut out,
                };
                pool::max_pool2d(
                    &Ctx {
                        isa,
                        threads: &threads,
                    },
                    args,
                )
                .expect("valid");
            });
            row += &format!(" | {} {t}t {us:.1} µs", isa.name());
        }
    }
    let us = median_us(3, || {
        reference::max_pool2d(&stem, 1, &input, &mut out).expect("valid")
    });
    println!("{row} | reference {us:.1} µs");
    let input = fill(2048 * 49);
    let mut out = vec![0.0; 2048];
    let mut row = "global avg 2048×7×7".to_string();
    for isa in Isa::all_supported() {
        for t in [1, 2] {
            let threads = Threads::new(t);
            let us = median_us(runs, || {
                let args = PlanesArgs {
                    batch: 1,
                    channels: 2048,
                    spatial: 49,
                    input: &input,
                    output: &mut out,
                };
                pool::global_avg_pool(
                    &Ctx {
                        isa,
                        threads: &threads,
                    },
                    args,
                )
                .expect("valid");
            });
            row += &format!(" | {} {t}t {us:.1} µs", isa.name());
        }
    }
    let us = median_us(3, || {
        reference::global_avg_pool(1, 2048, 49, &input, &mut out).expect("valid")
    });
    println!("{row} | reference {us:.1} µs");
}
