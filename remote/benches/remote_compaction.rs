//! Remote compaction against in-process compaction, on one machine.
//!
//! `cargo bench -p damselfly-remote --bench remote_compaction` alternates the two modes (local,
//! remote, local, remote, ...; `ROUNDS` rounds, 3 by default), each run in a process of its own,
//! and prints the median and range of each figure. A run, for `COMPACTION_ROWS` rows (20,000,000
//! by default) of the engine benchmark's 5-column table, a fifth of them overwrites:
//!
//! - `compact`: ingest with automatic compaction off, flush, then time `compact()`: compaction
//!   throughput in input MB/s (SST bytes the jobs read per second), and the CPU seconds the
//!   database process and (remote) the worker process spent meanwhile;
//! - `ingest`: a fresh table, ingest with automatic compaction on to the last flush: rows/s, and
//!   the database process's CPU seconds per million rows.
//!
//! The remote mode runs one `damselfly-compactor` per table, on loopback, with as many
//! concurrent jobs as the database's compactor runs (2).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use damselfly::runtime::TokioRuntime;
use damselfly::{Db, DbBuilder};
use damselfly_remote::{Fallback, Network, NetworkConfig, RemoteExecutor, RemoteOptions};

// The engine benchmark's table and row generator (all of which that benchmark uses).
#[allow(dead_code)]
#[path = "../../benches/engine/data.rs"]
mod data;

const BATCH_ROWS: u64 = 8192;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) process `pid` has used (`self` for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the first, utime the
    // twelfth, stime the thirteenth; in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

struct Worker {
    child: Child,
    address: damselfly_remote::Multiaddr,
}

impl Worker {
    fn start(storage: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_damselfly-compactor"))
            .arg("--storage")
            .arg(storage)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--concurrency", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the worker starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the worker prints its address");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .expect("a listening line")
            .parse()
            .expect("an address");
        Worker { child, address }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn builder(path: &Path, automatic: bool) -> DbBuilder {
    DbBuilder::from_schema_key_name(data::schema(), "id")
        .and_then(|builder| builder.on_disk(path))
        .expect("a builder")
        .retain_versions(1)
        .gc_grace_period(Duration::ZERO)
        .automatic_compaction(automatic)
}

/// Opens the table at `path`, compacting on a worker of its own when `remote`.
async fn open(path: &Path, automatic: bool, remote: bool) -> (Db, Option<Worker>) {
    if !remote {
        let db = builder(path, automatic)
            .open(TokioRuntime::current())
            .await
            .expect("opens");
        return (db, None);
    }
    // The worker serves an existing table.
    builder(path, false)
        .open(TokioRuntime::current())
        .await
        .expect("creates")
        .close()
        .await
        .expect("closes");
    let worker = Worker::start(path);
    let network = match Network::get() {
        Some(network) => network,
        None => Network::start(NetworkConfig::new()).expect("the network starts"),
    };
    network.dial(worker.address.clone()).await.expect("dials");
    let options = RemoteOptions::default().fallback(Fallback::Wait);
    let db = builder(path, automatic)
        .compaction_executor(RemoteExecutor::factory(network, options))
        .open(TokioRuntime::current())
        .await
        .expect("opens");
    (db, Some(worker))
}

async fn ingest(db: &Db, rows: u64) -> f64 {
    let mut batches = data::Overwrites::new(BATCH_ROWS);
    let started = Instant::now();
    for index in 0..rows.div_ceil(BATCH_ROWS) {
        db.ingest(batches.batch(index)).await.expect("ingest");
    }
    db.flush().await.expect("flush");
    started.elapsed().as_secs_f64()
}

/// One run of `mode`; prints `figure value` lines.
async fn run(mode: &str, folder: &Path) {
    let remote = mode == "remote";
    let rows = env_u64("COMPACTION_ROWS", 20_000_000);

    let path = folder.join("compact");
    let (db, worker) = open(&path, false, remote).await;
    ingest(&db, rows).await;
    let worker_cpu = worker.as_ref().map_or(0.0, Worker::cpu_seconds);
    let (cpu, started) = (cpu_seconds("self"), Instant::now());
    db.compact().await.expect("compacts");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu;
    let worker_cpu = worker.as_ref().map_or(0.0, Worker::cpu_seconds) - worker_cpu;
    let metrics = db.metrics();
    if remote {
        assert_eq!(
            metrics.compaction_remote_jobs, metrics.compaction_jobs,
            "{metrics:?}"
        );
    }
    println!(
        "compaction_input_mb_per_s {}",
        metrics.compaction_bytes_read as f64 / 1e6 / seconds
    );
    println!("compaction_seconds {seconds}");
    println!("compaction_db_cpu_s {cpu}");
    println!("compaction_worker_cpu_s {worker_cpu}");
    db.close().await.expect("closes");
    drop(worker);

    let path = folder.join("ingest");
    let (db, worker) = open(&path, true, remote).await;
    let cpu = cpu_seconds("self");
    let seconds = ingest(&db, rows).await;
    let cpu = cpu_seconds("self") - cpu;
    let metrics = db.metrics();
    println!("ingest_rows_per_s {}", rows as f64 / seconds);
    println!(
        "ingest_db_cpu_s_per_million_rows {}",
        cpu / (rows as f64 / 1e6)
    );
    println!("ingest_compaction_jobs {}", metrics.compaction_jobs);
    println!("ingest_remote_jobs {}", metrics.compaction_remote_jobs);
    db.close().await.expect("closes");
    drop(worker);
}

fn drive() {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let rounds = env_u64("ROUNDS", 3);
    let mut figures: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for mode in ["local", "remote"] {
            eprintln!("round {} of {rounds}: {mode}", round + 1);
            let output = Command::new(&exe).arg(mode).output().expect("runs itself");
            assert!(
                output.status.success(),
                "{mode} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                if let Some((name, value)) = line.split_once(' ')
                    && let Ok(value) = value.parse()
                {
                    figures
                        .entry((name.to_owned(), mode))
                        .or_default()
                        .push(value);
                }
            }
        }
    }
    println!(
        "{:<36} {:>8} {:>22} {:>22}",
        "figure", "mode", "median", "min–max"
    );
    for ((name, mode), mut values) in figures {
        values.sort_by(f64::total_cmp);
        println!(
            "{name:<36} {mode:>8} {:>22.2} {:>10.2}–{:<10.2}",
            values[values.len() / 2],
            values[0],
            values[values.len() - 1]
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        None => drive(),
        Some(mode @ ("local" | "remote")) => {
            let folder =
                tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".to_owned()))
                    .expect("a temporary folder");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio");
            runtime.block_on(run(mode, folder.path()));
        }
        Some(other) => panic!("unknown mode {other}: local, remote, or none to run both"),
    }
}
