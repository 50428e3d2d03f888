//! Winograd F(4×4, 3×3) for dense 3×3 stride-1 convs: each 4×4 block of output pixels is computed
//! from a 6×6 input tile with 36 element-wise products in place of 144 multiply-adds per channel pair.
//!
//! With `Bᵀ` (6×6), `G` (6×3) and `Aᵀ` (4×6) the transforms of the interpolation points
//! 0, ±1, ±2, ∞, one output tile of channel `k` is
//! `Y = Aᵀ [ Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B) ] A`, so the 36 positions `ξ` of the transformed tile
//! are 36 independent GEMMs `M_ξ[k, t] = Σ_c U_ξ[k, c] · V_ξ[c, t]` over the tiles `t`:
//! - the weights `U_ξ = (G g Gᵀ)_ξ` are transformed (in f64) and packed into the GEMM's `MR`-row
//!   panels at compile time ([`pack`]), `36 · packed_a_len(out_c, in_c)` floats;
//! - the input is transformed a block of tile rows at a time ([`block_rows`]: the block's `V` and
//!   `M` stay in cache), one input channel per task, into `V_ξ` as plain rows (`[ξ][c][t]`);
//! - the 36 GEMMs run on the packed GEMM (`gemm::run`, every ISA tier, threads over its tasks);
//! - the output transform `Aᵀ M A` runs one output channel per task and applies the fused
//!   [`Epilogue`] (bias, residual, activation) as it writes the output's rows; tiles past the
//!   output's right or bottom edge (any H×W) are computed from zero padding and not written.
//!
//! The transforms are plain loops over tiles (one tile row's for the input transform, whose reads
//! walk the row at stride 4; the whole block's for the output transform, contiguous in `M`),
//! compiled once per tier (`#[target_feature]` wrappers: AVX-512, AVX2+FMA, and portable), where
//! the compiler vectorises them across tiles; the GEMMs are where the time goes. (A whole-block
//! input transform, through a copy that drops one junk tile per row, profiled slower: 30% of a
//! 28×28 layer's time against 17%.)
//!
//! # Error bound
//! Let `u = 2⁻²⁴`, `X = max|x|` over the input, `W = max|w|` over the weights and `γ_n =
//! n·u / (1 − n·u)`. Row `ρ` of `Bᵀ` has absolute sum `b_ρ = (10, 10, 10, 6, 6, 10)`, row `ρ` of
//! `G` `g_ρ = (1/4, 1/2, 1/2, 7/24, 7/24, 1)`, so `|V_ρσ| ≤ X·b_ρ·b_σ` and `|U_ρσ| ≤ W·g_ρ·g_σ`,
//! and every intermediate of output `(a, b)` is bounded through
//! `β_a = Σ_ρ |Aᵀ_aρ|·g_ρ·b_ρ = (16, 17, 24, 48)`, `β = 48`. Each step rounds with relative error
//! at most `u` per operation: the weight transform once (computed in f64), the input transform two
//! passes of at most 4 operations each, the GEMM `in_c` (FMA) accumulations, the output
//! transform two passes of at most 6. Summing the componentwise bounds,
//!
//! `|ŷ − y| ≤ γ_{in_c + 24} · in_c · β² · X · W`  (`β² = 2304`),
//!
//! against `γ_{9·in_c} · 9·in_c · X · W` for the direct sum: the worst case grows 256-fold, which is
//! the price of F(4×4, 3×3). Typical errors are far smaller (the rounding errors of the 36
//! products cancel like random signs); the property tests check this bound, and
//! `bench/RESULTS.md` records the error on ResNet-18 layers relative to their outputs.

use super::gemm::{self, BSource, BiasAlong, Gemm, Problem};
use super::{
    Activation, ConvArgs, ConvShape, Epilogue, KernelError, SharedOut, check_len, check_min_len,
};
use crate::exec::Ctx;
use crate::exec::isa::Isa;

