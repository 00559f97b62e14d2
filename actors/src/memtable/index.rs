//! The memtable's data: committed batches, kept columnar, and an ordered index of row versions.
//!
//! Rows stay in the Arrow batches they were committed in; the index maps each key to its
//! versions, newest first, each pointing at a row of a batch. Readers gather the rows they need
//! with arrow's `interleave`, so nothing is materialised row by row.
//!
//! Promises:
//! - versions of a key are ordered by commit timestamp, newest first; a later row of the same
//!   commit replaces an earlier one (the last write to a key in a batch wins);
//! - the memtable only grows while it is writable: a reader at timestamp `t` that ignores
//!   versions newer than `t` sees the same rows however many commits arrive meanwhile;
//! - the index lock is never held across an await, and readers hold it for one chunk at a time.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use arrow_array::RecordBatch;
use arrow_buffer::BooleanBuffer;

use crate::table::KeyBytes;
use crate::timestamp::Timestamp;

/// Estimated bytes one index entry costs beyond its key (B-tree slot, version, bookkeeping).
pub const INDEX_ENTRY_BYTES: usize = 64;

/// One version of a key: which commit wrote it, where its row is, and whether it deletes.
/// Packed into 16 bytes: the top bit of `row` is the delete flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    timestamp: Timestamp,
    batch: u32,
    row_and_delete: u32,
}

const DELETE_BIT: u32 = 1 << 31;

impl Version {
    fn new(timestamp: Timestamp, batch: u32, row: usize, deleted: bool) -> Self {
        let row = u32::try_from(row)
            .ok()
            .filter(|row| row & DELETE_BIT == 0)
            .expect("commits hold fewer than 2^31 rows: the WAL record format checks u32 and the memtable budget is far smaller");
        Self {
            timestamp,
            batch,
            row_and_delete: row | if deleted { DELETE_BIT } else { 0 },
        }
    }

    fn row(self) -> usize {
        (self.row_and_delete & !DELETE_BIT) as usize
    }

    fn deleted(self) -> bool {
        self.row_and_delete & DELETE_BIT != 0
    }
}

/// The versions of one key, newest first. Most keys have one, so it is stored inline.
#[derive(Debug, Clone)]
enum Versions {
    One(Version),
    Many(Vec<Version>),
}

impl Versions {
    fn add(&mut self, version: Version) {
        match self {
            Versions::One(existing) if existing.timestamp == version.timestamp => {
                *existing = version
            }
            Versions::One(existing) => *self = Versions::Many(vec![version, *existing]),
            Versions::Many(versions) => match versions.first_mut() {
                Some(newest) if newest.timestamp == version.timestamp => *newest = version,
                _ => versions.insert(0, version),
            },
        }
    }

    /// The newest version at or before `read_at`.
    fn visible_at(&self, read_at: Timestamp) -> Option<Version> {
        match self {
            Versions::One(version) => (version.timestamp <= read_at).then_some(*version),
            Versions::Many(versions) => versions.iter().find(|v| v.timestamp <= read_at).copied(),
        }
    }
}

/// The newest visible version of a key, as a reader sees it.
#[derive(Debug, Clone)]
pub struct VisibleRow {
    /// The commit that wrote it.
    pub timestamp: Timestamp,
    /// Whether it deletes the key.
    pub deleted: bool,
    /// The batch holding the row.
    pub batch: RecordBatch,
    /// The row's index in `batch`.
    pub row: usize,
}

/// A run of visible versions in key order, with the batches their rows live in.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The batches referenced by `rows`.
    pub batches: Vec<RecordBatch>,
    /// For each version, in key order: (index into `batches`, row), and whether it is a delete.
    pub rows: Vec<(usize, usize, bool)>,
    /// The keys of `rows`, in the same order.
    pub keys: Vec<KeyBytes>,
}

#[derive(Debug, Default)]
struct Contents {
    index: BTreeMap<KeyBytes, Versions>,
    batches: Vec<RecordBatch>,
}

/// An in-memory table of recent commits.
#[derive(Debug, Default)]
pub struct Memtable {
    contents: RwLock<Contents>,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the rows of `batch`, committed at `timestamp`: row `i` has key `keys[i]` and deletes
    /// it if `deletes` says so.
    pub fn insert(
        &self,
        timestamp: Timestamp,
        batch: RecordBatch,
        keys: Vec<KeyBytes>,
        deletes: Option<&BooleanBuffer>,
    ) {
        debug_assert_eq!(keys.len(), batch.num_rows(), "one key per row");
        let mut contents = self
            .contents
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let batch_number = u32::try_from(contents.batches.len())
            .expect("a memtable holds fewer than 2^32 batches: its memory budget is far smaller");
        contents.batches.push(batch);
        for (row, key) in keys.into_iter().enumerate() {
            let deleted = deletes.is_some_and(|deletes| deletes.value(row));
            let version = Version::new(timestamp, batch_number, row, deleted);
            match contents.index.entry(key) {
                Entry::Occupied(mut versions) => versions.get_mut().add(version),
                Entry::Vacant(slot) => {
                    slot.insert(Versions::One(version));
                }
            }
        }
    }

    /// The newest version of `key` at or before `read_at`.
    pub fn get(&self, key: &[u8], read_at: Timestamp) -> Option<VisibleRow> {
        let contents = self.read();
        let version = contents.index.get(key)?.visible_at(read_at)?;
        Some(VisibleRow {
            timestamp: version.timestamp,
            deleted: version.deleted(),
            batch: contents.batches[version.batch as usize].clone(),
            row: version.row(),
        })
    }

    /// Up to `max_rows` newest versions at or before `read_at`, one per key, in key order,
    /// starting after `after` (or at the first key), deletes included.
    pub fn scan_chunk(&self, after: Option<&[u8]>, read_at: Timestamp, max_rows: usize) -> Chunk {
        let contents = self.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut chunk = Chunk::default();
        // Maps the memtable's batch numbers to positions in `chunk.batches`.
        let mut local: BTreeMap<u32, usize> = BTreeMap::new();
        for (key, versions) in contents.index.range::<[u8], _>((lower, Bound::Unbounded)) {
            if chunk.rows.len() == max_rows {
                break;
            }
            let Some(version) = versions.visible_at(read_at) else {
                continue;
            };
            let position = *local.entry(version.batch).or_insert_with(|| {
                chunk
                    .batches
                    .push(contents.batches[version.batch as usize].clone());
                chunk.batches.len() - 1
            });
            chunk
                .rows
                .push((position, version.row(), version.deleted()));
            chunk.keys.push(key.clone());
        }
        chunk
    }

    /// The number of distinct keys.
    pub fn key_count(&self) -> usize {
        self.read().index.len()
    }

    fn read(&self) -> RwLockReadGuard<'_, Contents> {
        // Writers never leave the contents half-changed across a panic point that matters: an
        // insert that panicked left a prefix of its rows, all of which are still invisible.
        self.contents.read().unwrap_or_else(PoisonError::into_inner)
    }
}
