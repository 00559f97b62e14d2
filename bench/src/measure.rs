//! What a step measures and how it reports it: named figures, latency percentiles, the peak
//! resident set size, bytes on disk.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One measured figure of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    /// What was measured, e.g. `rows/s` or `p99 µs`.
    pub name: String,
    pub value: f64,
}

impl Metric {
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }
}

/// What a step prints as its last line of output, for the driver.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepOutput {
    pub metrics: Vec<Metric>,
    /// The process's peak resident set size (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
}

/// Latencies of single operations, timed one by one.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Runs `operation`, records how long it took and returns its output.
    pub async fn time<T>(&mut self, operation: impl Future<Output = T>) -> T {
        let begun = Instant::now();
        let output = operation.await;
        self.0.push(begun.elapsed());
        output
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// `<what>/s` over `elapsed`, then the p50 and p99 latencies in µs.
    pub fn metrics(mut self, what: &str, elapsed: Duration) -> Vec<Metric> {
        self.0.sort();
        let percentile = |p: f64| {
            let index = ((self.0.len() as f64 * p) as usize).min(self.0.len() - 1);
            self.0[index].as_secs_f64() * 1e6
        };
        vec![
            Metric::new(
                format!("{what}/s"),
                self.0.len() as f64 / elapsed.as_secs_f64(),
            ),
            Metric::new(format!("{what} p50 µs"), percentile(0.5)),
            Metric::new(format!("{what} p99 µs"), percentile(0.99)),
        ]
    }
}

/// `rows` over the time since `started`, as `rows/s`.
pub fn rows_per_second(name: &str, rows: u64, started: Instant) -> Metric {
    Metric::new(name, rows as f64 / started.elapsed().as_secs_f64())
}

/// The best (shortest) of `runs` timed runs of `read`, as rows per second; every run must read
/// `rows` rows.
pub async fn best_rate<F: Future<Output = u64>>(
    name: &str,
    rows: u64,
    runs: usize,
    mut read: impl FnMut() -> F,
) -> Metric {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let read_rows = read().await;
        assert_eq!(read_rows, rows, "{name}: every row is read exactly once");
        best = best.min(started.elapsed());
    }
    Metric::new(name, rows as f64 / best.as_secs_f64())
}

/// Bytes of every file under `path`, MiB.
pub fn mib_on_disk(path: &Path) -> f64 {
    fn bytes(path: &Path) -> u64 {
        match std::fs::symlink_metadata(path) {
            Ok(metadata) if metadata.is_dir() => std::fs::read_dir(path)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| bytes(&entry.path()))
                        .sum()
                })
                .unwrap_or(0),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        }
    }
    bytes(path) as f64 / (1024.0 * 1024.0)
}

/// The process's peak resident set size in MiB (Linux `VmHWM`), or 0 where unknown.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
