//! Intel AMX (AMX-TILE, AMX-BF16) for the bf16 GEMM: `tdpbf16ps` multiplies a 16 × 32 bf16 tile
//! of A by a 32 × 16 tile of B into a 16 × 16 fp32 tile, 8192 multiply-adds an instruction where
//! `vdpbf16ps` does 32.
//!
//! Rust has no stable AMX intrinsics, so the instructions are inline assembly: the tile registers
//! are outside the compiler's register allocation, and nothing else in the process touches them.
//! Linux hands out the 8 KiB of tile state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`):
//! [`usable`] asks once per process and says no where the CPU or the kernel does.
//!
//! Layouts, in the bf16 GEMM's K-pair slots (a pair of bf16 in 32 bits):
//! - A: a block of [`ROWS`] rows, row-major, `kp` slots a row (`kp` a multiple of [`PAIRS`]);
//!   `tdpbf16ps` reads [`PAIRS`] slots of each of the 16 rows.
//! - B: the bf16 GEMM's packed tile, `NR` slots a K-pair row: three 16-column tiles side by side,
//!   which is the "VNNI" layout `tdpbf16ps` takes for its second operand.
//! - C: a staging block of [`ROWS`] × `NR` floats, handed to the fp32 kernels' epilogue.

use std::arch::asm;
use std::sync::OnceLock;

use super::super::NR;

/// Rows of A (and C) a block: one tile's rows.
pub(crate) const ROWS: usize = 16;
/// K-pairs a `tdpbf16ps` step: one tile row of 64 bytes.
pub(crate) const PAIRS: usize = 16;

/// A tile configuration, `ldtilecfg`'s 64-byte operand.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl Config {
    /// Palette 1 with tiles 0–7 of `(bytes a row, rows)` each, the others unused.
    const fn new(tiles: [(u16, u8); 8]) -> Config {
        let mut colsb = [0u16; 16];
        let mut rows = [0u8; 16];
        let mut t = 0;
        while t < 8 {
            (colsb[t], rows[t]) = tiles[t];
            t += 1;
        }
        Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb,
            rows,
        }
    }

    /// Loads this configuration on this thread (zeroing every tile).
    ///
    /// # Safety
    /// AMX is usable ([`usable`] or [`usable_int8`] returned true).
    #[inline]
    unsafe fn load(&self) {
        // SAFETY: a valid palette-1 configuration of 64 bytes (`new`); AMX is usable (caller).
        unsafe { asm!("ldtilecfg [{c}]", c = in(reg) self, options(nostack, readonly)) };
    }
}

/// Every tile 16 rows of 64 bytes. [`block`]: tiles 0–2 the C accumulators (16 rows of 16
/// floats), tile 4 the A block (16 rows of 16 slots), tiles 5–7 the three B column tiles (16
/// K-pair rows of 16 slots).
static CONFIG: Config = Config::new([(64, 16); 8]);

/// The configuration of [`block_t`]: tiles 0–3 the C accumulators (16 pixels × 8 channels),
/// tiles 4–5 two blocks of activations (16 pixels × 16 K-pairs), tiles 6–7 two weight panels
/// (16 K-pairs × 8 channels, the packed A panel as it is).
static CONFIG_T: Config = Config::new([
    (32, 16),
    (32, 16),
    (32, 16),
    (32, 16),
    (64, 16),
    (64, 16),
    (32, 16),
    (32, 16),
]);

/// The configuration of the direct convs' tiles ([`accumulate_i8`], [`accumulate_bf16`]) for
/// steps of `kw` words (1 to 16): tiles 0–3 the accumulators (16 rows of 64 bytes), 4–5 two
/// blocks of weights (16 rows of `kw` words), 6–7 two of inputs (`kw` rows of 16 words).
pub(crate) struct DirectConfig(Config);

impl DirectConfig {
    pub(crate) fn new(kw: usize) -> DirectConfig {
        assert!((1..=16).contains(&kw));
        let (weights, inputs) = ((4 * kw as u16, 16), (64, kw as u8));
        let acc = (64, 16);
        DirectConfig(Config::new([
            acc, acc, acc, acc, weights, weights, inputs, inputs,
        ]))
    }

    /// Loads this configuration on this thread (zeroing every tile).
    ///
    /// # Safety
    /// AMX is usable ([`usable`] or [`usable_int8`] returned true).
    #[inline]
    pub(crate) unsafe fn load(&self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.load() };
    }
}

