//! One seed gives one run, event for event (DESIGN.md invariant 9): within a process, across
//! fresh processes, and different seeds explore different interleavings.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use damselfly_runtimes::{Runtime, RuntimeExt};
use damselfly_sim::{SimRuntime, first_divergence};
use futures_lite::future::yield_now;

/// Set in a child process to the seed whose trace it must print.
const CHILD_SEED_VAR: &str = "DAMSELFLY_SIM_CHILD_SEED";
/// The test the child process runs.
const CHILD_TEST: &str = "child_prints_trace_of_seed_from_env";
/// Set in a child process to make it print its event log too.
const CHILD_LOG_VAR: &str = "DAMSELFLY_SIM_CHILD_LOG";
/// The line prefix under which the child prints its trace.
const TRACE_LINE_PREFIX: &str = "damselfly-sim-trace:";
/// The line prefix under which the child prints each event of its log.
const EVENT_LINE_PREFIX: &str = "damselfly-sim-event:";

const PRODUCER_COUNT: usize = 14;
const CONSUMER_COUNT: usize = 4;
const ROUND_COUNT: usize = 3;

/// What a run of the workload let us observe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    order: Vec<String>,
    trace_hash: u64,
    event_count: u64,
    /// The event log, when the run kept one.
    events: Vec<String>,
}

/// Twenty tasks that interleave through a bounded channel, sleeps and yields: producers send
/// into a channel, consumers receive from it, and a ticker sleeps periodically. Each task
/// appends what it does to a shared log, whose order is the run's observable interleaving.
fn run_workload(seed: u64) -> Observed {
    run_workload_on(SimRuntime::new(seed))
}

/// [`run_workload`] on a given runtime.
fn run_workload_on(sim: SimRuntime) -> Observed {
    let log = Arc::new(Mutex::new(Vec::new()));
    let runtime = sim.clone();
    let main_log = Arc::clone(&log);
    sim.block_on(async move {
        let (sender, receiver) = async_channel::bounded::<(usize, usize)>(2);
        let mut handles = Vec::new();
        for producer in 0..PRODUCER_COUNT {
            let (runtime_, sender, log) = (runtime.clone(), sender.clone(), Arc::clone(&main_log));
            let name = format!("producer-{producer}");
            handles.push(runtime.spawn(&name, produce(runtime_, producer, sender, log)));
        }
        drop(sender);
        for consumer in 0..CONSUMER_COUNT {
            let (runtime_, receiver, log) =
                (runtime.clone(), receiver.clone(), Arc::clone(&main_log));
            let name = format!("consumer-{consumer}");
            handles.push(runtime.spawn(&name, consume(runtime_, consumer, receiver, log)));
        }
        let ticker_log = Arc::clone(&main_log);
        handles.push(runtime.spawn("ticker", tick(runtime.clone(), ticker_log)));
        for handle in handles {
            handle.await.expect("workload tasks do not panic");
        }
    });
    let order = log
        .lock()
        .expect("no task panicked holding the log")
        .clone();
    let observed = Observed {
        order,
        trace_hash: sim.trace_hash(),
        event_count: sim.event_count(),
        events: sim.event_log(),
    };
    sim.shutdown();
    observed
}

async fn produce(
    runtime: SimRuntime,
    producer: usize,
    sender: async_channel::Sender<(usize, usize)>,
    log: Arc<Mutex<Vec<String>>>,
) {
    for round in 0..ROUND_COUNT {
        if (producer + round).is_multiple_of(3) {
            let pause = runtime.random_u64() % 4;
            runtime.sleep(Duration::from_millis(pause)).await;
        } else {
            yield_now().await;
        }
        log.lock()
            .expect("log")
            .push(format!("send {producer}.{round}"));
        sender
            .send((producer, round))
            .await
            .expect("consumers outlive producers");
    }
}

