//! AVX2 conv by output rows over a ring of zero-padded input rows on the stack: depthwise convs
//! and grouped convs with few input channels per group.

use std::arch::x86_64::*;

use super::{Band, finish8};
use crate::kernels::load_strided;

/// Runs `b` on [`padded_rows`] if it is a band the row kernel takes; false otherwise (nothing
/// written).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` as for `tiles_avx512`.
pub(crate) unsafe fn padded_rows_avx2(b: &Band) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (b.kernel, b.stride[1]) {
            (3, 1) => padded_rows::<3, 1>(b),
            (3, 2) => padded_rows::<3, 2>(b),
            (5, 1) => padded_rows::<5, 1>(b),
            (5, 2) => padded_rows::<5, 2>(b),
            _ => false,
        }
    }
}

/// Floats of stack the AVX2 row kernel keeps its zero-padded input rows in (32 KB): `cin_g · K`
/// rows of the padded width; bands that need more go to `tiles8`.
const RING: usize = 8192;

/// Input channels per group up to which [`padded_rows`] runs grouped convs, at column stride 1 and 2.
/// It refills its rows for every block of output channels, which pays off while the rows are few;
/// measured on ResNeXt-50's shapes (`bench_grouped`, three alternated runs against `tiles8`):
/// stage 1 (4 channels, 56×56) 2.3× faster, stage 2's stride-2 conv (8 channels) 1.5–3× faster,
/// but stage 2's stride-1 convs (8 channels, 28 columns in steps of 24) 1.5–2× slower, so those and
/// stages 3–4 (16 and 32 channels per group) stay on `tiles8`.
const ROWS_MAX_CIN: [usize; 2] = [4, 8];

/// AVX2 direct conv by output rows over zero-padded input rows: depthwise convs and grouped convs
/// with few channels per group, `K`×`K`, stride `S` (columns; rows any).
///
/// The input rows an output row reads, of every input channel of the group, are copied into a
/// ring of zero-padded row buffers on the stack (row `iy` in buffer `iy mod K`, copied once while
/// output rows read it), so the inner loop has no masks and no bounds logic: unaligned loads at
/// each tap's offset (stride 2: two loads, even lanes kept), then `OB` output channels × `V`
/// vectors of 8 columns in registers ([`row_block`]). The tile kernel `tiles8` worked out masks
/// and offsets for every 8-column tile and spilled registers for stride 2 (12% of the FMA peak on
/// ResNeXt's 56×56 stride-2 grouped conv, 1–2 GFLOP/s on MobileNetV2's depthwise convs). Returns
/// false (nothing written) when the band is not one it takes.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `b.output` must be valid for writes of the band's rows of
/// its `b.width` planes, with no concurrent access there.
// The ring's slots read best indexed by kernel row.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn padded_rows<const K: usize, const S: usize>(b: &Band) -> bool {
    // Buffer columns the loads may touch: each step's last vector starts before `out_w` rounded
    // up to 8, at most 4 vectors of 8 on, and reads S·8 + K floats from there; beyond the row's
    // padded end, only zeros.
    let cap = (b.out_w.next_multiple_of(8) + 32) * S + K + 8 * S;
    let used = b.cin_g * K * cap;
    if used > RING || b.pad_left + b.in_w > cap || b.cin_g > ROWS_MAX_CIN[S - 1] {
        return false;
    }
    // Uninitialised but for the `used` floats, zeroed here (zeroing all 32 KB cost more than the
    // conv itself on small planes). Only the input columns of a row are ever written, so the
    // padding stays zero: column `j` of buffer `(ic, slot)` is input column `j - pad_left` of the
    // row it holds, or zero.
    let mut store = std::mem::MaybeUninit::<[f32; RING]>::uninit();
    let base = store.as_mut_ptr().cast::<f32>();
    // SAFETY: `used <= RING` floats of `store`, zeroed before the slice is made.
    let ring = unsafe {
        std::ptr::write_bytes(base, 0, used);
        std::slice::from_raw_parts_mut(base, used)
    };
    let plane = b.in_h * b.in_w;
    let mut held = [usize::MAX; K];
    for oy in b.rows.clone() {
        let mut live = [None; K];
        for ky in 0..K {
            let iy = (oy * b.stride[0] + ky) as isize - b.pad_top as isize;
            if iy < 0 || iy >= b.in_h as isize {
                continue;
            }
            let iy = iy as usize;
            let slot = iy % K;
            if held[slot] != iy {
                for ic in 0..b.cin_g {
                    let at = (ic * K + slot) * cap + b.pad_left;
                    ring[at..at + b.in_w]
                        .copy_from_slice(&b.input[ic * plane + iy * b.in_w..][..b.in_w]);
                }
                held[slot] = iy;
            }
            live[ky] = Some(slot);
        }
        let step = RowStep {
            ring: ring.as_ptr(),
            cap,
            live,
            oy,
            o0: 0,
        };
        let mut o0 = 0;
        while o0 < b.width {
            let ob = (b.width - o0).min(4);
            let step = RowStep { o0, ..step };
            // SAFETY: the ring holds `cin_g · K` buffers of `cap` floats (see `row_block`);
            // output channels `o0..o0 + ob` are in the block; forwarded from the caller.
            unsafe {
                match (ob, S) {
                    // One channel (depthwise): as many vectors as the row needs, up to 4 (a
                    // 7-column row in four vectors did four times the FMAs it kept).
                    (1, _) => match b.out_w.div_ceil(8) {
                        1 => row_block::<K, S, 1, 1>(b, &step),
                        2 => row_block::<K, S, 1, 2>(b, &step),
                        3 => row_block::<K, S, 1, 3>(b, &step),
                        _ => row_block::<K, S, 1, 4>(b, &step),
                    },
                    (2, 1) => row_block::<K, S, 2, 4>(b, &step),
                    (2, _) => row_block::<K, S, 2, 3>(b, &step),
                    (3, 1) => row_block::<K, S, 3, 3>(b, &step),
                    (3, _) => row_block::<K, S, 3, 2>(b, &step),
                    (_, 1) => row_block::<K, S, 4, 3>(b, &step),
                    (_, _) => row_block::<K, S, 4, 2>(b, &step),
                }
            }
            o0 += ob;
        }
    }
    true
}

