//! The cache- and register-blocked SGEMM behind pointwise, im2col and dense layers:
//! `C[m, n] = act(Σ_k A[m, k] · B[k, n] + bias + residual)`, C row-major, epilogue fused in registers.
//!
//! Layouts, the same for every ISA tier:
//! - A (the weights of a conv, or the activations of a dense layer) is packed into panels of
//!   [`MR`] rows: `[panel][k][MR]`, the last panel zero-padded.
//! - B (activations of a conv, or weights of a dense layer) is packed into tiles of [`NR`] columns:
//!   `[tile][k][NR]`, zero-padded. Conv activations are packed at run time, [`KC`] rows of k at a
//!   time or more, from their NCHW planes (plain rows for a 1×1 conv, im2col otherwise) into
//!   per-thread scratch; dense weights are packed once at compile time. On AVX-512, plain rows are
//!   packed by the first A panel's micro-kernels as they compute (`avx512::tile_packing`), which
//!   hides the activations' memory latency behind the FMAs; the other tiers pack first.
//!
//! A micro-kernel computes one `MR × NR` tile of C over a block of k (AVX-512: 8 × 3 zmm = 24
//! accumulators; AVX2: 4 × 3 ymm sub-tiles; generic: plain loops), loading C back between k blocks
//! and applying the epilogue after the last one. Tasks are (problem, row chunk, column chunk)
//! rectangles of C, run by [`Threads::run_indexed`](crate::exec::threads::Threads::run_indexed); each thread packs B into its own scratch slot
//! (or, on the tiers without fused packing, when rows are split across tasks, every B is packed
//! once up front). Wide-row im2col convs with small weights (the stems) go through `rows`.
//!
//! [`bf16`] is the same tiling with k taken in pairs of bf16 values (`--precision bf16`'s 1×1
//! convs and dense layers), with the fp32 epilogue of these kernels.

use super::{Activation, ConvShape, KernelError, SharedOut, check_min_len};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub mod bf16;

/// Whether the bf16 GEMM's 1×1 convs run on AMX tiles in this process (AVX-512 tier, a CPU with
/// AMX-BF16 and AVX512_BF16, tile state granted by the OS, no `RESNEXT_BF16` forcing another
/// path).
pub fn amx_usable() -> bool {
    crate::exec::isa::isa() == Isa::Avx512 && bf16::amx_path()
}
mod generic;
pub(crate) mod rows;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// Rows of C per micro-tile (output channels of a conv).
pub const MR: usize = 8;
/// Columns of C per micro-tile (output pixels of a conv): three 16-lane vectors.
pub const NR: usize = 48;
/// Depth of one k block: the packed B tile of one block (`KC × NR` floats) stays in L1/L2.
pub const KC: usize = 256;
/// Most k steps one micro-kernel call sums in fresh registers before adding them to C.
///
/// A chain of `n` fp32 FMAs has a rounding error growing like `n`; k blocks as deep as the B block
/// allows (up to 2048 on 7×7 maps) made full-size ResNet-50, Wide ResNet-50 and Inception-v3
/// 1.4–1.5× as far from PyTorch's float64 logits (RMS) as onnxruntime. Runs of 256 brought them
/// to onnxruntime's level, for ~0.5% of the time (ResNet-50 and ResNeXt-50, 1 thread); runs of
/// 128 cost 2–8% more for a few percent less error.
pub const ACC_CHUNK: usize = 256;
/// Convs with at most this many input channels per group are image stems: an error there is
/// amplified by the whole network (on ResNet-50 the stem's 147-term chains alone made up half of
/// the distance from float64 logits), so they sum in runs of [`STEM_ACC_CHUNK`] (the row-tiled
/// im2col path) or of one input channel (the implicit-GEMM path). The stem is ~3% of the time.
pub const STEM_MAX_CHANNELS: usize = 4;
/// Run length of the stems' sums, see [`STEM_MAX_CHANNELS`].
pub const STEM_ACC_CHUNK: usize = 16;

/// Whether `s` is an image stem whose sums run short (see [`STEM_MAX_CHANNELS`]).
pub(crate) fn is_stem(s: &crate::kernels::ConvShape) -> bool {
    s.in_c / s.group <= STEM_MAX_CHANNELS
}
/// Tiles of B per column chunk of a task: `KC × NR × NC_TILES` floats of scratch per thread.
pub const NC_TILES: usize = 8;

/// Tiles per column chunk when k is deeper than one k chunk of the AVX2 kernel (64): smaller B
/// blocks, whose k blocks are then deeper (`B_SCRATCH / (tiles · NR)`, so k ≤ 512 is one block
/// and C is written once). Measured in-process at 1 thread, alternating call by call on cold
/// copies (medians of ~1000 calls) against `NC_TILES`: 512→256 and 512→128 at 28×28 0.94–0.95×
/// the time, 256→512 at 28×28 0.98×, 256→128 at 56×56 0.93–0.94×, 512→1024 at 14×14 0.92×,
/// 1024→512 at 14×14 and 128→256 at 56×56 0.99×, 144→24 at 56×56 0.95×; with k ≤ 64 (24→144 at
/// 56×56) it measured 1.02× and those keep `NC_TILES`; 2 and 3 tiles measured no better than 4,
/// 6 worse; at 2 threads the split already makes chunks this small.
const NC_TILES_DEEP: usize = 4;

