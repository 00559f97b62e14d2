//! What the flusher accepts.

use std::sync::Arc;

use crate::memtable::Memtable;

/// A message to the flusher.
#[derive(Debug)]
pub enum FlusherMessage {
    /// Write this sealed memtable, whose commits are all durable, to an SST and publish it.
    Flush {
        /// The sealed memtable.
        memtable: Arc<Memtable>,
    },
}
