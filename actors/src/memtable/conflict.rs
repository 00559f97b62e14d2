//! The memtable actor's part of a transaction's conflict check.
//!
//! First committer wins: a transaction may commit only if no key it writes has a version
//! committed after its snapshot. The committer checks the SSTs of a read view on its own task
//! (that takes I/O, which the actor must not wait for); the actor then checks its memtables
//! while it orders the commit, so no commit can slip in between. Together they cover every
//! commit as long as no memtable of that read view has been dropped since: its commits would be
//! in an SST the committer did not see. The actor refuses such a commit as
//! [`CommitRefused::ViewOutdated`], and the committer checks again with a newer view.

use std::sync::Arc;

use super::index::Memtable;
use super::write::PreparedWrite;
use crate::timestamp::Timestamp;

/// What a transaction's commit asks the memtable actor to check before ordering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictCheck {
    /// The transaction's snapshot: no key it writes may have a newer version.
    pub read_at: Timestamp,
    /// The oldest memtable of the read view whose SSTs the committer checked.
    pub oldest_memtable: u64,
}

/// The answer to a commit: its timestamp, or why it was refused.
pub type CommitAnswer = Result<Timestamp, CommitRefused>;

/// Why a commit was not ordered. A refused commit leaves no trace; its memory reservation is
/// released.
#[derive(Debug)]
pub enum CommitRefused {
    /// Row `row` of the write has a key with a version committed at `timestamp`, after the
    /// snapshot.
    Conflict {
        /// The row of the write whose key conflicts.
        row: usize,
        /// The newer version's commit timestamp.
        timestamp: Timestamp,
    },
    /// A memtable of the committer's read view was flushed and dropped since: check the SSTs
    /// of a newer view, then send the write again.
    ViewOutdated(Box<PreparedWrite>),
}

impl ConflictCheck {
    /// Checks `write` against `memtables`, every memtable the actor holds (newest first), and
    /// hands it back if no key it writes has a version newer than the snapshot there and the
    /// committer's view is still covered.
    pub(crate) fn check(
        &self,
        memtables: &[&Arc<Memtable>],
        write: PreparedWrite,
    ) -> Result<PreparedWrite, CommitRefused> {
        let oldest_held = memtables.last().map(|memtable| memtable.id());
        if oldest_held.is_some_and(|oldest| oldest > self.oldest_memtable) {
            return Err(CommitRefused::ViewOutdated(Box::new(write)));
        }
        for (row, key) in write.rows.keys.iter().enumerate() {
            // The newest memtable holding the key holds its newest version.
            let newest = memtables
                .iter()
                .find_map(|memtable| memtable.get(key.as_bytes(), Timestamp::MAX));
            if let Some(found) = newest
                && found.timestamp > self.read_at
            {
                return Err(CommitRefused::Conflict {
                    row,
                    timestamp: found.timestamp,
                });
            }
        }
        Ok(write)
    }
}