/// Whether this process may use AMX-BF16: the CPU has AMX-TILE and AMX-BF16 and the OS granted
/// the tile state. Decided once; logged on stderr when `RESNEXT_LOG` is set.
pub fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        let ok = cpu_has_amx(22) && request_tile_state();
        if std::env::var_os("RESNEXT_LOG").is_some() {
            eprintln!(
                "resnext-runtime: AMX-BF16 {}",
                if ok { "usable" } else { "unavailable" }
            );
        }
        ok
    })
}

/// Whether this process may use AMX-INT8: the CPU has AMX-TILE and AMX-INT8 and the OS granted
/// the tile state. Decided once.
pub fn usable_int8() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| cpu_has_amx(25) && request_tile_state())
}

/// CPUID leaf 7: EDX bit 24 (AMX-TILE) and bit `kind` (22 AMX-BF16, 25 AMX-INT8).
fn cpu_has_amx(kind: u32) -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 reads as zeros where it is not defined.
    let leaf = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
    leaf.edx & (1 << 24) != 0 && leaf.edx & (1 << kind) != 0
}

/// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`,
/// process-wide), once; true when granted.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(ask_tile_state)
}

/// The system call behind [`request_tile_state`].
#[cfg(target_os = "linux")]
fn ask_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call with these arguments only changes which extended states
    // the process may use; it reads and writes no memory of ours. `syscall` clobbers rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// Other systems: not tried.
#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// Loads [`block`]'s tile configuration on this thread (zeroing every tile).
///
/// # Safety
/// [`usable`] returned true.
#[inline]
pub(crate) unsafe fn configure() {
    // SAFETY: forwarded from the caller.
    unsafe { CONFIG.load() };
}

/// Loads [`block_t`]'s tile configuration on this thread (zeroing every tile).
///
/// # Safety
/// [`usable`] returned true.
#[inline]
pub(crate) unsafe fn configure_t() {
    // SAFETY: forwarded from the caller.
    unsafe { CONFIG_T.load() };
}

/// Returns the tile state to its initial (unused) form, so that context switches of this thread
/// save none of it.
///
/// # Safety
/// [`usable`] returned true.
#[inline]
pub(crate) unsafe fn release() {
    // SAFETY: AMX is usable (caller); `tilerelease` touches no memory.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// `C = A·B` for one [`ROWS`] × `NR` block over `kp` K-pairs: A at `a`, [`ROWS`] rows of `lda`
/// slots; B at `b`, `kp` rows of `NR` slots; C written to `c`, [`ROWS`] rows of `NR` floats.
///
/// # Safety
/// [`configure`] ran on this thread since the last [`release`]; `kp` is a positive multiple of
/// [`PAIRS`]; `a` is readable for [`ROWS`] rows of `kp` slots `lda` slots apart, `b` for `kp`
/// rows of `NR` slots, and `c` writable for `ROWS · NR` floats.
#[inline]
pub(crate) unsafe fn block(a: *const f32, lda: usize, b: *const f32, kp: usize, c: *mut f32) {
    debug_assert!(kp > 0 && kp.is_multiple_of(PAIRS));
    // SAFETY: every tile load reads 16 rows of 64 bytes inside A's or B's extent as promised (A:
    // slots `s..s + 16` of each row for `s < kp`; B: rows `s..s + 16`, slot columns `0..48`), and
    // the stores write C's `ROWS × NR` floats. The tiles are configured (caller).
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "2:",
            "tileloadd tmm4, [{a} + {lda}*1]",
            "tileloadd tmm5, [{b} + {ldb}*1]",
            "tileloadd tmm6, [{b} + {ldb}*1 + 64]",
            "tileloadd tmm7, [{b} + {ldb}*1 + 128]",
            "tdpbf16ps tmm0, tmm4, tmm5",
            "tdpbf16ps tmm1, tmm4, tmm6",
            "tdpbf16ps tmm2, tmm4, tmm7",
            "add {a}, 64",
            "add {b}, {bstep}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {ldb}*1], tmm0",
            "tilestored [{c} + {ldb}*1 + 64], tmm1",
            "tilestored [{c} + {ldb}*1 + 128], tmm2",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) kp / PAIRS => _,
            lda = in(reg) lda * 4,
            ldb = in(reg) NR * 4,
            bstep = in(reg) PAIRS * NR * 4,
            c = in(reg) c,
            options(nostack),
        );
    }
}

