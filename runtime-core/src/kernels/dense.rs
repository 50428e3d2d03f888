//! Fully connected layers (ONNX Gemm with `transB = 1`, PyTorch `Linear`) as one GEMM with a fused
//! epilogue: the activations are A, the weights B, packed at compile time. At small batch the same
//! packed weights go through the GEMV kernels instead (`kernels::gemv`), chosen here per call
//! from the batch, which is a run-time value.

use super::gemm::{self, BSource, BiasAlong, Gemm, Problem};
use super::gemv::{self, Gemv};
use super::{Epilogue, KernelError, check_len, check_min_len};
use crate::exec::Ctx;

/// One dense call's shape and buffers: `output[b, m] = act(Σ_k input[b, k] · W[m, k] + bias[m] +
/// residual[b, m])`, with `W` packed by [`pack`] and `scratch` of at least [`scratch_len`] floats.
pub struct DenseArgs<'a> {
    pub batch: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub input: &'a [f32],
    pub packed: &'a [f32],
    pub epilogue: Epilogue<'a>,
    pub output: &'a mut [f32],
    pub scratch: &'a mut [f32],
}

/// Packs dense weights `[out_features, in_features]` for [`run`]. Done at compile time.
pub fn pack(
    in_features: usize,
    out_features: usize,
    weight: &[f32],
) -> Result<Vec<f32>, KernelError> {
    check_len("dense weight", in_features * out_features, weight.len())?;
    Ok(gemm::pack_b_transposed(
        weight,
        in_features,
        out_features,
        in_features,
    ))
}

/// Floats [`pack`] returns.
pub fn packed_len(in_features: usize, out_features: usize) -> usize {
    gemm::packed_b_len(in_features, out_features)
}

/// Scratch floats [`run`] needs (the input rows packed as GEMM panels).
pub fn scratch_len(batch: usize, in_features: usize, _threads: usize) -> usize {
    gemm::packed_a_len(batch, in_features)
}

/// Fully connected with a fused epilogue on `ctx`'s tier and threads (see [`DenseArgs`]), by the
/// GEMM at every batch: a row's result does not depend on the batch it is computed in (the
/// runtime's documented bit-for-bit guarantee, `macros/tests/concurrency.rs`).
pub fn run(ctx: &Ctx, args: DenseArgs) -> Result<(), KernelError> {
    run_with(ctx, args, false)
}

/// [`run`], but up to the tier's GEMV batch (4 on AVX-512 and generic, 2 on AVX2) by the GEMV
/// kernels, which stream the weights once on every thread. Not what the emitted code calls: the
/// GEMV sums a row in another order than the GEMM (per k block and chain), so its results differ
/// from the same row's in a larger batch in the last bits, and it measured only 0.84–1.0× the
/// GEMM's time on AlexNet's classifier at batch 1 (`bench/RESULTS.md`, 2026-12-06 23:24 UTC).
pub fn run_gemv(ctx: &Ctx, args: DenseArgs) -> Result<(), KernelError> {
    run_with(ctx, args, true)
}

fn run_with(ctx: &Ctx, args: DenseArgs, allow_gemv: bool) -> Result<(), KernelError> {
    let DenseArgs {
        batch,
        in_features,
        out_features,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    check_len("dense input", batch * in_features, input.len())?;
    check_len(
        "dense packed weight",
        packed_len(in_features, out_features),
        packed.len(),
    )?;
    check_len("dense output", batch * out_features, output.len())?;
    epilogue.check(batch, out_features, 1)?;
    let a_len = gemm::packed_a_len(batch, in_features);
    check_min_len("dense scratch", a_len, scratch.len())?;
    if batch == 0 || out_features == 0 {
        return Ok(());
    }
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        crate::exec::isa::Isa::Generic
    };
    if allow_gemv && batch <= gemv::max_batch(isa) {
        let g = Gemv {
            batch,
            k: in_features,
            n: out_features,
            input,
            packed,
            bias: epilogue.bias,
            residual: epilogue.residual,
            activation: epilogue.activation,
        };
        gemv::run(ctx, &g, output);
        return Ok(());
    }
    // The activations are A (broadcast), the prepacked weights B: C = out, row-major `[batch, out]`.
    let (a, _) = scratch.split_at_mut(a_len);
    pack_a_into(input, batch, in_features, a);
    let g = Gemm {
        m: batch,
        n: out_features,
        k: in_features,
        ldc: out_features,
        bias_along: BiasAlong::Cols,
        residual: epilogue.residual,
        activation: epilogue.activation,
    };
    let problems = [Problem {
        a: &*a,
        b: BSource::Packed { data: packed },
        c: 0,
        bias: epilogue.bias,
    }];
    gemm::run(ctx, &g, &problems, output, &mut [])
}

