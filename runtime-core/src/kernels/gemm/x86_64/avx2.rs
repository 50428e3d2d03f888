//! The AVX2+FMA GEMM micro-kernel: an 8 × 48 tile as up to four 4-row × 3-ymm (24-column)
//! sub-tiles, 12 accumulators each (16 ymm registers cannot hold more).
//!
//! The k range is cut into chunks of [`KB`] steps; per chunk, each 24-column half of B is read by
//! both 4-row halves back to back, so a chunk's B (`KB × NR` floats, 12 KB) is loaded from L2 once
//! and then from L1 (running each sub-tile over the whole k read B from L2 twice, and a deep k block
//! does not fit a 32 KB L1). The sub-tiles carry their sums between chunks in an `MR × NR` buffer
//! on the stack, and the epilogue (C, bias, residual, activation) runs once from that buffer with
//! whole-vector loads and stores: only a ragged last vector is masked, because `vmaskmovps`
//! stores are slow on AMD's cores. A whole tile whose k is a single chunk skips the buffer: its
//! sub-tiles' epilogues run from their registers ([`tile_one_chunk`]).

use std::arch::x86_64::*;

use crate::kernels::Activation;
use crate::kernels::gemm::generic::finish_one;
use crate::kernels::gemm::{BiasAlong, MR, NR, Tile};

/// k steps per chunk of the sub-tile sweep.
const KB: usize = 64;

/// Runs `t` chunk by chunk as 4 × 24 sub-tiles.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the pointers of `t` must be valid as documented on `Tile`
/// (see `generic::tile`), with no one else writing C there.
pub(crate) unsafe fn tile(t: &Tile) {
    // SAFETY: forwarded from the caller.
    if unsafe { narrow(t) } {
        return;
    }
    debug_assert_eq!(t.ldb, NR, "a compact B tile is narrow");
    // The C rows (and residual) the epilogue reads and writes, requested now so that they arrive
    // during the k loop instead of stalling the stores at the end (as on AVX-512). A prefetch
    // never faults.
    if t.finish.is_some() || t.load_c {
        let residual = t.finish.map_or(std::ptr::null(), |f| f.residual);
        for r in 0..t.rows {
            for line in (0..t.cols).step_by(16) {
                let at = r * t.ldc + line;
                // SAFETY: prefetches only (no access), SSE is part of x86-64.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(t.c.wrapping_add(at) as *const i8);
                    if !residual.is_null() {
                        _mm_prefetch::<_MM_HINT_T0>(residual.wrapping_add(at) as *const i8);
                    }
                }
            }
        }
    }
    if t.rows == MR && t.cols == NR && (1..=KB).contains(&t.kc) {
        // SAFETY: forwarded from the caller; the tile is whole and its k one chunk.
        unsafe { tile_one_chunk(t) };
        return;
    }
    // Every k chunk writes the rows and columns the epilogue reads (the first one without
    // reading), so the buffer starts uninitialised: zeroing its 1.5 KB was a `memset` call per
    // tile (0.5–0.8% of ResNeXt-50's time at 1 thread).
    // As vectors, so that it is aligned for whole-vector access.
    let mut sums = std::mem::MaybeUninit::<[__m256; MR * NR / 8]>::uninit();
    let buf = sums.as_mut_ptr().cast::<f32>();
    if t.kc == 0 {
        // SAFETY: the buffer holds `MR × NR` floats.
        unsafe { std::ptr::write_bytes(buf, 0, MR * NR) };
    }
    let (halves, subs) = (t.rows.div_ceil(4), t.cols.div_ceil(24));
    let mut k0 = 0;
    while k0 < t.kc {
        let kb = KB.min(t.kc - k0);
        for s in 0..subs {
            let nv = (t.cols - 24 * s).div_ceil(8).min(3);
            for h in 0..halves {
                let rows = (t.rows - 4 * h).min(4);
                let at = SubTile {
                    // A and B are packed zero-padded to whole `MR × NR` tiles, so a sub-tile may
                    // read past `rows`/`cols`; only the epilogue needs to stop at them.
                    a: t.a.wrapping_add(k0 * MR + 4 * h),
                    b: t.b.wrapping_add(k0 * NR + 24 * s),
                    kc: kb,
                    sums: buf.wrapping_add(4 * h * NR + 24 * s),
                    first: k0 == 0,
                    stream_a: t.stream_a,
                };
                // SAFETY: A holds `kc` rows of `MR` floats and B `kc` rows of `NR` floats from
                // `t.a`, `t.b` (the caller's contract); the sub-tile reads rows `k0..k0 + kb`,
                // `R <= MR - 4h` of A's columns and `8·NV <= NR - 24s` of B's; `sums` is the
                // stack buffer, `MR × NR` floats.
                unsafe {
                    match (rows, nv) {
                        (1, 1) => sub_tile::<1, 1>(&at),
                        (1, 2) => sub_tile::<1, 2>(&at),
                        (1, _) => sub_tile::<1, 3>(&at),
                        (2, 1) => sub_tile::<2, 1>(&at),
                        (2, 2) => sub_tile::<2, 2>(&at),
                        (2, _) => sub_tile::<2, 3>(&at),
                        (_, 1) => sub_tile::<4, 1>(&at),
                        (_, 2) => sub_tile::<4, 2>(&at),
                        (_, _) => sub_tile::<4, 3>(&at),
                    }
                }
            }
        }
        k0 += kb;
    }
    // SAFETY: forwarded from the caller; `buf` holds rows `0..rows`, columns `0..cols` (every
    // k chunk wrote them; with `kc == 0`, zeros).
    unsafe { epilogue(t, buf) };
}

