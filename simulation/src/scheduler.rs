//! The task table and the seeded choice of which runnable task to poll next.
//!
//! Invariants:
//! - Task ids are handed out sequentially from 1; id 0 is the main future of `block_on`, which
//!   is never stored here but is scheduled like any other task.
//! - The runnable set is a `BTreeSet` of ids, plus the order in which tasks became runnable. The
//!   next task is chosen by the run's [`SchedulePolicy`] — uniformly at random, by PCT-style
//!   priorities, or first-in first-out — from the scheduling RNG and these two orders only.
//!   Polling order therefore depends only on the seed and on the order of earlier events, never
//!   on hashing, addresses or the OS.
//! - Marking a task runnable is idempotent; waking a finished task does nothing.
//! - A task's future is taken out of its slot while it is polled, so user code never runs under
//!   the state lock; a future that has been taken out is put back, or dropped by the caller.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::task::Waker;

use damselfly_runtimes::BoxFuture;

/// The id of the main future driven by `block_on`.
pub(crate) const MAIN_TASK_ID: u64 = 0;

/// How the scheduler picks the next task among the runnable ones.
///
/// [`SimRuntime::new`](crate::SimRuntime::new) chooses one from the seed
/// ([`SchedulePolicy::for_seed`]), so that a swarm of seeds explores all of them;
/// [`SimRuntime::with_policy`](crate::SimRuntime::with_policy) fixes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// Uniformly at random among the runnable tasks.
    Random,
    /// Priorities in the style of PCT (probabilistic concurrency testing): every task gets a
    /// random priority when it is spawned and the runnable task of highest priority runs; after
    /// each poll, with probability one in `change_one_in`, the task just polled drops below every
    /// other. Long stretches of one task running ahead of the others reach interleavings that
    /// uniform choice almost never does. A task that stays runnable and is chosen
    /// [`PCT_STARVATION_POLLS`] times in a row while others wait is dropped too, so that a task
    /// that yields in a loop cannot keep the others from running forever.
    Pct {
        /// One in how many polls changes a priority (at least 1).
        change_one_in: u32,
    },
    /// In the order tasks became runnable: the schedule of an ordinary executor, for debugging.
    Fifo,
}

/// Polls in a row after which PCT drops a task that other runnable tasks wait behind.
pub const PCT_STARVATION_POLLS: u32 = 64;

impl SchedulePolicy {
    /// The policy of `seed`'s run: uniform 45% of the time, PCT 45% (one change in 16, 128, 1,024
    /// or 8,192 polls), FIFO 10%.
    #[must_use]
    pub fn for_seed(seed: u64) -> SchedulePolicy {
        let mut rng = fastrand::Rng::with_seed(seed ^ POLICY_STREAM);
        match rng.u8(0..20) {
            0..9 => SchedulePolicy::Random,
            9..18 => SchedulePolicy::Pct {
                change_one_in: [16, 128, 1024, 8192][rng.usize(0..4)],
            },
            _ => SchedulePolicy::Fifo,
        }
    }
}

/// Mixed into the seed for the choice of policy, so that it is independent of the other draws.
const POLICY_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// A spawned task: its name, its waker, its priority (for PCT) and (unless it is being polled)
/// its future.
pub(crate) struct TaskSlot {
    name: String,
    waker: Waker,
    priority: u64,
    future: Option<BoxFuture<'static, ()>>,
}

impl fmt::Debug for TaskSlot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TaskSlot")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("being_polled", &self.future.is_none())
            .finish_non_exhaustive()
    }
}

/// Spawned tasks, the set of runnable ones, and the RNG that picks among them.
#[derive(Debug)]
pub(crate) struct Scheduler {
    tasks: BTreeMap<u64, TaskSlot>,
    runnable: BTreeSet<u64>,
    /// The runnable tasks in the order they became runnable (for FIFO).
    arrivals: VecDeque<u64>,
    next_task_id: u64,
    rng: fastrand::Rng,
    policy: SchedulePolicy,
    /// The main future's priority (for PCT).
    main_priority: u64,
    /// The next priority given to a task PCT drops: below every priority given before.
    next_low_priority: u64,
    /// The task polled last and how many times in a row.
    streak: (u64, u32),
}

/// Priorities drawn at spawn lie above this; dropped tasks get the ones below, counting down.
const LOW_PRIORITIES: u64 = 1 << 32;

impl Scheduler {
    /// An empty scheduler whose choices follow `policy` and `rng_seed`.
    pub(crate) fn new(rng_seed: u64, policy: SchedulePolicy) -> Self {
        let mut rng = fastrand::Rng::with_seed(rng_seed);
        let main_priority = rng.u64(LOW_PRIORITIES..);
        Self {
            tasks: BTreeMap::new(),
            runnable: BTreeSet::new(),
            arrivals: VecDeque::new(),
            next_task_id: MAIN_TASK_ID + 1,
            rng,
            policy,
            main_priority,
            next_low_priority: LOW_PRIORITIES - 1,
            streak: (MAIN_TASK_ID, 0),
        }
    }

    /// The policy choosing the next task.
    pub(crate) fn policy(&self) -> SchedulePolicy {
        self.policy
    }

