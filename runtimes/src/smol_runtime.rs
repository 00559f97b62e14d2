//! [`SmolRuntime`]: the [`Runtime`] on smol.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::runtime::{BlockingJob, BoxFuture, Instant, Runtime, SystemClocks};

/// Runs damselfly on smol. Tasks go to smol's global executor (or to an executor you pass to
/// [`SmolRuntime::with_executor`]), blocking jobs to the `blocking` thread pool, background jobs
/// to damselfly's background pool (threads of the lowest priority; see
/// [`Runtime::spawn_background`]), and sleeps use `async-io` timers.
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Option<Arc<smol::Executor<'static>>>,
    clocks: SystemClocks,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmolRuntime")
            .field("own_executor", &self.executor.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SmolRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl SmolRuntime {
    /// Runs tasks on smol's global executor.
    pub fn new() -> Self {
        Self::with_parts(None, fastrand::u64(..))
    }

    /// Runs tasks on `executor`; the caller is responsible for driving it (for example with
    /// `executor.run(...)` on some threads).
    pub fn with_executor(executor: Arc<smol::Executor<'static>>) -> Self {
        Self::with_parts(Some(executor), fastrand::u64(..))
    }

    /// The same runtime with its random source reseeded, for reproducible runs.
    pub fn with_seed(self, seed: u64) -> Self {
        Self::with_parts(self.inner.executor.clone(), seed)
    }

    fn with_parts(executor: Option<Arc<smol::Executor<'static>>>, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                executor,
                clocks: SystemClocks::new(seed),
            }),
        }
    }
}

impl Runtime for SmolRuntime {
    fn spawn_boxed(&self, _name: &str, task: BoxFuture<'static, ()>) {
        match &self.inner.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }

    fn spawn_blocking(&self, job: BlockingJob) {
        smol::unblock(job).detach();
    }

    fn spawn_background(&self, job: BlockingJob) {
        crate::background::spawn(job, |job| self.spawn_blocking(job));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    fn now(&self) -> Instant {
        self.inner.clocks.now()
    }

    fn wall_clock(&self) -> SystemTime {
        self.inner.clocks.wall_clock()
    }

    fn random_u64(&self) -> u64 {
        self.inner.clocks.random_u64()
    }
}
