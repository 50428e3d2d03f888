//! Direct grouped convolution (ResNeXt's 3×3 convs with 4–32 channels per group), NCHW, no im2col:
//! register tiles of output channels × output rows × a vector of consecutive output columns.
//!
//! Every ISA tier reads the same packed weights. For each group, the output channels are cut into
//! blocks of [`OC_BLOCK`] (the last one narrower); a block's weights are stored as
//! `[in channel of the group][ky][kx][output channel of the block]`, so the micro-kernel broadcasts
//! consecutive scalars while it reuses one input vector for every output channel of the block.
//! Depthwise convs (`depthwise.rs`) are the same kernel with one channel per group.

use std::ops::Range;

use super::{Activation, ConvArgs, ConvShape, KernelError, SharedOut, check_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

mod generic;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Output channels per packed weight block (and the widest register tile over channels).
pub const OC_BLOCK: usize = 8;

/// Multiply-adds below which a task takes several (batch item, group) pairs (see `run_direct`).
const MIN_TASK_MACS: usize = 32 * 1024;

/// Whether [`run`] handles this conv: grouped (more than one group), 3×3, dilation 1, strides 1 or 2.
pub fn supports(shape: &ConvShape) -> bool {
    shape.group > 1
        && shape.kernel == [3, 3]
        && shape.dilation == [1, 1]
        && shape.stride.iter().all(|s| (1..=2).contains(s))
        && shape.check().is_ok()
}

/// Packs `[out_c, in_c / group, kh, kw]` weights into the block layout described in the module doc.
/// Done once at compile time; the layout is the same for every ISA. A weight slice of the wrong
/// length gives an empty vector, which [`run`] then rejects with a length error.
pub fn pack(shape: &ConvShape, weight: &[f32]) -> Vec<f32> {
    if shape.group == 0 || weight.len() != shape.weight_len() {
        return Vec::new();
    }
    let cin_g = shape.in_c / shape.group;
    let cout_g = shape.out_c / shape.group;
    let taps = shape.kernel[0] * shape.kernel[1];
    let mut packed = Vec::with_capacity(weight.len());
    for g in 0..shape.group {
        for block in (0..cout_g).step_by(OC_BLOCK) {
            let width = OC_BLOCK.min(cout_g - block);
            for ic in 0..cin_g {
                for tap in 0..taps {
                    for o in 0..width {
                        let oc = g * cout_g + block + o;
                        packed.push(weight[(oc * cin_g + ic) * taps + tap]);
                    }
                }
            }
        }
    }
    packed
}

/// Grouped 3×3 conv with its fused epilogue: `output = act(conv(input) + bias + residual)`.
/// `args.packed` comes from [`pack`]; no scratch. A `ctx.isa` the CPU lacks falls back to the
/// generic tier.
pub fn run(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let shape = &args.shape;
    if !supports(shape) {
        shape.check()?;
        return Err(KernelError::BadShape(format!(
            "grouped conv kernel needs groups > 1, a 3×3 kernel, dilation 1 and stride 1 or 2: {shape:?}"
        )));
    }
    run_direct(ctx, args, Layout::Nchw)
}

/// Whether [`run_nchw8c`] computes `shape` on `isa` itself: whole blocks of 8 input and output
/// channels per group, on a SIMD tier, a shape the AVX2 output-channel kernel (`avx2_out_channels`) takes.
/// The other NCHW8c grouped convs run [`run`] between copies to and from NCHW
/// (`conv::ConvAlgo::GroupedNchw8c`).
pub fn runs_nchw8c(shape: &ConvShape, isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(isa, Isa::Avx2 | Isa::Avx512)
            && isa.supported()
            && supports(shape)
            && (shape.in_c / shape.group).is_multiple_of(super::blocked::BLOCK)
            && x86::avx2_out_channels::applies(shape)
            && x86::avx2_out_channels::fits(shape)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (shape, isa);
        false
    }
}

/// [`run`] on NCHW8c input, residual and output, for a shape [`runs_nchw8c`] accepts (else a
/// `BadShape` error). A group's channels are whole blocks, which lie where its NCHW planes would.
pub fn run_nchw8c(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let shape = &args.shape;
    if !runs_nchw8c(shape, ctx.isa) {
        return Err(KernelError::BadShape(format!(
            "the NCHW8c grouped kernel does not take {shape:?} on {}",
            ctx.isa.name()
        )));
    }
    run_direct(ctx, args, Layout::Nchw8c)
}

/// How a band's input, residual and output are laid out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    Nchw,
    /// Blocks of 8 channels (`kernels::blocked`); only the `avx2_out_channels` kernel reads it.
    Nchw8c,
}

