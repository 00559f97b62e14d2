//! The same seed gives the same run: a whole database workload on the simulator — concurrent
//! writers, readers, a close and a reopen — produces the same trace of events twice, down to
//! every message an actor handles and every storage call.

use std::sync::Arc;

use crate::common::*;
use damselfly::runtime::RuntimeExt;
use damselfly_sim::SimRuntime;

/// Runs the workload on a fresh simulator and returns its trace hash and what the reads saw.
fn run(seed: u64) -> (u64, Vec<u64>) {
    let (hash, seen, _) = run_on(SimRuntime::new(seed));
    (hash, seen)
}

/// [`run`] on `sim`, also returning its event log (empty unless `sim` keeps one).
fn run_on(sim: SimRuntime) -> (u64, Vec<u64>, Vec<String>) {
    let seed = sim.seed();
    let runtime: Rt = Arc::new(sim.clone());
    let storage = Arc::new(sim.traced_storage());
    let seen = sim.block_on(async move {
        let db = events_builder()
            .on_storage(storage.clone())
            .open(runtime.clone())
            .await?;
        let writers: Vec<_> = (0..4u64)
            .map(|writer| {
                let db = db.clone();
                runtime.spawn("writer", async move {
                    for commit in 0..5 {
                        db.ingest(events(&[writer * 100 + commit], 0)).await?;
                    }
                    Ok::<_, damselfly::Error>(())
                })
            })
            .collect();
        // A reader racing the writers: what it sees depends on the interleaving.
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(row_count(&db.scan().collect().await?) as u64);
        }
        for writer in writers {
            writer.await??;
        }
        db.close().await?;
        let db = events_builder().on_storage(storage).open(runtime).await?;
        seen.push(row_count(&db.scan().collect().await?) as u64);
        db.close().await?;
        Ok::<_, damselfly::Error>(seen)
    });
    let (hash, log) = (sim.trace_hash(), sim.event_log());
    sim.shutdown();
    (
        hash,
        seen.unwrap_or_else(|error| panic!("seed {seed}: {error}")),
        log,
    )
}

#[test]
fn one_seed_replays_the_same_run() {
    let seed = sim_seed();
    let first = run(seed);
    let second = run(seed);
    assert_eq!(
        first, second,
        "seed {seed} did not replay (DAMSELFLY_SEED={seed})"
    );
    assert_eq!(
        first.1.last(),
        Some(&20),
        "every write is there after the reopen"
    );
}

#[test]
fn different_seeds_explore_different_runs() {
    let hashes: std::collections::BTreeSet<u64> = (0..8).map(|seed| run(seed).0).collect();
    assert!(hashes.len() > 1, "eight seeds gave one schedule");
}

#[test]
fn the_trace_holds_actor_messages_and_storage_calls() {
    let (hash, _, log) = run_on(SimRuntime::new(sim_seed()).with_event_log());
    assert_eq!(hash, run(sim_seed()).0, "keeping a log changes nothing");
    for expected in [
        "\"memtable\" = 1",
        "\"wal-writer\" = 1",
        "storage PutIfAbsent { path: \"TABLE\"",
        "storage Append { path: \"wal/",
    ] {
        assert!(
            log.iter().any(|event| event.contains(expected)),
            "no event like {expected} in a log of {} events",
            log.len()
        );
    }
}
