//! The AVX-512F GEMM micro-kernel: up to 8 rows × 3 zmm (48 columns) of accumulators, one B row
//! loaded per k and reused by every row, A broadcast; ragged columns by masked loads and stores.

use std::arch::x86_64::*;

use crate::kernels::Activation;
use crate::kernels::gemm::{BiasAlong, MR, NR, Tile};

/// Runs `t`: a few columns on AVX2's `tile_narrow`, the rest on [`tile_rn`].
///
/// # Safety
/// The CPU must support AVX-512F; the pointers of `t` must be valid as documented on `Tile`
/// (see `generic::tile`), with no one else writing C there.
pub(crate) unsafe fn tile(t: &Tile) {
    // A few columns (the ragged end of a 7×7 or 14×14 map) gain nothing from vectors over
    // columns: vectorise over the panel's rows instead.
    // SAFETY: forwarded from the caller; the AVX-512 tier also requires AVX2 and FMA
    // (`Isa::supported`).
    if unsafe { super::avx2::narrow(t) } {
        return;
    }
    debug_assert_eq!(t.ldb, NR, "a compact B tile is narrow");
    // SAFETY: forwarded from the caller.
    unsafe { tile_rn_for::<false>(t, NO_PACK) }
}

/// Runs `t` on [`tile_rn`] monomorphised on its row count (rounded up to 1, 2, 4 or 8; the packed
/// A rows past `rows` are zero) and on its vectors of columns.
///
/// # Safety
/// As for [`tile`], or [`tile_packing`] when `PACK`.
#[inline(always)]
unsafe fn tile_rn_for<const PACK: bool>(t: &Tile, from: PackFrom) {
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

/// [`tile`] for a tile of more than 4 columns that packs its own B on the way: row `k` of B is
/// read from `from.src + k·from.ld` (`t.cols` floats) and written to `from.dst + k·NR`, where
/// later tiles of the same columns read it packed (`t.b` is not read). Reading the activations
/// inside the k loop, ahead by software prefetch, hides their memory latency behind the FMAs;
/// packing them in a separate pass first exposed it (15–25% of a 56×56 1×1 conv).
///
/// # Safety
/// As for [`tile`]; also `t.cols > 4`, `from.src` valid for reads of `t.cols` floats at each of
/// `t.kc` rows `ld` apart, and `from.dst` for writes of `t.kc` rows of `NR` floats that nobody
/// else touches.
pub(crate) unsafe fn tile_packing(t: &Tile, from: PackFrom) {
    // SAFETY: forwarded from the caller.
    unsafe { tile_rn_for::<true>(t, from) }
}

/// Where [`tile_packing`] reads B's rows and writes them packed.
#[derive(Clone, Copy)]
pub(crate) struct PackFrom {
    pub src: *const f32,
    pub ld: usize,
    pub dst: *mut f32,
    /// Where the B rows read after this call's begin (`ld` apart), for the prefetches of its last
    /// [`B_AHEAD`] k steps: the next k rows of the same columns, or the next tile's first rows
    /// when this call ends the tile's k block. With a shallow k (16–32 input channels) most of a
    /// tile's rows are within `B_AHEAD` of its start. Only prefetched, never read.
    pub next: *const f32,
}

const NO_PACK: PackFrom = PackFrom {
    src: std::ptr::null(),
    ld: 0,
    dst: std::ptr::null_mut(),
    next: std::ptr::null(),
};

/// How many k steps ahead [`tile_rn`] prefetches A (16 steps × 32 B = 512 B).
const A_AHEAD: usize = 16;
/// How many rows ahead [`tile_packing`] prefetches the B rows it reads.
const B_AHEAD: usize = 16;

/// `R` rows × `NV` vectors of 16 columns of C, over the tile's k steps; when `PACK`, it also
/// copies B's rows from `from.src` to `from.dst` packed as it reads them.
///
/// # Safety
/// As for [`tile`] (`R` at least `t.rows`, `NV` vectors covering `t.cols`), or [`tile_packing`]
/// when `PACK`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_rn<const R: usize, const NV: usize, const PACK: bool>(t: &Tile, from: PackFrom) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let (mut a, mut b) = (t.a, t.b);
    let (mut src, mut dst) = (from.src, from.dst);
    // The columns `< cols` of each vector: B's rows when packing, C's in the epilogue.
    let lanes = column_lanes::<NV>(t.cols);
    prefetch_epilogue::<R, NV>(t);
    for kk in 0..t.kc {
        // A (weights) streams from memory once per panel, and the weights of a model are far
        // larger than the caches: fetch it `A_AHEAD` k steps early. A prefetch never faults, so
        // running past the end of A is harmless.
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_AHEAD * MR) as *const i8);
        let mut bv = [_mm512_setzero_ps(); NV];
        if PACK {
            let ahead = if kk + B_AHEAD < t.kc {
                src.wrapping_add(B_AHEAD * from.ld)
            } else {
                from.next.wrapping_add((kk + B_AHEAD - t.kc) * from.ld)
            };
            for v in 0..NV {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * v) as *const i8);
                // SAFETY: the lanes of `lanes[v]` are columns `< cols` of this row of the
                // source, and the packed row holds `NR >= 16·NV` floats (`tile_packing`'s
                // contract); masked-off lanes are not read and are stored as zeros.
                unsafe {
                    bv[v] = _mm512_maskz_loadu_ps(lanes[v], src.add(16 * v));
                    _mm512_storeu_ps(dst.add(16 * v), bv[v]);
                }
            }
            src = src.wrapping_add(from.ld);
            dst = dst.wrapping_add(NR);
        } else {
            for v in 0..NV {
                // SAFETY: B holds `kc` rows of `NR >= 16·NV` floats (caller's contract).
                bv[v] = unsafe { _mm512_loadu_ps(b.add(16 * v)) };
            }
        }
        for r in 0..R {
            // SAFETY: A holds `kc` rows of `MR >= R` floats.
            let x = _mm512_set1_ps(unsafe { *a.add(r) });
            for v in 0..NV {
                acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
            }
        }
        a = a.wrapping_add(MR);
        b = b.wrapping_add(NR);
    }
    // One call per row with a literal index, so `acc` is never indexed at run time and stays in
    // registers (a loop to `rows` kept the 8 × 3 accumulators in memory).
    macro_rules! rows {
        ($($r:literal)*) => {$(
            if $r < R && $r < t.rows {
                // SAFETY: `$r < rows` (forwarded contract of `finish_row`).
                unsafe { finish_row(t, $r, acc[$r], lanes) };
            }
        )*};
    }
    rows!(0 1 2 3 4 5 6 7);
}