/// Tasks with at most this many column tiles loop over A panels outside and B tiles inside.
const PANEL_OUTER_MAX_TILES: usize = NC_TILES;

/// Scratch floats each thread needs to pack B.
pub const B_SCRATCH: usize = KC * NR * NC_TILES;

/// Floats of slack in every scratch length, so that the packed B tiles can start on a 64-byte
/// boundary wherever the caller's buffer starts: a vector load of B then never straddles two
/// cache lines (a `Vec<f32>` from the allocator is usually only 16-byte aligned, and a straddling
/// load costs a second load; measured on the AVX2 kernel's loop: ~10%).
pub(crate) const ALIGN_SLACK: usize = 16;

/// `scratch` from its first 64-byte-aligned float on (at most [`ALIGN_SLACK`] floats in).
pub(crate) fn aligned(scratch: &mut [f32]) -> &mut [f32] {
    let skip = scratch
        .as_ptr()
        .align_offset(64)
        .min(ALIGN_SLACK)
        .min(scratch.len());
    &mut scratch[skip..]
}

/// Length of A packed in `MR`-row panels.
pub fn packed_a_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k
}

/// Length of B packed in `NR`-column tiles.
pub fn packed_b_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Packs a row-major `m × k` matrix (row `r` at `src[r * ld..][..k]`) into `MR`-row panels,
/// appending to `dst`.
pub fn pack_a(src: &[f32], m: usize, k: usize, ld: usize, dst: &mut Vec<f32>) {
    for panel in 0..m.div_ceil(MR) {
        for kk in 0..k {
            for r in 0..MR {
                let row = panel * MR + r;
                dst.push(if row < m { src[row * ld + kk] } else { 0.0 });
            }
        }
    }
}

/// Packs B given as `b[k][n] = src[n * ld + k]` (the transpose of a row-major `n × k` matrix,
/// e.g. dense weights `[out, in]`) into `NR`-column tiles.
pub fn pack_b_transposed(src: &[f32], k: usize, n: usize, ld: usize) -> Vec<f32> {
    let mut dst = Vec::with_capacity(packed_b_len(k, n));
    for tile in 0..n.div_ceil(NR) {
        for kk in 0..k {
            for c in 0..NR {
                let col = tile * NR + c;
                dst.push(if col < n { src[col * ld + kk] } else { 0.0 });
            }
        }
    }
    dst
}

/// Where the B operand of one problem comes from.
#[derive(Clone, Copy)]
pub(crate) enum BSource<'a> {
    /// `B[k][n] = data[k * ld + n]`: the input planes of a stride-1 1×1 conv.
    Rows { data: &'a [f32], ld: usize },
    /// The im2col matrix of one group of one image: `data` holds the group's input planes,
    /// `k = (ic · kh + ky) · kw + kx`, `n = oy · out_w + ox`.
    Im2col { data: &'a [f32], shape: ConvShape },
    /// Already packed with [`pack_b_transposed`] for the whole k.
    Packed { data: &'a [f32] },
}

/// Which way the bias runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BiasAlong {
    /// One bias per row of C (a conv's output channel).
    Rows,
    /// One bias per column of C (a dense layer's output feature).
    Cols,
}

/// One GEMM of a batch of same-sized GEMMs: its A panels, its B, and where its C starts.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub a: &'a [f32],
    pub b: BSource<'a>,
    /// Offset of `C[0, 0]` in the output (and in the residual, which has the output's layout).
    pub c: usize,
    /// The bias entries of this problem's rows (or columns).
    pub bias: Option<&'a [f32]>,
}

/// Sizes and epilogue shared by every problem of one call.
pub(crate) struct Gemm<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Row stride of C (and of the residual).
    pub ldc: usize,
    pub bias_along: BiasAlong,
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl Gemm<'_> {
    /// Columns of B tile `j` (`NR`, or fewer for the last).
    fn tile_cols(&self, j: usize) -> usize {
        NR.min(self.n - j * NR)
    }
}

/// What a micro-kernel does with its accumulators after the last k block.
#[derive(Clone, Copy)]
pub(crate) struct Finish {
    /// `rows` (or `cols`) entries, or null.
    pub bias: *const f32,
    pub bias_along: BiasAlong,
    /// Laid out like C (same offset and `ldc`), or null.
    pub residual: *const f32,
    pub activation: Activation,
}

impl Finish {
    /// The epilogue of the tile whose C starts at row `row`, column `col` of problem `p`: the
    /// bias entries and the residual from there.
    pub(crate) fn at(g: &Gemm, p: &Problem, row: usize, col: usize) -> Finish {
        let off = match g.bias_along {
            BiasAlong::Rows => row,
            BiasAlong::Cols => col,
        };
        Finish {
            bias: p
                .bias
                .map_or(std::ptr::null(), |b| b.as_ptr().wrapping_add(off)),
            bias_along: g.bias_along,
            residual: g.residual.map_or(std::ptr::null(), |r| {
                r.as_ptr().wrapping_add(p.c + row * g.ldc + col)
            }),
            activation: g.activation,
        }
    }
}

