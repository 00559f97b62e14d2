//! The [`CompactionExecutor`] port and the in-process executor, [`LocalExecutor`].
//!
//! An executor turns a [`CompactionJob`] into a [`CompactionOutcome`]: it reads the inputs from
//! the storage, merges them ([`Merger`]) and writes the outputs there, each durably and under an
//! id of the job's range, before it answers. It decides nothing: which files, which level, which
//! versions survive and under which names all come with the job, and the compactor checks the
//! outcome against the job before the publisher (which checks that the inputs are still live)
//! publishes it. So an executor anywhere — another process, another machine — can be slow, fail
//! or answer twice, and only ever loses a race: its outputs then belong to no version and the GC
//! sweeper deletes them.

use std::fmt;
use std::ops::{Bound, Range};
use std::sync::Arc;

use damselfly_runtimes::{BoxFuture, Runtime, RuntimeExt, Storage, Stored, put_if_absent_or_own};

use super::CompactionError;
use super::job::{CompactionJob, CompactionOutcome, JOB_FORMAT};
use super::merge::{MergeRules, Merger};
use super::plan::SUBCOMPACTIONS_DEFAULT;
use crate::manifest::{SstDescriptor, sst_path};
use crate::metrics::ExecutorMetrics;
use crate::sst::{BlockCache, EncodedSst, KeyRange, SstOptions, SstReader};
use crate::table::{KeyBytes, TableSchema};

/// Rows read from each input at a time.
const INPUT_CHUNK_ROWS: usize = 8192;

/// Runs compaction jobs. Implement it to run them elsewhere; see the module docs for what an
/// implementation must do, and [`LocalExecutor`] for the default.
pub trait CompactionExecutor: Send + Sync + fmt::Debug + 'static {
    /// Runs `job`: merges its inputs into new SSTs, written durably under ids of
    /// `job.output_ids`, and describes them.
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, CompactionError>>;
}

/// The default executor: runs jobs in this process, reading and writing through the storage and
/// merging off the async threads through the runtime.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    storage: Arc<dyn Storage>,
    runtime: Arc<dyn Runtime>,
    table: Arc<TableSchema>,
    options: SstOptions,
    metrics: Arc<ExecutorMetrics>,
    subcompactions: usize,
}

impl LocalExecutor {
    /// An executor for `table`'s SSTs on `storage`, writing SSTs with `options`.
    pub fn new(
        storage: Arc<dyn Storage>,
        runtime: Arc<dyn Runtime>,
        table: Arc<TableSchema>,
        options: SstOptions,
    ) -> Self {
        Self {
            storage,
            runtime,
            table,
            options,
            metrics: Arc::default(),
            subcompactions: SUBCOMPACTIONS_DEFAULT,
        }
    }

    /// The same executor, merging a job in up to `subcompactions` parts at once (see
    /// [`run`](LocalExecutor::run); 0 counts as 1). The default is
    /// [`SUBCOMPACTIONS_DEFAULT`].
    pub fn with_subcompactions(self, subcompactions: usize) -> Self {
        Self {
            subcompactions: subcompactions.max(1),
            ..self
        }
    }

    /// The same executor, counting into `metrics` (the database's, when it makes its executor).
    pub fn with_metrics(self, metrics: Arc<ExecutorMetrics>) -> Self {
        Self { metrics, ..self }
    }

    /// The counters an executor built around this one reports to: in the database's executor,
    /// they appear in its metrics.
    pub fn metrics(&self) -> Arc<ExecutorMetrics> {
        Arc::clone(&self.metrics)
    }

    /// How this executor lays out the SSTs it writes: an executor running jobs elsewhere passes
    /// it on, so the outputs look as if written here.
    pub fn sst_options(&self) -> &SstOptions {
        &self.options
    }

