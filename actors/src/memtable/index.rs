//! The memtable's data: committed batches, kept columnar, and an ordered index of row versions.
//!
//! Rows stay in the Arrow batches they were committed in; the index points at them. Readers
//! gather the rows they need with arrow's `interleave`, so nothing is materialised row by row.
//!
//! The index is a few sorted runs of versions, like a tiny LSM tree, beside a B-tree for small
//! commits. A commit's versions are sorted by key and appended to the newest run when they all
//! sort after it, as appends of increasing keys do (no comparison beyond the first key); a
//! commit of fewer than `SMALL_COMMIT_VERSIONS` versions that cannot be appended goes into the
//! B-tree, whose inserts cost no more than its depth; any other commit becomes a new run, and
//! neighbouring runs of similar length are merged, so there are at most about log2(versions)
//! runs. Runs are ordered by time: every version in a run is older than every version of the
//! same key in the runs after it. The B-tree's versions are ordered by key, newest first, and
//! interleave in time with the runs': a reader takes a key's versions from both and puts them
//! newest first.
//!
//! Promises:
//! - versions of a key are read newest first; a later row of the same commit replaces an
//!   earlier one (the last write to a key in a batch wins);
//! - the memtable only grows while it is writable: a reader at timestamp `t` that ignores
//!   versions newer than `t` sees the same rows however many commits arrive meanwhile;
//! - the index lock is never held across an await, and readers hold it for one chunk at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, btree_map};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use arrow_select::concat::concat;
use arrow_select::interleave::interleave;

use super::write::KeyedRows;
use crate::table::KeyBytes;
use crate::timestamp::Timestamp;

/// Estimated bytes one index entry costs beyond its key's heap bytes: the 40-byte entry, the
/// spare capacity of a growing run and the copy a merge makes, or a B-tree slot.
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

/// One version of one key, as the index holds it.
#[derive(Debug)]
struct Entry {
    key: KeyBytes,
    version: Version,
}

/// Entries sorted by key, newest first within a key.
type Run = Vec<Entry>;

/// Versions of small commits, by key and newest first within a key.
type Tree = BTreeMap<(KeyBytes, Reverse<Timestamp>), Version>;

/// Commits of fewer versions than this that cannot be appended to the newest run go into the
/// B-tree: as a run each, 64 committers of 16 rows, or 4 writers of 1,024-row batches in
/// interleaved key ranges, would make the runs merge over and over, moving every version about
/// log2(versions) times, under the write lock (measured: 4 such writers ingest 25-30% faster
/// with the B-tree than with runs). Larger commits are sorted once and merged as runs.
pub(super) const SMALL_COMMIT_VERSIONS: usize = 2048;

/// The B-tree's entries from the lower bound `from` on.
fn tree_from<'a>(
    tree: &'a Tree,
    from: Bound<&[u8]>,
) -> btree_map::Range<'a, (KeyBytes, Reverse<Timestamp>), Version> {
    let lower = match from {
        Bound::Unbounded => Bound::Unbounded,
        // The newest version sorts first within a key, the oldest last.
        Bound::Included(key) => {
            Bound::Included((KeyBytes::from_slice(key), Reverse(Timestamp::new(u64::MAX))))
        }
        Bound::Excluded(key) => {
            Bound::Excluded((KeyBytes::from_slice(key), Reverse(Timestamp::ZERO)))
        }
    };
    tree.range((lower, Bound::Unbounded))
}

/// The position of the first entry of `run` within the lower bound `from`.
fn start_at(run: &Run, from: Bound<&[u8]>) -> usize {
    match from {
        Bound::Unbounded => 0,
        Bound::Included(from) => run.partition_point(|entry| entry.key.as_bytes() < from),
        Bound::Excluded(from) => run.partition_point(|entry| entry.key.as_bytes() <= from),
    }
}

