//! The conv and dense entry points the emitted code calls: choose an algorithm per layer shape,
//! prepack its weights at compile time, and run it with a fused epilogue on the process's ISA tier.
//!
//! - [`ConvAlgo::Pointwise`]: 1×1 convs without padding (any stride, any groups) as GEMMs
//!   `out[oc, p] = Σ_ic W[oc, ic] · X[ic, p]` over the NCHW planes (`gemm`).
//! - [`ConvAlgo::Grouped`] / [`ConvAlgo::Depthwise`]: the direct kernels of `grouped.rs` and
//!   `depthwise.rs`, for the shapes their `supports` accepts.
//! - [`ConvAlgo::Winograd2x2`] / [`ConvAlgo::Winograd4x4`]: ungrouped 3×3 stride-1 convs by
//!   Winograd F(2×2, 3×3) or F(4×4, 3×3) (`winograd`): 16 or 36 GEMMs over transformed tiles,
//!   2.25× or 4× fewer multiply-adds than a GEMM over the 9 taps; F(2×2)'s rounding error is
//!   within a small factor of the direct sum's, F(4×4)'s far larger (both bounded in
//!   `winograd`'s doc). Never
//!   chosen by [`ConvAlgo::select`]: the compiler picks them per layer by a cost model
//!   (`winograd::preferred`).
//! - [`ConvAlgo::ImplicitGemm`]: ungrouped convs larger than 1×1 (dense 3×3 at any stride, the
//!   stems) as an implicit GEMM whose B rows are read straight from a zero-padded, phase-split
//!   copy of the input (`implicit`): no im2col packing, the rounding of a direct convolution.
//! - [`ConvAlgo::Im2col`]: every other shape (the 7×7/2 stem, dense 3×3, dilations, any groups) as
//!   an im2col GEMM per group; the im2col matrix is packed block by block, never materialised.
//!   Strided layers with wide output rows and small weights (the stems) are tiled by output row from a
//!   phase-split copy of the input instead ([`im2col_by_rows`], `gemm::rows`).
//! - [`ConvAlgo::PointwiseNchw8c`] / [`ConvAlgo::GroupedNchw8c`]: the same convs on activations
//!   in the blocked NCHW8c layout (`blocked`), which the compiler chooses for a whole region of the
//!   graph (never [`ConvAlgo::select`]): the 1×1 convs run `blocked::pointwise`; the grouped ones
//!   run the AVX2 output-channel kernel on NCHW8c directly where a group's channels are whole
//!   blocks (`grouped::run_nchw8c`), and otherwise the NCHW grouped kernel between copies to and
//!   from NCHW in the scratch.
//!
//! - [`ConvAlgo::PointwiseBf16`]: the 1×1 convs of [`ConvAlgo::Pointwise`] with bf16 weights and
//!   activations and fp32 accumulation (`gemm::bf16`), chosen by the compiler under
//!   `--precision bf16`.
//!
//! - [`ConvAlgo::DirectBf16`]: every other conv of at least two input channels a group under
//!   `--precision bf16` (grouped and dense 3×3, stems), direct with bf16 products
//!   (`direct_bf16`). Depthwise convs have no bf16 form and stay fp32.
//!
//! Packed weights are ISA-independent, so one weights file serves every tier.

use super::gemm::{self, BSource, BiasAlong, Gemm, Problem};
use super::{
    ConvArgs, ConvShape, Epilogue, KernelError, PlanesArgs, SharedOut, blocked, check_len,
    check_min_len, depthwise, direct_bf16, grouped, implicit, winograd,
};
use crate::exec::Ctx;