/// The lanes of each of `NV` vectors of 16 columns that are columns `< cols`.
#[inline(always)]
pub(crate) fn column_lanes<const NV: usize>(cols: usize) -> [__mmask16; NV] {
    std::array::from_fn(|v| {
        let rem = cols.saturating_sub(16 * v);
        if rem < 16 { (1u16 << rem) - 1 } else { 0xFFFF }
    })
}

/// Requests the C rows (and residual) that the epilogue of an `R × NV`-vector tile reads and
/// writes, so that they arrive during the k loop instead of stalling the stores at the end.
/// Never faults.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn prefetch_epilogue<const R: usize, const NV: usize>(t: &Tile) {
    if t.finish.is_some() || t.load_c {
        let residual = t.finish.map_or(std::ptr::null(), |f| f.residual);
        for r in 0..R.min(t.rows) {
            for v in 0..NV {
                let at = r * t.ldc + 16 * v;
                _mm_prefetch::<_MM_HINT_ET0>(t.c.wrapping_add(at) as *const i8);
                if !residual.is_null() {
                    _mm_prefetch::<_MM_HINT_T0>(residual.wrapping_add(at) as *const i8);
                }
            }
        }
    }
}

/// Applies the epilogue to row `r` of a tile's accumulators and stores it to C; `lanes[v]` masks
/// the columns `< cols` of vector `v`.
///
/// # Safety
/// `r < t.rows`; the pointers of `t` as documented on `Tile`.
#[inline(always)]
pub(crate) unsafe fn finish_row<const NV: usize>(
    t: &Tile,
    r: usize,
    acc: [__m512; NV],
    lanes: [__mmask16; NV],
) {
    for (v, (&sum, &m)) in acc.iter().zip(&lanes).enumerate() {
        let at = r * t.ldc + 16 * v;
        // SAFETY: lanes of `m` are columns `< cols` of row `r < rows` of C, of the residual
        // (laid out like C) and of the column bias; masked-off lanes are not accessed.
        unsafe {
            let mut x = sum;
            if t.load_c {
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, t.c.add(at)));
            }
            if let Some(f) = t.finish {
                if !f.bias.is_null() {
                    x = _mm512_add_ps(
                        x,
                        match f.bias_along {
                            BiasAlong::Rows => _mm512_set1_ps(*f.bias.add(r)),
                            BiasAlong::Cols => _mm512_maskz_loadu_ps(m, f.bias.add(16 * v)),
                        },
                    );
                }
                if !f.residual.is_null() {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, f.residual.add(at)));
                }
                x = activate512_inline!(f.activation, x);
            }
            _mm512_mask_storeu_ps(t.c.add(at), m, x);
        }
    }
}

