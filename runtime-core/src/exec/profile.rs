//! Optional per-layer timing of emitted models: with `RESNEXT_PROFILE=1` in the environment every
//! layer's wall time is summed by name, and [`report`] prints where a forward pass spends its time:
//! the mean per call and the fastest call, which on a shared, noisy machine is the steadier figure
//! (a neighbour's load slows whole stretches of calls, never speeds one up).
//!
//! Emitted code opens a [`Span`] around each layer. When profiling is off (the default) a span is
//! one relaxed load of a cached flag and nothing else; when it is on, a span reads the clock twice
//! and adds to a global table under a mutex, which costs well under a microsecond per layer.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether `RESNEXT_PROFILE` asks for per-layer timing (read once per process; any value but
/// empty or `0` turns it on).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("RESNEXT_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// One layer's totals: its name, what kind of kernel ran, how often and for how long.
#[derive(Clone, Debug)]
pub struct LayerTime {
    pub name: &'static str,
    pub kernel: &'static str,
    pub calls: u64,
    pub total: Duration,
    /// The fastest call.
    pub min: Duration,
}

static TABLE: Mutex<Vec<LayerTime>> = Mutex::new(Vec::new());

/// Times one layer from [`span`] until it is dropped.
#[must_use = "a span measures until it is dropped"]
pub struct Span {
    start: Option<(Instant, &'static str, &'static str)>,
}

/// Starts timing layer `name` (an ONNX node name), run by `kernel` (e.g. `pointwise`).
#[inline]
pub fn span(name: &'static str, kernel: &'static str) -> Span {
    Span {
        start: enabled().then(|| (Instant::now(), name, kernel)),
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((start, name, kernel)) = self.start {
            record(name, kernel, start.elapsed());
        }
    }
}

/// Adds one call of `elapsed` to layer `name`'s totals.
fn record(name: &'static str, kernel: &'static str, elapsed: Duration) {
    // A poisoned table only means another thread panicked mid-update; the sums stay usable.
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    match table.iter_mut().find(|l| l.name == name) {
        Some(l) => {
            l.calls += 1;
            l.total += elapsed;
            l.min = l.min.min(elapsed);
        }
        None => table.push(LayerTime {
            name,
            kernel,
            calls: 1,
            total: elapsed,
            min: elapsed,
        }),
    }
}

/// The layers timed so far, in the order they first ran.
pub fn layers() -> Vec<LayerTime> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Forgets every timing (e.g. after warm-up runs).
pub fn reset() {
    TABLE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// A table of the layers timed so far: mean and fastest µs per call, share of the total, and the
/// totals per kind of kernel (of the means and of the fastest calls). Empty when nothing was timed.
pub fn report() -> String {
    let layers = layers();
    let total: Duration = layers.iter().map(|l| l.total).sum();
    if layers.is_empty() || total.is_zero() {
        return String::new();
    }
    let mut out = String::from(
        "layer                                              kernel        µs/call   min µs   share\n",
    );
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    let per_call = |l: &LayerTime| l.total.as_secs_f64() * 1e6 / l.calls.max(1) as f64;
    for l in &layers {
        out.push_str(&format!(
            "{:<50} {:<12} {:>9.1} {:>8.1} {:>6.1}%\n",
            l.name,
            l.kernel,
            per_call(l),
            l.min.as_secs_f64() * 1e6,
            share(l.total)
        ));
    }
    let mut kinds: Vec<(&str, Duration, Duration)> = Vec::new();
    for l in &layers {
        match kinds.iter_mut().find(|k| k.0 == l.kernel) {
            Some(k) => {
                k.1 += l.total;
                k.2 += l.min;
            }
            None => kinds.push((l.kernel, l.total, l.min)),
        }
    }
    let min_total: Duration = layers.iter().map(|l| l.min).sum();
    let runs = layers.iter().map(|l| l.calls).max().unwrap_or(1).max(1) as f64;
    out.push_str(&format!(
        "sum of layers: {:.3} ms per run over {runs} runs (fastest calls: {:.3} ms)\n",
        total.as_secs_f64() * 1e3 / runs,
        min_total.as_secs_f64() * 1e3
    ));
    for (kind, time, min) in kinds {
        out.push_str(&format!(
            "  {kind:<12} {:>9.3} ms per run {:>6.1}%   fastest calls {:>9.3} ms\n",
            time.as_secs_f64() * 1e3 / runs,
            share(time),
            min.as_secs_f64() * 1e3
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_summed_per_layer_and_reported() {
        // The table is process-wide: use names no other test records.
        record("test/a", "pointwise", Duration::from_micros(300));
        record("test/a", "pointwise", Duration::from_micros(100));
        record("test/b", "grouped", Duration::from_micros(50));
        let layers = layers();
        let a = layers
            .iter()
            .find(|l| l.name == "test/a")
            .expect("test/a recorded");
        assert_eq!(a.calls, 2);
        assert_eq!(a.total, Duration::from_micros(400));
        assert_eq!(a.min, Duration::from_micros(100));
        let report = report();
        assert!(report.contains("test/a"), "{report}");
        assert!(report.contains("grouped"), "{report}");
        // test/a: 200 µs per call, 100 µs at best.
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("test/a") && l.contains("200.0") && l.contains("100.0")),
            "{report}"
        );
    }

    #[test]
    fn spans_record_only_when_enabled() {
        {
            let _s = span("test/span", "k");
        }
        let recorded = layers().iter().any(|l| l.name == "test/span");
        assert_eq!(recorded, enabled());
    }
}
