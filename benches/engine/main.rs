//! Engine throughput and latency on local disk, release build:
//!
//! ```sh
//! BENCH_DIR=/path/on/the/disk cargo bench --bench engine          # every workload
//! BENCH_DIR=/path/on/the/disk cargo bench --bench engine -- reads tokio   # one, in this process
//! ```
//!
//! Rows are a five-column table: u64 key, i64, f64, a 32-byte string, bool. Every workload runs in
//! a fresh process (the driver re-runs this binary), so each reports its own peak RSS; both
//! runtimes get one worker thread per core (`SMOL_THREADS` is set for smol, whose global
//! executor otherwise runs one thread). See docs/benchmarks.md for what each workload measures.

// A benchmark measures wall time and manages its own files and threads.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod compaction;
mod data;
mod reads;
mod transactions;
mod writes;

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use damselfly::runtime::{Runtime, SmolRuntime, TokioRuntime};

/// One measured figure, printed as a table row.
#[derive(Debug)]
pub struct Report {
    /// What was measured.
    pub label: String,
    /// The figure.
    pub rate: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Latencies of single operations, for percentiles.
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn new(label: impl Into<String>, rate: f64, unit: &'static str) -> Self {
        Self {
            label: label.into(),
            rate,
            unit,
            latencies: Vec::new(),
        }
    }

    /// Operations per second, with their latencies, of `latencies.len()` operations that took
    /// `elapsed` in all.
    pub fn per_second(
        label: impl Into<String>,
        unit: &'static str,
        latencies: Vec<Duration>,
        elapsed: Duration,
    ) -> Self {
        let rate = latencies.len() as f64 / elapsed.as_secs_f64();
        Self {
            latencies,
            ..Self::new(label, rate, unit)
        }
    }
}

/// Workloads and the runtimes they run on ("-": no engine involved).
const WORKLOADS: [(&str, &[&str]); 11] = [
    ("fsync-baseline", &["-"]),
    ("ingest", &["tokio", "smol"]),
    ("ingest-4", &["tokio", "smol"]),
    ("commit-1", &["tokio", "smol"]),
    ("commit-64", &["tokio", "smol"]),
    ("arrow-write", &["-"]),
    ("reads", &["tokio", "smol"]),
    ("ingest-10m", &["tokio", "smol"]),
    ("compaction-off", &["tokio", "smol"]),
    ("compaction", &["tokio", "smol"]),
    ("transactions", &["tokio", "smol"]),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    match args.as_slice() {
        [workload, runtime] => run_one(workload, runtime),
        [] => drive(),
        _ => {
            let names: Vec<&str> = WORKLOADS.iter().map(|(name, _)| *name).collect();
            eprintln!("usage: engine [<workload> <tokio|smol|->]; workloads: {names:?}");
            std::process::exit(2);
        }
    }
}

/// Runs every workload on every runtime, each in its own process, and prints a table.
fn drive() {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "{:<22} {:<6} {:>14} {:>11} {:>9} {:>9} {:>9}",
        "workload", "rt", "figure", "unit", "p50", "p99", "peak RSS"
    );
    for (workload, runtimes) in WORKLOADS {
        for runtime in runtimes {
            let output = Command::new(&exe)
                .args([workload, runtime])
                .env("SMOL_THREADS", cores.to_string())
                .output()
                .expect("the benchmark can run itself");
            if !output.status.success() {
                eprintln!(
                    "{workload} on {runtime} failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                std::process::exit(1);
            }
            print!("{}", String::from_utf8_lossy(&output.stdout));
            let _ = std::io::stdout().flush();
        }
    }
}

fn run_one(workload: &str, runtime: &str) {
    let folder =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".to_owned()))
            .expect("a temporary folder");
    let path = folder.path();
    let reports = match (workload, runtime) {
        ("fsync-baseline", _) => vec![writes::fsync_baseline(path)],
        ("arrow-write", _) => writes::arrow_write(path),
        (_, "tokio") => {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio");
            tokio
                .block_on(async { engine(workload, Arc::new(TokioRuntime::current()), path).await })
        }
        (_, "smol") => smol::block_on(engine(workload, Arc::new(SmolRuntime::new()), path)),
        _ => panic!("unknown runtime {runtime}"),
    };
    let rss = peak_rss_mib();
    for report in reports {
        println!(
            "{:<22} {:<6} {:>14} {:>11} {:>9} {:>9} {:>8}M",
            report.label,
            runtime,
            figure(report.rate),
            report.unit,
            percentile(&report.latencies, 0.5),
            percentile(&report.latencies, 0.99),
            rss,
        );
    }
}

fn engine(
    workload: &str,
    runtime: Arc<dyn Runtime>,
    folder: &Path,
) -> impl Future<Output = Vec<Report>> {
    let workload = workload.to_owned();
    let folder = folder.to_path_buf();
    async move {
        match workload.as_str() {
            "reads" => reads::reads(runtime, &folder).await,
            "ingest-10m" => writes::ingest_10m(runtime, &folder).await,
            "compaction-off" => compaction::compaction_off(runtime, &folder).await,
            "compaction" => compaction::compaction_on(runtime, &folder).await,
            "transactions" => transactions::transactions(runtime, &folder).await,
            _ => writes::engine_workload(&workload, runtime, &folder).await,
        }
    }
}

fn percentile(latencies: &[Duration], p: f64) -> String {
    if latencies.is_empty() {
        return "-".to_owned();
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    format!("{:.1}µs", sorted[index].as_secs_f64() * 1e6)
}

/// The process's peak resident set size in MiB (Linux), or 0 where unknown.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib / 1024)
}

/// Whole numbers for rates, two decimals for ratios.
fn figure(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}
