//! A simulated remote compaction executor: jobs go through the `CompactionExecutor` port as
//! they would to a worker in another process (the simulator cannot run libp2p), and the seed
//! decides what goes wrong on the way: answers that come late, answers lost after the job ran,
//! and second runs of the same job by another worker whose answers go nowhere.
//!
//! The worker runs in this process on the incarnation's storage handle, so it dies with the
//! process (a real worker outlives it; its late writes are what `RemoteDuplicate` models while
//! the process lives).

use std::sync::Arc;

use damselfly::compaction::{
    CompactionError, CompactionExecutor, CompactionJob, CompactionOutcome, LocalExecutor,
};
use damselfly::runtime::{BoxFuture, Runtime};

use crate::faults::SimStorage;

#[derive(Debug)]
pub(super) struct SimRemoteExecutor {
    pub(super) local: LocalExecutor,
    pub(super) storage: SimStorage,
    pub(super) runtime: Arc<dyn Runtime>,
}

impl CompactionExecutor for SimRemoteExecutor {
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, CompactionError>> {
        let (local, runtime) = (self.local.clone(), Arc::clone(&self.runtime));
        let faults = self
            .storage
            .remote_faults(&format!("compaction of {:?}", job.input_ids()));
        Box::pin(async move {
            if let Some(start_after) = faults.duplicate {
                let (twin, twin_job, clock) = (local.clone(), job.clone(), Arc::clone(&runtime));
                // Detached: nobody hears the twin's answer.
                runtime.spawn_boxed(
                    "sim.remote_twin",
                    Box::pin(async move {
                        clock.sleep(start_after).await;
                        let _ = twin.run(twin_job).await;
                    }),
                );
            }
            let outcome = local.run(job).await;
            if let Some(delay) = faults.delay {
                runtime.sleep(delay).await;
            }
            if faults.answer_lost {
                return Err(CompactionError::Executor(
                    "the remote worker's answer was lost".to_owned(),
                ));
            }
            outcome
        })
    }
}