/// Output pixels per tile side.
const TILE: usize = 4;
/// Input pixels per tile side (`TILE + 2`).
const ALPHA: usize = 6;
/// Positions of a transformed tile: one GEMM each.
const POSITIONS: usize = ALPHA * ALPHA;

/// `β²` of the module doc's error bound.
pub const ERROR_GROWTH: f64 = 2304.0;

/// Floats of `V` and `M` one block may hold (4 MiB): a block's transformed input and GEMM output
/// stay in the caches between the three steps, while its GEMMs still have many columns.
const BLOCK_FLOATS: usize = 1 << 20;

/// Whether Winograd F(4×4, 3×3) can run `shape`: an ungrouped 3×3 conv at stride 1, dilation 1,
/// any padding and size, with channels (its GEMMs write nothing for an empty sum).
pub fn supports(s: &ConvShape) -> bool {
    s.check().is_ok()
        && s.in_c > 0
        && s.out_c > 0
        && s.kernel == [3, 3]
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.group == 1
}

/// Whether the compiler should run `shape` (at `batch`, on `threads` threads) by Winograd rather
/// than im2col: the cost model of [`costs`], at least 16 channels each way.
pub fn preferred(s: &ConvShape, batch: usize, threads: usize) -> bool {
    if !supports(s) || s.in_c < 16 || s.out_c < 16 {
        return false;
    }
    let [im2col, wino] = costs(s, batch, threads);
    wino < im2col
}

/// Estimated times (in multiply-adds at the GEMM's peak) of `[im2col, Winograd]` for `shape`: GEMM
/// multiply-adds (9 per output pixel and channel pair for im2col, 36 per tile for Winograd) at a
/// rate that falls with the GEMM's columns per thread (`n / (n + GEMM_HALF_COLS)`), plus the
/// packed weights read once per call (9 or 36 floats per channel pair, [`WEIGHT_COST`] each: on
/// 7×7 maps Winograd's 4× larger weights cost more than its saved multiply-adds), plus
/// Winograd's transforms at [`TRANSFORM_COST`] per transformed float.
pub fn costs(s: &ConvShape, batch: usize, threads: usize) -> [f64; 2] {
    let (tx, ty) = tiles(s);
    let threads = threads.max(1) as f64;
    let pairs = (s.in_c * s.out_c) as f64;
    let rate = |n: f64| {
        let per_thread = n / threads;
        per_thread / (per_thread + GEMM_HALF_COLS)
    };
    let pixels = (batch * s.out_h * s.out_w) as f64;
    let n_block = (block_rows(s, batch) * tx) as f64;
    let tiles = (batch * tx * ty) as f64;
    let im2col = 9.0 * pairs * (pixels / rate(pixels) + WEIGHT_COST);
    let wino = 36.0 * pairs * (tiles / rate(n_block) + WEIGHT_COST)
        + TRANSFORM_COST * 36.0 * tiles * (s.in_c + s.out_c) as f64;
    [im2col, wino]
}

/// The columns per thread at which the packed GEMM runs at half its peak rate, in the cost model
/// of [`costs`]. The three constants were fitted to `examples/bench_winograd.rs` on ResNet-18 and
/// VGG-11 layers (2026-12-06, `bench/RESULTS.md`): Winograd measured 0.23–0.83× im2col's time
/// down to 10×10 maps of 256 channels, 1.2–2.5× on 7×7 and 5×5 maps of 512 and on 16 channels.
const GEMM_HALF_COLS: f64 = 8.0;

/// Multiply-adds one transformed float (input or output) costs, in the cost model of [`costs`].
const TRANSFORM_COST: f64 = 24.0;

/// Multiply-adds one packed weight float read from memory costs, in the cost model of [`costs`].
const WEIGHT_COST: f64 = 10.0;

/// Tiles per tile row and tile rows per image.
fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.out_w.div_ceil(TILE), s.out_h.div_ceil(TILE))
}

