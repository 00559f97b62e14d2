//! [`Transaction`]: several writes committed atomically, with snapshot isolation.
//!
//! A transaction reads from the snapshot taken when it began, overlaid with its own staged
//! writes; it commits them as one commit — one timestamp, one WAL record — if no key it writes
//! was committed by anyone else after that snapshot (first committer wins), and fails with
//! [`ErrorKind::Conflict`] otherwise. How a commit finds a newer version wherever it lives:
//! the committer checks the SSTs holding commits newer than its snapshot (see `conflict`), then
//! the memtable actor checks its memtables and orders the commit in one step, so nothing can
//! be committed in between. While a transaction is live, compaction keeps every version
//! committed after its snapshot, deletes included, so the check cannot miss one that was
//! merged away.

mod conflict;
mod staged;

use std::sync::Arc;

use arrow_array::RecordBatch;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::{CommitRefused, ConflictCheck, KeyedRows, TransactionPin};
use damselfly_actors::probe::{self, Probe};

use crate::db::DbInner;
use crate::error::{Error, ErrorKind};
use crate::scan::Scan;
use crate::snapshot::Snapshot;
use crate::value::Key;

pub(crate) use staged::StagedWrites;

/// When [`Transaction::commit_with`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Once the commit is durable as the WAL sync policy promises — under
    /// [`WalSyncPolicy::Always`](crate::WalSyncPolicy::Always), synced to stable storage — and
    /// visible. The default, and what [`Transaction::commit`] does.
    #[default]
    Durable,
    /// Once the commit is ordered, written to the operating system and visible to every read
    /// that starts afterwards, without waiting for a sync; the WAL writer syncs it within
    /// 10 ms. A process crash loses nothing acknowledged; a power loss (or an OS crash) before
    /// the sync may lose the commit — the whole commit, never a part of it, and only together
    /// with every commit after it.
    Visible,
}

/// A transaction: reads see the snapshot taken at [`Db::begin_transaction`](crate::Db::begin_transaction)
/// plus the transaction's own writes; [`Transaction::commit`] applies every write atomically,
/// or none if another commit wrote one of the same keys after the snapshot.
///
/// Writes are staged in the transaction's own memory (they do not count against the memtable
/// budget until the commit) and are invisible to everyone else until the commit. Dropping the
/// transaction, or [`Transaction::abort`], discards them. A live transaction holds its
/// snapshot (the files it reads are not deleted) and keeps compaction from merging away the
/// versions its commit must check, so do not leave one open longer than needed.
///
/// ```no_run
/// # async fn example(db: damselfly::Db, batch: damselfly::arrow_array::RecordBatch) -> Result<(), damselfly::Error> {
/// use damselfly::{ErrorKind, Key};
///
/// let mut tx = db.begin_transaction().await?;
/// tx.upsert(batch)?;
/// tx.delete(Key::from(7u64))?;
/// assert!(tx.get(Key::from(7u64)).await?.is_none()); // reads its own writes
/// match tx.commit().await {
///     Ok(_timestamp) => {}
///     Err(error) if error.kind() == ErrorKind::Conflict => { /* run it again */ }
///     Err(error) => return Err(error),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Transaction {
    snapshot: Snapshot,
    staged: StagedWrites,
    /// Keeps compaction from dropping versions newer than the snapshot.
    pin: TransactionPin,
}

impl Transaction {
    pub(crate) fn begin(db: Arc<DbInner>) -> Self {
        let (view, pin) = db.pins.pin(&db.visibility);
        let read_at = pin.timestamp();
        Self {
            snapshot: Snapshot::new(db, view, read_at),
            staged: StagedWrites::new(read_at),
            pin,
        }
    }

    /// The commit timestamp of the snapshot the transaction reads.
    pub fn timestamp(&self) -> Timestamp {
        self.pin.timestamp()
    }

    /// Stages an upsert of every row of `batch`, replacing earlier writes of the same keys in
    /// this transaction (and, within `batch`, the last row of a key wins). The batch must have
    /// the table's columns and types and no null key, as for [`Db::ingest`](crate::Db::ingest);
    /// a batch that does not fails with [`ErrorKind::InvalidInput`] and stages nothing.
    pub fn upsert(&mut self, batch: RecordBatch) -> Result<(), Error> {
        let rows = KeyedRows::checked(&self.snapshot.db.table, &batch, None)?;
        self.staged.stage(rows);
        Ok(())
    }

