//! The workload/oracle harness on a swarm of seeds: every seed's run — concurrent clients,
//! crashes at random instants, power losses, crashes during recovery, storage faults, bit flips —
//! holds every promise the oracle checks, and replays to the same trace. The swarm is split in
//! halves that run side by side (one per core); together they take a few minutes of a debug
//! build.

use std::ops::Range;

use damselfly_actors::probe::Probe;
use damselfly_sim::FaultKind;
use damselfly_sim::harness::{PROBES, RunOptions, run_seed};

/// Seeds in each half of the swarm.
const HALF: u64 = 160;

/// A run sized for a debug build: a thousand operations and three crash cycles.
fn options() -> RunOptions {
    RunOptions {
        operations: 1_000,
        crash_cycles: 3,
        event_log: false,
        plan: None,
    }
}

#[test]
fn the_first_half_of_the_swarm_holds_every_promise() {
    swarm(0..HALF);
}

#[test]
fn the_second_half_of_the_swarm_holds_every_promise() {
    swarm(HALF..2 * HALF);
}

/// Runs `seeds`; fails with every failing seed's replay command.
fn swarm(seeds: Range<u64>) {
    let count = seeds.end - seeds.start;
    let mut failures = Vec::new();
    let mut operations = 0;
    let mut faults = std::collections::BTreeSet::new();
    let mut probes = std::collections::BTreeSet::new();
    for seed in seeds {
        let report = run_seed(seed, &options());
        operations += report.operations;
        faults.extend(report.ledger.counts.keys().copied());
        probes.extend(report.probes.keys().copied());
        if let Some(failure) = report.failure {
            failures.push(format!(
                "seed {seed}: {failure}\n  replay: cargo run --release -p damselfly-sim --bin sim -- --seed {seed} --ops 1000 --cycles 3 --trace"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The swarm did work and met faults of every kind...
    assert!(operations > count * 300, "only {operations} operations ran");
    for kind in FaultKind::ALL {
        assert!(faults.contains(&kind), "no seed met {kind}");
    }
    // ...and took the recovery paths those faults open, and compacted, collected garbage, held
    // writes back and refused conflicting transactions under them.
    for probe in [
        Probe::WalReplayedSegmentSynced,
        Probe::WalOwnSegmentFound,
        Probe::RecoveryReplayed,
        Probe::RecoverySkippedBelowFloor,
        Probe::ManifestPublishRetried,
        Probe::WalTruncationStopped,
        Probe::RecoveryTornTail,
        Probe::CompactionPublished,
        Probe::CompactionDroppedVersions,
        Probe::CompactionFailed,
        Probe::GcDeleted,
        Probe::WriteSlowdown,
        Probe::TransactionConflict,
        Probe::TransactionConflictInSst,
    ] {
        assert!(
            probes.contains(probe.name()),
            "no seed reached {}",
            probe.name()
        );
    }
    for probe in PROBES {
        assert!(probes.contains(probe), "no seed reached {probe}");
    }
}

#[test]
fn a_seed_replays_to_the_same_trace_and_answers() {
    for seed in [3, 17] {
        let first = run_seed(seed, &options());
        let second = run_seed(seed, &options());
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!(first.event_count, second.event_count, "seed {seed}");
        assert_eq!(first.operations, second.operations, "seed {seed}");
        assert_eq!(first.ledger, second.ledger, "seed {seed}");
        assert_eq!(first.story, second.story, "seed {seed}");
        assert_eq!(first.probes, second.probes, "seed {seed}");
    }
}