/// How a conv layer is computed; chosen at compile time by [`ConvAlgo::select`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    Pointwise,
    Grouped,
    Depthwise,
    Im2col,
    /// A 1×1 conv on NCHW8c input, residual and output.
    PointwiseNchw8c,
    /// A grouped conv on NCHW8c input, residual and output.
    GroupedNchw8c,
    /// An ungrouped 3×3 stride-1 conv by Winograd F(2×2, 3×3).
    Winograd2x2,
    /// An ungrouped 3×3 stride-1 conv by Winograd F(4×4, 3×3).
    Winograd4x4,
    /// A 1×1 conv as [`ConvAlgo::Pointwise`] with bf16 products (weights packed as K-pairs by
    /// `gemm::bf16::pack_a`).
    PointwiseBf16,
    /// An ungrouped conv as an implicit GEMM over a padded, phase-split copy of the input.
    ImplicitGemm,
    /// Any conv of at least two input channels a group, direct with bf16 products
    /// (`direct_bf16`): `--precision bf16`'s grouped and dense convs other than 1×1, and stems.
    DirectBf16,
}

impl ConvAlgo {
    /// The fastest algorithm that supports `shape` on NCHW activations; [`ConvAlgo::Im2col`]
    /// supports every valid one.
    pub fn select(shape: &ConvShape) -> ConvAlgo {
        if depthwise::supports(shape) {
            ConvAlgo::Depthwise
        } else if grouped::supports(shape) {
            ConvAlgo::Grouped
        } else if is_pointwise(shape) {
            ConvAlgo::Pointwise
        } else if implicit::preferred(shape) {
            ConvAlgo::ImplicitGemm
        } else {
            ConvAlgo::Im2col
        }
    }

    /// Whether this algorithm can run `shape` (which must also pass `ConvShape::check`).
    pub fn supports(self, shape: &ConvShape) -> bool {
        shape.check().is_ok()
            && match self {
                ConvAlgo::Pointwise | ConvAlgo::PointwiseBf16 => is_pointwise(shape),
                ConvAlgo::Grouped => grouped::supports(shape),
                ConvAlgo::Depthwise => depthwise::supports(shape),
                ConvAlgo::Im2col => true,
                ConvAlgo::Winograd2x2 | ConvAlgo::Winograd4x4 => winograd::supports(shape),
                ConvAlgo::ImplicitGemm => implicit::supports(shape),
                ConvAlgo::DirectBf16 => direct_bf16::supports(shape),
                ConvAlgo::PointwiseNchw8c => blocked::supports(shape),
                ConvAlgo::GroupedNchw8c => {
                    grouped::supports(shape)
                        && shape.in_c.is_multiple_of(blocked::BLOCK)
                        && shape.out_c.is_multiple_of(blocked::BLOCK)
                }
            }
    }

    /// The algorithm computing the same conv as `self` on NCHW8c activations, if there is one.
    pub fn nchw8c(self) -> Option<ConvAlgo> {
        match self {
            ConvAlgo::Pointwise | ConvAlgo::PointwiseNchw8c => Some(ConvAlgo::PointwiseNchw8c),
            ConvAlgo::Grouped | ConvAlgo::GroupedNchw8c => Some(ConvAlgo::GroupedNchw8c),
            ConvAlgo::Depthwise | ConvAlgo::Im2col => None,
            ConvAlgo::Winograd2x2 | ConvAlgo::Winograd4x4 => None,
            ConvAlgo::ImplicitGemm => None,
            ConvAlgo::PointwiseBf16 | ConvAlgo::DirectBf16 => None,
        }
    }

    /// Whether the algorithm reads and writes NCHW8c activations.
    pub fn is_nchw8c(self) -> bool {
        matches!(self, ConvAlgo::PointwiseNchw8c | ConvAlgo::GroupedNchw8c)
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Pointwise => "pointwise",
            ConvAlgo::Grouped => "grouped",
            ConvAlgo::Depthwise => "depthwise",
            ConvAlgo::Im2col => "im2col",
            ConvAlgo::PointwiseNchw8c => "pointwise-nchw8c",
            ConvAlgo::GroupedNchw8c => "grouped-nchw8c",
            ConvAlgo::Winograd2x2 => "winograd-2x2",
            ConvAlgo::Winograd4x4 => "winograd-4x4",
            ConvAlgo::PointwiseBf16 => "pointwise-bf16",
            ConvAlgo::ImplicitGemm => "implicit-gemm",
            ConvAlgo::DirectBf16 => "direct-bf16",
        }
    }
}

