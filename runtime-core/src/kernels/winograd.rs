//! Winograd convolution for dense 3×3 stride-1 convs, in two sizes ([`Variant`]):
//! - F(2×2, 3×3): each 2×2 block of output pixels from a 4×4 input tile, 16 element-wise products
//!   in place of 36 multiply-adds per channel pair (2.25× fewer), at a worst-case error 7× the
//!   direct sum's (the bound below; measured on ResNet layers 1.1–2.4× the implicit GEMM's,
//!   `bench/RESULTS.md`). The compiler's default where its cost model expects it to be faster.
//! - F(4×4, 3×3): each 4×4 block from a 6×6 tile, 36 products in place of 144 (4× fewer), at a
//!   worst-case error 256× the direct sum's; opt-in (`RESNEXT_WINOGRAD`, see `select_kernels`).
//!
//! With `Bᵀ` (α×α), `G` (α×3) and `Aᵀ` (m×α) the transforms of the interpolation points
//! (0, ±1, ∞ for m = 2; 0, ±1, ±2, ∞ for m = 4; α = m + 2), one output tile of channel `k` is
//! `Y = Aᵀ [ Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B) ] A`, so the α² positions `ξ` of the transformed tile
//! are α² independent GEMMs `M_ξ[k, t] = Σ_c U_ξ[k, c] · V_ξ[c, t]` over the tiles `t`:
//! - the weights `U_ξ = (G g Gᵀ)_ξ` are transformed (in f64) and packed into the GEMM's `MR`-row
//!   panels at compile time ([`pack`]), `α² · packed_a_len(out_c, in_c)` floats;
//! - the input is transformed a block of tile rows at a time (`block_rows`: the block's `V` and
//!   `M` stay in cache), one input channel per task, into `V_ξ` as plain rows (`[ξ][c][t]`);
//! - the α² GEMMs run on the packed GEMM (`gemm::run`, every ISA tier, threads over its tasks);
//! - the output transform `Aᵀ M A` runs one output channel per task and applies the fused
//!   [`Epilogue`] (bias, residual, activation) as it writes the output's rows; tiles past the
//!   output's right or bottom edge (any H×W) are computed from zero padding and not written.
//!
//! The transforms are plain loops over tiles (one tile row's for the input transform, whose reads
//! walk the row at stride m; the whole block's for the output transform, contiguous in `M`),
//! compiled once per variant and tier (`#[target_feature]` wrappers: AVX-512, AVX2+FMA, and
//! portable), where the compiler vectorises them across tiles; the GEMMs are where the time goes.
//! (A whole-block input transform, through a copy that drops one junk tile per row, profiled
//! slower: 30% of a 28×28 layer's time against 17%.)
//!
//! # Error bound
//! Let `u = 2⁻²⁴`, `X = max|x|` over the input, `W = max|w|` over the weights and `γ_n =
//! n·u / (1 − n·u)`. Let `b_ρ` be the absolute sum of row `ρ` of `Bᵀ` and `g_ρ` that of row `ρ`
//! of `G`, so `|V_ρσ| ≤ X·b_ρ·b_σ` and `|U_ρσ| ≤ W·g_ρ·g_σ`; every intermediate of output
//! `(a, b)` is then bounded through `β_a = Σ_ρ |Aᵀ_aρ|·g_ρ·b_ρ`, and `β = max_a β_a`:
//! - F(2×2): `b = (2, 2, 2, 2)`, `g = (1, 3/2, 3/2, 1)`, `β_a = (8, 8)`, `β² = 64`;
//! - F(4×4): `b = (10, 10, 10, 6, 6, 10)`, `g = (1/4, 1/2, 1/2, 7/24, 7/24, 1)`,
//!   `β_a = (16, 17, 24, 48)`, `β² = 2304`.
//!
//! Each step rounds with relative error at most `u` per operation: the weight transform once
//! (computed in f64), the input transform two passes (of at most 1 operation each for F(2×2), 4
//! for F(4×4)), the GEMM `in_c` (FMA) accumulations, the output transform two passes (at most 2,
//! 6). Summing the componentwise bounds, with `s` = 8 for F(2×2) and 24 for F(4×4)
//! ([`Variant::rounding_steps`]),
//!
//! `|ŷ − y| ≤ γ_{in_c + s} · in_c · β² · X · W`  ([`Variant::error_growth`] is `β²`),
//!
//! against `γ_{9·in_c} · 9·in_c · X · W` for the direct sum: the worst case grows 7-fold for
//! F(2×2) and 256-fold for F(4×4). Typical errors are far smaller (the rounding errors of the
//! products cancel like random signs): on ResNet layers with He-initialised weights F(2×2)'s
//! error comes out 1.1–2.4× the implicit GEMM's and F(4×4)'s 17–53× (`bench/RESULTS.md`). The
//! property tests check this bound.

