//! The loop that drives a simulated run: poll a runnable task, or move time to the next timer.
//!
//! Invariants:
//! - Exactly one thread drives a runtime at a time, and never re-entrantly: `block_on` from
//!   inside a task panics.
//! - Each step either polls one task chosen by the seeded scheduler, or (when nothing is
//!   runnable) jumps virtual time to the earliest timer and fires every timer due then, in
//!   (deadline, sequence) order. Nothing else decides what happens next.
//! - No future is polled, dropped or woken while the state lock is held.
//! - A run that cannot progress (nothing runnable, no timer) panics as stuck; a run whose next
//!   timer lies past the virtual-time limit panics as a runaway. Both name the seed and the
//!   pending tasks.
//! - A panic escaping a spawned task's future propagates out of `block_on`; the task is
//!   removed first, so the runtime stays consistent.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::scheduler::MAIN_TASK_ID;
use crate::shared::{Shared, State};
use crate::trace::Event;
use crate::waker::TaskWaker;

/// Runs `future` and every spawned task on the calling thread until `future` completes.
pub(crate) fn block_on<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    let _running = RunningGuard::enter(shared);
    let time_limit_at = {
        let mut state = shared.lock();
        state.scheduler.schedule_main();
        state.now.saturating_add(state.time_limit)
    };
    let main_waker = TaskWaker::waker(MAIN_TASK_ID, shared);
    let mut main_context = Context::from_waker(&main_waker);
    let mut main = pin!(future);
    loop {
        match next_task(shared, time_limit_at) {
            MAIN_TASK_ID => {
                if let Poll::Ready(output) = main.as_mut().poll(&mut main_context) {
                    let mut state = shared.lock();
                    state.trace.record(Event::Completed {
                        task_id: MAIN_TASK_ID,
                    });
                    return output;
                }
            }
            task_id => poll_task(shared, task_id),
        }
    }
}

/// The next task to poll, moving virtual time forward as often as needed to find one.
fn next_task(shared: &Shared, time_limit_at: Duration) -> u64 {
    loop {
        let due_wakers = {
            let mut state = shared.lock();
            if let Some(task_id) = state.scheduler.pick_next() {
                state.trace.record(Event::Polled { task_id });
                return task_id;
            }
            fire_next_timers(shared, state, time_limit_at)
        };
        for waker in due_wakers {
            waker.wake();
        }
    }
}

/// Jumps virtual time to the earliest timer and takes the wakers of every timer due then.
/// Panics when there is no timer (stuck) or it lies past `time_limit_at` (runaway).
fn fire_next_timers(
    shared: &Shared,
    mut state: std::sync::MutexGuard<'_, State>,
    time_limit_at: Duration,
) -> Vec<Waker> {
    let Some(deadline) = state.timers.earliest_deadline() else {
        let message = stuck_message(shared.seed, &state);
        drop(state);
        panic!("{message}");
    };
    if deadline > time_limit_at {
        let message = runaway_message(shared.seed, &state, deadline, time_limit_at);
        drop(state);
        panic!("{message}");
    }
    state.advance_to(deadline);
    let State { timers, trace, .. } = &mut *state;
    timers.pop_due(deadline, trace)
}

/// Polls one spawned task, then puts it back (pending) or forgets it (finished or panicked).
fn poll_task(shared: &Shared, task_id: u64) {
    let taken = shared.lock().scheduler.take_future(task_id);
    let Some((mut future, waker)) = taken else {
        return;
    };
    let mut context = Context::from_waker(&waker);
    let outcome = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut context)));
    match outcome {
        Ok(Poll::Pending) => {
            let orphan = shared.lock().scheduler.restore_future(task_id, future);
            drop(orphan);
        }
        Ok(Poll::Ready(())) => {
            let slot = {
                let mut state = shared.lock();
                state.trace.record(Event::Completed { task_id });
                state.scheduler.remove(task_id)
            };
            drop(slot);
            drop(future);
        }
        Err(payload) => {
            let slot = shared.lock().scheduler.remove(task_id);
            drop(slot);
            drop(future);
            resume_unwind(payload);
        }
    }
}

fn stuck_message(seed: u64, state: &State) -> String {
    format!(
        "simulation is stuck at virtual time {now:?}: deadlock, no task can make progress \
         (nothing is runnable and no timer is pending). seed: {seed}. pending tasks: {tasks}. \
         Replay with SimRuntime::new({seed}).",
        now = state.now,
        tasks = state.pending_task_names(),
    )
}

fn runaway_message(seed: u64, state: &State, deadline: Duration, limit: Duration) -> String {
    format!(
        "simulation watchdog: virtual time would pass its limit of {limit:?} (now {now:?}, next \
         timer at {deadline:?}); a task may be ticking forever. seed: {seed}. pending tasks: \
         {tasks}. Raise the limit with SimRuntime::with_time_limit if the run is meant to be \
         this long; replay with SimRuntime::new({seed}).",
        now = state.now,
        tasks = state.pending_task_names(),
    )
}

/// Marks the runtime as driven for the life of one `block_on`, also when it unwinds.
struct RunningGuard<'a> {
    shared: &'a Shared,
}

impl<'a> RunningGuard<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let already_running = std::mem::replace(&mut shared.lock().running, true);
        assert!(
            !already_running,
            "SimRuntime::block_on called while this runtime is already running (re-entrantly \
             from inside a simulated task, or from another thread); a simulated task must \
             .await instead (seed: {seed})",
            seed = shared.seed
        );
        Self { shared }
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().running = false;
    }
}
