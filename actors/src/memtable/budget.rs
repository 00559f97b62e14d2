//! The memtable memory budget: writers wait for room instead of memory growing without bound.
//!
//! A writer reserves its batch's estimated memory before its commit is ordered. While the
//! memtable is empty any batch is admitted (however large it is, it has to go somewhere);
//! otherwise a batch is admitted only if it fits. Memory comes back when a memtable is flushed
//! and released. A writer that cannot be admitted waits up to the configured stall timeout and
//! then fails with an error that names the budget, never silently.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of memtable memory in use, against a limit.
#[derive(Debug)]
pub struct WriteBudget {
    limit: usize,
    used: AtomicUsize,
}

impl WriteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` if they fit (or nothing is in use); returns whether they were reserved.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(bytes) <= self.limit).then(|| used + bytes)
            })
            .is_ok()
    }

    /// Reserves `bytes` unconditionally (recovery must load the whole log, whatever its size).
    pub fn force_reserve(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }
}
