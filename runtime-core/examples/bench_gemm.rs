//! Benchmark of the pointwise (GEMM) convs: GFLOP/s of every distinct 1×1 conv of ResNeXt-50 at
//! batch 1 on 1 and 2 threads, against this machine's measured FMA peak; plus the stem, the
//! classifier and the thread pool's per-call overhead.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_gemm [-- --isa avx2] [--quick]
//! [--mobilenet | --resnet50]`; `--mobilenet` times MobileNetV2's 1×1 convs instead of
//! ResNeXt-50's (small problems, where how the work is split between the threads shows),
//! `--resnet50` ResNet-50's; `--shape IN,OUT,HW` times only that conv (of the table, or of
//! none: then at stride 1).

use std::time::{Duration, Instant};

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{Activation, ConvArgs, ConvShape, Epilogue};

mod fma_peak;

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

/// MobileNetV2's 1×1 convs, in the layout of [`POINTWISE`].
/// ResNet-50's 1×1 convs (torchvision, stride on the 3×3 conv): `(in, out, hw, stride, count)`.
const RESNET50: [(usize, usize, usize, usize, usize); 15] = [
    (64, 64, 56, 1, 1),
    (64, 256, 56, 1, 4),
    (256, 64, 56, 1, 2),
    (256, 128, 56, 1, 1),
    (256, 512, 56, 2, 1),
    (128, 512, 28, 1, 4),
    (512, 128, 28, 1, 3),
    (512, 256, 28, 1, 1),
    (512, 1024, 28, 2, 1),
    (256, 1024, 14, 1, 6),
    (1024, 256, 14, 1, 5),
    (1024, 512, 14, 1, 1),
    (1024, 2048, 14, 2, 1),
    (512, 2048, 7, 1, 3),
    (2048, 512, 7, 1, 2),
];

const MOBILENET_V2: [(usize, usize, usize, usize, usize); 19] = [
    (32, 16, 112, 1, 1),
    (16, 96, 112, 1, 1),
    (96, 24, 56, 1, 1),
    (24, 144, 56, 1, 2),
    (144, 24, 56, 1, 1),
    (144, 32, 28, 1, 1),
    (32, 192, 28, 1, 3),
    (192, 32, 28, 1, 2),
    (192, 64, 14, 1, 1),
    (64, 384, 14, 1, 4),
    (384, 64, 14, 1, 3),
    (384, 96, 14, 1, 1),
    (96, 576, 14, 1, 3),
    (576, 96, 14, 1, 2),
    (576, 160, 7, 1, 1),
    (160, 960, 7, 1, 3),
    (960, 160, 7, 1, 2),
    (960, 320, 7, 1, 1),
    (320, 1280, 7, 1, 1),
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

/// Nanoseconds for a cache line to go from one thread to another and back: two threads (on two
/// cores while both spin) hand a flag back and forth `rounds` times. On a 2-vCPU AMD EPYC Zen 4 VM
/// it measured 300–390 ns (`bench/RESULTS.md`, "2026-12-01 06:42 UTC — AMD EPYC Zen 4"), where two
/// cores sharing an L3 take well under 100: data one core wrote is far from the other (see
/// ARCHITECTURE.md, "Threads and caches").
fn round_trip_ns(rounds: u32) -> f64 {
    use std::sync::atomic::{AtomicU32, Ordering};
    let flag = AtomicU32::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..rounds {
                while flag.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                flag.store(2 * i + 2, Ordering::Release);
            }
        });
        for i in 0..rounds {
            flag.store(2 * i + 1, Ordering::Release);
            while flag.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
    });
    start.elapsed().as_secs_f64() * 1e9 / f64::from(rounds)
}

/// Seconds per call of `f`: the fastest of eight timed batches (the machine is shared, so the
/// minimum is the signal).
fn best_time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(100));
    let reps = ((budget.as_secs_f64() / 8.0 / once.as_secs_f64()) as usize).clamp(1, 100_000);
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// Seconds per call of `s` (bias + ReLU epilogue, like the model's).
fn time_conv(s: &ConvShape, isa: Isa, threads: &Threads, budget: Duration) -> f64 {
    let algo = ConvAlgo::select(s);
    let input = values(1, s.input_len());
    let packed = conv::pack(algo, s, &values(2, s.weight_len())).expect("valid shape");
    let bias = values(3, s.out_c);
    let ep = Epilogue {
        bias: Some(&bias),
        residual: None,
        activation: Activation::Relu,
    };
    let mut out = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(algo, s, 1, threads.count())];
    best_time(budget, || {
        let args = ConvArgs {
            shape: *s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: ep,
            output: &mut out,
            scratch: &mut scratch,
        };
        conv::conv2d(&Ctx { isa, threads }, algo, args).expect("conv runs");
    })
}

