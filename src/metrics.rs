//! [`Metrics`]: a snapshot of the database's counters and gauges.

use damselfly_actors::Timestamp;

use crate::db::DbInner;

/// Counters (since the database was opened) and gauges (now). Reading them is a few atomic loads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Commits acknowledged.
    pub commits: u64,
    /// Rows in acknowledged commits.
    pub rows_committed: u64,
    /// The newest commit timestamp visible to reads.
    pub visible_timestamp: Timestamp,
    /// The newest commit this instance has synced to stable storage: every commit up to it
    /// survives a power loss. Under `WalSyncPolicy::Always` it keeps up with
    /// `visible_timestamp`; under the interval policies it trails it. It starts at zero when the
    /// database is opened (the log a crashed instance left behind may not have been synced).
    pub durable_timestamp: Timestamp,
    /// Bytes written to the write-ahead log.
    pub wal_bytes_written: u64,
    /// Group writes to the write-ahead log (each carries one or more commits).
    pub wal_writes: u64,
    /// Syncs of the write-ahead log to stable storage.
    pub wal_syncs: u64,
    /// Write-ahead log segments created.
    pub wal_segments_created: u64,
    /// WAL segments deleted because every commit in them is in an SST.
    pub wal_segments_deleted: u64,
    /// Memory the memtables use (data and index), in bytes: the writable one and the sealed ones
    /// not yet flushed.
    pub memtable_bytes: u64,
    /// The memtables' memory budget, in bytes.
    pub memtable_budget_bytes: u64,
    /// Rows held in the memtables: one per key and commit, so a key written three times
    /// counts three times until it is flushed.
    pub memtable_rows: u64,
    /// Sealed memtables waiting to be flushed.
    pub sealed_memtables: u64,
    /// Memtables flushed to SSTs.
    pub memtables_flushed: u64,
    /// Rows written to SSTs by flushes.
    pub rows_flushed: u64,
    /// Bytes of SSTs written by flushes.
    pub sst_bytes_written: u64,
    /// SSTs in the current manifest version.
    pub sst_count: u64,
    /// Bytes of the SSTs in the current manifest version.
    pub sst_bytes: u64,
    /// The number of the current manifest version.
    pub manifest_version: u64,
    /// Writes that had to wait for memtable memory.
    pub write_stalls: u64,
    /// Writes that gave up waiting for memtable memory.
    pub write_stall_timeouts: u64,
    /// Commit requests waiting in the memtable actor's mailbox.
    pub memtable_queue_depth: u64,
    /// Commits replayed from the write-ahead log when the database was opened.
    pub replayed_commits: u64,
    /// Rows replayed from the write-ahead log when the database was opened.
    pub replayed_rows: u64,
    /// Newer versions a read-only follower loaded since it was opened.
    pub follower_refreshes: u64,
    /// Background refreshes of a read-only follower that failed (each is retried at the next
    /// tick).
    pub follower_refresh_failures: u64,
    /// SSTs in level 0 (flushed, not yet compacted).
    pub level0_sst_count: u64,
    /// SSTs per level, level 0 first.
    pub level_sst_counts: Vec<u64>,
    /// Compaction jobs published.
    pub compaction_jobs: u64,
    /// SSTs moved to a deeper level without being rewritten.
    pub compaction_moves: u64,
    /// Compaction jobs that failed (they are retried).
    pub compaction_failures: u64,
    /// Compaction jobs whose inputs had been replaced by the time they finished.
    pub compaction_lost_races: u64,
    /// Bytes of SSTs read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of SSTs written by compactions.
    pub compaction_bytes_written: u64,
    /// Row versions read by compactions.
    pub compaction_rows_read: u64,
    /// Row versions written by compactions (fewer than read: versions no read needs dropped).
    pub compaction_rows_written: u64,
    /// Compaction jobs a remote executor ran in another process (see `damselfly-remote`).
    pub compaction_remote_jobs: u64,
    /// Times a remote executor moved a job on to another worker after one did not run it (no
    /// answer in time, unreachable, a refusal or a failure).
    pub compaction_failovers: u64,
    /// Jobs a remote executor ran in this process because no worker could take them.
    pub compaction_fallbacks: u64,
    /// Writes delayed because level 0 had reached its slowdown threshold.
    pub write_slowdowns: u64,
    /// Flushes that waited because level 0 had reached its stop threshold.
    pub flush_stalls: u64,
    /// SST files the GC sweeper deleted.
    pub gc_files_deleted: u64,
    /// Transactions committed (a transaction without writes commits nothing and is not
    /// counted).
    pub transactions_committed: u64,
    /// Transaction commits that failed with a conflict.
    pub transaction_conflicts: u64,
    /// Transactions begun and not yet committed, aborted or dropped.
    pub live_transactions: u64,
    /// Deletes by the GC sweeper that failed (they are retried).
    pub gc_delete_failures: u64,
}

