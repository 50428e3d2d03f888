//! Splitting a kernel's independent tasks (output tiles) across cores with a persistent pool: the
//! workers spin briefly for the next job and then park, so one `run` costs a few microseconds.
//!
//! Protocol (all atomics `SeqCst`; a call is rare next to the work it starts):
//! - `generation` is odd while a job is open. The caller writes the job slot only while it is even
//!   and no worker is `active`, then makes it odd and takes tasks itself.
//! - Before opening a job the caller gives each worker `w` its run of task indices,
//!   `w·tasks/count .. (w+1)·tasks/count` (`ranges`). A worker that sees a new odd generation counts
//!   itself `active`, re-reads the generation and, only if it is unchanged, reads the slot, claims
//!   its own run's tasks from the front, then the other runs' from their backs, until all are
//!   claimed (a worker that is late or slowed by a neighbour has its tasks taken by the others).
//! - Each thread adds the tasks it ran to `done` once it finds none left to claim. The caller
//!   waits until `done == tasks`, makes the generation even (closing the job) and waits
//!   for `active` to drop to zero, so no worker holds the borrowed task closure once `run` returns.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A task body: `(task index, worker index)`, the worker index in `0..count()` (the caller is 0).
type TaskFn<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// How long an idle worker spins before parking: longer than the gap between two layers.
const SPIN: Duration = Duration::from_micros(300);

/// How many threads kernels may use, and the means to run tasks on them.
pub struct Threads {
    count: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held by the one `run` in progress; a concurrent or nested call runs its tasks inline.
    caller: Mutex<()>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads")
            .field("count", &self.count)
            .finish()
    }
}

/// The job being run: the borrowed closure with its lifetime erased (its tasks are in `ranges`).
#[derive(Clone, Copy)]
struct Job {
    task: *const TaskFn<'static>,
}

/// Most tasks one job holds (see [`Range`]).
const MAX_JOB: usize = u32::MAX as usize;

/// One worker's share of a job's tasks, `start..end` packed as `start << 32 | end`, alone on its
/// cache line: its owner claims from the front, other workers, once theirs are done, from the
/// back.
#[repr(align(64))]
struct Range(AtomicU64);

impl Range {
    fn set(&self, start: u64, end: u64) {
        self.0.store((start << 32) | end, SeqCst);
    }

    /// Takes the first task (`front`) or the last one of the range, if any is left.
    fn take(&self, front: bool) -> Option<usize> {
        let mut cur = self.0.load(SeqCst);
        loop {
            let (start, end) = (cur >> 32, cur & 0xFFFF_FFFF);
            if start >= end {
                return None;
            }
            let (next, task) = if front {
                (((start + 1) << 32) | end, start)
            } else {
                ((start << 32) | (end - 1), end - 1)
            };
            match self.0.compare_exchange_weak(cur, next, SeqCst, SeqCst) {
                Ok(_) => return Some(task as usize),
                Err(now) => cur = now,
            }
        }
    }
}

struct Shared {
    generation: AtomicU64,
    job: UnsafeCell<Job>,
    /// Worker `w` starts on tasks `w·tasks/count .. (w+1)·tasks/count`: the same worker then
    /// computes the same part of every layer's output (the same pixels, for kernels whose tasks
    /// run over pixels), which it reads back from its own caches in the next layer.
    ranges: Box<[Range]>,
    done: AtomicUsize,
    active: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the caller holding `Threads::caller` while the generation is
// even and no worker is active, and read by workers only between their `active` increment and
// decrement with the generation odd (see the module doc), so reads and writes never overlap. The
// closure it points at is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

impl Shared {
    /// Runs the tasks of its own range, then takes the others' from their ends until none are left.
    fn work(&self, job: Job, worker: usize) {
        let n = self.ranges.len();
        let own = std::iter::from_fn(|| self.ranges[worker].take(true));
        let stolen = (1..n).flat_map(|d| {
            let victim = &self.ranges[(worker + d) % n];
            std::iter::from_fn(move || victim.take(false))
        });
        let mut ran = 0;
        for i in own.chain(stolen) {
            // SAFETY: the closure outlives the job: `run` does not return (nor unwind) before
            // every claimed task is done and no worker is active.
            let task = unsafe { &*job.task };
            if catch_unwind(AssertUnwindSafe(|| task(i, worker))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            ran += 1;
        }
        // Counted once, when nothing is left to claim: `done` is on a line the caller spins on,
        // and each update of it from another core waits for that line to come over.
        if ran > 0 {
            self.done.fetch_add(ran, SeqCst);
        }
    }
}

impl Threads {
    /// A pool of `count` threads (at least 1) including the caller's: `count − 1` workers are
    /// started now and live until the pool is dropped.
    pub fn new(count: usize) -> Threads {
        let count = count.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(Job {
                task: std::ptr::null::<fn(usize, usize)>() as *const TaskFn<'static>,
            }),
            ranges: (0..count).map(|_| Range(AtomicU64::new(0))).collect(),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(count - 1);
        for worker in 1..count {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("resnext-worker-{worker}"))
                .spawn(move || worker_loop(&shared, worker));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Fewer threads than asked is still correct: the missing workers' ranges are
                // taken by the others.
                Err(_) => break,
            }
        }
        Threads {
            count: workers.len() + 1,
            shared,
            workers,
            caller: Mutex::new(()),
        }
    }