/// A whole `MR × NR` tile whose k fits one chunk (1×1 convs over few channels, as in MobileNetV2,
/// and ResNeXt-50's first 1×1 convs): each 4 × 24 sub-tile's sums go from its registers through
/// the epilogue straight to C, without the stack buffer and the separate epilogue pass, which on
/// a chunk this short cost a large share of the FMAs' time. (Doing the same in the last chunk of
/// deeper tiles measured no different.)
///
/// # Safety
/// As for [`tile`]; also `t.rows == MR`, `t.cols == NR` and `1 <= t.kc <= KB`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_one_chunk(t: &Tile) {
    let none = _mm256_setzero_si256();
    for s in 0..2 {
        for h in 0..2 {
            let mut acc = [[_mm256_setzero_ps(); 3]; 4];
            let at = SubTile {
                a: t.a.wrapping_add(4 * h),
                b: t.b.wrapping_add(24 * s),
                kc: t.kc,
                sums: std::ptr::null_mut(),
                first: true,
                stream_a: false,
            };
            // SAFETY: A holds `kc` rows of `MR` floats and B `kc` rows of `NR` (the caller's
            // contract); the sub-tile reads rows `4h..4h + 4` of A's and columns `24s..24s + 24`
            // of B's; `acc` holds 4 × 3 vectors.
            unsafe { k_loop_4x3::<A_AHEAD>(&at, acc.as_mut_ptr().cast()) };
            for (r, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    // SAFETY: row `4h + r < MR = rows`, columns `24s + 8v + 8 <= NR = cols`.
                    unsafe { store::<false>(t, x, 4 * h + r, 24 * s + 8 * v, none) };
                }
            }
        }
    }
}

/// One sub-tile over one k chunk.
struct SubTile {
    /// Packed A at the chunk's first k and the sub-tile's first row (rows at stride `MR`).
    a: *const f32,
    /// Packed B at the chunk's first k and the sub-tile's first column (rows at stride `NR`).
    b: *const f32,
    kc: usize,
    /// The sub-tile's corner in the `MR × NR` sums buffer.
    sums: *mut f32,
    /// Start from zero instead of the buffer (the first chunk).
    first: bool,
    /// Prefetch A [`A_AHEAD_STREAMING`] bytes ahead instead of [`A_AHEAD`] (`Tile::stream_a`).
    stream_a: bool,
}

