//! Whole decoded blocks of an SST, through the [`BlockCache`](super::BlockCache).
//!
//! [`BlockRun`] decodes a run of consecutive blocks in one pass over the file — one Parquet
//! column reader per column and row group, not per block — and hands them out one block at a
//! time. [`CachedBlocks`] is what a scan reads when it goes through the cache: the blocks of its
//! span in order, each from the cache if it is there, else decoded with the missing blocks after
//! it (and, unless the scan says otherwise, kept). Point lookups decode their blocks with a run
//! of one.
//!
//! Promises: a block handed out has exactly the rows the block index gives it (anything else is
//! [`SstError::Corrupt`]); every byte decoded went through [`SstFile`](super::fetch::SstFile)'s
//! checksums, so a cached block is as trustworthy as one read from the file.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::push_decoder::{ParquetPushDecoderBuilder, RowGroupSelection};

use super::SstError;
use super::cache::Block;
use super::fetch::DecodedBatches;
use super::reader::Shared;

/// Consecutive blocks of one SST, decoded in one pass, every column.
pub(crate) struct BlockRun {
    /// The next block to hand out, and the end of the run.
    blocks: Range<usize>,
    batches: DecodedBatches,
}

impl BlockRun {
    /// A run over `blocks` (not empty, within the file).
    pub fn new(shared: &Shared, blocks: Range<usize>) -> Result<Self, SstError> {
        debug_assert!(!blocks.is_empty() && blocks.end <= shared.metadata.blocks.len());
        let parquet = shared.metadata.parquet();
        let places = &shared.metadata.blocks[blocks.clone()];
        // The rows of each row group the run covers.
        let mut spans: Vec<(usize, Range<usize>)> = Vec::new();
        for place in places {
            let end = place.first_row + place.rows;
            match spans.last_mut() {
                Some((row_group, rows)) if *row_group == place.row_group => rows.end = end,
                _ => spans.push((place.row_group, place.first_row..end)),
            }
        }
        let selections = spans
            .into_iter()
            .map(|(row_group, rows)| {
                let group_rows = parquet.row_group(row_group).num_rows() as usize;
                let whole = rows.start == 0 && rows.end == group_rows;
                let selection = (!whole).then(|| {
                    RowSelection::from_consecutive_ranges(std::iter::once(rows), group_rows)
                });
                RowGroupSelection::new(row_group, selection)
            })
            .collect();
        // Every block but a file's last has `block_rows` rows, and a row group holds whole
        // blocks: batches of `block_rows` rows are exactly the blocks.
        let block_rows = usize::try_from(shared.metadata.footer.block_rows)
            .unwrap_or(usize::MAX)
            .max(1);
        let decoder = ParquetPushDecoderBuilder::new_with_metadata(shared.metadata.arrow.clone())
            .with_projection(ProjectionMask::all())
            .with_batch_size(block_rows)
            .with_row_group_selections(selections)
            .build()
            .map_err(|error| shared.parquet_error(error))?;
        Ok(Self {
            blocks,
            batches: DecodedBatches::new(decoder),
        })
    }

    /// The run's next block and its number, or `None` after the last.
    pub async fn next(&mut self, shared: &Shared) -> Result<Option<(usize, Block)>, SstError> {
        match self.batches.next(&shared.file).await? {
            Some(batch) => self.block(shared, &batch).map(Some),
            None if self.blocks.is_empty() => Ok(None),
            None => Err(shared.corrupt(format!(
                "blocks {}..{} decoded to no rows",
                self.blocks.start, self.blocks.end
            ))),
        }
    }

    /// The decoded `batch` as the run's next block.
    fn block(&mut self, shared: &Shared, batch: &RecordBatch) -> Result<(usize, Block), SstError> {
        let Some(number) = self.blocks.next() else {
            return Err(shared.corrupt(format!(
                "decoding ran past block {} with {} more rows",
                self.blocks.end,
                batch.num_rows()
            )));
        };
        let expected = shared.metadata.blocks[number].rows;
        if batch.num_rows() != expected {
            return Err(shared.corrupt(format!(
                "block {number} decoded to {} rows, expected {expected}",
                batch.num_rows()
            )));
        }
        let user_columns = shared.table.schema().fields().len();
        let rows = RecordBatch::try_new(
            Arc::clone(shared.table.schema()),
            batch.columns()[..user_columns].to_vec(),
        )?;
        let block = Block {
            rows,
            timestamps: batch
                .column(user_columns)
                .as_primitive::<UInt64Type>()
                .values()
                .clone(),
            deleted: batch.column(user_columns + 1).as_boolean().values().clone(),
        };
        Ok((number, block))
    }
}