    /// One thread per available core.
    pub fn available() -> Threads {
        Threads::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `task(i)` for every `i` in `0..tasks`, spread over the threads; returns when all are done.
    pub fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        self.run_indexed(tasks, &|i, _| task(i));
    }

    /// Like [`Threads::run`], but `task(i, worker)` also learns which thread runs it, `worker` in
    /// `0..count()`, so tasks can use per-thread scratch space: two tasks of one call never run
    /// at once with the same `worker` (tasks of a concurrent call may, so scratch must belong to
    /// the call).
    pub fn run_indexed(&self, tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        if self.workers.is_empty() || tasks == 1 {
            (0..tasks).for_each(|i| task(i, 0));
            return;
        }
        if tasks > MAX_JOB {
            // Ranges hold 32-bit task indices: run a huge job as several.
            for base in (0..tasks).step_by(MAX_JOB) {
                self.run_indexed(MAX_JOB.min(tasks - base), &|i, w| task(base + i, w));
            }
            return;
        }
        let _guard = match self.caller.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Another run is in progress (a nested call from a task, or another thread): run
            // inline. Worker 0's scratch is then the nested caller's own.
            Err(TryLockError::WouldBlock) => {
                (0..tasks).for_each(|i| task(i, 0));
                return;
            }
        };
        let sh = &*self.shared;
        // SAFETY: only the lifetime is erased; the module protocol keeps every use of the pointer
        // inside this call.
        let erased: *const TaskFn<'static> =
            unsafe { std::mem::transmute(task as *const TaskFn<'_>) };
        // SAFETY: we hold `caller`, the generation is even and `active` is zero (the previous run
        // waited for both), so no worker reads the slot now.
        unsafe { *sh.job.get() = Job { task: erased } };
        let (n, all) = (sh.ranges.len() as u64, tasks as u64);
        for (w, range) in (0u64..).zip(sh.ranges.iter()) {
            range.set(w * all / n, (w + 1) * all / n);
        }
        sh.done.store(0, SeqCst);
        sh.panicked.store(false, SeqCst);
        let open = sh.generation.load(SeqCst) + 1;
        sh.generation.store(open, SeqCst);
        if sh.sleepers.load(SeqCst) > 0 {
            let _lock = sh.lock.lock().unwrap_or_else(|p| p.into_inner());
            sh.wake.notify_all();
        }
        let caller_result = catch_unwind(AssertUnwindSafe(|| sh.work(Job { task: erased }, 0)));
        spin_until(|| sh.done.load(SeqCst) >= tasks);
        sh.generation.store(open + 1, SeqCst);
        spin_until(|| sh.active.load(SeqCst) == 0);
        if let Err(payload) = caller_result {
            resume_unwind(payload);
        }
        if sh.panicked.load(SeqCst) {
            panic!("a task run by the thread pool panicked");
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        {
            let _lock = self.shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Spins (yielding now and then) until `ready()`.
fn spin_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn worker_loop(sh: &Shared, worker: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for an open generation we have not served: spin, then park.
        let started = Instant::now();
        let mut spins = 0u32;
        let generation = loop {
            if sh.shutdown.load(SeqCst) {
                return;
            }
            let g = sh.generation.load(SeqCst);
            if g % 2 == 1 && g != seen {
                break g;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || started.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut lock = sh.lock.lock().unwrap_or_else(|p| p.into_inner());
            sh.sleepers.fetch_add(1, SeqCst);
            loop {
                let g = sh.generation.load(SeqCst);
                if sh.shutdown.load(SeqCst) || (g % 2 == 1 && g != seen) {
                    break;
                }
                lock = sh.wake.wait(lock).unwrap_or_else(|p| p.into_inner());
            }
            sh.sleepers.fetch_sub(1, SeqCst);
        };
        sh.active.fetch_add(1, SeqCst);
        if sh.generation.load(SeqCst) == generation {
            // SAFETY: the generation is still the open one and we are counted active, so the
            // caller neither rewrites the slot nor returns until we decrement `active`.
            let job = unsafe { *sh.job.get() };
            sh.work(job, worker);
        }
        sh.active.fetch_sub(1, SeqCst);
        seen = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::Threads;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_on_a_valid_worker() {
        for count in [1, 2, 3, 5] {
            let threads = Threads::new(count);
            for tasks in [0, 1, 2, 7, 100] {
                for _ in 0..50 {
                    let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    let bad_worker = AtomicUsize::new(0);
                    threads.run_indexed(tasks, &|i, w| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                        if w >= threads.count() {
                            bad_worker.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    assert_eq!(bad_worker.load(Ordering::Relaxed), 0);
                }
            }
        }
    }

    #[test]
    fn nested_runs_and_parked_workers_complete() {
        let threads = Threads::new(2);
        let total = AtomicUsize::new(0);
        threads.run(4, &|_| {
            threads.run(3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
        // Let the worker park, then wake it with a new job.
        std::thread::sleep(std::time::Duration::from_millis(5));
        threads.run(10, &|_| {
            total.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 22);
    }

    #[test]
    fn concurrent_callers_share_one_pool() {
        let threads = Threads::new(2);
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..200 {
                        threads.run_indexed(5, &|_, w| {
                            assert!(w < 2);
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 200 * 5);
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_survives() {
        let threads = Threads::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            threads.run(8, &|i| assert!(i != 5, "task 5 fails"))
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        threads.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }
}
