//! [`SstReader`]: an open SST, answering point lookups and starting scans.
//!
//! Opening reads the file's tail once (footer, Parquet metadata, page index) and checks it
//! ([`metadata`](super::metadata)); every read after that goes through [`SstFile`], which checks
//! every byte against its checksum. A point lookup ([`SstReader::get`]) then costs, at most, one
//! read of a bloom filter per row group and key column (kept for the reader's life) and one read
//! per block it decodes (kept in the shared [`BlockCache`]). It returns the key's newest version
//! at or before the read timestamp — a delete included — or nothing.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_ord::ord::make_comparator;
use arrow_schema::SortOptions;
use damselfly_runtimes::Storage;
use parquet::bloom_filter::Sbbf;

use super::blocks::BlockRun;
use super::bloom::probe_bytes;
use super::cache::{Block, BlockCache};
use super::checksum::FooterChecksum;
use super::fetch::SstFile;
use super::metadata::{self, SstMetadata};
use super::scan::{Mode, ScanOptions, SstScan};
use super::{KeyRange, SstError, SstInfo, partition_point};
use crate::table::{KeyBytes, TableSchema};

/// One version of a key, as stored in an SST.
#[derive(Debug, Clone)]
pub struct SstVersion {
    /// The commit that wrote it.
    pub timestamp: u64,
    /// Whether it deletes the key.
    pub deleted: bool,
    /// The row: one row of the table's columns, in the table's schema (meaningless apart from
    /// the key columns when `deleted`).
    pub row: RecordBatch,
}

/// An open SST. Cheap to clone; clones share the file's metadata and bloom filters.
#[derive(Debug, Clone)]
pub struct SstReader {
    pub(crate) shared: Arc<Shared>,
}

/// The bloom filters of one row group's key columns, in key order (`None`: the column chunk has
/// none).
type KeyBlooms = Arc<Vec<Option<Sbbf>>>;

/// What every clone of a reader and every scan of it share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub file: SstFile,
    pub table: Arc<TableSchema>,
    pub metadata: SstMetadata,
    pub info: SstInfo,
    pub cache: Arc<BlockCache>,
    pub cache_file: u64,
    /// Per row group, per key column: the bloom filter once loaded (`None` inside: the column
    /// chunk has none).
    blooms: Mutex<Vec<Option<KeyBlooms>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.cache.forget_file(self.cache_file);
    }
}

impl SstReader {
    /// Opens the SST at `path` of `table`, whose footer has the checksum `footer` (from its
    /// descriptor), caching its decoded blocks in `cache`.
    pub async fn open(
        storage: Arc<dyn Storage>,
        path: &str,
        table: Arc<TableSchema>,
        cache: Arc<BlockCache>,
        footer: FooterChecksum,
        file_len: u64,
    ) -> Result<SstReader, SstError> {
        let (file, metadata) = metadata::load(storage, path, &table, footer, file_len).await?;
        let info = SstInfo {
            rows: metadata.footer.rows,
            bytes: file.len(),
            min_key: metadata.footer.min_key.clone(),
            max_key: metadata.footer.max_key.clone(),
            min_ts: metadata.footer.min_ts,
            max_ts: metadata.footer.max_ts,
            deletes: metadata.footer.deletes,
            unique_keys: metadata.footer.unique_keys,
            footer,
        };
        let row_groups = metadata.parquet().num_row_groups();
        let shared = Shared {
            file,
            table,
            info,
            cache_file: cache.register_file(),
            cache,
            blooms: Mutex::new(vec![None; row_groups]),
            metadata,
        };
        Ok(SstReader {
            shared: Arc::new(shared),
        })
    }

    /// What the SST holds.
    pub fn info(&self) -> &SstInfo {
        &self.shared.info
    }

    /// The SST's path.
    pub fn path(&self) -> &str {
        self.shared.file.path()
    }

