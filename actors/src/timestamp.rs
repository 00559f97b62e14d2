//! Commit timestamps.

use std::fmt;

/// A commit timestamp: every commit gets one from the memtable's clock, strictly increasing.
/// A read at timestamp `t` sees exactly the commits with timestamps `<= t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Before every commit: a read at `ZERO` sees nothing.
    pub const ZERO: Timestamp = Timestamp(0);

    /// After every commit: a read at `MAX` sees the newest version of everything.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The timestamp with value `value`.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The timestamp's value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The timestamp after this one.
    pub fn next(self) -> Timestamp {
        Timestamp(self.0 + 1)
    }
}

impl From<u64> for Timestamp {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<Timestamp> for u64 {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}
