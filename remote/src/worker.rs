//! The worker: a kameo actor that runs compaction jobs for databases on shared storage.
//!
//! A worker serves one storage location (a folder both sides reach, or a bucket and prefix).
//! It reads the table from the location's descriptor, runs each job with the engine's own
//! in-process executor — reading the inputs, merging, writing the outputs durably under the
//! job's reserved ids — and answers with the outputs' descriptors. It decides nothing: the
//! database checks the answer against the job and publishes it only if the inputs are still
//! live, so a worker that is slow, dies or answers twice can delay compaction, never corrupt it.

use std::sync::Arc;

use damselfly::compaction::{CompactionError, CompactionOutcome, JOB_FORMAT, LocalExecutor};
use damselfly::runtime::{Runtime, TokioRuntime};
use damselfly::storage::Storage;
use damselfly_actors::table::{TableSchema, descriptor};
use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::reply::DelegatedReply;
use kameo::{Actor, RemoteActor, remote_message};
use tokio::sync::{OnceCell, Semaphore};

use crate::protocol::{Answer, JobBody, JobRequest, JobResponse};
use crate::{Network, RemoteError};

/// The pool workers register under unless told otherwise, and executors look up.
pub const DEFAULT_POOL: &str = "damselfly-compactor";

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pool: String,
    concurrency: usize,
    drill: Option<Drill>,
}

/// Failure drills: a worker that misbehaves on purpose, to prove that databases survive it.
/// Never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    /// The process exits as soon as a job starts, as a worker that dies mid-job.
    CrashOnJob,
    /// Every job waits this long before it runs: its answer comes after the database gave up.
    DelayJobs(std::time::Duration),
}

/// The exit code of a worker that crashed on purpose ([`Drill::CrashOnJob`]).
pub const DRILL_CRASH_EXIT_CODE: i32 = 86;

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            pool: DEFAULT_POOL.to_owned(),
            concurrency: 1,
            drill: None,
        }
    }
}

impl WorkerOptions {
    /// Registers under `pool` (default [`DEFAULT_POOL`]): databases whose executor names the same
    /// pool send it jobs.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = pool.into();
        self
    }

    /// Runs up to `jobs` jobs at once (default 1); more wait their turn.
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.concurrency = jobs.max(1);
        self
    }

    /// Misbehaves as `drill` says (see [`Drill`]).
    pub fn drill(mut self, drill: Drill) -> Self {
        self.drill = Some(drill);
        self
    }
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    actor: ActorRef<CompactionWorker>,
}

impl Worker {
    /// Starts a worker for the database at `storage` and registers it under its pool, so that
    /// executors connected to this process find it.
    pub async fn start(
        network: &'static Network,
        storage: Arc<dyn Storage>,
        options: WorkerOptions,
    ) -> Result<Worker, RemoteError> {
        let shared = Arc::new(Shared {
            storage,
            runtime: Arc::new(TokioRuntime::from_handle(network.handle())),
            table: OnceCell::new(),
            permits: Semaphore::new(options.concurrency),
            drill: options.drill,
        });
        let pool = options.pool;
        let actor = network
            .run(async move {
                let actor = CompactionWorker::spawn(shared);
                actor.register(pool.clone()).await.map_err(|error| {
                    RemoteError::Network(format!("registering under {pool:?}: {error}"))
                })?;
                Ok::<_, RemoteError>(actor)
            })
            .await??;
        Ok(Worker { actor })
    }

    /// Waits until the worker stops (it runs until the process ends).
    pub async fn wait(&self) {
        self.actor.wait_for_shutdown().await;
    }
}

/// The worker actor, as kameo registers it.
#[derive(RemoteActor)]
#[remote_actor(id = "damselfly.compaction.worker")]
pub(crate) struct CompactionWorker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CompactionWorker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CompactionWorker")
            .field("storage", &self.shared.storage)
            .finish_non_exhaustive()
    }
}

impl Actor for CompactionWorker {
    type Args = Arc<Shared>;
    type Error = Infallible;

    async fn on_start(shared: Arc<Shared>, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Self { shared })
    }
}

#[remote_message("damselfly.compaction.job")]
impl Message<JobRequest> for CompactionWorker {
    type Reply = DelegatedReply<JobResponse>;

    /// Jobs run on tasks of their own (up to the concurrency limit), so one long job does not
    /// hold up the next request.
    async fn handle(
        &mut self,
        request: JobRequest,
        context: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        let shared = Arc::clone(&self.shared);
        context.spawn(async move { shared.serve(request).await })
    }
}

/// What the worker's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    storage: Arc<dyn Storage>,
    runtime: Arc<dyn Runtime>,
    /// The table, read from the location's descriptor at the first job.
    table: OnceCell<Arc<TableSchema>>,
    permits: Semaphore,
    drill: Option<Drill>,
}

impl Shared {
    async fn serve(&self, request: JobRequest) -> JobResponse {
        let body = match request.open() {
            Ok(body) => body,
            Err(refusal) => {
                tracing::warn!(answer = ?refusal.open(), "job refused");
                return refusal;
            }
        };
        if body.job.format != JOB_FORMAT {
            let reason = format!(
                "this worker runs compaction jobs of format {JOB_FORMAT}, the job is format {}",
                body.job.format
            );
            tracing::warn!(%reason, "job refused");
            return JobResponse::answer(&Answer::Refused(reason));
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return JobResponse::answer(&Answer::Failed("the worker is stopping".to_owned()));
        };
        let (inputs, target_level) = (body.job.input_ids(), body.job.target_level);
        let input_bytes = body.job.input_bytes();
        tracing::info!(?inputs, target_level, input_bytes, "job started");
        match self.drill {
            Some(Drill::CrashOnJob) => {
                tracing::error!(?inputs, "drill: the worker dies mid-job");
                std::process::exit(DRILL_CRASH_EXIT_CODE);
            }
            Some(Drill::DelayJobs(delay)) => self.runtime.sleep(delay).await,
            None => {}
        }
        let started = self.runtime.now();
        let answer = match self.run(body).await {
            Ok(outcome) => {
                tracing::info!(
                    ?inputs,
                    outputs = ?outcome.outputs.iter().map(|sst| sst.id).collect::<Vec<_>>(),
                    target_level,
                    input_bytes,
                    output_bytes = outcome.output_bytes(),
                    rows_read = outcome.rows_read,
                    rows_written = outcome.rows_written,
                    duration_ms = (self.runtime.now() - started).as_millis() as u64,
                    "job done"
                );
                Answer::Done(outcome)
            }
            Err(error) => {
                tracing::warn!(
                    ?inputs,
                    %error,
                    duration_ms = (self.runtime.now() - started).as_millis() as u64,
                    "job failed"
                );
                Answer::Failed(error.to_string())
            }
        };
        JobResponse::answer(&answer)
    }

    async fn run(&self, body: JobBody) -> Result<CompactionOutcome, CompactionError> {
        let table = self
            .table
            .get_or_try_init(|| async {
                let path = descriptor::DESCRIPTOR_PATH;
                let bytes = self.storage.read(path).await?;
                descriptor::decode(path, &bytes)
                    .map(Arc::new)
                    .map_err(|error| CompactionError::Executor(error.to_string()))
            })
            .await?;
        let executor = LocalExecutor::new(
            Arc::clone(&self.storage),
            Arc::clone(&self.runtime),
            Arc::clone(table),
            body.sst,
        );
        executor.run(body.job).await
    }
}
