//! The bf16 GEMM behind `--precision bf16` (1×1 convs and dense layers): both operands rounded to
//! bfloat16, products accumulated in fp32, the same fused fp32 epilogue as [`super::run`].
//!
//! Layout: the fp32 GEMM's tiling with k taken two at a time. Each 32-bit slot of a packed buffer
//! (a `f32` by type, its bits reinterpreted) holds a *K-pair*: the bf16 of `k = 2p` in its low
//! half and of `k = 2p + 1` in its high half (zero past an odd `k`). A is `[panel][k/2][MR]` slots,
//! B `[tile][k/2][NR]` slots. That is what AVX512_BF16's `vdpbf16ps` reads: one instruction adds
//! `a_lo·b_lo + a_hi·b_hi` into each fp32 lane, two multiply-adds per lane where an fp32 FMA does
//! one, from a broadcast A slot and a B vector of 16 columns. Weights are rounded and packed at
//! compile time; activations are rounded and paired while B (conv) or A (dense) is packed at run
//! time, so the bf16 copy is never a buffer of its own.
//!
//! Rounding ([`to_bf16`]) is the one `vcvtne2ps2bf16` does: round to nearest even, NaN kept (made
//! quiet), subnormals flushed to a signed zero; the tiers without AVX512_BF16 round in software
//! the same way, widen the slots back to fp32 (exact) and use fp32 multiply-adds, so every tier
//! computes the same products and differs only in the order of the fp32 sums.
//!
//! On a CPU with AMX-BF16, B in plain rows (the 1×1 convs) runs on AMX tiles instead
//! ([`Path::Amx`], [`task_amx`]), A transposed per task into the rows of K-pairs AMX reads.
//!
//! Tasks are the fp32 GEMM's (problem, row chunk, column chunk) rectangles; every task packs its
//! own B block (a row split therefore packs the same B more than once: cheap next to the
//! products it feeds, at least `MR` rows of them per packed slot). With `vdpbf16ps` the first
//! panel's micro-kernels pack B as they compute (as the fp32 AVX-512 kernel does), and tiles of
//! at most 4 columns (`NARROW_COLS`; the ragged end of a 14×14 or 7×7 map) run on a kernel over
//! A's rows: on the 8 × 48 kernel a 7×7 map's one-column tile cost a third of its 48-column one.

use super::{
    ALIGN_SLACK, B_SCRATCH, BSource, Gemm, KC, MR, NARROW_COLS, NR, Problem, Split, Tile, aligned,
    generic,
};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use crate::kernels::{KernelError, SharedOut, check_min_len};

/// The bf16 nearest to `x` (ties to even) as its 16 bits; NaN stays NaN (quiet), subnormals become
/// a zero of their sign (as `vcvtneps2bf16`), and finite values past bf16's range become infinite.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bf16 ([`to_bf16`]) and widened back (exactly) to fp32.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits(u32::from(to_bf16(x)) << 16)
}

/// The K-pair slot holding `lo` (even k) and `hi` (odd k), both rounded to bf16.
#[inline]
fn pair(lo: f32, hi: f32) -> f32 {
    f32::from_bits(u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16))
}

/// The two fp32 values of a K-pair slot.
#[inline(always)]
fn unpair(slot: f32) -> (f32, f32) {
    let b = slot.to_bits();
    (f32::from_bits(b << 16), f32::from_bits(b & 0xffff_0000))
}

/// Slots of an `m × k` A packed in K-pair panels.
pub fn packed_a_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k.div_ceil(2)
}

/// Slots of a `k × n` B packed in K-pair tiles.
pub fn packed_b_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * NR * k.div_ceil(2)
}

/// Packs a row-major `m × k` matrix (row `r` at `src[r * ld..][..k]`) into K-pair panels of `MR`
/// rows, appending [`packed_a_len`] slots to `dst`. Done at compile time for conv weights.
pub fn pack_a(src: &[f32], m: usize, k: usize, ld: usize, dst: &mut Vec<f32>) {
    let at = dst.len();
    dst.resize(at + packed_a_len(m, k), 0.0);
    pack_a_into(src, m, k, ld, &mut dst[at..]);
}

/// [`pack_a`] into a slice of [`packed_a_len`] slots (the dense layer's activations at run time).
pub(crate) fn pack_a_into(src: &[f32], m: usize, k: usize, ld: usize, dst: &mut [f32]) {
    let k2 = k.div_ceil(2);
    for (panel, block) in dst.chunks_exact_mut(k2 * MR).enumerate() {
        for (p, lane) in block.chunks_exact_mut(MR).enumerate() {
            for (r, v) in lane.iter_mut().enumerate() {
                let row = panel * MR + r;
                *v = if row < m {
                    let at = |kk: usize| if kk < k { src[row * ld + kk] } else { 0.0 };
                    pair(at(2 * p), at(2 * p + 1))
                } else {
                    0.0
                };
            }
        }
    }
}

/// Packs B given as `b[k][n] = src[n * ld + k]` (dense weights `[out, in]`) into K-pair tiles of
/// `NR` columns: [`packed_b_len`] slots. Done at compile time.
pub fn pack_b_transposed(src: &[f32], k: usize, n: usize, ld: usize) -> Vec<f32> {
    let k2 = k.div_ceil(2);
    let mut dst = Vec::with_capacity(packed_b_len(k, n));
    for tile in 0..n.div_ceil(NR) {
        for p in 0..k2 {
            for c in 0..NR {
                let col = tile * NR + c;
                let at = |kk: usize| {
                    if kk < k && col < n {
                        src[col * ld + kk]
                    } else {
                        0.0
                    }
                };
                dst.push(pair(at(2 * p), at(2 * p + 1)));
            }
        }
    }
    dst
}

/// K-pairs of one k block at most on [`Path::Amx`]: a B tile of them, 48 KiB, stays in L1 while
/// every 16-row block of A multiplies it.
const AMX_KC: usize = 256;
/// Scratch floats of one thread's transposed A blocks on [`Path::Amx`] (256 KiB: 16 blocks of
/// 16 rows at the deepest k block, more at shallower ones).
const AMX_A_SCRATCH: usize = 16 * 16 * AMX_KC + AMX_KEY;
/// Floats at the end of a thread's A scratch naming what its transposed blocks hold
/// ([`AmxKey`]), so that the thread's next task over the same rows of the same A reuses them.
const AMX_KEY: usize = 8;

/// What a thread's transposed A blocks hold: A's address, the panels and the K-pairs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AmxKey {
    a: usize,
    panels: (usize, usize),
    pairs: (usize, usize),
}

impl AmxKey {
    /// As stored in the last [`AMX_KEY`] floats of a thread's A scratch (`valid` in the last).
    fn bits(self) -> [u32; AMX_KEY] {
        let a = self.a as u64;
        let w = |x: usize| x as u32;
        [
            a as u32,
            (a >> 32) as u32,
            w(self.panels.0),
            w(self.panels.1),
            w(self.pairs.0),
            w(self.pairs.1),
            0,
            1,
        ]
    }
}

/// Scratch floats [`run`] needs on `threads` threads when B is packed at run time: one B block
/// per thread, and one A block for AMX (`m`, `n`, `k` and `problems` are there for symmetry
/// with `gemm::scratch_len`).
pub fn scratch_len(_m: usize, _n: usize, _k: usize, _problems: usize, threads: usize) -> usize {
    ALIGN_SLACK + threads.max(1) * (B_SCRATCH + AMX_A_SCRATCH)
}

