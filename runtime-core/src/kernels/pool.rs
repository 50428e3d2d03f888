//! Fast max, average and global average pooling, NCHW, threaded over bands of rows (planes where
//! the maps are short): the semantics of the
//! reference pools, with the borders peeled off so the interior loops carry no bounds logic.
//!
//! Each plane is walked row by row: an output row accumulates its window's input rows in order, and
//! within a row its columns in order, which is exactly the reference's summation order, so max and
//! average pooling agree with the reference bit for bit. The SIMD tiers are the same code compiled
//! with the tier's target features (the interior loops vectorise), and 3×3 windows of stride 1 or 2
//! get monomorphised copies; the AVX-512 tier's 3×3/2 max pool on wide maps (the stems') has its
//! own interior row loop (`max_row_3x2`): with it ResNeXt-50's max pool took 0.74× the time.
//! Stride-1 pools whose output has the input's size (GoogLeNet's and Inception's 3×3 branch
//! pools, whose 7×7–35×35 planes are mostly border) pool each plane as one flat run of vectors
//! across its rows (`Flat`), with the masks worked out once per call; its other max and average
//! pools of column stride 1 or 2 take `plane_avx512_vec`: 16 outputs of a row a vector. Both load
//! every window cell with one masked load and keep the reference's fold order per output.

use std::ops::Range;

use super::{KernelError, PlanesArgs, PoolShape, SharedOut, check_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

/// One pooling call's shape and buffers: `batch` items of `shape.channels` planes.
pub struct PoolArgs<'a> {
    pub shape: PoolShape,
    pub batch: usize,
    pub input: &'a [f32],
    pub output: &'a mut [f32],
}

/// Max pooling with the semantics of `reference::max_pool2d` (padding never wins).
pub fn max_pool2d(ctx: &Ctx, args: PoolArgs) -> Result<(), KernelError> {
    pool(ctx, args, Reduce::Max)
}

/// Average pooling with the semantics of `reference::avg_pool2d`: divides by the window cells inside
/// the padded input if `count_include_pad`, else by the in-bounds ones.
pub fn avg_pool2d(ctx: &Ctx, args: PoolArgs, count_include_pad: bool) -> Result<(), KernelError> {
    pool(ctx, args, Reduce::Avg { count_include_pad })
}

/// Mean over the spatial dim of `[batch · channels, spatial]`. Sums in f32 over 16 interleaved
/// partial sums (the reference sums in f64).
pub fn global_avg_pool(ctx: &Ctx, args: PlanesArgs) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    let PlanesArgs {
        batch,
        channels,
        spatial,
        input,
        output,
    } = args;
    check_len(
        "global_avg_pool input",
        batch * channels * spatial,
        input.len(),
    )?;
    check_len("global_avg_pool output", batch * channels, output.len())?;
    if spatial == 0 {
        return Err(KernelError::BadShape(
            "global_avg_pool over an empty plane".into(),
        ));
    }
    let planes = batch * channels;
    let per_task = planes.div_ceil(4 * threads.count()).max(64);
    let tasks = planes.div_ceil(per_task);
    let out = SharedOut(output.as_mut_ptr());
    let isa = if isa.supported() { isa } else { Isa::Generic };
    threads.run(tasks, &|t| {
        let range = t * per_task..((t + 1) * per_task).min(planes);
        let src = &input[range.start * spatial..range.end * spatial];
        // SAFETY: task `t` alone writes `range`, which lies inside `output` (length checked).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(out.ptr().wrapping_add(range.start), range.len())
        };
        match isa {
            // SAFETY: the tier is supported by this CPU (checked above).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { gap_avx512(src, spatial, dst) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { gap_avx2(src, spatial, dst) },
            _ => gap_planes(src, spatial, dst),
        }
    });
    Ok(())
}

#[derive(Clone, Copy)]
enum Reduce {
    Max,
    Avg { count_include_pad: bool },
}

