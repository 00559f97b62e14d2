//! The read path: snapshots' point lookups and scans over memtables and SSTs.

pub(crate) mod merge;
pub(crate) mod point;
pub(crate) mod range;
