//! [`Merger`]: the CPU half of a compaction — k sorted runs of versions in, SSTs out.
//!
//! Each input is an SST's versions in SST order (key ascending, then newest first), handed in
//! a chunk at a time. The merger emits, in the same order, exactly the versions a reader can
//! still need and writes them into output SSTs cut at key boundaries:
//!
//! - **versions**: for each key it keeps every version newer than the job's horizon and the
//!   newest version at or below it (the one a read at the horizon sees); older versions are
//!   hidden from every read at or after the horizon, so they go;
//! - **deletes**: only when the job may drop deletes (nothing outside it holds an older version
//!   of its keys), a key's oldest kept versions that are deletes at or below the horizon go
//!   too, one after the other: a read that would have found such a delete finds nothing
//!   instead, which means the same. A delete newer than the horizon stays even so: a live
//!   transaction's conflict check must still find it (the horizon is never newer than the
//!   oldest live transaction's snapshot).
//!
//! A key's versions may straddle chunks, so the merger only emits keys below the *bound*: the
//! smallest last key buffered by an input that may have more. An input whose buffered rows are
//! all at its last key [needs](Merger::needs) its next chunk before anything can move; the
//! driver fetches it, and every step frees at least that input, so the merge always advances.
//!
//! It owns no I/O and is `Send`, so a driver can move it onto a blocking thread for each step.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_select::interleave::interleave_record_batch;

use super::CompactionError;
use crate::sst::{EncodedSst, SstChunk, SstOptions, SstWriter, sst_batch};
use crate::table::{KeyBytes, TableSchema};

/// Rows handed to the SST writer at a time (extended to the end of a key's versions).
const WRITE_ROWS: usize = 8192;

/// The versions of one input not yet merged.
#[derive(Debug, Default)]
struct Input {
    /// Buffered chunks as SST-schema batches with their keys; the first is read from `offset`.
    chunks: Vec<(RecordBatch, Vec<KeyBytes>)>,
    offset: usize,
    exhausted: bool,
}

impl Input {
    fn last_key(&self) -> Option<&KeyBytes> {
        self.chunks.last().and_then(|(_, keys)| keys.last())
    }

    /// Whether every buffered row is at the last key (or none is buffered): rows are sorted,
    /// so it is enough that the first one is.
    fn stuck(&self) -> bool {
        match (self.chunks.first(), self.last_key()) {
            (Some((_, keys)), Some(last)) => &keys[self.offset] == last,
            _ => true,
        }
    }
}

/// One row of an input, for ordering.
struct Row<'a> {
    key: &'a KeyBytes,
    timestamp: u64,
    batch: usize,
    row: usize,
}

/// What a job asks of the merge.
#[derive(Debug, Clone)]
pub(crate) struct MergeRules {
    /// Keep every version newer than this and the newest at or below it.
    pub horizon: u64,
    /// Drop the trailing deletes at or below the horizon of each key.
    pub drop_deletes: bool,
    /// Cut an output once it reaches about this size...
    pub output_file_bytes: u64,
    /// ...as long as this many outputs are not yet reached.
    pub output_files_max: u64,
}

/// The merge of a job's inputs; see the module docs.
pub(crate) struct Merger {
    table: Arc<TableSchema>,
    options: SstOptions,
    rules: MergeRules,
    inputs: Vec<Input>,
    writer: Option<SstWriter>,
    /// Outputs finished and not yet taken by the driver.
    finished: Vec<EncodedSst>,
    outputs_started: u64,
    rows_read: u64,
    rows_written: u64,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Merger")
            .field("inputs", &self.inputs.len())
            .field("rules", &self.rules)
            .field("rows_read", &self.rows_read)
            .field("rows_written", &self.rows_written)
            .finish_non_exhaustive()
    }
}

impl Merger {
    pub(crate) fn new(
        table: Arc<TableSchema>,
        options: SstOptions,
        rules: MergeRules,
        inputs: usize,
    ) -> Self {
        Self {
            table,
            options,
            rules,
            inputs: (0..inputs).map(|_| Input::default()).collect(),
            writer: None,
            finished: Vec::new(),
            outputs_started: 0,
            rows_read: 0,
            rows_written: 0,
        }
    }

    /// Whether input `index` must be given its next chunk (or be declared exhausted) before the
    /// next step.
    pub(crate) fn needs(&self, index: usize) -> bool {
        let input = &self.inputs[index];
        !input.exhausted && input.stuck()
    }

    /// Hands input `index` its next chunk (every version, with keys and timestamps).
    pub(crate) fn push(&mut self, index: usize, chunk: SstChunk) -> Result<(), CompactionError> {
        let rows = chunk.batch.num_rows();
        let (Some(keys), Some(timestamps)) = (chunk.keys, chunk.timestamps) else {
            return Err(CompactionError::Internal(
                "a compaction input chunk lacks its keys or timestamps".to_owned(),
            ));
        };
        if rows == 0 {
            return Ok(());
        }
        let batch = sst_batch(&self.table, &chunk.batch, timestamps, chunk.deleted)?;
        self.rows_read += rows as u64;
        self.inputs[index].chunks.push((batch, keys));
        Ok(())
    }

    /// Declares input `index` finished: it has no more chunks.
    pub(crate) fn exhaust(&mut self, index: usize) {
        self.inputs[index].exhausted = true;
    }

    /// Whether every input is exhausted and merged.
    pub(crate) fn done(&self) -> bool {
        self.inputs
            .iter()
            .all(|input| input.exhausted && input.chunks.is_empty())
    }