    /// The first key of every block with the rows the block holds, in file order: where the
    /// file's rows lie in key order, without reading them.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (&KeyBytes, u64)> + '_ {
        let footer = &self.shared.metadata.footer;
        let mut left = footer.rows;
        footer.block_first_keys.iter().map(move |key| {
            let rows = left.min(footer.block_rows);
            left -= rows;
            (key, rows)
        })
    }

    /// The newest version of `key` with a commit timestamp `<= read_at`, or `None`.
    /// `key_columns` is the same key as one-row arrays of the key columns, in key order: the
    /// bloom filters are probed, and a block's rows compared, with them (debug builds check that
    /// they encode to `key`).
    pub async fn get(
        &self,
        key: &KeyBytes,
        key_columns: &[ArrayRef],
        read_at: u64,
    ) -> Result<Option<SstVersion>, SstError> {
        self.check_key_columns(key, key_columns)?;
        let info = &self.shared.info;
        if read_at < info.min_ts || *key < info.min_key || *key > info.max_key {
            return Ok(None);
        }
        let first_keys = &self.shared.metadata.footer.block_first_keys;
        // The last block starting at or before the key holds the key if the file does.
        let last = first_keys.partition_point(|first| first <= key) - 1;
        let row_group = self.shared.metadata.blocks[last].row_group;
        if !self.bloom_may_contain(row_group, key_columns).await? {
            return Ok(None);
        }
        // The key's newest versions may sit at the end of the blocks before it.
        let mut block = if first_keys[last] == *key {
            first_keys
                .partition_point(|first| first < key)
                .saturating_sub(1)
        } else {
            last
        };
        while block <= last {
            let decoded = self.block(block).await?;
            if let Some(found) = self.find_in_block(&decoded, key_columns, read_at)? {
                return Ok(found);
            }
            block += 1;
        }
        Ok(None)
    }

    /// The key's newest version `<= read_at` in `block`: `Some(None)` if the key ends in the
    /// block without one, `None` if the block's last row is (or precedes) the key, so that its
    /// versions may continue in the next block.
    fn find_in_block(
        &self,
        block: &Block,
        key_columns: &[ArrayRef],
        read_at: u64,
    ) -> Result<Option<Option<SstVersion>>, SstError> {
        let comparators = self
            .shared
            .table
            .key_indices()
            .iter()
            .zip(key_columns)
            .map(|(&index, probe)| {
                let column = block.rows.column(index);
                make_comparator(column.as_ref(), probe.as_ref(), SortOptions::default())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The order of the key columns' values is the order of their encoding.
        let compare = |row: usize| {
            comparators
                .iter()
                .map(|comparator| comparator(row, 0))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        let rows = block.rows.num_rows();
        let start = partition_point(0..rows, |row| compare(row).is_lt());
        for row in start..rows {
            if compare(row).is_ne() {
                return Ok(Some(None));
            }
            if block.timestamps[row] <= read_at {
                return Ok(Some(Some(SstVersion {
                    timestamp: block.timestamps[row],
                    deleted: block.deleted.value(row),
                    row: block.rows.slice(row, 1),
                })));
            }
        }
        Ok(None)
    }

    /// `key_columns` must be one row of each key column's type.
    fn check_key_columns(&self, key: &KeyBytes, key_columns: &[ArrayRef]) -> Result<(), SstError> {
        let fields = self.shared.table.key_fields();
        let fits = fields.len() == key_columns.len()
            && fields.iter().zip(key_columns).all(|(field, column)| {
                column.len() == 1 && column.data_type() == field.data_type()
            });
        if !fits {
            return Err(SstError::InvalidInput {
                reason: format!(
                    "a key needs one row of each key column ({fields:?}), got {} columns",
                    key_columns.len()
                ),
            });
        }
        debug_assert_eq!(
            self.shared.table.encode_key(key_columns).ok().as_ref(),
            Some(key),
            "key_columns must be the key"
        );
        Ok(())
    }

    /// Scans `range` at `read_at`, returning the table columns `projection` (indices into the
    /// table's schema). See [`SstScan`].
    pub fn scan(
        &self,
        range: KeyRange,
        read_at: u64,
        projection: &[usize],
        options: ScanOptions,
    ) -> Result<SstScan, SstError> {
        SstScan::new(
            Arc::clone(&self.shared),
            range,
            read_at,
            projection,
            options,
        )
    }

    /// Scans every version of every key in `range`, deletes included, in SST order (key
    /// ascending, then newest first), with every table column, the keys and the timestamps:
    /// what a compaction merges.
    pub fn scan_versions(&self, range: KeyRange, batch_rows: usize) -> Result<SstScan, SstError> {
        let columns: Vec<usize> = (0..self.shared.table.schema().fields().len()).collect();
        let options = ScanOptions {
            need_keys: true,
            need_timestamps: true,
            batch_rows,
        };
        SstScan::with_mode(
            Arc::clone(&self.shared),
            range,
            u64::MAX,
            &columns,
            options,
            Some(Mode::AllVersions),
        )
    }

    /// Whether the bloom filters of `row_group` allow the key; `true` when there are none.
    async fn bloom_may_contain(
        &self,
        row_group: usize,
        key_columns: &[ArrayRef],
    ) -> Result<bool, SstError> {
        let filters = self.blooms(row_group).await?;
        for (filter, column) in filters.iter().zip(key_columns) {
            if let (Some(filter), Some(probe)) = (filter, probe_bytes(column.as_ref()))
                && !filter.check(probe.as_slice())
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The bloom filters of `row_group`'s key columns, read on first use.
    async fn blooms(&self, row_group: usize) -> Result<KeyBlooms, SstError> {
        let loaded = self.lock_blooms()[row_group].clone();
        if let Some(filters) = loaded {
            return Ok(filters);
        }
        let shared = &self.shared;
        let group = shared.metadata.parquet().row_group(row_group);
        let mut filters = Vec::with_capacity(shared.metadata.key_leaves.len());
        for &leaf in &shared.metadata.key_leaves {
            let column = group.column(leaf);
            let (Some(offset), Some(length)) =
                (column.bloom_filter_offset(), column.bloom_filter_length())
            else {
                filters.push(None);
                continue;
            };
            let range = u64::try_from(offset)
                .ok()
                .zip(u64::try_from(length).ok())
                .map(|(offset, length)| offset..offset.saturating_add(length))
                .ok_or_else(|| {
                    shared.corrupt(format!("bloom filter of column {leaf} is outside the file"))
                })?;
            let bytes = shared.file.read_near_tail(range).await?;
            let filter = Sbbf::from_bytes(&bytes).map_err(|error| {
                shared.corrupt(format!("bloom filter of column {leaf}: {error}"))
            })?;
            filters.push(Some(filter));
        }
        let filters = Arc::new(filters);
        self.lock_blooms()[row_group] = Some(Arc::clone(&filters));
        Ok(filters)
    }

    fn lock_blooms(&self) -> std::sync::MutexGuard<'_, Vec<Option<KeyBlooms>>> {
        // The vector only ever has slots replaced whole; a poisoned lock guards valid data.
        self.shared
            .blooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Block `number`, decoded, from the cache or the file.
    async fn block(&self, number: usize) -> Result<Arc<Block>, SstError> {
        let shared = &self.shared;
        if let Some(block) = shared.cache.get(shared.cache_file, number) {
            return Ok(block);
        }
        let mut run = BlockRun::new(shared, number..number + 1)?;
        let Some((_, block)) = run.next(shared).await? else {
            return Err(shared.corrupt(format!("block {number} decoded to nothing")));
        };
        let block = Arc::new(block);
        shared
            .cache
            .insert(shared.cache_file, number, Arc::clone(&block));
        Ok(block)
    }
}

impl Shared {
    pub(crate) fn corrupt(&self, reason: String) -> SstError {
        SstError::Corrupt {
            path: self.file.path().to_owned(),
            reason,
        }
    }

    pub(crate) fn parquet_error(&self, source: parquet::errors::ParquetError) -> SstError {
        SstError::Parquet {
            path: self.file.path().to_owned(),
            source,
        }
    }
}
