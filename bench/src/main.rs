//! damselfly side by side with tonbo 0.4, slatedb 0.18 and the physical limits (arrow-rs writing
//! and reading one Parquet file; appending to a log with `fdatasync`), on local disk:
//!
//! ```sh
//! cargo run --release --manifest-path bench/Cargo.toml              # everything, 3 runs
//! cargo run --release --manifest-path bench/Cargo.toml -- --help    # options
//! ```
//!
//! The driver runs every step (one engine, one workload) in its own process, this binary again
//! with `step ...`, so that each reports its own peak RSS and none inherits another's caches or
//! threads. The engines take turns within each workload (A, B, C, A, B, C, ...), so drift of the
//! machine hits all of them alike. Results: a Markdown table of the median (min–max) over the
//! runs, the ratios to the baselines and damselfly's targets, printed and written to
//! `bench/results.md`. See docs/benchmarks.md.

// A benchmark measures wall time and manages its own files, threads and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod engines;
mod measure;
mod report;
mod rows;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engines::damselfly::On;
use crate::measure::{Metric, StepOutput};
use crate::report::Results;

/// Rows per commit of the commit workloads.
pub const COMMIT_ROWS: u64 = 16;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The rows in 1,024-row batches, each awaited, to the last acknowledgement and the flush.
    Ingest1k,
    /// The same in 8,192-row batches; its folder is the table the reads read.
    Ingest8k,
    /// Commits of 16 rows, each synced, by one committer.
    Commit1,
    /// The same by 64 concurrent committers.
    Commit64,
    /// Full scan, one-column projection, a 1% value filter and 1% key ranges.
    Scan,
    /// Random point lookups.
    Get,
    /// Writes the recovery workload's rows, then exits without closing (not reported).
    CrashLoad,
    /// Reopens after `CrashLoad`: the time to replay its write-ahead log.
    Recovery,
}

impl Workload {
    /// The reported workloads, in the order they run.
    const ALL: [Workload; 7] = [
        Workload::Ingest1k,
        Workload::Ingest8k,
        Workload::Commit1,
        Workload::Commit64,
        Workload::Scan,
        Workload::Get,
        Workload::Recovery,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Ingest1k => "ingest-1k",
            Workload::Ingest8k => "ingest-8k",
            Workload::Commit1 => "commit-1",
            Workload::Commit64 => "commit-64",
            Workload::Scan => "scan",
            Workload::Get => "get",
            Workload::CrashLoad => "crash-load",
            Workload::Recovery => "recovery",
        }
    }

    fn parse(name: &str) -> Result<Self, String> {
        [Workload::CrashLoad]
            .into_iter()
            .chain(Workload::ALL)
            .find(|workload| workload.name() == name)
            .ok_or_else(|| format!("unknown workload {name:?}"))
    }

    /// The step whose folder this one works on, if any.
    fn needs(self) -> Option<Workload> {
        match self {
            Workload::Scan | Workload::Get => Some(Workload::Ingest8k),
            Workload::Recovery => Some(Workload::CrashLoad),
            _ => None,
        }
    }
}

/// Who runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Engine {
    DamselflyTokio,
    DamselflySmol,
    Tonbo,
    Slatedb,
    ArrowRs,
    AppendFsync,
}

impl Engine {
    const ALL: [Engine; 6] = [
        Engine::DamselflyTokio,
        Engine::DamselflySmol,
        Engine::Tonbo,
        Engine::Slatedb,
        Engine::ArrowRs,
        Engine::AppendFsync,
    ];

