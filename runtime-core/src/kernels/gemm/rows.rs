//! Im2col convs tiled by output row, for strided layers with small weights and wide output rows
//! (the 7×7/2 stem, MobileNet's 3×3/2 stem).
//!
//! The flattened im2col of [`super::pack_im2col`] cuts B into 48-column tiles across output rows,
//! so each of its rows is up to three runs, each a strided gather with its own padding checks:
//! with few output channels to share that cost (64 for the stem), packing took a third of the
//! layer. Here each image's input is first copied once, zero-padded, into `stride_x` column
//! phases, `phase[ic][y][q][j] = padded[ic][y][j · sx + q]`. A tap `(ic, ky, kx)` of output row
//! `oy`, columns `ox0..ox0 + w`, is then the contiguous run
//! `phase[ic][oy · sy + ky · dy][(kx · dx) % sx][ox0 + (kx · dx) / sx ..][..w]`, so packing a B tile
//! is one plain copy per tap. Tiles follow output rows (`out_w` = 112 → 48 + 48 + 16 columns), and
//! every A panel (the whole weight matrix stays in L1/L2, see [`applies`]) runs over a tile while it
//! is in L1.

use super::{BiasAlong, Finish, KC, MR, NR, Tile, micro};
use crate::exec::Ctx;
use crate::exec::isa::Isa;
use crate::kernels::{ConvArgs, ConvShape, SharedOut};

/// Output rows narrower than this waste too many lanes in row tiles (7 of 16 at 7 wide); the
/// flattened im2col serves them.
const MIN_OUT_W: usize = 12;
/// Largest weight matrix (floats, one group) kept for row tiling: each tile sweeps all of A, which
/// must therefore stay in L2.
const MAX_A: usize = 64 * 1024;

/// Whether row tiling serves `s` (a valid shape): a column stride over 1, wide enough output rows
/// and small weights. At column stride 1 the flattened im2col packs each tap with plain copies
/// too, and its tiles run across output rows, where row tiles leave lanes idle at each row's end
/// (56 wide: a 48-column tile and an 8-column one): ResNet-50's 64→64 3×3 convs at 56×56 took
/// 0.88× the time on the flattened im2col at 1 and 2 threads (in the model, fastest calls).
pub(crate) fn applies(s: &ConvShape) -> bool {
    let (m, k) = (
        s.out_c / s.group,
        s.in_c / s.group * s.kernel[0] * s.kernel[1],
    );
    s.stride[1] > 1 && s.out_w >= MIN_OUT_W && m * k <= MAX_A
}

/// Padded input height, phases (`stride_x`) and phase width of the phase-split input.
fn phase_dims(s: &ConvShape) -> (usize, usize, usize) {
    let hp = s.in_h + s.pads[0] + s.pads[2];
    let wp = s.in_w + s.pads[1] + s.pads[3];
    let sx = s.stride[1];
    (hp, sx, wp.div_ceil(sx))
}

fn phase_len(s: &ConvShape) -> usize {
    let (hp, sx, wq) = phase_dims(s);
    s.in_c * hp * sx * wq
}

/// Floats of one B tile: at most `KC` taps of `NR` columns.
fn tile_len(s: &ConvShape) -> usize {
    let k = s.in_c / s.group * s.kernel[0] * s.kernel[1];
    k.min(KC) * NR
}

/// Scratch [`run`] needs: the phase-split input of one image and a B tile per thread.
pub(crate) fn scratch_len(s: &ConvShape, threads: usize) -> usize {
    phase_len(s) + super::ALIGN_SLACK + threads.max(1) * tile_len(s)
}

