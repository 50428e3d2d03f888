//! Dense (ungrouped) convs as an implicit GEMM over a zero-padded, phase-split copy of the input:
//! the 3×3 convs of ResNets and VGGs at stride 1 and 2, and the stems.
//!
//! The conv is the GEMM `out[oc, p] = Σ_{ic, ky, kx} W[oc, ic, ky, kx] · X(ic, ky, kx)[p]`, summed
//! in that order (`ic` outer, taps inner) with one fp32 FMA per term, in blocks of about
//! `SUM_BLOCK` terms each summed from zero and then added to the running sum (as the im2col
//! GEMM adds its k blocks to C): the rounding of a direct convolution, no transform. What makes it cheap is where B's rows come from. Each image is first
//! copied once, zero-padded, into `sy × sx` phases per channel,
//! `phase[ic][qy][qx][j][i] = padded[ic][j·sy + qy][i·sx + qx]` (`Hq × Wq` each). Output pixels are
//! then numbered across rows of width `Wq` instead of `out_w` (column `c = oy·Wq + ox`), and the
//! B row of tap `(ic, ky, kx)` is the contiguous run
//! `phase[ic][(ky·dy) % sy][(kx·dx) % sx][oy + ky·dy / sy][ox + kx·dx / sx ..]`: a fixed offset
//! per tap from the run of tap 0, for every pixel. So the micro-kernels load B straight from the
//! copy, with no im2col packing (which took 10–25% of a 3×3 layer at 56×56 and 28×28); the
//! columns `out_w..Wq` of each row (2 of 58 at 56×56 stride 1) are computed and dropped, and the
//! epilogue stores each output row's run with masked stores.
//!
//! A micro-tile is 8 output channels (one packed A panel, `gemm::pack_a` of the ONNX weights,
//! whose k order is `(ic, ky, kx)`) × up to 48 columns, over the whole k (the running sum of the
//! blocks in a per-thread `MR × NR` buffer, the output written once): AVX-512 8 × 3 zmm, AVX2
//! four 4 × 3 ymm quarters, generic plain loops. Tasks are (range of columns, range of panels)
//! rectangles of one image; a task sweeps every panel of its range over a chunk of tiles whose
//! input stays in L2 (each panel's weights stay in L1/L2 across the chunk's tiles; looping tiles
//! outside and panels inside measured slower, 1.7× on VGG's 3-channel stem). Small maps run on
//! `by_channel` instead.

