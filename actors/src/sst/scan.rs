//! [`SstScan`]: the visible versions of a key range of one SST, in key order.
//!
//! A scan yields, for each key in its range, the newest version with a commit timestamp `<=`
//! its read timestamp — deletes included, because the merge above needs them to hide older
//! versions in other sources — and nothing for keys whose versions are all newer.
//!
//! It reads only what it needs: the blocks of the range (the block index maps the range to rows;
//! the page index maps rows to pages). A scan of every table column whose blocks fit in a
//! quarter of the [`BlockCache`](super::BlockCache) reads whole blocks through it — decoding only
//! the blocks missing there, and keeping them — so that a range read again is not decoded again;
//! any other scan decodes only the columns it returns plus the ones it works with (key columns,
//! commit timestamp, delete flag), unless every block it needs is cached. Nothing is read when
//! the file's versions are all newer than the read timestamp. When every key appears once, every
//! version is visible and there are no deletes (the common flushed file), it does no per-row work
//! at all; with [`ScanOptions::single_source`] it then decodes exactly the projected columns
//! (from the file).
//!
//! It never filters on a value column: a filter could hide a key's newest version and let an
//! older one show through.

use std::collections::BTreeSet;
use std::ops::{Bound, Range};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder, ScalarBuffer};
use arrow_schema::SchemaRef;
use arrow_select::filter::{FilterBuilder, FilterPredicate};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::push_decoder::{
    ParquetPushDecoder, ParquetPushDecoderBuilder, RowGroupSelection,
};

use super::blocks::CachedBlocks;
use super::fetch::DecodedBatches;
use super::reader::Shared;
use super::{KeyRange, SstError, partition_point};
use crate::table::KeyBytes;

/// What a scan computes besides the projected columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// Return each row's encoded key (a merge of several sources needs them).
    pub need_keys: bool,
    /// Return each row's commit timestamp.
    pub need_timestamps: bool,
    /// Rows per decoded batch.
    pub batch_rows: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            need_keys: true,
            need_timestamps: true,
            batch_rows: 8192,
        }
    }
}

impl ScanOptions {
    /// For a caller with this SST as its only source: no keys, no timestamps.
    pub fn single_source() -> Self {
        Self {
            need_keys: false,
            need_timestamps: false,
            ..Self::default()
        }
    }
}

/// Visible versions, in key order, at most one per key.
#[derive(Debug, Clone)]
pub struct SstChunk {
    /// The projected table columns.
    pub batch: RecordBatch,
    /// The rows' encoded keys, if [`ScanOptions::need_keys`].
    pub keys: Option<Vec<KeyBytes>>,
    /// The rows' commit timestamps, if [`ScanOptions::need_timestamps`].
    pub timestamps: Option<ScalarBuffer<u64>>,
    /// Which rows delete their key.
    pub deleted: BooleanBuffer,
}

/// How much version work a scan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every key once, every version visible, no deletes: rows pass through.
    PassThrough,
    /// Every key once: keep the rows at or before the read timestamp.
    UniqueKeys,
    /// Keys with several versions: keep each key's newest visible one.
    Versions,
    /// Every version of every key, deletes included (what a compaction merges).
    AllVersions,
}

/// Where the columns a scan works with are in its decoded batches.
#[derive(Debug)]
struct Layout {
    output: Vec<usize>,
    keys: Vec<usize>,
    timestamp: Option<usize>,
    deleted: Option<usize>,
}

/// Where a scan's decoded batches come from.
enum Batches {
    /// One pass over the file, decoding the columns the scan works with.
    File(DecodedBatches),
    /// Whole blocks, through the block cache.
    Blocks(CachedBlocks),
}

impl Batches {
    /// The next decoded batch, or `None` at the end of the span.
    async fn next(&mut self, shared: &Shared) -> Result<Option<RecordBatch>, SstError> {
        match self {
            Batches::File(batches) => batches.next(&shared.file).await,
            Batches::Blocks(blocks) => blocks.next(shared).await,
        }
    }
}

/// A scan of one SST; see the module documentation.
pub struct SstScan {
    shared: Arc<Shared>,
    /// `None` once the span, or the range, is done.
    batches: Option<Batches>,
    layout: Layout,
    output_schema: SchemaRef,
    mode: Mode,
    range: KeyRange,
    read_at: u64,
    options: ScanOptions,
    /// File row number of the next decoded row.
    next_row: u64,
    /// Rows before this may lie below the range.
    lower_edge_end: u64,
    /// Rows from this on may lie above the range.
    upper_edge_start: u64,
    /// The last key seen and whether a version of it was returned.
    carry: Option<(KeyBytes, bool)>,
}