/// The part of the output one micro-kernel call computes: one block of output channels of one group
/// of one batch item, over a band of output rows.
pub(crate) struct Band<'a> {
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub stride: [usize; 2],
    pub pad_top: usize,
    pub pad_left: usize,
    pub kernel: usize,
    pub cin_g: usize,
    /// The group's `cin_g` input planes of this batch item (NCHW8c: its `cin_g / 8` blocks).
    pub input: &'a [f32],
    /// The layout of the input, the residual and the output.
    pub layout: Layout,
    /// The block's packed weights: tap `(ic, ky, kx)` of channel `o` at `((ic·k + ky)·k + kx)·wstride + o`.
    pub weights: &'a [f32],
    pub wstride: usize,
    /// Channels in this block (`1..=OC_BLOCK`).
    pub width: usize,
    /// `width` entries, or none.
    pub bias: Option<&'a [f32]>,
    /// The block's `width` residual planes, laid out like the output.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
    /// The block's first output plane; `width` planes of `out_h × out_w` follow.
    pub output: *mut f32,
    /// The output rows this call writes; nothing outside them is touched.
    pub rows: Range<usize>,
    /// What the next call on this thread will read that this one does not (the next block's
    /// weights, and after a group's last block the input planes of the next group, when a
    /// group is one band). The
    /// AVX2 tile kernel prefetches it into L2 a piece per tile, so that it does not come from
    /// memory on first touch: in a model run the weights are in no cache, and reads scattered
    /// over a group's planes defeat the hardware prefetchers. ResNeXt-50, `RESNEXT_PROFILE=1`,
    /// 5 alternated runs at 1 thread, Zen 3: its grouped convs 24.4 → 21.2 ms (medians); the
    /// same in the row kernel made no difference beyond the noise.
    pub next: [&'a [f32]; 2],
}

