//! The machine's fp32 FMA throughput, the yardstick the benchmarks print every kernel's GFLOP/s
//! against: independent chains of vector FMAs on the widest tier this CPU has (AVX-512 or AVX2+FMA),
//! on every thread of a pool at once.

use std::time::{Duration, Instant};

use resnext_runtime_core::exec::isa::Isa;
use resnext_runtime_core::exec::threads::Threads;

/// Independent accumulator chains: enough to cover the FMA latency (4 cycles) on two pipes.
const CHAINS: usize = 12;

/// FMA peak of `threads` (all its threads together) in GFLOP/s, best of repeated tries over about
/// `budget`, on the widest tier of `isa` and below that this CPU supports; `None` without AVX2+FMA.
pub fn fma_peak_gflops(threads: &Threads, isa: Isa, budget: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = if isa == Isa::Avx512 && Isa::Avx512.supported() {
            16
        } else if isa != Isa::Generic && Isa::Avx2.supported() {
            8
        } else {
            return None;
        };
        let iters = 1_000_000;
        let flops = (iters * CHAINS * lanes * 2 * threads.count()) as f64;
        let mut best = f64::INFINITY;
        let start = Instant::now();
        while start.elapsed() < budget || best.is_infinite() {
            let t = Instant::now();
            threads.run(threads.count(), &|_| {
                let sum = if lanes == 16 {
                    // SAFETY: AVX-512F is supported (checked above).
                    unsafe { chains_avx512(iters) }
                } else {
                    // SAFETY: AVX2 and FMA are supported (checked above).
                    unsafe { chains_avx2(iters) }
                };
                std::hint::black_box(sum);
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some(flops / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (threads, isa, budget);
        None
    }
}

/// `CHAINS` chains of 512-bit FMAs, `iters` steps each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chains_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); CHAINS];
    let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, x, y);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for a in acc {
        sum = _mm512_add_ps(sum, a);
    }
    _mm512_reduce_add_ps(sum)
}

/// `CHAINS` chains of 256-bit FMAs, `iters` steps each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chains_avx2(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); CHAINS];
    let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}