/// Runs the conv. The caller has checked the shape (valid, [`applies`]), the lengths of `input`
/// (`batch` images), `packed` (`group` A matrices packed by `pack_a`), `output`, the epilogue and
/// `scratch` ([`scratch_len`]).
pub(crate) fn run(ctx: &Ctx, args: ConvArgs) {
    let ConvArgs {
        shape,
        batch,
        input,
        packed,
        epilogue,
        output,
        scratch,
    } = args;
    let s = &shape;
    let Ctx { isa, threads } = *ctx;
    let isa = if isa.supported() { isa } else { Isa::Generic };
    let ctx = &Ctx { isa, threads };
    let (hp, sx, wq) = phase_dims(s);
    let (phase, tiles) = scratch.split_at_mut(phase_len(s));
    // Each tile is a multiple of 64 bytes (`NR` floats a row): all start aligned.
    let tiles = super::aligned(tiles);
    let (cin_g, m) = (s.in_c / s.group, s.out_c / s.group);
    let k = cin_g * s.kernel[0] * s.kernel[1];
    let acc_run = if super::is_stem(s) {
        super::STEM_ACC_CHUNK
    } else {
        super::ACC_CHUNK
    };
    let a_len = super::packed_a_len(m, k);
    let n = s.out_h * s.out_w;
    let tile_len = tile_len(s);
    let row_chunks = s.out_h.min((4 * threads.count()).div_ceil(s.group)).max(1);
    let out = SharedOut(output.as_mut_ptr());
    let tiles = SharedOut(tiles.as_mut_ptr());
    for img in 0..batch {
        let x = &input[img * s.input_len()..][..s.input_len()];
        fill_phases(ctx, s, x, phase);
        let phase: &[f32] = phase;
        let task = |t: usize, worker: usize| {
            let (g, chunk) = (t / row_chunks, t % row_chunks);
            let rows = chunk * s.out_h / row_chunks..(chunk + 1) * s.out_h / row_chunks;
            // SAFETY: worker `worker` alone uses B tile slot `worker` (`scratch_len` holds one per
            // thread).
            let b = unsafe {
                std::slice::from_raw_parts_mut(tiles.ptr().add(worker * tile_len), tile_len)
            };
            let a = &packed[g * a_len..(g + 1) * a_len];
            let c0 = (img * s.out_c + g * m) * n;
            let bias = epilogue.bias.map(|b| &b[g * m..(g + 1) * m]);
            for oy in rows {
                for ox0 in (0..s.out_w).step_by(NR) {
                    let w = NR.min(s.out_w - ox0);
                    for k0 in (0..k).step_by(KC) {
                        let kc = KC.min(k - k0);
                        pack_row_tile(s, phase, (hp, sx, wq), g * cin_g, (oy, ox0, w), (k0, kc), b);
                        let last = k0 + kc == k;
                        for panel in 0..m.div_ceil(MR) {
                            let row = panel * MR;
                            let c = c0 + row * n + oy * s.out_w + ox0;
                            let finish = last.then(|| Finish {
                                bias: bias.map_or(std::ptr::null(), |b| b[row..].as_ptr()),
                                bias_along: BiasAlong::Rows,
                                residual: epilogue
                                    .residual
                                    .map_or(std::ptr::null(), |r| r.as_ptr().wrapping_add(c)),
                                activation: epilogue.activation,
                            });
                            let t = Tile {
                                kc,
                                a: a[(panel * k + k0) * MR..].as_ptr(),
                                b: b.as_ptr(),
                                ldb: NR,
                                c: out.ptr().wrapping_add(c),
                                ldc: n,
                                rows: MR.min(m - row),
                                cols: w,
                                load_c: k0 > 0,
                                stream_a: false,
                                finish,
                            };
                            for (_, sub) in t.chunks(acc_run) {
                                // SAFETY: A holds `kc` packed rows from this offset (the caller
                                // checked its length), the B tile `kc` rows of `NR`; the C
                                // rectangle (rows `row..row + rows` of group `g`, columns
                                // `ox0..ox0 + w` of output row `oy`) lies in `output` and the
                                // residual, and only this task writes output row `oy` of group `g`.
                                unsafe { micro(&sub, isa) };
                            }
                        }
                    }
                }
            }
        };
        threads.run_indexed(s.group * row_chunks, &task);
    }
}