use super::elementwise::Lanes;
use super::gemm::{self, BSource, BiasAlong, Gemm, Problem};
use super::{
    Activation, ConvArgs, ConvShape, Epilogue, KernelError, SharedOut, check_len, check_min_len,
};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use crate::exec::threads::Threads;
use std::sync::{Mutex, OnceLock};

/// The two Winograd algorithms: F(m×m, 3×3) for output tiles of side m = 2 or 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// F(2×2, 3×3): 16 products per 2×2 output tile.
    F2,
    /// F(4×4, 3×3): 36 products per 4×4 output tile.
    F4,
}

impl Variant {
    /// Output pixels per tile side (m).
    pub fn tile(self) -> usize {
        match self {
            Variant::F2 => F2::TILE,
            Variant::F4 => F4::TILE,
        }
    }

    /// Positions of a transformed tile (α²): GEMMs per block.
    pub fn positions(self) -> usize {
        let alpha = self.tile() + 2;
        alpha * alpha
    }

    /// `β²` of the module doc's error bound.
    pub fn error_growth(self) -> f64 {
        match self {
            Variant::F2 => 64.0,
            Variant::F4 => 2304.0,
        }
    }

    /// `s` of the module doc's error bound: rounding steps besides the GEMM's `in_c`.
    pub fn rounding_steps(self) -> usize {
        match self {
            Variant::F2 => 8,
            Variant::F4 => 24,
        }
    }
}

/// Largest α (input tile side) of the variants.
const MAX_ALPHA: usize = 6;
/// Largest output tile side of the variants.
const MAX_TILE: usize = 4;
/// Largest number of positions (α²) of the variants.
const MAX_POSITIONS: usize = MAX_ALPHA * MAX_ALPHA;

/// One variant's transforms, applied by the generic loops below. Arrays are sized for the
/// largest variant; entries past `ALPHA` (or `TILE`) are neither read nor written.
trait Points {
    /// The variant these are the transforms of.
    const VARIANT: Variant;
    /// Output pixels per tile side.
    const TILE: usize;
    /// Input pixels per tile side.
    const ALPHA: usize = Self::TILE + 2;
    /// Positions of a transformed tile: one GEMM each.
    const POSITIONS: usize = Self::ALPHA * Self::ALPHA;
    /// `G` (α×3).
    const G: &'static [[f64; 3]];
    /// `Bᵀ d` of one column `d` of α input values.
    fn input(d: [f32; MAX_ALPHA]) -> [f32; MAX_ALPHA];
    /// `Aᵀ m` of one column `m` of α transformed values.
    fn output(m: [f32; MAX_ALPHA]) -> [f32; MAX_TILE];
    /// [`Points::input`] of every column of the α rows of `len` floats in `d`, into the α rows
    /// of `t`. (Per variant, with its rows split into named slices: so the compiler sees that
    /// they do not overlap and vectorises the loop.)
    fn input_rows(d: &[f32], t: &mut [f32], len: usize);
    /// [`Points::output`] of every column of the α rows `m` (of `len` floats), into the `m`
    /// rows of `out`.
    fn output_rows(m: &[&[f32]; MAX_ALPHA], out: &mut [f32], len: usize);
}

/// Points 0, ±1, ∞.
struct F2;

impl Points for F2 {
    const VARIANT: Variant = Variant::F2;
    const TILE: usize = 2;
    const G: &'static [[f64; 3]] = &[
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input(d: [f32; MAX_ALPHA]) -> [f32; MAX_ALPHA] {
        let [d0, d1, d2, d3, ..] = d;
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3, 0.0, 0.0]
    }

    #[inline(always)]
    fn output(m: [f32; MAX_ALPHA]) -> [f32; MAX_TILE] {
        let [m0, m1, m2, m3, ..] = m;
        let d12 = m1 - m2;
        [m0 + m1 + m2, d12 - m3, 0.0, 0.0]
    }

    #[inline(always)]
    fn input_rows(d: &[f32], t: &mut [f32], len: usize) {
        let (d0, rest) = d.split_at(len);
        let (d1, rest) = rest.split_at(len);
        let (d2, d3) = rest.split_at(len);
        let d3 = &d3[..len];
        let (t0, rest) = t.split_at_mut(len);
        let (t1, rest) = rest.split_at_mut(len);
        let (t2, t3) = rest.split_at_mut(len);
        let t3 = &mut t3[..len];
        for x in 0..len {
            let [o0, o1, o2, o3, ..] = Self::input([d0[x], d1[x], d2[x], d3[x], 0.0, 0.0]);
            (t0[x], t1[x], t2[x], t3[x]) = (o0, o1, o2, o3);
        }
    }

    #[inline(always)]
    fn output_rows(m: &[&[f32]; MAX_ALPHA], out: &mut [f32], len: usize) {
        let (m0, m1, m2, m3) = (&m[0][..len], &m[1][..len], &m[2][..len], &m[3][..len]);
        let (y0, y1) = out.split_at_mut(len);
        let y1 = &mut y1[..len];
        for j in 0..len {
            let [o0, o1, ..] = Self::output([m0[j], m1[j], m2[j], m3[j], 0.0, 0.0]);
            (y0[j], y1[j]) = (o0, o1);
        }
    }
}

