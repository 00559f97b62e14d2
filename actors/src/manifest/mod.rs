//! The manifest: which SSTs make up the database, as a sequence of immutable versions.
//!
//! This module is the storage and the logic; the manifest publisher actor is built on it. It
//! owns three things:
//!
//! - [`Version`] ([`version`]): the whole state of the files at one moment — SSTs by level,
//!   WAL floor, last commit, history floor, time index — with pure builders that refuse
//!   changes breaking an invariant ("a removed SST must be live", "floors never go back", ...);
//! - the record format ([`record`]): `manifest/{number:020}.json`, a checksummed JSON header
//!   line and the version as JSON; a damaged record is [`ManifestError::Corrupt`], a newer
//!   format [`ManifestError::UnsupportedFormat`];
//! - [`ManifestStore`] ([`store`]): publish, claim, load, prune.
//!
//! # Checkpoints and how history is bounded
//!
//! Every record is complete: it never refers to an earlier record, so each record is its own
//! checkpoint and opening reads exactly one record, the newest, whatever the history. History
//! is bounded by [`ManifestStore::prune`], which the publisher calls after publishing to
//! delete records below a number it chooses (keeping a few recent ones for inspection). Old
//! records are not needed to read the past: time travel reads row versions from the current
//! version's SSTs, which compaction keeps down to the horizon that [`Retention`] gives
//! ([`Version::oldest_timestamp`]; the publisher records every horizon a compaction used with
//! [`Version::with_history_floor`]). Nothing but `prune` deletes records.
//!
//! # Publishing
//!
//! Version `n + 1` is published by writing record `n + 1` with put-if-absent, so of two writers
//! racing for a number exactly one wins; the other learns the newest version and decides with
//! [`check_not_fenced`]. Opening uses the newest record and replays the WAL above its floor.
//!
//! # Fencing
//!
//! A writer opening the database first [claims](ManifestStore::claim) it: it publishes the
//! newest version again with number + 1 and epoch + 1. An older writer's next publish then
//! finds a record of a newer epoch in its way and gets [`ManifestError::Fenced`]: it must stop
//! and write or delete nothing more (the publisher maps this to a closed database). Two
//! claimants racing both succeed, one after the other: the loser of the put takes the next
//! number with the next epoch, so the last claimant is the writer and the first is fenced.
//! SST ids are partitioned by epoch ([`sst_id_range`]), so an SST a fenced writer writes before
//! it notices can never overwrite one the new writer wrote.
//!
//! # Pruning and stale writers
//!
//! Pruning opens a hole in put-if-absent: a stale writer that last saw record 5 tries to
//! publish 6 — but the new writer has claimed 6, published up to 100 and pruned everything
//! below 90, so slot 6 is free and the put *succeeds*. Were that taken as a win, the stale
//! writer would go on (delete WAL segments below its floor, acknowledge commits) while every
//! reader uses record 100. Two rules close it:
//!
//! 1. **The newest record is never deleted**: `prune` lists first and keeps the newest record
//!    it saw whatever `keep_from` says; records only ever appear with higher numbers, so from
//!    the moment record `m` exists, some record `>= m` exists.
//! 2. **A publish wins only if, after its put succeeded, listing finds no higher record.** By
//!    rule 1, a put into a pruned slot always finds one, so the stale writer learns the newest
//!    version and gets `Fenced` (or `Superseded`). Its stray record is never the newest, so
//!    readers never use it, and the next prune deletes it.
//!
//! A writer whose put succeeded where no higher record exists did take the next number over
//! the newest record, which is what a win means. The cost is one listing per publish; the
//! folder stays small because it is pruned. Rule 2 needs a listing that shows every completed
//! put (local disk, memory, and S3 all give that).

mod hex;
mod publisher;
pub mod record;
pub mod retention;
pub mod store;
pub mod version;

use damselfly_runtimes::StorageError;

pub use self::publisher::{PublishedVersion, Publisher, PublisherMessage, PublisherPeers};
pub use self::record::{FORMAT_VERSION, MANIFEST_DIR, record_path};
pub use self::retention::{Retention, TIME_INDEX_MARKS, TimeMark};
pub use self::store::{CLAIM_ATTEMPTS_MAX, ManifestStore, Published, check_not_fenced};
pub use self::version::{
    LEVEL_COUNT_MAX, SST_DIR, SST_IDS_PER_EPOCH, SstDescriptor, Version, VersionError,
    sst_id_from_path, sst_id_range, sst_path,
};

/// A manifest failure.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record is damaged or describes an impossible version.
    #[error("manifest record {path} is corrupt: {reason}")]
    Corrupt {
        /// The record's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A writer with a newer epoch has claimed the database: this writer must stop.
    #[error(
        "this writer (epoch {own_epoch}) was fenced: another writer (epoch {current_epoch}) has \
         opened the database since; it writes nothing more"
    )]
    Fenced {
        /// This writer's epoch.
        own_epoch: u64,
        /// The epoch of the newest record.
        current_epoch: u64,
    },
    /// A record was written by a newer version of damselfly.
    #[error(
        "manifest record {path} has format version {found}; this build reads version \
         {FORMAT_VERSION}"
    )]
    UnsupportedFormat {
        /// The record's path.
        path: String,
        /// The format version found.
        found: u64,
    },
    /// A version could not be encoded as JSON.
    #[error("encoding a manifest record: {0}")]
    Encode(#[source] serde_json::Error),
    /// A version to publish breaks an invariant (a bug in the caller; nothing was written).
    #[error("refusing to publish an invalid version: {0}")]
    InvalidVersion(#[from] VersionError),
    /// Other writers kept claiming the database while this one tried to.
    #[error("could not claim the manifest in {attempts} attempts: other writers kept claiming it")]
    ClaimContended {
        /// How many claims were tried.
        attempts: u32,
    },
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;
