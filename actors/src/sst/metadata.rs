//! Opening an SST: reading its Parquet metadata and page index from the file's tail, and
//! checking that the file is an SST of the table.
//!
//! Everything read here comes from disk and may be damaged or foreign: every check that fails
//! is [`SstError::Corrupt`] naming the file and what is wrong, never a panic.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use damselfly_runtimes::Storage;
use parquet::DecodeResult;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataPushDecoder};
use parquet::file::page_index::offset_index::PageLocation;

use super::fetch::read_ranges;
use super::footer::SstFooter;
use super::{SST_METADATA_KEY, SstError, sst_schema};
use crate::table::TableSchema;

/// The first read of a file takes this many bytes from its end: usually the whole footer and
/// page index.
const TAIL_BYTES: u64 = 64 << 10;

/// Reads that opening a file may take before the file is judged corrupt (footer, metadata,
/// page index, and a spare).
const MAX_METADATA_READS: usize = 6;

/// Where a block lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockPlace {
    /// The row group holding the block.
    pub row_group: usize,
    /// The block's first row in its row group.
    pub first_row: usize,
    /// The block's rows.
    pub rows: usize,
}

/// What an open SST knows about its file.
#[derive(Debug)]
pub(crate) struct SstMetadata {
    /// The file's length.
    pub file_len: u64,
    /// Parquet's metadata with the Arrow schema.
    pub arrow: ArrowReaderMetadata,
    /// Our footer.
    pub footer: SstFooter,
    /// Every block, in order.
    pub blocks: Vec<BlockPlace>,
    /// The Parquet leaf column of each key column, in key order.
    pub key_leaves: Vec<usize>,
    /// The file's tail as first read, starting at `file_len - tail.len()`.
    pub tail: Bytes,
}

impl SstMetadata {
    /// The Parquet metadata.
    pub fn parquet(&self) -> &Arc<ParquetMetaData> {
        self.arrow.metadata()
    }
}

/// Reads and checks the metadata of the SST at `path`.
pub(crate) async fn load(
    storage: &dyn Storage,
    path: &str,
    table: &TableSchema,
) -> Result<SstMetadata, SstError> {
    let corrupt = |reason: String| SstError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file_len = storage.size(path).await?;
    let tail_start = file_len.saturating_sub(TAIL_BYTES);
    let tail = storage.read_range(path, tail_start..file_len).await?;
    let mut decoder = ParquetMetaDataPushDecoder::try_new(file_len)
        .map_err(|error| corrupt(error.to_string()))?
        .with_page_index_policy(PageIndexPolicy::Optional);
    decoder
        .push_range(tail_start..file_len, tail.clone())
        .map_err(|error| corrupt(error.to_string()))?;
    let mut reads = 0;
    let parquet = loop {
        match decoder.try_decode() {
            Ok(DecodeResult::Data(metadata)) => break metadata,
            Ok(DecodeResult::NeedsData(ranges)) if reads < MAX_METADATA_READS => {
                reads += 1;
                let buffers = read_ranges(storage, path, &ranges).await?;
                decoder
                    .push_ranges(ranges, buffers)
                    .map_err(|error| corrupt(error.to_string()))?;
            }
            Ok(DecodeResult::NeedsData(_) | DecodeResult::Finished) => {
                return Err(corrupt("the Parquet metadata never completes".to_owned()));
            }
            Err(error) => return Err(corrupt(format!("bad Parquet metadata: {error}"))),
        }
    };
    let arrow = ArrowReaderMetadata::try_new(Arc::new(parquet), ArrowReaderOptions::new())
        .map_err(|error| corrupt(format!("no Arrow schema: {error}")))?;
    check_schema(&arrow, table).map_err(&corrupt)?;
    let footer = read_footer(arrow.metadata()).map_err(&corrupt)?;
    check_footer(&footer, arrow.metadata(), table).map_err(&corrupt)?;
    check_layout(arrow.metadata(), file_len).map_err(&corrupt)?;
    let blocks = block_places(arrow.metadata(), footer.block_rows as usize);
    if blocks.len() != footer.block_first_keys.len() {
        return Err(corrupt(format!(
            "the row groups make {} blocks but the footer lists {}",
            blocks.len(),
            footer.block_first_keys.len()
        )));
    }
    let key_leaves = key_leaves(&arrow, table).map_err(&corrupt)?;
    Ok(SstMetadata {
        file_len,
        arrow,
        footer,
        blocks,
        key_leaves,
        tail,
    })
}