/// Points 0, ±1, ±2, ∞.
struct F4;

impl Points for F4 {
    const VARIANT: Variant = Variant::F4;
    const TILE: usize = 4;
    const G: &'static [[f64; 3]] = &[
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input(d: [f32; MAX_ALPHA]) -> [f32; MAX_ALPHA] {
        let [a0, a1, a2, a3, a4, a5] = d;
        [
            4.0 * a0 - 5.0 * a2 + a4,
            -4.0 * (a1 + a2) + (a3 + a4),
            4.0 * (a1 - a2) + (a4 - a3),
            2.0 * (a3 - a1) + (a4 - a2),
            2.0 * (a1 - a3) + (a4 - a2),
            4.0 * a1 - 5.0 * a3 + a5,
        ]
    }

    #[inline(always)]
    fn output(m: [f32; MAX_ALPHA]) -> [f32; MAX_TILE] {
        let [m0, m1, m2, m3, m4, m5] = m;
        let (p12, d12, p34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        [
            m0 + p12 + p34,
            d12 + 2.0 * d34,
            p12 + 4.0 * p34,
            d12 + 8.0 * d34 + m5,
        ]
    }

    #[inline(always)]
    fn input_rows(d: &[f32], t: &mut [f32], len: usize) {
        let (d0, rest) = d.split_at(len);
        let (d1, rest) = rest.split_at(len);
        let (d2, rest) = rest.split_at(len);
        let (d3, rest) = rest.split_at(len);
        let (d4, d5) = rest.split_at(len);
        let d5 = &d5[..len];
        let (t0, rest) = t.split_at_mut(len);
        let (t1, rest) = rest.split_at_mut(len);
        let (t2, rest) = rest.split_at_mut(len);
        let (t3, rest) = rest.split_at_mut(len);
        let (t4, t5) = rest.split_at_mut(len);
        let t5 = &mut t5[..len];
        for x in 0..len {
            let o = Self::input([d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]]);
            (t0[x], t1[x], t2[x], t3[x], t4[x], t5[x]) = (o[0], o[1], o[2], o[3], o[4], o[5]);
        }
    }

    #[inline(always)]
    fn output_rows(m: &[&[f32]; MAX_ALPHA], out: &mut [f32], len: usize) {
        let [m0, m1, m2, m3, m4, m5] = m.map(|r| &r[..len]);
        let (y0, rest) = out.split_at_mut(len);
        let (y1, rest) = rest.split_at_mut(len);
        let (y2, y3) = rest.split_at_mut(len);
        let y3 = &mut y3[..len];
        for j in 0..len {
            let o = Self::output([m0[j], m1[j], m2[j], m3[j], m4[j], m5[j]]);
            (y0[j], y1[j], y2[j], y3[j]) = (o[0], o[1], o[2], o[3]);
        }
    }
}

/// Floats of `V` and `M` one block may hold (4 MiB): a block's transformed input and GEMM output
/// stay in the caches between the three steps, while its GEMMs still have many columns.
const BLOCK_FLOATS: usize = 1 << 20;

/// Whether Winograd can run `shape`: an ungrouped 3×3 conv at stride 1, dilation 1, any padding
/// and size, with channels (its GEMMs write nothing for an empty sum).
pub fn supports(s: &ConvShape) -> bool {
    s.check().is_ok()
        && s.in_c > 0
        && s.out_c > 0
        && s.kernel == [3, 3]
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.group == 1
}

/// Whether the compiler should run `shape` (at `batch`, on `threads` threads) by `variant` rather
/// than by a GEMM over the 9 taps: the cost model of [`costs`], at least 16 channels each way.
pub fn preferred(variant: Variant, s: &ConvShape, batch: usize, threads: usize) -> bool {
    if !supports(s) || s.in_c < 16 || s.out_c < 16 {
        return false;
    }
    let [direct, wino] = costs(variant, s, batch, threads);
    wino < MARGIN * direct
}

/// The share of the direct GEMM's estimated time below which [`preferred`] takes Winograd: the
/// model's error on the layers it was fitted to is about ±10%, and on small maps of few input
/// channels (SqueezeNet's 32 → 128 at 27×27: 0.99 estimated, 1.09 measured) it errs towards
/// Winograd.
const MARGIN: f64 = 0.97;

