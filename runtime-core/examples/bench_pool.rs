//! Benchmarks the max and average pools of GoogLeNet and Inception-v3 (batch 1) at 1 and 2
//! threads on the best tier this CPU supports: median µs of each shape and the sum over the
//! model's pools. Compare with onnxruntime's per-node profile (`bench/ort_profile.py MODEL 1 50
//! --nodes`).
//!
//! `cargo run --release -p resnext-runtime-core --example bench_pool [-- --runs N]`

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::PoolShape;
use resnext_runtime_core::kernels::pool::{self, PoolArgs};

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

#[derive(Clone, Copy)]
enum Kind {
    Max,
    /// Average, counting the padding (PyTorch's default, Inception-v3's pools).
    Avg,
}

/// `(kind, channels, input size, kernel, stride, pad, ceil mode, pools with this shape)`.
type Pools = &'static [(Kind, usize, usize, usize, usize, usize, bool, usize)];

const GOOGLENET: Pools = &[
    (Kind::Max, 64, 112, 3, 2, 0, true, 1),
    (Kind::Max, 192, 56, 3, 2, 0, true, 1),
    (Kind::Max, 192, 28, 3, 1, 1, true, 1),
    (Kind::Max, 256, 28, 3, 1, 1, true, 1),
    (Kind::Max, 480, 28, 3, 2, 0, true, 1),
    (Kind::Max, 480, 14, 3, 1, 1, true, 1),
    (Kind::Max, 512, 14, 3, 1, 1, true, 3),
    (Kind::Max, 528, 14, 3, 1, 1, true, 1),
    (Kind::Max, 832, 14, 2, 2, 0, true, 1),
    (Kind::Max, 832, 7, 3, 1, 1, true, 2),
];

const INCEPTION_V3: Pools = &[
    (Kind::Max, 64, 147, 3, 2, 0, false, 1),
    (Kind::Max, 192, 71, 3, 2, 0, false, 1),
    (Kind::Avg, 192, 35, 3, 1, 1, false, 1),
    (Kind::Avg, 256, 35, 3, 1, 1, false, 1),
    (Kind::Avg, 288, 35, 3, 1, 1, false, 1),
    (Kind::Max, 288, 35, 3, 2, 0, false, 1),
    (Kind::Avg, 768, 17, 3, 1, 1, false, 4),
    (Kind::Max, 768, 17, 3, 2, 0, false, 1),
    (Kind::Avg, 1280, 8, 3, 1, 1, false, 1),
    (Kind::Avg, 2048, 8, 3, 1, 1, false, 1),
];

fn shape(
    channels: usize,
    size: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ceil: bool,
) -> PoolShape {
    let span = size + 2 * pad - k;
    let out = if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    // PyTorch's ceil mode drops a last window that starts in the padding.
    let out = if ceil && (out - 1) * stride >= size + pad {
        out - 1
    } else {
        out
    };
    // The bottom and right padding that the last window reaches (more than `pad` in ceil mode).
    let end = ((out - 1) * stride + k).saturating_sub(size + pad).max(pad);
    PoolShape {
        channels,
        in_h: size,
        in_w: size,
        out_h: out,
        out_w: out,
        kernel: [k, k],
        stride: [stride, stride],
        pads: [pad, pad, end, end],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(200);
    let isa = Isa::detect();
    println!("ISA: {isa:?}");
    for (model, pools) in [("GoogLeNet", GOOGLENET), ("Inception-v3", INCEPTION_V3)] {
        for threads in [1, 2] {
            let pool_threads = Threads::new(threads);
            let ctx = Ctx {
                isa,
                threads: &pool_threads,
            };
            let mut total = 0.0;
            for &(kind, c, size, k, stride, pad, ceil, count) in pools {
                let s = shape(c, size, k, stride, pad, ceil);
                s.check().expect("a valid pool");
                let input: Vec<f32> = (0..c * size * size)
                    .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                    .collect();
                let mut output = vec![0.0; c * s.out_h * s.out_w];
                let us = median_us(runs, || {
                    let args = PoolArgs {
                        shape: s,
                        batch: 1,
                        input: &input,
                        output: &mut output,
                    };
                    match kind {
                        Kind::Max => pool::max_pool2d(&ctx, args),
                        Kind::Avg => pool::avg_pool2d(&ctx, args, true),
                    }
                    .expect("the pool runs");
                });
                total += us * count as f64;
                let name = match kind {
                    Kind::Max => "max",
                    Kind::Avg => "avg",
                };
                println!(
                    "{model:<13} {threads}T {name} {k}×{k}/{stride} pad {pad} {c:>5} ch {size:>3}→{:<3} ×{count}: {us:>8.1} µs",
                    s.out_h
                );
            }
            println!("{model:<13} {threads}T all pools: {total:.1} µs");
        }
    }
}
