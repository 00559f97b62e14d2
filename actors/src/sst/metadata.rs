//! Opening an SST: checking its footer against the checksum its descriptor gives, reading its
//! Parquet metadata and page index, and checking that the file is an SST of the table.
//!
//! Everything read here comes from disk and may be damaged or foreign. No byte is decoded before
//! it is checked: the footer against the [`FooterChecksum`] it is opened with, everything else
//! against the stripe checksums in the footer (through [`SstFile`]). Every check that fails is
//! [`SstError::ChecksumMismatch`] or [`SstError::Corrupt`] naming the file and what is wrong,
//! never a panic.

use std::ops::Range;
use std::sync::Arc;

use damselfly_runtimes::{Storage, StorageErrorKind};
use parquet::DecodeResult;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::basic::Encoding;
use parquet::file::metadata::{
    FooterTail, PageIndexPolicy, ParquetMetaData, ParquetMetaDataPushDecoder, ParquetMetaDataReader,
};
use parquet::file::page_index::offset_index::PageLocation;

use super::checksum::{DEFAULT_STRIPE_BYTES, FileChecksums, FooterChecksum};
use super::fetch::SstFile;
use super::footer::SstFooter;
use super::{SST_METADATA_KEY, SstError, sst_schema};
use crate::table::TableSchema;

/// The first read of a file takes this many bytes from its end (from a stripe boundary, so that
/// all of it can be checked): usually the whole footer and page index.
const TAIL_BYTES: u64 = 64 << 10;

/// The bytes of Parquet's footer after its metadata: the metadata's length and `PAR1`.
const FOOTER_TAIL_BYTES: usize = 8;

/// Reads that loading the page index may take before the file is judged corrupt (one, and
/// spares).
const MAX_PAGE_INDEX_READS: usize = 4;

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
    /// Parquet's metadata with the Arrow schema.
    pub arrow: ArrowReaderMetadata,
    /// Our footer.
    pub footer: SstFooter,
    /// Every block, in order.
    pub blocks: Vec<BlockPlace>,
    /// The Parquet leaf column of each key column, in key order.
    pub key_leaves: Vec<usize>,
}

impl SstMetadata {
    /// The Parquet metadata.
    pub fn parquet(&self) -> &Arc<ParquetMetaData> {
        self.arrow.metadata()
    }
}

/// Opens the SST at `path`, `file_len` bytes long, whose footer has the checksum `footer` (both
/// as its descriptor records them): its checked bytes and its metadata. Knowing the length
/// saves asking the storage for it (a request on object stores); a file shorter than that is
/// corrupt.
pub(crate) async fn load(
    storage: Arc<dyn Storage>,
    path: &str,
    table: &TableSchema,
    footer: FooterChecksum,
    file_len: u64,
) -> Result<(SstFile, SstMetadata), SstError> {
    let corrupt = |reason: String| SstError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let footer_start = file_len
        .checked_sub(footer.bytes)
        .filter(|_| footer.bytes >= FOOTER_TAIL_BYTES as u64)
        .ok_or_else(|| {
            corrupt(format!(
                "its footer is said to be {} bytes, but the file has {file_len}",
                footer.bytes
            ))
        })?;
    let read_start = file_len.saturating_sub(TAIL_BYTES).min(footer_start);
    let read_start = read_start - read_start % DEFAULT_STRIPE_BYTES as u64;
    let read = match storage.read_range(path, read_start..file_len).await {
        // A short read may be the device's hiccup; only a short file is corrupt.
        Err(error) if error.kind == StorageErrorKind::UnexpectedEof => {
            let actual = storage.size(path).await?;
            if actual < file_len {
                return Err(corrupt(format!(
                    "it has {actual} bytes, fewer than the {file_len} its descriptor records"
                )));
            }
            return Err(error.into());
        }
        read => read?,
    };
    if read.len() as u64 != file_len - read_start {
        return Err(corrupt(format!(
            "a read of bytes {read_start}..{file_len} returned {} bytes",
            read.len()
        )));
    }
    let footer_bytes = read.slice((footer_start - read_start) as usize..);
    footer.check(path, footer_start, &footer_bytes)?;
    let parquet = decode_footer(&footer_bytes).map_err(&corrupt)?;
    let sst_footer = read_footer(&parquet).map_err(&corrupt)?;
    let checksums =
        FileChecksums::new(sst_footer.stripes.clone(), footer, file_len).map_err(&corrupt)?;
    let file = SstFile::new(storage, path, checksums, read_start, read)?;
    let parquet = load_page_index(&file, parquet).await?;
    let arrow = ArrowReaderMetadata::try_new(Arc::new(parquet), ArrowReaderOptions::new())
        .map_err(|error| corrupt(format!("no Arrow schema: {error}")))?;
    check_schema(&arrow, table).map_err(&corrupt)?;
    check_footer(&sst_footer, arrow.metadata(), table).map_err(&corrupt)?;
    check_layout(arrow.metadata(), file_len).map_err(&corrupt)?;
    let blocks = block_places(arrow.metadata(), sst_footer.block_rows as usize);
    if blocks.len() != sst_footer.block_first_keys.len() {
        return Err(corrupt(format!(
            "the row groups make {} blocks but the footer lists {}",
            blocks.len(),
            sst_footer.block_first_keys.len()
        )));
    }
    let key_leaves = key_leaves(&arrow, table).map_err(&corrupt)?;
    let metadata = SstMetadata {
        arrow,
        footer: sst_footer,
        blocks,
        key_leaves,
    };
    Ok((file, metadata))
}