fn pool(ctx: &Ctx, args: PoolArgs, reduce: Reduce) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    let PoolArgs {
        shape,
        batch,
        input,
        output,
    } = args;
    let s = &shape;
    s.check()?;
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h * s.out_w);
    check_len("pool input", batch * s.channels * in_plane, input.len())?;
    check_len("pool output", batch * s.channels * out_plane, output.len())?;
    let out = SharedOut(output.as_mut_ptr());
    let isa = if isa.supported() { isa } else { Isa::Generic };
    // Rows `rows` of every output plane of `planes`: the band's own shape over the input rows its
    // windows reach (`band_shape`).
    let run_band = |planes: Range<usize>, rows: Range<usize>| {
        let Some((band, first)) = band_shape(s, rows.clone()) else {
            return;
        };
        for p in planes {
            let src = &input[p * in_plane + first * s.in_w..][..band.in_h * s.in_w];
            // SAFETY: rows `rows` of plane `p` lie inside `output` (length checked) and only this
            // task writes them.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(
                    out.ptr().wrapping_add(p * out_plane + rows.start * s.out_w),
                    rows.len() * s.out_w,
                )
            };
            match isa {
                // SAFETY: the tier is supported by this CPU (checked above).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { plane_avx512(&band, reduce, src, dst) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { plane_avx2(&band, reduce, src, dst) },
                _ => plane(&band, reduce, src, dst),
            }
        }
    };
    let count = threads.count();
    let planes = batch * s.channels;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512
        && let Some(flat) = Flat::new(s, reduce)
    {
        // Each thread a band of every plane's vectors (as the bands of rows below), its planes
        // in 4 tasks.
        let chunks = s.channels.min(4);
        let vectors = flat.vectors();
        threads.run(batch * count * chunks, &|t| {
            let (n, band, chunk) = (t / (count * chunks), t / chunks % count, t % chunks);
            let c = n * s.channels;
            let planes = c + chunk * s.channels / chunks..c + (chunk + 1) * s.channels / chunks;
            let band = band * vectors / count..(band + 1) * vectors / count;
            for p in planes {
                let src = &input[p * in_plane..][..in_plane];
                // SAFETY: outputs `16 · band` (clipped to the plane) of plane `p` lie inside
                // `output` (length checked) and only this task writes them; AVX-512F is
                // supported (checked above); `flat` was made for `s`.
                unsafe {
                    let dst = out.ptr().wrapping_add(p * out_plane);
                    flat_avx512(&flat, band.clone(), src, dst);
                }
            }
        });
        return Ok(());
    }
    if count > 1 && s.out_h >= 2 * count {
        // Each image in `count` bands of rows, each band's planes in 4 tasks: a thread's run of
        // tasks is one band of every plane, the pixels the threads share out in the other
        // layers too (a split by planes had every thread read the other's rows: see
        // `exec::threads`).
        let chunks = s.channels.min(4);
        threads.run(batch * count * chunks, &|t| {
            let (n, band, chunk) = (t / (count * chunks), t / chunks % count, t % chunks);
            let c = n * s.channels;
            let planes = c + chunk * s.channels / chunks..c + (chunk + 1) * s.channels / chunks;
            run_band(planes, band * s.out_h / count..(band + 1) * s.out_h / count);
        });
    } else {
        let per_task = planes.div_ceil(4 * count).max(1);
        threads.run(planes.div_ceil(per_task), &|t| {
            run_band(t * per_task..((t + 1) * per_task).min(planes), 0..s.out_h);
        });
    }
    Ok(())
}

