//! The `Runtime` trait: the engine's only door to tasks, time and randomness.
//!
//! The engine never calls tokio, smol or the OS clock directly. It asks a `Runtime`, which is
//! implemented by [`TokioRuntime`](crate::TokioRuntime), [`SmolRuntime`](crate::SmolRuntime),
//! the deterministic simulator, or by users for their own executor. The trait is object safe so
//! that a database handle can hold an `Arc<dyn Runtime>` and carry no type parameter.
//!
//! Implementors provide six primitives (and may place background work apart from blocking work,
//! [`Runtime::spawn_background`]); [`RuntimeExt`] builds the typed conveniences the engine
//! uses (`spawn` with a join handle, `run_blocking` and `run_background` with a result) on top
//! of them, once, so every runtime gets the same semantics: a join handle detaches on drop, and
//! a panic inside a task or a blocking job is reported as [`TaskError::Panicked`] instead of
//! unwinding into the caller.

use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_lite::{FutureExt, Stream};

/// A boxed, sendable future, as the object-safe parts of the runtime and storage traits take and
/// return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A blocking or CPU-heavy job handed to [`Runtime::spawn_blocking`].
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// An async executor with clocks and a seeded random source, as the engine sees it.
///
/// Implement the six required methods to run damselfly on your own executor. Everything else the
/// engine needs comes from [`RuntimeExt`], which is implemented for every `Runtime`.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Starts `task` in the background. `name` identifies the task in traces and in the
    /// simulator's reports. The task must run to completion even though nobody holds a handle.
    fn spawn_boxed(&self, name: &str, task: BoxFuture<'static, ()>);

    /// Runs `job` away from the async worker threads (a blocking thread pool). The simulator runs
    /// it inline, at the moment of the call.
    fn spawn_blocking(&self, job: BlockingJob);

    /// Runs `job` like [`spawn_blocking`](Runtime::spawn_blocking), as work that may wait while
    /// anything else wants a core — compaction, for instance. [`TokioRuntime`] and
    /// [`SmolRuntime`] run it on a pool of threads at the lowest scheduling priority; by
    /// default it is [`spawn_blocking`](Runtime::spawn_blocking), which the simulator keeps.
    ///
    /// [`TokioRuntime`]: crate::TokioRuntime
    /// [`SmolRuntime`]: crate::SmolRuntime
    fn spawn_background(&self, job: BlockingJob) {
        self.spawn_blocking(job);
    }

    /// A future that completes after `duration` has passed on this runtime's clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The runtime's monotonic clock.
    fn now(&self) -> Instant;

    /// The runtime's wall clock (virtual in the simulator).
    fn wall_clock(&self) -> SystemTime;

    /// The next value of the runtime's seeded random source.
    fn random_u64(&self) -> u64;

    /// Notes an event of the program — an actor handling its n-th message, for example — in the
    /// runtime's trace, if it keeps one: the simulator folds it into its trace hash, so that two
    /// runs of a seed are compared message by message. Does nothing by default.
    fn trace(&self, label: &str, value: u64) {
        let _ = (label, value);
    }

    /// Notes that the program reached a named point worth covering — a torn WAL tail ignored, a
    /// publish retried — if the runtime counts such points: the simulator counts each name per
    /// run, and its swarm reports the points no seed reached. Does nothing by default.
    fn probe(&self, name: &'static str) {
        let _ = name;
    }
}

/// A shared runtime is a runtime: `Arc<dyn Runtime>` can be passed wherever one is expected.
impl<R: Runtime + ?Sized> Runtime for std::sync::Arc<R> {
    fn spawn_boxed(&self, name: &str, task: BoxFuture<'static, ()>) {
        (**self).spawn_boxed(name, task);
    }

    fn spawn_blocking(&self, job: BlockingJob) {
        (**self).spawn_blocking(job);
    }

    fn spawn_background(&self, job: BlockingJob) {
        (**self).spawn_background(job);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn wall_clock(&self) -> SystemTime {
        (**self).wall_clock()
    }

    fn random_u64(&self) -> u64 {
        (**self).random_u64()
    }

    fn trace(&self, label: &str, value: u64) {
        (**self).trace(label, value);
    }

    fn probe(&self, name: &'static str) {
        (**self).probe(name);
    }
}

/// A point on a runtime's monotonic clock, measured from an origin the runtime chooses.
///
/// Unlike `std::time::Instant` this can be created by a virtual clock, which is what lets the
/// simulator run time forward deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    since_origin: Duration,
}

impl Instant {
    /// The instant `since_origin` after the runtime's clock origin.
    pub const fn from_origin(since_origin: Duration) -> Self {
        Self { since_origin }
    }

