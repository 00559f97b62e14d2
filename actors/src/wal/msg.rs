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
        /// Whether the commit waits for the sync the policy promises. A commit that does not
        /// is reported as soon as it is written to the OS; under [`WalSyncPolicy::Always`] the
        /// writer then syncs it within [`VISIBLE_SYNC_LAG`].
        ///
        /// [`WalSyncPolicy::Always`]: super::WalSyncPolicy::Always
        /// [`VISIBLE_SYNC_LAG`]: super::VISIBLE_SYNC_LAG
        wait_for_sync: bool,
    },
    /// Close the open segment (synced): the next commit starts a new one. Sent when a memtable
    /// is sealed, so that segments line up with memtables and can be deleted whole once their
    /// memtable is in an SST.
    Rotate,
    /// Every commit at or below `through` is in a published SST: delete the segments that hold
    /// nothing newer (never the open one).
    Truncate {
        /// The WAL floor of the newest published manifest version.
        through: Timestamp,
    },
}