/// The shape that pools output rows `rows` of `s` alone, and the first input row it reads: the
/// input rows the band's windows reach, with the padding of `s` that lies among them (so every
/// window, and every average's divisor, is the one of `s`). `None` for an empty band.
fn band_shape(s: &PoolShape, rows: Range<usize>) -> Option<(PoolShape, usize)> {
    if rows.is_empty() {
        return None;
    }
    let (sy, kh, pt, pb) = (s.stride[0], s.kernel[0], s.pads[0], s.pads[2]);
    // Padded-input rows `lo..hi` (padded coordinates: input row `y` is `y + pt`).
    let lo = rows.start * sy;
    let hi = ((rows.end - 1) * sy + kh).min(s.in_h + pt + pb);
    let first = lo.saturating_sub(pt).min(s.in_h);
    let last = hi.saturating_sub(pt).min(s.in_h);
    let band = PoolShape {
        in_h: last - first,
        out_h: rows.len(),
        pads: [
            pt.saturating_sub(lo),
            s.pads[1],
            (hi.saturating_sub(pt)).saturating_sub(s.in_h),
            s.pads[3],
        ],
        ..*s
    };
    Some((band, first))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(s: &PoolShape, reduce: Reduce, src: &[f32], dst: &mut [f32]) {
    if matches!(reduce, Reduce::Max) && s.kernel[1] == 3 && s.stride[1] == 2 && s.out_w >= 32 {
        // The stems' 3×3/2 max pool: 16 outputs of a row per step (see `max_row_3x2`). Rows
        // of 28 outputs (GoogLeNet's 56→28) took 1.9–2× as long here as four rows at a time in
        // `plane_avx512_vec`; rows of 35 and more 0.97–0.98× (bench_pool, 1 thread).
        plane_k::<3, 2, true>(s, reduce, src, dst)
    } else if matches!(s.stride[1], 1 | 2) && s.kernel[1] <= MAX_KW && s.out_w <= MAX_OUT_W {
        // SAFETY: AVX-512F is enabled here; `src` and `dst` are one plane each (the caller's
        // slicing), a column stride of 1 or 2, windows and rows within the bounds.
        unsafe { plane_avx512_vec(s, reduce, src, dst) }
    } else {
        plane(s, reduce, src, dst)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn plane_avx2(s: &PoolShape, reduce: Reduce, src: &[f32], dst: &mut [f32]) {
    plane(s, reduce, src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gap_avx512(src: &[f32], spatial: usize, dst: &mut [f32]) {
    gap_planes(src, spatial, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gap_avx2(src: &[f32], spatial: usize, dst: &mut [f32]) {
    gap_planes(src, spatial, dst)
}

#[inline(always)]
fn gap_planes(src: &[f32], spatial: usize, dst: &mut [f32]) {
    const P: usize = 16;
    for (y, plane) in dst.iter_mut().zip(src.chunks_exact(spatial)) {
        let mut part = [0f32; P];
        let mut chunks = plane.chunks_exact(P);
        for c in &mut chunks {
            for (a, &x) in part.iter_mut().zip(c) {
                *a += x;
            }
        }
        for (a, &x) in part.iter_mut().zip(chunks.remainder()) {
            *a += x;
        }
        *y = part.iter().sum::<f32>() / spatial as f32;
    }
}

/// One plane, with monomorphised copies for the common 3×3 windows.
#[inline(always)]
fn plane(s: &PoolShape, reduce: Reduce, src: &[f32], dst: &mut [f32]) {
    match (s.kernel[1], s.stride[1]) {
        (3, 1) => plane_k::<3, 1, false>(s, reduce, src, dst),
        (3, 2) => plane_k::<3, 2, false>(s, reduce, src, dst),
        (2, 2) => plane_k::<2, 2, false>(s, reduce, src, dst),
        _ => plane_k::<0, 0, false>(s, reduce, src, dst),
    }
}

/// The input range a window covers along one axis, clipped to the input: `start..end` in input
/// coordinates, and the cells inside the padded input (for `count_include_pad`).
#[inline(always)]
fn window(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    size: usize,
    pad_end: usize,
) -> (Range<usize>, usize) {
    let p0 = o * stride;
    let padded = size + pad + pad_end;
    let in_padded = (p0 + k).min(padded).saturating_sub(p0);
    let start = p0.saturating_sub(pad).min(size);
    let end = (p0 + k).saturating_sub(pad).min(size);
    (start..end.max(start), in_padded)
}

/// `KW`/`SW` fix the column window and stride when non-zero (else they come from `s`);
/// `MAX512` (only with `KW = 3`, `SW = 2`, on the AVX-512 tier) runs the max pool's interior on
/// [`max_row_3x2`].
#[inline(always)]
fn plane_k<const KW: usize, const SW: usize, const MAX512: bool>(
    s: &PoolShape,
    reduce: Reduce,
    src: &[f32],
    dst: &mut [f32],
) {
    let kw = if KW == 0 { s.kernel[1] } else { KW };
    let sw = if SW == 0 { s.stride[1] } else { SW };
    let (pl, in_w) = (s.pads[1], s.in_w);
    // Output columns whose window lies inside the input row: `interior`.
    let first = pl.div_ceil(sw).min(s.out_w);
    let last = if in_w + pl >= kw {
        ((in_w + pl - kw) / sw + 1).min(s.out_w)
    } else {
        0
    };
    let interior = first..last.max(first);
    let init = match reduce {
        Reduce::Max => f32::NEG_INFINITY,
        Reduce::Avg { .. } => 0.0,
    };
    for oy in 0..s.out_h {
        let (rows, padded_rows) =
            window(oy, s.kernel[0], s.stride[0], s.pads[0], s.in_h, s.pads[2]);
        let out = &mut dst[oy * s.out_w..(oy + 1) * s.out_w];
        out.fill(init);
        for iy in rows.clone() {
            let row = &src[iy * in_w..(iy + 1) * in_w];
            let edge = |o: &mut f32, ox: usize| {
                let (cols, _) = window(ox, kw, sw, pl, in_w, s.pads[3]);
                for &x in &row[cols] {
                    *o = match reduce {
                        Reduce::Max => super::max_nan(*o, x),
                        Reduce::Avg { .. } => *o + x,
                    };
                }
            };
            for (ox, o) in out.iter_mut().enumerate().take(interior.start) {
                edge(o, ox);
            }
            let inner = &mut out[interior.clone()];
            // An empty interior may start left of the padding; its base is then never used.
            let base = (interior.start * sw).saturating_sub(pl);
            match reduce {
                // An empty interior has no windows (and `row[base..]` may then be empty).
                #[cfg(target_arch = "x86_64")]
                Reduce::Max if MAX512 && KW == 3 && SW == 2 && inner.is_empty() => {}
                #[cfg(target_arch = "x86_64")]
                Reduce::Max if MAX512 && KW == 3 && SW == 2 => {
                    // SAFETY: `MAX512` is only set by `plane_avx512`, on the AVX-512 tier; the
                    // interior's windows lie inside `row` (`first`/`last` above), so `row[base..]`
                    // holds the `2·inner.len() + 1` floats `max_row_3x2` reads.
                    unsafe { max_row_3x2(inner, &row[base..]) }
                }
                Reduce::Max => {
                    for (i, o) in inner.iter_mut().enumerate() {
                        let w = &row[base + i * sw..base + i * sw + kw];
                        for &x in w {
                            *o = super::max_nan(*o, x);
                        }
                    }
                }
                Reduce::Avg { .. } => {
                    for (i, o) in inner.iter_mut().enumerate() {
                        let w = &row[base + i * sw..base + i * sw + kw];
                        for &x in w {
                            *o += x;
                        }
                    }
                }
            }
            for (ox, o) in out.iter_mut().enumerate().skip(interior.end) {
                edge(o, ox);
            }
        }
        if let Reduce::Avg { count_include_pad } = reduce {
            for (ox, o) in out.iter_mut().enumerate() {
                let (cols, padded_cols) = window(ox, kw, sw, pl, in_w, s.pads[3]);
                let count = if count_include_pad {
                    padded_rows * padded_cols
                } else {
                    rows.len() * cols.len()
                };
                *o /= count as f32;
            }
        }
    }
}

/// `out[i] = max_nan(max_nan(max_nan(out[i], row[2i]), row[2i + 1]), row[2i + 2])` for every `i`
/// (a 3-wide, stride-2 window row of a max pool's interior), 16 outputs per step: the evens and
/// odds of 32 loaded floats by two permutes, `row[2i + 2]` as the evens moved down a lane with
/// `row[32]` (one past the step's last window start) shifted in, folded by [`fold_max512`]: the
/// same value as the scalar fold, NaN for NaN.
///
/// # Safety
/// AVX-512F. `row` must hold at least `2·out.len() + 1` floats (the windows of `out`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_row_3x2(out: &mut [f32], row: &[f32]) {
    use std::arch::x86_64::*;
    debug_assert!(row.len() > 2 * out.len(), "max pool window row too short");
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let steps = out.len() / 16;
    for step in 0..steps {
        let (o, r) = (&mut out[16 * step..][..16], &row[32 * step..][..33]);
        // SAFETY: `o` holds 16 floats and `r` 33 (checked by the slicing: `2·out.len() + 1`
        // floats of `row` cover the last step's 33).
        unsafe {
            let (lo, hi) = (
                _mm512_loadu_ps(r.as_ptr()),
                _mm512_loadu_ps(r.as_ptr().add(16)),
            );
            let a = _mm512_permutex2var_ps(lo, even, hi);
            let b = _mm512_permutex2var_ps(lo, odd, hi);
            let next = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                _mm512_castps_si512(_mm512_set1_ps(r[32])),
                _mm512_castps_si512(a),
            ));
            let acc = fold_max512(
                fold_max512(fold_max512(_mm512_loadu_ps(o.as_ptr()), a), b),
                next,
            );
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }
    // The last `n < 16` outputs: the same step on masked loads of the `2n + 1` floats their
    // windows read, `row[2i + 2]` as the evens of a second pair of loads two floats on (a
    // scalar fold of these took as long as the vector steps on 28-wide rows).
    let n = out.len() - 16 * steps;
    if n > 0 {
        let (o, r) = (&mut out[16 * steps..], &row[32 * steps..][..2 * n + 1]);
        // The lanes `j` of a load at `r[from..]` with `from + j` inside `r`.
        let lanes = |from: usize| -> __mmask16 {
            let len = r.len().saturating_sub(from).min(16);
            ((1u32 << len) - 1) as __mmask16
        };
        // SAFETY: every load reads only the lanes of its mask, floats inside `r`; the store
        // writes the `n` floats of `o`.
        unsafe {
            let p = r.as_ptr();
            let load = |from: usize| _mm512_maskz_loadu_ps(lanes(from), p.wrapping_add(from));
            let (lo, hi) = (load(0), load(16));
            let (lo2, hi2) = (load(2), load(18));
            let a = _mm512_permutex2var_ps(lo, even, hi);
            let b = _mm512_permutex2var_ps(lo, odd, hi);
            let next = _mm512_permutex2var_ps(lo2, even, hi2);
            let m = ((1u32 << n) - 1) as __mmask16;
            let acc = fold_max512(
                fold_max512(fold_max512(_mm512_maskz_loadu_ps(m, o.as_ptr()), a), b),
                next,
            );
            _mm512_mask_storeu_ps(o.as_mut_ptr(), m, acc);
        }
    }
}

/// Stride-1 pools whose output has the input's size ("same" padding: GoogLeNet's and
/// Inception's branch pools, on 7×7–35×35 maps that are mostly border) on AVX-512: a plane is one
/// flat run of `h · w` outputs, 16 a vector whatever the row width. Output `q` reads window cell
/// `(ky, kx)` at input `q + (ky − top) · w + (kx − left)`, a constant offset, when that cell lies
/// in the input; which lanes it does depends only on the shape, so the masks (and the averages'
/// divisors) are worked out once per call for every plane. Each output folds the reference's
/// cells in the reference's order (masked lanes are the fold's identity, as in
/// [`plane_avx512_vec`]), so the results are the reference's bit for bit. Rows of 35 took three
/// vectors (48 lanes) in [`plane_avx512_vec`], and window rows and masks were worked out per
/// vector of every plane: Inception-v3's 35×35 average pools took 450–660 µs a call.
#[cfg(target_arch = "x86_64")]
struct Flat {
    /// Outputs of a plane, `h · w`.
    len: usize,
    /// The flat input offset of each window cell, row by row.
    offsets: Vec<isize>,
    /// Per vector of 16 outputs, per cell: the lanes whose cell lies in the input.
    masks: Vec<u16>,
    /// Per output (16 per vector, 1.0 past the plane), the average's divisor; empty for max.
    divisors: Vec<f32>,
    max: bool,
}

#[cfg(target_arch = "x86_64")]
impl Flat {
    /// The flat layout of `s`, if it is a stride-1 pool whose output has its input's size.
    fn new(s: &PoolShape, reduce: Reduce) -> Option<Flat> {
        let (h, w) = (s.in_h, s.in_w);
        let [kh, kw] = s.kernel;
        let [pt, pl, pb, pr] = s.pads;
        let same = s.stride == [1, 1]
            && (s.out_h, s.out_w) == (h, w)
            && pt + pb + 1 == kh
            && pl + pr + 1 == kw;
        if !same || kh * kw > 64 || h * w < 16 {
            return None;
        }
        let len = h * w;
        let vectors = len.div_ceil(16);
        let cells = kh * kw;
        let offsets = (0..cells)
            .map(|c| {
                (c / kw) as isize * w as isize - pt as isize * w as isize + (c % kw) as isize
                    - pl as isize
            })
            .collect();
        let mut masks = vec![0u16; vectors * cells];
        let mut divisors = Vec::new();
        if let Reduce::Avg { .. } = reduce {
            divisors = vec![1.0f32; vectors * 16];
        }
        for q in 0..len {
            let (oy, ox) = (q / w, q % w);
            let (rows, padded_rows) = window(oy, kh, 1, pt, h, pb);
            let (cols, padded_cols) = window(ox, kw, 1, pl, w, pr);
            for ky in 0..kh {
                for kx in 0..kw {
                    let (iy, ix) = ((oy + ky).wrapping_sub(pt), (ox + kx).wrapping_sub(pl));
                    if iy < h && ix < w {
                        masks[q / 16 * cells + ky * kw + kx] |= 1 << (q % 16);
                    }
                }
            }
            if let Reduce::Avg { count_include_pad } = reduce {
                // The reference's divisor: window rows times window columns, as floats.
                divisors[q] = if count_include_pad {
                    padded_rows as f32 * padded_cols as f32
                } else {
                    rows.len() as f32 * cols.len() as f32
                };
            }
        }
        Some(Flat {
            len,
            offsets,
            masks,
            divisors,
            max: matches!(reduce, Reduce::Max),
        })
    }

    /// Vectors of 16 outputs per plane.
    fn vectors(&self) -> usize {
        self.len.div_ceil(16)
    }
}

/// Vectors `vectors` of one plane's [`Flat`] pool: `src` is the input plane, `dst` the output
/// plane's first float.
///
/// # Safety
/// AVX-512F; `f` made for this pool's shape, `src` one input plane of it, `dst` valid for writes
/// of the outputs of `vectors` (clipped to the plane) with nobody else writing them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn flat_avx512(f: &Flat, vectors: Range<usize>, src: &[f32], dst: *mut f32) {
    // SAFETY: forwarded.
    unsafe {
        if f.max {
            flat_rows_avx512::<true>(f, vectors, src, dst)
        } else {
            flat_rows_avx512::<false>(f, vectors, src, dst)
        }
    }
}

/// [`flat_avx512`] for max (`MAX`) or average pooling: four vectors a step (four independent
/// fold chains), then one at a time.
///
/// # Safety
/// As for [`flat_avx512`], with `MAX == f.max`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn flat_rows_avx512<const MAX: bool>(
    f: &Flat,
    vectors: Range<usize>,
    src: &[f32],
    dst: *mut f32,
) {
    debug_assert_eq!(src.len(), f.len);
    let mut v = vectors.start;
    while v + 4 <= vectors.end {
        // SAFETY: forwarded; vectors `v..v + 4` are in `vectors`.
        unsafe { flat_step_avx512::<MAX, 4>(f, v, src, dst) };
        v += 4;
    }
    while v < vectors.end {
        // SAFETY: as above.
        unsafe { flat_step_avx512::<MAX, 1>(f, v, src, dst) };
        v += 1;
    }
}

/// Vectors `v0..v0 + N` of a [`Flat`] pool, their accumulators in registers (`N` fixed, so that
/// none is indexed at run time).
///
/// # Safety
/// As for [`flat_avx512`], the `N` vectors from `v0` within its `vectors`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn flat_step_avx512<const MAX: bool, const N: usize>(
    f: &Flat,
    v0: usize,
    src: &[f32],
    dst: *mut f32,
) {
    use std::arch::x86_64::*;
    let identity = _mm512_set1_ps(if MAX { f32::NEG_INFINITY } else { 0.0 });
    let cells = f.offsets.len();
    let masks = &f.masks[v0 * cells..(v0 + N) * cells];
    let mut acc = [identity; N];
    for (cell, &off) in f.offsets.iter().enumerate() {
        for i in 0..N {
            let m = masks[i * cells + cell];
            // Lane `l` reads input `16·(v0 + i) + l + off`, inside the plane for the lanes of
            // `m` (`Flat::new`); the others are not read, and the pointer is only offset.
            let at = src.as_ptr().wrapping_offset((16 * (v0 + i)) as isize + off);
            // SAFETY: only the lanes of `m` are read, all inside `src`.
            let x = unsafe { _mm512_mask_loadu_ps(identity, m, at) };
            acc[i] = if MAX {
                fold_max512(acc[i], x)
            } else {
                _mm512_add_ps(acc[i], x)
            };
        }
    }
    for i in 0..N {
        let v = v0 + i;
        let mut y = acc[i];
        if !MAX {
            let d = &f.divisors[16 * v..16 * v + 16];
            // SAFETY: `d` holds 16 floats.
            y = _mm512_div_ps(y, unsafe { _mm512_loadu_ps(d.as_ptr()) });
        }
        let n = (f.len - 16 * v).min(16);
        let m = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: outputs `16·v .. 16·v + n` of the plane, the caller's to write.
        unsafe { _mm512_mask_storeu_ps(dst.add(16 * v), m, y) };
    }
}

/// The widest window [`plane_avx512_vec`] takes.
#[cfg(target_arch = "x86_64")]
const MAX_KW: usize = 16;

/// The widest output row [`plane_avx512_vec`] takes (its average pools keep a divisor per
/// output column on the stack).
#[cfg(target_arch = "x86_64")]
const MAX_OUT_W: usize = 256;

/// Max or average pool of one plane on AVX-512, column stride 1 or 2, windows up to [`MAX_KW`]
/// wide, rows up to [`MAX_OUT_W`]: four output rows at a time (four independent fold chains), 16
/// outputs of each a vector; for each window row (in order) and each window column (in order),
/// one load of the 16 cells those outputs read (stride 2: two loads and a permute to the even
/// lanes), the lanes outside the input masked to the fold's identity (−∞ for max, folded as
/// `max_nan` folds; +0 for sums, which start at +0 and so are never −0), and window rows outside
/// the input skipped. Every output folds the reference's cells in the reference's order, so the
/// results are the reference's bit for bit; averages divide by the same count.
///
/// # Safety
/// AVX-512F; `src` holds the plane's `in_h · in_w` floats, `dst` its `out_h · out_w`,
/// `s.stride[1]` is 1 or 2, `s.kernel[1] <= MAX_KW` and `s.out_w <= MAX_OUT_W`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn plane_avx512_vec(s: &PoolShape, reduce: Reduce, src: &[f32], dst: &mut [f32]) {
    // SAFETY: forwarded.
    unsafe {
        match (reduce, s.stride[1]) {
            (Reduce::Max, 1) => pool_rows_avx512::<true, 1>(s, reduce, src, dst),
            (Reduce::Max, _) => pool_rows_avx512::<true, 2>(s, reduce, src, dst),
            (Reduce::Avg { .. }, 1) => pool_rows_avx512::<false, 1>(s, reduce, src, dst),
            (Reduce::Avg { .. }, _) => pool_rows_avx512::<false, 2>(s, reduce, src, dst),
        }
    }
}

/// [`plane_avx512_vec`] for max (`MAX`) or average pooling, column stride `SW`.
///
/// # Safety
/// As for [`plane_avx512_vec`], with `SW == s.stride[1]` and `MAX` matching `reduce`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_rows_avx512<const MAX: bool, const SW: usize>(
    s: &PoolShape,
    reduce: Reduce,
    src: &[f32],
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    /// Output rows a step.
    const R: usize = 4;
    debug_assert!(src.len() >= s.in_h * s.in_w && dst.len() >= s.out_h * s.out_w);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let identity = _mm512_set1_ps(if MAX { f32::NEG_INFINITY } else { 0.0 });
    let (kh, kw, pl, in_w) = (s.kernel[0], s.kernel[1], s.pads[1], s.in_w);
    // Lanes `l < 16` whose column `start + l` lies in `0..in_w`.
    let cols = |start: isize| super::grouped::mask16(start, in_w);
    // Averages: each output column's window cells inside the input and inside the padded input,
    // as floats (exact: small integers), 1 past the row; a divisor is
    // the row count times these, a product of integers below 2^24 and so exact too.
    let (mut inside, mut padded) = ([1.0f32; MAX_OUT_W + 16], [1.0f32; MAX_OUT_W + 16]);
    if !MAX {
        for (ox, (i, p)) in inside.iter_mut().zip(&mut padded).enumerate().take(s.out_w) {
            let (range, cells) = window(ox, kw, SW, pl, in_w, s.pads[3]);
            (*i, *p) = (range.len() as f32, cells as f32);
        }
    }
    let mut oy = 0;
    while oy < s.out_h {
        let nr = (s.out_h - oy).min(R);
        // Each row's window rows: clipped to the input, and inside the padded input.
        let mut wins: [(Range<usize>, usize); R] = std::array::from_fn(|_| (0..0, 0));
        for (r, w) in wins.iter_mut().enumerate().take(nr) {
            *w = window(oy + r, kh, s.stride[0], s.pads[0], s.in_h, s.pads[2]);
        }
        for ox in (0..s.out_w).step_by(16) {
            let n = (s.out_w - ox).min(16);
            // Input column of lane 0 for window column `kx` (lane `l` reads `col + SW·l`), and
            // the masks of its one or two loads.
            let col = |kx: usize| (ox * SW + kx) as isize - pl as isize;
            let mut masks = [[0 as __mmask16; 2]; MAX_KW];
            for (kx, m) in masks.iter_mut().enumerate().take(kw) {
                *m = [cols(col(kx)), cols(col(kx) + 16)];
            }
            let mut acc = [identity; R];
            for ky in 0..kh {
                // Window row `ky` of output row `oy + r`: its input row, if inside the input.
                let mut rows = [None; R];
                for (r, row) in rows.iter_mut().enumerate().take(nr) {
                    let iy = ((oy + r) * s.stride[0] + ky).checked_sub(s.pads[0]);
                    *row = iy
                        .filter(|&iy| iy < s.in_h)
                        .map(|iy| src[iy * in_w..][..in_w].as_ptr());
                }
                for (kx, &[m0, m1]) in masks.iter().enumerate().take(kw) {
                    for (a, row) in acc.iter_mut().zip(rows) {
                        let Some(row) = row else { continue };
                        let at = row.wrapping_offset(col(kx));
                        // SAFETY: only the lanes of the masks are read, input columns inside
                        // the row.
                        let x = unsafe {
                            if SW == 1 {
                                _mm512_mask_loadu_ps(identity, m0, at)
                            } else {
                                let lo = _mm512_mask_loadu_ps(identity, m0, at);
                                let hi = _mm512_mask_loadu_ps(identity, m1, at.wrapping_add(16));
                                _mm512_permutex2var_ps(lo, even, hi)
                            }
                        };
                        *a = if MAX {
                            fold_max512(*a, x)
                        } else {
                            _mm512_add_ps(*a, x)
                        };
                    }
                }
            }
            let m = ((1u32 << n) - 1) as __mmask16;
            for (r, (mut y, (rows, padded_rows))) in acc.into_iter().zip(wins.clone()).enumerate() {
                if r == nr {
                    break;
                }
                if let Reduce::Avg { count_include_pad } = reduce {
                    let (per_col, rows) = if count_include_pad {
                        (&padded, padded_rows)
                    } else {
                        (&inside, rows.len())
                    };
                    // SAFETY: `ox + 16 <= out_w + 15 < MAX_OUT_W + 16` floats of `per_col`.
                    let cols = unsafe { _mm512_loadu_ps(per_col[ox..ox + 16].as_ptr()) };
                    y = _mm512_div_ps(y, _mm512_mul_ps(_mm512_set1_ps(rows as f32), cols));
                }
                let at = (oy + r) * s.out_w + ox;
                // SAFETY: outputs `at..at + n` (row `oy + r`) lie in `dst` (its length, above).
                unsafe { _mm512_mask_storeu_ps(dst[at..][..n].as_mut_ptr(), m, y) };
            }
        }
        oy += nr;
    }
}

/// `max_nan(acc, x)` lane by lane: `_mm512_max_ps(x, acc)` returns `acc` when they are equal (so
/// signed zeros fold as in `max_nan`) and when either is NaN, so a NaN `x` is blended back in.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn fold_max512(
    acc: std::arch::x86_64::__m512,
    x: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_mask_blend_ps(nan, _mm512_max_ps(x, acc), x)
}
