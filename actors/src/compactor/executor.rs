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
use std::sync::Arc;

use damselfly_runtimes::{BoxFuture, Runtime, RuntimeExt, Storage, Stored, put_if_absent_or_own};

use super::CompactionError;
use super::job::{CompactionJob, CompactionOutcome, JOB_FORMAT};
use super::merge::{MergeRules, Merger};
use crate::manifest::{SstDescriptor, sst_path};
use crate::metrics::ExecutorMetrics;
use crate::sst::{BlockCache, EncodedSst, KeyRange, SstOptions, SstReader};
use crate::table::TableSchema;

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
    pub async fn run(&self, job: CompactionJob) -> Result<CompactionOutcome, CompactionError> {
        if job.format != JOB_FORMAT {
            return Err(CompactionError::Format { found: job.format });
        }
        // Compaction reads each block once: it bypasses the read cache.
        let cache = Arc::new(BlockCache::new(0));
        let mut scans = Vec::with_capacity(job.inputs.len());
        for input in &job.inputs {
            let reader = SstReader::open(
                Arc::clone(&self.storage),
                &input.path(),
                Arc::clone(&self.table),
                Arc::clone(&cache),
                input.footer_checksum(),
                input.bytes,
            )
            .await?;
            scans.push(reader.scan_versions(KeyRange::all(), INPUT_CHUNK_ROWS)?);
        }
        let rules = MergeRules {
            horizon: job.horizon,
            drop_deletes: job.drop_deletes,
            output_file_bytes: job.output_file_bytes,
            output_files_max: job.output_ids.end.saturating_sub(job.output_ids.start),
        };
        let mut merger = Merger::new(
            Arc::clone(&self.table),
            self.options.clone(),
            rules,
            scans.len(),
        );
        let mut outputs = Vec::new();
        let mut next_id = job.output_ids.start;
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
                .run_blocking("compactor.merge", move || {
                    if done { merger.finish() } else { merger.step() }.map(|()| merger)
                })
                .await??;
            for encoded in merger.take_finished() {
                outputs.push(self.write(&job, &mut next_id, encoded).await?);
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

    /// Writes one output under the next id of the job's range, durably.
    async fn write(
        &self,
        job: &CompactionJob,
        next_id: &mut u64,
        encoded: EncodedSst,
    ) -> Result<SstDescriptor, CompactionError> {
        let id = *next_id;
        if !job.output_ids.contains(&id) {
            return Err(CompactionError::Internal(format!(
                "the job's output ids {:?} ran out",
                job.output_ids
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

impl CompactionExecutor for LocalExecutor {
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, CompactionError>> {
        let executor = self.clone();
        Box::pin(async move { executor.run(job).await })
    }
}