async fn consume(
    runtime: SimRuntime,
    consumer: usize,
    receiver: async_channel::Receiver<(usize, usize)>,
    log: Arc<Mutex<Vec<String>>>,
) {
    while let Ok((producer, round)) = receiver.recv().await {
        let entry = format!("consumer {consumer} got {producer}.{round}");
        log.lock().expect("log").push(entry);
        runtime.record("received", (producer * ROUND_COUNT + round) as u64);
        if (producer + round).is_multiple_of(2) {
            runtime.sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn tick(runtime: SimRuntime, log: Arc<Mutex<Vec<String>>>) {
    for tick in 0..5 {
        runtime.sleep(Duration::from_millis(2)).await;
        log.lock().expect("log").push(format!("tick {tick}"));
    }
}

#[test]
fn same_seed_gives_same_order_and_trace() {
    for seed in [0, 1, 42, u64::MAX] {
        let first = run_workload(seed);
        let second = run_workload(seed);
        assert_eq!(first, second, "seed {seed} did not replay");
        let expected_entries = PRODUCER_COUNT * ROUND_COUNT * 2 + 5;
        assert_eq!(first.order.len(), expected_entries, "seed {seed}");
    }
}

#[test]
fn different_seeds_explore_different_interleavings() {
    let runs: Vec<Observed> = (0..20).map(run_workload).collect();
    let orders: BTreeSet<&Vec<String>> = runs.iter().map(|run| &run.order).collect();
    let hashes: BTreeSet<u64> = runs.iter().map(|run| run.trace_hash).collect();
    assert!(orders.len() >= 2, "20 seeds gave one interleaving");
    assert!(hashes.len() >= 2, "20 seeds gave one trace");
}

/// Does nothing unless started as the child of `same_seed_same_trace_in_fresh_processes`.
#[test]
fn child_prints_trace_of_seed_from_env() {
    let Ok(seed) = std::env::var(CHILD_SEED_VAR) else {
        return;
    };
    let seed: u64 = seed.parse().expect("the parent passes a u64 seed");
    let sim = SimRuntime::new(seed);
    let sim = match std::env::var_os(CHILD_LOG_VAR) {
        Some(_) => sim.with_event_log(),
        None => sim,
    };
    let observed = run_workload_on(sim);
    println!(
        "{TRACE_LINE_PREFIX}{} {}",
        observed.trace_hash, observed.event_count
    );
    for event in &observed.events {
        println!("{EVENT_LINE_PREFIX}{event}");
    }
}

#[test]
fn same_seed_gives_same_event_log_and_a_difference_is_found_where_it_starts() {
    let logged = || run_workload_on(SimRuntime::new(5).with_event_log());
    let (first, second) = (logged(), logged());
    assert_eq!(first.events.len() as u64, first.event_count);
    assert_eq!(first.events, second.events);
    assert_eq!(first_divergence(&first.events, &second.events), None);
    // The log does not change the run.
    assert_eq!(first.trace_hash, run_workload(5).trace_hash);

    // A run that records one event more than the other parts ways exactly there.
    let sim = SimRuntime::new(5).with_event_log();
    let runtime = sim.clone();
    sim.block_on(async move { runtime.record("extra", 1) });
    let mut changed = sim.event_log();
    let extra_at = changed
        .iter()
        .position(|event| event.contains("\"extra\""))
        .expect("the extra event is logged");
    let other = SimRuntime::new(5).with_event_log();
    let runtime = other.clone();
    other.block_on(async move { runtime.record("expected", 1) });
    let expected = other.event_log();
    let divergence = first_divergence(&changed, &expected).expect("the logs differ");
    assert_eq!(divergence.index, extra_at);
    assert!(
        divergence.to_string().contains("\"extra\" = 1"),
        "{divergence}"
    );
    // A log that stops early parts ways where it ends.
    changed.truncate(extra_at);
    let divergence = first_divergence(&changed, &expected).expect("one log is shorter");
    assert_eq!(divergence.index, extra_at);
    assert_eq!(divergence.left, None);
    assert_eq!(divergence.right.as_ref(), expected.get(extra_at));
}

#[test]
fn same_seed_same_trace_in_fresh_processes() {
    let seed = 20_240_601;
    let local = run_workload(seed);
    let (Some(first), Some(second)) = (child_trace(seed), child_trace(seed)) else {
        eprintln!("skipped: the child test {CHILD_TEST} did not run in a child process");
        return;
    };
    if first != second {
        let (left, right) = (child_events(seed), child_events(seed));
        let divergence = first_divergence(&left, &right).map_or_else(
            || "the event logs agree".to_owned(),
            |found| found.to_string(),
        );
        panic!("two fresh processes ran seed {seed} differently: {divergence}");
    }
    assert_eq!(
        first,
        (local.trace_hash, local.event_count),
        "a fresh process and this one ran seed {seed} differently"
    );
    // Event for event, too: the logs a fresh process prints are this process's.
    let here = run_workload_on(SimRuntime::new(seed).with_event_log()).events;
    let there = child_events(seed);
    assert_eq!(here.len() as u64, local.event_count);
    if let Some(divergence) = first_divergence(&here, &there) {
        panic!("a fresh process and this one ran seed {seed} differently: {divergence}");
    }
}

/// Runs this test binary again, only the child test, and reads the trace it prints. `None` when
/// the harness filtered the child test out (it then reports "running 0 tests").
fn child_trace(seed: u64) -> Option<(u64, u64)> {
    let stdout = child_output(seed, false);
    // The harness prints "test NAME ... " on the same line before the test's own output.
    let Some((_, line)) = stdout
        .lines()
        .find_map(|line| line.split_once(TRACE_LINE_PREFIX))
    else {
        assert!(
            stdout.contains("running 0 tests"),
            "the child test ran but printed no trace:\n{stdout}"
        );
        return None;
    };
    let (hash, count) = line.trim().split_once(' ').expect("hash and event count");
    Some((
        hash.parse().expect("a u64 hash"),
        count.parse().expect("a u64 count"),
    ))
}

/// The event log of `seed`'s run in a fresh process.
fn child_events(seed: u64) -> Vec<String> {
    child_output(seed, true)
        .lines()
        .filter_map(|line| line.split_once(EVENT_LINE_PREFIX))
        .map(|(_, event)| event.to_owned())
        .collect()
}

/// What the child test prints for `seed`, with its event log if `log`.
fn child_output(seed: u64, log: bool) -> String {
    let executable = std::env::current_exe().expect("the test binary knows its path");
    let mut command = Command::new(executable);
    command
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SEED_VAR, seed.to_string());
    if log {
        command.env(CHILD_LOG_VAR, "1");
    }
    let output = command
        .output()
        .expect("the test binary can be started again");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child process failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