/// How one call computes its K-pairs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// AVX512_BF16's `vdpbf16ps` (on the AVX-512 tier of a CPU that has it).
    Dot,
    /// Slots widened to fp32 and multiplied-added in fp32: compiled for AVX2 on the SIMD tiers,
    /// plain on the generic one.
    Widen { avx2: bool },
    /// The same on AVX-512 without AVX512_BF16: the fp32 kernel's 8 × 48 register tile, each
    /// slot split into its two fp32 values by a shift and a mask.
    Widen512,
    /// [`Path::Dot`] where the CPU also has AMX-BF16 (`x86_64::amx::usable`): B in plain rows
    /// (1×1 convs) runs on AMX tiles, 16 rows × 48 columns a block ([`task_amx`]); B packed at
    /// compile time (dense layers, a few rows of A) and narrow tiles stay on `vdpbf16ps`.
    Amx,
}

/// Whether this CPU has what [`Path::Dot`] runs on: AVX512_BF16, AVX512BW for the 16-bit
/// permute that interleaves the pairs while packing, and AVX512VL for the narrow tiles' 256-bit
/// `vdpbf16ps`.
pub fn dot_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512bf16")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the bf16 kernels take `vdpbf16ps`: where it is supported ([`dot_supported`]) unless
/// `RESNEXT_BF16=widen` forces the widening kernels (tests run every path the CPU has).
pub fn dot_enabled() -> bool {
    dot_supported() && forced() != Some(Forced::Widen)
}

/// A bf16 path forced by `RESNEXT_BF16` (for tests and measurements).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forced {
    /// `dot`: `vdpbf16ps` where supported, no AMX.
    Dot,
    /// `widen`: operands widened to fp32, no `vdpbf16ps` or AMX.
    Widen,
}

/// `RESNEXT_BF16` read once: `dot`, `widen`, or unset (or `auto`) for the fastest this CPU has.
fn forced() -> Option<Forced> {
    static FORCED: std::sync::OnceLock<Option<Forced>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("RESNEXT_BF16").as_deref() {
        Ok("dot") => Some(Forced::Dot),
        Ok("widen") => Some(Forced::Widen),
        Ok("auto") | Err(_) => None,
        Ok(v) => {
            eprintln!("resnext-runtime: RESNEXT_BF16={v} is not one of auto|dot|widen; using auto");
            None
        }
    })
}

/// Whether the bf16 GEMM takes [`Path::Amx`] on the AVX-512 tier: AMX-BF16 usable in this
/// process (`x86_64::amx::usable`), `vdpbf16ps` supported (narrow tiles), nothing forced.
pub(crate) fn amx_path() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        forced().is_none() && dot_supported() && super::x86_64::amx::usable()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn path(isa: Isa) -> Path {
    match isa {
        Isa::Avx512 if amx_path() => Path::Amx,
        Isa::Avx512 if dot_enabled() => Path::Dot,
        Isa::Avx512 if isa.supported() => Path::Widen512,
        Isa::Avx2 | Isa::Avx512 if isa.supported() => Path::Widen { avx2: true },
        _ => Path::Widen { avx2: false },
    }
}

/// Runs every problem into `output`: A is K-pair packed ([`pack_a`]), B either plain rows
/// (`BSource::Rows`, packed here) or K-pair packed for the whole k (`BSource::Packed`, from
/// [`pack_b_transposed`]). The caller's contract is that of `gemm::run`, with the packed lengths
/// of this module; `scratch` holds [`scratch_len`] floats unless every B is packed.
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
    if problems
        .iter()
        .any(|p| matches!(p.b, BSource::Im2col { .. }))
    {
        return Err(KernelError::BadShape(
            "the bf16 GEMM packs plain rows only (1×1 convs without padding)".into(),
        ));
    }
    let path = path(isa);
    let split = Split::new(g.m, g.n, g.k, problems.len(), threads.count());
    let runtime_b = problems.iter().any(|p| matches!(p.b, BSource::Rows { .. }));
    let scratch = if runtime_b {
        check_min_len(
            "bf16 gemm scratch",
            scratch_len(g.m, g.n, g.k, problems.len(), threads.count()),
            scratch.len(),
        )?;
        aligned(scratch)
    } else {
        scratch
    };
    let out = SharedOut(output.as_mut_ptr());
    let scr = SharedOut(scratch.as_mut_ptr());
    let per_problem = split.m_chunks * split.n_chunks;
    let task = |t: usize, worker: usize| {
        let p = &problems[t / per_problem];
        let r = t % per_problem;
        let (mc, nc) = if split.rows_outer {
            (r / split.n_chunks, r % split.n_chunks)
        } else {
            (r % split.m_chunks, r / split.m_chunks)
        };
        // SAFETY: worker `worker` alone uses slot `worker` of the scratch (`threads.count()`
        // slots, checked above when any B is packed here).
        #[allow(unused_mut)]
        let mut bbuf = runtime_b.then(|| unsafe {
            std::slice::from_raw_parts_mut(scr.ptr().add(worker * B_SCRATCH), B_SCRATCH)
        });
        #[cfg(target_arch = "x86_64")]
        if path == Path::Amx
            && let (BSource::Rows { data, ld }, Some(bbuf)) = (p.b, bbuf.as_deref_mut())
        {
            // SAFETY: as for the B blocks: worker `worker` alone uses A slot `worker`, after
            // the `threads.count()` B slots.
            let abuf = unsafe {
                std::slice::from_raw_parts_mut(
                    scr.ptr()
                        .add(threads.count() * B_SCRATCH + worker * AMX_A_SCRATCH),
                    AMX_A_SCRATCH,
                )
            };
            let span = (split.panels(mc), split.tiles(nc));
            // SAFETY: as for `task_body` below; `Path::Amx` only where AMX is usable.
            unsafe {
                if swapped(g) {
                    task_amx_t(g, (p, data, ld), span, bbuf, out.ptr())
                } else {
                    task_amx(g, (p, data, ld), span, (bbuf, abuf), out.ptr())
                }
            };
            return;
        }
        // SAFETY: the rectangle of this task is written by it alone and lies inside `output`
        // (the caller's contract); `path` only picks what the CPU supports.
        unsafe {
            task_body(
                g,
                p,
                (split.panels(mc), split.tiles(nc)),
                bbuf,
                out.ptr(),
                path,
            )
        };
    };
    if path == Path::Amx && runtime_b {
        // No thread's transposed A blocks are from this call yet.
        for w in 0..threads.count() {
            let key = threads.count() * B_SCRATCH + (w + 1) * AMX_A_SCRATCH - AMX_KEY;
            scratch[key..key + AMX_KEY].fill(0.0);
        }
    }
    threads.run_indexed(problems.len() * per_problem, &task);
    Ok(())
}

