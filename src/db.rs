//! [`Db`]: the handle applications hold. Cheap to clone; every clone is the same database.
//!
//! A write is checked and encoded on the caller's task (schema, keys, WAL record), admitted by
//! the memtable memory budget, then ordered by the memtable actor, which answers with the commit
//! timestamp once the commit is durable and visible. Reads take a snapshot of the published read
//! view and never wait for writers.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use damselfly_actors::Timestamp;
use damselfly_actors::compactor::CompactorMessage;
use damselfly_actors::gc::{GcMessage, GcReport};
use damselfly_actors::kernel::{Address, Lifecycle, Unavailable};
use damselfly_actors::memtable::{
    CommitAnswer, ConflictCheck, MemtableMessage, PreparedWrite, ReadView, TransactionPins,
    Visibility, WriteBudget,
};
use damselfly_actors::metrics::EngineMetrics;
use damselfly_actors::probe::{self, Probe};
use damselfly_actors::table::{KeyBytes, TableSchema};
use damselfly_runtimes::{JoinHandle, Runtime, RuntimeExt, Storage};
use futures_lite::FutureExt;

use crate::builder::Options;
use crate::error::{Error, ErrorKind};
use crate::follower::{self, Follower};
use crate::metrics::Metrics;
use crate::scan::Scan;
use crate::snapshot::Snapshot;
use crate::transaction::Transaction;
use crate::value::Key;

/// A channel holding one token: whoever receives it may do the one thing it stands for (close
/// the database, refresh a follower) and gives it back after.
pub(crate) fn token() -> (async_channel::Sender<()>, async_channel::Receiver<()>) {
    let token = async_channel::bounded(1);
    token
        .0
        .try_send(())
        .expect("a new channel with room for one message accepts one message");
    token
}

/// An open database. Clone it to share it between tasks; [`Db::close`] closes it for all clones.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

/// The state shared by every clone of a [`Db`].
pub(crate) struct DbInner {
    pub(crate) table: Arc<TableSchema>,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) memtable: Address<MemtableMessage>,
    pub(crate) compactor: Address<CompactorMessage>,
    pub(crate) gc: Address<GcMessage>,
    pub(crate) visibility: Arc<Visibility>,
    pub(crate) budget: Arc<WriteBudget>,
    /// The live transactions' snapshots (compaction keeps what their commits check).
    pub(crate) pins: Arc<TransactionPins>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) options: Options,
    /// The actors' tasks, in shutdown order; taken by the first `close`.
    pub(crate) actors: Mutex<Vec<JoinHandle<()>>>,
    /// One token: holding it is the right to run `close`.
    pub(crate) close_token: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Set on a read-only handle ([`DbBuilder::open_read_only`](crate::DbBuilder::open_read_only)).
    pub(crate) follower: Option<Follower>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Db")
            .field("location", &self.inner.storage.location())
            .field("schema", self.inner.table.schema())
            .field("key", &self.inner.table.key_names())
            .field("state", &self.inner.lifecycle)
            .finish()
    }
}

/// A version of the database: the state right after one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The commit timestamp that addresses it ([`Db::snapshot_at`]).
    pub timestamp: Timestamp,
}

/// The delay of a write per MiB it brings (in memtable memory), per level-0 file past the
/// slowdown threshold: about an eighth of the time the engine takes to take in a MiB, so each
/// file past the threshold slows writing by about an eighth, whatever the size of the writes.
const SLOWDOWN_PER_MIB: Duration = Duration::from_micros(250);

/// The longest delay of one write by the slowdown.
const SLOWDOWN_MAX: Duration = Duration::from_millis(100);

/// Why a stalled write woke up.
enum Stall {
    Failed,
    Released,
    TimedOut,
}

impl DbInner {
    /// The oldest commit timestamp time travel can read under the retention, counting back from
    /// `newest`, the newest visible commit (which may still be in a memtable).
    pub(crate) fn oldest_version(&self, view: &ReadView, newest: Timestamp) -> u64 {
        let now_ms = self.runtime.wall_clock_ms();
        let version = &view.version.version;
        self.options
            .retention
            .horizon(newest.get(), &version.time_index, now_ms)
            .max(version.history_floor)
    }

