//! The portable GEMM micro-kernel: an `MR × NR` tile in plain loops (auto-vectorised at best), and
//! the scalar epilogue the SIMD tiers reuse for ragged tiles.

use super::{BiasAlong, Finish, MR, NR, Tile};

/// Computes `t` with scalar code.
///
/// # Safety
/// `t.a` must be readable for `kc × MR` floats, `t.b` for `kc × ldb`, `t.c` valid for reads and
/// writes of `rows × cols` at stride `ldc`, and the `finish` pointers (if non-null) readable like C
/// (residual) or for `rows`/`cols` entries (bias); no one else may write that part of C.
pub(crate) unsafe fn tile(t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: lengths as in the contract.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(t.a, t.kc * MR),
            std::slice::from_raw_parts(t.b, t.kc * t.ldb),
        )
    };
    // A compact B row (`ldb = cols < NR`) covers exactly the tile's columns.
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(t.ldb)) {
        for (row, &x) in acc.iter_mut().zip(av).take(t.rows) {
            for (c, &y) in row.iter_mut().zip(bv) {
                *c += x * y;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        // SAFETY: forwarded from the caller.
        unsafe { store_row(t, r, &row[..t.cols]) };
    }
}

/// Stores accumulators `vals` as row `r`, columns `0..vals.len()`, of tile `t` with its epilogue.
///
/// # Safety
/// As for [`tile`]; `r < t.rows` and `vals.len() <= t.cols`.
#[inline]
pub(crate) unsafe fn store_row(t: &Tile, r: usize, vals: &[f32]) {
    // SAFETY: row `r` of C holds `cols` floats from `c + r·ldc`, ours alone (caller's contract).
    let c = unsafe { std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), vals.len()) };
    for (col, (dst, &v)) in c.iter_mut().zip(vals).enumerate() {
        let mut x = v;
        if t.load_c {
            x += *dst;
        }
        if let Some(f) = t.finish {
            // SAFETY: forwarded from the caller.
            x = unsafe { finish_one(&f, x, r, col, t.ldc) };
        }
        *dst = x;
    }
}

/// The epilogue of one element at (`r`, `col`) of a tile.
///
/// # Safety
/// The non-null pointers of `f` must be readable at that element.
#[inline(always)]
pub(crate) unsafe fn finish_one(f: &Finish, mut x: f32, r: usize, col: usize, ldc: usize) -> f32 {
    if !f.bias.is_null() {
        let i = if f.bias_along == BiasAlong::Rows {
            r
        } else {
            col
        };
        // SAFETY: forwarded from the caller.
        x += unsafe { *f.bias.add(i) };
    }
    if !f.residual.is_null() {
        // SAFETY: forwarded from the caller.
        x += unsafe { *f.residual.add(r * ldc + col) };
    }
    f.activation.apply(x)
}
