//! The state every handle, waker and timer of one simulated runtime shares.
//!
//! All mutable state sits behind one mutex. The lock is only ever held for short bookkeeping:
//! never while a future is polled, dropped or woken, because those run user code that may call
//! back into the runtime (spawn, sleep, wake) and would deadlock on a held lock. Nothing in here
//! is iterated in hash or address order: tasks and timers live in `BTreeMap`s keyed by sequential
//! numbers.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use damselfly_runtimes::{MemoryStorage, SeededRandom};

use crate::scheduler::{SchedulePolicy, Scheduler};
use crate::timer::Timers;
use crate::trace::{Event, Trace, nanos};

/// The stream number of the scheduling RNG, mixed into the seed.
const SCHEDULING_STREAM: u64 = 1;
/// The stream number of the RNG behind `Runtime::random_u64`, mixed into the seed.
const RANDOM_STREAM: u64 = 2;
/// The stream number of the RNG behind timer jitter, mixed into the seed.
const JITTER_STREAM: u64 = 3;

/// The default virtual-time budget of one `block_on`.
pub(crate) const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60 * 60);

/// What one simulated runtime shares between its handles, wakers and timers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The seed every random choice of the run derives from.
    pub(crate) seed: u64,
    /// The stream behind `Runtime::random_u64`, independent of scheduling.
    pub(crate) random: SeededRandom,
    /// The run's in-memory storage, handed out by `SimRuntime::storage`.
    pub(crate) storage: MemoryStorage,
    state: Mutex<State>,
}

/// The mutable part of a simulated runtime.
#[derive(Debug)]
pub(crate) struct State {
    /// Spawned tasks, the runnable set and the scheduling RNG.
    pub(crate) scheduler: Scheduler,
    /// Pending timers, ordered by deadline then sequence number.
    pub(crate) timers: Timers,
    /// Virtual time since the clock's origin.
    pub(crate) now: Duration,
    /// The fingerprint of every event so far.
    pub(crate) trace: Trace,
    /// How far virtual time may run during one `block_on`.
    pub(crate) time_limit: Duration,
    /// Whether a `block_on` is driving the runtime right now.
    pub(crate) running: bool,
    /// How late timers fire.
    pub(crate) jitter: TimerJitter,
    /// How often each probe was reached.
    pub(crate) probes: BTreeMap<&'static str, u64>,
}

/// Timers fire late by a random part of their duration, up to `percent` percent, as an OS's
/// timers do: sleeps started together do not always end in the order they were started.
#[derive(Debug)]
pub(crate) struct TimerJitter {
    pub(crate) percent: u8,
    rng: fastrand::Rng,
}

impl TimerJitter {
    /// The jitter `seed` draws: none for half of the seeds, up to 5% or 25% for the others.
    fn for_seed(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(derive_seed(seed, JITTER_STREAM));
        let percent = [0, 0, 5, 25][rng.usize(0..4)];
        Self { percent, rng }
    }

    /// How much later than `duration` a sleep of `duration` ends.
    pub(crate) fn delay(&mut self, duration: Duration) -> Duration {
        if self.percent == 0 {
            return Duration::ZERO;
        }
        let most = nanos(duration).saturating_mul(u64::from(self.percent)) / 100;
        Duration::from_nanos(self.rng.u64(0..=most))
    }
}

impl Shared {
    /// A fresh runtime state for `seed`, scheduling by `policy`, at virtual time zero.
    pub(crate) fn new(seed: u64, policy: SchedulePolicy) -> Self {
        let state = State {
            scheduler: Scheduler::new(derive_seed(seed, SCHEDULING_STREAM), policy),
            timers: Timers::default(),
            now: Duration::ZERO,
            trace: Trace::new(),
            time_limit: DEFAULT_TIME_LIMIT,
            running: false,
            jitter: TimerJitter::for_seed(seed),
            probes: BTreeMap::new(),
        };
        Self {
            seed,
            random: SeededRandom::with_seed(derive_seed(seed, RANDOM_STREAM)),
            storage: MemoryStorage::new(),
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A poisoned lock is recovered: the runtime never panics while holding it
    /// (panic messages are built, the guard dropped, then the panic raised), so poisoning can
    /// only come from a panic in a foreign call that left the plain-data state consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Moves virtual time forward to `target` (never backwards) and records the jump.
    pub(crate) fn advance_to(&mut self, target: Duration) {
        if target > self.now {
            self.now = target;
            self.trace.record(Event::TimeAdvanced {
                now_nanos: nanos(target),
            });
        }
    }

    /// The names of every unfinished task, for reports made while `block_on` runs: the main
    /// future first, then the spawned tasks in id order.
    pub(crate) fn pending_task_names(&self) -> String {
        let mut names = vec!["main (task 0)".to_owned()];
        names.extend(
            self.scheduler
                .task_names()
                .map(|(task_id, name)| format!("{name} (task {task_id})")),
        );
        names.join(", ")
    }
}

/// The seed of one independent RNG stream of a run, derived from the run's seed with `SplitMix64`
/// so that nearby seeds and streams give unrelated sequences.
fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut mixed = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed = mixed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}