/// Estimated times (in multiply-adds at the GEMM's peak) of `[direct, Winograd]` for `shape`:
/// GEMM multiply-adds (9 per output pixel and channel pair for the direct GEMM, α² per tile for
/// Winograd) at a rate that falls with the GEMM's columns per thread (`n / (n + GEMM_HALF_COLS)`),
/// plus the packed weights read once per call (9 or α² floats per channel pair, [`WEIGHT_COST`]
/// each: on 7×7 maps F(4×4)'s 4× larger weights cost more than its saved multiply-adds), plus
/// Winograd's transforms at [`TRANSFORM_COST`] per transformed float.
pub fn costs(variant: Variant, s: &ConvShape, batch: usize, threads: usize) -> [f64; 2] {
    let (transform_cost, k_half) = match variant {
        Variant::F2 => (F2_TRANSFORM_COST, F2_K_HALF),
        Variant::F4 => (F4_TRANSFORM_COST, 0.0),
    };
    // The GEMM's rate also falls with its depth `k` (`k / (k + k_half)`): F(2×2)'s GEMMs sum over
    // the input channels alone, the direct GEMM over 9 times as many.
    let depth = |k: usize| k as f64 / (k as f64 + k_half);
    let positions = variant.positions() as f64;
    let (tx, ty) = tiles(variant.tile(), s);
    let threads = threads.max(1) as f64;
    let pairs = (s.in_c * s.out_c) as f64;
    let rate = |n: f64| {
        let per_thread = n / threads;
        per_thread / (per_thread + GEMM_HALF_COLS)
    };
    let pixels = (batch * s.out_h * s.out_w) as f64;
    let n_block = (block_rows(variant.tile(), s, batch * ty, 1) * tx) as f64;
    let tiles = (batch * tx * ty) as f64;
    let direct = 9.0 * pairs * (pixels / rate(pixels) / depth(9 * s.in_c) + WEIGHT_COST);
    let wino = positions * pairs * (tiles / rate(n_block) / depth(s.in_c) + WEIGHT_COST)
        + transform_cost * positions * tiles * (s.in_c + s.out_c) as f64;
    [direct, wino]
}

/// The columns per thread at which the packed GEMM runs at half its peak rate, in the cost model
/// of [`costs`]. This, [`WEIGHT_COST`] and [`F4_TRANSFORM_COST`] were fitted to
/// `examples/bench_winograd.rs` on ResNet-18 and VGG-11 layers (2026-12-06, `bench/RESULTS.md`):
/// F(4×4) measured 0.23–0.83× im2col's time down to 10×10 maps of 256 channels, 1.2–2.5× on 7×7
/// and 5×5 maps of 512 and on 16 channels. [`F2_TRANSFORM_COST`] and [`F2_K_HALF`] were fitted
/// (2026-12-07) to F(2×2) against the implicit GEMM on 21 layers of ResNet-18/50, VGG-11,
/// EfficientNetV2-S and SqueezeNet: 0.54–1.51× measured, the model within ±15% of every one.
const GEMM_HALF_COLS: f64 = 8.0;

/// Multiply-adds one transformed float (input or output) of F(4×4) costs, in the cost model of
/// [`costs`].
const F4_TRANSFORM_COST: f64 = 24.0;

/// Multiply-adds one transformed float of F(2×2) costs (its transforms are adds alone).
const F2_TRANSFORM_COST: f64 = 16.0;

/// The GEMM depth at which F(2×2)'s GEMMs run at half their peak rate, in the cost model of
/// [`costs`]: their depth is the input channels, down to 16.
const F2_K_HALF: f64 = 16.0;

/// Multiply-adds one packed weight float read from memory costs, in the cost model of [`costs`].
const WEIGHT_COST: f64 = 10.0;

/// Tiles of side `tile` per tile row and tile rows per image.
fn tiles(tile: usize, s: &ConvShape) -> (usize, usize) {
    (s.out_w.div_ceil(tile), s.out_h.div_ceil(tile))
}

/// Tile rows transformed and multiplied per block when `rows` tile rows are split `parts` ways:
/// as many as keep each part's block `V` and `M` within its share of [`BLOCK_FLOATS`], at least
/// one.
fn block_rows(tile: usize, s: &ConvShape, rows: usize, parts: usize) -> usize {
    let (tx, _) = tiles(tile, s);
    let positions = (tile + 2) * (tile + 2);
    let per_row = positions * (s.in_c + s.out_c) * tx;
    (BLOCK_FLOATS / parts.max(1) / per_row.max(1)).clamp(1, rows.max(1))
}

/// Fewest tiles per part for [`plan`] to split the tile rows between the threads: below that the
/// GEMMs are better split by output channels.
const MIN_PART_TILES: usize = 64;