    fn name(self) -> &'static str {
        match self {
            Engine::DamselflyTokio => "damselfly-tokio",
            Engine::DamselflySmol => "damselfly-smol",
            Engine::Tonbo => "tonbo",
            Engine::Slatedb => "slatedb",
            Engine::ArrowRs => "arrow-rs",
            Engine::AppendFsync => "append-fsync",
        }
    }

    fn parse(name: &str) -> Result<Self, String> {
        Engine::ALL
            .into_iter()
            .find(|engine| engine.name() == name)
            .ok_or_else(|| format!("unknown engine {name:?}"))
    }

    /// Whether this engine takes part in `workload`: the baselines only where they are one.
    fn runs(self, workload: Workload) -> bool {
        match self {
            Engine::ArrowRs => {
                matches!(
                    workload,
                    Workload::Ingest1k | Workload::Ingest8k | Workload::Scan
                )
            }
            Engine::AppendFsync => workload == Workload::Commit1,
            _ => true,
        }
    }

    fn step(self, workload: Workload, folder: &Path, params: &Params) -> Vec<Metric> {
        match self {
            Engine::DamselflyTokio => engines::damselfly::step(On::Tokio, workload, folder, params),
            Engine::DamselflySmol => engines::damselfly::step(On::Smol, workload, folder, params),
            Engine::Tonbo => engines::tonbo::step(workload, folder, params),
            Engine::Slatedb => engines::slatedb::step(workload, folder, params),
            Engine::ArrowRs => engines::baseline::arrow_rs(workload, folder, params),
            Engine::AppendFsync => engines::baseline::append_fsync(folder, params),
        }
    }
}

/// The sizes of the workloads, the same for every engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    /// Rows of the ingest workloads, and so of the table the reads read.
    pub rows: u64,
    /// Commits of each commit workload (shared out among its committers).
    pub commits: u64,
    /// Runs of each scan; the best counts.
    pub scan_runs: usize,
    /// 1% key ranges scanned.
    pub ranges: usize,
    /// Point lookups timed, after as many to warm up.
    pub lookups: usize,
    /// Each half of the lookups stops after this long.
    pub lookup_time: Duration,
    /// Rows written before the crash of the recovery workload (1,024-row batches).
    pub recovery_rows: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            rows: 1_048_576,
            commits: 6_400,
            scan_runs: 3,
            ranges: 100,
            lookups: 10_000,
            lookup_time: Duration::from_secs(10),
            recovery_rows: 524_288,
        }
    }
}

/// Ends a step the way a crash would: no close, no flush, no destructors.
pub fn crash() -> ! {
    std::process::exit(0)
}

const USAGE: &str = "usage: damselfly-bench [--runs N] [--rows N] [--commits N] [--lookups N]
                       [--recovery-rows N] [--engines a,b,..] [--workloads a,b,..]
                       [--dir PATH] [--out FILE]
       damselfly-bench step ENGINE WORKLOAD FOLDER PARAMS-JSON";