    /// Sends a prepared write to be committed, once the write slowdown and the memory budget
    /// let it in; `wait_for_sync` and `check` as in [`MemtableMessage::Commit`]. A refused
    /// commit gives its memory back.
    pub(crate) async fn submit(
        &self,
        write: PreparedWrite,
        wait_for_sync: bool,
        check: Option<ConflictCheck>,
    ) -> Result<CommitAnswer, Error> {
        self.slow_down(write.rows.memory_bytes).await;
        self.admit(write.rows.memory_bytes).await?;
        self.memtable
            .ask(|reply| MemtableMessage::Commit {
                write,
                wait_for_sync,
                check,
                reply,
            })
            .await
            .map_err(|_| self.unavailable())
    }

    /// Delays a write of `bytes` while level 0 is past its slowdown threshold:
    /// [`SLOWDOWN_PER_MIB`] per MiB for every file past it, so that ingest gives compaction
    /// (whose threads run when the foreground leaves a core idle) room before flushes have to
    /// stop.
    async fn slow_down(&self, bytes: usize) {
        if !self.options.automatic_compaction {
            return;
        }
        let level0_files = {
            let (view, _) = self.visibility.snapshot();
            view.version.version.level(0).len()
        };
        let Some(excess) = (level0_files + 1).checked_sub(self.options.level0_slowdown_files)
        else {
            return;
        };
        self.metrics.write_slowdowns.add(1);
        probe::hit(&*self.runtime, Probe::WriteSlowdown);
        let nanos = (SLOWDOWN_PER_MIB.as_nanos() * excess as u128 * bytes as u128) >> 20;
        let delay = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.runtime.sleep(delay.min(SLOWDOWN_MAX)).await;
    }

    /// Waits until the memtable budget has room for `bytes` — memory comes back as flushes
    /// complete — up to the stall timeout.
    async fn admit(&self, bytes: usize) -> Result<(), Error> {
        if self.budget.try_reserve(bytes) {
            return Ok(());
        }
        self.metrics.write_stalls.add(1);
        let deadline = self.runtime.now() + self.options.write_stall_timeout;
        loop {
            // Listen before trying again, so a release in between is not missed.
            let released = self.budget.listen();
            if self.budget.try_reserve(bytes) {
                return Ok(());
            }
            let remaining = deadline.saturating_duration_since(self.runtime.now());
            if remaining.is_zero() {
                break;
            }
            let failed = async {
                self.lifecycle.failed().await;
                Stall::Failed
            };
            let released = async {
                released.await;
                Stall::Released
            };
            let timed_out = async {
                self.runtime.sleep(remaining).await;
                Stall::TimedOut
            };
            match failed.or(released.or(timed_out)).await {
                Stall::Failed => return Err(self.unavailable()),
                Stall::Released => {}
                Stall::TimedOut => break,
            }
        }
        self.metrics.write_stall_timeouts.add(1);
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "the memtables are full ({} of {} bytes in use) and flushing freed no room within \
                {:?}; this write of {bytes} bytes was not applied. Check the storage (flushes may \
                be failing or slow), or raise memtable_bytes or write_stall_timeout.",
                self.budget.used(),
                self.budget.limit(),
                self.options.write_stall_timeout,
            ),
        ))
    }

    /// `key` encoded, and as one-row arrays of the key columns (for bloom filters).
    pub(crate) fn encode_key(&self, key: Key) -> Result<(KeyBytes, Vec<ArrayRef>), Error> {
        let key_columns = key.to_columns(&self.table.key_fields())?;
        let encoded = self.table.encode_key(&key_columns)?;
        Ok((encoded, key_columns))
    }

    /// `Ok` while the database accepts work.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        Ok(self.lifecycle.check()?)
    }

    /// `Ok` while the database accepts work that writes (`what`): not on a read-only handle.
    pub(crate) fn check_writable(&self, what: &str) -> Result<(), Error> {
        self.check_open()?;
        if self.follower.is_some() {
            return Err(Error::invalid_input(format!(
                "this handle is read-only (opened with open_read_only): it follows the database \
                 at {} and cannot {what}; do that through the database's writer",
                self.storage.location()
            )));
        }
        Ok(())
    }

    /// The error for a request an actor dropped: the failure that stopped it, or "closed".
    pub(crate) fn unavailable(&self) -> Error {
        self.lifecycle.unavailable().into()
    }
}

