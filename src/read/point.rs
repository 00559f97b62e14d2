//! Point lookups: the newest version of one key at or below the snapshot, across sources.
//!
//! Memtables first, newest first: every version in a memtable is newer than every version in an
//! SST (SSTs hold flushed memtables), and a newer memtable's versions are newer than an older
//! one's, so the first memtable holding a version answers. Otherwise the SSTs whose key range
//! holds the key and whose commits are not all too new are asked in order of their newest
//! commit, and the search stops once no remaining SST can hold anything newer than the best
//! version found. Each SST consults its bloom filters before reading anything.

use std::cmp::Reverse;

use arrow_array::{ArrayRef, RecordBatch};
use damselfly_actors::sst::SstVersion;
use damselfly_actors::table::KeyBytes;

use crate::error::Error;
use crate::snapshot::Snapshot;

/// The newest version of `key` visible to `snapshot`, as a one-row batch, or `None` if there is
/// none or it is a delete. `key_columns` are the key's one-row arrays (for bloom filters).
pub(crate) async fn get(
    snapshot: &Snapshot,
    key: &KeyBytes,
    key_columns: &[ArrayRef],
) -> Result<Option<RecordBatch>, Error> {
    let read_at = snapshot.timestamp();
    for memtable in &snapshot.view.memtables {
        if let Some(found) = memtable.get(key.as_bytes(), read_at) {
            return Ok((!found.deleted).then(|| found.batch.slice(found.row, 1)));
        }
    }
    let mut candidates: Vec<_> = snapshot
        .view
        .version
        .ssts()
        .filter(|(descriptor, _)| {
            descriptor.min_timestamp <= read_at.get()
                && &descriptor.min_key <= key
                && key <= &descriptor.max_key
        })
        .collect();
    candidates.sort_by_key(|(descriptor, _)| Reverse(descriptor.max_timestamp));
    let mut newest: Option<SstVersion> = None;
    for (descriptor, reader) in candidates {
        if newest
            .as_ref()
            .is_some_and(|found| found.timestamp >= descriptor.max_timestamp)
        {
            break;
        }
        if let Some(found) = reader.get(key, key_columns, read_at.get()).await?
            && newest
                .as_ref()
                .is_none_or(|best| found.timestamp > best.timestamp)
        {
            newest = Some(found);
        }
    }
    Ok(newest.filter(|found| !found.deleted).map(|found| found.row))
}