/// One micro-kernel call: `C[0..rows, 0..cols] (+)= A·B` over `kc`, then `finish` if given.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub kc: usize,
    /// `kc × MR` packed A.
    pub a: *const f32,
    /// `kc` packed rows of B, `ldb` floats apart.
    pub b: *const f32,
    /// `NR`, or `cols` for a compact narrow tile (see [`b_row_len`]).
    pub ldb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    /// `1..=MR`.
    pub rows: usize,
    /// `1..=NR`.
    pub cols: usize,
    /// Add C's current values (every k block but the first).
    pub load_c: bool,
    /// A is reused by few tiles of B (a problem of at most [`STREAM_A_MAX_TILES`] tiles), so its
    /// panels stream from memory at the FMAs' pace: the AVX2 kernel then prefetches them further
    /// ahead.
    pub stream_a: bool,
    pub finish: Option<Finish>,
}

impl Tile {
    /// This tile's k steps cut into runs of at most `len`, each a tile of its own: the first adds
    /// to C only if this one does, the others always do, and only the last finishes. Each run
    /// sums its products in fresh accumulators, so rounding error grows with `len` rather than
    /// with the whole k (see [`ACC_CHUNK`]).
    pub(crate) fn chunks(self, len: usize) -> impl Iterator<Item = (usize, Tile)> {
        let len = len.max(1);
        (0..self.kc).step_by(len).map(move |k0| {
            let kc = len.min(self.kc - k0);
            let last = k0 + kc == self.kc;
            let sub = Tile {
                kc,
                a: self.a.wrapping_add(k0 * MR),
                b: self.b.wrapping_add(k0 * self.ldb),
                load_c: self.load_c || k0 > 0,
                finish: if last { self.finish } else { None },
                ..self
            };
            (k0, sub)
        })
    }
}

/// Tiles of at most this many columns (the ragged ends of 7×7 and 14×14 maps) run on a kernel
/// that vectorises over A's rows instead of B's columns (`avx2::narrow`).
pub(crate) const NARROW_COLS: usize = 4;

/// Floats per packed row of a B tile `width` columns wide: `NR`, except that a narrow tile
/// packed at run time for a SIMD tier is packed compactly, `width` floats a row, so that its
/// kernel reads B as one dense run instead of one float from each `NR`-float row (a new cache line
/// every k step). At 7×7 (a 48-column tile and a 1-column one) at 2 threads the narrow tile took
/// 10% of a 1×1 conv's time with `NR`-float rows; compact, ResNeXt-50's 7×7 1×1 convs measured
/// 0.91–0.94× the time at 1 and 2 threads, its 14×14 ones 0.98–0.99× (in-process, alternated
/// call by call on cold copies, medians). Dense weights packed at compile time keep `NR`.
pub(crate) fn b_row_len(width: usize, isa: Isa) -> usize {
    if width <= NARROW_COLS && isa != Isa::Generic {
        width
    } else {
        NR
    }
}

/// Problems with at most this many column tiles (the 14×14 and 7×7 maps at batch 1) read each A
/// panel for so few columns that A streams from memory as fast as the FMAs consume it.
pub(crate) const STREAM_A_MAX_TILES: usize = 5;

/// How the output of one call is cut into tasks: `m_chunks × n_chunks` rectangles per problem, of
/// as near equal sizes as whole panels and tiles allow.
struct Split {
    m_panels: usize,
    n_tiles: usize,
    m_chunks: usize,
    n_chunks: usize,
    /// Threads the tasks are shared between (see [`Split::tiles`]).
    threads: usize,
    /// Tasks ordered row chunk by row chunk, so that each thread's run of tasks (see `Threads`)
    /// covers whole rows of C: when A (the weights) is larger than B, each thread then reads its
    /// share of A alone. Otherwise column chunk by column chunk: each thread computes its run of
    /// columns (pixels), those it computed in the layers before and after.
    rows_outer: bool,
}