    /// Stages a delete of `key`, replacing earlier writes of it in this transaction. Deleting
    /// a key that does not exist is allowed (and still conflicts with a newer write of it).
    pub fn delete(&mut self, key: impl Into<Key>) -> Result<(), Error> {
        let table = &self.snapshot.db.table;
        let key_columns = key.into().to_columns(&table.key_fields())?;
        let row = staged::delete_row(table, key_columns)?;
        let rows = KeyedRows::checked(table, &row, Some(&[true]))?;
        self.staged.stage(rows);
        Ok(())
    }

    /// The row with `key` as this transaction sees it: its own last write of the key, else the
    /// snapshot's row.
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<RecordBatch>, Error> {
        let db = &self.snapshot.db;
        db.check_open()?;
        let (encoded, key_columns) = db.encode_key(key.into())?;
        match self.staged.get(&encoded) {
            Some(own) => Ok(own),
            None => crate::read::point::get(&self.snapshot, &encoded, &key_columns).await,
        }
    }

    /// A scan of the rows as this transaction sees them — the snapshot's, with its own writes
    /// merged in — in ascending key order, with the same filters, projection and limit as
    /// [`Db::scan`](crate::Db::scan). The scan sees the writes staged before it was created,
    /// none staged later.
    pub fn scan(&self) -> Scan {
        Scan::of_transaction(self.snapshot.clone(), self.staged.clone())
    }

    /// Commits every staged write atomically and returns the commit timestamp once it is
    /// durable and visible ([`CommitMode::Durable`]). Fails with [`ErrorKind::Conflict`],
    /// naming a key, if another commit wrote one of the keys this transaction writes after its
    /// snapshot — then nothing was applied. A transaction that wrote nothing commits nothing
    /// and returns its snapshot's timestamp.
    pub async fn commit(self) -> Result<Timestamp, Error> {
        self.commit_with(CommitMode::Durable).await
    }

    /// [`Transaction::commit`], returning as `mode` says.
    pub async fn commit_with(self, mode: CommitMode) -> Result<Timestamp, Error> {
        let Transaction {
            snapshot,
            staged,
            pin,
        } = self;
        let db = Arc::clone(&snapshot.db);
        // The snapshot's files are not needed any more; the pin stays until the commit is
        // ordered.
        drop(snapshot);
        db.check_open()?;
        let read_at = pin.timestamp();
        let Some(mut write) = staged.to_write(&db.table)? else {
            return Ok(read_at);
        };
        drop(staged);
        let key_columns = conflict::key_columns(&db.table, &write);
        let lost = |row, newer| conflict::conflict(&db, &key_columns, row, newer, read_at);
        loop {
            let (view, _) = db.visibility.snapshot();
            if let Some((row, newer)) =
                conflict::in_ssts(&view, read_at, &write, &key_columns).await?
            {
                probe::hit(&*db.runtime, Probe::TransactionConflictInSst);
                return Err(lost(row, newer));
            }
            let oldest_memtable = view.memtables.last().map(|memtable| memtable.id());
            let Some(oldest_memtable) = oldest_memtable else {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "a read view without memtables: it always holds the writable one",
                ));
            };
            let check = ConflictCheck {
                read_at,
                oldest_memtable,
            };
            let wait_for_sync = mode == CommitMode::Durable;
            match db.submit(write, wait_for_sync, Some(check)).await? {
                Ok(timestamp) => {
                    db.metrics.transactions_committed.add(1);
                    return Ok(timestamp);
                }
                Err(CommitRefused::Conflict { row, timestamp }) => {
                    return Err(lost(row, timestamp));
                }
                Err(CommitRefused::ViewOutdated(returned)) => {
                    // A flush dropped a memtable of the view: its commits are in an SST the
                    // check did not see. Check the newer view.
                    probe::hit(&*db.runtime, Probe::TransactionViewOutdated);
                    write = *returned;
                }
            }
        }
    }

    /// Discards every staged write. Dropping the transaction does the same.
    pub fn abort(self) {}
}
