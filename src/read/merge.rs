//! The merge of a read's sources: memtables and SSTs.
//!
//! Every source yields, in key order, at most one version per key: its newest at or below the
//! snapshot timestamp, deletes included. (A transaction's own writes are a source too: numbered
//! above the snapshot timestamp, they beat every version the snapshot sees.) The merge keeps,
//! for each key, the newest of those across sources, drops it if it is a delete, and gathers
//! the surviving rows — only the columns the read needs — into batches in key order. Filters
//! are applied by the caller, to these rows: after version resolution, so an older version can
//! never stand in for a newer one that fails the filter.
//!
//! Sources come in groups: sources whose key ranges overlap form a group and are merged, and
//! groups are read one after the other, so a source whose key range overlaps no other's (the
//! common case after flushes of increasing keys) is read alone, without its keys. Within a group,
//! when the rest of one source's current chunk sorts before every other source's next key, the
//! merge takes it whole without comparing rows.

use std::ops::Bound;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{BooleanBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use arrow_select::interleave::interleave;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::Memtable;
use damselfly_actors::sst::{KeyRange, SstChunk, SstScan};
use damselfly_actors::table::KeyBytes;

use crate::error::Error;

/// Versions a source hands over at a time.
pub(crate) const SOURCE_CHUNK_ROWS: usize = 8192;

/// Where a cursor's versions come from.
pub(crate) enum Producer {
    /// A memtable, read a chunk at a time.
    Memtable {
        /// The memtable.
        memtable: Arc<Memtable>,
        /// The keys still to read: the lower bound moves past each chunk.
        keys: KeyRange,
        /// The newest versions it yields: the snapshot's timestamp, or, for a transaction's
        /// own writes, the staging number of its last write the read sees.
        read_at: Timestamp,
    },
    /// An SST scan (boxed: it is much larger than a memtable cursor).
    Sst(Box<SstScan>),
    /// The answer of a point lookup: the row, if any, already resolved.
    Found(Option<RecordBatch>),
}

/// One chunk of a source: versions in key order, the needed columns of their rows. `keys` and
/// `timestamps` may be empty when the source is alone in its group (nothing to merge with).
struct SourceChunk {
    batch: RecordBatch,
    keys: Vec<KeyBytes>,
    timestamps: ScalarBuffer<u64>,
    deleted: BooleanBuffer,
}

impl SourceChunk {
    fn rows(&self) -> usize {
        self.batch.num_rows()
    }
}

struct Cursor {
    producer: Producer,
    chunk: Option<SourceChunk>,
    position: usize,
    exhausted: bool,
}

impl Cursor {
    fn new(producer: Producer) -> Self {
        Self {
            producer,
            chunk: None,
            position: 0,
            exhausted: false,
        }
    }

    fn current_key(&self) -> Option<&KeyBytes> {
        self.chunk.as_ref()?.keys.get(self.position)
    }

    fn remaining(&self) -> usize {
        self.chunk
            .as_ref()
            .map_or(0, |chunk| chunk.rows() - self.position)
    }
}

/// A running merge.
pub(crate) struct Merge {
    /// The group being merged.
    cursors: Vec<Cursor>,
    /// The groups after it, in key order.
    later: std::vec::IntoIter<Vec<Producer>>,
    /// The table columns the read needs, in table order, and their schema.
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl Merge {
    /// A merge of `groups` of producers, gathering `columns` (table positions, ascending) with
    /// `schema`. Each group's producers are merged (in any order); the groups
    /// are read one after the other, so every key of a group must sort before every key of the
    /// groups after it.
    pub(crate) fn new(groups: Vec<Vec<Producer>>, columns: Vec<usize>, schema: SchemaRef) -> Self {
        Self {
            cursors: Vec::new(),
            later: groups.into_iter(),
            columns,
            schema,
        }
    }

    /// The next batch of live rows (the needed columns, in key order), or `None` at the end.
    /// Batches may be small; the caller coalesces them.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        loop {
            self.refill().await?;
            if self.cursors.iter().all(|cursor| cursor.exhausted) {
                let Some(group) = self.later.next() else {
                    return Ok(None);
                };
                self.cursors = group.into_iter().map(Cursor::new).collect();
                continue;
            }
            let picks = self.pick();
            if !picks.is_empty() {
                return self.gather(&picks).map(Some);
            }
        }
    }

    /// Gives every cursor whose chunk is used up its next chunk (or marks it exhausted).
    async fn refill(&mut self) -> Result<(), Error> {
        for index in 0..self.cursors.len() {
            while !self.cursors[index].exhausted && self.cursors[index].remaining() == 0 {
                let chunk = self.next_chunk(index).await?;
                let cursor = &mut self.cursors[index];
                cursor.position = 0;
                match chunk {
                    Some(chunk) => cursor.chunk = Some(chunk),
                    None => {
                        cursor.chunk = None;
                        cursor.exhausted = true;
                    }
                }
            }
        }
        Ok(())
    }

    async fn next_chunk(&mut self, index: usize) -> Result<Option<SourceChunk>, Error> {
        let columns = &self.columns;
        match &mut self.cursors[index].producer {
            Producer::Memtable {
                memtable,
                keys,
                read_at,
            } => {
                let lower = keys.lower.as_ref().map(KeyBytes::as_bytes);
                let mut chunk = memtable.scan_chunk(lower, *read_at, SOURCE_CHUNK_ROWS);
                let within = chunk
                    .keys
                    .partition_point(|key| keys.below_upper(key.as_bytes()));
                chunk.truncate(within);
                let Some(last) = chunk.keys.last() else {
                    return Ok(None);
                };
                keys.lower = Bound::Excluded(last.clone());
                let gathered = chunk.gather(columns)?;
                let options = RecordBatchOptions::new().with_row_count(Some(chunk.rows.len()));
                Ok(Some(SourceChunk {
                    batch: RecordBatch::try_new_with_options(
                        Arc::clone(&self.schema),
                        gathered,
                        &options,
                    )?,
                    deleted: chunk.rows.iter().map(|&(_, _, deleted)| deleted).collect(),
                    timestamps: chunk
                        .timestamps
                        .iter()
                        .map(|timestamp| timestamp.get())
                        .collect(),
                    keys: chunk.keys,
                }))
            }
            Producer::Found(row) => Ok(row.take().map(|batch| SourceChunk {
                deleted: BooleanBuffer::new_unset(batch.num_rows()),
                keys: Vec::new(),
                timestamps: ScalarBuffer::from(vec![0; batch.num_rows()]),
                batch,
            })),
            Producer::Sst(scan) => Ok(scan.next_chunk().await?.map(|chunk: SstChunk| {
                let rows = chunk.batch.num_rows();
                SourceChunk {
                    keys: chunk.keys.unwrap_or_default(),
                    timestamps: chunk
                        .timestamps
                        .unwrap_or_else(|| ScalarBuffer::from(vec![0; rows])),
                    deleted: chunk.deleted,
                    batch: chunk.batch,
                }
            })),
        }
    }

    /// Chooses rows until some cursor's chunk runs out: (cursor, row) of each live row, in key
    /// order.
    fn pick(&mut self) -> Vec<(usize, usize)> {
        let mut picks = Vec::new();
        let active: Vec<usize> = (0..self.cursors.len())
            .filter(|&index| !self.cursors[index].exhausted)
            .collect();
        if let [only] = active[..] {
            // Nothing to merge with: the chunk is the answer, keys or not.
            self.take_rest(only, &mut picks);
            return picks;
        }
        // The cursors with a current key, refreshed for every key (one allocation per pick).
        let mut live: Vec<usize> = Vec::with_capacity(self.cursors.len());
        loop {
            live.clear();
            live.extend(
                (0..self.cursors.len())
                    .filter(|&index| self.cursors[index].current_key().is_some()),
            );
            if live.is_empty() || live.len() < self.active_count() {
                // A cursor needs a new chunk before anything can be decided.
                return picks;
            }
            if let Some(bulk) = self.bulk_candidate(&live) {
                self.take_rest(bulk, &mut picks);
                return picks;
            }
            self.take_smallest_key(&live, &mut picks);
            if self
                .cursors
                .iter()
                .any(|cursor| !cursor.exhausted && cursor.remaining() == 0)
            {
                return picks;
            }
        }
    }

    fn active_count(&self) -> usize {
        self.cursors
            .iter()
            .filter(|cursor| !cursor.exhausted)
            .count()
    }

    /// A cursor whose whole remaining chunk sorts before every other cursor's next key. Only
    /// a cursor with the smallest next key can be one, so only that one is checked.
    fn bulk_candidate(&self, live: &[usize]) -> Option<usize> {
        let index = live.iter().copied().min_by(|&left, &right| {
            let key = |index: usize| self.cursors[index].current_key();
            key(left).cmp(&key(right))
        })?;
        let cursor = &self.cursors[index];
        let last = cursor.chunk.as_ref().and_then(|chunk| chunk.keys.last());
        live.iter()
            .all(|&other| {
                other == index
                    || matches!((last, self.cursors[other].current_key()), (Some(last), Some(next)) if last < next)
            })
            .then_some(index)
    }

    fn take_rest(&mut self, index: usize, picks: &mut Vec<(usize, usize)>) {
        let cursor = &mut self.cursors[index];
        if let Some(chunk) = &cursor.chunk {
            picks.extend(
                (cursor.position..chunk.rows())
                    .filter(|&row| !chunk.deleted.value(row))
                    .map(|row| (index, row)),
            );
            cursor.position = chunk.rows();
        }
    }

    /// Resolves the smallest current key: the newest version among the cursors holding it.
    fn take_smallest_key(&mut self, live: &[usize], picks: &mut Vec<(usize, usize)>) {
        let Some(smallest) = live
            .iter()
            .filter_map(|&index| self.cursors[index].current_key())
            .min()
            .cloned()
        else {
            return;
        };
        let mut newest: Option<(u64, usize, usize)> = None;
        for &index in live {
            let cursor = &mut self.cursors[index];
            let Some(chunk) = &cursor.chunk else {
                continue;
            };
            if chunk.keys[cursor.position] != smallest {
                continue;
            }
            let timestamp = chunk.timestamps[cursor.position];
            if newest.is_none_or(|(best, _, _)| timestamp > best) {
                newest = Some((timestamp, index, cursor.position));
            }
            cursor.position += 1;
        }
        if let Some((_, index, row)) = newest {
            let deleted = self.cursors[index]
                .chunk
                .as_ref()
                .is_some_and(|chunk| chunk.deleted.value(row));
            if !deleted {
                picks.push((index, row));
            }
        }
    }

    /// The picked rows as one batch of the needed columns.
    fn gather(&self, picks: &[(usize, usize)]) -> Result<RecordBatch, Error> {
        // One source picked in one contiguous run: filter its chunk instead of copying rows.
        if let Some(batch) = self.single_run(picks)? {
            return Ok(batch);
        }
        // Only the cursors some pick refers to take part; picks are renumbered to them.
        let mut used: Vec<usize> = picks.iter().map(|&(index, _)| index).collect();
        used.sort_unstable();
        used.dedup();
        let renumbered: Vec<(usize, usize)> = picks
            .iter()
            .map(|&(index, row)| (used.binary_search(&index).unwrap_or_default(), row))
            .collect();
        let batches: Vec<&RecordBatch> = used
            .iter()
            .filter_map(|&index| self.cursors[index].chunk.as_ref().map(|chunk| &chunk.batch))
            .collect();
        let columns = (0..self.columns.len())
            .map(|column| {
                let arrays: Vec<&dyn Array> = batches
                    .iter()
                    .map(|batch| batch.column(column).as_ref())
                    .collect();
                interleave(&arrays, &renumbered)
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(picks.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    fn single_run(&self, picks: &[(usize, usize)]) -> Result<Option<RecordBatch>, Error> {
        let Some(&(index, first)) = picks.first() else {
            return Ok(None);
        };
        if picks.iter().any(|&(source, _)| source != index) {
            return Ok(None);
        }
        let Some(chunk) = &self.cursors[index].chunk else {
            return Ok(None);
        };
        let last = picks.last().map_or(first, |&(_, row)| row);
        let slice = chunk.batch.slice(first, last + 1 - first);
        if picks.len() == last + 1 - first {
            return Ok(Some(slice));
        }
        let mut keep = vec![false; slice.num_rows()];
        for &(_, row) in picks {
            keep[row - first] = true;
        }
        Ok(Some(filter_record_batch(
            &slice,
            &BooleanArray::from(keep),
        )?))
    }
}