/// Rows `panels` × columns `tiles` of one problem's C, block of K-pairs by block.
///
/// On [`Path::Dot`] with B in plain rows, the first panel's micro-kernels round and pair the
/// activations as they compute ([`x86::tile_packing`]) and the other panels read what they wrote:
/// the activations' loads then overlap the products instead of waiting in a pass of their own.
/// A narrow tile ([`NARROW_COLS`] columns or fewer, the ragged end of a 14×14 or 7×7 map) is
/// packed first, compactly (`cols` slots a K-pair row), for its kernel that runs over A's rows.
///
/// # Safety
/// As `gemm::task_body`: `out` valid for writes of that rectangle, nobody else touching it;
/// `path` supported by this CPU.
unsafe fn task_body(
    g: &Gemm,
    p: &Problem,
    (panels, tiles): (std::ops::Range<usize>, std::ops::Range<usize>),
    mut bbuf: Option<&mut [f32]>,
    out: *mut f32,
    path: Path,
) {
    // AMX takes B in plain rows only (`run`); packed B (a dense layer's weights, for a few rows
    // of A) runs on `vdpbf16ps`.
    let path = if path == Path::Amx { Path::Dot } else { path };
    let k2 = g.k.div_ceil(2);
    // The B block as deep as the scratch allows (at least `KC` pairs, as `tiles` has at most
    // `NC_TILES` tiles), so that with k ≤ 2·KC C is written once.
    let step = match p.b {
        BSource::Packed { .. } => k2,
        _ => (B_SCRATCH / (tiles.len().max(1) * NR)).max(KC),
    };
    let fused = match (p.b, path) {
        (BSource::Rows { data, ld }, Path::Dot) => Some((data, ld)),
        _ => None,
    };
    // Slots per K-pair row of tile `j` as packed here.
    let ldb = |j: usize| {
        let cols = g.tile_cols(j);
        if matches!(p.b, BSource::Rows { .. }) && path == Path::Dot && cols <= NARROW_COLS {
            cols
        } else {
            NR
        }
    };
    for p0 in (0..k2).step_by(step) {
        let kc = step.min(k2 - p0);
        let (base, first, stride) = match (p.b, bbuf.as_deref_mut()) {
            (BSource::Packed { data }, _) => (data.as_ptr().wrapping_add(p0 * NR), 0, k2 * NR),
            (BSource::Rows { data, ld }, Some(buf)) => {
                // With `fused`, the first panel packs the wide tiles.
                let wide = fused.is_none();
                pack_rows((data, ld), g, (p0, kc), tiles.clone(), buf, (path, wide));
                (buf.as_mut_ptr().cast_const(), tiles.start, kc * NR)
            }
            // `run` rejects im2col and supplies scratch whenever B is plain rows.
            _ => return,
        };
        let last = p0 + kc == k2;
        for i in panels.clone() {
            for j in tiles.clone() {
                let (row, col) = (i * MR, j * NR);
                let f = last.then(|| super::Finish::at(g, p, row, col));
                let b = base.wrapping_add((j - first) * stride);
                let t = Tile {
                    kc,
                    a: p.a[(i * k2 + p0) * MR..].as_ptr(),
                    b,
                    ldb: ldb(j),
                    c: out.wrapping_add(p.c + row * g.ldc + col),
                    ldc: g.ldc,
                    rows: MR.min(g.m - row),
                    cols: g.tile_cols(j),
                    load_c: p0 > 0,
                    stream_a: false,
                    finish: f,
                };
                #[cfg(target_arch = "x86_64")]
                if let Some((data, ld)) = fused
                    && i == panels.start
                    && t.cols > NARROW_COLS
                {
                    let from = x86::PackFrom {
                        src: data.as_ptr().wrapping_add(2 * p0 * ld + col),
                        ld,
                        rows: g.k - 2 * p0,
                        dst: b.cast_mut(),
                    };
                    // SAFETY: as below for A, C and the residual; B's rows `2·p0..` (at most
                    // `2·kc` of them, `from.rows` in all), columns `col..col + cols`, lie in
                    // `data` (the caller's contract), and this tile's `kc × NR` slots of this
                    // task's scratch are written by this call alone, before any other panel
                    // reads them. `fused` implies `Path::Dot`.
                    unsafe { x86::tile_packing(&t, from) };
                    continue;
                }
                // SAFETY: A and B hold `kc` packed K-pair rows from these offsets (lengths checked
                // by the caller, B packed above or by this tile's first panel); C and the residual
                // rectangles are inside their buffers and C is ours alone (this function's
                // contract).
                unsafe { micro(&t, path) };
            }
        }
    }
}

