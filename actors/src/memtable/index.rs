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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use arrow_array::RecordBatch;

use super::write::KeyedRows;
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

    /// Every version, newest first.
    fn all(&self) -> impl Iterator<Item = Version> + '_ {
        let versions: &[Version] = match self {
            Versions::One(version) => std::slice::from_ref(version),
            Versions::Many(versions) => versions,
        };
        versions.iter().copied()
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

/// A run of versions in key order, with the batches their rows live in.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The batches referenced by `rows`.
    pub batches: Vec<RecordBatch>,
    /// For each version, in key order: (index into `batches`, row), and whether it is a delete.
    pub rows: Vec<(usize, usize, bool)>,
    /// The keys of `rows`, in the same order.
    pub keys: Vec<KeyBytes>,
    /// The commit timestamps of `rows`, in the same order.
    pub timestamps: Vec<Timestamp>,
}

impl Chunk {
    /// Adds one version, taking its batch from `batches` into the chunk if it is not there yet.
    fn push(
        &mut self,
        local: &mut BTreeMap<u32, usize>,
        batches: &[RecordBatch],
        key: &KeyBytes,
        version: Version,
    ) {
        let position = *local.entry(version.batch).or_insert_with(|| {
            self.batches.push(batches[version.batch as usize].clone());
            self.batches.len() - 1
        });
        self.rows.push((position, version.row(), version.deleted()));
        self.keys.push(key.clone());
        self.timestamps.push(version.timestamp);
    }
}

#[derive(Debug, Default)]
struct Contents {
    index: BTreeMap<KeyBytes, Versions>,
    batches: Vec<RecordBatch>,
}

/// An in-memory table of recent commits.
#[derive(Debug)]
pub struct Memtable {
    id: u64,
    contents: RwLock<Contents>,
    /// Memory used by data and index, in bytes.
    bytes: AtomicUsize,
    /// The oldest and the newest commit inserted (0 while empty).
    first_timestamp: AtomicU64,
    last_timestamp: AtomicU64,
}

impl Memtable {
    /// An empty memtable, numbered `id` (memtables are numbered in the order they are made).
    pub fn new(id: u64) -> Self {
        Self {
            id,
            contents: RwLock::default(),
            bytes: AtomicUsize::new(0),
            first_timestamp: AtomicU64::new(0),
            last_timestamp: AtomicU64::new(0),
        }
    }

    /// The memtable's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Memory used by data and index, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// The oldest commit in the memtable ([`Timestamp::ZERO`] when empty).
    pub fn first_timestamp(&self) -> Timestamp {
        Timestamp::new(self.first_timestamp.load(Ordering::Acquire))
    }

    /// The newest commit in the memtable ([`Timestamp::ZERO`] when empty).
    pub fn last_timestamp(&self) -> Timestamp {
        Timestamp::new(self.last_timestamp.load(Ordering::Acquire))
    }

    /// Whether no commit was inserted.
    pub fn is_empty(&self) -> bool {
        self.last_timestamp() == Timestamp::ZERO
    }

    /// Adds `rows`, committed at `timestamp` (newer than everything inserted before).
    pub fn insert(&self, timestamp: Timestamp, rows: KeyedRows) {
        debug_assert_eq!(rows.keys.len(), rows.batch.num_rows(), "one key per row");
        debug_assert!(
            timestamp > self.last_timestamp(),
            "commits arrive in timestamp order"
        );
        let KeyedRows {
            batch,
            keys,
            deletes,
            memory_bytes,
        } = rows;
        let mut contents = self
            .contents
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let batch_number = u32::try_from(contents.batches.len())
            .expect("a memtable holds fewer than 2^32 batches: its memory budget is far smaller");
        contents.batches.push(batch);
        for (row, key) in keys.into_iter().enumerate() {
            let deleted = deletes.as_ref().is_some_and(|deletes| deletes.value(row));
            let version = Version::new(timestamp, batch_number, row, deleted);
            match contents.index.entry(key) {
                Entry::Occupied(mut versions) => versions.get_mut().add(version),
                Entry::Vacant(slot) => {
                    slot.insert(Versions::One(version));
                }
            }
        }
        drop(contents);
        self.bytes.fetch_add(memory_bytes, Ordering::AcqRel);
        let _ = self.first_timestamp.compare_exchange(
            0,
            timestamp.get(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.last_timestamp
            .store(timestamp.get(), Ordering::Release);
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
            if let Some(version) = versions.visible_at(read_at) {
                chunk.push(&mut local, &contents.batches, key, version);
            }
        }
        chunk
    }

    /// Every version of the keys after `after`, in key order and newest first within a key, for
    /// at least `max_rows` versions (a key's versions are never split between chunks).
    pub fn versions_chunk(&self, after: Option<&[u8]>, max_rows: usize) -> Chunk {
        let contents = self.read();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut chunk = Chunk::default();
        let mut local: BTreeMap<u32, usize> = BTreeMap::new();
        for (key, versions) in contents.index.range::<[u8], _>((lower, Bound::Unbounded)) {
            if chunk.rows.len() >= max_rows {
                break;
            }
            for version in versions.all() {
                chunk.push(&mut local, &contents.batches, key, version);
            }
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
