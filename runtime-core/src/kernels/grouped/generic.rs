//! The portable tier of the direct grouped/depthwise conv: the same tiles as the SIMD tiers, as
//! plain loops over 16 output columns that the compiler may vectorise. Any kernel size and stride.

use super::{Band, OC_BLOCK, lane_range};

const LANES: usize = 16;

/// Computes rows `b.rows` of the band's `b.width` output planes.
///
/// # Safety
/// `b.output` must be valid for writes of `b.width` planes of `out_h × out_w` at rows `b.rows`,
/// with no concurrent access there.
pub(super) unsafe fn band(b: &Band) {
    let k = b.kernel;
    let (plane, out_plane) = (b.in_h * b.in_w, b.out_h * b.out_w);
    for oy in b.rows.clone() {
        for ox0 in (0..b.out_w).step_by(LANES) {
            let lanes = LANES.min(b.out_w - ox0);
            let mut acc = [[0f32; LANES]; OC_BLOCK];
            for ic in 0..b.cin_g {
                let chan = &b.input[ic * plane..(ic + 1) * plane];
                for ky in 0..k {
                    let iy = (oy * b.stride[0] + ky) as isize - b.pad_top as isize;
                    if iy < 0 || iy >= b.in_h as isize {
                        continue;
                    }
                    let row = &chan[iy as usize * b.in_w..(iy as usize + 1) * b.in_w];
                    for kx in 0..k {
                        let start = (ox0 * b.stride[1] + kx) as isize - b.pad_left as isize;
                        let valid = lane_range(start, b.stride[1], b.in_w, lanes);
                        let taps = &b.weights[((ic * k + ky) * k + kx) * b.wstride..];
                        for (o, acc) in acc.iter_mut().enumerate().take(b.width) {
                            let w = taps[o];
                            for l in valid.clone() {
                                let ix = (start + (l * b.stride[1]) as isize) as usize;
                                acc[l] += w * row[ix];
                            }
                        }
                    }
                }
            }
            for (o, acc) in acc.iter().enumerate().take(b.width) {
                let bias = b.bias.map_or(0.0, |bias| bias[o]);
                let off = o * out_plane + oy * b.out_w + ox0;
                for (l, &a) in acc.iter().enumerate().take(lanes) {
                    let mut v = a;
                    if b.bias.is_some() {
                        v += bias;
                    }
                    if let Some(r) = b.residual {
                        v += r[off + l];
                    }
                    v = b.activation.apply(v);
                    // SAFETY: `off + l` is in row `oy` of plane `o < width`, inside the region the
                    // caller vouches for.
                    unsafe { *b.output.add(off + l) = v };
                }
            }
        }
    }
}