/// Tile rows (over the whole batch) transformed and multiplied per block: as many as keep the
/// block's `V` and `M` within [`BLOCK_FLOATS`], at least one.
fn block_rows(s: &ConvShape, batch: usize) -> usize {
    let (tx, ty) = tiles(s);
    let per_row = POSITIONS * (s.in_c + s.out_c) * tx;
    (BLOCK_FLOATS / per_row.max(1)).clamp(1, (batch * ty).max(1))
}

/// Floats of one worker's transform buffers for blocks of `n` tiles: for the input transform a
/// padded input row block and its vertical transform, `2 · 6` rows of `4·tx + 4`; for the output
/// transform the block's `Aᵀ M` (24 rows of `n`), `Aᵀ M A` (16 rows of `n`) and one output row.
fn worker_len(s: &ConvShape, n: usize) -> usize {
    let (tx, _) = tiles(s);
    (2 * ALPHA * (TILE * tx + TILE)).max((TILE * ALPHA + TILE * TILE) * n + TILE * tx)
}

/// Floats [`pack`] returns.
pub fn packed_len(s: &ConvShape) -> usize {
    POSITIONS * gemm::packed_a_len(s.out_c, s.in_c)
}

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ` of ONNX-layout weights `[out_c, in_c, 3, 3]`,
/// computed in f64, each `ξ` packed as the GEMM's A (`out_c × in_c`). The caller has checked
/// [`supports`] and the weight's length.
pub(crate) fn pack(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let (m, k) = (s.out_c, s.in_c);
    // `[ξ][oc][ic]`, row-major per ξ.
    let mut u = vec![0.0f32; POSITIONS * m * k];
    const G: [[f64; 3]; ALPHA] = [
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    for oc in 0..m {
        for ic in 0..k {
            let g = &weight[(oc * k + ic) * 9..][..9];
            // G g (6×3), then (G g) Gᵀ (6×6).
            let mut gg = [[0.0f64; 3]; ALPHA];
            for (r, row) in gg.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|j| G[r][j] * g[j * 3 + c] as f64).sum();
                }
            }
            for r in 0..ALPHA {
                for c in 0..ALPHA {
                    let v: f64 = (0..3).map(|j| gg[r][j] * G[c][j]).sum();
                    u[((r * ALPHA + c) * m + oc) * k + ic] = v as f32;
                }
            }
        }
    }
    let mut packed = Vec::with_capacity(packed_len(s));
    for xi in 0..POSITIONS {
        gemm::pack_a(&u[xi * m * k..(xi + 1) * m * k], m, k, k, &mut packed);
    }
    packed
}

/// Scratch floats [`run`] needs: the block's `V` and `M`, the workers' transform buffers and the
/// GEMM's scratch.
pub fn scratch_len(s: &ConvShape, batch: usize, threads: usize) -> usize {
    let (tx, ty) = tiles(s);
    let rows = block_rows(s, batch);
    let n = rows * tx;
    let last = (batch * ty) % rows * tx;
    let g = |n: usize| gemm::scratch_len(s.out_c, n, s.in_c, POSITIONS, threads);
    POSITIONS * (s.in_c + s.out_c) * n
        + threads.max(1) * worker_len(s, n)
        + g(n).max(if last > 0 { g(last) } else { 0 })
}

/// The conv of `args` with its fused epilogue (see the module doc). `args.packed` comes from
/// [`pack`], `args.scratch` holds [`scratch_len`] floats.
pub(crate) fn run(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let ConvArgs {
        shape: s,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let threads = ctx.threads;
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv packed weight", packed_len(&s), packed.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    epilogue.check(batch, s.out_c, s.out_h * s.out_w)?;
    check_min_len(
        "conv scratch",
        scratch_len(&s, batch, threads.count()),
        scratch.len(),
    )?;
    if batch == 0 {
        return Ok(());
    }
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        Isa::Generic
    };
    let ctx = &Ctx { isa, threads };
    let (tx, ty) = tiles(&s);
    let rows = block_rows(&s, batch);
    let total_rows = batch * ty;
    let full_n = rows * tx;
    let (v, rest) = scratch.split_at_mut(POSITIONS * s.in_c * full_n);
    let (m_buf, rest) = rest.split_at_mut(POSITIONS * s.out_c * full_n);
    let wl = worker_len(&s, full_n);
    let (workers, gemm_scratch) = rest.split_at_mut(threads.count() * wl);
    let a_len = gemm::packed_a_len(s.out_c, s.in_c);
    let mut row0 = 0;
    while row0 < total_rows {
        let nrows = rows.min(total_rows - row0);
        let n = nrows * tx;
        let block = Block {
            s: &s,
            row0,
            nrows,
            tx,
            ty,
            n,
        };
        input_transform(
            ctx,
            &block,
            input,
            &mut v[..POSITIONS * s.in_c * n],
            workers,
            wl,
        );
        let problems: [Problem; POSITIONS] = std::array::from_fn(|xi| Problem {
            a: &packed[xi * a_len..(xi + 1) * a_len],
            b: BSource::Rows {
                data: &v[xi * s.in_c * n..(xi + 1) * s.in_c * n],
                ld: n,
            },
            c: xi * s.out_c * n,
            bias: None,
        });
        let g = Gemm {
            m: s.out_c,
            n,
            k: s.in_c,
            ldc: n,
            bias_along: BiasAlong::Rows,
            residual: None,
            activation: Activation::None,
        };
        let m_block = &mut m_buf[..POSITIONS * s.out_c * n];
        gemm::run(ctx, &g, &problems, m_block, gemm_scratch)?;
        output_transform(ctx, &block, m_block, &epilogue, output, (workers, wl));
        row0 += nrows;
    }
    Ok(())
}

/// One block of tile rows: global tile rows `row0..row0 + nrows` (row `r` is tile row `r % ty` of
/// image `r / ty`), `n = nrows · tx` tiles, tile `j` of the block at column `j` of `V` and `M`.
struct Block<'a> {
    s: &'a ConvShape,
    row0: usize,
    nrows: usize,
    tx: usize,
    ty: usize,
    n: usize,
}

/// `V[ξ][c][j]` for every input channel `c` and tile `j` of the block, one channel per task.
fn input_transform(
    ctx: &Ctx,
    b: &Block,
    input: &[f32],
    v: &mut [f32],
    workers: &mut [f32],
    wl: usize,
) {
    let s = b.s;
    let v_ptr = SharedOut(v.as_mut_ptr());
    let w_ptr = SharedOut(workers.as_mut_ptr());
    let isa = ctx.isa;
    ctx.threads.run_indexed(s.in_c, &|c, worker| {
        // SAFETY: worker `worker`'s slot of `workers` (`count · wl` floats, split off by `run`) is
        // used by one task at a time (`run_indexed`'s contract).
        let buf = unsafe { std::slice::from_raw_parts_mut(w_ptr.ptr().add(worker * wl), wl) };
        for r in 0..b.nrows {
            let g = b.row0 + r;
            let (img, ty) = (g / b.ty, g % b.ty);
            let plane = &input[(img * s.in_c + c) * s.in_h * s.in_w..][..s.in_h * s.in_w];
            // SAFETY: row `c` of every `V_ξ` (`ξ·in_c·n + c·n`, `n` floats), columns
            // `r·tx..(r + 1)·tx`, is written by this task alone; `v` holds `36·in_c·n` floats.
            let dst = |xi: usize| unsafe {
                std::slice::from_raw_parts_mut(
                    v_ptr.ptr().add((xi * s.in_c + c) * b.n + r * b.tx),
                    b.tx,
                )
            };
            let outs: VRows =
                std::array::from_fn(|rho| std::array::from_fn(|sigma| dst(rho * ALPHA + sigma)));
            let row = InputRow {
                s,
                plane,
                y0: (ty * TILE) as isize - s.pads[0] as isize,
                tx: b.tx,
            };
            input_row(isa, &row, buf, outs);
        }
    });
}

/// The 36 destination rows of a tile row's transformed input, `[ρ][σ]`: `V_ξ` with `ξ = 6ρ + σ`.
type VRows<'a> = [[&'a mut [f32]; ALPHA]; ALPHA];

/// One tile row of one input plane: its six input rows start at `y0` (negative in the padding).
struct InputRow<'a> {
    s: &'a ConvShape,
    plane: &'a [f32],
    y0: isize,
    tx: usize,
}

/// [`input_row_body`] on `isa`'s instruction set.
fn input_row(isa: Isa, row: &InputRow, buf: &mut [f32], outs: VRows) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run` only passes a tier this CPU supports.
        Isa::Avx512 => unsafe { x86::input_row_avx512(row, buf, outs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::input_row_avx2(row, buf, outs) },
        _ => input_row_body(row, buf, outs),
    }
}