/// Parquet's metadata, decoded from the (checked) footer: the metadata, its length, `PAR1`.
fn decode_footer(footer: &[u8]) -> Result<ParquetMetaData, String> {
    let split = footer.len().saturating_sub(FOOTER_TAIL_BYTES);
    let (metadata, tail) = footer.split_at(split);
    let tail =
        FooterTail::try_from(tail).map_err(|error| format!("bad Parquet footer: {error}"))?;
    if tail.is_encrypted_footer() || tail.metadata_length() != metadata.len() {
        return Err(format!(
            "Parquet's footer is {tail:?}, but the descriptor's leaves {} bytes of metadata",
            metadata.len()
        ));
    }
    ParquetMetaDataReader::decode_metadata(metadata)
        .map_err(|error| format!("bad Parquet metadata: {error}"))
}

/// `parquet` with the file's page index, read through `file`.
async fn load_page_index(
    file: &SstFile,
    parquet: ParquetMetaData,
) -> Result<ParquetMetaData, SstError> {
    let corrupt = |reason: String| SstError::Corrupt {
        path: file.path().to_owned(),
        reason,
    };
    let mut decoder = ParquetMetaDataPushDecoder::try_new_with_metadata(file.len(), parquet)
        .map_err(|error| corrupt(error.to_string()))?
        .with_page_index_policy(PageIndexPolicy::Optional);
    let (range, tail) = file.tail();
    decoder
        .push_range(range, tail)
        .map_err(|error| corrupt(error.to_string()))?;
    let mut reads = 0;
    loop {
        match decoder.try_decode() {
            Ok(DecodeResult::Data(metadata)) => return Ok(metadata),
            Ok(DecodeResult::NeedsData(ranges)) if reads < MAX_PAGE_INDEX_READS => {
                reads += 1;
                let buffers = file.read_ranges(&ranges).await?;
                decoder
                    .push_ranges(ranges, buffers)
                    .map_err(|error| corrupt(error.to_string()))?;
            }
            Ok(DecodeResult::NeedsData(_) | DecodeResult::Finished) => {
                return Err(corrupt("the page index never completes".to_owned()));
            }
            Err(error) => return Err(corrupt(format!("bad page index: {error}"))),
        }
    }
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

/// Column chunks and pages must lie inside the file, pages in row order, and a dictionary
/// encoded chunk must have a dictionary: Parquet's reader trusts these (and panics on some bad
/// ones).
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
            let dictionary_encoded = column.encodings().any(|encoding| {
                matches!(
                    encoding,
                    Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
                )
            });
            if dictionary_encoded && column.dictionary_page_offset().is_none() {
                return Err(format!(
                    "row group {index} column {leaf} is dictionary encoded but has no dictionary"
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