/// [`task_body`] on AMX for B in plain rows (`data`, `ld`): per k block of at most [`AMX_KC`]
/// K-pairs (a multiple of `amx::PAIRS`), the task's B tiles are rounded, paired and packed into
/// `bbuf` (zero rows up to a whole number of `amx::PAIRS`; narrow tiles compactly, as on
/// [`Path::Dot`]), then each block of two A panels (16 rows) is transposed into `abuf` as AMX
/// reads it, and multiplied by every wide B tile on the tiles ([`super::x86_64::amx::block`]),
/// through a staging block into the fp32 kernels' epilogue. Narrow tiles run on the
/// `vdpbf16ps` narrow kernel, panel by panel, from A as packed.
///
/// # Safety
/// As [`task_body`]; AMX usable (`amx::usable`) and what [`Path::Dot`] needs supported;
/// `bbuf` holds `B_SCRATCH` floats and `abuf` [`AMX_A_SCRATCH`], this task's alone.
#[cfg(target_arch = "x86_64")]
unsafe fn task_amx(
    g: &Gemm,
    (p, data, ld): (&Problem, &[f32], usize),
    (panels, tiles): (std::ops::Range<usize>, std::ops::Range<usize>),
    (bbuf, abuf): (&mut [f32], &mut [f32]),
    out: *mut f32,
) {
    use super::x86_64::amx;
    let k2 = g.k.div_ceil(2);
    // B's block fills the scratch at most, A's is `AMX_KC` pairs; both whole `PAIRS` steps.
    let step = (B_SCRATCH / (tiles.len().max(1) * NR)).min(AMX_KC) / amx::PAIRS * amx::PAIRS;
    let mut stage = [0.0f32; amx::ROWS * NR];
    // SAFETY: AMX is usable (this function's contract).
    unsafe { amx::configure() };
    for p0 in (0..k2).step_by(step) {
        let kc = step.min(k2 - p0);
        let kp = kc.next_multiple_of(amx::PAIRS);
        for (t, j) in tiles.clone().enumerate() {
            let (col, cols) = (j * NR, g.tile_cols(j));
            let dst = &mut bbuf[t * kp * NR..][..kp * NR];
            if cols <= NARROW_COLS {
                pack_rows((data, ld), g, (p0, kc), j..j + 1, dst, (Path::Dot, false));
            } else {
                // SAFETY: rows `2·p0..min(k, 2·(p0 + kc))` of columns `col..col + cols` lie in
                // `data` (the caller's contract), and `dst` holds `kp × NR` slots.
                unsafe {
                    x86::pack_amx(
                        data.as_ptr().add(2 * p0 * ld + col),
                        ld,
                        // Pairs past `kc` read zeros: never another block's rows.
                        (g.k - 2 * p0).min(2 * kc),
                        cols,
                        kp,
                        dst,
                    )
                };
            }
        }
        let last = p0 + kc == k2;
        let finish = |row: usize, col: usize| last.then(|| super::Finish::at(g, p, row, col));
        // Row chunks of whole 16-row blocks whose transposed A fills `abuf` at most; in each,
        // B tile by B tile, so that one B tile serves every block of the chunk from L1.
        let (blocks, key) = abuf.split_at_mut(AMX_A_SCRATCH - AMX_KEY);
        let chunk_panels = (blocks.len() / (amx::ROWS * kp)).max(1) * (amx::ROWS / MR);
        for c0 in panels.clone().step_by(chunk_panels) {
            let chunk = c0..(c0 + chunk_panels).min(panels.end);
            // This thread's last task may have left these very blocks.
            let held = AmxKey {
                a: p.a.as_ptr() as usize,
                panels: (chunk.start, chunk.end),
                pairs: (p0, kc),
            }
            .bits();
            if !key.iter().zip(held).all(|(k, h)| k.to_bits() == h) {
                for (x, blk) in chunk.clone().step_by(amx::ROWS / MR).enumerate() {
                    let np = (chunk.end - blk).min(amx::ROWS / MR);
                    // SAFETY: panels `blk..blk + np` hold K-pairs `p0..p0 + kc` (`p.a` is the
                    // whole packed A), and block `x` of `blocks` holds `ROWS × kp` slots (`x`
                    // blocks of the chunk fit, by `chunk_panels`).
                    unsafe {
                        x86::transpose_a(
                            &p.a[blk * k2 * MR..],
                            k2,
                            np,
                            (p0, kc, kp),
                            &mut blocks[x * amx::ROWS * kp..][..amx::ROWS * kp],
                        )
                    };
                }
                for (k, h) in key.iter_mut().zip(held) {
                    *k = f32::from_bits(h);
                }
            }
            for (t, j) in tiles.clone().enumerate() {
                let (col, cols) = (j * NR, g.tile_cols(j));
                let b = bbuf[t * kp * NR..].as_ptr();
                if cols <= NARROW_COLS {
                    for i in chunk.clone() {
                        let r = i * MR;
                        let tile = Tile {
                            kc,
                            a: p.a[(i * k2 + p0) * MR..].as_ptr(),
                            b,
                            ldb: cols,
                            c: out.wrapping_add(p.c + r * g.ldc + col),
                            ldc: g.ldc,
                            rows: MR.min(g.m - r),
                            cols,
                            load_c: p0 > 0,
                            stream_a: false,
                            finish: finish(r, col),
                        };
                        // SAFETY: as in `task_body`: A and B hold `kc` K-pair rows from here,
                        // the C rectangle is ours alone.
                        unsafe { x86::tile(&tile) };
                    }
                    continue;
                }
                for (x, blk) in chunk.clone().step_by(amx::ROWS / MR).enumerate() {
                    let np = (chunk.end - blk).min(amx::ROWS / MR);
                    let row = blk * MR;
                    // SAFETY: block `x` of `abuf` holds 16 rows of `kp` slots, B `kp` rows of
                    // `NR` slots (packed above), `stage` `ROWS × NR` floats; the tiles are
                    // configured.
                    unsafe {
                        amx::block(
                            blocks[x * amx::ROWS * kp..].as_ptr(),
                            kp,
                            b,
                            kp,
                            stage.as_mut_ptr(),
                        )
                    };
                    let tile = Tile {
                        kc,
                        a: std::ptr::null(),
                        b,
                        ldb: NR,
                        c: out.wrapping_add(p.c + row * g.ldc + col),
                        ldc: g.ldc,
                        rows: (np * MR).min(g.m - row),
                        cols,
                        load_c: p0 > 0,
                        stream_a: false,
                        finish: finish(row, col),
                    };
                    // SAFETY: the C (and residual) rectangle of `tile` lies in its buffers and
                    // is this task's alone (the caller's contract).
                    unsafe { x86::finish_staged(&tile, &stage) };
                }
            }
        }
    }
    // SAFETY: configured above.
    unsafe { amx::release() };
}

/// Maps of at most this many pixels run [`task_amx_t`] on AMX: the weights are then the larger
/// operand, read by the tiles in place instead of transposed.
const AMX_T_MAX_N: usize = 256;

/// Whether the AMX path takes `g` with the operands swapped ([`task_amx_t`]): few pixels, and a
/// whole number of AMX steps of K-pairs (then no tile load reads past a weight panel's end).
#[cfg(target_arch = "x86_64")]
fn swapped(g: &Gemm) -> bool {
    g.n <= AMX_T_MAX_N && g.k.div_ceil(2).is_multiple_of(super::x86_64::amx::PAIRS)
}

/// [`task_amx`] with the operands swapped, for maps of few pixels: per k block, the task's
/// pixels are rounded, paired and transposed into `bbuf` (16-pixel blocks of rows of K-pairs,
/// [`x86::pack_xt`]), and each two weight panels, as packed at compile time, multiply each two
/// pixel blocks on the tiles ([`super::x86_64::amx::block_t`]); the 16 × 8 results are turned
/// back into rows of channels by the epilogue ([`x86::finish_staged_t`]).
///
/// # Safety
/// As [`task_amx`], and [`swapped`] holds for `g`.
#[cfg(target_arch = "x86_64")]
unsafe fn task_amx_t(
    g: &Gemm,
    (p, data, ld): (&Problem, &[f32], usize),
    (panels, tiles): (std::ops::Range<usize>, std::ops::Range<usize>),
    bbuf: &mut [f32],
    out: *mut f32,
) {
    use super::x86_64::amx;
    let k2 = g.k.div_ceil(2);
    let col0 = tiles.start * NR;
    let cols = (tiles.end * NR).min(g.n) - col0;
    let blocks = cols.div_ceil(16);
    // Whole AMX steps (k2 is a whole number of them, `swapped`), the pixel rows in `bbuf`.
    let step = (B_SCRATCH / (blocks * 16)).min(AMX_KC) / amx::PAIRS * amx::PAIRS;
    let mut stage = [0.0f32; 4 * 16 * MR];
    // SAFETY: AMX is usable (this function's contract).
    unsafe { amx::configure_t() };
    for p0 in (0..k2).step_by(step) {
        let kc = step.min(k2 - p0);
        // SAFETY: rows `2·p0..min(k, 2·(p0 + kc))` of columns `col0..col0 + cols` lie in `data`
        // (the caller's contract), and `bbuf` holds `16 · blocks` rows of `kc` slots.
        unsafe {
            x86::pack_xt(
                data.as_ptr().add(2 * p0 * ld + col0),
                ld,
                (g.k - 2 * p0).min(2 * kc),
                cols,
                kc,
                bbuf,
            )
        };
        let last = p0 + kc == k2;
        for i in panels.clone().step_by(2) {
            let panel = |i: usize| p.a[(i * k2 + p0) * MR..].as_ptr();
            let w = [
                panel(i),
                if i + 1 < panels.end {
                    panel(i + 1)
                } else {
                    panel(i)
                },
            ];
            for xb in (0..blocks).step_by(2) {
                let block = |b: usize| bbuf[b * 16 * kc..].as_ptr();
                let x = [block(xb), block(if xb + 1 < blocks { xb + 1 } else { xb })];
                // SAFETY: each `x` holds 16 rows of `kc` slots, each `w` `kc` K-pair rows of
                // its panel (`kc <= k2 - p0`), `stage` 512 floats; `kc` is a whole number of
                // AMX steps (`swapped`, `step`); the tiles are configured.
                unsafe { amx::block_t(x, kc, w, kc, stage.as_mut_ptr()) };
                for (wb, panel) in (i..panels.end.min(i + 2)).enumerate() {
                    let row = panel * MR;
                    let col = col0 + 16 * xb;
                    let tile = Tile {
                        kc,
                        a: std::ptr::null(),
                        b: std::ptr::null(),
                        ldb: NR,
                        c: out.wrapping_add(p.c + row * g.ldc + col),
                        ldc: g.ldc,
                        rows: MR.min(g.m - row),
                        cols: (cols - 16 * xb).min(32),
                        load_c: p0 > 0,
                        stream_a: false,
                        finish: last.then(|| super::Finish::at(g, p, row, col)),
                    };
                    // SAFETY: the C (and residual) rectangle of `tile` lies in its buffers and
                    // is this task's alone (the caller's contract); `stage` holds 512 floats.
                    unsafe { x86::finish_staged_t(&tile, &stage, wb) };
                }
            }
        }
    }
    // SAFETY: configured above.
    unsafe { amx::release() };
}