/// Whether [`ConvAlgo::Im2col`] runs `shape` tiled by output row from a phase-split copy of the
/// input (wide output rows, weights that stay in L2: the stems) rather than by the flattened
/// im2col matrix. Both give the same results within the documented tolerance; tests use this to
/// cover both.
pub fn im2col_by_rows(shape: &ConvShape) -> bool {
    shape.check().is_ok() && gemm::rows::applies(shape)
}

fn is_pointwise(s: &ConvShape) -> bool {
    s.kernel == [1, 1] && s.pads == [0; 4]
}

fn unsupported(algo: ConvAlgo, shape: &ConvShape) -> KernelError {
    KernelError::BadShape(format!(
        "the {} conv algorithm does not support {shape:?}",
        algo.name()
    ))
}

/// GEMM sizes of one group: `(m, k, n)` = (output channels, taps, output pixels).
fn gemm_dims(s: &ConvShape) -> (usize, usize, usize) {
    (
        s.out_c / s.group,
        s.in_c / s.group * s.kernel[0] * s.kernel[1],
        s.out_h * s.out_w,
    )
}

/// Floats [`pack`] returns for `algo` and `shape` (a valid shape the algorithm supports).
pub fn packed_len(algo: ConvAlgo, shape: &ConvShape) -> usize {
    match algo {
        ConvAlgo::Grouped | ConvAlgo::GroupedNchw8c | ConvAlgo::Depthwise => shape.weight_len(),
        ConvAlgo::PointwiseNchw8c => blocked::packed_len(shape),
        ConvAlgo::Winograd2x2 => winograd::packed_len(winograd::Variant::F2, shape),
        ConvAlgo::Winograd4x4 => winograd::packed_len(winograd::Variant::F4, shape),
        ConvAlgo::ImplicitGemm => implicit::packed_len(shape),
        ConvAlgo::DirectBf16 => direct_bf16::packed_len(shape),
        ConvAlgo::Pointwise | ConvAlgo::Im2col => {
            let (m, k, _) = gemm_dims(shape);
            shape.group * gemm::packed_a_len(m, k)
        }
        ConvAlgo::PointwiseBf16 => {
            let (m, k, _) = gemm_dims(shape);
            shape.group * gemm::bf16::packed_a_len(m, k)
        }
    }
}

/// Packs ONNX-layout weights `[out_c, in_c / group, kh, kw]` for `algo`. Done at compile time; the
/// result is stored in the weights file and read by every ISA tier.
pub fn pack(algo: ConvAlgo, shape: &ConvShape, weight: &[f32]) -> Result<Vec<f32>, KernelError> {
    shape.check()?;
    check_len("conv weight", shape.weight_len(), weight.len())?;
    if !algo.supports(shape) {
        return Err(unsupported(algo, shape));
    }
    Ok(match algo {
        ConvAlgo::Grouped | ConvAlgo::GroupedNchw8c => grouped::pack(shape, weight),
        ConvAlgo::PointwiseNchw8c => blocked::pack(shape, weight)?,
        ConvAlgo::Depthwise => depthwise::pack(shape, weight),
        ConvAlgo::Winograd2x2 => winograd::pack(winograd::Variant::F2, shape, weight),
        ConvAlgo::Winograd4x4 => winograd::pack(winograd::Variant::F4, shape, weight),
        ConvAlgo::ImplicitGemm => implicit::pack(shape, weight),
        ConvAlgo::DirectBf16 => direct_bf16::pack(shape, weight),
        ConvAlgo::Pointwise | ConvAlgo::Im2col => {
            let (m, k, _) = gemm_dims(shape);
            let mut packed = Vec::with_capacity(packed_len(algo, shape));
            for g in 0..shape.group {
                gemm::pack_a(&weight[g * m * k..(g + 1) * m * k], m, k, k, &mut packed);
            }
            packed
        }
        ConvAlgo::PointwiseBf16 => {
            let (m, k, _) = gemm_dims(shape);
            let mut packed = Vec::with_capacity(packed_len(algo, shape));
            for g in 0..shape.group {
                gemm::bf16::pack_a(&weight[g * m * k..(g + 1) * m * k], m, k, k, &mut packed);
            }
            packed
        }
    })
}

