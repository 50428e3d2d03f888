//! Property tests of the dense layer at small batch, where `dense::run_gemv` takes the GEMV kernels
//! (`kernels::gemv`: batch up to 4 on AVX-512 and generic, 2 on AVX2), against `reference::dense`
//! on every ISA tier this CPU supports: odd and deep k, output features ragged against the
//! 48-feature tiles, bias, residual, every activation, 1–3 threads. Batches 3 and 4 on AVX2 (the
//! GEMM there) and batch 5 (the GEMM on every tier) keep the boundary covered.
//!
//! Tolerance, per output element: `common::tolerance`, `(n + 4) · u · (Σ|x·w| + |bias| + |residual|)`
//! with `n = in_features` (derivation in `common/mod.rs`); it holds for any summation order, the
//! GEMV's two interleaved k chains included.

mod common;

use common::{Operands, Setting, activation, check_tiers, tolerance};
use proptest::prelude::*;
use resnext_runtime_core::exec::Ctx;
use resnext_runtime_core::exec::threads::Threads;
use resnext_runtime_core::kernels::dense::{self, DenseArgs};
use resnext_runtime_core::kernels::{Activation, reference};

fn check_dense(in_f: usize, out_f: usize, setting: Setting) -> Result<(), TestCaseError> {
    let batch = setting.batch;
    let ops = Operands::new([batch * in_f, out_f * in_f, out_f, batch * out_f], setting);
    let (want, magnitude) = ops.reference(batch * out_f, |x, w, ep, out| {
        reference::dense(batch, in_f, out_f, x, w, ep, out)
    });
    let packed = dense::pack(in_f, out_f, &ops.weight).unwrap();
    let threads = Threads::new(setting.threads);
    let ep = ops.epilogue();
    check_tiers(
        &format!("dense batch {batch}, {in_f} → {out_f}"),
        &want,
        |i| tolerance(in_f, magnitude[i]),
        |isa, got| {
            let mut scratch = vec![f32::NAN; dense::scratch_len(batch, in_f, threads.count())];
            let args = DenseArgs {
                batch,
                in_features: in_f,
                out_features: out_f,
                input: &ops.input,
                packed: &packed,
                epilogue: ep,
                output: got,
                scratch: &mut scratch,
            };
            dense::run_gemv(
                &Ctx {
                    isa,
                    threads: &threads,
                },
                args,
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn small_batch_dense_matches_reference(
        batch in 1usize..=5,
        in_f in 1usize..=700,
        out_f in 1usize..=200,
        bias in any::<bool>(),
        residual in any::<bool>(),
        activation in activation(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let setting = Setting { batch, bias, residual, activation, threads, seed };
        check_dense(in_f, out_f, setting)?;
    }
}

/// Classifier-like shapes: deep odd k, many tiles split over the threads, a ragged last tile.
#[test]
fn classifier_shapes() {
    for (batch, in_f, out_f, threads) in [
        (1, 4097, 1000, 2),
        (2, 2305, 517, 3),
        (3, 1537, 96, 2),
        (4, 3001, 145, 1),
    ] {
        let setting = Setting {
            batch,
            bias: true,
            residual: batch % 2 == 0,
            activation: Activation::Relu,
            threads,
            seed: in_f as u64,
        };
        common::assert_ok(check_dense(in_f, out_f, setting));
    }
}

/// A NaN input poisons exactly its batch row, on every tier (the sums carry it to every feature).
#[test]
fn nan_input_poisons_its_row() {
    let (batch, in_f, out_f) = (2, 37, 53);
    let mut input = common::values(1, batch * in_f);
    input[in_f + 5] = f32::NAN;
    let weight = common::values(2, out_f * in_f);
    let packed = dense::pack(in_f, out_f, &weight).unwrap();
    let threads = Threads::new(2);
    for isa in common::tiers() {
        let mut out = vec![0.0; batch * out_f];
        let mut scratch = vec![0.0; dense::scratch_len(batch, in_f, 2)];
        let args = DenseArgs {
            batch,
            in_features: in_f,
            out_features: out_f,
            input: &input,
            packed: &packed,
            epilogue: Default::default(),
            output: &mut out,
            scratch: &mut scratch,
        };
        dense::run_gemv(
            &Ctx {
                isa,
                threads: &threads,
            },
            args,
        )
        .unwrap();
        assert!(out[..out_f].iter().all(|x| x.is_finite()), "{isa:?}");
        assert!(out[out_f..].iter().all(|x| x.is_nan()), "{isa:?}");
    }
}
