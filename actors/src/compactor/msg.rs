//! What the compactor accepts.

use std::sync::Arc;

use super::CompactionError;
use super::job::{CompactionJob, CompactionOutcome};
use crate::kernel::Reply;

/// A message to the compactor.
#[derive(Debug)]
pub enum CompactorMessage {
    /// The publisher installed a new version: there may be work to plan.
    VersionChanged,
    /// Compact until nothing is due, then answer (with the first failure, if a job failed).
    Compact {
        /// Answered once no job is due or running.
        reply: Reply<Result<(), Arc<CompactionError>>>,
    },
    /// A job's executor answered (the compactor sends this to itself from the job's task).
    Finished {
        /// The job.
        job: CompactionJob,
        /// What the executor made of it.
        result: Result<CompactionOutcome, CompactionError>,
    },
}