/// Scratch floats [`conv2d`] needs for `algo` on a pool of `threads` threads.
pub fn scratch_len(algo: ConvAlgo, shape: &ConvShape, batch: usize, threads: usize) -> usize {
    match algo {
        ConvAlgo::Im2col if gemm::rows::applies(shape) => gemm::rows::scratch_len(shape, threads),
        ConvAlgo::Pointwise | ConvAlgo::Im2col | ConvAlgo::PointwiseBf16 => {
            let (m, k, n) = gemm_dims(shape);
            let total = batch * shape.group;
            let per_call = PROBLEMS_PER_CALL.min(total.max(1));
            let last = total % per_call;
            let len = |problems| {
                if algo == ConvAlgo::PointwiseBf16 {
                    gemm::bf16::scratch_len(m, n, k, problems, threads)
                } else {
                    gemm::scratch_len(m, n, k, problems, threads)
                }
            };
            let gemm = len(per_call).max(if last > 0 { len(last) } else { 0 });
            gemm + if subsamples(algo, shape) {
                batch * shape.in_c * n
            } else {
                0
            }
        }
        ConvAlgo::Grouped | ConvAlgo::Depthwise => 0,
        ConvAlgo::Winograd2x2 => {
            winograd::scratch_len(winograd::Variant::F2, shape, batch, threads)
        }
        ConvAlgo::Winograd4x4 => {
            winograd::scratch_len(winograd::Variant::F4, shape, batch, threads)
        }
        ConvAlgo::ImplicitGemm => implicit::scratch_len(shape, threads),
        ConvAlgo::DirectBf16 => direct_bf16::scratch_len(shape),
        ConvAlgo::PointwiseNchw8c => blocked::scratch_len(shape, batch),
        // NCHW copies of the input, the output and the residual.
        ConvAlgo::GroupedNchw8c => batch * (shape.input_len() + 2 * shape.output_len()),
    }
}

/// Whether [`conv2d`] runs `algo` on `shape` as a stride-1 1×1 conv over a subsampled copy of the
/// input (in the scratch): a strided 1×1 conv (the projection shortcuts of ResNe(X)t stages 2–4).
/// Its im2col rows are the subsampled planes, and packing them straight from the input with a
/// stride cost more than copying them once and packing plain rows: measured in-process at 1
/// thread, the same GEMM 256→512 at 28×28 from a 56×56 input at stride 2 took 1.28× the time of
/// its stride-1 twin, 512→1024 at 14×14 1.22× (2 threads: 1.28×).
fn subsamples(algo: ConvAlgo, shape: &ConvShape) -> bool {
    matches!(algo, ConvAlgo::Pointwise | ConvAlgo::PointwiseBf16) && shape.stride != [1, 1]
}