impl Split {
    /// Column chunks of at most `NC_TILES` tiles (`NC_TILES_DEEP` for deep k), then more chunks until there are about four
    /// tasks per thread: column chunks first while each would still average a whole tile, then
    /// row chunks, then columns again; then a few more, if need be, so that the task count is a
    /// multiple of the threads, so that each thread's run of tasks (see `Threads`) is as large.
    ///
    /// Columns before rows because a row split makes every task need the same B, which is then
    /// packed once up front in a pass of its own (see `run`), and its tasks each stream a B chunk
    /// packed for the whole k; a column split lets each task pack its own B block as it goes.
    /// Measured in-process, alternating call by call on cold copies of the data, 2 threads,
    /// medians of ~1000 calls each: 512→256 at 28×28 0.91–0.93× the time of the rows-first
    /// split, 256→512 at 28×28 0.96×, 14×14 layers 0.96–0.97×, 7×7 unchanged (they have two
    /// tiles, one of a single column, and are not split by columns).
    fn new(m: usize, n: usize, k: usize, problems: usize, threads: usize) -> Split {
        let m_panels = m.div_ceil(MR);
        let n_tiles = n.div_ceil(NR);
        let chunk_tiles = if k > 64 { NC_TILES_DEEP } else { NC_TILES };
        let target = if threads > 1 { 4 * threads } else { 1 };
        let mut n_chunks = n_tiles.div_ceil(chunk_tiles);
        let mut m_chunks = 1;
        while problems * m_chunks * n_chunks < target {
            if n / (2 * n_chunks) >= NR {
                n_chunks = (2 * n_chunks).min(n_tiles);
            } else if m_panels >= 4 * m_chunks {
                m_chunks *= 2;
            } else if n_tiles > n_chunks {
                n_chunks = (2 * n_chunks).min(n_tiles);
            } else if m_panels > m_chunks {
                m_chunks += 1;
            } else {
                break;
            }
        }
        if threads > 1 {
            for _ in 0..threads {
                if (problems * m_chunks * n_chunks).is_multiple_of(threads) {
                    break;
                }
                if n_tiles > n_chunks {
                    n_chunks += 1;
                } else if m_panels > m_chunks {
                    m_chunks += 1;
                }
            }
        }
        Split {
            m_panels,
            n_tiles,
            m_chunks: m_chunks.min(m_panels).max(1),
            n_chunks: n_chunks.min(n_tiles).max(1),
            threads,
            rows_outer: m > n,
        }
    }

    /// The A panels of row chunk `mc`: balanced, so sizes differ by at most one.
    fn panels(&self, mc: usize) -> std::ops::Range<usize> {
        mc * self.m_panels / self.m_chunks..(mc + 1) * self.m_panels / self.m_chunks
    }

    /// The B tiles of column chunk `nc`: the tiles are first shared out evenly between the
    /// threads in order (thread `w` starts on the `w`-th run of chunks: see `Threads`), then each
    /// thread's share into its chunks, so every thread's first chunks cover one contiguous run of
    /// columns (pixels) of about equal size, as in every other layer. With a chunk count the
    /// threads do not divide, plain balanced chunks.
    fn tiles(&self, nc: usize) -> std::ops::Range<usize> {
        let (n, c, t) = (self.n_tiles, self.n_chunks, self.threads);
        if t > 1 && !self.rows_outer && c.is_multiple_of(t) && n / t >= c / t {
            let per = c / t;
            let (w, j) = (nc / per, nc % per);
            let (a, b) = (w * n / t, (w + 1) * n / t);
            a + j * (b - a) / per..a + (j + 1) * (b - a) / per
        } else {
            nc * n / c..(nc + 1) * n / c
        }
    }
}

/// Scratch floats `run` needs for `problems` GEMMs of `m × n × k` on `threads` threads when B
/// is packed at run time: one B block per thread; and when the rows are split across tasks (which
/// would make each task pack the same B), room for every problem's whole B, packed once up front
/// (the tiers without fused packing do that; see `run`).
pub fn scratch_len(m: usize, n: usize, k: usize, problems: usize, threads: usize) -> usize {
    let blocks = threads.max(1) * B_SCRATCH;
    ALIGN_SLACK
        + if Split::new(m, n, k, problems, threads).m_chunks > 1 {
            blocks.max(problems * packed_b_len(k, n))
        } else {
            blocks
        }
}