/// `Cᵀ = Xᵀ·W` with the operands swapped, for maps of few pixels where the weights are the large
/// operand: two blocks of 16 pixels (`x[0]`, `x[1]`: 16 rows of `kp` K-pair slots, `ldx` slots
/// apart) times two weight panels as packed for the vector kernels (`w[0]`, `w[1]`: `kp` rows of
/// 8 slots, `MR = 8` channels), over `kp` K-pairs; `c` receives four 16 × 8 blocks, block
/// `2·xb + wb` at `c + 128·(2·xb + wb)` (pixel-major, 8 floats a pixel). AMX reads the weights in
/// place: nothing of them is copied or transposed.
///
/// # Safety
/// [`configure_t`] ran on this thread since the last [`release`] or [`configure`]; `kp` is a
/// positive multiple of [`PAIRS`]; each `x` is readable for 16 rows of `kp` slots `ldx` apart,
/// each `w` for `kp` rows of 8 slots, and `c` writable for 512 floats.
#[inline]
pub(crate) unsafe fn block_t(
    x: [*const f32; 2],
    ldx: usize,
    w: [*const f32; 2],
    kp: usize,
    c: *mut f32,
) {
    debug_assert!(kp > 0 && kp.is_multiple_of(PAIRS));
    // SAFETY: every tile load reads 16 rows inside `x` (64 bytes of each) or `w` (16 K-pair rows
    // of 32 bytes) as promised; the stores write `c`'s 512 floats. The tiles are configured.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{x0} + {ldx}*1]",
            "tileloadd tmm5, [{x1} + {ldx}*1]",
            "tileloadd tmm6, [{w0} + {ldw}*1]",
            "tileloadd tmm7, [{w1} + {ldw}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {x0}, 64",
            "add {x1}, 64",
            "add {w0}, 512",
            "add {w1}, 512",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {ldw}*1], tmm0",
            "tilestored [{c} + {ldw}*1 + 512], tmm1",
            "tilestored [{c} + {ldw}*1 + 1024], tmm2",
            "tilestored [{c} + {ldw}*1 + 1536], tmm3",
            x0 = inout(reg) x[0] => _,
            x1 = inout(reg) x[1] => _,
            w0 = inout(reg) w[0] => _,
            w1 = inout(reg) w[1] => _,
            n = inout(reg) kp / PAIRS => _,
            ldx = in(reg) ldx * 4,
            ldw = in(reg) 32usize,
            c = in(reg) c,
            options(nostack),
        );
    }
}

/// The weight rows of a direct conv's tile, two blocks of 16 output channels from channel `m0`
/// (`mr` of them, 1 to 32; one block twice when `mr <= 16`), `kk` words a channel: pointers into
/// `w`, or into `padded` (filled here, zero past the last channel) for a block that would run
/// past `w`'s end, so that no tile load reads past the weights.
pub(crate) fn weight_blocks(
    w: &[u32],
    kk: usize,
    m0: usize,
    mr: usize,
    padded: &mut Vec<u32>,
) -> [*const u32; 2] {
    let rows = w.len() / kk;
    std::array::from_fn(|b| {
        let start = m0 + 16 * b.min((mr - 1) / 16);
        if start + 16 <= rows {
            w[start * kk..].as_ptr()
        } else {
            if padded.is_empty() {
                padded.resize(16 * kk, 0);
                padded[..(rows - start) * kk].copy_from_slice(&w[start * kk..rows * kk]);
            }
            padded.as_ptr()
        }
    })
}

/// Zeroes the four accumulators of [`accumulate_i8`] and [`accumulate_bf16`].
///
/// # Safety
/// [`configure`] ran on this thread since the last [`release`] or [`configure_t`]; AMX-INT8 is
/// usable ([`usable_int8`]).
#[inline]
pub(crate) unsafe fn zero_acc() {
    // SAFETY: the tiles are configured (caller); `tilezero` touches no memory.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        )
    };
}