/// How [`run`] divides the work of `batch` images on `threads` threads: `parts` contiguous ranges
/// of tile rows, one task each; each range in blocks of up to `rows` tile rows, with `part_len`
/// floats of scratch. With several parts each runs on one thread, transforming, multiplying and
/// writing its own rows, so no transformed tile crosses between cores (on these VMs' distant
/// vCPU pairs that traffic cost more than Winograd saved); with one part the three steps each
/// spread over the threads.
struct Plan {
    parts: usize,
    rows: usize,
    part_len: usize,
}

fn plan(variant: Variant, s: &ConvShape, batch: usize, threads: usize) -> Plan {
    let tile = variant.tile();
    let positions = variant.positions();
    let (tx, ty) = tiles(tile, s);
    let total = batch * ty;
    let threads = threads.max(1);
    let parts = if threads > 1 && total / threads * tx >= MIN_PART_TILES {
        threads
    } else {
        1
    };
    let inner = if parts > 1 { 1 } else { threads };
    let rows = block_rows(tile, s, total.div_ceil(parts), parts);
    let n = rows * tx;
    // A part holds `total / parts` tile rows or one more; its blocks `rows` each but the last,
    // which holds the remainder.
    let gemm_len = [total / parts, total.div_ceil(parts)]
        .into_iter()
        .flat_map(|part_rows| [rows.min(part_rows), part_rows % rows])
        .filter(|&r| r > 0)
        .map(|r| gemm::scratch_len(s.out_c, r * tx, s.in_c, positions, inner))
        .max()
        .unwrap_or(0);
    Plan {
        parts,
        rows,
        part_len: positions * (s.in_c + s.out_c) * n + inner * worker_len(tile, s, n) + gemm_len,
    }
}

/// A pool of the calling thread alone, for the parts of a split run.
fn one_thread() -> &'static Threads {
    static ONE: OnceLock<Threads> = OnceLock::new();
    ONE.get_or_init(|| Threads::new(1))
}

/// Floats of one worker's transform buffers for blocks of `n` tiles: for the input transform a
/// padded input row block and its vertical transform, `2 · α` rows of `m·tx + m`; for the output
/// transform the block's `Aᵀ M` (`m·α` rows of `n`), `Aᵀ M A` (`m²` rows of `n`) and one output
/// row.
fn worker_len(tile: usize, s: &ConvShape, n: usize) -> usize {
    let (tx, _) = tiles(tile, s);
    let alpha = tile + 2;
    (2 * alpha * (tile * tx + tile)).max((tile * alpha + tile * tile) * n + tile * tx)
}