/// Runs every problem into `output`. The caller has checked that each problem's A holds
/// `packed_a_len(m, k)` floats, that B covers `k × n` (or `packed_b_len(k, n)` floats when packed),
/// that every `C` rectangle (`c + r·ldc + col` for `r < m`, `col < n`) lies inside `output` and
/// the residual, that distinct problems' rectangles do not overlap, and that biases are long
/// enough. `scratch` must hold [`scratch_len`] floats unless every B is packed.
pub(crate) fn run(
    ctx: &Ctx,
    g: &Gemm,
    problems: &[Problem],
    output: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), KernelError> {
    let Ctx { isa, threads } = *ctx;
    if g.m == 0 || g.n == 0 || problems.is_empty() {
        return Ok(());
    }
    let isa = if isa.supported() { isa } else { Isa::Generic };
    let split = Split::new(g.m, g.n, g.k, problems.len(), threads.count());
    let runtime_b = problems
        .iter()
        .any(|p| !matches!(p.b, BSource::Packed { .. }));
    let need = scratch_len(g.m, g.n, g.k, problems.len(), threads.count());
    if runtime_b {
        check_min_len("gemm scratch", need, scratch.len())?;
    }
    // Rows split across tasks: pack every B once, up front, unless each task's first panel
    // packs its own copy while it computes (AVX-512, plain rows), which costs less than a
    // separate pass and a barrier.
    let fusable =
        packs_while_computing(isa) && problems.iter().all(|p| matches!(p.b, BSource::Rows { .. }));
    let prepack = runtime_b && split.m_chunks > 1 && !fusable;
    let b_len = packed_b_len(g.k, g.n);
    // Every packed tile is a multiple of 64 bytes (`NR` floats a row), so all start aligned.
    let scratch = if runtime_b { aligned(scratch) } else { scratch };
    let (prepacked, scratch) =
        scratch.split_at_mut(if prepack { problems.len() * b_len } else { 0 });
    if prepack {
        let dst = SharedOut(prepacked.as_mut_ptr());
        let tile_len = g.k * NR;
        let tiles = problems.len() * split.n_tiles;
        // Each tile in k pieces, enough for the threads to share the packing evenly (whole tiles
        // split 3:2 over two threads at 14×14, and a 1-column tile next to a 48-column one is
        // almost no work).
        let parts = (PACK_TASKS_PER_THREAD * threads.count())
            .div_ceil(tiles)
            .clamp(1, g.k.div_ceil(PACK_MIN_K));
        threads.run(tiles * parts, &|t| {
            let (p, j, part) = (
                t / parts / split.n_tiles,
                t / parts % split.n_tiles,
                t % parts,
            );
            let (k0, k1) = (part * g.k / parts, (part + 1) * g.k / parts);
            let row_len = b_row_len(g.tile_cols(j), isa);
            // SAFETY: tile `j` of problem `p` occupies its own `tile_len` floats of `prepacked`
            // (`problems.len() · n_tiles · tile_len` floats), and of it rows `k0..k1`, `row_len`
            // floats each (`row_len <= NR`), are written by this task alone.
            let rows = unsafe {
                std::slice::from_raw_parts_mut(
                    dst.ptr()
                        .add((p * split.n_tiles + j) * tile_len + k0 * row_len),
                    (k1 - k0) * row_len,
                )
            };
            let blk = BBlock {
                n: g.n,
                k0,
                kc: k1 - k0,
                tiles: j..j + 1,
                isa,
            };
            pack_b_block(&problems[p].b, &blk, rows);
        });
    }
    let prepacked: &[f32] = prepacked;
    let needs_scratch = runtime_b && !prepack;
    let out = SharedOut(output.as_mut_ptr());
    let scr = SharedOut(scratch.as_mut_ptr());
    let per_problem = split.m_chunks * split.n_chunks;
    let held: [Held; MAX_HELD] = std::array::from_fn(|_| Held(AtomicU64::new(Held::NONE)));
    let task = |t: usize, worker: usize| {
        let pi = t / per_problem;
        let mut p = problems[pi];
        // B packed here (not by the caller) has compact narrow tiles.
        let runtime_packed = !matches!(p.b, BSource::Packed { .. });
        if prepack {
            p.b = BSource::Packed {
                data: &prepacked[pi * b_len..(pi + 1) * b_len],
            };
        }
        let r = t % per_problem;
        let (mc, nc) = if split.rows_outer {
            (r / split.n_chunks, r % split.n_chunks)
        } else {
            (r % split.m_chunks, r / split.m_chunks)
        };
        let (panels, tiles) = (split.panels(mc), split.tiles(nc));
        // SAFETY: worker `worker` alone uses slot `worker` of the scratch, which holds
        // `threads.count()` slots when B is packed per task (checked above).
        let bbuf = needs_scratch.then(|| unsafe {
            std::slice::from_raw_parts_mut(scr.ptr().add(worker * B_SCRATCH), B_SCRATCH)
        });
        let reuse = held
            .get(worker)
            .zip(Held::key(pi, &tiles))
            .map(|(h, key)| (&h.0, key));
        // SAFETY: the rectangle (rows of `panels`, columns of `tiles`) of problem `p` is written
        // by this task alone and lies inside `output` (the caller's contract).
        unsafe {
            task_body(
                g,
                &p,
                runtime_packed,
                (panels, tiles),
                (bbuf, reuse),
                out.ptr(),
                isa,
            )
        };
    };
    threads.run_indexed(problems.len() * per_problem, &task);
    Ok(())
}

/// Threads whose scratch slot's contents `run` keeps track of (see [`Held`]); the others pack B
/// for every task.
const MAX_HELD: usize = 16;

/// Which B block one thread's scratch slot holds, so that a task whose block is already there
/// (the same problem and column tiles, the whole k packed in one block) computes from it instead
/// of packing it again. A row split gives several tasks the same columns: at 2 threads the 7×7
/// maps' 8 row chunks and the 14×14 maps' 2, each thread's run of tasks covering the same
/// columns. One per call and thread, alone on its cache line (each is written by its own
/// thread only).
#[repr(align(64))]
struct Held(AtomicU64);

impl Held {
    /// Nothing reusable.
    const NONE: u64 = u64::MAX;

    /// The record of problem `problem`'s tiles `tiles`, if its parts fit their fields.
    fn key(problem: usize, tiles: &std::ops::Range<usize>) -> Option<u64> {
        let fits = problem < 1 << 16 && tiles.end < 1 << 24;
        fits.then_some(((problem as u64) << 48) | ((tiles.start as u64) << 24) | tiles.end as u64)
    }
}

