//! Benchmark of fully connected layers at small batch, which are memory-bound: GB/s of packed
//! weights streamed by the GEMM path (`dense::run`) and by `dense::run_gemv` (the GEMV kernels up
//! to the tier's GEMV batch), on AlexNet's and VGG's classifier shapes, against this machine's
//! streaming-read bandwidth (a plain sum over a buffer far larger than the caches).
//!
//! The two paths are alternated call by call (the order swapped every round) on cold weights
//! (each call reads another copy, together well beyond the L3), and the medians are compared.
//! The weights are in `Buffer`s, huge pages where the system allows, as a loaded model's are
//! (`Weights`); the streaming read is measured on both a `Buffer` and a plain `Vec` (4 KB pages
//! where transparent huge pages are `madvise`-only).
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_dense [-- --isa avx2]
//! [--batch 1,2,4] [--rounds 25]`.

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::buffer::Buffer;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{Activation, Epilogue};

/// (in_features, out_features, where): AlexNet's and VGG's classifiers.
const SHAPES: [(usize, usize, &str); 4] = [
    (9216, 4096, "AlexNet fc6"),
    (25088, 4096, "VGG fc6"),
    (4096, 4096, "fc7"),
    (4096, 1000, "fc8"),
];

/// Bytes of weight copies each shape cycles through: well beyond the 32 MiB L3.
const COLD_BYTES: usize = 256 << 20;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Sum of `data` with 16 independent accumulators (vectorised by the compiler).
fn sum(data: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for c in data.chunks_exact(16) {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum()
}

/// GB/s of a streaming read of `data` by `threads` threads (each its own contiguous share), the
/// median of `rounds`.
fn read_bandwidth(data: &[f32], threads: usize, rounds: usize) -> f64 {
    let share = data.len().div_ceil(threads);
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let total: f32 = std::thread::scope(|s| {
                let handles: Vec<_> = data
                    .chunks(share)
                    .map(|part| s.spawn(move || sum(part)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
            });
            std::hint::black_box(total);
            t.elapsed().as_secs_f64()
        })
        .collect();
    (data.len() * 4) as f64 / median(times) / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let isa = match arg("--isa").map(String::as_str) {
        Some("generic") => Isa::Generic,
        Some("avx2") => Isa::Avx2,
        Some(_) => Isa::Avx512,
        None => isa::isa(),
    };
    let batches: Vec<usize> = arg("--batch").map_or(vec![1, 2, 4], |s| {
        s.split(',').filter_map(|b| b.parse().ok()).collect()
    });
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(25);
    println!("ISA: {}, rounds {rounds}", isa.name());

    let plain = values(9, 64 << 20);
    let mut huge = Buffer::zeroed(plain.len());
    huge.copy_from_slice(&plain);
    for threads in [1, 2] {
        println!(
            "streaming read of 256 MiB, {threads} thread(s): {:.1} GB/s in a Buffer (huge pages: {}), {:.1} GB/s in a Vec",
            read_bandwidth(&huge, threads, rounds),
            huge.is_mapped(),
            read_bandwidth(&plain, threads, rounds),
        );
    }
    drop((plain, huge));

    println!();
    println!(
        "| layer | in → out | batch | threads | MB | GEMM ms | GEMM GB/s | new ms | new GB/s | new/GEMM time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let pools = [Threads::new(1), Threads::new(2)];
    for &(k, n, what) in &SHAPES {
        let weight = values(1, k * n);
        let packed = dense::pack(k, n, &weight).expect("valid shape");
        drop(weight);
        let bytes = packed.len() * 4;
        let copies: Vec<Buffer> = (0..COLD_BYTES.div_ceil(bytes).max(2))
            .map(|_| {
                let mut b = Buffer::zeroed(packed.len());
                b.copy_from_slice(&packed);
                b
            })
            .collect();
        drop(packed);
        let bias = values(3, n);
        for &batch in &batches {
            let input = values(2, batch * k);
            let mut out = vec![0.0; batch * n];
            let mut scratch = vec![0.0; dense::scratch_len(batch, k, 2)];
            for threads in &pools {
                let ctx = Ctx { isa, threads };
                let mut call = 0usize;
                let mut time = |gemv: bool| {
                    let packed = &copies[call % copies.len()];
                    call += 1;
                    let args = DenseArgs {
                        batch,
                        in_features: k,
                        out_features: n,
                        input: &input,
                        packed,
                        epilogue: Epilogue {
                            bias: Some(&bias),
                            residual: None,
                            activation: Activation::Relu,
                        },
                        output: &mut out,
                        scratch: &mut scratch,
                    };
                    let t = Instant::now();
                    let r = if gemv {
                        dense::run_gemv(&ctx, args)
                    } else {
                        dense::run(&ctx, args)
                    };
                    r.expect("dense runs");
                    t.elapsed().as_secs_f64()
                };
                time(false);
                time(true);
                let (mut old, mut new) = (Vec::new(), Vec::new());
                for r in 0..rounds {
                    if r % 2 == 0 {
                        old.push(time(false));
                        new.push(time(true));
                    } else {
                        new.push(time(true));
                        old.push(time(false));
                    }
                }
                let (old, new) = (median(old), median(new));
                println!(
                    "| {what} | {k} → {n} | {batch} | {} | {:.0} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} |",
                    threads.count(),
                    bytes as f64 / 1e6,
                    old * 1e3,
                    bytes as f64 / old / 1e9,
                    new * 1e3,
                    bytes as f64 / new / 1e9,
                    new / old
                );
            }
        }
    }
}