use super::{ConvArgs, ConvShape, Epilogue, KernelError, SharedOut, check_len, check_min_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod by_channel;

/// Output channels per micro-tile (the A panel height of `gemm::pack_a`).
const MR: usize = super::gemm::MR;
/// Columns per micro-tile at most: three 16-lane vectors.
const NR: usize = 48;
/// Most taps (`kh · kw`) a kernel may have: 11 × 11.
const MAX_TAPS: usize = 121;
/// Most store runs of one micro-tile: a run per output row met in each 8- or 16-lane vector.
const MAX_RUNS: usize = NR;
/// k steps summed from zero before being added to the running sums, about (whole input
/// channels): summing k in blocks keeps the rounding error of deep layers (4608 products) near the
/// im2col GEMM's, whose k blocks of 256 are added to C one by one; one chain over all of k took
/// full-size ResNet-50's logits past the accuracy bound (1.14× it, against 0.98× for im2col).
const SUM_BLOCK: usize = 128;

/// Floats of input a chunk of tiles aims at, so that it stays in L2 while every panel of the
/// task sweeps it.
const CHUNK_FLOATS: usize = 96 * 1024;

/// Whether [`run`] computes `shape`: any valid ungrouped conv with at most `MAX_TAPS` (121) taps.
pub fn supports(shape: &ConvShape) -> bool {
    shape.check().is_ok() && shape.group == 1 && shape.kernel[0] * shape.kernel[1] <= MAX_TAPS
}

/// Whether the compiler should pick this algorithm for `shape` over im2col: an ungrouped conv
/// larger than 1×1 (a 1×1 conv is a plain GEMM on its input planes already) with at least
/// `MIN_K` products per output, whose column tiles waste at most 15% of their columns or whose
/// map is small enough for `by_channel`. Measured at 1 thread against im2col
/// (`examples/bench_implicit.rs`, `bench/RESULTS.md` 2026-12-07): see there; the 3-channel 3×3
/// stems (27 products an output, the epilogue's share large) took 1.03–1.1× im2col's time, and
/// Inception-v3's 5×5 convs on 35×35 maps (10% of the columns wasted) 0.83×.
pub fn preferred(shape: &ConvShape) -> bool {
    supports(shape)
        && shape.kernel != [1, 1]
        && k_len(shape) >= MIN_K
        && (useful_share(shape) >= MIN_USEFUL_OVER_IM2COL || by_channel(shape))
}

/// The share of the columns the column tiles compute that are outputs.
fn useful_share(s: &ConvShape) -> f64 {
    let computed = columns(s, phases(s)).div_ceil(16) * 16;
    (s.out_h * s.out_w) as f64 / computed as f64
}

/// Whether at least [`MIN_USEFUL`] of the columns the column tiles compute are outputs.
fn columns_useful(s: &ConvShape) -> bool {
    useful_share(s) >= MIN_USEFUL
}

/// Whether [`run`] vectorises over output channels (`by_channel`) rather than columns: small
/// maps, where the column tiles would waste lanes (a valid shape [`supports`] takes).
fn by_channel(s: &ConvShape) -> bool {
    !columns_useful(s) && s.out_h * s.out_w <= by_channel::MAX_PIXELS_PER_MAP
}

/// Fewest products per output [`preferred`] takes.
const MIN_K: usize = 64;
/// Smallest share of real outputs among the computed columns for which the column tiles run
/// rather than `by_channel` (on maps small enough for it).
const MIN_USEFUL: f64 = 0.9;
/// Smallest share of real outputs among the computed columns [`preferred`] takes over im2col.
const MIN_USEFUL_OVER_IM2COL: f64 = 0.85;

/// Floats [`pack`] returns.
pub fn packed_len(shape: &ConvShape) -> usize {
    if by_channel(shape) {
        return by_channel::packed_len(shape);
    }
    super::gemm::packed_a_len(shape.out_c, k_len(shape))
}

fn k_len(s: &ConvShape) -> usize {
    s.in_c * s.kernel[0] * s.kernel[1]
}

/// Packs ONNX weights `[out_c, in_c, kh, kw]` (k in `(ic, ky, kx)` order) into `MR`-row panels
/// `[panel][k][MR]`, or for the small maps of `by_channel` into its panels `[panel][k][32]`.
pub fn pack(shape: &ConvShape, weight: &[f32]) -> Vec<f32> {
    if by_channel(shape) {
        return by_channel::pack(shape, weight);
    }
    let (m, k) = (shape.out_c, k_len(shape));
    let mut packed = Vec::with_capacity(packed_len(shape));
    super::gemm::pack_a(weight, m, k, k, &mut packed);
    packed
}

/// Geometry of the phase-split copy.
#[derive(Clone, Copy)]
struct Phases {
    /// Rows and columns of one phase.
    hq: usize,
    wq: usize,
    /// Floats of one input channel (all its phases).
    plane: usize,
}

fn phases(s: &ConvShape) -> Phases {
    let hp = s.in_h + s.pads[0] + s.pads[2];
    let wp = s.in_w + s.pads[1] + s.pads[3];
    let [sy, sx] = s.stride;
    let (hq, wq) = (hp.div_ceil(sy), wp.div_ceil(sx));
    Phases {
        hq,
        wq,
        plane: sy * sx * hq * wq,
    }
}

/// Scratch floats [`run`] needs on `threads` threads: the phase-split copy of one image, slack
/// for the vector loads past its last column, room to align it, and each thread's partial sums
/// (a tile's, or for small maps a panel's over the whole map).
pub fn scratch_len(shape: &ConvShape, threads: usize) -> usize {
    let sums = if by_channel(shape) {
        by_channel::sums_len(shape)
    } else {
        MR * NR
    };
    shape.in_c * phases(shape).plane + NR + 2 * super::gemm::ALIGN_SLACK + threads.max(1) * sums
}

/// Column tiles of an image: whole 16-column vectors, 2 or 3 a tile.
fn tile_count(s: &ConvShape) -> usize {
    columns(s, phases(s)).div_ceil(16).div_ceil(NR / 16)
}

/// Columns of the padded-width numbering that hold outputs: up to the last output pixel.
fn columns(s: &ConvShape, ph: Phases) -> usize {
    (s.out_h - 1) * ph.wq + s.out_w
}

/// One micro-tile's operands; every tier reads the same.
#[derive(Clone, Copy)]
struct Tile<'a> {
    /// The panel's packed weights at k = 0: `MR` floats per k, k in `(ic, tap)` order.
    a: *const f32,
    /// The phase-split copy at the tile's first column (tap offsets and channels to be added).
    b: *const f32,
    /// Floats between consecutive input channels of the copy.
    plane: usize,
    cin: usize,
    /// Input channels summed per block (`SUM_BLOCK` k steps, about).
    block: usize,
    /// Room for the running sums of the blocks, `[MR][NR]`.
    partial: *mut f32,
    /// Offset of each tap's run from tap 0's.
    taps: &'a [usize],
    /// First column (padded-width numbering) and count, `1..=NR`.
    col0: usize,
    cols: usize,
    /// Padded row width and output row width.
    wq: usize,
    out_w: usize,
    /// The output plane of the panel's first channel; channels `n` floats apart.
    out: *mut f32,
    /// Laid out like `out`, or null.
    residual: *const f32,
    n: usize,
    /// Output channels of the panel that exist, `1..=MR`.
    rows: usize,
    /// The panel's `rows` bias entries, or null.
    bias: *const f32,
    activation: super::Activation,
}