/// Computes rows `panels` × columns `tiles` of one problem's C, k block by k block.
/// `runtime_packed`: `p.b` is packed at run time (here, or by `run` up front), so its narrow tiles
/// are compact ([`b_row_len`]). `bbuf` is this thread's scratch slot and `held` (with this task's
/// key, [`Held::key`]) records what it holds: a B packed whole (one k block) for the same key is
/// used as it is.
///
/// # Safety
/// `out` must be valid for writes of that rectangle (see [`run`]) with nobody else touching it,
/// and `isa` supported by this CPU; `held` must describe `bbuf`'s contents (written only by this
/// thread's tasks of this call).
unsafe fn task_body(
    g: &Gemm,
    p: &Problem,
    runtime_packed: bool,
    (panels, tiles): (std::ops::Range<usize>, std::ops::Range<usize>),
    (mut bbuf, held): (Option<&mut [f32]>, Option<(&AtomicU64, u64)>),
    out: *mut f32,
    isa: Isa,
) {
    let k = g.k;
    // Keep one A panel in L1 and sweep the tiles of B (in L2). The k blocks are as deep as the
    // B block allows (at least `KC`): with few columns (7×7 maps) the whole of A then streams
    // from memory in one sequential pass, which the prefetchers follow.
    let panel_outer = tiles.len() <= PANEL_OUTER_MAX_TILES;
    // B read straight from the activations by the first panel's micro-kernels, which pack it as
    // they go (AVX-512 only; the other tiers pack first).
    let kc_step = match p.b {
        BSource::Packed { .. } => k,
        _ => (B_SCRATCH / (tiles.len().max(1) * NR)).max(KC),
    };
    // This thread's previous task left this very B in the scratch slot.
    let packed_already = matches!(held, Some((h, key)) if h.load(Relaxed) == key);
    if let (Some((h, key)), Some(_)) = (held, &bbuf) {
        // What the slot will hold once this task is done.
        let whole = kc_step >= k;
        h.store(if whole { key } else { Held::NONE }, Relaxed);
    }
    let fused = match (p.b, &bbuf) {
        (BSource::Rows { data, ld }, Some(_)) if packs_while_computing(isa) && !packed_already => {
            Some((data, ld))
        }
        _ => None,
    };
    for k0 in (0..k).step_by(kc_step) {
        let kc = kc_step.min(k - k0);
        // B's packed tiles: tile `j` at `base + (j - first) · stride`, with `first` the tile at
        // `base`, and this k block's rows from `b_row0(j)` on. (Only the tiles in scratch are
        // ever written through it.)
        let (b_base, b_first, b_stride) = match (&p.b, bbuf.as_deref_mut()) {
            (BSource::Packed { data }, _) => (data.as_ptr().cast_mut(), 0, k * NR),
            // Packed whole by an earlier task of this thread, for the same tiles (`Held`).
            (_, Some(buf)) if packed_already => (buf.as_mut_ptr(), tiles.start, kc * NR),
            (&BSource::Rows { .. }, Some(buf)) if fused.is_some() => {
                // The first panel's tiles pack their own B (`tile_packing`), except the narrow
                // ones (their kernel vectorises over rows), packed here.
                for j in tiles.clone().filter(|&j| g.tile_cols(j) <= NARROW_COLS) {
                    let at = (j - tiles.start) * kc * NR;
                    let blk = BBlock {
                        n: g.n,
                        k0,
                        kc,
                        tiles: j..j + 1,
                        isa,
                    };
                    pack_b_block(&p.b, &blk, &mut buf[at..at + kc * NR]);
                }
                (buf.as_mut_ptr(), tiles.start, kc * NR)
            }
            (src, Some(buf)) => {
                let blk = BBlock {
                    n: g.n,
                    k0,
                    kc,
                    tiles: tiles.clone(),
                    isa,
                };
                pack_b_block(src, &blk, buf);
                (buf.as_mut_ptr(), tiles.start, kc * NR)
            }
            // `run` supplies scratch whenever a B is not packed.
            (_, None) => return,
        };
        let ldb = |j: usize| {
            if runtime_packed {
                b_row_len(g.tile_cols(j), isa)
            } else {
                NR
            }
        };
        // A tile packed for the whole k holds this block from row `k0` on; one packed here for
        // this block starts with it.
        let b_row0 = |j: usize| match p.b {
            BSource::Packed { .. } => k0 * ldb(j),
            _ => 0,
        };
        let b_tile = |j: usize| b_base.wrapping_add((j - b_first) * b_stride + b_row0(j));
        let last = k0 + kc == k;
        let tile = |i: usize, j: usize| {
            let (row, col) = (i * MR, j * NR);
            let f = last.then(|| Finish::at(g, p, row, col));
            let t = Tile {
                kc,
                a: p.a[(i * k + k0) * MR..].as_ptr(),
                b: b_tile(j),
                ldb: ldb(j),
                c: out.wrapping_add(p.c + row * g.ldc + col),
                ldc: g.ldc,
                rows: MR.min(g.m - row),
                cols: g.tile_cols(j),
                load_c: k0 > 0,
                stream_a: g.n <= STREAM_A_MAX_TILES * NR,
                finish: f,
            };
            #[cfg(target_arch = "x86_64")]
            if let Some((data, ld)) = fused
                && i == panels.start
                && t.cols > NARROW_COLS
            {
                let first_row = data.as_ptr().wrapping_add(k0 * ld + col);
                for (off, sub) in t.chunks(ACC_CHUNK) {
                    let src = first_row.wrapping_add(off * ld);
                    let from = x86_64::avx512::PackFrom {
                        src,
                        ld,
                        dst: b_tile(j).wrapping_add(off * t.ldb),
                        // The next tile's rows of this block follow the tile's last chunk.
                        next: if off + sub.kc == kc {
                            first_row.wrapping_add(NR)
                        } else {
                            src.wrapping_add(sub.kc * ld)
                        },
                    };
                    // SAFETY: as below for A, C and the residual; B's rows `k0..k0 + kc`,
                    // columns `col..col + cols`, lie in `data` (the caller's contract), and the
                    // tile's `kc × NR` packed slot in this task's scratch is written by this
                    // call alone, before any other panel reads it. `fused` implies AVX-512.
                    unsafe { x86_64::avx512::tile_packing(&sub, from) };
                }
                return;
            }
            for (_, sub) in t.chunks(ACC_CHUNK) {
                // SAFETY: A and B hold `kc` packed rows from these offsets (packed lengths checked
                // by the caller, B packed above or by this tile's first panel); C and the residual
                // rectangles are inside their buffers and C is ours alone (this function's
                // contract).
                unsafe { micro(&sub, isa) };
            }
        };
        if panel_outer {
            for i in panels.clone() {
                for j in tiles.clone() {
                    tile(i, j);
                }
            }
        } else {
            for j in tiles.clone() {
                for i in panels.clone() {
                    tile(i, j);
                }
            }
        }
    }
}