    /// Merges and writes every buffered version below the bound. Call it once no input
    /// [`needs`](Merger::needs) anything.
    pub(crate) fn step(&mut self) -> Result<(), CompactionError> {
        debug_assert!(
            (0..self.inputs.len()).all(|index| !self.needs(index)),
            "every input has what the step needs"
        );
        let bound = self
            .inputs
            .iter()
            .filter(|input| !input.exhausted)
            .filter_map(Input::last_key)
            .min()
            .cloned();
        let (batches, keys, picks) = self.collect(bound.as_ref());
        if !picks.is_empty() {
            let batch_refs: Vec<&RecordBatch> = batches.iter().collect();
            let mut start = 0;
            while start < picks.len() {
                let mut end = (start + WRITE_ROWS).min(picks.len());
                while end < picks.len() && keys[end] == keys[end - 1] {
                    end += 1;
                }
                let batch = interleave_record_batch(&batch_refs, &picks[start..end])?;
                self.write(&batch, &keys[start..end])?;
                start = end;
            }
        }
        self.consume(bound.as_ref());
        Ok(())
    }

    /// The buffered batches, and the keys and (batch, row) places of the versions to keep
    /// among those below `bound`, in SST order.
    fn collect(
        &self,
        bound: Option<&KeyBytes>,
    ) -> (Vec<RecordBatch>, Vec<KeyBytes>, Vec<(usize, usize)>) {
        let mut batches = Vec::new();
        let mut rows: Vec<Row<'_>> = Vec::new();
        for input in &self.inputs {
            for (chunk_index, (batch, keys)) in input.chunks.iter().enumerate() {
                let start = if chunk_index == 0 { input.offset } else { 0 };
                let end = match bound {
                    Some(bound) => start + keys[start..].partition_point(|key| key < bound),
                    None => keys.len(),
                };
                let timestamps = commit_timestamps(batch);
                for row in start..end {
                    rows.push(Row {
                        key: &keys[row],
                        timestamp: timestamps[row],
                        batch: batches.len(),
                        row,
                    });
                }
                batches.push(batch.clone());
            }
        }
        // Each input is sorted already: a stable sort merges the runs.
        rows.sort_by(|a, b| match a.key.cmp(b.key) {
            Ordering::Equal => b.timestamp.cmp(&a.timestamp),
            other => other,
        });
        let mut keys = Vec::new();
        let mut picks = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start + 1;
            while end < rows.len() && rows[end].key == rows[start].key {
                end += 1;
            }
            let kept = self.keep(&rows[start..end], &batches);
            for row in &rows[start..start + kept] {
                keys.push(row.key.clone());
                picks.push((row.batch, row.row));
            }
            start = end;
        }
        (batches, keys, picks)
    }

    /// How many of one key's versions (newest first) survive.
    fn keep(&self, versions: &[Row<'_>], batches: &[RecordBatch]) -> usize {
        let horizon = self.rules.horizon;
        // Every version newer than the horizon, and the newest at or below it.
        let mut kept = versions
            .iter()
            .position(|version| version.timestamp <= horizon)
            .map_or(versions.len(), |at| at + 1);
        if self.rules.drop_deletes {
            while kept > 0 && {
                let oldest = &versions[kept - 1];
                oldest.timestamp <= horizon && is_delete(&batches[oldest.batch], oldest.row)
            } {
                kept -= 1;
            }
        }
        kept
    }

    /// Drops the buffered versions below `bound` (all of them without one).
    fn consume(&mut self, bound: Option<&KeyBytes>) {
        for input in &mut self.inputs {
            let Some(bound) = bound else {
                input.chunks.clear();
                input.offset = 0;
                continue;
            };
            while let Some((_, keys)) = input.chunks.first() {
                let end = input.offset + keys[input.offset..].partition_point(|key| key < bound);
                if end < keys.len() {
                    input.offset = end;
                    break;
                }
                input.chunks.remove(0);
                input.offset = 0;
            }
        }
    }

    /// Appends versions to the current output, first finishing it if it is full.
    fn write(&mut self, batch: &RecordBatch, keys: &[KeyBytes]) -> Result<(), CompactionError> {
        let full = self.writer.as_ref().is_some_and(|writer| {
            writer.estimated_bytes() >= self.rules.output_file_bytes
                && self.outputs_started < self.rules.output_files_max
        });
        if full {
            self.finish_output()?;
        }
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                self.outputs_started += 1;
                self.writer
                    .insert(SstWriter::new(&self.table, &self.options, 0)?)
            }
        };
        writer.write(batch, keys)?;
        self.rows_written += keys.len() as u64;
        Ok(())
    }

    fn finish_output(&mut self) -> Result<(), CompactionError> {
        if let Some(writer) = self.writer.take() {
            self.finished.push(writer.finish()?);
        }
        Ok(())
    }

    /// Finishes the last output. Call it once [`done`](Merger::done).
    pub(crate) fn finish(&mut self) -> Result<(), CompactionError> {
        debug_assert!(
            self.done(),
            "the merge is finished only once every input is"
        );
        self.finish_output()
    }

    /// The outputs finished since the last call, in key order.
    pub(crate) fn take_finished(&mut self) -> Vec<EncodedSst> {
        std::mem::take(&mut self.finished)
    }

    /// Versions read and written so far.
    pub(crate) fn rows(&self) -> (u64, u64) {
        (self.rows_read, self.rows_written)
    }
}

fn commit_timestamps(batch: &RecordBatch) -> &[u64] {
    batch
        .column(batch.num_columns() - 2)
        .as_primitive::<UInt64Type>()
        .values()
}

fn is_delete(batch: &RecordBatch, row: usize) -> bool {
    batch
        .column(batch.num_columns() - 1)
        .as_boolean()
        .value(row)
}
