//! SSTs: the immutable Parquet files that memtables are flushed to and compactions write.
//!
//! An SST is an ordinary Parquet file that DuckDB, pyarrow or polars can open. Its columns are
//! the table's columns (same names, types and nullability, in the table's order) followed by
//! [`COMMIT_TS_COLUMN`] and [`DELETED_COLUMN`]. Its rows are sorted by encoded key
//! ([`KeyBytes`] order) ascending, then commit timestamp descending: a key may have several
//! versions, newest first. A delete is a row whose delete flag is set; it keeps its key columns,
//! its other columns are meaningless. The file's footer carries our own key-value metadata
//! [`SST_METADATA_KEY`] (see [`footer`]): row and delete counts, key and timestamp ranges, and
//! the block index — the encoded first key of every block of `page_rows` rows — which point
//! lookups and key-range pruning use, and the checksums of the file's body; the footer's own
//! checksum travels with the file's name (the manifest's SST descriptor). `docs/format.md`
//! ("SST") is the reference.
//!
//! Promises:
//! - [`SstWriter`] writes what it is given, in the order given, and checks (in debug builds) that
//!   the order is the SST order; the footer describes exactly the rows written;
//! - [`SstReader::open`] accepts only a file whose schema is the table's SST schema and whose
//!   footer parses and agrees with the Parquet metadata; anything else is
//!   [`SstError::Corrupt`], never a panic;
//! - every byte read from storage is checked against its checksum before it is used
//!   (the `checksum` module): damage anywhere in the file is [`SstError::ChecksumMismatch`] (or
//!   [`SstError::Corrupt`]), never wrong rows;
//! - reads return, for each key, the newest version with a commit timestamp `<=` the read
//!   timestamp, deletes included (a merge above needs to see them). Only key ranges and
//!   timestamps prune: no filter on a value column is ever pushed into Parquet, because that
//!   could hide a key's newest version and resurrect an older one.

mod blocks;
mod bloom;
mod cache;
mod checksum;
mod fetch;
pub mod footer;
mod metadata;
mod reader;
mod scan;
mod writer;

use std::ops::{Bound, Range};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow_buffer::{BooleanBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use damselfly_runtimes::StorageError;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;

pub use cache::{BlockCache, BlockCacheStats, DEFAULT_BLOCK_CACHE_BYTES};
pub use checksum::{DEFAULT_STRIPE_BYTES, FooterChecksum, Stripes};
pub use reader::{SstReader, SstVersion};
pub use scan::{ScanOptions, SstChunk, SstScan};
pub use writer::{EncodedSst, SstWriter};

use crate::table::{KeyBytes, TableSchema};

/// The engine column holding each row's commit timestamp (`UInt64`, not null).
pub const COMMIT_TS_COLUMN: &str = "_damselfly_commit_ts";

/// The engine column saying whether a row deletes its key (`Boolean`, not null).
pub const DELETED_COLUMN: &str = "_damselfly_deleted";

/// The Parquet footer key-value metadata key under which an SST keeps its [`footer`].
pub const SST_METADATA_KEY: &str = "damselfly.sst";

/// The Arrow schema of a table's SSTs: the table's fields, then [`COMMIT_TS_COLUMN`] and
/// [`DELETED_COLUMN`].
pub fn sst_schema(table: &TableSchema) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|field| field.as_ref().clone())
        .collect();
    fields.push(Field::new(COMMIT_TS_COLUMN, DataType::UInt64, false));
    fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// A batch in the SST schema: the table's `rows`, each with its commit timestamp and delete
/// flag.
pub fn sst_batch(
    table: &TableSchema,
    rows: &RecordBatch,
    timestamps: ScalarBuffer<u64>,
    deleted: BooleanBuffer,
) -> Result<RecordBatch, SstError> {
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(UInt64Array::new(timestamps, None)));
    columns.push(Arc::new(BooleanArray::new(deleted, None)));
    let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        sst_schema(table),
        columns,
        &options,
    )?)
}

/// How an SST's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SstCompression {
    /// Zstandard at the given level (1..=22). Level 1 is the default: it meets the size target
    /// and encodes fastest (see `docs/format.md`).
    Zstd(i32),
    /// Snappy: faster, larger.
    Snappy,
    /// No compression.
    Uncompressed,
}

impl Default for SstCompression {
    fn default() -> Self {
        SstCompression::Zstd(1)
    }
}

impl SstCompression {
    fn to_parquet(self) -> Result<Compression, SstError> {
        Ok(match self {
            SstCompression::Zstd(level) => {
                let level = ZstdLevel::try_new(level).map_err(|error| SstError::InvalidInput {
                    reason: format!("zstd level {level}: {error}"),
                })?;
                Compression::ZSTD(level)
            }
            SstCompression::Snappy => Compression::SNAPPY,
            SstCompression::Uncompressed => Compression::UNCOMPRESSED,
        })
    }
}