/// The shared driver of the grouped and depthwise kernels: checks, then splits (batch item, group,
/// row band) tasks over the threads.
pub(crate) fn run_direct(ctx: &Ctx, args: ConvArgs, layout: Layout) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    let ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        ..
    } = args;
    let shape = &shape;
    shape.check()?;
    if shape.kernel[0] != shape.kernel[1] || shape.dilation != [1, 1] || shape.stride[1] > 2 {
        return Err(KernelError::BadShape(format!(
            "direct conv needs a square kernel, dilation 1 and a column stride of 1 or 2: {shape:?}"
        )));
    }
    check_len("conv input", batch * shape.input_len(), input.len())?;
    check_len("conv packed weight", shape.weight_len(), packed.len())?;
    check_len("conv output", batch * shape.output_len(), output.len())?;
    epilogue.check(batch, shape.out_c, shape.out_h * shape.out_w)?;
    let isa = if isa.supported() { isa } else { Isa::Generic };

    let s = *shape;
    if batch == 0 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512
        && layout == Layout::Nchw
        && x86::avx512_depthwise_small::applies(&s)
        && (!x86::avx512_depthwise_direct::applies(&s) || {
            // Lanes each kernel computes: a vector per 16 pixels of the plane, or per 16 columns
            // of each row.
            let flat = (s.out_h * s.out_w).next_multiple_of(16);
            let by_rows = s.out_h * s.out_w.next_multiple_of(16);
            10 * flat < 8 * by_rows
        })
    {
        // Small depthwise maps whose rows leave many lanes of the direct kernel idle (7×7, 10×10,
        // 19×19): whole planes by masked loads, several channels a task. At 14×14, where the
        // rows fill 14 of 16 lanes, the direct kernel measured as fast (5×5) or faster (3×3: 0.87×
        // the time).
        let masks = x86::avx512_depthwise_small::Masks::new(&s);
        let planes = batch * s.out_c;
        let tasks = planes.min(4 * threads.count());
        let per_task = planes.div_ceil(tasks);
        let out = SharedOut(output.as_mut_ptr());
        threads.run(planes.div_ceil(per_task), &|t| {
            let range = t * per_task..((t + 1) * per_task).min(planes);
            // SAFETY: AVX-512 is supported (checked above); the lengths of the input, weights,
            // output and epilogue were checked above; this task alone writes planes `range`.
            unsafe {
                x86::avx512_depthwise_small::run(
                    &s,
                    &masks,
                    input,
                    packed,
                    &epilogue,
                    out.ptr(),
                    range,
                )
            };
        });
        return Ok(());
    }
    let cin_g = s.in_c / s.group;
    let cout_g = s.out_c / s.group;
    let k = s.kernel[0];
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h * s.out_w);
    // Enough tasks to balance the threads; bands are whole multiples of 8 rows where possible so
    // the row tiles of the micro-kernels are rarely cut short.
    let items = batch * s.group;
    let mut want_bands = (4 * threads.count())
        .div_ceil(items)
        .min(s.out_h.div_ceil(8))
        .max(1);
    if batch < threads.count() && s.out_h >= 8 * threads.count() {
        // Large maps of one image split into a band of rows per thread (the tasks below are
        // ordered band by band, and each thread starts on its own run of them: see `Threads`), so
        // a thread computes the pixels it computed in the layers before and after, and reads them
        // from its own caches.
        want_bands = want_bands.max(threads.count());
    }
    let mut band_rows = s.out_h.div_ceil(want_bands);
    // The AVX-512 direct depthwise kernel reads any band; the plane kernels' buffers bound theirs.
    #[cfg(target_arch = "x86_64")]
    let direct =
        isa == Isa::Avx512 && layout == Layout::Nchw && x86::avx512_depthwise_direct::applies(&s);
    #[cfg(target_arch = "x86_64")]
    if !direct
        && matches!(isa, Isa::Avx2 | Isa::Avx512)
        && let Some(fit) = x86::depthwise_band_rows(&s)
    {
        // Depthwise on the SIMD tiers: bands small enough for the plane kernels' buffers.
        band_rows = band_rows.min(fit);
        if isa == Isa::Avx512
            && let Some(fit) = x86::depthwise_band_rows_avx512(&s)
        {
            band_rows = band_rows.min(fit);
        }
    }
    let bands = s.out_h.div_ceil(band_rows);
    // Small items (a depthwise channel of a 7×7 or 14×14 map: a few hundred MACs) go several to a
    // task, so that claiming a task and setting up a kernel call do not outweigh the work.
    let item_macs = cout_g * out_plane * cin_g * k * k;
    let per_task = if bands == 1 {
        (MIN_TASK_MACS / item_macs.max(1)).clamp(1, (items / (4 * threads.count())).max(1))
    } else {
        1
    };
    let chunks = items.div_ceil(per_task);
    // Whole blocks of 8 output channels per group run a group at a time, vectorised over output
    // channels (`avx2_out_channels`). The AVX-512 tier keeps its 16-column tiles for rows wider than 8 (they
    // fill most lanes), and takes `avx2_out_channels` for narrower ones: on Zen 4, ResNeXt-50's stage 4 (7×7
    // maps) 0.82× the time of the column tiles at 1 thread (stride 2 to 7×7 0.96×), while they
    // won at 14×14 (0.97–0.98×) and wider (0.54–0.91×).
    #[cfg(target_arch = "x86_64")]
    let by_pixels =
        (isa == Isa::Avx2 || layout == Layout::Nchw8c || (isa == Isa::Avx512 && s.out_w <= 8))
            && x86::avx2_out_channels::applies(&s);
    let out = SharedOut(output.as_mut_ptr());
    let taps = cin_g * k * k;
    // Output channels `oc..oc + width` (of group `g`) of batch item `n`, over `rows`; the
    // weights are `width / wstride` packed blocks.
    let band_of = |n: usize, g: usize, oc: usize, (width, wstride): (usize, usize), rows, next| {
        let in_start = (n * s.in_c + g * cin_g) * in_plane;
        let out_start = (n * s.out_c + oc) * out_plane;
        Band {
            in_h: s.in_h,
            in_w: s.in_w,
            out_h: s.out_h,
            out_w: s.out_w,
            stride: s.stride,
            pad_top: s.pads[0],
            pad_left: s.pads[1],
            kernel: k,
            cin_g,
            input: &input[in_start..in_start + cin_g * in_plane],
            layout,
            weights: &packed[oc * taps..(oc + width) * taps],
            wstride,
            width,
            bias: epilogue.bias.map(|b| &b[oc..oc + width]),
            residual: epilogue
                .residual
                .map(|r| &r[out_start..out_start + width * out_plane]),
            activation: epilogue.activation,
            // The offset stays inside `output`, whose length was checked above.
            output: out.ptr().wrapping_add(out_start),
            rows,
            next,
        }
    };
    let item = |band: usize, item: usize| {
        let g = item % s.group;
        let n = item / s.group;
        let rows = band * band_rows..((band + 1) * band_rows).min(s.out_h);
        let in_start = (n * s.in_c + g * cin_g) * in_plane;
        let group_len = cin_g * in_plane;
        // After a group, this thread's next task is the next group (each thread runs a
        // contiguous run of tasks, see `Threads`): its input planes (groups' planes are
        // consecutive, into the next batch item), when a group is one band.
        let next_input = || {
            let from = in_start + group_len;
            let next = (bands == 1).then(|| input.get(from..(from + group_len).min(input.len())));
            next.flatten().unwrap_or(&[])
        };
        #[cfg(target_arch = "x86_64")]
        if by_pixels {
            let group_w = cout_g * taps;
            let wn = (g + 1) * group_w;
            let next_w = packed.get(wn..(wn + group_w).min(packed.len()));
            let next = [next_w.unwrap_or(&[]), next_input()];
            let b = band_of(n, g, g * cout_g, (cout_g, OC_BLOCK), rows.clone(), next);
            // SAFETY: `b.output` points at the group's `cout_g` planes inside `output` (lengths
            // checked above); this task alone writes rows `rows` of them; the tier (AVX2, or
            // AVX-512, which implies AVX2 and FMA) is supported by this CPU.
            let done = unsafe { x86::out_channels_avx2(&b) };
            // NCHW8c shapes passed `runs_nchw8c`, which are the ones `avx2_out_channels` takes.
            debug_assert!(done || layout == Layout::Nchw, "pixels declined {s:?}");
            if done || layout == Layout::Nchw8c {
                return;
            }
        }
        for block in (0..cout_g).step_by(OC_BLOCK) {
            let width = OC_BLOCK.min(cout_g - block);
            let oc = g * cout_g + block;
            let (w_start, w_end) = (oc * taps, (oc + width) * taps);
            // The next block's weights (after a group's last block, the next group's first), and
            // after the last block the next group's input.
            let last = block + width == cout_g;
            let next_w = packed.get(w_end..(w_end + w_end - w_start).min(packed.len()));
            let next = [next_w.unwrap_or(&[]), if last { next_input() } else { &[] }];
            let b = band_of(n, g, oc, (width, width), rows.clone(), next);
            // SAFETY: `b.output` points at `width` planes inside `output` (lengths checked above);
            // this task alone writes rows `rows` of channels `oc..oc + width` of item `n`, so no two
            // tasks write the same element, and `isa` is supported by this CPU.
            unsafe { band_dispatch(&b, isa) };
        }
    };
    let task = |t: usize| {
        if bands == 1 {
            for i in t * per_task..((t + 1) * per_task).min(items) {
                item(0, i);
            }
        } else {
            // Batch item, then band, then group: a thread's run of tasks is one region of pixels.
            let (n, band, g) = (t / (bands * s.group), t / s.group % bands, t % s.group);
            item(band, n * s.group + g);
        }
    };
    threads.run(bands * chunks, &task);
    Ok(())
}