    /// The time elapsed from the clock's origin to this instant.
    pub const fn since_origin(self) -> Duration {
        self.since_origin
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.since_origin.saturating_sub(earlier.since_origin)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, duration: Duration) -> Instant {
        Instant {
            since_origin: self.since_origin.saturating_add(duration),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Why a spawned task or blocking job produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task panicked; the panic message is kept.
    #[error("task {task} panicked: {message}")]
    Panicked {
        /// The task's name.
        task: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The runtime dropped the task before it finished (for example while shutting down).
    #[error("task {task} was dropped before it finished")]
    Cancelled {
        /// The task's name.
        task: String,
    },
}

/// A handle to a task started with [`RuntimeExt::spawn`]. Awaiting it yields the task's output.
/// Dropping it detaches the task, which keeps running.
#[must_use = "dropping a JoinHandle detaches the task; await it to observe its result"]
pub struct JoinHandle<T> {
    task: String,
    // Boxed because the receiver is `!Unpin` and the handle should be freely movable.
    result: Pin<Box<async_channel::Receiver<Result<T, TaskError>>>>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("JoinHandle")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.result.as_mut().poll_next(context) {
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => Poll::Ready(Err(TaskError::Cancelled {
                task: this.task.clone(),
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Typed conveniences over any [`Runtime`]; implemented for every runtime, sized or not.
pub trait RuntimeExt: Runtime {
    /// Spawns a named task and returns a handle to its output. The handle detaches on drop.
    fn spawn<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (sender, receiver) = async_channel::bounded(1);
        let task = name.to_owned();
        let task_name = task.clone();
        self.spawn_boxed(
            name,
            Box::pin(async move {
                let result = AssertUnwindSafe(future)
                    .catch_unwind()
                    .await
                    .map_err(|payload| TaskError::Panicked {
                        task: task_name,
                        message: panic_message(payload.as_ref()),
                    });
                // The receiver may be gone: the handle was dropped and the task detached.
                let _ = sender.try_send(result);
            }),
        );
        JoinHandle {
            task,
            result: Box::pin(receiver),
        }
    }

    /// Runs `job` off the async threads and returns its result. A panic in `job` becomes
    /// [`TaskError::Panicked`].
    fn run_blocking<T, F>(&self, name: &str, job: F) -> BlockingResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        run_on(name, job, |job| self.spawn_blocking(job))
    }

    /// [`run_blocking`](RuntimeExt::run_blocking) through
    /// [`Runtime::spawn_background`]: for work that may wait while anything else wants a core.
    fn run_background<T, F>(&self, name: &str, job: F) -> BlockingResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        run_on(name, job, |job| self.spawn_background(job))
    }

    /// The wall clock in milliseconds since the Unix epoch (0 for a clock before it).
    fn wall_clock_ms(&self) -> u64 {
        self.wall_clock()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

impl<R: Runtime + ?Sized> RuntimeExt for R {}

/// Hands `job` to `spawn` wrapped so that its result, or its panic as
/// [`TaskError::Panicked`], comes back through the returned future.
fn run_on<T, F>(name: &str, job: F, spawn: impl FnOnce(BlockingJob)) -> BlockingResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (sender, receiver) = async_channel::bounded(1);
    let task = name.to_owned();
    let task_name = task.clone();
    spawn(Box::new(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(job)).map_err(|payload| {
            TaskError::Panicked {
                task: task_name,
                message: panic_message(payload.as_ref()),
            }
        });
        let _ = sender.try_send(result);
    }));
    BlockingResult(JoinHandle {
        task,
        result: Box::pin(receiver),
    })
}

/// The result of [`RuntimeExt::run_blocking`]: a future of the job's output.
#[must_use = "a blocking job's result is only observed by awaiting it"]
#[derive(Debug)]
pub struct BlockingResult<T>(JoinHandle<T>);

impl<T> Future for BlockingResult<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(context)
    }
}

/// The message a panic was raised with (its `&str` or `String` payload), for reports.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// A seeded random source shared by the threads of a runtime.
///
/// Production runtimes seed it from the OS unless the user fixes a seed; the simulator always
/// derives it from the run's seed.
#[derive(Debug)]
pub struct SeededRandom {
    rng: std::sync::Mutex<fastrand::Rng>,
}

impl SeededRandom {
    /// A random source that yields the same sequence for the same seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// The next value of the sequence.
    pub fn next_u64(&self) -> u64 {
        // A poisoned lock only means another thread panicked while drawing a number; the
        // generator's state is a plain integer and remains valid.
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rng.u64(..)
    }
}

/// The clocks and random source of a runtime on a real machine: a monotonic clock measured from
/// when the runtime handle was made, the system wall clock, and a seeded random source.
#[cfg(any(feature = "tokio", feature = "smol"))]
#[derive(Debug)]
pub(crate) struct SystemClocks {
    origin: std::time::Instant,
    random: SeededRandom,
}

#[cfg(any(feature = "tokio", feature = "smol"))]
impl SystemClocks {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            origin: std::time::Instant::now(),
            random: SeededRandom::with_seed(seed),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_origin(self.origin.elapsed())
    }

    pub(crate) fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    pub(crate) fn random_u64(&self) -> u64 {
        self.random.next_u64()
    }
}