/// Copies every plane of `input` (`planes` of `s.in_h × s.in_w`) subsampled at `s.stride` into
/// `out` (`planes` of `s.out_h × s.out_w`): what a 1×1 conv with no padding reads.
fn subsample(ctx: &Ctx, s: &ConvShape, planes: usize, input: &[f32], out: &mut [f32]) {
    let Ctx { isa, threads } = *ctx;
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h * s.out_w);
    let per_task = planes.div_ceil(4 * threads.count()).max(1);
    let dst = SharedOut(out.as_mut_ptr());
    let [sy, sx] = s.stride;
    threads.run(planes.div_ceil(per_task), &|t| {
        for p in t * per_task..((t + 1) * per_task).min(planes) {
            let src = &input[p * in_plane..][..in_plane];
            // SAFETY: plane `p` of `out` (`planes · out_plane` floats, checked by the caller) is
            // written by this task alone.
            let plane = unsafe {
                std::slice::from_raw_parts_mut(dst.ptr().wrapping_add(p * out_plane), out_plane)
            };
            for (oy, row) in plane.chunks_exact_mut(s.out_w).enumerate() {
                let line = &src[oy * sy * s.in_w..][..s.in_w];
                super::gather_strided(line, sx, row, isa);
            }
        }
    });
}

/// GEMMs (batch items × groups) handed to one `gemm::run`, from a fixed-size array so that
/// `conv2d` allocates nothing.
const PROBLEMS_PER_CALL: usize = 64;

/// Conv with its fused epilogue, `output = act(conv(input) + bias + residual)`, NCHW (NCHW8c for
/// the `*Nchw8c` algorithms), on `ctx`'s tier and threads. `args.packed` comes from [`pack`] with
/// the same `algo`; `args.scratch` holds at least [`scratch_len`] floats for
/// `ctx.threads.count()`. Allocates nothing.
pub fn conv2d(ctx: &Ctx, algo: ConvAlgo, args: ConvArgs) -> Result<(), KernelError> {
    let shape = &args.shape;
    shape.check()?;
    if !algo.supports(shape) {
        return Err(unsupported(algo, shape));
    }
    match algo {
        ConvAlgo::Grouped => return grouped::run(ctx, args),
        ConvAlgo::Depthwise => return depthwise::run(ctx, args),
        ConvAlgo::PointwiseNchw8c => return blocked::pointwise(ctx, args),
        ConvAlgo::GroupedNchw8c if grouped::runs_nchw8c(shape, ctx.isa) => {
            return grouped::run_nchw8c(ctx, args);
        }
        ConvAlgo::GroupedNchw8c => return grouped_nchw8c(ctx, args),
        ConvAlgo::Winograd2x2 => return winograd::run(winograd::Variant::F2, ctx, args),
        ConvAlgo::Winograd4x4 => return winograd::run(winograd::Variant::F4, ctx, args),
        ConvAlgo::ImplicitGemm => return implicit::run(ctx, args),
        ConvAlgo::DirectBf16 => return direct_bf16::run(ctx, args),
        ConvAlgo::Pointwise | ConvAlgo::Im2col | ConvAlgo::PointwiseBf16 => {}
    }
    let threads = ctx.threads;
    let ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let shape = &shape;
    check_len("conv input", batch * shape.input_len(), input.len())?;
    check_len("conv packed weight", packed_len(algo, shape), packed.len())?;
    check_len("conv output", batch * shape.output_len(), output.len())?;
    let (m, k, n) = gemm_dims(shape);
    epilogue.check(batch, shape.out_c, n)?;
    let need = scratch_len(algo, shape, batch, threads.count());
    check_min_len("conv scratch", need, scratch.len())?;
    if batch == 0 {
        return Ok(());
    }
    if algo == ConvAlgo::Im2col && gemm::rows::applies(shape) {
        let args = ConvArgs {
            shape: *shape,
            batch,
            input,
            packed,
            epilogue,
            output,
            scratch,
        };
        gemm::rows::run(ctx, args);
        return Ok(());
    }
    let s = *shape;
    let cin_g = s.in_c / s.group;
    // 1×1 convs read their input planes as B's rows directly, a strided one from a subsampled
    // copy at the front of the scratch; the rest go through im2col.
    let (input, scratch, in_plane) = if subsamples(algo, shape) {
        let (copy, rest) = scratch.split_at_mut(batch * s.in_c * n);
        subsample(ctx, &s, batch * s.in_c, input, copy);
        (&*copy, rest, n)
    } else {
        (input, scratch, s.in_h * s.in_w)
    };
    let bf16 = algo == ConvAlgo::PointwiseBf16;
    let a_len = if bf16 {
        gemm::bf16::packed_a_len(m, k)
    } else {
        gemm::packed_a_len(m, k)
    };
    let direct_rows = algo != ConvAlgo::Im2col;
    let problem = |p: usize| {
        let (img, g) = (p / s.group, p % s.group);
        let inp = &input[(img * s.in_c + g * cin_g) * in_plane..][..cin_g * in_plane];
        Problem {
            a: &packed[g * a_len..(g + 1) * a_len],
            b: if direct_rows {
                BSource::Rows { data: inp, ld: n }
            } else {
                BSource::Im2col {
                    data: inp,
                    shape: s,
                }
            },
            c: (img * s.out_c + g * m) * n,
            bias: epilogue.bias.map(|b| &b[g * m..(g + 1) * m]),
        }
    };
    let g = Gemm {
        m,
        n,
        k,
        ldc: n,
        bias_along: BiasAlong::Rows,
        residual: epilogue.residual,
        activation: epilogue.activation,
    };
    let total = batch * s.group;
    let per_call = PROBLEMS_PER_CALL.min(total.max(1));
    let mut problems = [problem(0); PROBLEMS_PER_CALL];
    let mut first = 0;
    while first < total {
        let count = per_call.min(total - first);
        for (i, slot) in problems[..count].iter_mut().enumerate() {
            *slot = problem(first + i);
        }
        if bf16 {
            gemm::bf16::run(ctx, &g, &problems[..count], output, scratch)?;
        } else {
            gemm::run(ctx, &g, &problems[..count], output, scratch)?;
        }
        first += count;
    }
    Ok(())
}