impl Metrics {
    pub(crate) fn read(db: &DbInner) -> Self {
        let counters = &db.metrics;
        let (view, visible_timestamp) = db.visibility.snapshot();
        Self {
            commits: counters.commits.get(),
            rows_committed: counters.rows_committed.get(),
            visible_timestamp,
            durable_timestamp: Timestamp::new(counters.wal_synced_timestamp.get()),
            wal_bytes_written: counters.wal_bytes_written.get(),
            wal_writes: counters.wal_writes.get(),
            wal_syncs: counters.wal_syncs.get(),
            wal_segments_created: counters.wal_segments_created.get(),
            wal_segments_deleted: counters.wal_segments_deleted.get(),
            memtable_bytes: db.budget.used() as u64,
            memtable_budget_bytes: db.budget.limit() as u64,
            memtable_rows: view
                .memtables
                .iter()
                .map(|memtable| memtable.version_count() as u64)
                .sum(),
            sealed_memtables: view.memtables.len().saturating_sub(1) as u64,
            memtables_flushed: counters.memtables_flushed.get(),
            rows_flushed: counters.rows_flushed.get(),
            sst_bytes_written: counters.sst_bytes_written.get(),
            sst_count: view.version.len() as u64,
            sst_bytes: view.version.version.ssts().map(|sst| sst.bytes).sum(),
            manifest_version: view.version.version.number,
            write_stalls: counters.write_stalls.get(),
            write_stall_timeouts: counters.write_stall_timeouts.get(),
            memtable_queue_depth: db.memtable.queued() as u64,
            replayed_commits: counters.replayed_commits.get(),
            replayed_rows: counters.replayed_rows.get(),
            follower_refreshes: counters.follower_refreshes.get(),
            follower_refresh_failures: counters.follower_refresh_failures.get(),
            level0_sst_count: view.version.version.level(0).len() as u64,
            level_sst_counts: view
                .version
                .version
                .levels
                .iter()
                .map(|level| level.len() as u64)
                .collect(),
            compaction_jobs: counters.compaction_jobs.get(),
            compaction_moves: counters.compaction_moves.get(),
            compaction_failures: counters.compaction_failures.get(),
            compaction_lost_races: counters.compaction_lost_races.get(),
            compaction_bytes_read: counters.compaction_bytes_read.get(),
            compaction_bytes_written: counters.compaction_bytes_written.get(),
            compaction_rows_read: counters.compaction_rows_read.get(),
            compaction_rows_written: counters.compaction_rows_written.get(),
            compaction_remote_jobs: counters.executor.remote_jobs.get(),
            compaction_failovers: counters.executor.failovers.get(),
            compaction_fallbacks: counters.executor.fallbacks.get(),
            write_slowdowns: counters.write_slowdowns.get(),
            flush_stalls: counters.flush_stalls.get(),
            gc_files_deleted: counters.gc_files_deleted.get(),
            transactions_committed: counters.transactions_committed.get(),
            transaction_conflicts: counters.transaction_conflicts.get(),
            live_transactions: db.pins.live() as u64,
            gc_delete_failures: counters.gc_delete_failures.get(),
        }
    }

    /// Bytes written to SSTs (by flushes and compactions) per byte flushed: how many times
    /// compaction rewrote the data on average. 1.0 before any compaction; 0.0 before any flush.
    pub fn write_amplification(&self) -> f64 {
        if self.sst_bytes_written == 0 {
            return 0.0;
        }
        (self.sst_bytes_written + self.compaction_bytes_written) as f64
            / self.sst_bytes_written as f64
    }
}