/// The file's Arrow schema must be the table's SST schema: names, types and nullability.
fn check_schema(arrow: &ArrowReaderMetadata, table: &TableSchema) -> Result<(), String> {
    let expected = sst_schema(table);
    let found = arrow.schema();
    let same = expected.fields().len() == found.fields().len()
        && expected
            .fields()
            .iter()
            .zip(found.fields().iter())
            .all(|(expected, found)| {
                expected.name() == found.name()
                    && expected.data_type() == found.data_type()
                    && expected.is_nullable() == found.is_nullable()
            });
    if same {
        Ok(())
    } else {
        Err(format!(
            "its schema {:?} is not the table's SST schema {:?}",
            found.fields(),
            expected.fields()
        ))
    }
}

fn read_footer(parquet: &ParquetMetaData) -> Result<SstFooter, String> {
    let text = parquet
        .file_metadata()
        .key_value_metadata()
        .and_then(|pairs| pairs.iter().find(|pair| pair.key == SST_METADATA_KEY))
        .and_then(|pair| pair.value.as_deref())
        .ok_or_else(|| format!("it has no {SST_METADATA_KEY:?} metadata"))?;
    SstFooter::parse(text)
}

fn check_footer(
    footer: &SstFooter,
    parquet: &ParquetMetaData,
    table: &TableSchema,
) -> Result<(), String> {
    let parquet_rows = parquet.file_metadata().num_rows();
    if u64::try_from(parquet_rows).ok() != Some(footer.rows) {
        return Err(format!(
            "the footer counts {} rows, Parquet {parquet_rows}",
            footer.rows
        ));
    }
    let row_group_rows: i64 = parquet
        .row_groups()
        .iter()
        .map(|group| group.num_rows())
        .sum();
    if row_group_rows != parquet_rows || parquet.row_groups().iter().any(|g| g.num_rows() < 0) {
        return Err(format!(
            "the row groups hold {row_group_rows} rows, the file {parquet_rows}"
        ));
    }
    if footer.key_columns != table.key_names() {
        return Err(format!(
            "its key is {:?}, the table's is {:?}",
            footer.key_columns,
            table.key_names()
        ));
    }
    Ok(())
}

/// Column chunks and pages must lie inside the file, pages in row order: Parquet's reader
/// trusts these offsets (and panics on some bad ones).
fn check_layout(parquet: &ParquetMetaData, file_len: u64) -> Result<(), String> {
    for (index, group) in parquet.row_groups().iter().enumerate() {
        for (leaf, column) in group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(length).ok())
                .and_then(|(start, length)| start.checked_add(length))
                .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(format!(
                    "row group {index} column {leaf} claims bytes {start}+{length} of a \
                     {file_len}-byte file"
                ));
            }
            let page_index = parquet.page_index_for_row_group(index);
            if let Some(pages) = page_index.page_locations(leaf) {
                check_pages(pages, start..start + length, group.num_rows())
                    .map_err(|reason| format!("row group {index} column {leaf}: {reason}"))?;
            }
        }
    }
    Ok(())
}

fn check_pages(pages: &[PageLocation], chunk: Range<i64>, rows: i64) -> Result<(), String> {
    let mut previous_row = -1;
    for (number, page) in pages.iter().enumerate() {
        let end = page
            .offset
            .checked_add(i64::from(page.compressed_page_size));
        if page.offset < chunk.start || page.compressed_page_size < 0 || end > Some(chunk.end) {
            return Err(format!("page {number} lies outside its column chunk"));
        }
        let first_row = page.first_row_index;
        if (number == 0 && first_row != 0) || first_row <= previous_row || first_row >= rows {
            return Err(format!(
                "page {number} starts at row {first_row}, out of order"
            ));
        }
        previous_row = first_row;
    }
    Ok(())
}

/// Blocks of `block_rows` rows, counted from the start of each row group.
fn block_places(parquet: &ParquetMetaData, block_rows: usize) -> Vec<BlockPlace> {
    let mut blocks = Vec::new();
    for (row_group, group) in parquet.row_groups().iter().enumerate() {
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        let mut first_row = 0;
        while first_row < rows {
            let block = BlockPlace {
                row_group,
                first_row,
                rows: block_rows.min(rows - first_row),
            };
            blocks.push(block);
            first_row += block_rows;
        }
    }
    blocks
}

fn key_leaves(arrow: &ArrowReaderMetadata, table: &TableSchema) -> Result<Vec<usize>, String> {
    let descriptor = arrow.parquet_schema();
    table
        .key_indices()
        .iter()
        .map(|&root| {
            (0..descriptor.num_columns())
                .find(|&leaf| descriptor.get_column_root_idx(leaf) == root)
                .ok_or_else(|| format!("key column {root} has no Parquet column"))
        })
        .collect()
}
