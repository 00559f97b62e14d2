//! The committer's part of a transaction's conflict check: the SSTs.
//!
//! A version committed after the snapshot is either still in a memtable — the memtable actor
//! checks those while it orders the commit (see `damselfly_actors::memtable::ConflictCheck`) —
//! or already in an SST, flushed or compacted since. Only SSTs holding a commit newer than the
//! snapshot can hold such a version, and of those only the ones whose key range holds the key;
//! each consults its bloom filters before reading a block. So a commit's check costs grow with
//! what was written since its snapshot, not with the size of the table.

use std::cmp::Reverse;

use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::{PreparedWrite, ReadView};
use damselfly_actors::probe::{self, Probe};
use damselfly_actors::table::TableSchema;

use crate::db::DbInner;
use crate::error::{Error, ErrorKind};

/// The first row of `write` whose key has a version newer than `read_at` in an SST of `view`,
/// with that version's timestamp. `key_columns` are the write's key columns ([`key_columns`]).
pub(crate) async fn in_ssts(
    view: &ReadView,
    read_at: Timestamp,
    write: &PreparedWrite,
    key_columns: &[ArrayRef],
) -> Result<Option<(usize, Timestamp)>, Error> {
    let mut newer: Vec<_> = view
        .version
        .ssts()
        .filter(|(descriptor, _)| descriptor.max_timestamp > read_at.get())
        .collect();
    if newer.is_empty() {
        return Ok(None);
    }
    // Newest first: the most recent writes are the likeliest conflicts.
    newer.sort_by_key(|(descriptor, _)| Reverse(descriptor.max_timestamp));
    for (row, key) in write.rows.keys.iter().enumerate() {
        let mut probe_columns: Option<Vec<ArrayRef>> = None;
        for (descriptor, reader) in &newer {
            if *key < descriptor.min_key || *key > descriptor.max_key {
                continue;
            }
            let columns = probe_columns.get_or_insert_with(|| {
                key_columns
                    .iter()
                    .map(|column| column.slice(row, 1))
                    .collect()
            });
            if let Some(found) = reader.get(key, columns, u64::MAX).await?
                && found.timestamp > read_at.get()
            {
                return Ok(Some((row, Timestamp::new(found.timestamp))));
            }
        }
    }
    Ok(None)
}

/// The key columns of `write`'s rows, in key order.
pub(crate) fn key_columns(table: &TableSchema, write: &PreparedWrite) -> Vec<ArrayRef> {
    table
        .key_indices()
        .iter()
        .map(|&index| std::sync::Arc::clone(write.rows.batch.column(index)))
        .collect()
}

/// The error of a transaction of `db` that lost, counted: the key of row `row` of its write
/// (`key_columns`) has a version committed at `newer`, after its snapshot at `read_at`.
pub(crate) fn conflict(
    db: &DbInner,
    key_columns: &[ArrayRef],
    row: usize,
    newer: Timestamp,
    read_at: Timestamp,
) -> Error {
    probe::hit(&*db.runtime, Probe::TransactionConflict);
    db.metrics.transaction_conflicts.add(1);
    let values: Vec<String> = key_columns
        .iter()
        .map(|column| describe(column.as_ref(), row))
        .collect();
    Error::new(
        ErrorKind::Conflict,
        format!(
            "key ({}) was committed at timestamp {newer}, after this transaction's snapshot at \
             {read_at}; nothing of the transaction was applied — run it again in a new \
             transaction",
            values.join(", ")
        ),
    )
}

fn describe(column: &dyn Array, row: usize) -> String {
    match ArrayFormatter::try_new(column, &FormatOptions::default()) {
        Ok(formatter) => formatter.value(row).to_string(),
        Err(_) => format!("row {row} of the transaction's writes"),
    }
}