/// How far ahead of its k step the 4 × 24 sub-tile prefetches A: 16 k steps.
const A_AHEAD: usize = 512;

/// The same for tiles whose A streams from memory (`Tile::stream_a`): two chunks of k ahead, so
/// the request leads its use by about two chunks' worth of FMAs rather than a sixteenth of one.
/// Measured in-process, alternating call by call on cold copies (medians of ~1000 calls, 2
/// threads): 2048→1024 and 1024→2048 at 7×7 0.93–0.96× the time of 512 B ahead (1 thread
/// 0.96–0.98×), 1024→512 at 14×14 0.97–0.99×; at 28×28 and 56×56 it measured 0.98–1.02×
/// (those keep 512 B).
const A_AHEAD_STREAMING: usize = 4096;

/// `R` rows × `NV` ymm columns of sums over one chunk.
///
/// # Safety
/// AVX2 and FMA; `s.a` readable for `kc` rows of `R` floats at stride `MR`, `s.b` for `kc` rows of
/// `8·NV` floats at stride `NR`, `s.sums` for reads and writes of `R` rows of `8·NV` at stride `NR`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn sub_tile<const R: usize, const NV: usize>(s: &SubTile) {
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    if !s.first {
        for r in 0..R {
            for v in 0..NV {
                // SAFETY: inside the sums buffer (the contract).
                acc[r][v] = unsafe { _mm256_loadu_ps(s.sums.add(r * NR + 8 * v)) };
            }
        }
    }
    if R == 4 && NV == 3 {
        // SAFETY: forwarded from the caller; `acc` is 4 × 3 here.
        unsafe {
            if s.stream_a {
                k_loop_4x3::<A_AHEAD_STREAMING>(s, acc.as_mut_ptr().cast());
            } else {
                k_loop_4x3::<A_AHEAD>(s, acc.as_mut_ptr().cast());
            }
        }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { k_loop(s, &mut acc) };
    }
    for r in 0..R {
        for v in 0..NV {
            // SAFETY: inside the sums buffer (the contract).
            unsafe { _mm256_storeu_ps(s.sums.add(r * NR + 8 * v), acc[r][v]) };
        }
    }
}

/// How far ahead (bytes) a one-row sub-tile prefetches B. Measured in-process on ResNeXt-50's
/// classifier (2048 → 1000, batch 1, weights evicted between calls, alternated call by call):
/// 0.87–0.89× the time without it at 1 thread, 0.89–0.91× at 2; 2, 4 and 8 KB ahead did less.
const B_AHEAD_ONE_ROW: usize = 16 * 1024;

/// The k loop of the narrower sub-tiles (at most 11 live registers, which LLVM allocates well).
///
/// # Safety
/// As for [`sub_tile`].
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn k_loop<const R: usize, const NV: usize>(s: &SubTile, acc: &mut [[__m256; NV]; R]) {
    let (mut a, mut b) = (s.a, s.b);
    for _ in 0..s.kc {
        if R == 1 {
            // One row of A: B is read once (a dense layer at batch 1, whose weights stream from
            // memory), so its rows are requested well ahead; the `NR`-float row is three lines.
            for line in 0..3 {
                _mm_prefetch::<_MM_HINT_T0>(
                    b.wrapping_add(B_AHEAD_ONE_ROW / 4 + 16 * line) as *const i8
                );
            }
        }
        let mut bv = [_mm256_setzero_ps(); NV];
        for v in 0..NV {
            // SAFETY: one of B's `kc` rows, `8·NV` floats (the contract).
            bv[v] = unsafe { _mm256_loadu_ps(b.add(8 * v)) };
        }
        for r in 0..R {
            // SAFETY: one of A's `kc` rows, `R` floats (the contract).
            let x = _mm256_set1_ps(unsafe { *a.add(r) });
            for v in 0..NV {
                acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
            }
        }
        a = a.wrapping_add(MR);
        b = b.wrapping_add(NR);
    }
}