/// Floats [`pack`] returns.
pub fn packed_len(variant: Variant, s: &ConvShape) -> usize {
    variant.positions() * gemm::packed_a_len(s.out_c, s.in_c)
}

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ` of ONNX-layout weights `[out_c, in_c, 3, 3]`,
/// computed in f64, each `ξ` packed as the GEMM's A (`out_c × in_c`). The caller has checked
/// [`supports`] and the weight's length.
pub(crate) fn pack(variant: Variant, s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    match variant {
        Variant::F2 => pack_t::<F2>(s, weight),
        Variant::F4 => pack_t::<F4>(s, weight),
    }
}

fn pack_t<T: Points>(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let (m, k) = (s.out_c, s.in_c);
    let alpha = T::ALPHA;
    // `[ξ][oc][ic]`, row-major per ξ.
    let mut u = vec![0.0f32; T::POSITIONS * m * k];
    for oc in 0..m {
        for ic in 0..k {
            let g = &weight[(oc * k + ic) * 9..][..9];
            // G g (α×3), then (G g) Gᵀ (α×α).
            let mut gg = [[0.0f64; 3]; MAX_ALPHA];
            for (r, row) in gg.iter_mut().enumerate().take(alpha) {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|j| T::G[r][j] * g[j * 3 + c] as f64).sum();
                }
            }
            for r in 0..alpha {
                for c in 0..alpha {
                    let v: f64 = (0..3).map(|j| gg[r][j] * T::G[c][j]).sum();
                    u[((r * alpha + c) * m + oc) * k + ic] = v as f32;
                }
            }
        }
    }
    let mut packed = Vec::with_capacity(T::POSITIONS * gemm::packed_a_len(m, k));
    for xi in 0..T::POSITIONS {
        gemm::pack_a(&u[xi * m * k..(xi + 1) * m * k], m, k, k, &mut packed);
    }
    packed
}

/// Scratch floats [`run`] needs: the block's `V` and `M`, the workers' transform buffers and the
/// GEMM's scratch.
pub fn scratch_len(variant: Variant, s: &ConvShape, batch: usize, threads: usize) -> usize {
    let p = plan(variant, s, batch, threads);
    p.parts * p.part_len
}

/// The conv of `args` by `variant` with its fused epilogue (see the module doc). `args.packed`
/// comes from [`pack`], `args.scratch` holds [`scratch_len`] floats.
pub(crate) fn run(variant: Variant, ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    match variant {
        Variant::F2 => run_t::<F2>(ctx, args),
        Variant::F4 => run_t::<F4>(ctx, args),
    }
}

fn run_t<T: Points>(ctx: &Ctx, args: ConvArgs) -> Result<(), KernelError> {
    let ConvArgs {
        shape: s,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let variant = T::VARIANT;
    let threads = ctx.threads;
    check_len("conv input", batch * s.input_len(), input.len())?;
    check_len("conv packed weight", packed_len(variant, &s), packed.len())?;
    check_len("conv output", batch * s.output_len(), output.len())?;
    epilogue.check(batch, s.out_c, s.out_h * s.out_w)?;
    let p = plan(variant, &s, batch, threads.count());
    check_min_len("conv scratch", p.parts * p.part_len, scratch.len())?;
    if batch == 0 {
        return Ok(());
    }
    let isa = if ctx.isa.supported() {
        ctx.isa
    } else {
        Isa::Generic
    };
    let (_, ty) = tiles(T::TILE, &s);
    let total = batch * ty;
    let out = SharedOut(output.as_mut_ptr());
    let job = Job {
        s: &s,
        input,
        packed,
        epilogue: &epilogue,
        out,
        rows: p.rows,
    };
    if p.parts == 1 {
        let ctx = &Ctx { isa, threads };
        return run_rows::<T>(ctx, &job, 0..total, &mut scratch[..p.part_len]);
    }
    let one = &Ctx {
        isa,
        threads: one_thread(),
    };
    let failed = Mutex::new(None);
    let scratch_ptr = SharedOut(scratch.as_mut_ptr());
    threads.run_indexed(p.parts, &|part, _| {
        // SAFETY: part `part`'s slice of the scratch (`part_len` floats from `part · part_len`;
        // `run_t` checked that it holds `parts · part_len`) is used by this task alone.
        let scratch = unsafe {
            std::slice::from_raw_parts_mut(scratch_ptr.ptr().add(part * p.part_len), p.part_len)
        };
        let rows = part * total / p.parts..(part + 1) * total / p.parts;
        if let Err(e) = run_rows::<T>(one, &job, rows, scratch) {
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What every part of a run shares: the operands, and the output as a pointer (parts write
/// disjoint rows of it).
struct Job<'a, 'e> {
    s: &'a ConvShape,
    input: &'a [f32],
    packed: &'a [f32],
    epilogue: &'a Epilogue<'e>,
    out: SharedOut,
    /// Tile rows per block.
    rows: usize,
}

/// Global tile rows `range` of the run (row `r` is tile row `r % ty` of image `r / ty`), in
/// blocks of `job.rows`, on `ctx`'s threads, with `scratch` (a part's `part_len` floats).
fn run_rows<T: Points>(
    ctx: &Ctx,
    job: &Job,
    range: std::ops::Range<usize>,
    scratch: &mut [f32],
) -> Result<(), KernelError> {
    let s = job.s;
    let (tx, ty) = tiles(T::TILE, s);
    let full_n = job.rows * tx;
    let (v, rest) = scratch.split_at_mut(T::POSITIONS * s.in_c * full_n);
    let (m_buf, rest) = rest.split_at_mut(T::POSITIONS * s.out_c * full_n);
    let wl = worker_len(T::TILE, s, full_n);
    let (workers, gemm_scratch) = rest.split_at_mut(ctx.threads.count() * wl);
    let a_len = gemm::packed_a_len(s.out_c, s.in_c);
    let mut row0 = range.start;
    while row0 < range.end {
        let nrows = job.rows.min(range.end - row0);
        let n = nrows * tx;
        let block = Block {
            s,
            row0,
            nrows,
            tx,
            ty,
            n,
        };
        input_transform::<T>(
            ctx,
            &block,
            job.input,
            &mut v[..T::POSITIONS * s.in_c * n],
            workers,
            wl,
        );
        // Entries past the variant's positions repeat the last one and are not passed on.
        let problems: [Problem; MAX_POSITIONS] = std::array::from_fn(|xi| {
            let xi = xi.min(T::POSITIONS - 1);
            Problem {
                a: &job.packed[xi * a_len..(xi + 1) * a_len],
                b: BSource::Rows {
                    data: &v[xi * s.in_c * n..(xi + 1) * s.in_c * n],
                    ld: n,
                },
                c: xi * s.out_c * n,
                bias: None,
            }
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
        let m_block = &mut m_buf[..T::POSITIONS * s.out_c * n];
        gemm::run(ctx, &g, &problems[..T::POSITIONS], m_block, gemm_scratch)?;
        output_transform::<T>(ctx, &block, m_block, job, (workers, wl));
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
fn input_transform<T: Points>(
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
            // `r·tx..(r + 1)·tx`, is written by this task alone; `v` holds `α²·in_c·n` floats.
            let dst = |xi: usize| unsafe {
                std::slice::from_raw_parts_mut(
                    v_ptr.ptr().add((xi * s.in_c + c) * b.n + r * b.tx),
                    b.tx,
                )
            };
            let outs: VRows = std::array::from_fn(|rho| {
                std::array::from_fn(|sigma| {
                    if rho < T::ALPHA && sigma < T::ALPHA {
                        dst(rho * T::ALPHA + sigma)
                    } else {
                        &mut []
                    }
                })
            });
            let row = InputRow {
                s,
                plane,
                y0: (ty * T::TILE) as isize - s.pads[0] as isize,
                tx: b.tx,
            };
            input_row::<T>(isa, &row, buf, outs);
        }
    });
}

/// The destination rows of a tile row's transformed input, `[ρ][σ]`: `V_ξ` with `ξ = αρ + σ`
/// (empty past the variant's α).
type VRows<'a> = [[&'a mut [f32]; MAX_ALPHA]; MAX_ALPHA];

/// One tile row of one input plane: its α input rows start at `y0` (negative in the padding).
struct InputRow<'a> {
    s: &'a ConvShape,
    plane: &'a [f32],
    y0: isize,
    tx: usize,
}

/// [`input_row_body`] on `isa`'s instruction set.
fn input_row<T: Points>(isa: Isa, row: &InputRow, buf: &mut [f32], outs: VRows) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run` only passes a tier this CPU supports.
        Isa::Avx512 => unsafe { x86::input_row_avx512::<T>(row, buf, outs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::input_row_avx2::<T>(row, buf, outs) },
        _ => input_row_body::<T>(row, buf, outs),
    }
}