/// Whether `isa`'s micro-kernels pack plain-row B tiles while computing them (AVX-512's
/// `tile_packing`); the other tiers pack B first.
fn packs_while_computing(isa: Isa) -> bool {
    cfg!(target_arch = "x86_64") && isa == Isa::Avx512
}

/// Packing tasks per thread when B is packed up front (see `run`).
const PACK_TASKS_PER_THREAD: usize = 4;

/// The fewest k rows per such task.
const PACK_MIN_K: usize = 64;

/// How many k rows ahead the SIMD tiers' B packing prefetches the rows it will read (each k row
/// is a run of the chunk's columns in another input plane, which the hardware prefetchers do
/// not foresee). Measured in-process, alternating call by call with packing without it, on cold
/// copies of the data (medians of ~1000 calls): 1 thread 512→256 at 28×28 0.94×, 56×56 layers
/// 0.93–0.97×, 14×14 and 7×7 unchanged; 2 threads 0.92×, 0.93–0.97×, 14×14 0.96×, 7×7
/// unchanged. Two and eight rows ahead measured the same as four.
const PACK_AHEAD: usize = 4;

/// Runs one micro-tile on the chosen tier.
///
/// # Safety
/// The pointers of `t` must be valid as documented on [`Tile`] and `isa` supported by this CPU.
#[inline]
unsafe fn micro(t: &Tile, isa: Isa) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller.
        Isa::Avx512 => unsafe { x86_64::avx512::tile(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller.
        Isa::Avx2 => unsafe { x86_64::avx2::tile(t) },
        // SAFETY: forwarded from the caller.
        _ => unsafe { generic::tile(t) },
    }
}

/// A block of B to pack: rows `k0..k0 + kc`, the columns of tiles `tiles`, of a B `n` columns
/// wide, for tier `isa` (which sets a narrow tile's row length, [`b_row_len`]).
struct BBlock {
    n: usize,
    k0: usize,
    kc: usize,
    tiles: std::ops::Range<usize>,
    isa: Isa,
}

/// Packs block `blk` of B into `dst` as `[tile][kc][NR]`, zero-padded past column `n` (a narrow
/// tile's rows [`b_row_len`] floats long, at the start of its slot).
fn pack_b_block(src: &BSource, blk: &BBlock, dst: &mut [f32]) {
    match *src {
        BSource::Rows { data, ld } => {
            #[cfg(target_arch = "x86_64")]
            if blk.isa != Isa::Generic {
                // SAFETY: `run` only passes tiers the CPU supports, and both SIMD tiers have AVX2.
                unsafe { pack_rows_avx2(data, ld, blk, dst) };
                return;
            }
            pack_rows::<false>(data, ld, blk, dst);
        }
        BSource::Im2col { data, ref shape } => pack_im2col(data, shape, blk, dst),
        BSource::Packed { .. } => {}
    }
}

/// [`pack_rows`] compiled for AVX2, where a row's 48-float copy is six vector moves (without AVX
/// it was a call to `memcpy`, 6% of a 1×1 conv's time).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pack_rows_avx2(data: &[f32], ld: usize, blk: &BBlock, dst: &mut [f32]) {
    pack_rows::<true>(data, ld, blk, dst);
}