/// Two runs as one, `newer`'s versions of a key before `older`'s.
fn merge_runs(older: Run, newer: Run) -> Run {
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        let next = match (older.peek(), newer.peek()) {
            (Some(old), Some(new)) if new.key <= old.key => newer.next(),
            (Some(_), _) => older.next(),
            (None, _) => newer.next(),
        };
        match next {
            Some(entry) => merged.push(entry),
            None => return merged,
        }
    }
}

/// Walks the keys of the runs and the B-tree in key order, each with its versions newest first.
struct KeyWalk<'a> {
    runs: &'a [Run],
    positions: Vec<usize>,
    tree: Peekable<btree_map::Range<'a, (KeyBytes, Reverse<Timestamp>), Version>>,
}

impl<'a> KeyWalk<'a> {
    fn new(contents: &'a Contents, from: Bound<&[u8]>) -> Self {
        Self {
            runs: &contents.runs,
            positions: contents
                .runs
                .iter()
                .map(|run| start_at(run, from))
                .collect(),
            tree: tree_from(&contents.tree, from).peekable(),
        }
    }

    /// The next key, with its versions, newest first, in `versions` (cleared first).
    fn next_key(&mut self, versions: &mut Vec<Version>) -> Option<&'a KeyBytes> {
        versions.clear();
        let runs = self.runs;
        let in_runs = runs
            .iter()
            .zip(&self.positions)
            .filter_map(|(run, &position)| run.get(position).map(|entry| &entry.key))
            .min();
        let in_tree = self.tree.peek().map(|((key, _), _)| key);
        let key = match (in_runs, in_tree) {
            (Some(run_key), Some(tree_key)) => run_key.min(tree_key),
            (run_key, tree_key) => run_key.or(tree_key)?,
        };
        // Newest run first: its versions are newer than every older run's.
        for (run, position) in runs.iter().zip(self.positions.iter_mut()).rev() {
            while let Some(entry) = run.get(*position).filter(|entry| entry.key == *key) {
                versions.push(entry.version);
                *position += 1;
            }
        }
        let from_runs = versions.len();
        while let Some((_, &version)) = self.tree.next_if(|((tree_key, _), _)| tree_key == key) {
            versions.push(version);
        }
        if from_runs > 0 && versions.len() > from_runs {
            versions.sort_unstable_by_key(|version| Reverse(version.timestamp));
        }
        Some(key)
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
    /// Keeps the first `rows` versions.
    pub fn truncate(&mut self, rows: usize) {
        self.rows.truncate(rows);
        self.keys.truncate(rows);
        self.timestamps.truncate(rows);
    }

    /// The table columns `columns` of the chunk's rows, in order. Rows that lie next to each
    /// other in one committed batch (as appends of increasing keys leave them) are copied as
    /// slices; scattered rows are gathered one by one. An empty chunk is an error: it has no
    /// batch to take the columns' types from.
    pub fn gather(&self, columns: &[usize]) -> Result<Vec<ArrayRef>, ArrowError> {
        if self.rows.is_empty() {
            return Err(ArrowError::InvalidArgumentError(
                "an empty chunk has no columns to gather".to_owned(),
            ));
        }
        // Stretches of consecutive rows of one batch: (batch, first row, rows).
        let mut stretches: Vec<(usize, usize, usize)> = Vec::new();
        for &(batch, row, _) in &self.rows {
            match stretches.last_mut() {
                Some((last_batch, first, rows))
                    if *last_batch == batch && *first + *rows == row =>
                {
                    *rows += 1
                }
                _ => stretches.push((batch, row, 1)),
            }
        }
        let by_slices = stretches.len() * SLICE_WORTHWHILE_ROWS <= self.rows.len();
        let indices: Vec<(usize, usize)> = if by_slices {
            Vec::new()
        } else {
            self.rows
                .iter()
                .map(|&(batch, row, _)| (batch, row))
                .collect()
        };
        columns
            .iter()
            .map(|&column| {
                if by_slices {
                    let slices: Vec<ArrayRef> = stretches
                        .iter()
                        .map(|&(batch, first, rows)| {
                            self.batches[batch].column(column).slice(first, rows)
                        })
                        .collect();
                    let slices: Vec<&dyn Array> = slices.iter().map(AsRef::as_ref).collect();
                    concat(&slices)
                } else {
                    let arrays: Vec<&dyn Array> = self
                        .batches
                        .iter()
                        .map(|batch| batch.column(column).as_ref())
                        .collect();
                    interleave(&arrays, &indices)
                }
            })
            .collect()
    }
}

