//! `sim`: runs simulated seeds of the whole database, with faults, against the oracle.
//!
//! ```text
//! sim --seeds 0..1000 [--jobs N] [--ops N] [--cycles N] [--determinism K]
//! sim --seed N [--ops N] [--cycles N] [--trace]
//! ```
//!
//! With `--seeds`, every seed runs in its own process (this binary again), `--jobs` at a time;
//! the summary lists failures with the command that replays each, how many seeds met each fault
//! kind and reached each probe (and which none did), and the throughput. `--determinism K` runs
//! the first K seeds a second time, in fresh processes, and compares trace hashes; a seed whose
//! hashes differ runs twice more with event logs, and the first event that differs is printed.
//! A failing seed is minimised: it is run again with fewer operations, and the shortest run that
//! still fails is what the replay command names.
//! With `--seed`, one seed runs here and its report is printed; `--trace` adds every event.

// The command line runs seeds in child processes and measures them by the wall clock; the
// determinism bans are for the engine, which runs inside each child on the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damselfly_actors::probe::Probe;
use damselfly_sim::harness::{PROBES, RunOptions, SeedReport, run_seed};
use damselfly_sim::{FaultKind, first_divergence};

// A seed allocates and frees buffers at a high rate (decoded pages, batches, keys, storage
// reads, and zstd's contexts, one per column chunk: the `override` feature serves C's malloc
// too); mimalloc does that with about a fifth less CPU than the system allocator. The engine
// itself leaves the allocator to the application.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: sim --seeds A..B [--jobs N] [--ops N] [--cycles N] [--determinism K]
       sim --seed N [--ops N] [--cycles N] [--trace]";

