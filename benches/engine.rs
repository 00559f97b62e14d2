//! Engine throughput on local disk, release build:
//!
//! ```sh
//! cargo bench --bench engine                      # every workload, tokio and smol
//! cargo bench --bench engine -- ingest tokio      # one workload in this process
//! ```
//!
//! Workloads (rows of a five-column table: u64 key, i64, f64, 32-byte string, bool):
//! - `fsync-baseline`: append 1 KiB and fdatasync, as fast as possible (the physical limit of one
//!   synchronous committer);
//! - `ingest`: 1,048,576 rows in 1,024-row batches by one writer, default sync policy (`Always`),
//!   timed to the last acknowledgement;
//! - `ingest-4`: the same rows by four concurrent writers;
//! - `commit-1`, `commit-64`: 16-row commits with `Always`, by one committer and by 64 concurrent
//!   committers: commits/s and latency percentiles.
//!
//! Every workload runs in a fresh process (the driver re-runs this binary), so each reports its
//! own peak RSS. Both runtimes get one worker thread per core (`SMOL_THREADS` is set for smol,
//! whose global executor otherwise runs a single thread).

// A benchmark measures wall time and manages its own files and threads.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damselfly::arrow_array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use damselfly::arrow_schema::{DataType, Field, Schema, SchemaRef};
use damselfly::runtime::{Runtime, RuntimeExt, SmolRuntime, TokioRuntime};
use damselfly::{Db, DbBuilder};

const ROWS: u64 = 1_048_576;
const INGEST_BATCH: u64 = 1024;
const COMMIT_ROWS: u64 = 16;
const WORKLOADS: [&str; 5] = [
    "fsync-baseline",
    "ingest",
    "ingest-4",
    "commit-1",
    "commit-64",
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("ratio", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("flag", DataType::Boolean, false),
    ]))
}

fn rows(first: u64, count: u64) -> RecordBatch {
    let ids: Vec<u64> = (first..first + count).collect();
    let values: Int64Array = ids.iter().map(|&id| Some(id as i64 * 3)).collect();
    let ratios: Float64Array = ids.iter().map(|&id| Some(id as f64 * 0.5)).collect();
    let labels: StringArray = ids
        .iter()
        .map(|id| Some(format!("label-{id:026}")))
        .collect();
    let flags: BooleanArray = ids.iter().map(|id| Some(id % 2 == 0)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(ids)),
            Arc::new(values),
            Arc::new(ratios),
            Arc::new(labels),
            Arc::new(flags),
        ],
    )
    .expect("the columns match the schema")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    match args.as_slice() {
        [workload, runtime] => run_one(workload, runtime),
        [] => drive(),
        _ => {
            eprintln!("usage: engine [<workload> <tokio|smol>]; workloads: {WORKLOADS:?}");
            std::process::exit(2);
        }
    }
}