/// Rows per stretch, on average, from which copying stretches as slices beats gathering rows.
const SLICE_WORTHWHILE_ROWS: usize = 16;

/// A chunk of at least `max_rows` rows (or all there are) from the keys of `contents` from
/// `from` on, walking the runs together: `take` adds what it wants of each key's versions,
/// newest first.
fn walk_chunk(
    contents: &Contents,
    from: Bound<&[u8]>,
    max_rows: usize,
    mut take: impl FnMut(&mut ChunkBuilder<'_>, &KeyBytes, &[Version]),
) -> Chunk {
    let mut walk = KeyWalk::new(contents, from);
    let mut chunk = ChunkBuilder::new(&contents.batches);
    let mut versions = Vec::new();
    while chunk.rows() < max_rows {
        let Some(key) = walk.next_key(&mut versions) else {
            break;
        };
        take(&mut chunk, key, &versions);
    }
    chunk.chunk
}

/// Builds a [`Chunk`], numbering the memtable's batches it refers to in the chunk.
struct ChunkBuilder<'a> {
    chunk: Chunk,
    batches: &'a [RecordBatch],
    /// The memtable's batch numbers → positions in `chunk.batches`.
    local: BTreeMap<u32, usize>,
    /// The last batch looked up: consecutive keys mostly come from one batch.
    last: Option<(u32, usize)>,
}

impl<'a> ChunkBuilder<'a> {
    fn new(batches: &'a [RecordBatch]) -> Self {
        Self::with_capacity(batches, 0)
    }

    fn with_capacity(batches: &'a [RecordBatch], rows: usize) -> Self {
        Self {
            chunk: Chunk {
                batches: Vec::new(),
                rows: Vec::with_capacity(rows),
                keys: Vec::with_capacity(rows),
                timestamps: Vec::with_capacity(rows),
            },
            batches,
            local: BTreeMap::new(),
            last: None,
        }
    }

    fn rows(&self) -> usize {
        self.chunk.rows.len()
    }

    /// Adds one version, taking its batch into the chunk if it is not there yet.
    fn push(&mut self, key: &KeyBytes, version: Version) {
        let position = match self.last {
            Some((batch, position)) if batch == version.batch => position,
            _ => {
                let chunk = &mut self.chunk;
                let batches = self.batches;
                let position = *self.local.entry(version.batch).or_insert_with(|| {
                    chunk.batches.push(batches[version.batch as usize].clone());
                    chunk.batches.len() - 1
                });
                self.last = Some((version.batch, position));
                position
            }
        };
        self.chunk
            .rows
            .push((position, version.row(), version.deleted()));
        self.chunk.keys.push(key.clone());
        self.chunk.timestamps.push(version.timestamp);
    }
}

#[derive(Debug, Default)]
struct Contents {
    /// Sorted runs, oldest first (see the module documentation).
    runs: Vec<Run>,
    /// Versions of small commits that could not be appended to the newest run.
    tree: Tree,
    batches: Vec<RecordBatch>,
    /// Entries in all runs and the tree.
    versions: usize,
}

impl Contents {
    /// Whether versions whose first key is `first` can extend the newest run.
    fn extends_newest_run(&self, first: &KeyBytes) -> bool {
        self.runs
            .last()
            .is_some_and(|run| run.last().is_none_or(|last| last.key < *first))
    }

