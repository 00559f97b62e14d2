//! The compactor actor: keeps read cost and space bounded by merging SSTs.
//!
//! Deciding is apart from doing. On every new version, on a manual [`Compact`] and every
//! [`PLAN_INTERVAL`], the compactor asks the [planner](plan) — a pure function of the version — for a job, reserves
//! output ids from the publisher, fixes the horizon (the oldest commit time travel may still
//! read, from the retention, and no newer than the oldest live transaction's snapshot), and hands the [`CompactionJob`] to the [`CompactionExecutor`] on a
//! task of its own, up to `concurrent_jobs` at once. A job that only moves a file to a deeper
//! level is published directly. When an executor answers, the compactor checks the outcome
//! against the job, opens the outputs and asks the publisher to replace the inputs by them.
//!
//! Promises:
//! - a job's outputs are published only after the executor wrote them durably, the outcome
//!   fits the job ([`CompactionOutcome::check`]) and every output opens with its checksum;
//! - the publisher publishes inputs→outputs in one step, and only if every input is still live;
//!   outputs of a job that lost that race, or failed midway, go to the GC sweeper, which deletes
//!   them once the grace period has passed;
//! - a failed job does not stop the database: it is retried after a back-off (doubling, up to
//!   [`RETRY_DELAY_MAX`]), and a manual compaction waiting on it gets the failure;
//! - running jobs never share an input (the planner is given the busy inputs), and no new job
//!   starts once the database is closing; closing waits for the running ones.
//!
//! [`Compact`]: CompactorMessage::Compact

mod executor;
pub mod job;
mod merge;
mod msg;
pub mod plan;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use damselfly_runtimes::{Instant, Runtime, RuntimeExt, Storage, StorageError, TaskError};

pub use self::executor::{CompactionExecutor, LocalExecutor};
pub use self::job::{CompactionJob, CompactionOutcome, JOB_FORMAT, OutcomeMismatch};
pub use self::msg::CompactorMessage;
pub use self::plan::{CompactionOptions, CompactionStrategy, PlannedJob};
use crate::gc::{GcMessage, RetiredSst};
use crate::kernel::{Address, Lifecycle, MailboxClosed, Notifier, Reply};
use crate::manifest::{PublisherMessage, Retention, SstDescriptor};
use crate::memtable::{TransactionPins, Visibility};
use crate::metrics::EngineMetrics;
use crate::probe::{self, Probe};
use crate::sst::{BlockCache, SstError, SstReader};
use crate::table::TableSchema;

/// How often the compactor plans even when no version changed (a safety net: every change of
/// the version wakes it anyway).
pub const PLAN_INTERVAL: Duration = Duration::from_secs(10);

/// The first wait before a failed job is planned again; it doubles with every failure.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between retries of failing compactions.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(60);