/// One output row of [`padded_rows`] for some of the block's channels.
#[derive(Clone, Copy)]
struct RowStep<Live: Copy> {
    /// `cin_g · K` padded rows of `cap` floats: buffer `(ic, slot)` at `(ic · K + slot) · cap`.
    ring: *const f32,
    cap: usize,
    /// Per kernel row `ky`: the buffer slot of its input row, or none (a row of the padding).
    live: Live,
    oy: usize,
    /// The first of the block's output channels this step computes.
    o0: usize,
}

/// Output row `r.oy`, channels `r.o0..r.o0 + OB` of the block, `V` vectors of 8 columns at a time.
///
/// # Safety
/// AVX2 and FMA; `r.ring` as documented on [`RowStep`], with `cap` as [`padded_rows`] sizes it;
/// `r.o0 + OB <= b.width`; `b.output` as for [`padded_rows`].
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_block<const K: usize, const S: usize, const OB: usize, const V: usize>(
    b: &Band,
    r: &RowStep<[Option<usize>; K]>,
) {
    const L: usize = 8;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let out_plane = b.out_h * b.out_w;
    let weights = b.weights.as_ptr();
    let mut ox0 = 0;
    while ox0 < b.out_w {
        let mut acc = [[_mm256_setzero_ps(); V]; OB];
        for ic in 0..b.cin_g {
            for ky in 0..K {
                let Some(slot) = r.live[ky] else { continue };
                let row = r.ring.wrapping_add((ic * K + slot) * r.cap);
                for kx in 0..K {
                    let mut x = [_mm256_setzero_ps(); V];
                    for v in 0..V {
                        let at = (ox0 + v * L) * S + kx;
                        // SAFETY: `ox0 < out_w` and `v < V <= 4`, so `at + 8·S <= cap` (see
                        // `padded_rows`): inside this row buffer.
                        x[v] = unsafe { load_strided::<S>(row.add(at)) };
                    }
                    let tap = ((ic * K + ky) * K + kx) * b.wstride + r.o0;
                    for o in 0..OB {
                        // SAFETY: `tap + o` indexes tap `(ic, ky, kx)` of channel `o0 + o <
                        // width` in the block's packed weights (`Band::weights`).
                        let w = _mm256_set1_ps(unsafe { *weights.add(tap + o) });
                        for v in 0..V {
                            acc[o][v] = _mm256_fmadd_ps(w, x[v], acc[o][v]);
                        }
                    }
                }
            }
        }
        for o in 0..OB {
            let oc = r.o0 + o;
            // The bias after the sum, as the reference adds it.
            let bias = _mm256_set1_ps(b.bias.map_or(0.0, |bias| bias[oc]));
            for v in 0..V {
                let ox = ox0 + v * L;
                if ox >= b.out_w {
                    break;
                }
                let at = oc * out_plane + r.oy * b.out_w + ox;
                let y = _mm256_add_ps(acc[o][v], bias);
                // SAFETY: row `oy` is in `b.rows`, columns `ox..ox + n` of plane `oc < width`
                // (the caller vouches for exclusive access there and for the residual's layout).
                unsafe { finish8(b, y, at, L.min(b.out_w - ox), lanes) };
            }
        }
        ox0 += V * L;
    }
}
