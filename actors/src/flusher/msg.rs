//! What the flusher accepts.

use std::sync::Arc;

use super::FlushError;
use crate::memtable::Memtable;
use crate::sst::EncodedSst;

/// A message to the flusher.
#[derive(Debug)]
pub enum FlusherMessage {
    /// Write this sealed memtable, whose commits are all durable, to an SST and publish it.
    Flush {
        /// The sealed memtable.
        memtable: Arc<Memtable>,
    },
    /// A memtable's SST is encoded (the flusher sends this to itself when an encoding task
    /// ends).
    Encoded {
        /// The memtable's number.
        memtable: u64,
        /// The SST, or why it could not be encoded.
        result: Result<EncodedSst, FlushError>,
    },
}