/// Runs one band on the chosen tier.
///
/// # Safety
/// `b.output` must be valid for writes of `b.width` planes of `out_h × out_w` (rows `b.rows`), not
/// written concurrently by anyone else there, and `isa` must be supported by this CPU.
unsafe fn band_dispatch(b: &Band, isa: Isa) {
    let done = match isa {
        // Depthwise bands go to the AVX-512 plane kernel, then (bands too wide for its buffer)
        // the AVX2 one, which beat the 16-lane tile kernel on MobileNetV2 (on a Xeon, 4.5–6.7 ms
        // against 11.6–16.3 ms at 1 thread).
        // SAFETY: forwarded from the caller (`Isa::Avx512` implies AVX2 and FMA too).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            x86::depthwise_direct_avx512(b)
                || x86::depthwise_plane_avx512(b)
                || x86::depthwise_plane_avx2(b)
                || x86::tiles_avx512(b)
        },
        // SAFETY: forwarded from the caller.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe {
            x86::depthwise_plane_avx2(b)
                || x86::padded_rows_avx2(b)
                || x86::grouped3x3_avx2(b)
                || x86::tiles_avx2(b)
        },
        _ => false,
    };
    if !done {
        // SAFETY: forwarded from the caller.
        unsafe { generic::band(b) }
    }
}

/// Bit `l` set for the lanes `l < 16` whose column `start + l` lies in `0..width`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn mask16(start: isize, width: usize) -> u16 {
    let r = lane_range(start, 1, width, 16);
    (((1u32 << r.end) - 1) & !((1u32 << r.start) - 1)) as u16
}

/// The lanes `l` in `0..lanes` whose input column `start + l·stride` lies in `0..width`.
#[inline(always)]
pub(crate) fn lane_range(start: isize, stride: usize, width: usize, lanes: usize) -> Range<usize> {
    let s = stride as isize;
    let lo = if start < 0 { (-start + s - 1) / s } else { 0 };
    let room = width as isize - start;
    let hi = if room <= 0 { 0 } else { (room + s - 1) / s };
    let (lo, hi) = ((lo as usize).min(lanes), (hi as usize).min(lanes));
    lo..hi.max(lo)
}