/// `Bᵀ d B` of every tile of one tile row of one channel: the six input rows copied with their
/// zero padding into `buf`, transformed vertically (`Bᵀ d`, contiguous over x), then horizontally
/// (`· B`, each tile's columns `4j..4j + 6`), into `outs[ξ][j]`.
#[inline(always)]
fn input_row_body(row: &InputRow, buf: &mut [f32], outs: VRows) {
    let s = row.s;
    let tx = row.tx;
    let wp = TILE * tx + TILE;
    let (d, t) = buf.split_at_mut(ALPHA * wp);
    let x0 = s.pads[1];
    for (r, line) in d.chunks_exact_mut(wp).enumerate() {
        let y = row.y0 + r as isize;
        line.fill(0.0);
        if y >= 0 && (y as usize) < s.in_h {
            // Input column `x` lands at `x + pad_left`; columns past the buffer are never read by
            // a stored output.
            if x0 < wp {
                let src = &row.plane[y as usize * s.in_w..][..s.in_w];
                let len = s.in_w.min(wp - x0);
                line[x0..x0 + len].copy_from_slice(&src[..len]);
            }
        }
    }
    {
        let (d0, rest) = d.split_at(wp);
        let (d1, rest) = rest.split_at(wp);
        let (d2, rest) = rest.split_at(wp);
        let (d3, rest) = rest.split_at(wp);
        let (d4, d5) = rest.split_at(wp);
        let (t0, rest) = t.split_at_mut(wp);
        let (t1, rest) = rest.split_at_mut(wp);
        let (t2, rest) = rest.split_at_mut(wp);
        let (t3, rest) = rest.split_at_mut(wp);
        let (t4, t5) = rest.split_at_mut(wp);
        let t5 = &mut t5[..wp];
        for x in 0..wp {
            let (a0, a1, a2, a3, a4, a5) = (d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]);
            t0[x] = 4.0 * a0 - 5.0 * a2 + a4;
            t1[x] = -4.0 * (a1 + a2) + (a3 + a4);
            t2[x] = 4.0 * (a1 - a2) + (a4 - a3);
            t3[x] = 2.0 * (a3 - a1) + (a4 - a2);
            t4[x] = 2.0 * (a1 - a3) + (a4 - a2);
            t5[x] = 4.0 * a1 - 5.0 * a3 + a5;
        }
    }
    for (line, [o0, o1, o2, o3, o4, o5]) in t.chunks_exact(wp).zip(outs) {
        let (o0, o1, o2, o3, o4, o5) = (
            &mut o0[..tx],
            &mut o1[..tx],
            &mut o2[..tx],
            &mut o3[..tx],
            &mut o4[..tx],
            &mut o5[..tx],
        );
        for (j, (a, b)) in line
            .chunks_exact(4)
            .zip(line[4..].chunks_exact(4))
            .enumerate()
        {
            let (a0, a1, a2, a3, a4, a5) = (a[0], a[1], a[2], a[3], b[0], b[1]);
            o0[j] = 4.0 * a0 - 5.0 * a2 + a4;
            o1[j] = -4.0 * (a1 + a2) + (a3 + a4);
            o2[j] = 4.0 * (a1 - a2) + (a4 - a3);
            o3[j] = 2.0 * (a3 - a1) + (a4 - a2);
            o4[j] = 2.0 * (a1 - a3) + (a4 - a2);
            o5[j] = 4.0 * a1 - 5.0 * a3 + a5;
        }
    }
}

