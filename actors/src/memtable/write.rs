//! A commit's rows, checked and encoded on the committer's own task before they are ordered.
//!
//! Everything that can be done without the commit timestamp is done here, in parallel across
//! committers: schema conformance, key encoding, the WAL record body and the memory estimate.
//! The memtable actor, which serialises commits, then only assigns a timestamp and indexes keys.

use arrow_array::RecordBatch;
use arrow_buffer::BooleanBuffer;
use bytes::Bytes;

use super::index::INDEX_ENTRY_BYTES;
use crate::table::{KeyBytes, SchemaError, TableSchema};
use crate::wal::record;

/// Rows with their encoded keys, ready for a memtable.
#[derive(Debug)]
pub struct KeyedRows {
    /// The rows, in the table's schema.
    pub batch: RecordBatch,
    /// The encoded key of each row.
    pub keys: Vec<KeyBytes>,
    /// Which rows delete their key, if any do.
    pub deletes: Option<BooleanBuffer>,
    /// What the rows cost the memtable, in bytes (data and index).
    pub memory_bytes: usize,
}

/// A batch ready to commit: its rows and its WAL record.
#[derive(Debug)]
pub struct PreparedWrite {
    /// The rows.
    pub rows: KeyedRows,
    /// The WAL record body.
    pub wal_body: Bytes,
}

/// Why a batch cannot be committed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The batch does not fit the table.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The WAL record could not be encoded.
    #[error("encoding the WAL record: {0}")]
    Encode(#[from] arrow_schema::ArrowError),
}

impl PreparedWrite {
    /// Checks `batch` against `table` and prepares it for a commit; `deletes` (one flag per row)
    /// marks rows that delete their key.
    pub fn for_commit(
        table: &TableSchema,
        batch: &RecordBatch,
        deletes: Option<&[bool]>,
    ) -> Result<Self, PrepareError> {
        Self::of_rows(KeyedRows::checked(table, batch, deletes)?)
    }

    /// `rows`, with their WAL record.
    pub fn of_rows(rows: KeyedRows) -> Result<Self, PrepareError> {
        let wal_body = record::encode_body(&rows.batch, rows.deletes.as_ref())?;
        Ok(Self { rows, wal_body })
    }

    /// The number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows.batch.num_rows()
    }
}

impl KeyedRows {
    /// Checks `batch` against `table` (see [`TableSchema::conform`]); `deletes` (one flag per
    /// row) marks rows that delete their key.
    pub fn checked(
        table: &TableSchema,
        batch: &RecordBatch,
        deletes: Option<&[bool]>,
    ) -> Result<Self, SchemaError> {
        let batch = table.conform(batch)?;
        let deletes = deletes_buffer(batch.num_rows(), deletes)?;
        Self::new(table, batch, deletes)
    }

    /// Rows conformed to the table already: read back from the WAL (conformed when they were
    /// committed), or gathered from a transaction's checked writes. WAL rows are decoded
    /// without copying, as slices of the whole segment they were read from, so they get
    /// buffers of their own (see `own_buffers`) instead of pinning the segment.
    pub fn conformed(
        table: &TableSchema,
        batch: RecordBatch,
        deletes: Option<BooleanBuffer>,
    ) -> Result<Self, SchemaError> {
        Self::new(table, batch, deletes)
    }

    /// `batch` with buffers of its own (see `own_buffers`), its keys and what it costs.
    fn new(
        table: &TableSchema,
        batch: RecordBatch,
        deletes: Option<BooleanBuffer>,
    ) -> Result<Self, SchemaError> {
        let (batch, batch_bytes) = own_buffers(batch)?;
        let keys = table.batch_key_bytes(&batch)?;
        let key_bytes: usize = keys.iter().map(KeyBytes::heap_bytes).sum();
        let memory_bytes = batch_bytes + key_bytes + keys.len() * INDEX_ENTRY_BYTES;
        Ok(Self {
            batch,
            keys,
            deletes,
            memory_bytes,
        })
    }
}

/// `batch`, copied into buffers of its own when it is a small part (a slice) of larger buffers.
///
/// A slice shares its parent's buffers. Kept as it is, it would pin the whole parent in the
/// memtable and be charged for all of it: ingesting a large batch a slice at a time would fill
/// the memory budget after a few slices. Copying costs one pass over the rows, and only batches
/// holding more than twice (plus a page) the memory their rows need pay it. Returns the batch
/// with the memory it holds.
fn own_buffers(batch: RecordBatch) -> Result<(RecordBatch, usize), arrow_schema::ArrowError> {
    let held = batch.get_array_memory_size();
    let mut needed = 0;
    for column in batch.columns() {
        needed += column.to_data().get_slice_memory_size()?;
    }
    if held <= 2 * needed + 4096 {
        return Ok((batch, held));
    }
    let all_rows = arrow_array::UInt64Array::from_iter_values(0..batch.num_rows() as u64);
    let owned = arrow_select::take::take_record_batch(&batch, &all_rows)?;
    let owned_bytes = owned.get_array_memory_size();
    Ok((owned, owned_bytes))
}

/// The delete flags as a bitmap, or `None` when no row deletes.
fn deletes_buffer(
    rows: usize,
    deletes: Option<&[bool]>,
) -> Result<Option<BooleanBuffer>, SchemaError> {
    let Some(flags) = deletes else {
        return Ok(None);
    };
    if flags.len() != rows {
        return Err(SchemaError::TombstoneLength {
            expected: rows,
            found: flags.len(),
        });
    }
    Ok(flags
        .iter()
        .any(|&deleted| deleted)
        .then(|| BooleanBuffer::from(flags)))
}
