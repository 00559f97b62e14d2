//! What readers see: an immutable read view and the visibility watermark, taken in one step.
//!
//! Readers never queue behind writers. The read view holds the memtables a read must consult
//! (the writable one and the sealed ones not yet flushed, newest first) and the published
//! manifest version with its SSTs. The memtable actor replaces the memtables and advances the
//! watermark — the newest timestamp such that every commit at or before it is durable and in
//! the view; the manifest publisher replaces the version. A snapshot takes the view and the
//! watermark under one short lock, so it always holds every commit its timestamp covers.
//!
//! Order of a flush, and why nothing goes missing: the publisher first installs the version with
//! the new SST, and only then does the memtable actor drop the flushed memtable. In between, a
//! reader finds the same versions in both — harmless, the read path takes one of them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::index::Memtable;
use crate::manifest::PublishedVersion;
use crate::timestamp::Timestamp;

/// The data a read consults.
#[derive(Debug)]
pub struct ReadView {
    /// The memtables, newest first: the writable one, then the sealed ones.
    pub memtables: Vec<Arc<Memtable>>,
    /// The published manifest version and its open SSTs.
    pub version: Arc<PublishedVersion>,
}

/// The published read view and watermark.
#[derive(Debug)]
pub struct Visibility {
    state: Mutex<(Arc<ReadView>, Timestamp)>,
}

impl Visibility {
    /// Starts with `view`, in which every commit up to `watermark` is visible.
    pub fn new(view: ReadView, watermark: Timestamp) -> Self {
        Self {
            state: Mutex::new((Arc::new(view), watermark)),
        }
    }

    /// The current view and the timestamp to read it at.
    pub fn snapshot(&self) -> (Arc<ReadView>, Timestamp) {
        let state = self.lock();
        (Arc::clone(&state.0), state.1)
    }

    /// The newest visible commit timestamp.
    pub fn watermark(&self) -> Timestamp {
        self.lock().1
    }

    /// Makes every commit up to `through` visible.
    pub(crate) fn advance(&self, through: Timestamp) {
        let mut state = self.lock();
        debug_assert!(through >= state.1, "the watermark never moves back");
        state.1 = state.1.max(through);
    }

    /// Replaces the memtables (newest first).
    pub(crate) fn set_memtables(&self, memtables: Vec<Arc<Memtable>>) {
        let mut state = self.lock();
        let version = Arc::clone(&state.0.version);
        state.0 = Arc::new(ReadView { memtables, version });
    }

    /// Installs a newly published manifest version.
    pub fn set_version(&self, version: Arc<PublishedVersion>) {
        let mut state = self.lock();
        let memtables = state.0.memtables.clone();
        state.0 = Arc::new(ReadView { memtables, version });
    }

    /// Installs `version` — another writer's, which a read-only follower loaded — and makes
    /// every commit up to `through` visible, in one step.
    pub fn follow(&self, version: Arc<PublishedVersion>, through: Timestamp) {
        let mut state = self.lock();
        let memtables = state.0.memtables.clone();
        state.0 = Arc::new(ReadView { memtables, version });
        state.1 = state.1.max(through);
    }

    fn lock(&self) -> MutexGuard<'_, (Arc<ReadView>, Timestamp)> {
        // The state is two Arcs and a number, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
