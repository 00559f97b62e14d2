//! [`SstWriter`]: encodes sorted rows into one SST, in memory.
//!
//! The writer is synchronous and CPU-bound; the engine runs it through
//! `RuntimeExt::run_blocking`. It promises that the file it returns holds exactly the rows it was
//! given, in that order, with a footer ([`SstFooter`]) that describes them, and:
//! - pages of at most `page_rows` rows (batches are cut at block boundaries and Parquet's
//!   write batch size and page row limit are both `page_rows`, so a page ends at the latest at a
//!   block boundary; very large values may end a page earlier);
//! - row groups of exactly `row_group_rows` rows, except the last;
//! - page statistics and the page index on every column, bloom filters on the key columns,
//!   written together before the footer so that one read of the file's tail can fetch them;
//! - a CRC32C of every stripe of the file before Parquet's metadata, listed in the footer, and
//!   the checksum of the metadata itself in the returned [`SstInfo`] (see
//!   [`checksum`](super::checksum)).
//!
//! Parquet writes the bloom filters and the page index only when it closes the file, after the
//! last moment its key-value metadata can change; so the writer lets Parquet finish the file,
//! checksums everything before Parquet's metadata, and writes that metadata again with the
//! footer added. Offsets in the metadata do not move: only the metadata itself is rewritten.
//!
//! The caller guarantees the SST order across calls (key ascending, then commit timestamp
//! descending); debug builds check it.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, FooterTail, KeyValue, ParquetMetaData, ParquetMetaDataBuilder,
    ParquetMetaDataWriter, SortingColumn,
};
use parquet::file::properties::{BloomFilterPosition, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::checksum::{FooterChecksum, Stripes};
use super::footer::SstFooter;
use super::{
    COMMIT_TS_COLUMN, NEW_SST, SST_METADATA_KEY, SstError, SstInfo, SstOptions, sst_schema,
};
use crate::table::{KeyBytes, TableSchema};

/// A finished SST: the file's bytes and what they hold.
#[derive(Debug, Clone)]
pub struct EncodedSst {
    /// The whole file.
    pub bytes: Bytes,
    /// What the file holds (also recorded in its footer).
    pub info: SstInfo,
}

/// Writes one SST from batches in SST order.
pub struct SstWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    key_columns: Vec<String>,
    block_rows: u64,
    stripe_bytes: usize,
    rows: u64,
    deletes: u64,
    min_ts: u64,
    max_ts: u64,
    unique_keys: bool,
    block_first_keys: Vec<KeyBytes>,
    /// The last key written and its timestamp.
    last: Option<(KeyBytes, u64)>,
}

impl std::fmt::Debug for SstWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SstWriter")
            .field("rows", &self.rows)
            .field("bytes_written", &self.writer.bytes_written())
            .finish_non_exhaustive()
    }
}

impl SstWriter {
    /// A writer for `table`'s SSTs. `expected_rows` sizes the bloom filters (0: unknown).
    pub fn new(
        table: &TableSchema,
        options: &SstOptions,
        expected_rows: usize,
    ) -> Result<Self, SstError> {
        Self::with_buffer(table, options, expected_rows, Vec::new())
    }

    /// Like [`SstWriter::new`], encoding into `buffer` (cleared first): a buffer kept from an
    /// earlier SST spares the memory system handing out fresh pages for every file.
    pub fn with_buffer(
        table: &TableSchema,
        options: &SstOptions,
        expected_rows: usize,
        mut buffer: Vec<u8>,
    ) -> Result<Self, SstError> {
        options.validate()?;
        buffer.clear();
        let schema = sst_schema(table);
        let properties = writer_properties(table, &schema, options, expected_rows)?;
        let writer = ArrowWriter::try_new(buffer, Arc::clone(&schema), Some(properties))
            .map_err(parquet_error)?;
        Ok(Self {
            writer,
            schema,
            key_columns: table.key_names().into_iter().map(str::to_owned).collect(),
            block_rows: options.page_rows as u64,
            stripe_bytes: options.stripe_bytes,
            rows: 0,
            deletes: 0,
            min_ts: u64::MAX,
            max_ts: 0,
            unique_keys: true,
            block_first_keys: Vec::new(),
            last: None,
        })
    }