/// The blocks of a scan's span, from the cache or decoded, as batches of the columns the scan
/// works with.
pub(crate) struct CachedBlocks {
    /// The SST columns of each batch, ascending (as a decoder of those roots would give them),
    /// and their schema.
    roots: Vec<usize>,
    schema: SchemaRef,
    /// Blocks not yet begun.
    blocks: Range<usize>,
    /// Blocks missing from the cache, being decoded.
    run: Option<BlockRun>,
    /// Whether decoded blocks are kept in the cache.
    fill_cache: bool,
    /// The rest of the current block's batch, handed out `batch_rows` rows at a time.
    rest: Option<RecordBatch>,
    batch_rows: usize,
}

impl CachedBlocks {
    /// The `blocks` of `shared` as batches of its SST columns `roots` (ascending), at most
    /// `batch_rows` rows each.
    pub fn new(
        shared: &Shared,
        blocks: Range<usize>,
        roots: Vec<usize>,
        batch_rows: usize,
        fill_cache: bool,
    ) -> Result<Self, SstError> {
        let schema = Arc::new(shared.metadata.arrow.schema().project(&roots)?);
        Ok(Self {
            roots,
            schema,
            blocks,
            run: None,
            fill_cache,
            rest: None,
            batch_rows: batch_rows.max(1),
        })
    }

    /// The next batch, or `None` after the last block.
    pub async fn next(&mut self, shared: &Shared) -> Result<Option<RecordBatch>, SstError> {
        if self.rest.is_none() {
            let Some(block) = self.next_block(shared).await? else {
                return Ok(None);
            };
            self.rest = Some(self.columns_of(shared, &block)?);
        }
        let Some(rest) = self.rest.take() else {
            return Ok(None);
        };
        if rest.num_rows() <= self.batch_rows {
            return Ok(Some(rest));
        }
        let batch = rest.slice(0, self.batch_rows);
        self.rest = Some(rest.slice(self.batch_rows, rest.num_rows() - self.batch_rows));
        Ok(Some(batch))
    }

    async fn next_block(&mut self, shared: &Shared) -> Result<Option<Arc<Block>>, SstError> {
        loop {
            if let Some(run) = &mut self.run {
                match run.next(shared).await? {
                    Some((number, block)) => {
                        let block = Arc::new(block);
                        if self.fill_cache {
                            shared
                                .cache
                                .insert(shared.cache_file, number, Arc::clone(&block));
                        }
                        return Ok(Some(block));
                    }
                    None => self.run = None,
                }
            }
            let Some(number) = self.blocks.next() else {
                return Ok(None);
            };
            if let Some(block) = shared.cache.get(shared.cache_file, number) {
                return Ok(Some(block));
            }
            // Decode this block and the missing ones after it in one pass.
            let missing = shared.cache.missing(shared.cache_file, self.blocks.clone());
            let end = self.blocks.start + missing;
            self.blocks.start = end;
            self.run = Some(BlockRun::new(shared, number..end)?);
        }
    }

    /// The block's columns `roots`.
    fn columns_of(&self, shared: &Shared, block: &Block) -> Result<RecordBatch, SstError> {
        let user_columns = shared.table.schema().fields().len();
        let columns: Vec<ArrayRef> = self
            .roots
            .iter()
            .map(|&root| -> ArrayRef {
                if root < user_columns {
                    Arc::clone(block.rows.column(root))
                } else if root == user_columns {
                    Arc::new(UInt64Array::new(block.timestamps.clone(), None))
                } else {
                    Arc::new(BooleanArray::new(block.deleted.clone(), None))
                }
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(block.rows.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}