/// How SSTs are laid out. The defaults suit both scans and point lookups. Plain serialisable
/// data: a remote executor hands the database's layout to the process that writes the outputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SstOptions {
    /// Rows per data page at most, and rows per block of the block index (default 4096).
    pub page_rows: usize,
    /// Rows per row group; a multiple of `page_rows` (default 131072).
    pub row_group_rows: usize,
    /// Page compression (default zstd level 1).
    pub compression: SstCompression,
    /// The false positive probability the key columns' bloom filters may reach when they are
    /// folded to their smallest size (default 0.03). A bloom filter's size is a power of two;
    /// at 0.03 a full row group's filter keeps one byte per key (about 2.5% false positives),
    /// a quarter of the rows' compressed bytes at most on a typical table, where 0.01 would
    /// take two.
    pub bloom_filter_fpp: f64,
    /// Bytes per checksummed stripe of the file's body (default [`DEFAULT_STRIPE_BYTES`]): a
    /// read from storage is widened to whole stripes, so that each is checked whole.
    pub stripe_bytes: usize,
}

impl Default for SstOptions {
    fn default() -> Self {
        Self {
            page_rows: 4096,
            row_group_rows: 131_072,
            compression: SstCompression::default(),
            bloom_filter_fpp: 0.03,
            stripe_bytes: DEFAULT_STRIPE_BYTES,
        }
    }
}

impl SstOptions {
    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<(), SstError> {
        let invalid = |reason: String| Err(SstError::InvalidInput { reason });
        if self.page_rows == 0 {
            return invalid("page_rows must be at least 1".to_owned());
        }
        if self.row_group_rows == 0 || !self.row_group_rows.is_multiple_of(self.page_rows) {
            return invalid(format!(
                "row_group_rows ({}) must be a positive multiple of page_rows ({})",
                self.row_group_rows, self.page_rows
            ));
        }
        if !(self.bloom_filter_fpp > 0.0 && self.bloom_filter_fpp < 1.0) {
            return invalid(format!(
                "bloom_filter_fpp ({}) must be between 0 and 1, exclusive",
                self.bloom_filter_fpp
            ));
        }
        if self.stripe_bytes == 0 {
            return invalid("stripe_bytes must be at least 1".to_owned());
        }
        self.compression.to_parquet().map(|_| ())
    }
}

/// What an SST holds, as recorded in its footer (and in the manifest's SST descriptors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SstInfo {
    /// Rows (versions, deletes included).
    pub rows: u64,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The smallest encoded key.
    pub min_key: KeyBytes,
    /// The largest encoded key.
    pub max_key: KeyBytes,
    /// The oldest commit timestamp.
    pub min_ts: u64,
    /// The newest commit timestamp.
    pub max_ts: u64,
    /// Rows that delete their key.
    pub deletes: u64,
    /// Whether every key appears in one row only.
    pub unique_keys: bool,
    /// The checksum of the file's footer, which the file cannot hold itself: whoever names the
    /// file keeps it (the manifest's SST descriptor) and gives it to [`SstReader::open`].
    pub footer: FooterChecksum,
}

/// A range of encoded keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The lower bound.
    pub lower: Bound<KeyBytes>,
    /// The upper bound.
    pub upper: Bound<KeyBytes>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// Whether `key` lies at or above the lower bound.
    pub fn above_lower(&self, key: &[u8]) -> bool {
        match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => key >= lower.as_bytes(),
            Bound::Excluded(lower) => key > lower.as_bytes(),
        }
    }

    /// Whether `key` lies at or below the upper bound.
    pub fn below_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(upper) => key <= upper.as_bytes(),
            Bound::Excluded(upper) => key < upper.as_bytes(),
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.above_lower(key) && self.below_upper(key)
    }
}

/// A failure to write or read an SST.
#[derive(Debug, thiserror::Error)]
pub enum SstError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Parquet failed to encode or decode.
    #[error("parquet error in SST {path}: {source}")]
    Parquet {
        /// The SST's path (`"(new SST)"` while writing).
        path: String,
        /// The cause.
        #[source]
        source: ParquetError,
    },
    /// The file is not a readable SST of this table.
    #[error("SST {path} is corrupt: {reason}")]
    Corrupt {
        /// The SST's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Bytes of the file do not match their checksum.
    #[error(
        "SST {path} is corrupt: bytes {}..{} have CRC32C {found:#010x}, expected {expected:#010x}",
        range.start,
        range.end
    )]
    ChecksumMismatch {
        /// The SST's path.
        path: String,
        /// The checksummed unit (a stripe, or the footer) that does not match.
        range: Range<u64>,
        /// The checksum recorded when the file was written.
        expected: u32,
        /// The checksum of the bytes read.
        found: u32,
    },
    /// Arrow refused an operation.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The caller's options or rows are not acceptable.
    #[error("invalid SST input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
}

/// The first index of `range` for which `is_left` is false (`is_left` is true, then false).
pub(crate) fn partition_point(range: Range<usize>, is_left: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (range.start, range.end);
    while low < high {
        let middle = low + (high - low) / 2;
        if is_left(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// The path used in messages about an SST being written.
const NEW_SST: &str = "(new SST)";

#[cfg(test)]
pub(crate) mod tests;