impl std::fmt::Debug for SstScan {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SstScan")
            .field("path", &self.shared.file.path())
            .field("mode", &self.mode)
            .field("read_at", &self.read_at)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl SstScan {
    pub(crate) fn new(
        shared: Arc<Shared>,
        range: KeyRange,
        read_at: u64,
        projection: &[usize],
        options: ScanOptions,
    ) -> Result<Self, SstError> {
        Self::with_mode(shared, range, read_at, projection, options, None)
    }

    /// A scan in `mode` if given, else in the cheapest mode the file allows. A mode that does
    /// more work than needed gives the same rows (tests use this to check the cheap modes).
    pub(crate) fn with_mode(
        shared: Arc<Shared>,
        range: KeyRange,
        read_at: u64,
        projection: &[usize],
        options: ScanOptions,
        mode: Option<Mode>,
    ) -> Result<Self, SstError> {
        let info = &shared.info;
        let output_schema = Arc::new(shared.table.schema().project(projection)?);
        let mode = mode.unwrap_or(if !info.unique_keys {
            Mode::Versions
        } else if info.max_ts <= read_at && info.deletes == 0 {
            Mode::PassThrough
        } else {
            Mode::UniqueKeys
        });
        let bounded = !matches!(
            (&range.lower, &range.upper),
            (Bound::Unbounded, Bound::Unbounded)
        );
        let (roots, layout) = layout(&shared, projection, mode, bounded, options);
        let blocks = block_span(&shared, &range, read_at);
        let rows_before = |block: usize| -> u64 {
            shared.metadata.blocks[..block]
                .iter()
                .map(|place| place.rows as u64)
                .sum()
        };
        let (first_row, lower_edge_end, upper_edge_start) = match &blocks {
            Some(blocks) => (
                rows_before(blocks.start),
                rows_before(blocks.start + 1),
                rows_before(blocks.end - 1),
            ),
            None => (0, 0, 0),
        };
        let batches = match blocks {
            Some(blocks) => Some(batches(&shared, blocks, roots, projection, mode, options)?),
            None => None,
        };
        Ok(Self {
            shared,
            batches,
            layout,
            output_schema,
            mode,
            range,
            read_at,
            options,
            next_row: first_row,
            lower_edge_end,
            upper_edge_start,
            carry: None,
        })
    }

    /// How many columns each decoded batch has.
    #[cfg(test)]
    pub(crate) fn decoded_columns(&self) -> usize {
        let layout = &self.layout;
        let mut positions: BTreeSet<usize> = layout.output.iter().copied().collect();
        positions.extend(layout.keys.iter().copied());
        positions.extend(layout.timestamp);
        positions.extend(layout.deleted);
        positions.len()
    }

    /// The next chunk of visible versions, or `None` at the end of the range.
    pub async fn next_chunk(&mut self) -> Result<Option<SstChunk>, SstError> {
        loop {
            let Some(batches) = &mut self.batches else {
                return Ok(None);
            };
            let Some(batch) = batches.next(&self.shared).await? else {
                self.batches = None;
                return Ok(None);
            };
            if let Some(chunk) = self.chunk(&batch)? {
                return Ok(Some(chunk));
            }
        }
    }

    /// The visible versions of one decoded batch.
    fn chunk(&mut self, batch: &RecordBatch) -> Result<Option<SstChunk>, SstError> {
        let length = batch.num_rows();
        let first_row = self.next_row;
        self.next_row += length as u64;
        let at_lower_edge =
            !matches!(self.range.lower, Bound::Unbounded) && first_row < self.lower_edge_end;
        let at_upper_edge = !matches!(self.range.upper, Bound::Unbounded)
            && first_row + length as u64 > self.upper_edge_start;
        // Every row's key is encoded only to find a range's edges; otherwise only the keys of
        // the rows returned are, if asked for.
        let edge_keys = if at_lower_edge || at_upper_edge {
            Some(self.encode_keys(&self.key_columns(batch, 0..length))?)
        } else {
            None
        };
        let mut window = 0..length;
        if let Some(keys) = &edge_keys {
            window.start = partition_point(0..length, |row| {
                !self.range.above_lower(keys[row].as_bytes())
            });
            window.end = partition_point(window.start..length, |row| {
                self.range.below_upper(keys[row].as_bytes())
            });
            if window.end < length {
                // Past the range: nothing after this batch is wanted.
                self.batches = None;
            }
        }
        if window.is_empty() {
            return Ok(None);
        }
        let timestamps = self.layout.timestamp.map(|position| {
            batch
                .column(position)
                .as_primitive::<UInt64Type>()
                .values()
                .clone()
        });
        let selected = self.select(batch, window.clone(), timestamps.as_ref())?;
        self.assemble(batch, window, selected, edge_keys, timestamps)
    }

    /// The key columns of `rows` of `batch`.
    fn key_columns(&self, batch: &RecordBatch, rows: Range<usize>) -> Vec<ArrayRef> {
        self.layout
            .keys
            .iter()
            .map(|&position| batch.column(position).slice(rows.start, rows.len()))
            .collect()
    }

    fn encode_keys(&self, key_columns: &[ArrayRef]) -> Result<Vec<KeyBytes>, SstError> {
        self.shared
            .table
            .encode_key_bytes(key_columns)
            .map_err(|error| self.shared.corrupt(format!("keys do not encode: {error}")))
    }

    /// The encoded key of `row` of `key_columns`.
    fn encode_key(&self, key_columns: &[ArrayRef], row: usize) -> Result<KeyBytes, SstError> {
        let row: Vec<ArrayRef> = key_columns
            .iter()
            .map(|column| column.slice(row, 1))
            .collect();
        let mut keys = self.encode_keys(&row)?;
        keys.pop()
            .ok_or_else(|| self.shared.corrupt("a key encoded to nothing".to_owned()))
    }

    /// Which rows of `window` to return: `None` for all of them.
    fn select(
        &mut self,
        batch: &RecordBatch,
        window: Range<usize>,
        timestamps: Option<&ScalarBuffer<u64>>,
    ) -> Result<Option<BooleanBuffer>, SstError> {
        let read_at = self.read_at;
        const DECODED: &str = "layout() decodes the timestamps of every mode but PassThrough";
        Ok(match self.mode {
            Mode::PassThrough | Mode::AllVersions => None,
            Mode::UniqueKeys => {
                if self.shared.info.max_ts <= read_at {
                    return Ok(None);
                }
                let timestamps = &timestamps.expect(DECODED)[window.clone()];
                Some(BooleanBuffer::collect_bool(window.len(), |row| {
                    timestamps[row] <= read_at
                }))
            }
            Mode::Versions => {
                let key_columns = self.key_columns(batch, window.clone());
                let timestamps = &timestamps.expect(DECODED)[window];
                Some(self.newest_visible(&key_columns, timestamps)?)
            }
        })
    }

    /// Marks each key's newest version at or before the read timestamp among rows whose key
    /// columns are `key_columns`. A key's versions are consecutive, newest first, and may run on
    /// from the previous batch: its last key, and whether a version of it was marked, carry over.
    /// Keys are compared as columns; only the first and last are encoded, for the carry.
    fn newest_visible(
        &mut self,
        key_columns: &[ArrayRef],
        timestamps: &[u64],
    ) -> Result<BooleanBuffer, SstError> {
        let rows = timestamps.len();
        let first = self.encode_key(key_columns, 0)?;
        let (continues, mut found) = match self.carry.take() {
            Some((key, found)) => (key == first, found),
            None => (false, false),
        };
        let starts = run_starts(key_columns, !continues)?;
        let selected = if self.shared.info.max_ts <= self.read_at && (found || !continues) {
            // Every version is visible: each key's newest is its first, and a key running on
            // from the previous batch had its first there.
            found = true;
            starts
        } else {
            let mut selected = BooleanBufferBuilder::new(rows);
            for (row, &timestamp) in timestamps.iter().enumerate() {
                found &= !starts.value(row);
                let visible = !found && timestamp <= self.read_at;
                found |= visible;
                selected.append(visible);
            }
            selected.finish()
        };
        self.carry = Some((self.encode_key(key_columns, rows - 1)?, found));
        Ok(selected)
    }

    /// Builds the chunk of the `selected` rows of `window`.
    /// `edge_keys` are the batch's keys, if it was at an edge of the range.
    fn assemble(
        &self,
        batch: &RecordBatch,
        window: Range<usize>,
        selected: Option<BooleanBuffer>,
        edge_keys: Option<Vec<KeyBytes>>,
        timestamps: Option<ScalarBuffer<u64>>,
    ) -> Result<Option<SstChunk>, SstError> {
        let length = window.len();
        let predicate = selected.as_ref().map(|mask| {
            FilterBuilder::new(&arrow_array::BooleanArray::new(mask.clone(), None))
                .optimize()
                .build()
        });
        let rows = predicate.as_ref().map_or(length, FilterPredicate::count);
        if rows == 0 {
            return Ok(None);
        }
        let pick = |array: &ArrayRef| -> Result<ArrayRef, SstError> {
            let array = array.slice(window.start, length);
            Ok(match &predicate {
                Some(predicate) => predicate.filter(&array)?,
                None => array,
            })
        };
        let columns = self
            .layout
            .output
            .iter()
            .map(|&position| pick(batch.column(position)))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let output =
            RecordBatch::try_new_with_options(Arc::clone(&self.output_schema), columns, &options)?;
        let keys = match (self.options.need_keys, edge_keys) {
            (false, _) => None,
            (true, Some(keys)) => Some(selected_keys(keys, window.clone(), selected.as_ref())),
            (true, None) => {
                let columns = self
                    .layout
                    .keys
                    .iter()
                    .map(|&position| pick(batch.column(position)))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(self.encode_keys(&columns)?)
            }
        };
        let timestamps = match (self.options.need_timestamps, timestamps) {
            (true, Some(timestamps)) => {
                let array: ArrayRef = Arc::new(arrow_array::UInt64Array::new(timestamps, None));
                Some(pick(&array)?.as_primitive::<UInt64Type>().values().clone())
            }
            _ => None,
        };
        let deleted = match self.layout.deleted {
            Some(position) => pick(batch.column(position))?.as_boolean().values().clone(),
            None => BooleanBuffer::new_unset(rows),
        };
        Ok(Some(SstChunk {
            batch: output,
            keys,
            timestamps,
            deleted,
        }))
    }
}

/// The keys of the rows of `window` that `mask` selects (all without one).
fn selected_keys(
    mut keys: Vec<KeyBytes>,
    window: Range<usize>,
    mask: Option<&BooleanBuffer>,
) -> Vec<KeyBytes> {
    keys.truncate(window.end);
    match mask {
        None => {
            keys.drain(..window.start);
            keys
        }
        Some(mask) => {
            let mut selected = Vec::with_capacity(mask.count_set_bits());
            selected.extend(
                mask.set_indices()
                    .map(|row| keys[window.start + row].clone()),
            );
            selected
        }
    }
}

/// Which rows start a key's run of versions: those whose key columns differ from the row
/// before; the first row if `first`.
fn run_starts(key_columns: &[ArrayRef], first: bool) -> Result<BooleanBuffer, SstError> {
    let rows = key_columns.first().map_or(0, |column| column.len());
    let mut starts = BooleanBufferBuilder::new(rows);
    starts.append(first);
    if rows > 1 {
        let mut differs: Option<BooleanBuffer> = None;
        for column in key_columns {
            let (before, after) = (column.slice(0, rows - 1), column.slice(1, rows - 1));
            let column_differs = arrow_ord::cmp::distinct(&after, &before)?.values().clone();
            differs = Some(match differs {
                Some(differs) => &differs | &column_differs,
                None => column_differs,
            });
        }
        if let Some(differs) = differs {
            starts.append_buffer(&differs);
        }
    }
    Ok(starts.finish())
}

/// The Parquet root columns a scan decodes, and where each lands in its batches.
fn layout(
    shared: &Shared,
    projection: &[usize],
    mode: Mode,
    bounded: bool,
    options: ScanOptions,
) -> (Vec<usize>, Layout) {
    let user_columns = shared.table.schema().fields().len();
    let (timestamp_root, deleted_root) = (user_columns, user_columns + 1);
    let need_keys = options.need_keys || bounded || mode == Mode::Versions;
    let need_timestamps = options.need_timestamps || mode != Mode::PassThrough;
    let need_deleted = mode != Mode::PassThrough && shared.info.deletes > 0;
    let mut roots: BTreeSet<usize> = projection.iter().copied().collect();
    if need_keys {
        roots.extend(shared.table.key_indices().iter().copied());
    }
    if need_timestamps {
        roots.insert(timestamp_root);
    }
    if need_deleted {
        roots.insert(deleted_root);
    }
    let roots: Vec<usize> = roots.into_iter().collect();
    let position = |root: usize| roots.binary_search(&root).ok();
    let layout = Layout {
        output: projection
            .iter()
            .filter_map(|&root| position(root))
            .collect(),
        keys: match need_keys {
            true => shared
                .table
                .key_indices()
                .iter()
                .filter_map(|&root| position(root))
                .collect(),
            false => Vec::new(),
        },
        timestamp: position(timestamp_root),
        deleted: position(deleted_root),
    };
    (roots, layout)
}

/// The blocks that may hold keys of `range` visible at `read_at`, or `None` if none can.
fn block_span(shared: &Shared, range: &KeyRange, read_at: u64) -> Option<Range<usize>> {
    let info = &shared.info;
    if read_at < info.min_ts
        || !range.below_upper(info.min_key.as_bytes())
        || !range.above_lower(info.max_key.as_bytes())
    {
        return None;
    }
    let first_keys = &shared.metadata.footer.block_first_keys;
    let start = match &range.lower {
        Bound::Unbounded => 0,
        Bound::Included(key) => first_keys
            .partition_point(|first| first < key)
            .saturating_sub(1),
        Bound::Excluded(key) => first_keys
            .partition_point(|first| first <= key)
            .saturating_sub(1),
    };
    let end = match &range.upper {
        Bound::Unbounded => first_keys.len(),
        Bound::Included(key) => first_keys.partition_point(|first| first <= key),
        Bound::Excluded(key) => first_keys.partition_point(|first| first < key),
    };
    (start < end).then_some(start..end)
}

/// The source of a scan's batches of the `roots` columns of `blocks`: whole blocks through the
/// cache if the scan finds every block cached, or reads every table column (decoding the
/// engine's two columns too costs little) and its blocks would take at most a quarter of the
/// cache; else the file. So a large scan neither pushes out the blocks that lookups keep warm
/// nor decodes columns it does not need. A compaction's scans keep no blocks: their files are
/// about to be replaced.
fn batches(
    shared: &Shared,
    blocks: Range<usize>,
    roots: Vec<usize>,
    projection: &[usize],
    mode: Mode,
    options: ScanOptions,
) -> Result<Batches, SstError> {
    let cache = &shared.cache;
    let every_column =
        (0..shared.table.schema().fields().len()).all(|column| projection.contains(&column));
    let fits = || decoded_bytes(shared, blocks.clone()) <= cache.capacity_bytes() as u64 / 4;
    let through_cache = cache.capacity_bytes() > 0
        && ((every_column && fits()) || cache.holds_all(shared.cache_file, blocks.clone()));
    if through_cache {
        let fill_cache = mode != Mode::AllVersions;
        let blocks = CachedBlocks::new(shared, blocks, roots, options.batch_rows, fill_cache)?;
        return Ok(Batches::Blocks(blocks));
    }
    let decoder = decoder(shared, blocks, roots, options.batch_rows)?;
    Ok(Batches::File(DecodedBatches::new(decoder)))
}

/// About how many bytes `blocks` take decoded: their share of their row groups' uncompressed
/// bytes.
fn decoded_bytes(shared: &Shared, blocks: Range<usize>) -> u64 {
    let parquet = shared.metadata.parquet();
    shared.metadata.blocks[blocks]
        .iter()
        .map(|place| {
            let group = parquet.row_group(place.row_group);
            let group_bytes = u64::try_from(group.total_byte_size()).unwrap_or(0);
            let group_rows = u64::try_from(group.num_rows()).unwrap_or(0).max(1);
            group_bytes * place.rows as u64 / group_rows
        })
        .sum()
}

/// A decoder of the `roots` columns of `blocks`.
fn decoder(
    shared: &Shared,
    blocks: Range<usize>,
    roots: Vec<usize>,
    batch_rows: usize,
) -> Result<ParquetPushDecoder, SstError> {
    let parquet = shared.metadata.parquet();
    let places = &shared.metadata.blocks[blocks];
    let mut selections: Vec<RowGroupSelection> = Vec::new();
    let mut index = 0;
    while index < places.len() {
        let row_group = places[index].row_group;
        let first = places[index].first_row;
        let mut end = first;
        while index < places.len() && places[index].row_group == row_group {
            end = places[index].first_row + places[index].rows;
            index += 1;
        }
        let group_rows = parquet.row_group(row_group).num_rows() as usize;
        let selection = (first > 0 || end < group_rows).then(|| {
            RowSelection::from_consecutive_ranges(std::iter::once(first..end), group_rows)
        });
        selections.push(RowGroupSelection::new(row_group, selection));
    }
    let projection = ProjectionMask::roots(shared.metadata.arrow.parquet_schema(), roots);
    ParquetPushDecoderBuilder::new_with_metadata(shared.metadata.arrow.clone())
        .with_projection(projection)
        .with_batch_size(batch_rows.max(1))
        .with_row_group_selections(selections)
        .build()
        .map_err(|error| shared.parquet_error(error))
}