fn pct(rate: f64, peak: Option<f64>) -> String {
    peak.map_or(String::from("-"), |p| format!("{:.0}%", 100.0 * rate / p))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let isa = match args.iter().position(|a| a == "--isa") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("generic") => Isa::Generic,
            Some("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        },
        None => isa::isa(),
    };
    let budget = Duration::from_millis(if quick { 80 } else { 300 });
    let pools = [Threads::new(1), Threads::new(2)];
    let peaks: Vec<Option<f64>> = pools
        .iter()
        .map(|p| fma_peak::fma_peak_gflops(p, isa, Duration::from_millis(400)))
        .collect();
    println!("ISA: {}", isa.name());
    for (p, peak) in pools.iter().zip(&peaks) {
        if let Some(g) = peak {
            println!("FMA peak, {} thread(s): {g:.0} GFLOP/s", p.count());
        }
    }
    // Per-call overhead: tasks of a fixed 5 µs of spinning, one per thread, minus those 5 µs.
    let work = Duration::from_micros(5);
    for p in &pools {
        let secs = best_time(Duration::from_millis(50), || {
            p.run(p.count(), &|_| {
                let t = Instant::now();
                while t.elapsed() < work {
                    std::hint::spin_loop();
                }
            })
        });
        println!(
            "thread pool: overhead of one run ({} tasks of 5 µs on {} thread(s)): {:.2} µs",
            p.count(),
            p.count(),
            (secs - work.as_secs_f64()) * 1e6
        );
    }
    println!(
        "cache line round trip between two spinning threads: {:.0} ns",
        round_trip_ns(200_000)
    );
    if args.iter().any(|a| a == "--peak") {
        return;
    }
    if args.iter().any(|a| a == "--stem") {
        // Profiling aid: the stem alone, single-threaded, for a few seconds.
        let stem = ConvShape::square(3, 224, 64, 7, 2, 3, 1);
        let secs = time_conv(&stem, isa, &pools[0], Duration::from_secs(3));
        println!("stem: {:.1} µs", secs * 1e6);
        return;
    }
    println!();
    println!(
        "{:>5} {:>5} {:>4} {:>2} {:>3} | {:>8} {:>7} {:>5} | {:>8} {:>7} {:>5}",
        "in", "out", "hw", "s", "n", "1T µs", "GFLOP/s", "peak", "2T µs", "GFLOP/s", "peak"
    );
    let mut totals = [0.0f64; 2];
    let mut macs_total = 0.0;
    let mobilenet = args.iter().any(|a| a == "--mobilenet");
    let (model, convs): (&str, &[_]) = if mobilenet {
        ("MobileNetV2", &MOBILENET_V2)
    } else if args.iter().any(|a| a == "--resnet50") {
        ("ResNet-50", &RESNET50)
    } else {
        ("ResNeXt-50", &POINTWISE)
    };
    // `--shape IN,OUT,HW`: that conv alone (for a profiler).
    let only: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect());
    // A shape of no table (`--shape IN,OUT,HW`) runs alone, stride 1.
    let custom: Vec<(usize, usize, usize, usize, usize)> = match only.as_deref() {
        Some(&[i, o, hw]) if !convs.iter().any(|c| (c.0, c.1, c.2) == (i, o, hw)) => {
            vec![(i, o, hw, 1, 1)]
        }
        _ => Vec::new(),
    };
    let convs = if custom.is_empty() { convs } else { &custom };
    for &(in_c, out_c, hw, stride, count) in convs {
        if only
            .as_ref()
            .is_some_and(|o| o.as_slice() != [in_c, out_c, hw])
        {
            continue;
        }
        let s = ConvShape::square(in_c, hw, out_c, 1, stride, 0, 1);
        let gflop = 2.0 * s.macs() as f64 / 1e9;
        macs_total += count as f64 * s.macs() as f64;
        let mut line = format!("{in_c:>5} {out_c:>5} {hw:>4} {stride:>2} {count:>3} |");
        for (i, p) in pools.iter().enumerate() {
            let secs = time_conv(&s, isa, p, budget);
            totals[i] += count as f64 * secs;
            let rate = gflop / secs;
            line += &format!(
                " {:>8.1} {:>7.0} {:>5} |",
                secs * 1e6,
                rate,
                pct(rate, peaks[i])
            );
        }
        println!("{}", line.trim_end_matches('|'));
    }
    for (i, p) in pools.iter().enumerate() {
        let rate = 2.0 * macs_total / totals[i] / 1e9;
        println!(
            "all 1×1 convs of {model} ({:.2} GMAC), {} thread(s): {:.2} ms, {:.0} GFLOP/s ({} of peak)",
            macs_total / 1e9,
            p.count(),
            totals[i] * 1e3,
            rate,
            pct(rate, peaks[i])
        );
    }
    if mobilenet {
        return;
    }
    println!();
    let stem = ConvShape::square(3, 224, 64, 7, 2, 3, 1);
    for p in &pools {
        let secs = time_conv(&stem, isa, p, budget);
        println!(
            "stem 7×7/2 3→64 (im2col), {} thread(s): {:.1} µs, {:.0} GFLOP/s",
            p.count(),
            secs * 1e6,
            2.0 * stem.macs() as f64 / secs / 1e9
        );
    }
    let (k, m) = (2048, 1000);
    let packed = dense::pack(k, m, &values(4, k * m)).expect("valid");
    let x = values(5, k);
    let bias = values(6, m);
    for p in &pools {
        let mut out = vec![0.0; m];
        let mut scratch = vec![0.0; dense::scratch_len(1, k, p.count())];
        let ep = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        let secs = best_time(budget, || {
            let args = DenseArgs {
                batch: 1,
                in_features: k,
                out_features: m,
                input: &x,
                packed: &packed,
                epilogue: ep,
                output: &mut out,
                scratch: &mut scratch,
            };
            dense::run(&Ctx { isa, threads: p }, args).expect("dense runs");
        });
        println!(
            "classifier 2048→1000, batch 1, {} thread(s): {:.1} µs",
            p.count(),
            secs * 1e6
        );
    }
}
