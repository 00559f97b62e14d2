//! Wakers of simulated tasks.
//!
//! A waker names its task by id and reaches the runtime through a `Weak` pointer, so a waker
//! kept somewhere (a channel, a timer) never keeps a dropped runtime alive. Waking only marks
//! the task runnable; the scheduler decides when it runs.

use std::sync::{Arc, Weak};
use std::task::{Wake, Waker};

use crate::shared::Shared;

/// The waker of one simulated task (or of the main future, id 0).
#[derive(Debug)]
pub(crate) struct TaskWaker {
    task_id: u64,
    shared: Weak<Shared>,
}

impl TaskWaker {
    /// A waker that marks `task_id` runnable in `shared`.
    pub(crate) fn waker(task_id: u64, shared: &Arc<Shared>) -> Waker {
        Waker::from(Arc::new(Self {
            task_id,
            shared: Arc::downgrade(shared),
        }))
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A dropped runtime has nothing left to run.
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().scheduler.wake(self.task_id);
        }
    }
}
