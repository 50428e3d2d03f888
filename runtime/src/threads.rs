//! Splitting a kernel's independent tasks (output tiles) across cores.
//! (Simple scoped-thread version; to be replaced by a persistent pool with the same API.)

/// How many threads kernels may use, and the means to run tasks on them.
#[derive(Debug)]
pub struct Threads {
    count: usize,
}

impl Threads {
    /// A pool of `count` threads (at least 1) including the caller's.
    pub fn new(count: usize) -> Threads {
        Threads { count: count.max(1) }
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
        let workers = self.count.min(tasks);
        if workers <= 1 {
            (0..tasks).for_each(task);
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= tasks {
                    break;
                }
                task(i);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..workers {
                s.spawn(work);
            }
            work();
        });
    }
}