impl Db {
    pub(crate) fn from_inner(inner: DbInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A reference that does not keep the database alive.
    pub(crate) fn downgrade(&self) -> Weak<DbInner> {
        Arc::downgrade(&self.inner)
    }

    /// Adds a task that `close` waits for (after the actors).
    pub(crate) fn track_task(&self, task: JoinHandle<()>) {
        let mut tasks = self
            .inner
            .actors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tasks.push(task);
    }

    /// Upserts every row of `batch` in one atomic commit and returns its timestamp once it is
    /// durable (as the WAL sync policy promises) and visible to reads.
    ///
    /// The batch must have the table's columns (in any order) and types, and no null key. If
    /// several rows share a key, the last one wins. An empty batch commits nothing and returns
    /// the newest visible timestamp.
    pub async fn ingest(&self, batch: RecordBatch) -> Result<Timestamp, Error> {
        self.commit(&batch, None).await
    }

    /// Like [`Db::ingest`], but a row whose flag in `tombstones` is `true` deletes its key
    /// instead of upserting it (its other columns are ignored). `tombstones` has one flag per
    /// row.
    pub async fn ingest_with_tombstones(
        &self,
        batch: RecordBatch,
        tombstones: Vec<bool>,
    ) -> Result<Timestamp, Error> {
        self.commit(&batch, Some(&tombstones)).await
    }

    async fn commit(
        &self,
        batch: &RecordBatch,
        deletes: Option<&[bool]>,
    ) -> Result<Timestamp, Error> {
        let inner = &self.inner;
        inner.check_writable("write")?;
        let write = PreparedWrite::for_commit(&inner.table, batch, deletes)?;
        if write.num_rows() == 0 {
            return Ok(inner.visibility.watermark());
        }
        match inner.submit(write, true, None).await? {
            Ok(timestamp) => Ok(timestamp),
            Err(refused) => Err(Error::new(
                ErrorKind::Internal,
                format!("a commit without a conflict check was refused: {refused:?}"),
            )),
        }
    }

    /// Starts a transaction: it reads from a snapshot taken now, overlaid with its own writes,
    /// and commits them atomically — or fails with [`ErrorKind::Conflict`] if another commit
    /// wrote one of its keys after the snapshot. See [`Transaction`].
    pub async fn begin_transaction(&self) -> Result<Transaction, Error> {
        self.inner.check_writable("begin a transaction")?;
        Ok(Transaction::begin(Arc::clone(&self.inner)))
    }

    /// Seals the writable memtable and flushes every commit acknowledged so far to SSTs;
    /// returns once the manifest version naming them is published. Afterwards the write-ahead
    /// log holds nothing older, and opening the database replays nothing of it.
    pub async fn flush(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner.check_writable("flush")?;
        inner
            .memtable
            .ask(|reply| MemtableMessage::FlushAll { reply })
            .await
            .map_err(|_| inner.unavailable())?;
        Ok(())
    }

    /// Runs compaction until nothing is due — and, beyond what the automatic compactor does,
    /// until level 0 is merged down (leveled) or into one run (tiered) — and returns once every
    /// job's result is published, or with the error of a job that failed. Reads and writes go
    /// on meanwhile. See `docs/compaction.md`.
    pub async fn compact(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner.check_writable("compact")?;
        inner
            .compactor
            .ask(|reply| CompactorMessage::Compact { reply })
            .await
            .map_err(|_| inner.unavailable())?
            .map_err(Error::from)
    }

    /// Deletes the SST files nothing can reach any more — neither the current version nor a
    /// snapshot or scan — and that left the current version at least the grace period ago
    /// ([`DbBuilder::gc_grace_period`](crate::DbBuilder::gc_grace_period)); returns what was
    /// deleted and what waits. The GC sweeper does the same on its own every
    /// [`gc_interval`](crate::DbBuilder::gc_interval).
    pub async fn gc(&self) -> Result<GcReport, Error> {
        self.sweep(false).await
    }

    /// What [`Db::gc`] would delete now (in [`GcReport::deletable`]), deleting nothing.
    pub async fn gc_dry_run(&self) -> Result<GcReport, Error> {
        self.sweep(true).await
    }

    async fn sweep(&self, dry_run: bool) -> Result<GcReport, Error> {
        let inner = &self.inner;
        inner.check_writable("collect garbage")?;
        inner
            .gc
            .ask(|reply| GcMessage::Sweep { dry_run, reply })
            .await
            .map_err(|_| inner.unavailable())
    }

    /// The newest `count` versions a snapshot can be taken at, newest first. Every commit is a
    /// version, addressed by its commit timestamp; versions older than the retention
    /// ([`DbBuilder::retain_versions`](crate::DbBuilder::retain_versions),
    /// [`retain_for`](crate::DbBuilder::retain_for)) are not listed.
    pub async fn list_versions(&self, count: usize) -> Result<Vec<VersionInfo>, Error> {
        self.inner.check_open()?;
        let (view, newest) = self.inner.visibility.snapshot();
        let oldest = self.inner.oldest_version(&view, newest).max(1);
        Ok((oldest..=newest.get())
            .rev()
            .take(count)
            .map(|timestamp| VersionInfo {
                timestamp: Timestamp::new(timestamp),
            })
            .collect())
    }

    /// A snapshot that reads exactly the commits at or before `timestamp`. Fails with
    /// [`ErrorKind::InvalidInput`] when `timestamp` is newer than the newest commit or older than
    /// the retention keeps (the message names the oldest available timestamp).
    pub async fn snapshot_at(&self, timestamp: Timestamp) -> Result<Snapshot, Error> {
        let inner = &self.inner;
        inner.check_open()?;
        let (view, newest) = inner.visibility.snapshot();
        if timestamp > newest {
            return Err(Error::invalid_input(format!(
                "timestamp {timestamp} is newer than the newest commit, {newest}"
            )));
        }
        let oldest = inner.oldest_version(&view, newest);
        if timestamp.get() < oldest {
            return Err(Error::invalid_input(format!(
                "timestamp {timestamp} is older than the retention keeps; the oldest available \
                 timestamp is {oldest}"
            )));
        }
        Ok(Snapshot::new(Arc::clone(inner), view, timestamp))
    }

    /// The newest version of the row with `key`, as a one-row batch, or `None` if there is no
    /// such row (or it was deleted).
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<RecordBatch>, Error> {
        self.begin_snapshot().await?.get(key).await
    }

    /// A scan of the newest visible rows, in ascending key order; configure it, then `collect`
    /// or `stream` it. The scan reads the snapshot taken when it starts.
    pub fn scan(&self) -> Scan {
        Scan::of_db(self.clone())
    }

    /// A snapshot: reads through it see exactly the commits visible now, however many commits
    /// follow, for as long as it is held.
    pub async fn begin_snapshot(&self) -> Result<Snapshot, Error> {
        self.inner.check_open()?;
        let (view, timestamp) = self.inner.visibility.snapshot();
        Ok(Snapshot::new(Arc::clone(&self.inner), view, timestamp))
    }

    /// On a read-only handle ([`DbBuilder::open_read_only`](crate::DbBuilder::open_read_only)):
    /// loads the newest version the writer has published, so that reads from now on see every
    /// commit it covers, and returns the commit timestamp they read at. Snapshots taken before
    /// keep reading what they read. On the writer, whose reads always see every commit, it
    /// returns the newest visible commit timestamp.
    pub async fn refresh(&self) -> Result<Timestamp, Error> {
        let inner = &self.inner;
        inner.check_open()?;
        match &inner.follower {
            Some(state) => follower::refresh(inner, state).await,
            None => Ok(inner.visibility.watermark()),
        }
    }

    /// Whether this handle is read-only (a follower).
    pub fn is_read_only(&self) -> bool {
        self.inner.follower.is_some()
    }

    /// The database's counters and gauges. Cheap: a few atomic reads.
    pub fn metrics(&self) -> Metrics {
        Metrics::read(&self.inner)
    }

    /// Closes the database: refuses new work, lets every accepted commit finish, syncs and
    /// closes the write-ahead log, and stops the actors. Later calls on any clone fail with
    /// [`ErrorKind::Closed`]. Closing a closed database does nothing; if the database had
    /// failed, `close` returns the failure.
    pub async fn close(&self) -> Result<(), Error> {
        let inner = &self.inner;
        // Only one closer at a time; a second one waits for the first, then finds it closed.
        let token = inner.close_token.1.recv().await;
        let result = self.close_once().await;
        if token.is_ok() {
            let _ = inner.close_token.0.try_send(());
        }
        result
    }

    async fn close_once(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.lifecycle.begin_close() {
            if let Some(follower) = &inner.follower {
                follower.stop();
            }
            inner.memtable.close();
            inner.compactor.close();
            inner.gc.close();
            let actors =
                std::mem::take(&mut *inner.actors.lock().unwrap_or_else(PoisonError::into_inner));
            for actor in actors {
                actor.await?;
            }
            inner.lifecycle.finish_close();
        }
        match inner.lifecycle.failure() {
            Some(failure) => Err(Unavailable::Failed(failure).into()),
            None => Ok(()),
        }
    }
}