/// [`ConvAlgo::GroupedNchw8c`] where `grouped::run_nchw8c` does not take the shape (stage 1 of
/// ResNeXt, 4 channels a group; the generic tier): the NCHW grouped kernel between NCHW copies (in
/// `scratch`) of the NCHW8c input and residual, and of the output.
fn grouped_nchw8c(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let s = &shape;
    let threads = ctx.threads;
    let need = scratch_len(ConvAlgo::GroupedNchw8c, s, batch, threads.count());
    check_min_len("conv scratch", need, scratch.len())?;
    let (in_len, out_len) = (batch * s.input_len(), batch * s.output_len());
    let (x, rest) = scratch.split_at_mut(in_len);
    let (y, rest) = rest.split_at_mut(out_len);
    let spatial_out = s.out_h * s.out_w;
    let to_nchw = PlanesArgs {
        batch,
        channels: s.in_c,
        spatial: s.in_h * s.in_w,
        input,
        output: &mut *x,
    };
    blocked::reorder::<false>(ctx, to_nchw)?;
    let residual = match epilogue.residual {
        Some(r) => {
            let copy = &mut rest[..out_len];
            let to_nchw = PlanesArgs {
                batch,
                channels: s.out_c,
                spatial: spatial_out,
                input: r,
                output: copy,
            };
            blocked::reorder::<false>(ctx, to_nchw)?;
            Some(&*copy)
        }
        None => None,
    };
    let nchw = ConvArgs {
        shape,
        batch,
        input: x,
        packed,
        epilogue: Epilogue {
            residual,
            ..epilogue
        },
        output: &mut *y,
        scratch: &mut [],
    };
    grouped::run(ctx, nchw)?;
    let to_blocked = PlanesArgs {
        batch,
        channels: s.out_c,
        spatial: spatial_out,
        input: y,
        output,
    };
    blocked::reorder::<true>(ctx, to_blocked)
}