/// A run of lanes `lo..hi` of vector `v` of a tile (`lanes` wide), all in one output row; lane
/// `l` of the vector is stored at output index `col0 + v·lanes + l + delta`.
#[derive(Clone, Copy, Default)]
struct Run {
    v: usize,
    lo: usize,
    hi: usize,
    delta: isize,
}

/// The store runs of columns `first..first + cols` of `t` (relative to `t.col0`) in vectors of
/// `lanes`; returns how many of `runs` it filled.
fn store_runs(
    t: &Tile,
    first: usize,
    cols: usize,
    lanes: usize,
    runs: &mut [Run; MAX_RUNS],
) -> usize {
    let mut count = 0;
    let mut c = 0;
    while c < cols {
        let col = t.col0 + first + c;
        let (oy, ox) = (col / t.wq, col % t.wq);
        let v = c / lanes;
        // The run ends at the row's end, the vector's end or the tile's end.
        let end = (c + t.wq - ox).min((v + 1) * lanes).min(cols);
        if ox < t.out_w && count < MAX_RUNS {
            let valid = end.min(c + t.out_w - ox);
            runs[count] = Run {
                v,
                lo: c - v * lanes,
                hi: valid - v * lanes,
                delta: (oy * t.out_w) as isize - (oy * t.wq) as isize,
            };
            count += 1;
        }
        c = end;
    }
    count
}

