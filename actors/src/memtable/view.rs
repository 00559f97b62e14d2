//! What readers see: an immutable read view and the visibility watermark, taken in one step.
//!
//! Readers never queue behind writers. The memtable actor publishes a [`ReadView`] (the
//! memtables a read must consult) and advances the watermark — the newest timestamp such that
//! every commit at or before it is durable and in the view. A snapshot takes both under one
//! short lock, so the view it holds always contains every commit its timestamp covers, and
//! commits still in flight (indexed but not yet durable) stay invisible to it.

use std::sync::{Arc, Mutex, PoisonError};

use super::index::Memtable;
use crate::timestamp::Timestamp;

/// The data a read consults.
#[derive(Debug)]
pub struct ReadView {
    /// The writable memtable.
    pub memtable: Arc<Memtable>,
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
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&state.0), state.1)
    }

    /// The newest visible commit timestamp.
    pub fn watermark(&self) -> Timestamp {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1
    }

    /// Makes every commit up to `through` visible.
    pub(super) fn advance(&self, through: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert!(through >= state.1, "the watermark never moves back");
        state.1 = state.1.max(through);
    }
}
