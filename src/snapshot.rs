//! [`Snapshot`]: a consistent, stable view of the database at one commit timestamp.

use std::sync::Arc;

use arrow_array::RecordBatch;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::ReadView;
use damselfly_actors::table::KeyBytes;

use crate::db::DbInner;
use crate::error::Error;
use crate::scan::Scan;
use crate::value::Key;

/// A read-only view of the database as of [`Snapshot::timestamp`]. It returns the same rows for
/// its whole life, whatever is committed meanwhile. Clone it freely.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) db: Arc<DbInner>,
    pub(crate) view: Arc<ReadView>,
    timestamp: Timestamp,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Snapshot")
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn new(db: Arc<DbInner>, view: Arc<ReadView>, timestamp: Timestamp) -> Self {
        Self {
            db,
            view,
            timestamp,
        }
    }

    /// The commit timestamp the snapshot reads at: it sees exactly the commits `<=` this.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The row with `key` as of the snapshot, as a one-row batch, or `None`.
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<RecordBatch>, Error> {
        self.db.check_open()?;
        let key = self.encode_key(&key.into())?;
        let found = self.view.memtable.get(key.as_bytes(), self.timestamp);
        Ok(found
            .filter(|row| !row.deleted)
            .map(|row| row.batch.slice(row.row, 1)))
    }

    /// A scan of the rows as of the snapshot, in ascending key order.
    pub fn scan(&self) -> Scan {
        Scan::of_snapshot(self.clone())
    }

    fn encode_key(&self, key: &Key) -> Result<KeyBytes, Error> {
        let columns = key.to_columns(&self.db.table.key_fields())?;
        Ok(self.db.table.encode_key(&columns)?)
    }
}
