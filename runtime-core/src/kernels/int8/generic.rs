//! The portable int8 tile: plain i32 loops over the packed weights.

use super::{BLOCK_M, Tile};
use crate::kernels::SharedOut;

/// Computes `tile` into `y` (see `run_tile`: the tile's outputs are its own).
pub(super) fn tile(t: &Tile, y: SharedOut) {
    let kq = t.packed.kp / 4;
    for m0 in t.m.clone().step_by(BLOCK_M) {
        let block = &t.packed.weight[m0 / BLOCK_M * kq * BLOCK_M * 4..][..kq * BLOCK_M * 4];
        let lanes = BLOCK_M.min(t.m.end - m0);
        for p in t.p.clone() {
            let row = &t.cols[p * t.packed.kp..][..t.packed.kp];
            let mut acc = [0i32; BLOCK_M];
            for (q, x) in row.chunks_exact(4).enumerate() {
                let w = &block[q * BLOCK_M * 4..][..BLOCK_M * 4];
                for (lane, a) in acc.iter_mut().enumerate() {
                    let w = &w[lane * 4..][..4];
                    for j in 0..4 {
                        *a = a.wrapping_add(x[j] as i32 * w[j] as i8 as i32);
                    }
                }
            }
            for (lane, &a) in acc.iter().enumerate().take(lanes) {
                let m = m0 + lane;
                let v = t.out.apply(a, t.packed.bias[m], t.packed.multiplier[m]);
                let v = t.finish(v, m, p);
                // SAFETY: `(m, p)` is in this tile, whose outputs no other tile writes, and
                // `m · pixels + p < out_c · pixels`, the length of `y`'s buffer.
                unsafe { super::store(y, t.codes, m * t.pixels + p, v) };
            }
        }
    }
}
