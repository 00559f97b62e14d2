//! The task table and the seeded choice of which runnable task to poll next.
//!
//! Invariants:
//! - Task ids are handed out sequentially from 1; id 0 is the main future of `block_on`, which
//!   is never stored here but is scheduled like any other task.
//! - The runnable set is a `BTreeSet` of ids, and the next task is its `n`-th element for an `n`
//!   drawn uniformly by the scheduling RNG. Polling order therefore depends only on the seed and
//!   on the order of earlier events, never on hashing, addresses or the OS.
//! - Marking a task runnable is idempotent; waking a finished task does nothing.
//! - A task's future is taken out of its slot while it is polled, so user code never runs under
//!   the state lock; a future that has been taken out is put back, or dropped by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::task::Waker;

use damselfly_runtimes::BoxFuture;

/// The id of the main future driven by `block_on`.
pub(crate) const MAIN_TASK_ID: u64 = 0;

/// A spawned task: its name, its waker and (unless it is being polled) its future.
pub(crate) struct TaskSlot {
    name: String,
    waker: Waker,
    future: Option<BoxFuture<'static, ()>>,
}

impl fmt::Debug for TaskSlot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TaskSlot")
            .field("name", &self.name)
            .field("being_polled", &self.future.is_none())
            .finish_non_exhaustive()
    }
}

/// Spawned tasks, the set of runnable ones, and the RNG that picks among them.
#[derive(Debug)]
pub(crate) struct Scheduler {
    tasks: BTreeMap<u64, TaskSlot>,
    runnable: BTreeSet<u64>,
    next_task_id: u64,
    rng: fastrand::Rng,
}

impl Scheduler {
    /// An empty scheduler whose choices follow `rng_seed`.
    pub(crate) fn new(rng_seed: u64) -> Self {
        Self {
            tasks: BTreeMap::new(),
            runnable: BTreeSet::new(),
            next_task_id: MAIN_TASK_ID + 1,
            rng: fastrand::Rng::with_seed(rng_seed),
        }
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
            future: Some(future),
        };
        let previous = self.tasks.insert(task_id, slot);
        assert!(previous.is_none(), "task id {task_id} handed out twice");
        self.runnable.insert(task_id);
        task_id
    }

    /// Marks `task_id` runnable, if it is the main future or an unfinished task.
    pub(crate) fn wake(&mut self, task_id: u64) {
        if task_id == MAIN_TASK_ID || self.tasks.contains_key(&task_id) {
            self.runnable.insert(task_id);
        }
    }

    /// Removes and returns a runnable task chosen uniformly by the seeded RNG.
    pub(crate) fn pick_next(&mut self) -> Option<u64> {
        if self.runnable.is_empty() {
            return None;
        }
        let index = self.rng.usize(..self.runnable.len());
        let task_id = *self
            .runnable
            .iter()
            .nth(index)
            .expect("the index was drawn below the set's length");
        self.runnable.remove(&task_id);
        Some(task_id)
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
        self.runnable.remove(&task_id);
        self.tasks.remove(&task_id)
    }

    /// Removes every task, for `shutdown`, in id order.
    pub(crate) fn take_all(&mut self) -> BTreeMap<u64, TaskSlot> {
        self.runnable.retain(|&task_id| task_id == MAIN_TASK_ID);
        std::mem::take(&mut self.tasks)
    }

    /// Makes the main future runnable, as every `block_on` must poll its future once.
    pub(crate) fn schedule_main(&mut self) {
        self.runnable.insert(MAIN_TASK_ID);
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
