//! Virtual-time timers and the `sleep` future.
//!
//! Invariants:
//! - A timer is keyed by (deadline, sequence number); sequence numbers are handed out in
//!   registration order, so timers due at the same instant fire in the order they were set.
//! - A `Sleep` registers its timer on its first poll (its deadline is measured from then) and
//!   unregisters it when dropped early, so a cancelled sleep never moves virtual time.
//! - A `Sleep` completes exactly when virtual time has reached its deadline; virtual time only
//!   moves forward, so once complete it stays complete.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::shared::Shared;
use crate::trace::{Event, Trace, nanos};

/// Where a timer sits in the timer queue: its deadline (since the clock's origin), then its
/// registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Duration,
    sequence: u64,
}

/// The pending timers of a runtime, ordered by deadline then sequence number.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeMap<TimerKey, Waker>,
    next_sequence: u64,
}

impl Timers {
    /// Registers a timer that wakes `waker` at `deadline`.
    fn insert(&mut self, deadline: Duration, waker: Waker) -> TimerKey {
        let key = TimerKey {
            deadline,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        self.queue.insert(key, waker);
        key
    }

    /// Replaces the waker of a pending timer, when the sleep moved to another task.
    fn update_waker(&mut self, key: TimerKey, waker: &Waker) {
        if let Some(stored) = self.queue.get_mut(&key)
            && !stored.will_wake(waker)
        {
            stored.clone_from(waker);
        }
    }

    /// Unregisters a timer. Returns its waker for the caller to drop outside the lock.
    fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        self.queue.remove(&key)
    }

    /// The earliest pending deadline.
    pub(crate) fn earliest_deadline(&self) -> Option<Duration> {
        self.queue.first_key_value().map(|(key, _)| key.deadline)
    }

    /// Removes every timer due at `now` or earlier, in (deadline, sequence) order, recording
    /// each in the trace. Returns their wakers, to be woken outside the lock.
    pub(crate) fn pop_due(&mut self, now: Duration, trace: &mut Trace) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().deadline > now {
                break;
            }
            let (key, waker) = entry.remove_entry();
            trace.record(Event::TimerFired {
                deadline_nanos: nanos(key.deadline),
                sequence: key.sequence,
            });
            wakers.push(waker);
        }
        wakers
    }
}

/// The future behind `Runtime::sleep` on a [`SimRuntime`](crate::SimRuntime).
#[derive(Debug)]
pub(crate) struct Sleep {
    shared: Weak<Shared>,
    duration: Duration,
    registration: Option<TimerKey>,
    done: bool,
}

impl Sleep {
    /// A sleep of `duration` virtual time, measured from its first poll.
    pub(crate) fn new(shared: &Arc<Shared>, duration: Duration) -> Self {
        Self {
            shared: Arc::downgrade(shared),
            duration,
            registration: None,
            done: duration.is_zero(),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        // Once the runtime is gone nothing can move its clock; the sleep never ends.
        let Some(shared) = this.shared.upgrade() else {
            return Poll::Pending;
        };
        let mut state = shared.lock();
        match this.registration {
            None => {
                let late = state.jitter.delay(this.duration);
                let deadline = state.now.saturating_add(this.duration).saturating_add(late);
                let key = state.timers.insert(deadline, context.waker().clone());
                this.registration = Some(key);
                Poll::Pending
            }
            Some(key) if state.now >= key.deadline => {
                // The timer fired (and left the queue) when time reached the deadline.
                this.registration = None;
                this.done = true;
                Poll::Ready(())
            }
            Some(key) => {
                state.timers.update_waker(key, context.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.registration.take()
            && let Some(shared) = self.shared.upgrade()
        {
            // Bound to a name so the waker is dropped after the guard, outside the lock.
            let waker = shared.lock().timers.remove(key);
            drop(waker);
        }
    }
}
