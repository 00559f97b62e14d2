//! [`Snapshot`]: a consistent, stable view of the database at one commit timestamp.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::ReadView;
use damselfly_actors::sst::{KeyRange, ScanOptions};

use crate::db::DbInner;
use crate::error::Error;
use crate::read::merge::{Merge, Producer};
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
        let key = key.into();
        let key_columns = key.to_columns(&self.db.table.key_fields())?;
        let encoded = self.db.table.encode_key(&key_columns)?;
        crate::read::point::get(self, &encoded, &key_columns).await
    }

    /// A scan of the rows as of the snapshot, in ascending key order.
    pub fn scan(&self) -> Scan {
        Scan::of_snapshot(self.clone())
    }

    /// A merge of every source that can hold versions visible to this snapshot, gathering the
    /// table columns `columns` (ascending) with `schema`.
    pub(crate) fn merge(&self, columns: Vec<usize>, schema: SchemaRef) -> Result<Merge, Error> {
        let read_at = self.timestamp;
        let mut producers: Vec<Producer> = self
            .view
            .memtables
            .iter()
            .filter(|memtable| !memtable.is_empty() && memtable.first_timestamp() <= read_at)
            .map(|memtable| Producer::Memtable {
                memtable: Arc::clone(memtable),
                after: None,
            })
            .collect();
        let ssts: Vec<_> = self
            .view
            .version
            .ssts()
            .filter(|(descriptor, _)| descriptor.min_timestamp <= read_at.get())
            .collect();
        // A lone source needs no keys: nothing is merged with it.
        let need_keys = producers.len() + ssts.len() > 1;
        let options = if need_keys {
            ScanOptions::default()
        } else {
            ScanOptions::single_source()
        };
        for (_, reader) in ssts {
            producers.push(Producer::Sst(Box::new(reader.scan(
                KeyRange::all(),
                read_at.get(),
                &columns,
                options,
            )?)));
        }
        Ok(Merge::new(producers, read_at, columns, schema))
    }
}
