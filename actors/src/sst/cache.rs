//! [`BlockCache`]: decoded SST blocks kept for point lookups and scans, least recently used
//! first out.
//!
//! A block is `page_rows` consecutive rows of one SST, decoded: every user column, commit
//! timestamps and delete flags. (Keys are not kept encoded: a lookup compares the key columns
//! themselves, which keeps a block a quarter smaller for a `u64` key.) Point lookups and scans of
//! every column fill the cache; a scan of some columns uses what is there (see
//! [`SstScan`](super::SstScan)). Blocks are cached under (file, block number), where the file is
//! a number the cache hands each open [`SstReader`](super::SstReader) — a path alone cannot tell
//! apart two databases' files that share one cache. A reader forgets its blocks when it is
//! dropped.
//!
//! Promises: the bytes held never exceed the capacity (a block larger than the whole cache is
//! not kept); the lock is held for map updates only, never across decoding or I/O.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow_array::RecordBatch;
use arrow_buffer::{BooleanBuffer, ScalarBuffer};

/// The default capacity of a [`BlockCache`]: 128 MiB, which holds every block of a flushed
/// table of a million 70-byte rows (72 MB decoded), so that its lookups stay warm.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 128 << 20;

/// A decoded block.
#[derive(Debug)]
pub(crate) struct Block {
    /// The rows, user columns only, in the table's schema.
    pub rows: RecordBatch,
    /// The rows' commit timestamps.
    pub timestamps: ScalarBuffer<u64>,
    /// The rows' delete flags.
    pub deleted: BooleanBuffer,
}

impl Block {
    /// Memory the block holds, as the cache charges it.
    fn charged_bytes(&self) -> usize {
        self.rows.get_array_memory_size()
            + self.timestamps.len() * size_of::<u64>()
            + self.deleted.len().div_ceil(8)
    }
}

/// Counters of a [`BlockCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockCacheStats {
    /// Lookups that found their block.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Blocks held.
    pub blocks: usize,
    /// Bytes held.
    pub bytes: usize,
}

/// Decoded SST blocks shared by every reader of a database, bounded in bytes.
#[derive(Debug)]
pub struct BlockCache {
    capacity_bytes: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_file: u64,
    next_tick: u64,
    stats: BlockCacheStats,
    entries: BTreeMap<(u64, usize), Slot>,
    /// Entries by last use, oldest first.
    order: BTreeMap<u64, (u64, usize)>,
}

#[derive(Debug)]
struct Slot {
    block: Arc<Block>,
    bytes: usize,
    tick: u64,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new(DEFAULT_BLOCK_CACHE_BYTES)
    }
}

impl BlockCache {
    /// A cache that holds at most `capacity_bytes` of decoded blocks (0 disables caching).
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            state: Mutex::new(State::default()),
        }
    }

    /// The capacity in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Hits, misses and what is held now.
    pub fn stats(&self) -> BlockCacheStats {
        self.lock().stats
    }

    /// A number for a newly opened file, unique in this cache.
    pub(crate) fn register_file(&self) -> u64 {
        let mut state = self.lock();
        state.next_file += 1;
        state.next_file
    }

    /// Drops every block of `file`.
    pub(crate) fn forget_file(&self, file: u64) {
        let mut state = self.lock();
        let keys: Vec<(u64, usize)> = state
            .entries
            .range((file, 0)..=(file, usize::MAX))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            state.remove(key);
        }
    }

    /// Block `block` of `file`, if cached; it becomes the most recently used.
    pub(crate) fn get(&self, file: u64, block: usize) -> Option<Arc<Block>> {
        let mut state = self.lock();
        let tick = state.tick();
        let Some(slot) = state.entries.get_mut(&(file, block)) else {
            state.stats.misses += 1;
            return None;
        };
        let old_tick = std::mem::replace(&mut slot.tick, tick);
        let found = Arc::clone(&slot.block);
        state.order.remove(&old_tick);
        state.order.insert(tick, (file, block));
        state.stats.hits += 1;
        Some(found)
    }

    /// Whether every block of `file` in `blocks` is cached (neither a hit nor a miss: nothing is
    /// looked up yet).
    pub(crate) fn holds_all(&self, file: u64, mut blocks: Range<usize>) -> bool {
        let state = self.lock();
        blocks.all(|block| state.entries.contains_key(&(file, block)))
    }

    /// How many blocks of `file`, from the start of `blocks` on, are not cached: the run a
    /// reader decodes in one pass after a miss. Each counts as a miss.
    pub(crate) fn missing(&self, file: u64, blocks: Range<usize>) -> usize {
        let mut state = self.lock();
        let missing = blocks
            .take_while(|&block| !state.entries.contains_key(&(file, block)))
            .count();
        state.stats.misses += missing as u64;
        missing
    }

    /// Keeps `decoded` as block `block` of `file`, evicting the least recently used blocks.
    pub(crate) fn insert(&self, file: u64, block: usize, decoded: Arc<Block>) {
        let bytes = decoded.charged_bytes();
        if bytes > self.capacity_bytes {
            return;
        }
        let mut state = self.lock();
        state.remove((file, block));
        while state.stats.bytes + bytes > self.capacity_bytes {
            let Some((_, oldest)) = state.order.first_key_value() else {
                break;
            };
            let oldest = *oldest;
            state.remove(oldest);
        }
        let tick = state.tick();
        state.order.insert(tick, (file, block));
        let slot = Slot {
            block: decoded,
            bytes,
            tick,
        };
        state.entries.insert((file, block), slot);
        state.stats.bytes += bytes;
        state.stats.blocks += 1;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the maps consistent before it can panic (allocation aside), so a
        // poisoned lock still guards a usable cache.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn remove(&mut self, key: (u64, usize)) {
        if let Some(slot) = self.entries.remove(&key) {
            self.order.remove(&slot.tick);
            self.stats.bytes -= slot.bytes;
            self.stats.blocks -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::UInt64Array;
    use arrow_schema::{DataType, Field, Schema};

    fn block(rows: usize) -> Arc<Block> {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::UInt64, false)]));
        let column = Arc::new(UInt64Array::from_iter_values(0..rows as u64));
        Arc::new(Block {
            rows: RecordBatch::try_new(schema, vec![column]).expect("valid batch"),
            timestamps: vec![1u64; rows].into(),
            deleted: BooleanBuffer::new_unset(rows),
        })
    }

    #[test]
    fn evicts_the_least_recently_used_within_capacity() {
        let one = block(100).charged_bytes();
        let cache = BlockCache::new(one * 3);
        let file = cache.register_file();
        for number in 0..3 {
            cache.insert(file, number, block(100));
        }
        assert!(cache.get(file, 0).is_some());
        cache.insert(file, 3, block(100));
        assert!(
            cache.get(file, 1).is_none(),
            "block 1 was the least recently used"
        );
        assert!(cache.get(file, 0).is_some() && cache.get(file, 3).is_some());
        let stats = cache.stats();
        assert_eq!((stats.blocks, stats.bytes), (3, one * 3));
        cache.insert(file, 9, block(1000));
        assert!(
            cache.get(file, 9).is_none(),
            "larger than the whole cache: not kept"
        );
        cache.forget_file(file);
        assert_eq!(cache.stats().bytes, 0);
    }
}
