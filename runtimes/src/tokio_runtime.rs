//! [`TokioRuntime`]: the [`Runtime`] on a tokio runtime.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::runtime::{BlockingJob, BoxFuture, Instant, Runtime, SystemClocks};

/// Runs damselfly on tokio. Tasks go to the runtime's workers, blocking jobs to its blocking
/// pool, background jobs to damselfly's background pool (threads of the lowest priority; see
/// [`Runtime::spawn_background`]), and sleeps use its timer (build the runtime with
/// `enable_time()` or `enable_all()`).
///
/// Both the current-thread and the multi-thread tokio runtimes are supported.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: tokio::runtime::Handle,
    clocks: SystemClocks,
}

impl TokioRuntime {
    /// The tokio runtime this call runs on.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, like `tokio::runtime::Handle::current`; use
    /// [`TokioRuntime::try_current`] to get `None` instead.
    pub fn current() -> Self {
        match Self::try_current() {
            Some(runtime) => runtime,
            None => panic!("TokioRuntime::current() must be called from inside a tokio runtime"),
        }
    }

    /// The tokio runtime this call runs on, or `None` outside of one.
    pub fn try_current() -> Option<Self> {
        tokio::runtime::Handle::try_current()
            .ok()
            .map(Self::from_handle)
    }

    /// Runs on the tokio runtime behind `handle`.
    pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
        Self::with_parts(handle, fastrand::u64(..))
    }

    /// The same runtime with its random source reseeded, for reproducible runs.
    pub fn with_seed(self, seed: u64) -> Self {
        Self::with_parts(self.inner.handle.clone(), seed)
    }

    fn with_parts(handle: tokio::runtime::Handle, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                handle,
                clocks: SystemClocks::new(seed),
            }),
        }
    }
}

impl Runtime for TokioRuntime {
    fn spawn_boxed(&self, _name: &str, task: BoxFuture<'static, ()>) {
        // Dropping tokio's JoinHandle detaches the task.
        drop(self.inner.handle.spawn(task));
    }

    fn spawn_blocking(&self, job: BlockingJob) {
        drop(self.inner.handle.spawn_blocking(job));
    }

    fn spawn_background(&self, job: BlockingJob) {
        crate::background::spawn(job, |job| self.spawn_blocking(job));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
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