/// One `MR × NR` tile over `t.kc` K-pairs (`t.a`, `t.b` point at K-pair slots).
///
/// # Safety
/// As `generic::tile`, with `kc` K-pair rows; `path` supported by this CPU.
#[inline]
unsafe fn micro(t: &Tile, path: Path) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller (`Amx` implies what `Dot` needs).
        Path::Dot | Path::Amx => unsafe { x86::tile(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller; `Widen { avx2: true }` only where AVX2 and FMA are.
        Path::Widen { avx2: true } => unsafe { widen_tile_avx2(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller; `Widen512` only where AVX-512F is.
        Path::Widen512 => unsafe { x86::widen_tile(t) },
        // SAFETY: forwarded from the caller.
        _ => unsafe { widen_tile(t) },
    }
}

/// [`widen_tile`] compiled for AVX2 + FMA.
///
/// # Safety
/// As [`widen_tile`]; the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen_tile_avx2(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe { widen_tile(t) }
}

/// The portable K-pair micro-kernel: each slot widened to two fp32 values, each exact product
/// added in fp32, then the scalar epilogue of `generic`.
///
/// # Safety
/// As `generic::tile`, with `kc` K-pair rows of A (`MR` slots) and B (`NR` slots).
#[inline(always)]
unsafe fn widen_tile(t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: lengths as in the contract.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(t.a, t.kc * MR),
            std::slice::from_raw_parts(t.b, t.kc * NR),
        )
    };
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let mut blo = [0.0f32; NR];
        let mut bhi = [0.0f32; NR];
        for ((l, h), &s) in blo.iter_mut().zip(&mut bhi).zip(bv) {
            (*l, *h) = unpair(s);
        }
        for (row, &s) in acc.iter_mut().zip(av).take(t.rows) {
            let (x, y) = unpair(s);
            for ((c, &l), &h) in row.iter_mut().zip(&blo).zip(&bhi) {
                *c += x * l;
                *c += y * h;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        // SAFETY: forwarded from the caller.
        unsafe { generic::store_row(t, r, &row[..t.cols]) };
    }
}