    /// Adds one commit's entries, sorted by key with one entry per key: to the newest run when
    /// they all sort after it, as a new run otherwise.
    fn add(&mut self, entries: impl ExactSizeIterator<Item = Entry>) {
        let count = entries.len();
        let mut entries = entries.peekable();
        let Some(first) = entries.peek() else {
            return;
        };
        let extends = self.extends_newest_run(&first.key);
        self.versions += count;
        match self.runs.last_mut() {
            Some(newest) if extends => newest.extend(entries),
            _ => self.runs.push(entries.collect()),
        }
        // Merge the newest runs while the older is at most twice as long: lengths at least
        // double towards the oldest run, so there are at most log2(versions) + 1 runs.
        while let [.., older, newer] = &self.runs[..]
            && older.len() <= 2 * newer.len()
        {
            let newer = self.runs.pop().unwrap_or_default();
            let older = self.runs.pop().unwrap_or_default();
            self.runs.push(merge_runs(older, newer));
        }
    }
}

/// The index memory of dropped memtables, kept for their successors: a run that grows to
/// millions of entries costs the operating system a fresh page for every 100 entries otherwise,
/// memtable after memtable. Up to `SPARE_RUNS` runs are kept, the largest ones.
#[derive(Debug, Default)]
struct SpareRun(Mutex<Vec<Run>>);

/// Runs kept for successors: a memtable is dropped only after its flush, by which time one or
/// two more may have been sealed and taken a run each.
const SPARE_RUNS: usize = 2;

impl SpareRun {
    fn take(&self) -> Run {
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let largest = (0..spare.len()).max_by_key(|&index| spare[index].capacity());
        largest
            .map(|index| spare.swap_remove(index))
            .unwrap_or_default()
    }

    fn give(&self, mut run: Run) {
        run.clear();
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spare.push(run);
        if spare.len() > SPARE_RUNS {
            let smallest = (0..spare.len()).min_by_key(|&index| spare[index].capacity());
            if let Some(index) = smallest {
                spare.swap_remove(index);
            }
        }
    }
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
    /// Shared with the memtables before and after this one.
    spare: Arc<SpareRun>,
}

impl Memtable {
    /// An empty memtable, numbered `id` (memtables are numbered in the order they are made).
    pub fn new(id: u64) -> Self {
        Self::numbered(id, Arc::default())
    }

    fn numbered(id: u64, spare: Arc<SpareRun>) -> Self {
        Self {
            id,
            contents: RwLock::default(),
            bytes: AtomicUsize::new(0),
            first_timestamp: AtomicU64::new(0),
            last_timestamp: AtomicU64::new(0),
            spare,
        }
    }

