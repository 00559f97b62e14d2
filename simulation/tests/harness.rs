//! The workload/oracle harness on a small swarm of seeds: every seed's run — concurrent
//! clients, crashes at random instants, crashes during recovery, storage faults — holds every
//! promise the oracle checks, and replays to the same trace.

use damselfly_actors::probe::Probe;
use damselfly_sim::FaultKind;
use damselfly_sim::harness::{RunOptions, run_seed};

/// Seeds in the swarm: about a minute of a debug build on two cores.
const SEEDS: u64 = 64;

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
fn a_swarm_of_seeds_holds_every_promise() {
    let mut failures = Vec::new();
    let mut operations = 0;
    let mut faults = std::collections::BTreeSet::new();
    let mut probes = std::collections::BTreeSet::new();
    for seed in 0..SEEDS {
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
    // The swarm did work and met faults of many kinds...
    assert!(operations > SEEDS * 300, "only {operations} operations ran");
    for kind in [
        FaultKind::ProcessCrash,
        FaultKind::PowerLoss,
        FaultKind::ReadError,
        FaultKind::ShortRead,
        FaultKind::Stall,
    ] {
        assert!(faults.contains(&kind), "no seed met {kind}");
    }
    // ...and took the recovery paths those faults open.
    for probe in [
        Probe::WalReplayedSegmentSynced,
        Probe::RecoveryReplayed,
        Probe::RecoverySkippedBelowFloor,
        Probe::ManifestPublishRetried,
        Probe::WalTruncationStopped,
    ] {
        assert!(
            probes.contains(probe.name()),
            "no seed reached {}",
            probe.name()
        );
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