/// The loop of [`accumulate_i8`] and [`accumulate_bf16`], with `$op` (`tdpbsud` or
/// `tdpbf16ps`) as the tile product. Expands to an unsafe block's contents: use it in `unsafe`
/// under their contract.
macro_rules! accumulate {
    ($op:literal, $w:expr, $ldw:expr, $x:expr, $ldx:expr, $steps:expr, $kw:expr) => {{
        let (w, x, steps, kw, ldx) = ($w, $x, $steps, $kw, $ldx);
        debug_assert!(steps > 0);
        // Every tile load reads 16 rows of 64 bytes inside the extents promised; the tiles are
        // configured (the caller's contract).
        asm!(
            "2:",
            "tileloadd tmm4, [{w0} + {ldw}*1]",
            "tileloadd tmm5, [{w1} + {ldw}*1]",
            "tileloadd tmm6, [{x0} + {ldx}*1]",
            "tileloadd tmm7, [{x1} + {ldx}*1]",
            concat!($op, " tmm0, tmm4, tmm6"),
            concat!($op, " tmm1, tmm4, tmm7"),
            concat!($op, " tmm2, tmm5, tmm6"),
            concat!($op, " tmm3, tmm5, tmm7"),
            "add {w0}, {wstep}",
            "add {w1}, {wstep}",
            "add {x0}, {xstep}",
            "add {x1}, {xstep}",
            "dec {n}",
            "jnz 2b",
            w0 = inout(reg) w[0] => _,
            w1 = inout(reg) w[1] => _,
            x0 = inout(reg) x[0] => _,
            x1 = inout(reg) x[1] => _,
            n = inout(reg) steps => _,
            ldw = in(reg) $ldw,
            ldx = in(reg) ldx,
            xstep = in(reg) kw * ldx,
            wstep = in(reg) 4 * kw,
            options(nostack, readonly),
        )
    }};
}

/// Adds to the accumulators the i32 sums of two blocks of 16 output channels × two vectors of
/// 16 pixels over `steps` steps of `kw` words (4 input channels each), with `tdpbsud` (signed
/// weights × unsigned codes): weight rows at `w[0]`, `w[1]` (16 rows each, `ldw` bytes apart,
/// `kw` words a step), code rows at `x[0]`, `x[1]` (`kw` blocks a step, `ldx` bytes apart, each
/// 16 pixels' words; a step moves `kw·ldx` bytes). Accumulator `2·wb + xb` sums weights `wb` ×
/// codes `xb`.
///
/// # Safety
/// As [`zero_acc`], which ran first, under [`DirectConfig::new`]`(kw)`; `steps > 0`; each `w`
/// readable for 16 rows of `4·kw·steps` bytes `ldw` apart, each `x` for `kw·steps` rows of 64
/// bytes `ldx` apart.
#[inline]
pub(crate) unsafe fn accumulate_i8(
    w: [*const u8; 2],
    ldw: usize,
    x: [*const u8; 2],
    ldx: usize,
    steps: usize,
    kw: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { accumulate!("tdpbsud", w, ldw, x, ldx, steps, kw) }
}

/// Stores the four accumulators to `c`: accumulator `a` as a 16 × 16 block of 32-bit sums (i32
/// or f32) at `c + 1024·a` bytes, channel-major.
///
/// # Safety
/// As [`zero_acc`]; `c` writable for 4096 bytes.
#[inline]
pub(crate) unsafe fn store_acc(c: *mut u8) {
    // SAFETY: the stores write `c`'s 4096 bytes (caller); the tiles are configured.
    unsafe {
        asm!(
            "tilestored [{c} + {ldc}*1], tmm0",
            "tilestored [{c} + {ldc}*1 + 1024], tmm1",
            "tilestored [{c} + {ldc}*1 + 2048], tmm2",
            "tilestored [{c} + {ldc}*1 + 3072], tmm3",
            c = in(reg) c,
            ldc = in(reg) 64usize,
            options(nostack),
        )
    };
}

/// [`accumulate_i8`] for bf16 words (two channels each) with `tdpbf16ps`, fp32 sums.
///
/// # Safety
/// As [`accumulate_i8`], with AMX-BF16 usable ([`usable`]).
#[inline]
pub(crate) unsafe fn accumulate_bf16(
    w: [*const u32; 2],
    ldw: usize,
    x: [*const u32; 2],
    ldx: usize,
    steps: usize,
    kw: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { accumulate!("tdpbf16ps", w, ldw, x, ldx, steps, kw) }
}