/// `Bᵀ d B` of every tile of one tile row of one channel: the α input rows copied with their
/// zero padding into `buf`, transformed vertically (`Bᵀ d`, contiguous over x), then horizontally
/// (`· B`, each tile's columns `m·j..m·j + α`), into `outs[ρ][σ][j]`.
#[inline(always)]
fn input_row_body<T: Points>(row: &InputRow, buf: &mut [f32], outs: VRows) {
    let s = row.s;
    let tx = row.tx;
    let wp = T::TILE * tx + T::TILE;
    let (d, t) = buf.split_at_mut(T::ALPHA * wp);
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
    T::input_rows(d, t, wp);
    for (line, mut outs) in t.chunks_exact(wp).take(T::ALPHA).zip(outs) {
        // Each used row cut to `tx` here, so that the compiler knows its length.
        let o: [&mut [f32]; MAX_ALPHA] = std::array::from_fn(|sigma| {
            if sigma < T::ALPHA {
                &mut std::mem::take(&mut outs[sigma])[..tx]
            } else {
                &mut []
            }
        });
        // Tile `j`'s α columns start at `m·j`: `m` from chunk `j`, 2 from chunk `j + 1`. Scalar:
        // gathering the strided columns into vectors through memory stalls on store forwarding.
        for (j, (a, b)) in line
            .chunks_exact(T::TILE)
            .zip(line[T::TILE..].chunks_exact(T::TILE))
            .enumerate()
            .take(tx)
        {
            let w = std::array::from_fn(|i| {
                if i < T::TILE {
                    a[i]
                } else if i < T::ALPHA {
                    b[i - T::TILE]
                } else {
                    0.0
                }
            });
            let v = T::input(w);
            for sigma in 0..T::ALPHA {
                o[sigma][j] = v[sigma];
            }
        }
    }
}

/// `Aᵀ M A` for every output channel and tile of the block, one output channel per task, with the
/// epilogue, into the output planes. `workers` holds one buffer of the given length per thread.
fn output_transform<T: Points>(
    ctx: &Ctx,
    b: &Block,
    m: &[f32],
    job: &Job,
    (workers, wl): (&mut [f32], usize),
) {
    let s = b.s;
    let n = b.n;
    let tile = T::TILE;
    let epilogue = job.epilogue;
    let out_ptr = job.out;
    let w_ptr = SharedOut(workers.as_mut_ptr());
    let isa = ctx.isa;
    let plane_len = s.out_h * s.out_w;
    let lanes = Lanes::of(ctx);
    ctx.threads.run_indexed(s.out_c, &|k, worker| {
        // SAFETY: as in `input_transform`.
        let buf = unsafe { std::slice::from_raw_parts_mut(w_ptr.ptr().add(worker * wl), wl) };
        let (y, rest) = buf.split_at_mut(tile * tile * n);
        let (t, line_buf) = rest.split_at_mut(tile * T::ALPHA * n);
        let line_buf = &mut line_buf[..tile * b.tx];
        let ms: [&[f32]; MAX_POSITIONS] = std::array::from_fn(|xi| {
            if xi < T::POSITIONS {
                &m[(xi * s.out_c + k) * n..][..n]
            } else {
                &[]
            }
        });
        output_block::<T>(isa, &ms, y, t);
        let y = &*y;
        for r in 0..b.nrows {
            let g = b.row0 + r;
            let (img, ty) = (g / b.ty, g % b.ty);
            let rows_out = tile.min(s.out_h - ty * tile);
            let offset = (img * s.out_c + k) * plane_len + ty * tile * s.out_w;
            // SAFETY: output rows `m·ty..m·ty + rows_out` of plane `(img, k)` are written by this
            // task alone (one task per channel, each tile row in one block of one part once);
            // `run_t` checked the output's length.
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
                // Row `a` of the tile row: pixel `m·i + b` is `y[a][b]` of tile `i`.
                let ys: [&[f32]; MAX_TILE] = std::array::from_fn(|bb| {
                    if bb < tile {
                        &y[(a * tile + bb) * n + r * b.tx..][..b.tx]
                    } else {
                        &[]
                    }
                });
                for (i, px) in line_buf.chunks_exact_mut(tile).enumerate() {
                    for (bb, p) in px.iter_mut().enumerate() {
                        *p = ys[bb][i];
                    }
                }
                finish_row(&row_fin, lanes, a, &mut line_buf[..s.out_w], line);
            }
        }
    });
}