    /// Appends `batch` (in the SST schema, see [`sst_schema`]) whose row `i` has the encoded key
    /// `keys[i]`. Rows must continue the SST order of everything written before.
    pub fn write(&mut self, batch: &RecordBatch, keys: &[KeyBytes]) -> Result<(), SstError> {
        self.check_batch(batch, keys)?;
        let columns = batch.num_columns();
        let timestamps = batch.column(columns - 2).as_primitive::<UInt64Type>();
        let deleted = batch.column(columns - 1).as_boolean();
        if timestamps.null_count() > 0 || deleted.null_count() > 0 {
            return Err(SstError::InvalidInput {
                reason: "commit timestamps and delete flags may not be null".to_owned(),
            });
        }
        self.record(keys, timestamps.values());
        self.deletes += deleted.true_count() as u64;
        // Cut the batch at block boundaries, so that no page runs across one.
        let mut offset = 0;
        while offset < batch.num_rows() {
            let written = self.rows - keys.len() as u64 + offset as u64;
            let room = (self.block_rows - written % self.block_rows) as usize;
            let length = room.min(batch.num_rows() - offset);
            self.writer
                .write(&batch.slice(offset, length))
                .map_err(parquet_error)?;
            offset += length;
        }
        Ok(())
    }

    fn check_batch(&self, batch: &RecordBatch, keys: &[KeyBytes]) -> Result<(), SstError> {
        let invalid = |reason: String| Err(SstError::InvalidInput { reason });
        if keys.len() != batch.num_rows() {
            return invalid(format!(
                "{} keys for a batch of {} rows",
                keys.len(),
                batch.num_rows()
            ));
        }
        let expected = self.schema.fields();
        let found = batch.schema_ref().fields();
        if expected.len() != found.len()
            || expected.iter().zip(found.iter()).any(|(expected, found)| {
                expected.name() != found.name() || expected.data_type() != found.data_type()
            })
        {
            return invalid(format!(
                "the batch's schema {found:?} is not the SST schema {expected:?}"
            ));
        }
        Ok(())
    }

    /// Updates the statistics and the block index with the rows of `keys`.
    fn record(&mut self, keys: &[KeyBytes], timestamps: &[u64]) {
        let Some((last_key, &last_ts)) = keys.last().zip(timestamps.last()) else {
            return;
        };
        let before = self.last.take();
        let mut previous = before.as_ref().map(|(key, timestamp)| (key, *timestamp));
        for (index, (key, &timestamp)) in keys.iter().zip(timestamps).enumerate() {
            if (self.rows + index as u64).is_multiple_of(self.block_rows) {
                self.block_first_keys.push(key.clone());
            }
            if let Some((previous_key, previous_ts)) = previous {
                debug_assert!(
                    previous_key < key || (previous_key == key && previous_ts > timestamp),
                    "SST rows must be in key order, then newest first: \
                     {previous_key:?}@{previous_ts} came before {key:?}@{timestamp}"
                );
                if previous_key == key {
                    self.unique_keys = false;
                }
            }
            previous = Some((key, timestamp));
        }
        self.rows += keys.len() as u64;
        self.min_ts = timestamps.iter().copied().fold(self.min_ts, u64::min);
        self.max_ts = timestamps.iter().copied().fold(self.max_ts, u64::max);
        self.last = Some((last_key.clone(), last_ts));
    }

