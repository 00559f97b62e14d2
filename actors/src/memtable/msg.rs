//! What the memtable actor accepts.

use super::conflict::{CommitAnswer, ConflictCheck};
use super::write::PreparedWrite;
use crate::kernel::Reply;
use crate::timestamp::Timestamp;

/// A message to the memtable actor.
#[derive(Debug)]
pub enum MemtableMessage {
    /// Commit these rows; the reply carries the commit timestamp once the commit is durable (as
    /// the WAL policy promises, or only written to the OS when it does not wait for a sync)
    /// and visible — or why it was refused.
    Commit {
        /// The prepared rows.
        write: PreparedWrite,
        /// Whether the acknowledgement waits for the sync the WAL policy promises.
        wait_for_sync: bool,
        /// A transaction's conflict check, done before the commit is ordered.
        check: Option<ConflictCheck>,
        /// Where the commit timestamp goes.
        reply: Reply<CommitAnswer>,
    },
    /// Seal the writable memtable and flush everything committed so far; the reply carries the
    /// newest flushed commit once the SSTs holding it are published.
    FlushAll {
        /// Where the answer goes.
        reply: Reply<Timestamp>,
    },
    /// Notice from the WAL writer: every commit up to `through` is durable.
    Durable {
        /// The newest durable commit.
        through: Timestamp,
    },
    /// Notice from the flusher: memtable `memtable` is in a published SST, so every commit up
    /// to `through` is.
    Flushed {
        /// The flushed memtable's number.
        memtable: u64,
        /// Its newest commit.
        through: Timestamp,
    },
}