/// [`output_block_body`] on `isa`'s instruction set.
fn output_block<T: Points>(isa: Isa, ms: &[&[f32]; MAX_POSITIONS], y: &mut [f32], t: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run` only passes a tier this CPU supports.
        Isa::Avx512 => unsafe { x86::output_block_avx512::<T>(ms, y, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::output_block_avx2::<T>(ms, y, t) },
        _ => output_block_body::<T>(ms, y, t),
    }
}

/// `Aᵀ M A` of every tile of the block at once (so the loops run over all `n` tiles, not one tile
/// row's few): `ms[ξ][j]` the α² positions of tile `j`; vertically (`Aᵀ M`, into `t` as
/// `[σ][a][j]`), then horizontally (`· A`), into `y` as `[a][b][j]`.
#[inline(always)]
fn output_block_body<T: Points>(ms: &[&[f32]; MAX_POSITIONS], y: &mut [f32], t: &mut [f32]) {
    let n = ms[0].len();
    for (sigma, rows) in t.chunks_exact_mut(T::TILE * n).take(T::ALPHA).enumerate() {
        let m: [&[f32]; MAX_ALPHA] = std::array::from_fn(|rho| {
            if rho < T::ALPHA {
                &ms[rho * T::ALPHA + sigma][..n]
            } else {
                &[]
            }
        });
        T::output_rows(&m, rows, n);
    }
    let t = &*t;
    for (a, rows) in y.chunks_exact_mut(T::TILE * n).take(T::TILE).enumerate() {
        let q: [&[f32]; MAX_ALPHA] = std::array::from_fn(|sigma| {
            if sigma < T::ALPHA {
                &t[(sigma * T::TILE + a) * n..][..n]
            } else {
                &[]
            }
        });
        T::output_rows(&q, rows, n);
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

/// `line = act(src + bias + residual)` for row `a` of the tile row (`src` is scratch: it is
/// overwritten). Activations other than ReLU run on the tier's vector math (`lanes`).
#[inline]
fn finish_row(f: &RowFinish, lanes: Lanes, a: usize, src: &mut [f32], line: &mut [f32]) {
    let bias = f.epilogue.bias.map_or(0.0, |b| b[f.channel]);
    match f.epilogue.residual {
        Some(res) => {
            let res = &res[f.residual_at + a * f.out_w..][..src.len()];
            for (x, &r) in src.iter_mut().zip(res) {
                *x = *x + bias + r;
            }
        }
        None => {
            for x in src.iter_mut() {
                *x += bias;
            }
        }
    }
    match f.epilogue.activation {
        Activation::None => line.copy_from_slice(src),
        Activation::Relu => {
            for (o, &x) in line.iter_mut().zip(src.iter()) {
                *o = if x < 0.0 { 0.0 } else { x };
            }
        }
        act => lanes.map(act, src, line),
    }
}

/// The transforms compiled for the x86-64 SIMD tiers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn input_row_avx512<T: Points>(row: &InputRow, buf: &mut [f32], outs: VRows) {
        input_row_body::<T>(row, buf, outs);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn input_row_avx2<T: Points>(row: &InputRow, buf: &mut [f32], outs: VRows) {
        input_row_body::<T>(row, buf, outs);
    }

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn output_block_avx512<T: Points>(
        ms: &[&[f32]; MAX_POSITIONS],
        y: &mut [f32],
        t: &mut [f32],
    ) {
        output_block_body::<T>(ms, y, t);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn output_block_avx2<T: Points>(
        ms: &[&[f32]; MAX_POSITIONS],
        y: &mut [f32],
        t: &mut [f32],
    ) {
        output_block_body::<T>(ms, y, t);
    }
}
