//! Coverage probes: named points of the engine that a test wants to see reached — a torn WAL
//! tail ignored, a publish retried, commits below the floor met again by recovery. The engine calls [`hit`] there;
//! the runtime counts it ([`Runtime::probe`]; only the simulator keeps the counts), and the
//! simulator's swarm lists the probes no seed reached, so that a fault schedule that never
//! exercises a recovery path shows up as a gap instead of as silence.
//!
//! A new probe is a line in the list below and a [`hit`] where the engine reaches it.

use damselfly_runtimes::Runtime;

macro_rules! probes {
    ($($probe:ident = $name:literal: $what:literal,)*) => {
        /// A named point of the engine; see the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Probe {
            $(#[doc = $what] $probe,)*
        }

        impl Probe {
            /// Every probe, in the order of the list.
            pub const ALL: &[Probe] = &[$(Probe::$probe,)*];

            /// The probe's name, as the runtime counts it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Probe::$probe => $name,)*
                }
            }
        }
    };
}

probes! {
    WalGroupCommit = "wal.group_commit":
        "several commits shared one WAL write",
    WalSegmentRotated = "wal.segment_rotated":
        "a full or old WAL segment was closed and the next one started",
    WalReplayedSegmentSynced = "wal.replayed_segment_synced":
        "a new WAL writer synced the segment replay ended in before starting its own",
    WalOwnSegmentFound = "wal.own_segment_found":
        "a WAL segment reported taken held this writer's own bytes (its put took effect)",
    WalSegmentsDeleted = "wal.segments_deleted":
        "WAL segments below the floor were deleted",
    WalTruncationStopped = "wal.truncation_stopped":
        "a WAL segment could not be deleted, so truncation left it and every newer one",
    OpenRetriedAfterStaleSegment = "open.retried_after_stale_segment":
        "a stale writer wrote the WAL segment an opening writer was to start with; it opened again",
    RecoveryReplayed = "recovery.replayed":
        "recovery replayed commits from the WAL",
    RecoverySkippedBelowFloor = "recovery.skipped_below_floor":
        "recovery met commits already in SSTs (a crash between publish and WAL truncation)",
    RecoveryTornTail = "recovery.torn_tail":
        "recovery ignored the torn tail of the last WAL segment",
    RecoverySupersededBytes = "recovery.superseded_bytes":
        "recovery ignored WAL bytes written after a successor segment had started",
    RecoverySealedDuringReplay = "recovery.sealed_during_replay":
        "replay filled a memtable and sealed it",
    ManifestPublishRetried = "manifest.publish_retried":
        "publishing a manifest version failed with an I/O error and was retried",
    ManifestPruneFailed = "manifest.prune_failed":
        "old manifest records could not be deleted and were left for later",
    CompactionPublished = "compaction.published":
        "a compaction's outputs replaced its inputs in a published version",
    CompactionDroppedVersions = "compaction.dropped_versions":
        "a compaction dropped versions no read at or after the horizon can see",
    CompactionFailed = "compaction.failed":
        "a compaction job failed; its outputs went to the GC sweeper",
    GcDeleted = "gc.deleted":
        "the GC sweeper deleted an unreachable SST",
    WriteSlowdown = "write.slowdown":
        "a write was delayed because level 0 has too many SSTs",
    FlushWaitedForCompaction = "flush.waited_for_compaction":
        "a flush waited for compaction because level 0 reached its stop threshold",
    FlushStopTimedOut = "flush.stop_timed_out":
        "a flush stopped waiting for compaction after the write stall timeout and went ahead",
    TransactionConflict = "transaction.conflict":
        "a transaction's commit failed: a key it writes has a newer version",
    TransactionConflictInSst = "transaction.conflict_in_sst":
        "a transaction's conflict was found in an SST (flushed or compacted since its snapshot)",
    TransactionViewOutdated = "transaction.view_outdated":
        "a transaction's commit checked SSTs again: a flush had dropped a memtable it relied on",
}

/// Notes that the engine reached `probe`.
pub fn hit(runtime: &dyn Runtime, probe: Probe) {
    runtime.probe(probe.name());
}