/// What the driver runs.
#[derive(Debug)]
struct Options {
    runs: usize,
    engines: Vec<Engine>,
    workloads: Vec<Workload>,
    /// Where the steps keep their databases (on the disk to measure).
    dir: PathBuf,
    /// Where the results table goes.
    out: PathBuf,
    params: Params,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        runs: 3,
        engines: Engine::ALL.to_vec(),
        workloads: Workload::ALL.to_vec(),
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/data"),
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("results.md"),
        params: Params::default(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {text:?} is not a number"))
        };
        match flag.as_str() {
            "--runs" => options.runs = number(value()?)? as usize,
            "--rows" => options.params.rows = number(value()?)?,
            "--commits" => options.params.commits = number(value()?)?,
            "--lookups" => options.params.lookups = number(value()?)? as usize,
            "--recovery-rows" => options.params.recovery_rows = number(value()?)?,
            "--engines" => {
                options.engines = value()?
                    .split(',')
                    .map(Engine::parse)
                    .collect::<Result<_, _>>()?
            }
            "--workloads" => {
                options.workloads = value()?
                    .split(',')
                    .map(Workload::parse)
                    .collect::<Result<_, _>>()?
            }
            "--dir" => options.dir = value()?.into(),
            "--out" => options.out = value()?.into(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let params = &options.params;
    if options.runs == 0 || params.rows < 8192 || params.commits < 64 || params.lookups == 0 {
        return Err(
            "--runs and --lookups must be positive, --rows at least 8192 and \
                    --commits at least 64"
                .to_owned(),
        );
    }
    if !params.rows.is_multiple_of(8192) || !params.recovery_rows.is_multiple_of(1024) {
        return Err("--rows must be a multiple of 8192, --recovery-rows of 1024".to_owned());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|arg| arg == "step") {
        let args: Vec<String> = args.skip(1).collect();
        return match args.as_slice() {
            [engine, workload, folder, params] => step(engine, workload, folder, params),
            _ => usage("step takes ENGINE WORKLOAD FOLDER PARAMS-JSON"),
        };
    }
    if args
        .peek()
        .is_some_and(|arg| arg == "--help" || arg == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse(args) {
        Ok(options) => drive(&options),
        Err(message) => usage(&message),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{message}\n{USAGE}");
    ExitCode::from(2)
}

/// One step in this process: prints its figures as one JSON line.
fn step(engine: &str, workload: &str, folder: &str, params: &str) -> ExitCode {
    let (engine, workload) = match (Engine::parse(engine), Workload::parse(workload)) {
        (Ok(engine), Ok(workload)) => (engine, workload),
        (Err(message), _) | (_, Err(message)) => return usage(&message),
    };
    let params: Params = match serde_json::from_str(params) {
        Ok(params) => params,
        Err(error) => return usage(&format!("bad PARAMS-JSON: {error}")),
    };
    let metrics = engine.step(workload, Path::new(folder), &params);
    let output = StepOutput {
        metrics,
        peak_rss_mib: measure::peak_rss_mib(),
    };
    println!(
        "{}",
        serde_json::to_string(&output).expect("figures serialise")
    );
    ExitCode::SUCCESS
}

/// Every workload, every engine taking turns, `runs` times; then the table.
fn drive(options: &Options) -> ExitCode {
    let params = serde_json::to_string(&options.params).expect("the parameters serialise");
    let run_step = |engine: Engine, workload: Workload, folder: &Path| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let output = Command::new(std::env::current_exe().expect("the suite's own path"))
            .args(["step", engine.name(), workload.name()])
            .arg(folder)
            .arg(&params)
            .env("SMOL_THREADS", cores.to_string())
            .output()
            .expect("the suite runs itself");
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "{} on {} failed:\n{stderr}",
                workload.name(),
                engine.name()
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str::<StepOutput>(line).ok()))
    };
    let mut results = Results::default();
    for run in 0..options.runs {
        let run_dir = options.dir.join(format!("run-{run}"));
        for &workload in &options.workloads {
            for &engine in options
                .engines
                .iter()
                .filter(|engine| engine.runs(workload))
            {
                let folder_of =
                    |workload: Workload| run_dir.join(engine.name()).join(workload.name());
                let folder = match workload.needs() {
                    Some(before) => {
                        let folder = folder_of(before);
                        if before == Workload::CrashLoad || !folder.exists() {
                            let _ = std::fs::remove_dir_all(&folder);
                            if let Err(message) = run_step(engine, before, &folder) {
                                eprintln!("{message}");
                                return ExitCode::FAILURE;
                            }
                        }
                        folder
                    }
                    None => {
                        let folder = folder_of(workload);
                        let _ = std::fs::remove_dir_all(&folder);
                        folder
                    }
                };
                eprintln!(
                    "run {}/{}: {} on {}",
                    run + 1,
                    options.runs,
                    workload.name(),
                    engine.name()
                );
                match run_step(engine, workload, &folder) {
                    Ok(Some(output)) => results.record(run, workload, engine, output),
                    Ok(None) => {
                        eprintln!(
                            "{} on {} printed no figures",
                            workload.name(),
                            engine.name()
                        );
                        return ExitCode::FAILURE;
                    }
                    Err(message) => {
                        eprintln!("{message}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    let table = results.markdown(options);
    println!("{table}");
    if let Err(error) = std::fs::write(&options.out, table) {
        eprintln!("cannot write {}: {error}", options.out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("written to {}", options.out.display());
    ExitCode::SUCCESS
}
