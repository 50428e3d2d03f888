//! The activation arena of a compiled model: one buffer, planned by the compiler's `plan-memory`,
//! allocated once per model (grown to the largest batch seen) and carved into per-layer slices.
//!
//! A plan gives each value an `(offset, len)` in elements per batch item; for batch `n` the value is
//! `arena[n × offset .. n × (offset + len)]` ([`range`]). [`split`] hands a layer its output slice
//! mutably and its inputs shared, checking (safely, without `unsafe`) that they do not overlap.

use std::ops::Range;
use std::sync::Mutex;

use crate::exec::buffer::Buffer;
use crate::kernels::KernelError;

/// The arena range of a value planned at `(offset, len)` per item, for `batch` items.
#[inline]
pub fn range(offset: usize, len: usize, batch: usize) -> Range<usize> {
    offset * batch..(offset + len) * batch
}

/// The arena range of item `item` of a value that lives in a block planned at `(base, item_stride)`
/// per item, `at` elements into each item, `len` long (a channel slice of a concat's output; a
/// value with a block of its own has `item_stride == len`, `at == 0`), for `batch` items.
#[inline]
pub fn item_range(
    base: usize,
    item_stride: usize,
    at: usize,
    len: usize,
    batch: usize,
    item: usize,
) -> Range<usize> {
    let start = base * batch + item * item_stride + at;
    start..start + len
}

/// Splits `arena` into the mutable slice `out` and shared slices `inputs`, each of which must lie
/// wholly before or wholly after `out` (the memory plan guarantees it; a violation is an error, not
/// undefined behaviour).
pub fn split<const K: usize>(
    arena: &mut [f32],
    out: Range<usize>,
    inputs: [Range<usize>; K],
) -> Result<(&mut [f32], [&[f32]; K]), KernelError> {
    if out.start > out.end || out.end > arena.len() {
        return Err(KernelError::BadShape(format!(
            "arena output range {out:?} outside the arena of {} elements",
            arena.len()
        )));
    }
    let (before, rest) = arena.split_at_mut(out.start);
    let (output, after) = rest.split_at_mut(out.end - out.start);
    let (before, after): (&[f32], &[f32]) = (before, after);
    let mut bad = None;
    let slices = inputs.map(|r| {
        if r.start <= r.end && r.end <= before.len() {
            &before[r]
        } else if r.start >= out.end && r.start <= r.end && r.end - out.end <= after.len() {
            &after[r.start - out.end..r.end - out.end]
        } else {
            bad = Some(r);
            &[][..]
        }
    });
    if let Some(r) = bad {
        return Err(KernelError::BadShape(format!(
            "arena input range {r:?} overlaps the output {out:?} or leaves the arena"
        )));
    }
    Ok((output, slices))
}

/// A model's reusable arena: the first forward pass for a batch size allocates it, later ones reuse
/// it (in huge pages where it can: see [`Buffer`]). Concurrent callers do not wait: whoever finds
/// it in use gets a fresh buffer for that call.
#[derive(Debug, Default)]
pub struct Scratch {
    buffer: Mutex<Option<Buffer>>,
}

impl Scratch {
    pub const fn new() -> Scratch {
        Scratch {
            buffer: Mutex::new(None),
        }
    }

    /// Runs `f` on a buffer of exactly `len` elements (contents unspecified).
    pub fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        match self.buffer.try_lock() {
            Ok(mut buffer) => {
                let buffer = match &mut *buffer {
                    Some(b) if b.len() >= len => b,
                    slot => slot.insert(Buffer::zeroed(len)),
                };
                f(&mut buffer[..len])
            }
            // In use by another thread, or poisoned by a panic in one: don't share it.
            Err(_) => f(&mut vec![0.0; len]),
        }
    }

    /// Elements currently held (0 until the first forward pass).
    pub fn capacity(&self) -> usize {
        self.buffer
            .lock()
            .map_or(0, |b| b.as_ref().map_or(0, |b| b.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // `[a..b]` here is an array of one input range, which is what `split` takes.
    #[allow(clippy::single_range_in_vec_init)]
    fn split_gives_disjoint_slices_and_rejects_overlap() {
        let mut arena: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let (out, [a, b]) = split(&mut arena, 4..6, [0..2, 7..10]).unwrap();
        assert_eq!(out, [4.0, 5.0]);
        assert_eq!(a, [0.0, 1.0]);
        assert_eq!(b, [7.0, 8.0, 9.0]);
        out[0] = -1.0;
        assert_eq!(arena[4], -1.0);
        assert!(split(&mut arena, 4..6, [5..7]).is_err());
        assert!(split(&mut arena, 4..6, [3..5]).is_err());
        assert!(split(&mut arena, 4..6, [8..11]).is_err());
        assert!(split(&mut arena, 9..11, []).is_err());
        assert_eq!(range(3, 2, 4), 12..20);
        // Item 1 of a 2-element slice 3 elements into each 5-element item of a block at 10 of a
        // batch of 4: 40 + 5 + 3.
        assert_eq!(item_range(10, 5, 3, 2, 4, 1), 48..50);
        assert_eq!(item_range(3, 2, 0, 2, 4, 3), 18..20);
    }

    #[test]
    fn scratch_is_reused_and_grows() {
        let s = Scratch::new();
        let p1 = s.with(8, |b| b.as_ptr() as usize);
        let p2 = s.with(4, |b| {
            assert_eq!(b.len(), 4);
            b.as_ptr() as usize
        });
        assert_eq!(p1, p2);
        assert_eq!(s.capacity(), 8);
        s.with(16, |b| assert_eq!(b.len(), 16));
        assert_eq!(s.capacity(), 16);
        // A nested (concurrent) use gets its own buffer.
        s.with(4, |outer| {
            s.with(4, |inner| assert_ne!(outer.as_ptr(), inner.as_ptr()))
        });
    }
}
