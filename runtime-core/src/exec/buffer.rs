//! Large `f32` buffers — the activation arena, the kernels' scratch and the weights — backed on
//! Linux by an anonymous memory map advised for transparent huge pages (2 MiB), elsewhere (and
//! whenever the map cannot be made) by an ordinary `Vec`.
//!
//! Why: a 1×1 conv reads its input one channel plane after another, a plane (several KB) apart,
//! and the deep layers stream megabytes of weights; with 4 KB pages every few k rows touch a new
//! page, and the first-level TLB (64 entries on the Zen 3 this was measured on) thrashes. Measured
//! in-process on the AVX2 tier, alternating call by call between the same data in 4 KB and in
//! huge pages (cold copies, each call on another copy, medians of ~1000 calls; an A/A run read
//! 0.99–1.00): weights in huge pages 2048→512 at 7×7 0.93–0.96× the time, 1024→2048 at 7×7
//! 0.95–0.97×, 1024→512 at 14×14 (2 threads) 0.97–0.98×, 512→256 at 28×28 unchanged;
//! activations in huge pages 0.98–0.99× (28×28, 14×14, 7×7).
//!
//! `RESNEXT_HUGE_PAGES=0` in the environment turns it off (plain `Vec`s), for comparisons.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// The huge page size the maps are aligned to.
const HUGE_PAGE: usize = 2 << 20;

/// A zero-initialised buffer of `f32`s that dereferences to a slice.
pub struct Buffer {
    storage: Storage,
}

enum Storage {
    Heap(Vec<f32>),
    /// `len` floats from byte `start` of `map` (a multiple of the huge page size from the map's
    /// page-aligned start, so the floats are aligned).
    #[cfg(target_os = "linux")]
    Map {
        map: memmap2::MmapMut,
        start: usize,
        len: usize,
    },
}

/// Whether large buffers may be memory maps advised for huge pages (`RESNEXT_HUGE_PAGES=0`: no).
pub fn huge_pages_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("RESNEXT_HUGE_PAGES").map_or(true, |v| v != "0"))
}

impl Buffer {
    /// `len` zeros: in huge pages when the buffer spans at least one and they are enabled.
    pub fn zeroed(len: usize) -> Buffer {
        #[cfg(target_os = "linux")]
        if huge_pages_enabled()
            && let Some(bytes) = len.checked_mul(4)
            && bytes >= HUGE_PAGE
            && let Some(storage) = Buffer::map(bytes)
        {
            return Buffer { storage };
        }
        Buffer {
            storage: Storage::Heap(vec![0.0; len]),
        }
    }

    /// An anonymous map with room for `bytes` from its first huge-page boundary on, that range
    /// advised for huge pages (untouched so far, so the kernel can back it with them as it is
    /// first written). `None` if the map cannot be made; a refused advice only costs the speed.
    #[cfg(target_os = "linux")]
    fn map(bytes: usize) -> Option<Storage> {
        let map = memmap2::MmapMut::map_anon(bytes.checked_add(HUGE_PAGE)?).ok()?;
        let addr = map.as_ptr() as usize;
        let start = addr.next_multiple_of(HUGE_PAGE) - addr;
        let _ = map.advise_range(memmap2::Advice::HugePage, start, bytes);
        Some(Storage::Map {
            map,
            start,
            len: bytes / 4,
        })
    }

    /// Whether this buffer is a map advised for huge pages (rather than a `Vec`).
    pub fn is_mapped(&self) -> bool {
        !matches!(self.storage, Storage::Heap(_))
    }
}

impl Deref for Buffer {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.storage {
            Storage::Heap(v) => v,
            // The range is inside the map and starts page-aligned, so the cast cannot fail.
            #[cfg(target_os = "linux")]
            Storage::Map { map, start, len } => bytemuck::cast_slice(&map[*start..start + 4 * len]),
        }
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // As in `deref`.
            #[cfg(target_os = "linux")]
            Storage::Map { map, start, len } => {
                bytemuck::cast_slice_mut(&mut map[*start..*start + 4 * *len])
            }
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl Default for Buffer {
    fn default() -> Buffer {
        Buffer {
            storage: Storage::Heap(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_are_zeroed_and_writable() {
        for len in [0, 1, 1000, HUGE_PAGE / 4, HUGE_PAGE / 4 * 3 + 17] {
            let mut b = Buffer::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0.0));
            for (i, x) in b.iter_mut().enumerate() {
                *x = i as f32;
            }
            assert!(b.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn large_buffers_are_huge_page_aligned_maps() {
        if !huge_pages_enabled() {
            eprintln!("skipped: RESNEXT_HUGE_PAGES=0");
            return;
        }
        let b = Buffer::zeroed(HUGE_PAGE / 4 + 1);
        assert!(b.is_mapped());
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(!Buffer::zeroed(1000).is_mapped());
    }
}