/// `Aᵀ M A` for every output channel and tile of the block, one output channel per task, with the
/// epilogue, into the output planes. `workers` holds one buffer of the given length per thread.
fn output_transform(
    ctx: &Ctx,
    b: &Block,
    m: &[f32],
    epilogue: &Epilogue,
    output: &mut [f32],
    (workers, wl): (&mut [f32], usize),
) {
    let s = b.s;
    let n = b.n;
    let out_ptr = SharedOut(output.as_mut_ptr());
    let w_ptr = SharedOut(workers.as_mut_ptr());
    let isa = ctx.isa;
    let plane_len = s.out_h * s.out_w;
    ctx.threads.run_indexed(s.out_c, &|k, worker| {
        // SAFETY: as in `input_transform`.
        let buf = unsafe { std::slice::from_raw_parts_mut(w_ptr.ptr().add(worker * wl), wl) };
        let (y, rest) = buf.split_at_mut(TILE * TILE * n);
        let (t, line_buf) = rest.split_at_mut(TILE * ALPHA * n);
        let line_buf = &mut line_buf[..TILE * b.tx];
        let ms: [&[f32]; POSITIONS] = std::array::from_fn(|xi| &m[(xi * s.out_c + k) * n..][..n]);
        output_block(isa, &ms, y, t);
        let y = &*y;
        for r in 0..b.nrows {
            let g = b.row0 + r;
            let (img, ty) = (g / b.ty, g % b.ty);
            let rows_out = TILE.min(s.out_h - ty * TILE);
            let offset = (img * s.out_c + k) * plane_len + ty * TILE * s.out_w;
            // SAFETY: output rows `4·ty..4·ty + rows_out` of plane `(img, k)` are written by this
            // task alone (one task per channel, each tile row in one block once).
            let dst = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.ptr().add(offset), rows_out * s.out_w)
            };
            let row_fin = RowFinish {
                epilogue,
                channel: k,
                residual_at: offset,
                out_w: s.out_w,
            };
            for (a, line) in dst.chunks_exact_mut(s.out_w).enumerate() {
                // Row `a` of the tile row: pixel `4i + b` is `y[a][b]` of tile `i`.
                let ys: [&[f32]; TILE] =
                    std::array::from_fn(|bb| &y[(a * TILE + bb) * n + r * b.tx..][..b.tx]);
                for (i, px) in line_buf.chunks_exact_mut(TILE).enumerate() {
                    px[0] = ys[0][i];
                    px[1] = ys[1][i];
                    px[2] = ys[2][i];
                    px[3] = ys[3][i];
                }
                finish_row(&row_fin, a, &line_buf[..s.out_w], line);
            }
        }
    });
}