    /// Registers a task under the next sequential id, runnable at once, and returns the id.
    /// `make_waker` builds the waker of that id.
    pub(crate) fn insert(
        &mut self,
        name: &str,
        make_waker: impl FnOnce(u64) -> Waker,
        future: BoxFuture<'static, ()>,
    ) -> u64 {
        let task_id = self.next_task_id;
        self.next_task_id += 1;
        let slot = TaskSlot {
            name: name.to_owned(),
            waker: make_waker(task_id),
            // Drawn for every policy, so that the other draws do not depend on the policy.
            priority: self.rng.u64(LOW_PRIORITIES..),
            future: Some(future),
        };
        let previous = self.tasks.insert(task_id, slot);
        assert!(previous.is_none(), "task id {task_id} handed out twice");
        self.make_runnable(task_id);
        task_id
    }

    /// Marks `task_id` runnable, if it is the main future or an unfinished task.
    pub(crate) fn wake(&mut self, task_id: u64) {
        if task_id == MAIN_TASK_ID || self.tasks.contains_key(&task_id) {
            self.make_runnable(task_id);
        }
    }

    fn make_runnable(&mut self, task_id: u64) {
        if self.runnable.insert(task_id) {
            self.arrivals.push_back(task_id);
        }
    }

    /// Removes and returns the runnable task the policy chooses.
    pub(crate) fn pick_next(&mut self) -> Option<u64> {
        if self.runnable.is_empty() {
            return None;
        }
        let task_id = match self.policy {
            SchedulePolicy::Random => {
                let index = self.rng.usize(..self.runnable.len());
                *self
                    .runnable
                    .iter()
                    .nth(index)
                    .expect("the index was drawn below the set's length")
            }
            SchedulePolicy::Pct { change_one_in } => self.pick_by_priority(change_one_in),
            SchedulePolicy::Fifo => *self
                .arrivals
                .front()
                .expect("every runnable task has arrived"),
        };
        self.runnable.remove(&task_id);
        self.arrivals.retain(|&arrived| arrived != task_id);
        Some(task_id)
    }

    /// PCT: the runnable task of highest priority (ties, which are unlikely, to the lower id),
    /// then maybe a priority change for it.
    fn pick_by_priority(&mut self, change_one_in: u32) -> u64 {
        let task_id = *self
            .runnable
            .iter()
            .max_by_key(|&&task_id| (self.priority(task_id), std::cmp::Reverse(task_id)))
            .expect("the runnable set is not empty");
        let streak = match self.streak {
            (last, polls) if last == task_id => polls + 1,
            _ => 1,
        };
        self.streak = (task_id, streak);
        let starving = streak >= PCT_STARVATION_POLLS && self.runnable.len() > 1;
        if self.rng.u32(..change_one_in.max(1)) == 0 || starving {
            let low = self.next_low_priority;
            self.next_low_priority = self.next_low_priority.saturating_sub(1);
            self.set_priority(task_id, low);
            self.streak = (task_id, 0);
        }
        task_id
    }

    fn priority(&self, task_id: u64) -> u64 {
        match task_id {
            MAIN_TASK_ID => self.main_priority,
            _ => self.tasks.get(&task_id).map_or(0, |slot| slot.priority),
        }
    }

    fn set_priority(&mut self, task_id: u64, priority: u64) {
        match task_id {
            MAIN_TASK_ID => self.main_priority = priority,
            _ => {
                if let Some(slot) = self.tasks.get_mut(&task_id) {
                    slot.priority = priority;
                }
            }
        }
    }

    /// Takes a task's future out of its slot for polling, with the task's waker. `None` when
    /// the task has finished or was dropped since it was woken.
    pub(crate) fn take_future(&mut self, task_id: u64) -> Option<(BoxFuture<'static, ()>, Waker)> {
        let slot = self.tasks.get_mut(&task_id)?;
        let future = slot.future.take()?;
        Some((future, slot.waker.clone()))
    }

    /// Puts a polled, still pending future back. When the task was dropped meanwhile (a
    /// `shutdown` from inside the task), the future is handed back for the caller to drop
    /// outside the lock.
    pub(crate) fn restore_future(
        &mut self,
        task_id: u64,
        future: BoxFuture<'static, ()>,
    ) -> Option<BoxFuture<'static, ()>> {
        match self.tasks.get_mut(&task_id) {
            Some(slot) => {
                assert!(
                    slot.future.is_none(),
                    "task {task_id} was polled twice at once"
                );
                slot.future = Some(future);
                None
            }
            None => Some(future),
        }
    }

    /// Forgets a finished task. Returns its slot for the caller to drop outside the lock.
    pub(crate) fn remove(&mut self, task_id: u64) -> Option<TaskSlot> {
        if self.runnable.remove(&task_id) {
            self.arrivals.retain(|&arrived| arrived != task_id);
        }
        self.tasks.remove(&task_id)
    }

    /// Removes every task, for `shutdown`, in id order.
    pub(crate) fn take_all(&mut self) -> BTreeMap<u64, TaskSlot> {
        self.runnable.retain(|&task_id| task_id == MAIN_TASK_ID);
        self.arrivals.retain(|&task_id| task_id == MAIN_TASK_ID);
        std::mem::take(&mut self.tasks)
    }

    /// Makes the main future runnable, as every `block_on` must poll its future once.
    pub(crate) fn schedule_main(&mut self) {
        self.make_runnable(MAIN_TASK_ID);
    }

    /// How many spawned tasks have not finished.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The ids and names of the unfinished spawned tasks, in id order.
    pub(crate) fn task_names(&self) -> impl Iterator<Item = (u64, &str)> {
        self.tasks
            .iter()
            .map(|(&task_id, slot)| (task_id, slot.name.as_str()))
    }
}