/// The k loop of the full 4 × 24 sub-tile in assembly: its 12 accumulators, 3 B vectors and one
/// broadcast take all 16 ymm registers, and LLVM, scheduling the next row's broadcast early,
/// spilled an accumulator to the stack every step (a store-to-load chain that ran the loop at a
/// third of the FMA peak).
///
/// # Safety
/// As for [`sub_tile`]; `acc` points at 4 × 3 accumulators (row-major).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn k_loop_4x3<const AHEAD: usize>(s: &SubTile, acc: *mut __m256) {
    // SAFETY: `acc` holds 12 vectors (the contract).
    let c = |i: usize| unsafe { acc.add(i) };
    // SAFETY: as above.
    let (mut c0, mut c1, mut c2, mut c3) = unsafe { (*c(0), *c(1), *c(2), *c(3)) };
    // SAFETY: as above.
    let (mut c4, mut c5, mut c6, mut c7) = unsafe { (*c(4), *c(5), *c(6), *c(7)) };
    // SAFETY: as above.
    let (mut c8, mut c9, mut c10, mut c11) = unsafe { (*c(8), *c(9), *c(10), *c(11)) };
    // SAFETY: the loop reads `kc` rows of 4 A floats at stride `MR` and of 24 B floats at stride
    // `NR` (the contract of `sub_tile`), writes only the listed registers, touches no stack.
    unsafe {
        std::arch::asm!(
            "test {k}, {k}",
            "jz 3f",
            "2:",
            "vmovups ymm12, ymmword ptr [{b}]",
            "vmovups ymm13, ymmword ptr [{b} + 32]",
            "vmovups ymm14, ymmword ptr [{b} + 64]",
            // A (weights) streams from memory: fetch it `AHEAD` bytes early.
            "prefetcht0 [{a} + {ahead}]",
            "vbroadcastss ymm15, dword ptr [{a}]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 4]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 8]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 12]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "add {a}, {a_step}",
            "add {b}, {b_step}",
            "dec {k}",
            "jnz 2b",
            "3:",
            a = inout(reg) s.a => _,
            b = inout(reg) s.b => _,
            k = inout(reg) s.kc => _,
            ahead = const AHEAD,
            a_step = const MR * 4,
            b_step = const NR * 4,
            inout("ymm0") c0,
            inout("ymm1") c1,
            inout("ymm2") c2,
            inout("ymm3") c3,
            inout("ymm4") c4,
            inout("ymm5") c5,
            inout("ymm6") c6,
            inout("ymm7") c7,
            inout("ymm8") c8,
            inout("ymm9") c9,
            inout("ymm10") c10,
            inout("ymm11") c11,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
    }
    for (i, v) in [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]
        .into_iter()
        .enumerate()
    {
        // SAFETY: as above.
        unsafe { *c(i) = v };
    }
}

/// Writes rows `0..rows`, columns `0..cols` of the sums buffer to C with the tile's epilogue.
///
/// # Safety
/// AVX2 and FMA; `sums` is a 32-byte aligned `MR × NR` buffer whose rows `0..rows`, columns
/// `0..cols` rounded up to 8 are initialised; C, the residual and the bias as documented on
/// `Tile`.
#[target_feature(enable = "avx2,fma")]
unsafe fn epilogue(t: &Tile, sums: *const f32) {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (full, rem) = (t.cols / 8, t.cols % 8);
    let tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lanes);
    for r in 0..t.rows {
        for v in 0..full {
            // SAFETY: columns `8v..8v + 8 <= cols` of row `r < rows` (the contract); `col + 8
            // <= NR` floats of row `r < MR` of the buffer.
            let x = unsafe { _mm256_load_ps(sums.add(r * NR + 8 * v)) };
            // SAFETY: as above.
            unsafe { store::<false>(t, x, r, 8 * v, tail) };
        }
        if rem > 0 {
            // SAFETY: as above, for the last (partial) vector of the buffer's row.
            let x = unsafe { _mm256_load_ps(sums.add(r * NR + 8 * full)) };
            // SAFETY: the `rem` lanes of `tail` are columns `< cols` of row `r` (the contract).
            unsafe { store::<true>(t, x, r, 8 * full, tail) };
        }
    }
}

