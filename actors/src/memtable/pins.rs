//! The snapshots of live transactions, which compaction must not merge past.
//!
//! A transaction's commit has to find every version of the keys it writes that was committed
//! after its snapshot, wherever that version lives by then — also a delete. Compaction keeps
//! every version newer than its horizon, but may drop a delete at or below it: capping the
//! horizon at the oldest live transaction's snapshot keeps every version a conflict check can
//! need. (A transaction's reads need no pin of this kind: its snapshot holds the files it
//! reads, as every snapshot does.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::view::{ReadView, Visibility};
use crate::timestamp::Timestamp;

/// The snapshot timestamps of the live transactions.
#[derive(Debug, Default)]
pub struct TransactionPins {
    /// Timestamp → how many live transactions read at it.
    live: Mutex<BTreeMap<Timestamp, usize>>,
}

impl TransactionPins {
    /// Takes a snapshot of `visibility` and pins its timestamp until the returned pin is
    /// dropped.
    ///
    /// Taking the snapshot under the pins' lock orders it with [`TransactionPins::oldest`]: a
    /// compaction that reads the pins before this one is recorded fixed its horizon from an
    /// older version, whose commits are all at or below this snapshot, so it cannot drop
    /// anything committed after the snapshot either.
    pub fn pin(self: &Arc<Self>, visibility: &Visibility) -> (Arc<ReadView>, TransactionPin) {
        let mut live = self.lock();
        let (view, at) = visibility.snapshot();
        *live.entry(at).or_default() += 1;
        let pin = TransactionPin {
            pins: Arc::clone(self),
            at,
        };
        (view, pin)
    }

    /// The oldest pinned snapshot timestamp, if any transaction is live.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.lock().keys().next().copied()
    }

    /// How many transactions are live.
    pub fn live(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Timestamp, usize>> {
        // A map of counters, consistent after every statement.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live transaction's pin on its snapshot timestamp; dropping it unpins.
#[derive(Debug)]
pub struct TransactionPin {
    pins: Arc<TransactionPins>,
    at: Timestamp,
}

impl TransactionPin {
    /// The pinned snapshot timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.at
    }
}

impl Drop for TransactionPin {
    fn drop(&mut self) {
        let mut live = self.pins.lock();
        if let Some(count) = live.get_mut(&self.at) {
            *count -= 1;
            if *count == 0 {
                live.remove(&self.at);
            }
        }
    }
}
