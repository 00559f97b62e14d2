//! `SimRuntime`: the public handle of the deterministic runtime and its `Runtime` impl.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use damselfly_runtimes::{
    BlockingJob, BoxFuture, HookedStorage, Instant, MemoryStorage, Runtime, StorageCall,
    StorageError, StorageErrorKind, StorageHook,
};

use crate::executor;
use crate::scheduler::SchedulePolicy;
use crate::shared::Shared;
use crate::timer::Sleep;
use crate::trace::Event;
use crate::waker::TaskWaker;

/// The virtual wall clock at virtual time zero: 2023-11-14T22:13:20Z.
const WALL_CLOCK_ORIGIN_SECS: u64 = 1_700_000_000;

/// A deterministic, single-threaded runtime whose scheduling, time and randomness all follow
/// one seed.
///
/// Cloning is cheap and every clone is a handle to the same runtime. See the
/// [crate documentation](crate) for how to use it and how to replay a run.
#[derive(Clone)]
pub struct SimRuntime {
    shared: Arc<Shared>,
}

impl SimRuntime {
    /// A runtime at virtual time zero whose every choice derives from `seed`, including its
    /// [scheduling policy](SchedulePolicy::for_seed).
    #[must_use]
    pub fn new(seed: u64) -> SimRuntime {
        SimRuntime::with_policy(seed, SchedulePolicy::for_seed(seed))
    }

    /// A runtime like [`SimRuntime::new`] that schedules by `policy` whatever the seed: for
    /// example [`SchedulePolicy::Fifo`] to replay a failure in an order easier to follow.
    #[must_use]
    pub fn with_policy(seed: u64, policy: SchedulePolicy) -> SimRuntime {
        SimRuntime {
            shared: Arc::new(Shared::new(seed, policy)),
        }
    }

    /// Keeps a readable line for every event of the trace from now on (see
    /// [`SimRuntime::event_log`]): slower and memory-hungry, for finding where two runs of one
    /// seed part ways with [`first_divergence`](crate::first_divergence).
    #[must_use]
    pub fn with_event_log(self) -> SimRuntime {
        self.shared.lock().trace.keep_log();
        self
    }

    /// Every event recorded since [`SimRuntime::with_event_log`], one line each, numbered by its
    /// place in the trace; empty without it.
    #[must_use]
    pub fn event_log(&self) -> Vec<String> {
        self.shared.lock().trace.log().to_vec()
    }

    /// Makes timers fire late by up to `percent` percent of their duration, at random (0: on
    /// time). Each seed draws a jitter of its own (none for half of the seeds, up to 5% or 25%
    /// for the others); fix it with this for tests that check exact virtual times.
    #[must_use]
    pub fn with_timer_jitter(self, percent: u8) -> SimRuntime {
        self.shared.lock().jitter.percent = percent;
        self
    }

    /// The timer jitter, in percent of a sleep's duration.
    #[must_use]
    pub fn timer_jitter(&self) -> u8 {
        self.shared.lock().jitter.percent
    }

    /// The run's [storage](SimRuntime::storage), with every call — operation, path, offset,
    /// length — and its outcome folded into the trace, so that two runs of a seed are compared
    /// storage call by storage call.
    #[must_use]
    pub fn traced_storage(&self) -> HookedStorage {
        let hook = TraceHook::new(self.downgrade());
        HookedStorage::new(Arc::new(self.storage()), Arc::new(hook))
    }

    /// A weak handle on the runtime's state, for storage that lives in the runtime's own tasks.
    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    /// The policy choosing which runnable task to poll next.
    #[must_use]
    pub fn policy(&self) -> SchedulePolicy {
        self.shared.lock().scheduler.policy()
    }

    /// The run's storage: in memory, with the durability model of [`MemoryStorage`] (unsynced
    /// writes can be lost with [`MemoryStorage::simulate_power_loss`]). Its operations complete at
    /// once, so they add no nondeterminism. Every call returns a handle to the same files, so a
    /// database can be closed, or dropped as in a crash, and reopened on it within one run:
    /// `DbBuilder::on_storage(Arc::new(sim.storage()))`.
    #[must_use]
    pub fn storage(&self) -> MemoryStorage {
        self.shared.storage.clone()
    }

    /// The seed this runtime was created with; `SimRuntime::new(seed)` replays the run.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// Sets how far virtual time may run during one [`block_on`](Self::block_on) (one hour by
    /// default) before the watchdog stops the run with a panic. The limit applies to this
    /// runtime and all its handles.
    #[must_use]
    pub fn with_time_limit(self, time_limit: Duration) -> SimRuntime {
        self.shared.lock().time_limit = time_limit;
        self
    }

    /// How far virtual time may run during one [`block_on`](Self::block_on).
    #[must_use]
    pub fn time_limit(&self) -> Duration {
        self.shared.lock().time_limit
    }