/// Runs every workload on every runtime, each in its own process, and prints a table.
fn drive() {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    println!(
        "{:<16} {:<6} {:>16} {:>14} {:>10} {:>10} {:>10}",
        "workload", "rt", "rate", "unit", "p50", "p99", "peak RSS"
    );
    for workload in WORKLOADS {
        let runtimes: &[&str] = if workload == "fsync-baseline" {
            &["-"]
        } else {
            &["tokio", "smol"]
        };
        for runtime in runtimes {
            // smol's global executor runs one thread unless told otherwise; give it as many as
            // tokio's default, one per core, so both runtimes use the whole machine.
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
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

/// One measured result, printed as a table row.
struct Report {
    rate: f64,
    unit: &'static str,
    latencies: Vec<Duration>,
}

fn run_one(workload: &str, runtime: &str) {
    let folder =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".to_owned()))
            .expect("a temporary folder");
    let report = match (workload, runtime) {
        ("fsync-baseline", _) => fsync_baseline(folder.path()),
        (_, "tokio") => {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio");
            tokio.block_on(async {
                engine_workload(workload, Arc::new(TokioRuntime::current()), folder.path()).await
            })
        }
        (_, "smol") => smol::block_on(engine_workload(
            workload,
            Arc::new(SmolRuntime::new()),
            folder.path(),
        )),
        _ => panic!("unknown runtime {runtime}"),
    };
    let percentile = |p: f64| -> String {
        if report.latencies.is_empty() {
            return "-".to_owned();
        }
        let mut sorted = report.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
        format!("{:.0}µs", sorted[index].as_secs_f64() * 1e6)
    };
    println!(
        "{:<16} {:<6} {:>16.0} {:>14} {:>10} {:>10} {:>9}M",
        workload,
        runtime,
        report.rate,
        report.unit,
        percentile(0.5),
        percentile(0.99),
        peak_rss_mib(),
    );
}

fn fsync_baseline(folder: &std::path::Path) -> Report {
    let mut file = std::fs::File::create(folder.join("baseline.log")).expect("a file");
    let block = vec![7u8; 1024];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let begun = Instant::now();
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        latencies.push(begun.elapsed());
    }
    Report {
        rate: latencies.len() as f64 / started.elapsed().as_secs_f64(),
        unit: "commits/s",
        latencies,
    }
}

async fn engine_workload(
    workload: &str,
    runtime: Arc<dyn Runtime>,
    folder: &std::path::Path,
) -> Report {
    let db = DbBuilder::from_schema_key_name(schema(), "id")
        .and_then(|builder| builder.on_disk(folder))
        .expect("a valid builder")
        .open(Arc::clone(&runtime))
        .await
        .expect("the database opens");
    let report = match workload {
        "ingest" => ingest(&db, &runtime, 1).await,
        "ingest-4" => ingest(&db, &runtime, 4).await,
        "commit-1" => commits(&db, &runtime, 1, 10_000).await,
        "commit-64" => commits(&db, &runtime, 64, 1_000).await,
        _ => panic!("unknown workload {workload}"),
    };
    db.close().await.expect("a clean close");
    report
}

/// `ROWS` rows in `INGEST_BATCH`-row batches by `writers` concurrent writers.
async fn ingest(db: &Db, runtime: &Arc<dyn Runtime>, writers: u64) -> Report {
    let batches: Vec<RecordBatch> = (0..ROWS / INGEST_BATCH)
        .map(|batch| rows(batch * INGEST_BATCH, INGEST_BATCH))
        .collect();
    let per_writer = batches.len() as u64 / writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let db = db.clone();
            let mine: Vec<RecordBatch> = batches
                [(writer * per_writer) as usize..((writer + 1) * per_writer) as usize]
                .to_vec();
            runtime.spawn("ingest", async move {
                for batch in mine {
                    db.ingest(batch).await.expect("ingest");
                }
            })
        })
        .collect();
    drop(batches);
    for task in tasks {
        task.await.expect("the writer finishes");
    }
    Report {
        rate: ROWS as f64 / started.elapsed().as_secs_f64(),
        unit: "rows/s",
        latencies: Vec::new(),
    }
}

/// `per_committer` 16-row commits by each of `committers` concurrent committers.
async fn commits(
    db: &Db,
    runtime: &Arc<dyn Runtime>,
    committers: u64,
    per_committer: u64,
) -> Report {
    let started = Instant::now();
    let tasks: Vec<_> = (0..committers)
        .map(|committer| {
            let db = db.clone();
            runtime.spawn("committer", async move {
                let mut latencies = Vec::with_capacity(per_committer as usize);
                for commit in 0..per_committer {
                    let first = (committer * per_committer + commit) * COMMIT_ROWS;
                    let batch = rows(first, COMMIT_ROWS);
                    let begun = Instant::now();
                    db.ingest(batch).await.expect("commit");
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("the committer finishes"));
    }
    Report {
        rate: latencies.len() as f64 / started.elapsed().as_secs_f64(),
        unit: "commits/s",
        latencies,
    }
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
