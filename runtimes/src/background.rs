//! The background pool: threads for work that may wait while anything else wants a core.
//!
//! [`TokioRuntime`](crate::TokioRuntime) and [`SmolRuntime`](crate::SmolRuntime) hand
//! [`Runtime::spawn_background`](crate::Runtime::spawn_background) jobs to it. It is one pool per
//! process, started by the first job, with a thread per core; its threads run at the lowest
//! scheduling priority (on Linux, nice 19: the kernel gives them a core when no normal thread
//! wants it, and about 1.5% of one when one does). So compaction on a busy machine takes the time
//! the foreground leaves idle instead of halving it, and write backpressure — not the scheduler —
//! decides when the foreground must wait for it. Elsewhere the threads keep the default priority.
//!
//! Promises: every job runs exactly once, to the end, on a pool thread; a job that panics takes
//! no thread with it. If the OS refuses to start the pool's threads, jobs run on `fallback`
//! instead, so work is never lost.

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use crate::runtime::BlockingJob;

/// The pool's queue, once started (`None`: no thread could be started).
static POOL: OnceLock<Option<async_channel::Sender<BlockingJob>>> = OnceLock::new();

/// Runs `job` on a background thread, or through `fallback` when the pool has no thread.
pub(crate) fn spawn(job: BlockingJob, fallback: impl FnOnce(BlockingJob)) {
    match POOL.get_or_init(start) {
        // The queue is unbounded and its threads never drop the receiver, so a send fails only
        // when no thread is left; the job then runs on the fallback.
        Some(queue) => {
            if let Err(refused) = queue.try_send(job) {
                fallback(refused.into_inner());
            }
        }
        None => fallback(job),
    }
}

fn start() -> Option<async_channel::Sender<BlockingJob>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let (queue, jobs) = async_channel::unbounded::<BlockingJob>();
    let mut started = 0;
    for index in 0..threads {
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("damselfly-background-{index}"))
            .spawn(move || {
                lower_priority();
                while let Ok(job) = jobs.recv_blocking() {
                    // A job reports its own panic (RuntimeExt::run_background catches it); this
                    // only keeps the thread for the next job.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            });
        started += usize::from(spawned.is_ok());
    }
    (started > 0).then_some(queue)
}

/// Lowers the calling thread's scheduling priority as far as it goes. On Linux the nice value
/// belongs to the thread; a refusal leaves the thread at its priority, which is only slower.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(None, 19);
}