/// `output = act(conv(input) + bias + residual)` (NCHW), `packed` from [`pack`], `scratch` at
/// least [`scratch_len`] floats. Allocates nothing.
pub fn run(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
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
    if !supports(s) {
        return Err(KernelError::BadShape(format!(
            "the implicit-GEMM conv does not support {s:?}"
        )));
    }
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv packed weight", packed_len(s), packed.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    let n = s.out_h * s.out_w;
    epilogue.check(batch, s.out_c, n)?;
    let threads = ctx.threads;
    check_min_len(
        "conv scratch",
        scratch_len(s, threads.count()),
        scratch.len(),
    )?;
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        Isa::Generic
    };
    let ph = phases(s);
    let copy_len = s.in_c * ph.plane;
    let scratch = super::gemm::aligned(scratch);
    let (copy, rest) = scratch.split_at_mut(copy_len);
    let (slack, sums) = rest.split_at_mut(NR);
    slack.fill(0.0);
    // Each thread's sums on cache lines of its own (`MR · NR` and `sums_len` are whole lines):
    // sums sharing a line with another thread's would move it between the cores every block.
    let sums = SharedOut(super::gemm::aligned(sums).as_mut_ptr());
    let copy = &mut copy[..];

    let [kh, kw] = s.kernel;
    let [sy, sx] = s.stride;
    let [dy, dx] = s.dilation;
    let mut taps = [0usize; MAX_TAPS];
    for ky in 0..kh {
        for kx in 0..kw {
            let (qy, qx) = ((ky * dy) % sy, (kx * dx) % sx);
            taps[ky * kw + kx] = ((qy * sx + qx) * ph.hq + ky * dy / sy) * ph.wq + kx * dx / sx;
        }
    }
    let taps = &taps[..kh * kw];
    // Image stems sum one input channel at a time (see `gemm::STEM_MAX_CHANNELS`).
    let block = if crate::kernels::gemm::is_stem(s) {
        1
    } else {
        (SUM_BLOCK / taps.len()).max(1)
    };

    // Tiles of whole 16-column vectors, as equal as they come (2 or 3 vectors each).
    let cols = columns(s, ph);
    let vectors = cols.div_ceil(16);
    let tiles = tile_count(s);
    let tile_cols = |i: usize| {
        let (v0, v1) = (vectors * i / tiles, vectors * (i + 1) / tiles);
        (16 * v0, (16 * v1).min(cols) - 16 * v0)
    };
    let panels = s.out_c.div_ceil(MR);
    let want = 4 * threads.count();
    let col_parts = tiles.min(want);
    let panel_parts = want.div_ceil(col_parts).min(panels);
    // Input floats one tile reads: its columns and the taps' reach down and right, in every
    // phase.
    let reach = (kh - 1) * dy / sy * ph.wq + (kw - 1) * dx / sx;
    let per_channel = CHUNK_FLOATS / (s.in_c * sy * sx).max(1);
    let chunk_tiles = (per_channel.saturating_sub(reach) / NR).max(1);
    let partial_len = MR * NR;
    let out = SharedOut(output.as_mut_ptr());
    let k = k_len(s);

    for img in 0..batch {
        let x = &input[img * s.input_len()..][..s.input_len()];
        fill_phases(ctx, s, ph, isa, x, copy);
        let copy: &[f32] = copy;
        if by_channel(s) {
            let out_len = s.output_len();
            let image = Epilogue {
                residual: epilogue.residual.map(|r| &r[img * out_len..][..out_len]),
                ..epilogue
            };
            let out = SharedOut(out.ptr().wrapping_add(img * out_len));
            by_channel::run_image(ctx, isa, s, ph, taps, copy, packed, &image, out, sums);
            continue;
        }
        threads.run_indexed(col_parts * panel_parts, &|t, worker| {
            let (cp, pp) = (t / panel_parts, t % panel_parts);
            let tile_range = cp * tiles / col_parts..(cp + 1) * tiles / col_parts;
            let panel_range = pp * panels / panel_parts..(pp + 1) * panels / panel_parts;
            // The task's partial sums (one tile, `MR × NR`) in worker `worker`'s buffer.
            let partial = sums.ptr().wrapping_add(worker * partial_len);
            let mut first = tile_range.start;
            while first < tile_range.end {
                let last = (first + chunk_tiles).min(tile_range.end);
                for panel in panel_range.clone() {
                    for i in first..last {
                        let (col0, cols) = tile_cols(i);
                        let row = panel * MR;
                        let plane_at = (img * s.out_c + row) * n;
                        let tile = Tile {
                            a: packed[panel * MR * k..].as_ptr(),
                            b: copy.as_ptr().wrapping_add(col0),
                            plane: ph.plane,
                            cin: s.in_c,
                            block,
                            partial,
                            taps,
                            col0,
                            cols,
                            wq: ph.wq,
                            out_w: s.out_w,
                            out: out.ptr().wrapping_add(plane_at),
                            residual: epilogue
                                .residual
                                .map_or(std::ptr::null(), |r| r.as_ptr().wrapping_add(plane_at)),
                            n,
                            rows: MR.min(s.out_c - row),
                            bias: epilogue
                                .bias
                                .map_or(std::ptr::null(), |b| b[row..].as_ptr()),
                            activation: epilogue.activation,
                        };
                        // SAFETY: A holds `k · MR` floats from panel `panel`'s start
                        // (`packed_len` checked); B's reads, at most `(cin − 1)·plane + tap
                        // offset + col0 + 16·⌈cols / 16⌉` floats on, stay inside the copy and
                        // its zeroed slack of `NR` floats (a tap's run of the last column is a
                        // position of the copy); the partial sums, `MR · NR` floats, lie in
                        // worker `worker`'s buffer, which only this task uses now; the stores (and residual reads) are the outputs of
                        // channels `row..row + rows` of image `img` at the columns' output
                        // pixels, which only this task writes; the bias holds `out_c` entries.
                        // `isa` is supported.
                        unsafe { run_tile(&tile, isa) };
                    }
                }
                first = last;
            }
        });
    }
    Ok(())
}