/// [`pack_b_block`] for plain rows (`B[k][n] = data[k·ld + n]`): row by row, so each k row is read
/// as one sequential run across the chunk's tiles (tile by tile, every 48-float read jumped a
/// whole plane, onto a new page); with `PREFETCH` (x86-64), the run [`PACK_AHEAD`] rows on is
/// requested first.
#[inline(always)]
fn pack_rows<const PREFETCH: bool>(data: &[f32], ld: usize, blk: &BBlock, dst: &mut [f32]) {
    let BBlock { n, k0, kc, isa, .. } = *blk;
    let tiles = blk.tiles.clone();
    for kk in 0..kc {
        let src = (k0 + kk) * ld;
        #[cfg(target_arch = "x86_64")]
        if PREFETCH {
            let (lo, hi) = (tiles.start * NR, (tiles.end * NR).min(n));
            let ahead = data.as_ptr().wrapping_add(src + PACK_AHEAD * ld);
            for c in (lo..hi).step_by(16) {
                // SAFETY: a prefetch never faults (SSE is part of x86-64).
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        ahead.wrapping_add(c) as *const i8,
                    )
                };
            }
        }
        for (t, j) in tiles.clone().enumerate() {
            let col0 = j * NR;
            let width = NR.min(n - col0);
            let row_len = b_row_len(width, isa);
            let row = &mut dst[t * kc * NR + kk * row_len..][..row_len];
            let s = src + col0;
            if let (Ok(d), Ok(s)) = (
                <&mut [f32; NR]>::try_from(&mut *row),
                <&[f32; NR]>::try_from(data.get(s..s + NR).unwrap_or(&[])),
            ) {
                // A fixed-size copy: inline vector moves where the target has them.
                *d = *s;
            } else {
                row[..width].copy_from_slice(&data[s..s + width]);
                row[width..].fill(0.0);
            }
        }
    }
}

/// The im2col tap after `(ic, ky, kx)`: `kx` fastest, then `ky`, then the input channel.
#[inline(always)]
fn next_tap((ic, ky, kx): (usize, usize, usize), kh: usize, kw: usize) -> (usize, usize, usize) {
    if kx + 1 < kw {
        (ic, ky, kx + 1)
    } else if ky + 1 < kh {
        (ic, ky + 1, 0)
    } else {
        (ic + 1, 0, 0)
    }
}

/// [`pack_b_block`] for an im2col B: k rows outside (their `(ic, ky, kx)` and valid column
/// range are worked out once each), then each tile's runs of output columns within one output
/// row, which are zeros (padding) or strided copies of one input line.
fn pack_im2col(data: &[f32], s: &ConvShape, blk: &BBlock, dst: &mut [f32]) {
    let BBlock { n, k0, kc, isa, .. } = *blk;
    let tiles = blk.tiles.clone();
    let [kh, kw] = s.kernel;
    let (sy, sx) = (s.stride[0], s.stride[1]);
    let plane_len = s.in_h * s.in_w;
    let (mut ic, mut ky, mut kx) = (k0 / (kh * kw), (k0 / kw) % kh, k0 % kw);
    for kk in 0..kc {
        let plane = &data[ic * plane_len..(ic + 1) * plane_len];
        let y_off = (ky * s.dilation[0]) as isize - s.pads[0] as isize;
        let x_off = (kx * s.dilation[1]) as isize - s.pads[1] as isize;
        // Output columns whose input column `ox·sx + x_off` lies in `0..in_w`.
        let lo = if x_off < 0 {
            (-x_off as usize).div_ceil(sx)
        } else {
            0
        };
        let hi = if x_off >= s.in_w as isize {
            0
        } else {
            (s.in_w as isize - x_off) as usize
        }
        .div_ceil(sx);
        for (t, j) in tiles.clone().enumerate() {
            let col0 = j * NR;
            let width = NR.min(n - col0);
            let row_len = b_row_len(width, isa);
            let row = &mut dst[t * kc * NR + kk * row_len..][..row_len];
            let (mut oy, mut ox) = (col0 / s.out_w, col0 % s.out_w);
            let mut filled = 0;
            while filled < width {
                let run = (s.out_w - ox).min(width - filled);
                let seg = &mut row[filled..filled + run];
                let iy = (oy * sy) as isize + y_off;
                if iy < 0 || iy >= s.in_h as isize {
                    seg.fill(0.0);
                } else {
                    let line = &plane[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    let a = lo.saturating_sub(ox).min(run);
                    let b = hi.saturating_sub(ox).min(run).max(a);
                    if a > 0 {
                        seg[..a].fill(0.0);
                    }
                    if b < run {
                        seg[b..].fill(0.0);
                    }
                    if b > a {
                        let first = ((ox + a) * sx).wrapping_add_signed(x_off);
                        let out = &mut seg[a..b];
                        match sx {
                            1 => out.copy_from_slice(&line[first..first + (b - a)]),
                            #[cfg(target_arch = "x86_64")]
                            2 if isa == Isa::Avx512 => {
                                // SAFETY: `run` only passes tiers the CPU supports.
                                unsafe { x86_64::avx512::gather_stride2(&line[first..], out) }
                            }
                            2 => {
                                let src = &line[first..first + 2 * out.len() - 1];
                                for (i, v) in out.iter_mut().enumerate() {
                                    *v = src[2 * i];
                                }
                            }
                            _ => {
                                for (v, &x) in out.iter_mut().zip(line[first..].iter().step_by(sx))
                                {
                                    *v = x;
                                }
                            }
                        }
                    }
                }
                filled += run;
                ox = 0;
                oy += 1;
            }
            row[width..].fill(0.0);
        }
        (ic, ky, kx) = next_tap((ic, ky, kx), kh, kw);
    }
}