/// `dst[i] = src[2·i]` for every `i` in `0..dst.len()`: the stride-2 im2col gather, 16 outputs
/// per two loads and one two-source permute. `src` must hold at least `2·dst.len() − 1` floats.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gather_stride2(src: &[f32], dst: &mut [f32]) {
    let len = dst.len();
    if len == 0 || src.len() < 2 * len - 1 {
        return;
    }
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut i = 0;
    while i < len {
        let r = (len - i).min(16);
        // Inputs needed: `2r − 1` from `2i`; the first vector holds 16 of them, the second the rest.
        let need = 2 * r - 1;
        let m_lo: __mmask16 = if need >= 16 {
            0xFFFF
        } else {
            (1u16 << need) - 1
        };
        let m_hi: __mmask16 = if need > 16 {
            ((1u32 << (need - 16)) - 1) as u16
        } else {
            0
        };
        let m_out: __mmask16 = if r == 16 { 0xFFFF } else { (1u16 << r) - 1 };
        // SAFETY: the masks cover inputs `2i .. 2i + need ≤ 2·len − 1 ≤ src.len()` and outputs
        // `i .. i + r ≤ len`; masked-off lanes are not accessed.
        unsafe {
            let p = src.as_ptr().add(2 * i);
            let lo = _mm512_maskz_loadu_ps(m_lo, p);
            let hi = _mm512_maskz_loadu_ps(m_hi, p.wrapping_add(16));
            let v = _mm512_permutex2var_ps(lo, even, hi);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m_out, v);
        }
        i += r;
    }
}

/// [`activate512`] with no activation and ReLU inline, for the kernels' epilogues: LLVM keeps
/// `activate512` out of line there, a call per vector (2.5% of a bf16 ResNeXt-50 run, 1 thread).
/// Expands to intrinsics: use it in a function with AVX-512F enabled.
macro_rules! activate512_inline {
    ($activation:expr, $x:expr) => {{
        let x: std::arch::x86_64::__m512 = $x;
        match $activation {
            $crate::kernels::Activation::None => x,
            $crate::kernels::Activation::Relu => {
                std::arch::x86_64::_mm512_max_ps(std::arch::x86_64::_mm512_setzero_ps(), x)
            }
            other => $crate::kernels::gemm::x86_64::avx512::activate512(other, x),
        }
    }};
}
pub(crate) use activate512_inline;

/// `activation` on sixteen lanes, with the scalar `Activation::apply`'s NaN behaviour (as the AVX2
/// tier's `activate`); the transcendental activations go out of line to [`transcendental512`].
/// Shared by the AVX-512 kernels.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn activate512(activation: Activation, x: __m512) -> __m512 {
    match activation {
        Activation::None => x,
        Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), x),
        Activation::Clip { min, max } => {
            _mm512_min_ps(_mm512_set1_ps(max), _mm512_max_ps(_mm512_set1_ps(min), x))
        }
        Activation::HardSigmoid { alpha, beta } => {
            let y = _mm512_add_ps(
                _mm512_mul_ps(_mm512_set1_ps(alpha), x),
                _mm512_set1_ps(beta),
            );
            _mm512_min_ps(_mm512_set1_ps(1.0), _mm512_max_ps(_mm512_setzero_ps(), y))
        }
        Activation::HardSwish => {
            let y = _mm512_add_ps(x, _mm512_set1_ps(3.0));
            let y = _mm512_min_ps(_mm512_set1_ps(6.0), _mm512_max_ps(_mm512_setzero_ps(), y));
            _mm512_div_ps(_mm512_mul_ps(x, y), _mm512_set1_ps(6.0))
        }
        Activation::LeakyRelu { alpha } => {
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
            _mm512_mask_mul_ps(x, negative, _mm512_set1_ps(alpha), x)
        }
        Activation::Sigmoid
        | Activation::Tanh
        | Activation::Silu
        | Activation::Elu { .. }
        | Activation::Gelu
        | Activation::GeluTanh
        | Activation::Erf => transcendental512(activation, x),
    }
}

/// The transcendental activations in vector registers
/// ([`math::avx512`](crate::kernels::math::avx512)): out of line, so that the vector epilogue above
/// stays small enough to be inlined into every kernel (a call there costs the GEMM's 1×1 convs
/// several percent).
#[inline(never)]
#[target_feature(enable = "avx512f")]
fn transcendental512(activation: Activation, x: __m512) -> __m512 {
    crate::kernels::math::avx512::activate(activation, x)
}
