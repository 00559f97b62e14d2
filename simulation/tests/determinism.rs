//! One seed gives one run, event for event (DESIGN.md invariant 9): within a process, across
//! fresh processes, and different seeds explore different interleavings.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use damselfly_runtimes::{Runtime, RuntimeExt};
use damselfly_sim::SimRuntime;
use futures_lite::future::yield_now;

/// Set in a child process to the seed whose trace it must print.
const CHILD_SEED_VAR: &str = "DAMSELFLY_SIM_CHILD_SEED";
/// The test the child process runs.
const CHILD_TEST: &str = "child_prints_trace_of_seed_from_env";
/// The line prefix under which the child prints its trace.
const TRACE_LINE_PREFIX: &str = "damselfly-sim-trace:";

const PRODUCER_COUNT: usize = 14;
const CONSUMER_COUNT: usize = 4;
const ROUND_COUNT: usize = 3;

/// What a run of the workload let us observe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    order: Vec<String>,
    trace_hash: u64,
    event_count: u64,
}

/// Twenty tasks that interleave through a bounded channel, sleeps and yields: producers send
/// into a channel, consumers receive from it, and a ticker sleeps periodically. Each task
/// appends what it does to a shared log, whose order is the run's observable interleaving.
fn run_workload(seed: u64) -> Observed {
    let sim = SimRuntime::new(seed);
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
    let observed = run_workload(seed);
    println!(
        "{TRACE_LINE_PREFIX}{} {}",
        observed.trace_hash, observed.event_count
    );
}

#[test]
fn same_seed_same_trace_in_fresh_processes() {
    let seed = 20_240_601;
    let local = run_workload(seed);
    let (Some(first), Some(second)) = (child_trace(seed), child_trace(seed)) else {
        eprintln!("skipped: the child test {CHILD_TEST} did not run in a child process");
        return;
    };
    assert_eq!(
        first, second,
        "two fresh processes ran seed {seed} differently"
    );
    assert_eq!(
        first,
        (local.trace_hash, local.event_count),
        "a fresh process and this one ran seed {seed} differently"
    );
}

/// Runs this test binary again, only the child test, and reads the trace it prints. `None` when
/// the harness filtered the child test out (it then reports "running 0 tests").
fn child_trace(seed: u64) -> Option<(u64, u64)> {
    let executable = std::env::current_exe().expect("the test binary knows its path");
    let output = Command::new(executable)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SEED_VAR, seed.to_string())
        .output()
        .expect("the test binary can be started again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child process failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
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