/// The line a child prints for its parent: `RESULT` and `key=value` fields.
const RESULT: &str = "RESULT";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Swarm {
        seeds: Range<u64>,
        jobs: usize,
        determinism: u64,
    },
    One {
        seed: u64,
        trace: bool,
        child: bool,
    },
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    operations: u64,
    cycles: u32,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut seeds = None;
    let mut seed = None;
    let mut jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let mut determinism = 0;
    let mut trace = false;
    let mut child = false;
    let defaults = RunOptions::default();
    let (mut operations, mut cycles) = (defaults.operations, defaults.crash_cycles);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{name} takes a number, not {text:?}"))
        };
        match arg.as_str() {
            "--seeds" => {
                let text = value("--seeds")?;
                let (start, end) = text
                    .split_once("..")
                    .ok_or_else(|| format!("--seeds takes a range like 0..1000, not {text:?}"))?;
                let range =
                    number("--seeds", start.to_owned())?..number("--seeds", end.to_owned())?;
                if range.is_empty() {
                    return Err(format!("--seeds {text} is empty"));
                }
                seeds = Some(range);
            }
            "--seed" => seed = Some(number("--seed", value("--seed")?)?),
            "--jobs" => jobs = number("--jobs", value("--jobs")?)?.max(1) as usize,
            "--ops" => operations = number("--ops", value("--ops")?)?,
            "--cycles" => {
                cycles = u32::try_from(number("--cycles", value("--cycles")?)?)
                    .map_err(|_| "--cycles is too large".to_owned())?;
            }
            "--determinism" => determinism = number("--determinism", value("--determinism")?)?,
            "--trace" => trace = true,
            "--child" => child = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mode = match (seeds, seed) {
        (Some(seeds), None) => Mode::Swarm {
            seeds,
            jobs,
            determinism,
        },
        (None, Some(seed)) => Mode::One { seed, trace, child },
        _ => return Err("give either --seeds A..B or --seed N".to_owned()),
    };
    Ok(Args {
        mode,
        operations,
        cycles,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("sim: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.mode.clone() {
        Mode::One { seed, trace, child } => one(&args, seed, trace, child),
        Mode::Swarm {
            seeds,
            jobs,
            determinism,
        } => swarm(&args, seeds, jobs, determinism),
    }
}

fn options(args: &Args, operations: u64, trace: bool) -> RunOptions {
    RunOptions {
        operations,
        crash_cycles: args.cycles,
        event_log: trace,
        plan: None,
    }
}

/// Runs one seed here and prints its report (or, for a parent, one `RESULT` line).
fn one(args: &Args, seed: u64, trace: bool, child: bool) -> ExitCode {
    // Quiet: the engine's panics are caught and reported by the harness.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let report = run_seed(seed, &options(args, args.operations, trace));
    let wall = started.elapsed();
    if child {
        println!("{}", result_line(&report, wall));
    } else {
        print_report(args, &report, wall);
    }
    if report.failure.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(args: &Args, seed: u64, operations: u64) -> String {
    format!(
        "cargo run --release -p damselfly-sim --bin sim -- --seed {seed} --ops {operations} --cycles {} --trace",
        args.cycles
    )
}

fn print_report(args: &Args, report: &SeedReport, wall: Duration) {
    if !report.event_log.is_empty() {
        for line in &report.event_log {
            println!("{line}");
        }
        println!();
    }
    println!("seed {} ({:?} schedule)", report.seed, report.policy);
    let plan: Vec<&str> = report.plan.kinds().map(FaultKind::name).collect();
    println!("faults planned: {}", plan.join(" "));
    for line in &report.story {
        println!("  {line}");
    }
    for record in &report.ledger.records {
        println!(
            "  fault at {:?}: {} {}",
            record.at, record.kind, record.detail
        );
    }
    println!("probes reached: {}", format_counts(&report.probes));
    println!(
        "{} operations, {} reads and {} transactions checked, {:.1} s virtual in {:.2} s, trace hash {:#018x} over {} events",
        report.operations,
        report.reads_checked,
        report.transactions_checked,
        report.virtual_time.as_secs_f64(),
        wall.as_secs_f64(),
        report.trace_hash,
        report.event_count
    );
    match &report.failure {
        None => println!("ok"),
        Some(failure) => {
            println!("FAILED: {failure}");
            println!("replay: {}", replay(args, report.seed, args.operations));
        }
    }
}

/// `name:count` pairs, comma-separated, as a `RESULT` field carries them.
fn format_counts<K: std::fmt::Display>(counts: &BTreeMap<K, u64>) -> String {
    let pairs: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("{name}:{count}"))
        .collect();
    pairs.join(",")
}

/// The counts [`format_counts`] wrote.
fn parse_counts(field: &str) -> BTreeMap<String, u64> {
    field
        .split(',')
        .filter_map(|pair| pair.split_once(':'))
        .map(|(name, count)| (name.to_owned(), count.parse().unwrap_or(0)))
        .collect()
}

fn result_line(report: &SeedReport, wall: Duration) -> String {
    let failure = report
        .failure
        .as_deref()
        .unwrap_or("")
        .replace(['\n', '\t'], " ");
    format!(
        "{RESULT}\tseed={}\tok={}\toperations={}\tvirtual_ms={}\twall_ms={}\thash={:#x}\tfaults={}\tprobes={}\tfailure={failure}",
        report.seed,
        u8::from(report.failure.is_none()),
        report.operations,
        report.virtual_time.as_millis(),
        wall.as_millis(),
        report.trace_hash,
        format_counts(&report.ledger.counts),
        format_counts(&report.probes),
    )
}

/// One child's answer.
#[derive(Debug, Clone, Default)]
struct Outcome {
    seed: u64,
    ok: bool,
    virtual_ms: u64,
    wall_ms: u64,
    hash: String,
    faults: BTreeMap<String, u64>,
    probes: BTreeMap<String, u64>,
    failure: String,
}

/// This binary, running `seed` with `operations` operations in a process of its own.
fn seed_command(args: &Args, seed: u64, operations: u64) -> Command {
    let executable = std::env::current_exe().expect("the running binary has a path");
    let mut command = Command::new(executable);
    command
        .args(["--seed", &seed.to_string()])
        .args(["--ops", &operations.to_string()])
        .args(["--cycles", &args.cycles.to_string()]);
    command
}

fn run_child(args: &Args, seed: u64, operations: u64) -> Outcome {
    let output = seed_command(args, seed, operations).arg("--child").output();
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            return Outcome {
                seed,
                failure: format!("could not start the seed's process: {error}"),
                ..Outcome::default()
            };
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find(|line| line.starts_with(RESULT)) else {
        return Outcome {
            seed,
            failure: format!(
                "the seed's process died ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            ..Outcome::default()
        };
    };
    let mut outcome = Outcome {
        seed,
        ..Outcome::default()
    };
    for field in line.split('\t').skip(1) {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "ok" => outcome.ok = value == "1",
            "virtual_ms" => outcome.virtual_ms = value.parse().unwrap_or(0),
            "wall_ms" => outcome.wall_ms = value.parse().unwrap_or(0),
            "hash" => outcome.hash = value.to_owned(),
            "faults" => outcome.faults = parse_counts(value),
            "probes" => outcome.probes = parse_counts(value),
            "failure" => outcome.failure = value.to_owned(),
            _ => {}
        }
    }
    outcome
}

/// Runs `jobs` at a time over worker threads, each job a child process.
fn run_all(jobs: usize, work: Vec<(u64, u64)>, args: &Args) -> Vec<Outcome> {
    let next = AtomicU64::new(0);
    let outcomes = Mutex::new(Vec::new());
    let work = Arc::new(work);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst) as usize;
                    let Some(&(seed, operations)) = work.get(index) else {
                        return;
                    };
                    let outcome = run_child(args, seed, operations);
                    if !outcome.ok {
                        eprintln!("seed {seed}: FAILED: {}", outcome.failure);
                    }
                    outcomes.lock().expect("no worker panics").push(outcome);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("no worker panics");
    outcomes.sort_by_key(|outcome| outcome.seed);
    outcomes
}

fn swarm(args: &Args, seeds: Range<u64>, jobs: usize, determinism: u64) -> ExitCode {
    let started = Instant::now();
    let count = seeds.end - seeds.start;
    println!(
        "running {count} seeds ({}..{}), {} operations and {} crash cycles each, {jobs} at a time",
        seeds.start, seeds.end, args.operations, args.cycles
    );
    let work: Vec<(u64, u64)> = seeds.clone().map(|seed| (seed, args.operations)).collect();
    let outcomes = run_all(jobs, work, args);
    let wall = started.elapsed();

    let sampled: Vec<(u64, u64)> = seeds
        .clone()
        .take(determinism as usize)
        .map(|seed| (seed, args.operations))
        .collect();
    let again = run_all(jobs, sampled, args);
    let mut nondeterministic = Vec::new();
    for second in &again {
        let first = outcomes.iter().find(|outcome| outcome.seed == second.seed);
        if first.is_none_or(|first| first.hash != second.hash || first.hash.is_empty()) {
            nondeterministic.push(second.seed);
        }
    }

    let failures: Vec<&Outcome> = outcomes.iter().filter(|outcome| !outcome.ok).collect();
    let virtual_secs: f64 = outcomes.iter().map(|o| o.virtual_ms as f64 / 1000.0).sum();
    let cpu_secs: f64 = outcomes.iter().map(|o| o.wall_ms as f64 / 1000.0).sum();
    println!();
    println!(
        "{count} seeds in {:.1} s: {} failed; {:.0} seeds/min; {:.0} virtual s simulated, {:.0} virtual s per CPU-s",
        wall.as_secs_f64(),
        failures.len(),
        count as f64 / wall.as_secs_f64() * 60.0,
        virtual_secs,
        virtual_secs / cpu_secs.max(f64::EPSILON)
    );
    println!("fault kinds (seeds that met each, and how often in all):");
    let kinds = FaultKind::ALL.iter().map(|kind| kind.name());
    print_coverage("fault kinds never met", kinds, &outcomes, |o| &o.faults);
    println!("probes (seeds that reached each, and how often in all):");
    let engine = Probe::ALL.iter().map(|probe| probe.name());
    let probes = engine.chain(PROBES.iter().copied());
    print_coverage("probes never reached", probes, &outcomes, |o| &o.probes);
    if determinism > 0 {
        println!(
            "determinism: {} of {} seeds gave the same trace hash in a fresh process{}",
            again.len() - nondeterministic.len(),
            again.len(),
            if nondeterministic.is_empty() {
                String::new()
            } else {
                format!("; differed: {nondeterministic:?}")
            }
        );
    }
    for &seed in &nondeterministic {
        println!(
            "seed {seed} is not deterministic: {}",
            divergence(args, seed)
        );
    }
    for failure in &failures {
        let operations = minimise(args, failure.seed);
        println!("FAILED seed {}: {}", failure.seed, failure.failure);
        println!("  replay: {}", replay(args, failure.seed, operations));
    }
    if failures.is_empty() && nondeterministic.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints, for each of `names`, how many outcomes count it and how often in all, then the names
/// none counts after `never`.
fn print_coverage<'a>(
    never: &str,
    names: impl Iterator<Item = &'a str>,
    outcomes: &[Outcome],
    counts: impl Fn(&Outcome) -> &BTreeMap<String, u64>,
) {
    let mut missed = Vec::new();
    for name in names {
        let seeds = outcomes
            .iter()
            .filter(|o| counts(o).get(name).is_some_and(|&n| n > 0))
            .count();
        let total: u64 = outcomes.iter().filter_map(|o| counts(o).get(name)).sum();
        if seeds == 0 {
            missed.push(name);
        }
        println!(
            "  {name:<32} {seeds:>5} seeds ({:>5.1}%) {total:>9} times",
            seeds as f64 * 100.0 / outcomes.len().max(1) as f64,
        );
    }
    if !missed.is_empty() {
        println!("{never}: {}", missed.join(" "));
    }
}

/// Runs `seed` twice more, in fresh processes with event logs, and says where the logs part
/// ways.
fn divergence(args: &Args, seed: u64) -> String {
    let event_log = || -> Result<Vec<String>, String> {
        let output = seed_command(args, seed, args.operations)
            .arg("--trace")
            .output()
            .map_err(|error| format!("could not start the seed's process: {error}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout
            .lines()
            .filter(|line| line.starts_with('#'))
            .map(str::to_owned)
            .collect())
    };
    match (event_log(), event_log()) {
        (Ok(left), Ok(right)) => match first_divergence(&left, &right) {
            Some(divergence) => divergence.to_string(),
            None => format!(
                "two more runs gave equal event logs ({} events): the difference comes and goes",
                left.len()
            ),
        },
        (Err(error), _) | (_, Err(error)) => error,
    }
}

/// The fewest operations (halving from the full run) with which `seed` still fails.
fn minimise(args: &Args, seed: u64) -> u64 {
    let mut shortest = args.operations;
    let mut operations = args.operations / 2;
    while operations >= 100 {
        if run_child(args, seed, operations).ok {
            break;
        }
        shortest = operations;
        operations /= 2;
    }
    shortest
}