    /// About how large the file would be if finished now: the bytes encoded so far plus those
    /// still buffered (uncompressed), so an estimate from above.
    pub fn estimated_bytes(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Finishes the file. An SST has at least one row.
    pub fn finish(mut self) -> Result<EncodedSst, SstError> {
        let Some((max_key, _)) = self.last.take() else {
            return Err(SstError::InvalidInput {
                reason: "an SST needs at least one row".to_owned(),
            });
        };
        let parquet = self.writer.finish().map_err(parquet_error)?;
        let mut file = std::mem::take(self.writer.inner_mut());
        let footer_start = parquet_footer_start(&file)?;
        file.truncate(footer_start);
        let footer = SstFooter {
            rows: self.rows,
            deletes: self.deletes,
            unique_keys: self.unique_keys,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            min_key: self.block_first_keys[0].clone(),
            max_key,
            key_columns: self.key_columns,
            block_rows: self.block_rows,
            block_first_keys: self.block_first_keys,
            stripes: Stripes::of(&file, self.stripe_bytes),
        };
        let parquet = with_key_value(
            parquet,
            KeyValue::new(SST_METADATA_KEY.to_owned(), footer.to_json()),
        );
        ParquetMetaDataWriter::new(&mut file, &parquet)
            .finish()
            .map_err(parquet_error)?;
        let footer_checksum = FooterChecksum::of(&file[footer_start..]);
        let bytes = Bytes::from(file);
        let info = SstInfo {
            rows: footer.rows,
            bytes: bytes.len() as u64,
            min_key: footer.min_key,
            max_key: footer.max_key,
            min_ts: footer.min_ts,
            max_ts: footer.max_ts,
            deletes: footer.deletes,
            unique_keys: footer.unique_keys,
            footer: footer_checksum,
        };
        Ok(EncodedSst { bytes, info })
    }
}

/// Where the Parquet footer — metadata, its length and `PAR1` — that ends `file` starts.
fn parquet_footer_start(file: &[u8]) -> Result<usize, SstError> {
    let tail =
        FooterTail::try_from(&file[file.len().saturating_sub(8)..]).map_err(parquet_error)?;
    file.len()
        .checked_sub(tail.metadata_length() + 8)
        .ok_or_else(|| {
            parquet_error(ParquetError::General(format!(
                "a {}-byte file ends in a footer of {tail:?}",
                file.len()
            )))
        })
}

/// `parquet` with `pair` added to its key-value metadata and without its page index, whose
/// offsets it keeps: written with [`ParquetMetaDataWriter`], it is the footer of the same file.
fn with_key_value(parquet: ParquetMetaData, pair: KeyValue) -> ParquetMetaData {
    let file = parquet.file_metadata();
    let mut pairs = file.key_value_metadata().cloned().unwrap_or_default();
    pairs.push(pair);
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(pairs),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let row_groups = parquet.into_builder().take_row_groups();
    ParquetMetaDataBuilder::new(file)
        .set_row_groups(row_groups)
        .build()
}

/// A column chunk's dictionary may grow to this size before the column falls back to plain
/// encoding. Parquet's default (1 MiB) keeps a whole row group of random 64-bit values in a
/// dictionary: larger than plain (index bits on top), and a point lookup must read and decode
/// the whole dictionary for one block. 64 KiB keeps dictionaries for low-cardinality columns.
const DICTIONARY_PAGE_BYTES: usize = 64 << 10;

/// The Parquet writer settings of the SST format.
fn writer_properties(
    table: &TableSchema,
    schema: &SchemaRef,
    options: &SstOptions,
    expected_rows: usize,
) -> Result<WriterProperties, SstError> {
    // A bloom filter is sized for this many values before Parquet folds it down to the smallest
    // size that keeps the false positive rate.
    let bloom_values = match expected_rows {
        0 => options.row_group_rows,
        rows => rows.min(options.row_group_rows),
    } as u64;
    let mut builder = WriterProperties::builder()
        .set_compression(options.compression.to_parquet()?)
        .set_data_page_row_count_limit(options.page_rows)
        .set_write_batch_size(options.page_rows)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_max_row_group_bytes(None)
        .set_bloom_filter_position(BloomFilterPosition::End)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_bloom_filter_for_dictionary_encoded_chunks(true)
        .set_sorting_columns(Some(sorting_columns(table, schema)?));
    // The last key column is the key's most distinct part (the whole key when it has one
    // column): a dictionary would be as large as its values, cost index bits on top, and make a
    // point lookup read and decode it for one block.
    if let Some(last) = table.key_names().last() {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*last), false);
    }
    for name in table.key_names() {
        let path = ColumnPath::from(name);
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), options.bloom_filter_fpp)
            .set_column_bloom_filter_max_ndv(path, bloom_values);
    }
    Ok(builder.build())
}

/// Key columns ascending, then the commit timestamp descending, as Parquet leaf columns.
fn sorting_columns(
    table: &TableSchema,
    schema: &SchemaRef,
) -> Result<Vec<SortingColumn>, SstError> {
    let descriptor = ArrowSchemaConverter::new()
        .convert(schema)
        .map_err(parquet_error)?;
    let leaf_of = |root: usize| {
        (0..descriptor.num_columns())
            .find(|&leaf| descriptor.get_column_root_idx(leaf) == root)
            .map(|leaf| leaf as i32)
            .ok_or_else(|| SstError::InvalidInput {
                reason: format!("column {root} has no Parquet leaf"),
            })
    };
    let mut sorting = Vec::with_capacity(table.key_indices().len() + 1);
    for &root in table.key_indices() {
        sorting.push(SortingColumn {
            column_idx: leaf_of(root)?,
            descending: false,
            nulls_first: false,
        });
    }
    let commit_ts = schema
        .index_of(COMMIT_TS_COLUMN)
        .expect("sst_schema always has the commit timestamp column");
    sorting.push(SortingColumn {
        column_idx: leaf_of(commit_ts)?,
        descending: true,
        nulls_first: false,
    });
    Ok(sorting)
}

fn parquet_error(source: ParquetError) -> SstError {
    SstError::Parquet {
        path: NEW_SST.to_owned(),
        source,
    }
}