/// Packs dense weights `[out_features, in_features]` for [`run_bf16`]: rounded to bf16 and laid
/// out as K-pairs (`gemm::bf16`), two bf16 in the bits of each float. Done at compile time.
pub fn pack_bf16(
    in_features: usize,
    out_features: usize,
    weight: &[f32],
) -> Result<Vec<f32>, KernelError> {
    check_len("dense weight", in_features * out_features, weight.len())?;
    Ok(gemm::bf16::pack_b_transposed(
        weight,
        in_features,
        out_features,
        in_features,
    ))
}

/// Floats [`pack_bf16`] returns.
pub fn packed_len_bf16(in_features: usize, out_features: usize) -> usize {
    gemm::bf16::packed_b_len(in_features, out_features)
}

/// Scratch floats [`run_bf16`] needs (the input rows as K-pair panels).
pub fn scratch_len_bf16(batch: usize, in_features: usize, _threads: usize) -> usize {
    gemm::bf16::packed_a_len(batch, in_features)
}

/// [`run`] with bf16 products and fp32 sums: weights from [`pack_bf16`], the input rounded to
/// bf16 as it is packed; `scratch` of at least [`scratch_len_bf16`] floats.
pub fn run_bf16(ctx: &Ctx, args: DenseArgs) -> Result<(), KernelError> {
    let DenseArgs {
        batch,
        in_features,
        out_features,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    check_len("dense input", batch * in_features, input.len())?;
    check_len(
        "dense packed bf16 weight",
        packed_len_bf16(in_features, out_features),
        packed.len(),
    )?;
    check_len("dense output", batch * out_features, output.len())?;
    epilogue.check(batch, out_features, 1)?;
    let a_len = gemm::bf16::packed_a_len(batch, in_features);
    check_min_len("dense scratch", a_len, scratch.len())?;
    if batch == 0 || out_features == 0 {
        return Ok(());
    }
    let (a, _) = scratch.split_at_mut(a_len);
    gemm::bf16::pack_a_into(input, batch, in_features, in_features, a);
    let g = Gemm {
        m: batch,
        n: out_features,
        k: in_features,
        ldc: out_features,
        bias_along: BiasAlong::Cols,
        residual: epilogue.residual,
        activation: epilogue.activation,
    };
    let problems = [Problem {
        a: &*a,
        b: BSource::Packed { data: packed },
        c: 0,
        bias: epilogue.bias,
    }];
    gemm::bf16::run(ctx, &g, &problems, output, &mut [])
}

/// `gemm::pack_a` into a preallocated slice of `packed_a_len(m, k)` floats.
fn pack_a_into(src: &[f32], m: usize, k: usize, dst: &mut [f32]) {
    for (panel, block) in dst.chunks_exact_mut(k * gemm::MR).enumerate() {
        for (kk, lane) in block.chunks_exact_mut(gemm::MR).enumerate() {
            for (r, v) in lane.iter_mut().enumerate() {
                let row = panel * gemm::MR + r;
                *v = if row < m { src[row * k + kk] } else { 0.0 };
            }
        }
    }
}