/// Writes the zero-padded, phase-split copy of one image `x` into `phase` (see the module docs),
/// [`PHASE_ROWS`] padded input rows per task.
/// `ctx.isa` must be supported by this CPU.
fn fill_phases(ctx: &Ctx, s: &ConvShape, x: &[f32], phase: &mut [f32]) {
    let Ctx { isa, threads } = *ctx;
    let (hp, sx, wq) = phase_dims(s);
    let (pt, pl) = (s.pads[0], s.pads[1]);
    let dst = SharedOut(phase.as_mut_ptr());
    let rows = s.in_c * hp;
    threads.run(rows.div_ceil(PHASE_ROWS), &|t| {
        for r in t * PHASE_ROWS..((t + 1) * PHASE_ROWS).min(rows) {
            let (ic, y) = (r / hp, r % hp);
            // SAFETY: task `t` alone writes the `sx · wq` floats of padded row `y` of channel
            // `ic` (row `r` of `in_c · hp`), inside `phase` (`in_c · hp · sx · wq` floats, checked
            // by the caller).
            let line =
                unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(r * sx * wq), sx * wq) };
            let src = y
                .checked_sub(pt)
                .filter(|&iy| iy < s.in_h)
                .map(|iy| &x[(ic * s.in_h + iy) * s.in_w..][..s.in_w]);
            for (q, out) in line.chunks_exact_mut(wq).enumerate() {
                // Phase columns `j` whose input column `j · sx + q − pl` lies in `0..in_w`.
                let lo = pl.saturating_sub(q).div_ceil(sx).min(wq);
                let hi = (s.in_w + pl).saturating_sub(q).div_ceil(sx).clamp(lo, wq);
                out[..lo].fill(0.0);
                out[hi..].fill(0.0);
                match src {
                    Some(row) => {
                        let from = lo * sx + q - pl;
                        crate::kernels::gather_strided(&row[from..], sx, &mut out[lo..hi], isa);
                    }
                    None => out[lo..hi].fill(0.0),
                }
            }
        }
    });
}

/// Padded input rows per task of [`fill_phases`]: a stem's rows are short (224 floats), and one
/// task each (690 tasks for ResNeXt-50's stem) cost more in claiming than in copying.
const PHASE_ROWS: usize = 8;

/// Copies `src` (at most `NR` floats) to the start of `row` in 16-float blocks (fixed-size
/// copies, a vector move each, where a `copy_from_slice` of a run-time length calls `memcpy`),
/// zeroing the rest of its last 16-lane vector.
#[inline(always)]
fn copy_run(row: &mut [f32], src: &[f32]) {
    let w = src.len();
    let full = w / 16;
    for (d, s) in row.chunks_exact_mut(16).zip(src.chunks_exact(16)) {
        if let (Ok(d), Ok(s)) = (<&mut [f32; 16]>::try_from(d), <&[f32; 16]>::try_from(s)) {
            *d = *s;
        }
    }
    let tail = &mut row[16 * full..w.next_multiple_of(16)];
    for (i, v) in tail.iter_mut().enumerate() {
        *v = src.get(16 * full + i).copied().unwrap_or(0.0);
    }
}

/// Packs taps `k0..k0 + kc` of output row `oy`, columns `ox0..ox0 + w`, of the group whose first
/// input channel is `ic0`, into `b` as `[kc][NR]` (columns past `w` zero).
fn pack_row_tile(
    s: &ConvShape,
    phase: &[f32],
    (hp, sx, wq): (usize, usize, usize),
    ic0: usize,
    (oy, ox0, w): (usize, usize, usize),
    (k0, kc): (usize, usize),
    b: &mut [f32],
) {
    let [kh, kw] = s.kernel;
    let [dy, dx] = s.dilation;
    let (mut ic, mut ky, mut kx) = (k0 / (kh * kw), (k0 / kw) % kh, k0 % kw);
    for row in b[..kc * NR].chunks_exact_mut(NR) {
        let y = oy * s.stride[0] + ky * dy;
        let (q, j) = ((kx * dx) % sx, ox0 + (kx * dx) / sx);
        let start = (((ic0 + ic) * hp + y) * sx + q) * wq + j;
        copy_run(row, &phase[start..start + w]);
        (ic, ky, kx) = super::next_tap((ic, ky, kx), kh, kw);
    }
}
