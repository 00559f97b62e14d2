//! The engine's counters, updated by the actors and read by `Db::metrics`.
//!
//! Plain relaxed atomics: cheap to bump on hot paths, cheap to read, and each value is exact on
//! its own (a reader may see one counter a moment ahead of another).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the actors of one database.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Commits acknowledged.
    pub commits: Counter,
    /// Rows in acknowledged commits.
    pub rows_committed: Counter,
    /// Bytes written to the WAL (frames, headers included).
    pub wal_bytes_written: Counter,
    /// Group writes to the WAL (each holds one or more commits).
    pub wal_writes: Counter,
    /// Syncs of the WAL to stable storage.
    pub wal_syncs: Counter,
    /// WAL segments created.
    pub wal_segments_created: Counter,
    /// WAL segments deleted because every commit in them is in an SST.
    pub wal_segments_deleted: Counter,
    /// Memtables flushed to published SSTs.
    pub memtables_flushed: Counter,
    /// Rows written to SSTs by flushes.
    pub rows_flushed: Counter,
    /// Bytes of SST files written by flushes.
    pub sst_bytes_written: Counter,
    /// Writes that had to wait for memtable memory.
    pub write_stalls: Counter,
    /// Writes that gave up waiting for memtable memory.
    pub write_stall_timeouts: Counter,
    /// Commits replayed from the WAL when the database was opened.
    pub replayed_commits: Counter,
    /// Rows replayed from the WAL when the database was opened.
    pub replayed_rows: Counter,
    /// Versions a read-only follower loaded after opening.
    pub follower_refreshes: Counter,
    /// Background refreshes of a read-only follower that failed (and were retried).
    pub follower_refresh_failures: Counter,
    /// Compaction jobs published.
    pub compaction_jobs: Counter,
    /// SSTs moved to a deeper level without being rewritten.
    pub compaction_moves: Counter,
    /// Compaction jobs that failed (and were retried).
    pub compaction_failures: Counter,
    /// Compaction jobs whose inputs were gone when they finished.
    pub compaction_lost_races: Counter,
    /// Bytes of SSTs read by published compactions.
    pub compaction_bytes_read: Counter,
    /// Bytes of SSTs written by published compactions.
    pub compaction_bytes_written: Counter,
    /// Row versions read by published compactions.
    pub compaction_rows_read: Counter,
    /// Row versions written by published compactions.
    pub compaction_rows_written: Counter,
    /// What the compaction executor reports of where jobs ran.
    pub executor: Arc<ExecutorMetrics>,
    /// Writes delayed because level 0 had reached the slowdown threshold.
    pub write_slowdowns: Counter,
    /// Flushes that waited because level 0 had reached the stop threshold.
    pub flush_stalls: Counter,
    /// SST files the GC sweeper deleted.
    pub gc_files_deleted: Counter,
    /// Deletes by the GC sweeper that failed (and are retried).
    pub gc_delete_failures: Counter,
    /// Transactions committed (with at least one write).
    pub transactions_committed: Counter,
    /// Transaction commits refused because a key had a newer version.
    pub transaction_conflicts: Counter,
    /// The newest commit timestamp whose WAL record is synced: it survives a power loss.
    pub wal_synced_timestamp: Gauge,
}

/// Counters a compaction executor keeps in the database's metrics: an executor that runs jobs
/// elsewhere says how many ran there, how many moved on to another place after one failed, and
/// how many fell back to running in this process. [`LocalExecutor::metrics`] hands them out.
///
/// [`LocalExecutor::metrics`]: crate::compactor::LocalExecutor::metrics
#[derive(Debug, Default)]
pub struct ExecutorMetrics {
    /// Jobs another process ran.
    pub remote_jobs: Counter,
    /// Times a job moved on to another worker after one did not run it (no answer in time,
    /// unreachable, a refusal or a failure).
    pub failovers: Counter,
    /// Jobs run in this process because no worker could take them.
    pub fallbacks: Counter,
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `amount`.
    pub fn add(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