/// Runs one micro-tile on `isa`.
///
/// # Safety
/// The pointers of `t` valid as documented on [`Tile`], the stores ours alone; `isa` supported.
unsafe fn run_tile(t: &Tile, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: forwarded; the tier has AVX-512F.
        Isa::Avx512 => return unsafe { avx512::tile(t) },
        // SAFETY: forwarded; the tier has AVX2 and FMA.
        Isa::Avx2 => return unsafe { avx2::tile(t) },
        Isa::Generic => {}
    }
    let _ = isa;
    // SAFETY: forwarded.
    unsafe { generic_tile(t) }
}

/// The plain-loop micro-tile: the same sums in the same order.
///
/// # Safety
/// As for [`run_tile`].
unsafe fn generic_tile(t: &Tile) {
    let mut runs = [Run::default(); MAX_RUNS];
    let count = store_runs(t, 0, t.cols, NR, &mut runs);
    for r in 0..t.rows {
        for run in &runs[..count] {
            for lane in run.lo..run.hi {
                let j = run.v * NR + lane;
                let (mut acc, mut part) = (0.0f32, 0.0f32);
                let mut a = t.a;
                for ic in 0..t.cin {
                    for &off in t.taps {
                        // SAFETY: weight `r < MR` of this k step, and the B element of column `j`
                        // (the contract).
                        unsafe {
                            part = (*a.add(r)).mul_add(*t.b.add(ic * t.plane + off + j), part);
                        }
                        a = a.wrapping_add(MR);
                    }
                    if (ic + 1) % t.block == 0 || ic + 1 == t.cin {
                        acc += part;
                        part = 0.0;
                    }
                }
                let at = (r * t.n) as isize + (t.col0 + j) as isize + run.delta;
                // SAFETY: output index `at` of channel `r` is an output pixel of this tile (the
                // run's mapping), as is the residual's; bias entry `r < rows`.
                unsafe {
                    if !t.bias.is_null() {
                        acc += *t.bias.add(r);
                    }
                    if !t.residual.is_null() {
                        acc += *t.residual.offset(at);
                    }
                    *t.out.offset(at) = t.activation.apply(acc);
                }
            }
        }
    }
}

/// Writes the zero-padded, phase-split copy of one image `x` into `copy` (module docs), a few
/// rows of every phase per task. `isa` must be supported by this CPU.
fn fill_phases(ctx: &Ctx, s: &ConvShape, ph: Phases, isa: Isa, x: &[f32], copy: &mut [f32]) {
    let Phases { hq, wq, .. } = ph;
    let [sy, sx] = s.stride;
    let (pt, pl) = (s.pads[0], s.pads[1]);
    let dst = SharedOut(copy.as_mut_ptr());
    // Rows `(j, ic, qy)`, each written for every `qx`: row-major, so a thread's run of tasks is
    // a band of the image, the band it wrote in the layer before and reads in the GEMM after
    // (on VMs whose cores are far apart, a copy split by channels moved half of every image
    // between the cores' caches).
    let rows = s.in_c * sy * hq;
    let per_task = (4096 / (sx * wq).max(1)).max(1);
    ctx.threads.run(rows.div_ceil(per_task), &|t| {
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            let (j, ic, qy) = (r / (s.in_c * sy), r / sy % s.in_c, r % sy);
            let src = (j * sy + qy)
                .checked_sub(pt)
                .filter(|&iy| iy < s.in_h)
                .map(|iy| &x[(ic * s.in_h + iy) * s.in_w..][..s.in_w]);
            for qx in 0..sx {
                let at = (((ic * sy + qy) * sx + qx) * hq + j) * wq;
                // SAFETY: task `t` alone writes row `j` of phase `(qy, qx)` of channel `ic`
                // (rows `(j, ic, qy)` are split between tasks), inside `copy`
                // (`in_c · plane` floats).
                let line = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(at), wq) };
                // Phase columns `i` whose input column `i·sx + qx − pl` lies in `0..in_w`.
                let lo = pl.saturating_sub(qx).div_ceil(sx).min(wq);
                let hi = (s.in_w + pl).saturating_sub(qx).div_ceil(sx).clamp(lo, wq);
                line[..lo].fill(0.0);
                line[hi..].fill(0.0);
                match src {
                    // No column of this phase reads the input (a stride past the row's width).
                    _ if lo == hi => {}
                    Some(row) if sx == 1 => line[lo..hi].copy_from_slice(&row[lo - pl..hi - pl]),
                    Some(row) => {
                        let from = lo * sx + qx - pl;
                        super::gather_strided(&row[from..], sx, &mut line[lo..hi], isa);
                    }
                    None => line[lo..hi].fill(0.0),
                }
            }
        }
    });
}
