//! What the WAL writer accepts.

use bytes::Bytes;

use crate::timestamp::Timestamp;

/// A message to the WAL writer.
#[derive(Debug)]
pub enum WalMessage {
    /// Log one commit. The writer reports durability to the memtable with a `Durable` notice
    /// once the commit is as durable as the sync policy promises.
    Append {
        /// The commit's timestamp; appends arrive in timestamp order.
        timestamp: Timestamp,
        /// The commit record body ([`encode_body`](super::record::encode_body)).
        body: Bytes,
    },
}