    /// Runs `job` here; see [`CompactionExecutor::execute`].
    ///
    /// A job bigger than one output file is cut into up to [`subcompactions`] parts by key
    /// range, of about as many rows each, merged at once; each part writes its own outputs under
    /// its share of the job's output ids, and the outcome lists them in key order. Every part is
    /// awaited, even after one failed, so nothing of the job runs on once it has answered.
    ///
    /// [`subcompactions`]: LocalExecutor::with_subcompactions
    pub async fn run(&self, job: CompactionJob) -> Result<CompactionOutcome, CompactionError> {
        if job.format != JOB_FORMAT {
            return Err(CompactionError::Format { found: job.format });
        }
        // Compaction reads each block once: it bypasses the read cache.
        let cache = Arc::new(BlockCache::new(0));
        let mut readers = Vec::with_capacity(job.inputs.len());
        for input in &job.inputs {
            readers.push(
                SstReader::open(
                    Arc::clone(&self.storage),
                    &input.path(),
                    Arc::clone(&self.table),
                    Arc::clone(&cache),
                    input.footer_checksum(),
                    input.bytes,
                )
                .await?,
            );
        }
        let ids = job.output_ids.clone();
        let id_count = ids.end.saturating_sub(ids.start);
        let output_files = job.input_bytes().div_ceil(job.output_file_bytes.max(1));
        let parts = [id_count, output_files]
            .into_iter()
            .fold(self.subcompactions as u64, u64::min)
            .max(1);
        let ranges = split(&readers, parts);
        if let [range] = &ranges[..] {
            return self.merge_part(&job, &readers, range.clone(), ids).await;
        }
        let count = ranges.len() as u64;
        let job = Arc::new(job);
        let handles: Vec<_> = (0..)
            .zip(ranges)
            .map(|(index, range)| {
                let part_ids = ids.start + id_count * index / count
                    ..ids.start + id_count * (index + 1) / count;
                let (executor, job, readers) = (self.clone(), Arc::clone(&job), readers.clone());
                self.runtime.spawn("compactor.part", async move {
                    executor.merge_part(&job, &readers, range, part_ids).await
                })
            })
            .collect();
        let mut outcome = CompactionOutcome {
            format: JOB_FORMAT,
            outputs: Vec::new(),
            rows_read: 0,
            rows_written: 0,
        };
        let mut failure = None;
        for handle in handles {
            match handle
                .await
                .map_err(CompactionError::from)
                .and_then(|part| part)
            {
                Ok(part) => {
                    outcome.outputs.extend(part.outputs);
                    outcome.rows_read += part.rows_read;
                    outcome.rows_written += part.rows_written;
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        failure.map_or(Ok(outcome), Err)
    }

    /// Merges the versions of `readers` in `range` into outputs under `ids`: one part of `job`.
    async fn merge_part(
        &self,
        job: &CompactionJob,
        readers: &[SstReader],
        range: KeyRange,
        ids: Range<u64>,
    ) -> Result<CompactionOutcome, CompactionError> {
        let mut scans = Vec::with_capacity(readers.len());
        for reader in readers {
            scans.push(reader.scan_versions(range.clone(), INPUT_CHUNK_ROWS)?);
        }
        let rules = MergeRules {
            horizon: job.horizon,
            drop_deletes: job.drop_deletes,
            output_file_bytes: job.output_file_bytes,
            output_files_max: ids.end.saturating_sub(ids.start),
        };
        let mut merger = Merger::new(
            Arc::clone(&self.table),
            self.options.clone(),
            rules,
            scans.len(),
        );
        let mut outputs = Vec::new();
        let mut next_id = ids.start;
        loop {
            for (index, scan) in scans.iter_mut().enumerate() {
                while merger.needs(index) {
                    match scan.next_chunk().await? {
                        Some(chunk) => merger.push(index, chunk)?,
                        None => merger.exhaust(index),
                    }
                }
            }
            let done = merger.done();
            merger = self
                .runtime
                .run_background("compactor.merge", move || {
                    if done { merger.finish() } else { merger.step() }.map(|()| merger)
                })
                .await??;
            for encoded in merger.take_finished() {
                outputs.push(self.write(job, &ids, &mut next_id, encoded).await?);
            }
            if done {
                break;
            }
        }
        let (rows_read, rows_written) = merger.rows();
        Ok(CompactionOutcome {
            format: JOB_FORMAT,
            outputs,
            rows_read,
            rows_written,
        })
    }

    /// Writes one output under the next id of `ids`, durably.
    async fn write(
        &self,
        job: &CompactionJob,
        ids: &Range<u64>,
        next_id: &mut u64,
        encoded: EncodedSst,
    ) -> Result<SstDescriptor, CompactionError> {
        let id = *next_id;
        if !ids.contains(&id) {
            return Err(CompactionError::Internal(format!(
                "the output ids {ids:?} ran out"
            )));
        }
        *next_id += 1;
        let path = sst_path(id);
        match put_if_absent_or_own(&*self.storage, &path, encoded.bytes).await? {
            Stored::Created | Stored::FoundOwn => Ok(SstDescriptor::from_info(
                id,
                job.target_level,
                &encoded.info,
            )),
            Stored::Taken => Err(CompactionError::OutputExists { path }),
        }
    }
}

/// Cuts the keys of `readers` into at most `parts` ranges holding about as many rows each: the
/// cuts are first keys of blocks, taken in key order with each block weighing its rows. The
/// ranges are in key order and every key is in exactly one. (A cut can leave a part with few
/// rows or none — blocks of different files interleave — which costs nothing but its share of
/// the parallelism.)
fn split(readers: &[SstReader], parts: u64) -> Vec<KeyRange> {
    if parts <= 1 {
        return vec![KeyRange::all()];
    }
    let mut blocks: Vec<(&KeyBytes, u64)> = readers.iter().flat_map(SstReader::blocks).collect();
    blocks.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let total: u64 = blocks.iter().map(|(_, rows)| rows).sum();
    let mut cuts: Vec<&KeyBytes> = Vec::new();
    let mut before = 0;
    for (key, rows) in blocks {
        let next = cuts.len() as u64 + 1;
        let share_behind =
            u128::from(before) * u128::from(parts) >= u128::from(total) * u128::from(next);
        if next < parts && share_behind && cuts.last().is_none_or(|last| *last < key) {
            cuts.push(key);
        }
        before += rows;
    }
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut lower = Bound::Unbounded;
    for cut in cuts {
        ranges.push(KeyRange {
            lower,
            upper: Bound::Excluded(cut.clone()),
        });
        lower = Bound::Included(cut.clone());
    }
    ranges.push(KeyRange {
        lower,
        upper: Bound::Unbounded,
    });
    ranges
}

impl CompactionExecutor for LocalExecutor {
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, CompactionError>> {
        let executor = self.clone();
        Box::pin(async move { executor.run(job).await })
    }
}