    /// Runs `future`, and every task spawned on this runtime, on the calling thread until
    /// `future` completes, and returns its output.
    ///
    /// Tasks still pending when it returns stay in the runtime and continue at the next
    /// `block_on` (or are dropped by [`shutdown`](Self::shutdown)). `future` need not be `Send`.
    ///
    /// # Panics
    ///
    /// - when called while this runtime is already running, e.g. from inside one of its tasks;
    /// - when the run is stuck: `future` is pending, no task is runnable and no timer is set;
    /// - when the next timer lies past the [time limit](Self::with_time_limit);
    /// - when `future` or a task spawned with [`Runtime::spawn_boxed`] panics (tasks spawned with
    ///   `RuntimeExt::spawn` report their panics through their handles instead).
    ///
    /// Every one of these messages names the seed.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        executor::block_on(&self.shared, future)
    }

    /// Drops every unfinished spawned task, running its future's destructors.
    ///
    /// A task that holds a clone of its runtime (the usual case) forms a reference cycle with
    /// it: the runtime owns the task, the task owns the runtime. Call `shutdown` when a
    /// simulated run is over to break those cycles and free the memory. The dropped tasks'
    /// sleeps unregister their timers as they are dropped. Destructors that spawn new tasks are
    /// handled: those tasks are dropped too, unpolled. Called from inside a task, the calling
    /// task is dropped as well once its current poll returns; the main future of a running
    /// `block_on` is not a spawned task and is left alone.
    pub fn shutdown(&self) {
        loop {
            let tasks = {
                let mut state = self.shared.lock();
                let tasks = state.scheduler.take_all();
                for &task_id in tasks.keys() {
                    state.trace.record(Event::Dropped { task_id });
                }
                tasks
            };
            if tasks.is_empty() {
                return;
            }
            // In id order, outside the lock: destructors may call back into the runtime.
            for (_, task) in tasks {
                drop(task);
            }
        }
    }

    /// The hash of every event of the run so far: tasks spawned, polled, completed and dropped,
    /// time advanced, timers fired, and [`record`](Self::record)ed application events. Two runs
    /// with the same seed and the same program end with the same hash.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.shared.lock().trace.hash()
    }

    /// How many events [`trace_hash`](Self::trace_hash) covers.
    #[must_use]
    pub fn event_count(&self) -> u64 {
        self.shared.lock().trace.event_count()
    }

    /// Mixes an application event into the trace hash.
    ///
    /// The engine's simulated storage and message layers call this for what they observe
    /// (a write of so many bytes, a message delivered), so that a divergence between two runs
    /// of one seed is caught at the first event that differs, not only when scheduling does.
    pub fn record(&self, label: &str, value: u64) {
        self.shared
            .lock()
            .trace
            .record(Event::Application { label, value });
    }

    /// How often each probe ([`Runtime::probe`]) was reached so far, by name.
    #[must_use]
    pub fn probe_hits(&self) -> BTreeMap<&'static str, u64> {
        self.shared.lock().probes.clone()
    }

    /// How many spawned tasks have not finished (the main future of `block_on` not counted).
    #[must_use]
    pub fn task_count(&self) -> usize {
        self.shared.lock().scheduler.task_count()
    }
}

impl fmt::Debug for SimRuntime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        formatter
            .debug_struct("SimRuntime")
            .field("seed", &self.shared.seed)
            .field("policy", &state.scheduler.policy())
            .field("now", &state.now)
            .field("task_count", &state.scheduler.task_count())
            .field("event_count", &state.trace.event_count())
            .finish_non_exhaustive()
    }
}

impl Runtime for SimRuntime {
    fn spawn_boxed(&self, name: &str, task: BoxFuture<'static, ()>) {
        let make_waker = |task_id| TaskWaker::waker(task_id, &self.shared);
        let mut state = self.shared.lock();
        let task_id = state.scheduler.insert(name, make_waker, task);
        state.trace.record(Event::Spawned { task_id, name });
    }

    /// Runs `job` inline, at the moment of the call, on the calling thread.
    fn spawn_blocking(&self, job: BlockingJob) {
        job();
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(Sleep::new(&self.shared, duration))
    }

    fn now(&self) -> Instant {
        Instant::from_origin(self.shared.lock().now)
    }

    /// `UNIX_EPOCH` + 1,700,000,000 s + the virtual time elapsed since the origin.
    fn wall_clock(&self) -> SystemTime {
        let elapsed = self.shared.lock().now;
        UNIX_EPOCH + Duration::from_secs(WALL_CLOCK_ORIGIN_SECS) + elapsed
    }

    fn random_u64(&self) -> u64 {
        self.shared.random.next_u64()
    }

    fn trace(&self, label: &str, value: u64) {
        self.record(label, value);
    }

    /// Counts the probe and folds it into the trace.
    fn probe(&self, name: &'static str) {
        let mut state = self.shared.lock();
        let hits = state.probes.entry(name).or_default();
        *hits += 1;
        let value = *hits;
        state
            .trace
            .record(Event::Application { label: name, value });
    }
}

/// Folds every call of a traced storage into its runtime's trace. Holds the runtime weakly: the
/// storage lives in tasks the runtime owns.
#[derive(Debug)]
pub(crate) struct TraceHook {
    shared: Weak<Shared>,
}

impl TraceHook {
    pub(crate) fn new(shared: Weak<Shared>) -> TraceHook {
        TraceHook { shared }
    }
}

impl StorageHook for TraceHook {
    fn after(
        &self,
        call: StorageCall<'_>,
        outcome: Result<u64, StorageErrorKind>,
    ) -> Result<(), StorageError> {
        if let Some(shared) = self.shared.upgrade() {
            let (call, outcome) = (format!("{call:?}"), format!("{outcome:?}"));
            shared.lock().trace.record(Event::Storage {
                call: &call,
                outcome: &outcome,
            });
        }
        Ok(())
    }
}