/// [`output_block_body`] on `isa`'s instruction set.
fn output_block(isa: Isa, ms: &[&[f32]; POSITIONS], y: &mut [f32], t: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run` only passes a tier this CPU supports.
        Isa::Avx512 => unsafe { x86::output_block_avx512(ms, y, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::output_block_avx2(ms, y, t) },
        _ => output_block_body(ms, y, t),
    }
}

/// `Aᵀ M A` of every tile of the block at once (so the loops run over all `n` tiles, not one tile
/// row's few): `ms[ξ][j]` the 36 positions of tile `j`; vertically (`Aᵀ M`, into `t` as
/// `[σ][a][j]`), then horizontally (`· A`), into `y` as `[a][b][j]`.
#[inline(always)]
fn output_block_body(ms: &[&[f32]; POSITIONS], y: &mut [f32], t: &mut [f32]) {
    let n = ms[0].len();
    for (sigma, rows) in t.chunks_exact_mut(TILE * n).take(ALPHA).enumerate() {
        let m: [&[f32]; ALPHA] = std::array::from_fn(|rho| &ms[rho * ALPHA + sigma][..n]);
        let (t0, rest) = rows.split_at_mut(n);
        let (t1, rest) = rest.split_at_mut(n);
        let (t2, t3) = rest.split_at_mut(n);
        let t3 = &mut t3[..n];
        for j in 0..n {
            let (m0, m1, m2, m3, m4, m5) = (m[0][j], m[1][j], m[2][j], m[3][j], m[4][j], m[5][j]);
            let (p12, d12, p34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
            t0[j] = m0 + p12 + p34;
            t1[j] = d12 + 2.0 * d34;
            t2[j] = p12 + 4.0 * p34;
            t3[j] = d12 + 8.0 * d34 + m5;
        }
    }
    let t = &*t;
    for (a, rows) in y.chunks_exact_mut(TILE * n).take(TILE).enumerate() {
        let q: [&[f32]; ALPHA] = std::array::from_fn(|sigma| &t[(sigma * TILE + a) * n..][..n]);
        let (y0, rest) = rows.split_at_mut(n);
        let (y1, rest) = rest.split_at_mut(n);
        let (y2, y3) = rest.split_at_mut(n);
        let y3 = &mut y3[..n];
        for j in 0..n {
            let (m0, m1, m2, m3, m4, m5) = (q[0][j], q[1][j], q[2][j], q[3][j], q[4][j], q[5][j]);
            let (p12, d12, p34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
            y0[j] = m0 + p12 + p34;
            y1[j] = d12 + 2.0 * d34;
            y2[j] = p12 + 4.0 * p34;
            y3[j] = d12 + 8.0 * d34 + m5;
        }
    }
}

/// Where the rows of one tile row of one output channel go.
struct RowFinish<'a, 'e> {
    epilogue: &'a Epilogue<'e>,
    channel: usize,
    /// Offset of the tile row's first output element (in the output and residual).
    residual_at: usize,
    out_w: usize,
}

/// `line = act(src + bias + residual)` for row `a` of the tile row.
#[inline]
fn finish_row(f: &RowFinish, a: usize, src: &[f32], line: &mut [f32]) {
    let bias = f.epilogue.bias.map_or(0.0, |b| b[f.channel]);
    match f.epilogue.residual {
        Some(res) => {
            let res = &res[f.residual_at + a * f.out_w..][..line.len()];
            for ((o, &x), &r) in line.iter_mut().zip(src).zip(res) {
                *o = x + bias + r;
            }
        }
        None => {
            for (o, &x) in line.iter_mut().zip(src) {
                *o = x + bias;
            }
        }
    }
    match f.epilogue.activation {
        Activation::None => {}
        Activation::Relu => {
            for o in line.iter_mut() {
                *o = if *o < 0.0 { 0.0 } else { *o };
            }
        }
        act => {
            for o in line.iter_mut() {
                *o = act.apply(*o);
            }
        }
    }
}

/// The transforms compiled for the x86-64 SIMD tiers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn input_row_avx512(row: &InputRow, buf: &mut [f32], outs: VRows) {
        input_row_body(row, buf, outs);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn input_row_avx2(row: &InputRow, buf: &mut [f32], outs: VRows) {
        input_row_body(row, buf, outs);
    }

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn output_block_avx512(
        ms: &[&[f32]; POSITIONS],
        y: &mut [f32],
        t: &mut [f32],
    ) {
        output_block_body(ms, y, t);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn output_block_avx2(ms: &[&[f32]; POSITIONS], y: &mut [f32], t: &mut [f32]) {
        output_block_body(ms, y, t);
    }
}