/// Packs K-pairs `p0..p0 + kc` of plain-row B (`B[k][n] = data[k·ld + n]`) for the columns of
/// `tiles` into `dst` as `[tile][kc][NR]` slots, zero-padded past column `n` and row `k`; on
/// [`Path::Dot`] a narrow tile's rows are its `cols` slots only (at the start of its place), and
/// the wide tiles are skipped unless `wide` (the first panel's kernels pack them).
fn pack_rows(
    (data, ld): (&[f32], usize),
    g: &Gemm,
    (p0, kc): (usize, usize),
    tiles: std::ops::Range<usize>,
    dst: &mut [f32],
    (path, wide): (Path, bool),
) {
    for (t, j) in tiles.enumerate() {
        let (col0, width) = (j * NR, g.tile_cols(j));
        let tile = &mut dst[t * kc * NR..][..kc * NR];
        let compact = path == Path::Dot && width <= NARROW_COLS;
        if !compact && !wide {
            continue;
        }
        let row_len = if compact { width } else { NR };
        for (p, row) in tile.chunks_exact_mut(row_len).take(kc).enumerate() {
            let lo = 2 * (p0 + p);
            let src_lo = &data[lo * ld + col0..][..width];
            let src_hi = (lo + 1 < g.k).then(|| &data[(lo + 1) * ld + col0..][..width]);
            match src_hi {
                Some(src_hi) => {
                    for ((d, &x), &y) in row.iter_mut().zip(src_lo).zip(src_hi) {
                        *d = pair(x, y);
                    }
                }
                None => {
                    for (d, &x) in row.iter_mut().zip(src_lo) {
                        *d = pair(x, 0.0);
                    }
                }
            }
            row[width..].fill(0.0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::pair_order;

/// The AVX512_BF16 micro-kernels and B packing.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::generic::finish_one;
    use super::super::x86_64::avx512::{column_lanes, finish_row, prefetch_epilogue};
    use super::super::{MR, NARROW_COLS, NR, Tile};

    /// How many K-pairs ahead the kernel prefetches A (16 × 32 B = 512 B, as the fp32 kernel).
    const A_AHEAD: usize = 16;
    /// How many K-pairs ahead [`tile_packing`] prefetches the two B rows of a pair.
    const B_AHEAD: usize = 8;

    /// Where [`tile_packing`] reads B's plain rows and writes them packed.
    #[derive(Clone, Copy)]
    pub(super) struct PackFrom {
        /// Row `2p` of the tile's columns (K-pair `p` of the tile), `ld` floats apart.
        pub src: *const f32,
        pub ld: usize,
        /// Rows readable from `src` on (a K-pair past them reads zeros: an odd k's last pair).
        pub rows: usize,
        /// `t.kc` K-pair rows of `NR` slots.
        pub dst: *mut f32,
    }

    const NO_PACK: PackFrom = PackFrom {
        src: std::ptr::null(),
        ld: 0,
        rows: 0,
        dst: std::ptr::null_mut(),
    };

    /// Runs `t`: a narrow tile on [`tile_narrow`], the rest on [`tile_rn`] monomorphised on its
    /// row count (1, 2, 4 or 8; the packed A rows past `rows` are zero) and vectors of columns.
    ///
    /// # Safety
    /// As `widen_tile` (with B rows `t.ldb` slots apart); the CPU must support AVX512_BF16,
    /// AVX-512F and AVX512VL.
    pub(super) unsafe fn tile(t: &Tile) {
        // Two rows or fewer run as fast on the column vectors, unless B is packed compactly,
        // which only the narrow kernel reads.
        if t.cols <= NARROW_COLS && (t.rows > 2 || t.ldb != NR) {
            // SAFETY: forwarded from the caller.
            unsafe {
                match t.cols {
                    1 => tile_narrow::<1, 8>(t),
                    2 => tile_narrow::<2, 4>(t),
                    3 => tile_narrow::<3, 3>(t),
                    _ => tile_narrow::<4, 2>(t),
                }
            }
            return;
        }
        // SAFETY: forwarded from the caller.
        unsafe { tile_for::<false>(t, NO_PACK) }
    }

    /// [`tile`] for a tile of more than [`NARROW_COLS`] columns that packs its own B on the way:
    /// K-pair `p` is rounded and paired from rows `2p` and `2p + 1` at `from.src` (`t.cols`
    /// floats each) and written to `from.dst + p·NR`; `t.b` is not read.
    ///
    /// # Safety
    /// As for [`tile`], with AVX512BW too; `from.src` valid for reads of `t.cols` floats at each
    /// of `min(2·t.kc, from.rows)` rows `from.ld` apart, `from.dst` for writes of `t.kc` rows of
    /// `NR` slots that nobody else touches.
    pub(super) unsafe fn tile_packing(t: &Tile, from: PackFrom) {
        // SAFETY: forwarded from the caller.
        unsafe { tile_for::<true>(t, from) }
    }

    /// [`tile_rn`] monomorphised on `t`'s rows and vectors of columns.
    ///
    /// # Safety
    /// As for [`tile`], or [`tile_packing`] when `PACK`.
    #[inline(always)]
    unsafe fn tile_for<const PACK: bool>(t: &Tile, from: PackFrom) {
        macro_rules! go {
            ($r:literal) => {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match t.cols.div_ceil(16) {
                        1 => tile_rn::<$r, 1, PACK>(t, from),
                        2 => tile_rn::<$r, 2, PACK>(t, from),
                        _ => tile_rn::<$r, 3, PACK>(t, from),
                    }
                }
            };
        }
        match t.rows {
            1 => go!(1),
            2 => go!(2),
            3 | 4 => go!(4),
            _ => go!(8),
        }
    }

    /// The 16-bit lane order that turns `vcvtne2ps2bf16(hi, lo)` (sixteen bf16 of `lo`, then
    /// sixteen of `hi`) into K-pairs: lane `2c` from `lo[c]`, lane `2c + 1` from `hi[c]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn pair_order() -> __m512i {
        _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        )
    }

    /// Packs `kp` K-pairs of `cols` columns (more than `NARROW_COLS`, at most `NR`) of B's plain
    /// rows at `src` (`ld` floats apart, `rows` of them readable) into `dst` as `kp` rows of `NR`
    /// slots, zero past `cols` and past the readable rows: what [`tile_rn`] packs when `PACK`,
    /// as a pass of its own for the AMX tiles.
    ///
    /// # Safety
    /// `src` readable for `cols` floats at each of `min(2·kp, rows)` rows `ld` apart; the CPU
    /// supports AVX512_BF16 and AVX512BW.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_amx(
        src: *const f32,
        ld: usize,
        rows: usize,
        cols: usize,
        kp: usize,
        dst: &mut [f32],
    ) {
        let order = pair_order();
        let lanes = column_lanes::<3>(cols);
        let out = dst.as_mut_ptr() as *mut __m512i;
        for p in 0..kp.min(dst.len() / NR) {
            let lo_lanes = if 2 * p < rows { lanes } else { [0; 3] };
            let hi_lanes = if 2 * p + 1 < rows { lanes } else { [0; 3] };
            let (lo, hi) = (
                src.wrapping_add(2 * p * ld),
                src.wrapping_add((2 * p + 1) * ld),
            );
            for v in 0..3 {
                // SAFETY: the lanes loaded are columns `< cols` of readable rows (the
                // contract); the store writes slots `16v..16v + 16` of row `p < dst.len() / NR`.
                unsafe {
                    let l = _mm512_maskz_loadu_ps(lo_lanes[v], lo.add(16 * v));
                    let h = _mm512_maskz_loadu_ps(hi_lanes[v], hi.add(16 * v));
                    let both = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l));
                    _mm512_storeu_si512(
                        out.add(p * (NR / 16) + v),
                        _mm512_permutexvar_epi16(order, both),
                    );
                }
            }
        }
    }

    /// Transposes K-pairs `p0..p0 + kc` of `np` (1 or 2) packed A panels (`a`, panels `k2`
    /// K-pairs of `MR` slots long) into `dst` as AMX reads A: row `r` of the block at
    /// `dst[r·kp..]`, its K-pairs in order, zero from `kc` to `kp`. Rows past `np · MR` are
    /// left as they are (their C rows are not stored).
    ///
    /// Sixteen K-pairs of a panel are eight vectors, `z[j]` holding pairs `2j` and `2j + 1` of
    /// its 8 rows; three rounds of eight two-source permutes (`vpermt2d`) regroup them into
    /// 4 pairs × 4 rows, then 8 pairs × 2 rows, then 16 pairs of one row.
    ///
    /// # Safety
    /// `a` holds `np` panels of `k2 >= p0 + kc` K-pairs, `dst` `16 · kp` slots, `kp` a multiple
    /// of 16 not below `kc`; the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    pub(super) unsafe fn transpose_a(
        a: &[f32],
        k2: usize,
        np: usize,
        (p0, kc, kp): (usize, usize, usize),
        dst: &mut [f32],
    ) {
        debug_assert!(a.len() >= np * k2 * MR && dst.len() >= 16 * kp && kc <= kp);
        // Lane `l` of each round's output, as `source · 16 + lane` of its two inputs.
        let index = |f: &dyn Fn(i32) -> i32| {
            let lanes: [i32; 16] = std::array::from_fn(|l| f(l as i32));
            // SAFETY: 16 i32 are 64 bytes.
            unsafe { _mm512_loadu_si512(lanes.as_ptr() as *const __m512i) }
        };
        // Round 1, rows 4h..4h + 4 of pairs 4i..4i + 4 from z[2i], z[2i + 1]: lane l is pair
        // l / 4, row 4h + l % 4.
        let r1 = [0, 1].map(|h| index(&|l| (l / 4 / 2) * 16 + (l / 4 % 2) * 8 + 4 * h + l % 4));
        // Round 2, rows 2g, 2g + 1 (of the 4) of pairs 8i'..8i' + 8: lane l is pair l / 2,
        // row 2g + l % 2; the first input holds pairs 0..4 (lane 4·pair + row), the second 4..8.
        let r2 = [0, 1].map(|g| index(&|l| (l / 2 / 4) * 16 + (l / 2 % 4) * 4 + 2 * g + l % 2));
        // Round 3, row e (of the 2) of pairs 0..16: lane l is pair l; the first input holds
        // pairs 0..8 (lane 2·pair + row), the second 8..16.
        let r3 = [0, 1].map(|e| index(&|l| (l / 8) * 16 + (l % 8) * 2 + e));
        for h in 0..np {
            let panel = a.as_ptr().wrapping_add((h * k2 + p0) * MR) as *const i32;
            for q0 in (0..kp).step_by(16) {
                // Slots of this chunk that hold K-pairs below `kc`.
                let valid = kc.saturating_sub(q0).min(16) * MR;
                let z: [__m512i; 8] = std::array::from_fn(|j| {
                    let n = valid.saturating_sub(16 * j).min(16);
                    let mask: __mmask16 = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
                    // SAFETY: the lanes loaded are slots of K-pairs `< kc` of this panel (in
                    // `a`, the contract); masked-off lanes are not read.
                    unsafe { _mm512_maskz_loadu_epi32(mask, panel.wrapping_add(q0 * MR + 16 * j)) }
                });
                let u: [[__m512i; 2]; 4] = std::array::from_fn(|i| {
                    r1.map(|ix| _mm512_permutex2var_epi32(z[2 * i], ix, z[2 * i + 1]))
                });
                for hh in 0..2 {
                    for (g, ix2) in r2.iter().enumerate() {
                        let v: [__m512i; 2] = std::array::from_fn(|i| {
                            _mm512_permutex2var_epi32(u[2 * i][hh], *ix2, u[2 * i + 1][hh])
                        });
                        for (e, ix3) in r3.iter().enumerate() {
                            let row = 8 * h + 4 * hh + 2 * g + e;
                            let o = _mm512_permutex2var_epi32(v[0], *ix3, v[1]);
                            // SAFETY: slots `q0..q0 + 16` of row `row < 16` of `dst`
                            // (`q0 + 16 <= kp`).
                            unsafe {
                                _mm512_storeu_si512(
                                    dst.as_mut_ptr().add(row * kp + q0) as *mut __m512i,
                                    o,
                                )
                            };
                        }
                    }
                }
            }
        }
    }

    /// Packs `kc` K-pairs of `cols` columns (pixels) of B's plain rows at `src` (`ld` floats
    /// apart, `rows` of them readable) into `dst` transposed: pixel `c`'s K-pairs in order at
    /// `dst[c·kc..]`, for `c` up to a whole number of 16 (zero past `cols` and the readable
    /// rows). Each K-pair of 16 pixels is paired as in [`pack_amx`] and scattered down a column.
    ///
    /// # Safety
    /// `src` readable for `cols` floats at each of `min(2·kc, rows)` rows `ld` apart; `dst` holds
    /// `cols.div_ceil(16) · 16 · kc` slots; the CPU supports AVX512_BF16 and AVX512BW.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_xt(
        src: *const f32,
        ld: usize,
        rows: usize,
        cols: usize,
        kc: usize,
        dst: &mut [f32],
    ) {
        debug_assert!(dst.len() >= cols.div_ceil(16) * 16 * kc);
        let order = pair_order();
        let down = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(kc as i32),
        );
        for b in 0..cols.div_ceil(16) {
            let lanes = column_lanes::<1>(cols - 16 * b)[0];
            for p in 0..kc {
                let lo_lanes = if 2 * p < rows { lanes } else { 0 };
                let hi_lanes = if 2 * p + 1 < rows { lanes } else { 0 };
                let at = src.wrapping_add(2 * p * ld + 16 * b);
                // SAFETY: the lanes loaded are columns `< cols` of readable rows (the
                // contract); the scatter writes slot `p` of rows `16b..16b + 16` of `dst`.
                unsafe {
                    let l = _mm512_maskz_loadu_ps(lo_lanes, at);
                    let h = _mm512_maskz_loadu_ps(hi_lanes, at.wrapping_add(ld));
                    let both = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l));
                    _mm512_i32scatter_epi32::<4>(
                        dst.as_mut_ptr().add(16 * b * kc + p) as *mut i32,
                        down,
                        _mm512_permutexvar_epi16(order, both),
                    );
                }
            }
        }
    }

    /// [`finish_staged`] for [`super::super::x86_64::amx::block_t`]'s results: channel
    /// `r < t.rows` of weight panel `wb` over two blocks of 16 pixels, each gathered from its
    /// pixel-major 16 × 8 block (`stage[128·(2·xb + wb)..]`).
    ///
    /// # Safety
    /// As `finish_row` for rows `0..t.rows` (at most 8) and `t.cols <= 32` columns of `t`;
    /// `stage` holds 512 floats, `wb < 2`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn finish_staged_t(t: &Tile, stage: &[f32; 512], wb: usize) {
        let lanes = column_lanes::<2>(t.cols);
        let across = _mm512_setr_epi32(
            0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120,
        );
        for r in 0..t.rows.min(MR) {
            let acc = std::array::from_fn(|xb| {
                // SAFETY: lane `c` reads float `128·(2·xb + wb) + 8c + r < 512` of `stage`.
                unsafe {
                    _mm512_i32gather_ps::<4>(across, stage.as_ptr().add(128 * (2 * xb + wb) + r))
                }
            });
            // SAFETY: `r < t.rows`; the pointers of `t` as the caller promised.
            unsafe { finish_row::<2>(t, r, acc, lanes) };
        }
    }

    /// The fp32 kernels' epilogue ([`finish_row`]) over an AMX staging block: row `r < t.rows`
    /// of the result at `stage[r·NR..]`, `t.cols` columns of it.
    ///
    /// # Safety
    /// As `finish_row` for rows `0..t.rows` (at most 16) of `t`; `stage` holds `t.rows · NR`
    /// floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn finish_staged(t: &Tile, stage: &[f32]) {
        let lanes = column_lanes::<3>(t.cols);
        for (r, row) in stage.chunks_exact(NR).take(t.rows).enumerate() {
            // SAFETY: `row` holds `NR = 48` floats.
            let acc = std::array::from_fn(|v| unsafe { _mm512_loadu_ps(row.as_ptr().add(16 * v)) });
            // SAFETY: `r < t.rows`; the pointers of `t` as the caller promised.
            unsafe { finish_row::<3>(t, r, acc, lanes) };
        }
    }

    /// `R` rows × `NV` vectors of 16 columns: per K-pair one B row of `NV` vectors (loaded, or
    /// when `PACK` rounded and paired from two rows of the activations and stored for the later
    /// panels), reused by every row's broadcast A slot, `R · NV` `vdpbf16ps`; then the fp32
    /// kernel's epilogue.
    ///
    /// # Safety
    /// As [`tile`] (or [`tile_packing`] when `PACK`), with `R >= t.rows` and `NV` vectors
    /// covering `t.cols`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile_rn<const R: usize, const NV: usize, const PACK: bool>(t: &Tile, from: PackFrom) {
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        let (mut a, mut b) = (t.a as *const i32, t.b as *const __m512i);
        let (mut src, mut dst) = (from.src, from.dst as *mut __m512i);
        let order = pair_order();
        let lanes = column_lanes::<NV>(t.cols);
        prefetch_epilogue::<R, NV>(t);
        for p in 0..t.kc {
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_AHEAD * MR) as *const i8);
            let mut bv = [_mm512_setzero_si512(); NV];
            if PACK {
                // Row `2p + 1` exists unless k is odd and this is its last pair.
                let has_hi = 2 * p + 1 < from.rows;
                let ahead = src.wrapping_add(2 * B_AHEAD * from.ld);
                for v in 0..NV {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * v) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(from.ld + 16 * v) as *const i8);
                    let hi_lanes = if has_hi { lanes[v] } else { 0 };
                    // SAFETY: the lanes of `lanes[v]` are columns `< cols` of row `2p` of the
                    // source, those of `hi_lanes` of row `2p + 1` when it is readable
                    // (`tile_packing`'s contract); masked-off lanes are not read. The store
                    // writes slots `16v..16v + 16` of packed row `p` (`NR >= 16·NV` slots).
                    unsafe {
                        let l = _mm512_maskz_loadu_ps(lanes[v], src.add(16 * v));
                        let h = _mm512_maskz_loadu_ps(hi_lanes, src.wrapping_add(from.ld + 16 * v));
                        let both =
                            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l));
                        bv[v] = _mm512_permutexvar_epi16(order, both);
                        _mm512_storeu_si512(dst.add(v), bv[v]);
                    }
                }
                src = src.wrapping_add(2 * from.ld);
                dst = dst.wrapping_add(NR / 16);
            } else {
                for v in 0..NV {
                    // SAFETY: B holds `kc` rows of `NR >= 16·NV` slots (caller's contract).
                    bv[v] = unsafe { _mm512_loadu_si512(b.add(v)) };
                }
            }
            for r in 0..R {
                // SAFETY: A holds `kc` rows of `MR >= R` slots; a vector of 32 bf16 is a
                // vector of 512 bits like any other.
                let x = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(r)))
                };
                for v in 0..NV {
                    // SAFETY: as above.
                    let y = unsafe { std::mem::transmute::<__m512i, __m512bh>(bv[v]) };
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, y);
                }
            }
            a = a.wrapping_add(MR);
            b = b.wrapping_add(NR / 16);
        }
        macro_rules! rows {
            ($($r:literal)*) => {$(
                if $r < R && $r < t.rows {
                    // SAFETY: `$r < rows`; the pointers of `t` as the caller promised.
                    unsafe { finish_row(t, $r, acc[$r], lanes) };
                }
            )*};
        }
        rows!(0 1 2 3 4 5 6 7);
    }

    /// [`Path::Widen512`](super::Path::Widen512): `t` on [`widen_rn`] monomorphised on its rows
    /// (1, 2, 4 or 8; the packed A rows past `rows` are zero) and vectors of columns.
    ///
    /// # Safety
    /// As `widen_tile` (B rows `NR` slots apart); the CPU must support AVX-512F.
    pub(super) unsafe fn widen_tile(t: &Tile) {
        macro_rules! go {
            ($r:literal) => {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match t.cols.div_ceil(16) {
                        1 => widen_rn::<$r, 1>(t),
                        2 => widen_rn::<$r, 2>(t),
                        _ => widen_rn::<$r, 3>(t),
                    }
                }
            };
        }
        match t.rows {
            1 => go!(1),
            2 => go!(2),
            3 | 4 => go!(4),
            _ => go!(8),
        }
    }

    /// `R` rows × `NV` vectors of 16 columns without `vdpbf16ps`: per K-pair, B's row split into
    /// the fp32 values of its low and high halves (`slot << 16`, `slot & 0xFFFF0000`: exact), each
    /// row's broadcast A slot likewise, and two FMAs per accumulator (a product of two bf16 is
    /// exact in fp32, so an FMA rounds as the portable kernel's multiply and add); then the fp32
    /// kernel's epilogue. Measured on a Xeon (Ice Lake) against the portable kernel compiled for
    /// AVX2: see `bench/RESULTS.md`.
    ///
    /// # Safety
    /// As [`widen_tile`], with `R >= t.rows` and `NV` vectors covering `t.cols`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn widen_rn<const R: usize, const NV: usize>(t: &Tile) {
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        let (mut a, mut b) = (t.a as *const i32, t.b as *const __m512i);
        let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
        let lanes = column_lanes::<NV>(t.cols);
        prefetch_epilogue::<R, NV>(t);
        for _ in 0..t.kc {
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_AHEAD * MR) as *const i8);
            let mut lo = [_mm512_setzero_ps(); NV];
            let mut hi = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                // SAFETY: B holds `kc` rows of `NR >= 16·NV` slots (the caller's contract).
                let slots = unsafe { _mm512_loadu_si512(b.add(v)) };
                lo[v] = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(slots));
                hi[v] = _mm512_castsi512_ps(_mm512_and_si512(slots, high));
            }
            for r in 0..R {
                // SAFETY: A holds `kc` rows of `MR >= R` slots.
                let slot = _mm512_set1_epi32(unsafe { *a.add(r) });
                let x = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(slot));
                let y = _mm512_castsi512_ps(_mm512_and_si512(slot, high));
                for v in 0..NV {
                    acc[r][v] = _mm512_fmadd_ps(x, lo[v], acc[r][v]);
                    acc[r][v] = _mm512_fmadd_ps(y, hi[v], acc[r][v]);
                }
            }
            a = a.wrapping_add(MR);
            b = b.wrapping_add(NR / 16);
        }
        macro_rules! rows {
            ($($r:literal)*) => {$(
                if $r < R && $r < t.rows {
                    // SAFETY: `$r < rows`; the pointers of `t` as the caller promised.
                    unsafe { finish_row(t, $r, acc[$r], lanes) };
                }
            )*};
        }
        rows!(0 1 2 3 4 5 6 7);
    }

    /// A tile of `C` (1–4) columns: one ymm holds the panel's 8 rows (their K-pair slots) of A,
    /// multiplied by a broadcast K-pair of one column of B into that column's accumulator, `P`
    /// accumulators per column (K-pairs `P` apart) to cover the latency of `vdpbf16ps`. The
    /// vector kernel would spend a whole vector of 16 columns on each of these.
    ///
    /// # Safety
    /// As [`tile`]; `C == t.cols`, B rows `t.ldb >= C` slots apart.
    #[target_feature(enable = "avx512f,avx512vl,avx512bf16")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile_narrow<const C: usize, const P: usize>(t: &Tile) {
        let mut acc = [[_mm256_setzero_ps(); P]; C];
        let (a, b) = (t.a, t.b as *const i32);
        let step = |acc: &mut [[__m256; P]; C], kp: usize, p: usize| {
            // SAFETY: `kp < kc`: A holds `kc` rows of `MR = 8` slots, B `kc` rows of `ldb >= C`
            // slots (the caller's contract); a vector of 16 bf16 is a vector of 256 bits.
            unsafe {
                let av = std::mem::transmute::<__m256, __m256bh>(_mm256_loadu_ps(a.add(kp * MR)));
                for c in 0..C {
                    let bv = std::mem::transmute::<__m256i, __m256bh>(_mm256_set1_epi32(
                        *b.add(kp * t.ldb + c),
                    ));
                    acc[c][p] = _mm256_dpbf16_ps(acc[c][p], av, bv);
                }
            }
        };
        let mut k = 0;
        while k + P <= t.kc {
            for p in 0..P {
                step(&mut acc, k + p, p);
            }
            k += P;
        }
        for p in 0..t.kc - k {
            step(&mut acc, k + p, p);
        }
        for c in 0..C {
            let mut sum = acc[c][0];
            for p in 1..P {
                sum = _mm256_add_ps(sum, acc[c][p]);
            }
            let mut rows = [0.0f32; 8];
            // SAFETY: `rows` holds 8 floats.
            unsafe { _mm256_storeu_ps(rows.as_mut_ptr(), sum) };
            for (r, &v) in rows.iter().enumerate().take(t.rows) {
                // SAFETY: (r, c) lies in the tile (`r < rows`, `c < cols = C`), inside C and
                // the residual (the caller's contract).
                unsafe {
                    let dst = t.c.add(r * t.ldc + c);
                    let mut x = v;
                    if t.load_c {
                        x += *dst;
                    }
                    if let Some(f) = t.finish {
                        x = finish_one(&f, x, r, c, t.ldc);
                    }
                    *dst = x;
                }
            }
        }
    }
}
