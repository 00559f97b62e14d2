//! [`Snapshot`]: a consistent, stable view of the database at one commit timestamp.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::{Memtable, ReadView};
use damselfly_actors::sst::{KeyRange, ScanOptions, SstReader};
use damselfly_actors::table::KeyBytes;

use crate::db::DbInner;
use crate::error::Error;
use crate::read::merge::{Merge, Producer};
use crate::read::range::ScanRange;
use crate::scan::Scan;
use crate::transaction::StagedWrites;
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
        let (encoded, key_columns) = self.db.encode_key(key.into())?;
        crate::read::point::get(self, &encoded, &key_columns).await
    }

    /// A scan of the rows as of the snapshot, in ascending key order.
    pub fn scan(&self) -> Scan {
        Scan::of_snapshot(self.clone())
    }

    /// A merge of every source that can hold versions visible to this snapshot within `range`
    /// — and of a transaction's `staged` writes, which beat them — gathering the table columns
    /// `columns` (ascending) with `schema`.
    ///
    /// Sources whose key ranges overlap are merged; groups of them that do not overlap are read
    /// one after the other, and a source alone in its group is read without its keys. A range
    /// of one key is a point lookup.
    pub(crate) async fn merge(
        &self,
        columns: Vec<usize>,
        schema: SchemaRef,
        range: ScanRange,
        staged: Option<&StagedWrites>,
    ) -> Result<Merge, Error> {
        let read_at = self.timestamp;
        if let Some((key, key_columns)) = &range.point {
            let found = match staged.and_then(|staged| staged.get(key)) {
                Some(own) => own,
                None => crate::read::point::get(self, key, key_columns).await?,
            }
            .map(|row| row.project(&columns))
            .transpose()?
            .map(|row| RecordBatch::try_new(Arc::clone(&schema), row.columns().to_vec()))
            .transpose()?;
            return Ok(Merge::new(
                vec![vec![Producer::Found(found)]],
                columns,
                schema,
            ));
        }
        let staged = staged.map(|staged| (staged.memtable(), staged.through()));
        let memtables = self
            .view
            .memtables
            .iter()
            .map(|memtable| (memtable, read_at))
            .chain(staged);
        let mut sources: Vec<(KeyBytes, KeyBytes, Source)> = Vec::new();
        for (memtable, visible_at) in memtables {
            if memtable.is_empty() || memtable.first_timestamp() > visible_at {
                continue;
            }
            if let Some((first, last)) = memtable.key_range()
                && range.overlaps(&first, &last)
            {
                let source = Source::Memtable(Arc::clone(memtable), visible_at);
                sources.push((first, last, source));
            }
        }
        for (descriptor, reader) in self.view.version.ssts() {
            if descriptor.min_timestamp <= read_at.get()
                && range.overlaps(&descriptor.min_key, &descriptor.max_key)
            {
                let (first, last) = (descriptor.min_key.clone(), descriptor.max_key.clone());
                sources.push((first, last, Source::Sst(Arc::clone(reader))));
            }
        }
        sources.sort_by(|left, right| left.0.cmp(&right.0));
        let mut groups: Vec<Vec<Producer>> = Vec::new();
        let mut sources = sources.into_iter().peekable();
        while let Some((_, mut last, source)) = sources.next() {
            let mut group = vec![source];
            while let Some((_, next_last, next)) = sources.next_if(|(first, _, _)| *first <= last) {
                last = last.max(next_last);
                group.push(next);
            }
            // A lone source needs no keys: nothing is merged with it.
            let options = if group.len() > 1 {
                ScanOptions::default()
            } else {
                ScanOptions::single_source()
            };
            let producers = group
                .into_iter()
                .map(|source| source.producer(read_at, &range.keys, &columns, options))
                .collect::<Result<_, _>>()?;
            groups.push(producers);
        }
        Ok(Merge::new(groups, columns, schema))
    }
}

/// A source of a merge, before it is opened.
enum Source {
    /// A memtable, and the newest versions of it to read.
    Memtable(Arc<Memtable>, Timestamp),
    Sst(Arc<SstReader>),
}

impl Source {
    fn producer(
        self,
        read_at: Timestamp,
        keys: &KeyRange,
        columns: &[usize],
        options: ScanOptions,
    ) -> Result<Producer, Error> {
        Ok(match self {
            Source::Memtable(memtable, visible_at) => Producer::Memtable {
                memtable,
                keys: keys.clone(),
                read_at: visible_at,
            },
            Source::Sst(reader) => Producer::Sst(Box::new(reader.scan(
                keys.clone(),
                read_at.get(),
                columns,
                options,
            )?)),
        })
    }
}
