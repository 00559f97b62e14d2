//! The manifest: which SSTs make up the database, as a sequence of immutable versions.
//!
//! [`Version`] ([`version`]) is the whole state of the files at one moment — SSTs by level,
//! WAL floor, last commit, history floor, time index — with pure builders that refuse changes
//! breaking an invariant. [`Retention`] ([`retention`]) turns a retention rule into the
//! time-travel horizon.

mod hex;
pub mod retention;
pub mod version;

pub use self::retention::{Retention, TIME_INDEX_MARKS, TimeMark};
pub use self::version::{
    LEVEL_COUNT_MAX, SST_DIR, SST_IDS_PER_EPOCH, SstDescriptor, Version, VersionError,
    sst_id_range, sst_path,
};

#[cfg(test)]
mod version_tests;