/// One vector of the epilogue: the sums `x` of columns `col..col + 8` of row `r`, all of them or
/// (`MASKED`) the lanes of `mask`.
///
/// # Safety
/// AVX2 and FMA; those columns of row `r` of C, of the residual (laid out like C) and of a column
/// bias must be readable, and of C writable by us alone (the contract of `Tile`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store<const MASKED: bool>(t: &Tile, mut x: __m256, r: usize, col: usize, mask: __m256i) {
    // Every access below is within the rows and columns of the contract; masked-off lanes are
    // not accessed.
    // SAFETY: `load` is given only such pointers.
    let load = |p: *const f32| unsafe {
        if MASKED {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    };
    let at = r * t.ldc + col;
    if t.load_c {
        x = _mm256_add_ps(x, load(t.c.wrapping_add(at)));
    }
    if let Some(f) = t.finish {
        if !f.bias.is_null() {
            x = _mm256_add_ps(
                x,
                match f.bias_along {
                    // SAFETY: `r < rows` row bias entries (the contract).
                    BiasAlong::Rows => _mm256_set1_ps(unsafe { *f.bias.add(r) }),
                    BiasAlong::Cols => load(f.bias.wrapping_add(col)),
                },
            );
        }
        if !f.residual.is_null() {
            x = _mm256_add_ps(x, load(f.residual.wrapping_add(at)));
        }
        x = activate(f.activation, x);
    }
    // SAFETY: as above, C's columns of row `r` are ours alone.
    unsafe {
        if MASKED {
            _mm256_maskstore_ps(t.c.add(at), mask, x)
        } else {
            _mm256_storeu_ps(t.c.add(at), x)
        }
    }
}

/// Runs `t` on [`tile_narrow`] if it has 1–4 columns and more than 2 rows or a compact B (the
/// ragged end of a 7×7 or 14×14 map, where vectors over columns would be mostly empty: a
/// 1-column tile cost two 4 × 8 sub-tiles); false otherwise (nothing done). Shared by the
/// AVX-512 tier.
///
/// # Safety
/// As for [`tile`].
pub(crate) unsafe fn narrow(t: &Tile) -> bool {
    // Two rows or fewer run faster on the column sub-tiles, unless B is packed compactly
    // (`gemm::b_row_len`), which only this kernel reads.
    if t.rows <= 2 && t.ldb == NR {
        return false;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match t.cols {
            1 => tile_narrow::<1, 8>(t),
            2 => tile_narrow::<2, 4>(t),
            3 => tile_narrow::<3, 3>(t),
            4 => tile_narrow::<4, 2>(t),
            _ => return false,
        }
    }
    true
}

