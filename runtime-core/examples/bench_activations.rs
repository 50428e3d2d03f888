//! Benchmark of the activations: a 1×1 conv (GEMM) with each activation fused in its epilogue,
//! against the same conv without one followed by a scalar `Activation::apply` pass over its output
//! (the cost of computing the activation lane by lane); and the standalone elementwise kernels
//! (activation, residual add, per-channel binary, squeeze-excite's channel scale) against the
//! reference loops. Variants run interleaved, round after round; the table gives each one's
//! median over the rounds, so that other load on a shared machine hits all of them alike.
//!
//! Run: `cargo run --release -p resnext-runtime-core --example bench_activations [-- --isa avx2]
//! [--rounds N]`.

use std::time::Instant;

use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::isa::{self, Isa};
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::conv::{self, ConvAlgo};
use resnext_runtime_core::kernels::elementwise::{self, BinaryKind};
use resnext_runtime_core::kernels::{
    Activation, ConvArgs, ConvShape, Epilogue, PlanesArgs, reference,
};

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ((x >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// Named variants, each a closure run once per round; prints the median microseconds per call and
/// the ratio to the first variant.
fn compare(title: &str, rounds: usize, variants: &mut [(&str, &mut dyn FnMut())]) {
    let mut times = vec![Vec::with_capacity(rounds); variants.len()];
    for (_, f) in variants.iter_mut() {
        f();
    }
    for _ in 0..rounds {
        for (t, (_, f)) in times.iter_mut().zip(variants.iter_mut()) {
            let start = Instant::now();
            f();
            t.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    println!("\n{title}");
    println!("| variant | median µs | vs first |");
    println!("|---|---:|---:|");
    for ((name, _), m) in variants.iter().zip(&medians) {
        println!("| {name} | {m:.1} | {:.2}× |", medians[0] / m);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let isa = match args.iter().position(|a| a == "--isa") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("generic") => Isa::Generic,
            Some("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        },
        None => isa::isa(),
    };
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(41);
    println!("ISA: {}, {rounds} rounds", isa.name());
    let one = Threads::new(1);
    let two = Threads::new(2);
    let ctx1 = Ctx { isa, threads: &one };
    let ctx2 = Ctx { isa, threads: &two };

    // EfficientNet-B0's stage-3 expansion: 1×1, 40 → 240 channels at 28×28, then SiLU.
    let s = ConvShape::square(40, 28, 240, 1, 1, 0, 1);
    let input = values(1, s.input_len());
    let packed = conv::pack(ConvAlgo::Pointwise, &s, &values(2, s.weight_len())).expect("shape");
    let bias = values(3, s.out_c);
    let mut out = vec![0.0; s.output_len()];
    let mut scratch = vec![0.0; conv::scratch_len(ConvAlgo::Pointwise, &s, 1, 1)];
    let conv = |activation: Activation, out: &mut [f32], scratch: &mut [f32]| {
        let args = ConvArgs {
            shape: s,
            batch: 1,
            input: &input,
            packed: &packed,
            epilogue: Epilogue {
                bias: Some(&bias),
                residual: None,
                activation,
            },
            output: out,
            scratch,
        };
        conv::conv2d(&ctx1, ConvAlgo::Pointwise, args).expect("conv runs");
    };
    for a in [Activation::Silu, Activation::Sigmoid, Activation::Gelu] {
        let (o, sc) = (&mut out, &mut scratch);
        let cell = std::cell::RefCell::new((o, sc));
        let run = |act: Activation, lanes: bool| {
            let mut b = cell.borrow_mut();
            let (o, sc) = &mut *b;
            conv(act, o, sc);
            if lanes {
                for v in o.iter_mut() {
                    *v = a.apply(*v);
                }
            }
        };
        compare(
            &format!("1×1 conv 40→240 at 28×28, 1 thread, {a:?} epilogue"),
            rounds,
            &mut [
                ("conv, then apply lane by lane", &mut || {
                    run(Activation::None, true)
                }),
                ("conv, fused vector epilogue", &mut || run(a, false)),
                ("conv, no activation", &mut || run(Activation::None, false)),
            ],
        );
    }

    // A 96 × 56 × 56 tensor (MobileNet/EfficientNet's early stages).
    let (c, hw) = (96, 56 * 56);
    let x: Vec<f32> = values(4, c * hw).iter().map(|v| 6.0 * v).collect();
    let y = values(5, c * hw);
    let per_channel = values(6, c);
    let mut o = vec![0.0; c * hw];
    for a in [
        Activation::Silu,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Relu,
    ] {
        let o = std::cell::RefCell::new(&mut o);
        compare(
            &format!("standalone {a:?}, 96×56×56"),
            rounds,
            &mut [
                ("reference", &mut || {
                    reference::activation(&x, a, &mut o.borrow_mut()).expect("lengths")
                }),
                ("elementwise, 1 thread", &mut || {
                    elementwise::activation(&ctx1, &x, a, &mut o.borrow_mut()).expect("lengths")
                }),
                ("elementwise, 2 threads", &mut || {
                    elementwise::activation(&ctx2, &x, a, &mut o.borrow_mut()).expect("lengths")
                }),
            ],
        );
    }
    let o = std::cell::RefCell::new(&mut o);
    let dims = [1, c, 56, 56];
    compare(
        "residual add + ReLU, 96×56×56",
        rounds,
        &mut [
            ("reference", &mut || {
                reference::add(&x, &y, Activation::Relu, &mut o.borrow_mut()).expect("lengths")
            }),
            ("elementwise, 1 thread", &mut || {
                let r = elementwise::add(&ctx1, &x, &y, Activation::Relu, &mut o.borrow_mut());
                r.expect("lengths")
            }),
            ("elementwise, 2 threads", &mut || {
                let r = elementwise::add(&ctx2, &x, &y, Activation::Relu, &mut o.borrow_mut());
                r.expect("lengths")
            }),
        ],
    );
    let pc = (&per_channel[..], &[1, c, 1, 1][..]);
    compare(
        "binary Sub [1,96,56,56] − [1,96,1,1]",
        rounds,
        &mut [
            ("reference", &mut || {
                let r =
                    reference::binary(BinaryKind::Sub, &x, &dims, pc.0, pc.1, &mut o.borrow_mut());
                r.expect("shapes")
            }),
            ("elementwise, 1 thread", &mut || {
                let r = elementwise::binary(
                    &ctx1,
                    BinaryKind::Sub,
                    (&x, &dims),
                    pc,
                    &mut o.borrow_mut(),
                );
                r.expect("shapes")
            }),
            ("elementwise, 2 threads", &mut || {
                let r = elementwise::binary(
                    &ctx2,
                    BinaryKind::Sub,
                    (&x, &dims),
                    pc,
                    &mut o.borrow_mut(),
                );
                r.expect("shapes")
            }),
        ],
    );
    compare(
        "scale_channels [1,96,56,56] · [1,96,1,1]",
        rounds,
        &mut [
            ("reference binary Mul", &mut || {
                let r =
                    reference::binary(BinaryKind::Mul, &x, &dims, pc.0, pc.1, &mut o.borrow_mut());
                r.expect("shapes")
            }),
            ("per-plane scalar loop", &mut || {
                let mut b = o.borrow_mut();
                for ((y, x), &s) in b
                    .chunks_exact_mut(hw)
                    .zip(x.chunks_exact(hw))
                    .zip(&per_channel)
                {
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = x * s;
                    }
                }
            }),
            ("scale_channels, 1 thread", &mut || {
                let mut b = o.borrow_mut();
                let args = PlanesArgs {
                    batch: 1,
                    channels: c,
                    spatial: hw,
                    input: &x,
                    output: &mut b,
                };
                elementwise::scale_channels(&ctx1, args, &per_channel).expect("lengths")
            }),
            ("scale_channels, 2 threads", &mut || {
                let mut b = o.borrow_mut();
                let args = PlanesArgs {
                    batch: 1,
                    channels: c,
                    spatial: hw,
                    input: &x,
                    output: &mut b,
                };
                elementwise::scale_channels(&ctx2, args, &per_channel).expect("lengths")
            }),
        ],
    );
}
