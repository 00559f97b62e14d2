//! What the GC sweeper accepts.

use std::sync::Weak;

use crate::kernel::Reply;
use crate::sst::SstReader;

/// A message to the GC sweeper.
#[derive(Debug)]
pub enum GcMessage {
    /// These SSTs left the current version (or were never published): delete them once
    /// nothing holds them and the grace period has passed.
    Retired {
        /// The files.
        ssts: Vec<RetiredSst>,
    },
    /// Sweep now: delete what is due (or, for a dry run, only say what would be deleted).
    Sweep {
        /// Delete nothing; report only.
        dry_run: bool,
        /// What was (or would be) deleted, and what waits.
        reply: Reply<GcReport>,
    },
}

/// An SST that no version to come will name.
#[derive(Debug, Clone)]
pub struct RetiredSst {
    /// Its id.
    pub id: u64,
    /// Its reader as the last version naming it had it: the file is in use while this is
    /// alive. `None`: nothing reads it.
    pub pin: Option<Weak<SstReader>>,
    /// The file may never have been written (outputs of a failed job): its absence is fine.
    pub may_be_missing: bool,
}

/// What a sweep did or would do. Paths are relative to the database root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Files deleted by this sweep.
    pub deleted: Vec<String>,
    /// Files a dry run would delete now.
    pub deletable: Vec<String>,
    /// Unreachable files that must wait: still in use, within the grace period, or whose
    /// delete failed (retried).
    pub waiting: Vec<String>,
}
