//! Concurrency and determinism of a compiled model (the `resnext!` small network with its PyTorch
//! weights): `Send + Sync`, threads calling `forward` at once, repeated runs, thread counts, batching.
//!
//! Why bit-identity (not a tolerance) is asserted everywhere, from reading the kernels in
//! `runtime-core/src/kernels`:
//! - GEMM (pointwise, im2col and dense layers): a task is a rectangle of whole `MR × NR` micro-tiles
//!   (tile boundaries are fixed multiples of `MR`/`NR`, whatever the split); each output element is
//!   accumulated by one FMA chain over k in increasing order. The thread count changes which task
//!   computes a tile and how deep the k blocks are, but between k blocks the f32 accumulators are
//!   stored to C and reloaded exactly, so the chain (and its rounding) is the same. Images of a
//!   batch are separate problems (convs) or separate rows of A (dense), each with the same chain.
//! - Direct grouped/depthwise conv: bands of output rows per task; each element sums its
//!   (channel, tap) products in a fixed order, and which taps are skipped (padding) depends only
//!   on the element's own position, not on the band it falls in.
//! - Pools and the epilogues are per element. The thread pool never splits a reduction.
//!
//! Scratch and arena buffers are reused across calls (contents unspecified); the interleaved
//! batch sizes below check that no kernel reads stale contents.

mod common;
use common::{Small, testdata};

/// (a) The model type can be shared by threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Small>();
};

const ITEM: usize = 3 * 64 * 64;

fn model() -> Small {
    Small::load_safetensors(testdata("resnext_small_8x4d.safetensors")).expect("weights load")
}

/// `n` distinct images: the two PyTorch test images, then deterministic pseudo-random ones.
fn images(n: usize) -> Vec<f32> {
    let (shape, torch) =
        resnext_runtime::formats::npy::read_f32(testdata("resnext_small_8x4d_bn.input.npy"))
            .expect("npy");
    assert_eq!(&shape[1..], &[3, 64, 64]);
    let mut out: Vec<f32> = torch.into_iter().take(n * ITEM).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while out.len() < n * ITEM {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push((state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0);
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Each image alone (batch 1) on one thread: the baseline everything else must equal bit for bit.
fn baseline(model: &Small, input: &[f32]) -> Vec<Vec<u32>> {
    input
        .chunks_exact(ITEM)
        .map(|x| bits(&model.forward(x, 1).expect("forward")))
        .collect()
}

/// (b) Four threads calling `forward` at once on different inputs (and batch sizes) get exactly
/// what single calls get.
#[test]
fn concurrent_forward_is_bit_identical_to_single_calls() {
    let model = model();
    let input = images(8);
    let single = baseline(&model, &input);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (model, input, single) = (&model, &input, &single);
            s.spawn(move || {
                for round in 0..6 {
                    // Thread t runs images 2t and 2t+1, alternately as one batch of 2 and one by one.
                    let pair = &input[2 * t * ITEM..(2 * t + 2) * ITEM];
                    let got: Vec<Vec<u32>> = if round % 2 == 0 {
                        let y = model.forward(pair, 2).expect("forward");
                        y.chunks_exact(Small::CLASSES).map(bits).collect()
                    } else {
                        pair.chunks_exact(ITEM)
                            .map(|x| bits(&model.forward(x, 1).expect("forward")))
                            .collect()
                    };
                    assert_eq!(
                        got[..],
                        single[2 * t..2 * t + 2],
                        "thread {t} round {round}"
                    );
                }
            });
        }
    });
}

/// (c) Repeated runs, interleaving batch sizes so reused buffers hold stale data, give the same
/// bits; a batch equals its items run one by one, up to a large batch.
#[test]
fn repeated_runs_and_batches_are_bit_identical() {
    let mut model = model();
    model.set_threads(2);
    let n = 32;
    let input = images(n);
    let single = baseline(&model, &input);
    for batch in [32, 1, 4, 3, 32, 2, 1] {
        for (c, chunk) in input.chunks(batch * ITEM).enumerate() {
            let b = chunk.len() / ITEM;
            let y = model.forward(chunk, b).expect("forward");
            for (i, item) in y.chunks_exact(Small::CLASSES).enumerate() {
                assert_eq!(
                    bits(item),
                    single[c * batch + i],
                    "batch {batch}, item {}",
                    c * batch + i
                );
            }
        }
    }
}

/// (d) Thread counts 1, 2 and 3 (and a count above the cores) give the same bits.
#[test]
fn thread_counts_give_bit_identical_results() {
    let mut model = model();
    let input = images(5);
    model.set_threads(1);
    let one = bits(&model.forward(&input, 5).expect("forward"));
    for threads in [2, 3, 7] {
        model.set_threads(threads);
        let y = bits(&model.forward(&input, 5).expect("forward"));
        assert_eq!(y, one, "{threads} threads");
        let y1 = bits(&model.forward(&input[..ITEM], 1).expect("forward"));
        assert_eq!(y1[..], one[..Small::CLASSES], "{threads} threads, batch 1");
    }
}