/// A tile of `C` (1–4) columns: one ymm holds the panel's 8 rows of one column; `P` accumulators
/// per column (k steps `P` apart), 8 or 9 in all, hide the FMA latency. With B compact, 8 chains
/// for one column measured 0.98–0.99× the time of 2 on ResNeXt-50's 7×7 1×1 convs (in-process,
/// alternated call by call on cold copies, 1 and 2 threads).
///
/// # Safety
/// AVX2 and FMA; `C == t.cols`; the pointers of `t` valid as documented on `Tile`, with no one
/// else writing C there.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_narrow<const C: usize, const P: usize>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); P]; C];
    let (a, b) = (t.a, t.b);
    let mut k = 0;
    while k + P <= t.kc {
        for p in 0..P {
            // SAFETY: A holds `kc` rows of `MR = 8` floats, B `kc` rows of `ldb >= C` floats.
            unsafe {
                let av = _mm256_loadu_ps(a.add((k + p) * MR));
                for c in 0..C {
                    let bv = _mm256_set1_ps(*b.add((k + p) * t.ldb + c));
                    acc[c][p] = _mm256_fmadd_ps(av, bv, acc[c][p]);
                }
            }
        }
        k += P;
    }
    for p in 0..t.kc - k {
        // SAFETY: as above, for the last rows `k + p < kc`.
        unsafe {
            let av = _mm256_loadu_ps(a.add((k + p) * MR));
            for c in 0..C {
                let bv = _mm256_set1_ps(*b.add((k + p) * t.ldb + c));
                acc[c][p] = _mm256_fmadd_ps(av, bv, acc[c][p]);
            }
        }
    }
    let mut sum = [_mm256_setzero_ps(); C];
    for c in 0..C {
        for p in 0..P {
            sum[c] = _mm256_add_ps(sum[c], acc[c][p]);
        }
    }
    for c in 0..C {
        let mut rows = [0.0f32; 8];
        // SAFETY: `rows` holds 8 floats.
        unsafe { _mm256_storeu_ps(rows.as_mut_ptr(), sum[c]) };
        for (r, &v) in rows.iter().enumerate().take(t.rows) {
            // SAFETY: (r, c) lies in the tile (`r < rows`, `c < cols = C`), inside C and the
            // residual (caller's contract).
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

/// `activation` on eight lanes, with the scalar `Activation::apply`'s NaN behaviour (`max`/`min`
/// return their second operand, `x`, when it is NaN; a NaN compares false, so the blends keep it).
/// The transcendental activations go out of line to [`transcendental`]. Shared by the AVX2 conv
/// kernels.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn activate(activation: Activation, x: __m256) -> __m256 {
    match activation {
        Activation::None => x,
        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), x),
        Activation::Clip { min, max } => {
            _mm256_min_ps(_mm256_set1_ps(max), _mm256_max_ps(_mm256_set1_ps(min), x))
        }
        Activation::HardSigmoid { alpha, beta } => {
            let y = _mm256_add_ps(
                _mm256_mul_ps(_mm256_set1_ps(alpha), x),
                _mm256_set1_ps(beta),
            );
            _mm256_min_ps(_mm256_set1_ps(1.0), _mm256_max_ps(_mm256_setzero_ps(), y))
        }
        Activation::HardSwish => {
            let y = _mm256_add_ps(x, _mm256_set1_ps(3.0));
            let y = _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(_mm256_setzero_ps(), y));
            _mm256_div_ps(_mm256_mul_ps(x, y), _mm256_set1_ps(6.0))
        }
        Activation::LeakyRelu { alpha } => {
            let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
            _mm256_blendv_ps(x, _mm256_mul_ps(_mm256_set1_ps(alpha), x), negative)
        }
        Activation::Sigmoid
        | Activation::Tanh
        | Activation::Silu
        | Activation::Elu { .. }
        | Activation::Gelu
        | Activation::GeluTanh
        | Activation::Erf => transcendental(activation, x),
    }
}

/// The transcendental activations in vector registers ([`math::avx2`](crate::kernels::math::avx2)):
/// out of line, so that the vector epilogue above stays small enough to be inlined into every
/// kernel (a call there costs the GEMM's 1×1 convs several percent). The math needs FMA, which
/// both SIMD tiers have; checking it here (one cached load) keeps `activate` callable from
/// AVX2-only code. Without FMA the lanes go through the scalar `Activation::apply`.
#[inline(never)]
#[target_feature(enable = "avx2")]
fn transcendental(activation: Activation, x: __m256) -> __m256 {
    if is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 is this function's feature, FMA was detected just now.
        return unsafe { crate::kernels::math::avx2::activate(activation, x) };
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
    for v in &mut lanes {
        *v = activation.apply(*v);
    }
    // SAFETY: as above.
    unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
}