    /// The next memtable: empty, numbered after this one, reusing the index memory of
    /// memtables dropped before it.
    pub fn successor(&self) -> Self {
        Self::numbered(self.id + 1, Arc::clone(&self.spare))
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
        let entry = |(row, key): (usize, KeyBytes)| Entry {
            key,
            version: Version::new(
                timestamp,
                batch_number,
                row,
                deletes.as_ref().is_some_and(|deletes| deletes.value(row)),
            ),
        };
        let ascending = keys.is_sorted_by(|earlier, later| earlier < later);
        if contents.runs.is_empty() {
            contents.runs.push(self.spare.take());
        }
        if ascending
            && keys
                .first()
                .is_some_and(|first| contents.extends_newest_run(first))
        {
            // Appends of increasing keys: straight onto the newest run, nothing in between.
            contents.add(keys.into_iter().enumerate().map(entry));
        } else if keys.len() < SMALL_COMMIT_VERSIONS {
            for (row, key) in keys.into_iter().enumerate() {
                // A later row of the commit replaces an earlier one with the same key.
                let version = entry((row, key));
                let slot = (version.key, Reverse(timestamp));
                if contents.tree.insert(slot, version.version).is_none() {
                    contents.versions += 1;
                }
            }
        } else {
            let mut entries: Run = keys.into_iter().enumerate().map(entry).collect();
            if !ascending {
                // A stable sort keeps a key's rows in batch order; the last one wins.
                entries.sort_by(|earlier, later| earlier.key.cmp(&later.key));
                entries.dedup_by(|later, earlier| {
                    let same = later.key == earlier.key;
                    if same {
                        std::mem::swap(later, earlier);
                    }
                    same
                });
            }
            contents.add(entries.into_iter());
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
        // Newest run first: the first visible version found is the newest of the runs'.
        let in_runs = contents.runs.iter().rev().find_map(|run| {
            let start = run.partition_point(|entry| entry.key.as_bytes() < key);
            run[start..]
                .iter()
                .take_while(|entry| entry.key.as_bytes() == key)
                .map(|entry| entry.version)
                .find(|version| version.timestamp <= read_at)
        });
        let in_tree = (!contents.tree.is_empty())
            .then(|| {
                let newest_visible = (KeyBytes::from_slice(key), Reverse(read_at));
                contents.tree.range(newest_visible..).next()
            })
            .flatten()
            .filter(|((tree_key, _), _)| tree_key.as_bytes() == key)
            .map(|(_, &version)| version);
        let version = in_runs
            .into_iter()
            .chain(in_tree)
            .max_by_key(|version| version.timestamp)?;
        Some(VisibleRow {
            timestamp: version.timestamp,
            deleted: version.deleted(),
            batch: contents.batches[version.batch as usize].clone(),
            row: version.row(),
        })
    }

    /// Up to `max_rows` newest versions at or before `read_at`, one per key, in key order,
    /// starting at the lower bound `from`, deletes included.
    pub fn scan_chunk(&self, from: Bound<&[u8]>, read_at: Timestamp, max_rows: usize) -> Chunk {
        walk_chunk(&self.read(), from, max_rows, |chunk, key, versions| {
            if let Some(&version) = versions.iter().find(|version| version.timestamp <= read_at) {
                chunk.push(key, version);
            }
        })
    }

    /// Every version of the keys from the lower bound `from` on, in key order and newest first
    /// within a key, for at least `max_rows` versions (a key's versions are never split between
    /// chunks).
    pub fn versions_chunk(&self, from: Bound<&[u8]>, max_rows: usize) -> Chunk {
        let contents = self.read();
        if let [run] = &contents.runs[..]
            && contents.tree.is_empty()
        {
            // One run holds every version in order already: take a stretch of it.
            let start = start_at(run, from);
            let mut end = start.saturating_add(max_rows).min(run.len());
            while end > start && end < run.len() && run[end].key == run[end - 1].key {
                end += 1;
            }
            let mut chunk = ChunkBuilder::with_capacity(&contents.batches, end - start);
            for entry in &run[start..end] {
                chunk.push(&entry.key, entry.version);
            }
            return chunk.chunk;
        }
        walk_chunk(&contents, from, max_rows, |chunk, key, versions| {
            for &version in versions {
                chunk.push(key, version);
            }
        })
    }

    /// The smallest and the largest key inserted so far, or `None` while empty.
    pub fn key_range(&self) -> Option<(KeyBytes, KeyBytes)> {
        let contents = self.read();
        let tree_keys = || contents.tree.keys().map(|(key, _)| key);
        let first = contents
            .runs
            .iter()
            .filter_map(|run| run.first())
            .map(|entry| &entry.key)
            .chain(tree_keys().next())
            .min()?;
        let last = contents
            .runs
            .iter()
            .filter_map(|run| run.last())
            .map(|entry| &entry.key)
            .chain(tree_keys().next_back())
            .max()?;
        Some((first.clone(), last.clone()))
    }

    /// The number of versions (rows) held: every key counts once per commit that wrote it.
    pub fn version_count(&self) -> usize {
        self.read().versions
    }

    fn read(&self) -> RwLockReadGuard<'_, Contents> {
        // Writers never leave the contents half-changed across a panic point that matters: an
        // insert that panicked left a prefix of its rows, all of which are still invisible.
        self.contents.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Memtable {
    fn drop(&mut self) {
        let contents = self
            .contents
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(largest) = contents.runs.iter_mut().max_by_key(|run| run.capacity()) {
            self.spare.give(std::mem::take(largest));
        }
    }
}
