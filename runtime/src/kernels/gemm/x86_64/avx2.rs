//! The AVX2+FMA GEMM micro-kernel: an 8 × 48 tile as up to four 4-row × 3-ymm (24-column)
//! sub-tiles, 12 accumulators each; ragged columns by masked loads and stores.

use std::arch::x86_64::*;

use crate::kernels::Activation;
use crate::kernels::gemm::{BiasAlong, MR, NR, Tile};

/// Runs `t` as 4 × 24 sub-tiles.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the pointers of `t` must be valid as documented on `Tile`
/// (see `generic::tile`), with no one else writing C there.
pub(crate) unsafe fn tile(t: &Tile) {
    for h in 0..t.rows.div_ceil(4) {
        for s in 0..t.cols.div_ceil(24) {
            let (row, col) = (4 * h, 24 * s);
            let mut sub = *t;
            sub.a = t.a.wrapping_add(row);
            sub.b = t.b.wrapping_add(col);
            sub.c = t.c.wrapping_add(row * t.ldc + col);
            sub.rows = (t.rows - row).min(4);
            sub.cols = (t.cols - col).min(24);
            if let Some(f) = sub.finish.as_mut() {
                if !f.bias.is_null() {
                    let off = if f.bias_along == BiasAlong::Rows {
                        row
                    } else {
                        col
                    };
                    f.bias = f.bias.wrapping_add(off);
                }
                if !f.residual.is_null() {
                    f.residual = f.residual.wrapping_add(row * t.ldc + col);
                }
            }
            // SAFETY: the sub-tile lies inside `t` (same strides), forwarded from the caller.
            unsafe {
                match (sub.rows, sub.cols.div_ceil(8)) {
                    (1, 1) => sub_tile::<1, 1>(&sub),
                    (1, 2) => sub_tile::<1, 2>(&sub),
                    (1, _) => sub_tile::<1, 3>(&sub),
                    (2, 1) => sub_tile::<2, 1>(&sub),
                    (2, 2) => sub_tile::<2, 2>(&sub),
                    (2, _) => sub_tile::<2, 3>(&sub),
                    (_, 1) => sub_tile::<4, 1>(&sub),
                    (_, 2) => sub_tile::<4, 2>(&sub),
                    (_, _) => sub_tile::<4, 3>(&sub),
                }
            }
        }
    }
}

/// An `R`-row (`R >= rows`, at most 4) sub-tile of `NV` ymm columns; A rows at stride `MR`, B
/// rows at stride `NR`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn sub_tile<const R: usize, const NV: usize>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        let mut bv = [_mm256_setzero_ps(); NV];
        for v in 0..NV {
            // SAFETY: B holds `kc` rows of `NR` floats; this sub-tile reads `8·NV` of them.
            bv[v] = unsafe { _mm256_loadu_ps(b.add(8 * v)) };
        }
        for r in 0..R {
            // SAFETY: A holds `kc` rows of `MR` floats; this sub-tile reads `R <= 4` of them.
            let x = _mm256_set1_ps(unsafe { *a.add(r) });
            for v in 0..NV {
                acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
            }
        }
        a = a.wrapping_add(MR);
        b = b.wrapping_add(NR);
    }
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for r in 0..t.rows.min(R) {
        for v in 0..NV {
            let rem = (t.cols - 8 * v).min(8);
            let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lanes);
            let at = r * t.ldc + 8 * v;
            // SAFETY: lanes of `m` are columns `< cols` of row `r < rows` of C, of the residual
            // (laid out like C) and of the column bias; masked-off lanes are not accessed.
            unsafe {
                let mut x = acc[r][v];
                if t.load_c {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(t.c.add(at), m));
                }
                if let Some(f) = t.finish {
                    if !f.bias.is_null() {
                        x = _mm256_add_ps(
                            x,
                            match f.bias_along {
                                BiasAlong::Rows => _mm256_set1_ps(*f.bias.add(r)),
                                BiasAlong::Cols => _mm256_maskload_ps(f.bias.add(8 * v), m),
                            },
                        );
                    }
                    if !f.residual.is_null() {
                        x = _mm256_add_ps(x, _mm256_maskload_ps(f.residual.add(at), m));
                    }
                    x = match f.activation {
                        Activation::None => x,
                        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), x),
                        Activation::Clip { min, max } => _mm256_min_ps(
                            _mm256_set1_ps(max),
                            _mm256_max_ps(_mm256_set1_ps(min), x),
                        ),
                    };
                }
                _mm256_maskstore_ps(t.c.add(at), m, x);
            }
        }
    }
}
