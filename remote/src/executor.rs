//! The remote executor: a [`CompactionExecutor`] that sends each job to a worker of a pool.
//!
//! For each job it looks the pool's workers up, asks one (round-robin over jobs), and moves on
//! to the next when one does not answer in time, is unreachable or refuses the job; it looks
//! the pool up again before giving up, so a worker started meanwhile is tried too. When no
//! worker takes the job, the [`Fallback`] decides: run it in this process, or fail it so that
//! the compactor retries after its back-off (waiting for a worker). A job that a worker ran and
//! failed (an unreadable input, a storage error) moves on to the other workers as well; if none
//! runs it, that failure — not the fallback, as the job would likely fail here too — goes to the
//! compactor, which retries later.
//!
//! None of this is trusted for safety. The compactor checks each outcome against its job and
//! the publisher publishes it only if every input is still live, so a late, duplicated or lost
//! answer only delays compaction; outputs nobody published are deleted by the GC sweeper (those
//! written after it gave up on the job, as orphans at the next open).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::Network;
use crate::client::{WorkerRef, find_workers};
use crate::protocol::{Answer, JobBody, JobRequest};
use crate::worker::DEFAULT_POOL;
use damselfly::compaction::{
    CompactionError, CompactionExecutor, CompactionJob, CompactionOutcome, ExecutorMetrics,
    LocalExecutor,
};
use damselfly::runtime::BoxFuture;

/// What to do with a job no worker took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Run it in this process (the default): compaction goes on without workers.
    #[default]
    Local,
    /// Fail it: the compactor retries after its back-off, so compaction waits for a worker and
    /// this process never spends its CPU on merges.
    Wait,
}

/// How the remote executor finds and asks workers.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pool: String,
    job_timeout: Duration,
    lookup_timeout: Duration,
    fallback: Fallback,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            pool: DEFAULT_POOL.to_owned(),
            job_timeout: Duration::from_secs(600),
            lookup_timeout: Duration::from_secs(5),
            fallback: Fallback::Local,
        }
    }
}

impl RemoteOptions {
    /// Sends jobs to the workers registered under `pool` (default
    /// [`DEFAULT_POOL`](crate::DEFAULT_POOL)).
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = pool.into();
        self
    }

    /// How long a worker has to answer a job (default ten minutes) before the job moves on to
    /// another worker. Set it well above the longest job: a job that times out runs again
    /// elsewhere, and the late answer is dropped.
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// How long looking up the pool's workers may take (default five seconds).
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.lookup_timeout = timeout;
        self
    }

    /// What to do with a job no worker took (default [`Fallback::Local`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }
}

/// Runs compaction jobs on remote workers; see the module docs.
#[derive(Debug, Clone)]
pub struct RemoteExecutor {
    network: &'static Network,
    local: LocalExecutor,
    options: RemoteOptions,
    metrics: Arc<ExecutorMetrics>,
    /// Where the next job starts in the list of workers (round-robin).
    next: Arc<AtomicUsize>,
}

/// Why no worker ran a job.
enum Missed {
    /// A worker ran it and failed.
    Failed(String),
    /// No worker took it (none found, none answered, all refused).
    NoWorker(String),
}

impl RemoteExecutor {
    /// An executor asking the workers of `options`' pool over `network`, falling back to
    /// `local` (the database's in-process executor, whose SST layout it also sends along).
    pub fn new(network: &'static Network, local: LocalExecutor, options: RemoteOptions) -> Self {
        Self {
            network,
            metrics: local.metrics(),
            local,
            options,
            next: Arc::default(),
        }
    }

    /// The factory [`DbBuilder::compaction_executor`](damselfly::DbBuilder::compaction_executor)
    /// takes: every database it opens compacts through workers of `options`' pool.
    pub fn factory(
        network: &'static Network,
        options: RemoteOptions,
    ) -> impl Fn(LocalExecutor) -> Arc<dyn CompactionExecutor> + Send + Sync + 'static {
        move |local| Arc::new(RemoteExecutor::new(network, local, options.clone()))
    }

    async fn run(&self, job: CompactionJob) -> Result<CompactionOutcome, CompactionError> {
        let missed = match self.run_remotely(&job).await {
            Ok(outcome) => {
                self.metrics.remote_jobs.add(1);
                return Ok(outcome);
            }
            Err(Missed::Failed(error)) => return Err(CompactionError::Executor(error)),
            Err(Missed::NoWorker(why)) => why,
        };
        match self.options.fallback {
            Fallback::Local => {
                tracing::info!(inputs = ?job.input_ids(), %missed, "compacting in this process");
                self.metrics.fallbacks.add(1);
                self.local.run(job).await
            }
            Fallback::Wait => Err(CompactionError::Executor(format!(
                "no compaction worker of pool {:?} took the job ({missed}); it is retried later",
                self.options.pool
            ))),
        }
    }

    /// Asks the pool's workers in turn until one runs the job.
    async fn run_remotely(&self, job: &CompactionJob) -> Result<CompactionOutcome, Missed> {
        let request = JobRequest::new(&JobBody {
            job: job.clone(),
            sst: self.local.sst_options().clone(),
        });
        let mut tried = BTreeSet::new();
        let mut last_miss = "no worker is registered".to_owned();
        let mut failed = None;
        // The second round finds workers that joined while the first ran.
        for _round in 0..2 {
            for worker in self.lookup().await {
                let peer = worker.peer_id();
                if !tried.insert(peer) {
                    continue;
                }
                if tried.len() > 1 {
                    self.metrics.failovers.add(1);
                }
                let answer = worker.ask(&request, self.options.job_timeout).await;
                match answer.map(|response| response.open()) {
                    Ok(Answer::Done(outcome)) => {
                        tracing::debug!(%peer, inputs = ?job.input_ids(), "a worker ran the job");
                        return Ok(outcome);
                    }
                    Ok(Answer::Failed(error)) => {
                        tracing::warn!(%peer, %error, "a worker failed the job");
                        failed = Some(format!("worker {peer} failed the job: {error}"));
                    }
                    Ok(Answer::Refused(reason)) => {
                        tracing::warn!(%peer, %reason, "a worker refused the job");
                        last_miss = format!("worker {peer} refused the job: {reason}");
                    }
                    Err(error) => {
                        tracing::warn!(%peer, %error, "a worker did not answer");
                        last_miss = format!("worker {peer} did not answer: {error}");
                    }
                }
            }
        }
        Err(match failed {
            Some(error) => Missed::Failed(error),
            None => Missed::NoWorker(last_miss),
        })
    }

    /// The pool's workers, in an order that starts one further along for every job; those this
    /// process is connected to first (a worker that died stays registered for a while, and
    /// costs a failed dial when asked).
    async fn lookup(&self) -> Vec<WorkerRef> {
        let mut workers = find_workers(
            self.network,
            &self.options.pool,
            self.options.lookup_timeout,
        )
        .await;
        if !workers.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % workers.len();
            workers.rotate_left(start);
        }
        workers.sort_by_key(|worker| !self.network.is_connected(&worker.peer_id()));
        workers
    }
}

impl CompactionExecutor for RemoteExecutor {
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, CompactionError>> {
        let executor = self.clone();
        Box::pin(async move { executor.run(job).await })
    }
}
