//! The memtable memory budget: writers wait for room instead of memory growing without bound.
//!
//! A writer reserves its batch's estimated memory before its commit is ordered. While nothing is
//! in use any batch is admitted (however large it is, it has to go somewhere); otherwise a batch
//! is admitted only if it fits. Memory comes back when a sealed memtable has been flushed to an
//! SST and dropped from the read view; every release wakes the waiting writers, which try again.
//! The limit covers the writable memtable and the sealed ones waiting to be flushed, so writers
//! wait exactly while flushing lags behind.

use std::sync::atomic::{AtomicUsize, Ordering};

use event_listener::{Event, EventListener};

/// Bytes of memtable memory in use, against a limit.
#[derive(Debug)]
pub struct WriteBudget {
    limit: usize,
    used: AtomicUsize,
    released: Event,
}

impl WriteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            released: Event::new(),
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

    /// Gives back `bytes` (a flushed memtable) and wakes every waiting writer.
    pub fn release(&self, bytes: usize) {
        let previous = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(previous >= bytes, "released more than was reserved");
        self.released.notify(usize::MAX);
    }

    /// A listener that fires at the next release. Listen first, then try again, then wait: a
    /// release between the try and the wait is not missed.
    pub fn listen(&self) -> EventListener {
        self.released.listen()
    }
}