/// A compaction failure.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    /// Reading an input or writing an output failed.
    #[error(transparent)]
    Sst(#[from] SstError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The merge task did not finish.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// Assembling merged rows failed.
    #[error("merging rows: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The executor's outcome does not fit its job.
    #[error(transparent)]
    Mismatch(#[from] OutcomeMismatch),
    /// The job or outcome has a format this build does not speak.
    #[error("compaction job format {found} is not this build's format {JOB_FORMAT}")]
    Format {
        /// The format found.
        found: u32,
    },
    /// An output's id was already taken by a file (nothing was overwritten).
    #[error("compaction output {path} already exists; the job's output ids were not fresh")]
    OutputExists {
        /// The output's path.
        path: String,
    },
    /// The manifest publisher stopped.
    #[error(transparent)]
    Publisher(#[from] MailboxClosed),
    /// An executor's own failure (a custom executor's transport, for instance).
    #[error("compaction executor failed: {0}")]
    Executor(String),
    /// A broken promise inside the engine.
    #[error("internal compaction error: {0}")]
    Internal(String),
}

/// What the compactor needs around it.
#[derive(Debug)]
pub struct CompactorContext {
    /// Where the SSTs are (to open outputs).
    pub storage: Arc<dyn Storage>,
    /// Tasks, time and the wall clock.
    pub runtime: Arc<dyn Runtime>,
    /// The table.
    pub table: Arc<TableSchema>,
    /// The cache output readers share with every other reader.
    pub cache: Arc<BlockCache>,
    /// Runs the jobs.
    pub executor: Arc<dyn CompactionExecutor>,
    /// The planner's knobs.
    pub options: CompactionOptions,
    /// Compact on its own as versions change (otherwise only on [`CompactorMessage::Compact`]).
    pub automatic: bool,
    /// How far back time travel reaches: the jobs' horizon.
    pub retention: Retention,
    /// The live transactions' snapshots, which cap the horizon.
    pub pins: Arc<TransactionPins>,
    /// The current version.
    pub visibility: Arc<Visibility>,
    /// Publishes the results.
    pub publisher: Address<PublisherMessage>,
    /// Gets the outputs of failed and losing jobs.
    pub gc: Notifier<GcMessage>,
    /// The compactor's own mailbox, where jobs report.
    pub compactor: Notifier<CompactorMessage>,
    /// Counters.
    pub metrics: Arc<EngineMetrics>,
    /// Whether the database is closing (no new jobs then).
    pub lifecycle: Lifecycle,
}

/// The compactor actor.
#[derive(Debug)]
pub struct Compactor {
    context: CompactorContext,
    running: Vec<CompactionJob>,
    waiters: Vec<Reply<Result<(), Arc<CompactionError>>>>,
    /// The first failure while waiters wait.
    failure: Option<Arc<CompactionError>>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    /// When to plan again even if no version changed.
    tick_at: Instant,
}

impl Compactor {
    /// A compactor working in `context`.
    pub fn new(context: CompactorContext) -> Self {
        let tick_at = context.runtime.now() + PLAN_INTERVAL;
        Self {
            context,
            running: Vec::new(),
            waiters: Vec::new(),
            failure: None,
            retry_at: None,
            retry_delay: RETRY_DELAY,
            tick_at,
        }
    }

    /// Starts every job that is due, up to the concurrency limit; answers the waiters once
    /// nothing runs.
    async fn start_jobs(&mut self) -> Result<(), CompactionError> {
        let wanted = self.context.automatic || !self.waiters.is_empty();
        if wanted && self.retry_at.is_none() && self.context.lifecycle.check().is_ok() {
            while self.running.len() < self.context.options.concurrent_jobs.max(1) {
                let Some(planned) = self.plan() else {
                    break;
                };
                let started = if planned.is_move() {
                    self.publish_move(planned).await?
                } else {
                    self.start(planned).await?;
                    true
                };
                if !started {
                    break;
                }
            }
        }
        if self.running.is_empty() && !self.waiters.is_empty() {
            let outcome = match self.failure.take() {
                Some(failure) => Err(failure),
                None if self.plan().is_none() => Ok(()),
                // Due work that did not start: the database is closing (the waiters learn it
                // when their reply slot is dropped).
                None => return Ok(()),
            };
            for waiter in self.waiters.drain(..) {
                waiter.send(outcome.clone());
            }
        }
        Ok(())
    }

    fn plan(&self) -> Option<PlannedJob> {
        let (view, _) = self.context.visibility.snapshot();
        let busy: BTreeSet<u64> = self
            .running
            .iter()
            .flat_map(CompactionJob::input_ids)
            .collect();
        // A manual compaction goes on past "due" until level 0 holds nothing it need not.
        let plan = match self.waiters.is_empty() {
            true => plan::plan,
            false => plan::plan_manual,
        };
        plan(&view.version.version, &self.context.options, &busy)
    }

    /// Publishes a job that only moves files to a deeper level; `false` if the publisher
    /// refused it.
    async fn publish_move(&mut self, planned: PlannedJob) -> Result<bool, CompactionError> {
        let removed: Vec<u64> = planned.input_ids().collect();
        let moved: Vec<SstDescriptor> = planned
            .inputs
            .iter()
            .map(|input| SstDescriptor {
                level: planned.target_level,
                ..input.clone()
            })
            .collect();
        let result = self
            .context
            .publisher
            .ask(|reply| PublisherMessage::ReplaceSsts {
                removed: removed.clone(),
                added: moved,
                readers: BTreeMap::new(),
                history_floor: 0,
                reply,
            })
            .await?;
        match result {
            Ok(()) => {
                self.context
                    .metrics
                    .compaction_moves
                    .add(removed.len() as u64);
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, ssts = ?removed, "moving SSTs was refused");
                // A bug; the waiters hear of it instead of waiting for a move that cannot come.
                if !self.waiters.is_empty() {
                    self.failure.get_or_insert_with(|| {
                        Arc::new(CompactionError::Internal(format!(
                            "moving SSTs {removed:?} was refused: {error}"
                        )))
                    });
                }
                Ok(false)
            }
        }
    }

    /// Reserves output ids, fixes the horizon and starts the executor on `planned`.
    async fn start(&mut self, planned: PlannedJob) -> Result<(), CompactionError> {
        let context = &self.context;
        let (view, _) = context.visibility.snapshot();
        let retained = view
            .version
            .version
            .oldest_timestamp(&context.retention, context.runtime.wall_clock_ms());
        // Read after the version (see `TransactionPins::pin`): a live transaction's commit must
        // still find every version written after its snapshot.
        let horizon = match context.pins.oldest() {
            Some(pinned) => retained.min(pinned.get()),
            None => retained,
        };
        let input_bytes = planned.inputs.iter().map(|sst| sst.bytes).sum();
        // A level-0 file is one sorted run (tiered merges write there): one output, whatever
        // its size, or the merge would add runs instead of removing them.
        let output_file_bytes = match planned.target_level {
            0 => u64::MAX,
            _ => context.options.output_file_bytes,
        };
        let count =
            CompactionJob::output_ids_needed(input_bytes, planned.inputs.len(), output_file_bytes);
        let output_ids = context
            .publisher
            .ask(|reply| PublisherMessage::ReserveSstIds { count, reply })
            .await?;
        let job = CompactionJob {
            format: JOB_FORMAT,
            inputs: planned.inputs,
            target_level: planned.target_level,
            drop_deletes: planned.drop_deletes,
            horizon,
            output_ids,
            output_file_bytes,
        };
        tracing::debug!(
            inputs = ?job.input_ids(),
            target_level = job.target_level,
            horizon,
            "compaction started"
        );
        let (executor, compactor, task_job) = (
            Arc::clone(&context.executor),
            context.compactor.clone(),
            job.clone(),
        );
        // Detached: the result arrives as a message.
        drop(context.runtime.spawn("compactor.job", async move {
            let result = executor.execute(task_job.clone()).await;
            // The compactor may have failed meanwhile; then nobody waits for this.
            let _ = compactor.notify(CompactorMessage::Finished {
                job: task_job,
                result,
            });
        }));
        self.running.push(job);
        Ok(())
    }

    /// Publishes a finished job's outputs, or hands them to the GC sweeper.
    async fn finished(
        &mut self,
        job: CompactionJob,
        result: Result<CompactionOutcome, CompactionError>,
    ) -> Result<(), CompactionError> {
        self.running
            .retain(|running| running.output_ids != job.output_ids);
        match self.open_outputs(&job, result).await {
            Ok((outcome, readers)) => self.publish(job, outcome, readers).await?,
            Err(error) => self.failed(&job, error),
        }
        self.start_jobs().await
    }

    /// Checks `result` against `job` and opens every output.
    async fn open_outputs(
        &self,
        job: &CompactionJob,
        result: Result<CompactionOutcome, CompactionError>,
    ) -> Result<(CompactionOutcome, BTreeMap<u64, Arc<SstReader>>), CompactionError> {
        let outcome = result?;
        outcome.check(job)?;
        let mut readers = BTreeMap::new();
        for output in &outcome.outputs {
            let reader = SstReader::open(
                Arc::clone(&self.context.storage),
                &output.path(),
                Arc::clone(&self.context.table),
                Arc::clone(&self.context.cache),
                output.footer_checksum(),
                output.bytes,
            )
            .await?;
            readers.insert(output.id, Arc::new(reader));
        }
        Ok((outcome, readers))
    }

    async fn publish(
        &mut self,
        job: CompactionJob,
        outcome: CompactionOutcome,
        readers: BTreeMap<u64, Arc<SstReader>>,
    ) -> Result<(), CompactionError> {
        let context = &self.context;
        let (bytes_read, bytes_written) = (job.input_bytes(), outcome.output_bytes());
        let result = context
            .publisher
            .ask(|reply| PublisherMessage::ReplaceSsts {
                removed: job.input_ids(),
                added: outcome.outputs.clone(),
                readers,
                history_floor: job.horizon,
                reply,
            })
            .await?;
        if let Err(error) = result {
            tracing::info!(%error, "a compaction lost its race; its outputs are garbage");
            context.metrics.compaction_lost_races.add(1);
            self.retire_outputs(&job);
            return Ok(());
        }
        let metrics = &context.metrics;
        metrics.compaction_jobs.add(1);
        metrics.compaction_bytes_read.add(bytes_read);
        metrics.compaction_bytes_written.add(bytes_written);
        metrics.compaction_rows_read.add(outcome.rows_read);
        metrics.compaction_rows_written.add(outcome.rows_written);
        probe::hit(&*context.runtime, Probe::CompactionPublished);
        if outcome.rows_written < outcome.rows_read {
            probe::hit(&*context.runtime, Probe::CompactionDroppedVersions);
        }
        tracing::info!(
            inputs = ?job.input_ids(),
            outputs = ?outcome.outputs.iter().map(|sst| sst.id).collect::<Vec<_>>(),
            target_level = job.target_level,
            rows_read = outcome.rows_read,
            rows_written = outcome.rows_written,
            bytes_read,
            bytes_written,
            "compaction published"
        );
        self.retry_delay = RETRY_DELAY;
        Ok(())
    }

    /// Notes a failed job: its outputs are garbage, and planning waits a while.
    fn failed(&mut self, job: &CompactionJob, error: CompactionError) {
        tracing::warn!(%error, inputs = ?job.input_ids(), "compaction failed; will retry");
        probe::hit(&*self.context.runtime, Probe::CompactionFailed);
        self.context.metrics.compaction_failures.add(1);
        self.retire_outputs(job);
        if !self.waiters.is_empty() {
            self.failure.get_or_insert_with(|| Arc::new(error));
        }
        self.retry_at = Some(self.context.runtime.now() + self.retry_delay);
        self.retry_delay = (self.retry_delay * 2).min(RETRY_DELAY_MAX);
    }

    /// Hands every output id of `job` to the GC sweeper: whichever files exist are garbage.
    fn retire_outputs(&self, job: &CompactionJob) {
        let ssts = job
            .output_ids
            .clone()
            .map(|id| RetiredSst {
                id,
                pin: None,
                may_be_missing: true,
            })
            .collect();
        // The sweeper may have stopped (closing); the next open finds these as orphans.
        let _ = self.context.gc.notify(GcMessage::Retired { ssts });
    }
}

impl crate::kernel::Actor for Compactor {
    type Message = CompactorMessage;
    type Error = CompactionError;

    const NAME: &'static str = "compactor";

    /// The version recovered at open may already have work due (a crash interrupted it).
    async fn on_start(&mut self) -> Result<(), CompactionError> {
        self.start_jobs().await
    }

    async fn handle(&mut self, message: CompactorMessage) -> Result<(), CompactionError> {
        match message {
            CompactorMessage::VersionChanged => self.start_jobs().await,
            CompactorMessage::Compact { reply } => {
                self.waiters.push(reply);
                // A manual request does not wait out a back-off.
                self.retry_at = None;
                self.start_jobs().await
            }
            CompactorMessage::Finished { job, result } => self.finished(job, result).await,
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        Some(
            self.retry_at
                .map_or(self.tick_at, |at| at.min(self.tick_at)),
        )
    }

    /// Plans again after a back-off, and every [`PLAN_INTERVAL`] whatever happened.
    async fn on_tick(&mut self, now: Instant) -> Result<(), CompactionError> {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        if self.tick_at <= now {
            self.tick_at = now + PLAN_INTERVAL;
        }
        self.start_jobs().await
    }

    /// Running jobs finish (and publish) before the compactor stops.
    fn ready_to_stop(&self) -> bool {
        self.running.is_empty()
    }
}

#[cfg(test)]
mod tests;
