//! The WAL writer actor: every commit is logged, in timestamp order, before it is acknowledged.
//!
//! It owns the open segment and its frame sequence. Commits arrive as [`WalMessage::Append`] in
//! timestamp order; the run loop hands over every queued append before calling `on_idle`, where
//! the writer writes them all with one write — and, when the policy asks, one sync. Commits that
//! arrive while a sync is in flight wait in the mailbox and share the next one (group commit).
//! Once a group is as durable as the [`WalSyncPolicy`] promises, the writer sends the memtable a
//! `Durable` notice for the group's last timestamp. A group of commits that do not wait for a
//! sync (transactions committed with `CommitMode::Visible`) is reported once written, and synced
//! within [`VISIBLE_SYNC_LAG`] even under [`WalSyncPolicy::Always`]; a group with any commit that
//! waits is synced as the policy says, which covers every earlier unsynced byte too.
//!
//! Promises:
//! - a commit is reported durable only after its bytes are written, and, under
//!   [`WalSyncPolicy::Always`], synced together with the segment's directory entry;
//! - segments are written by one writer from start to end and never reopened; a rotated segment
//!   is synced and closed before the next one starts, and the segment an earlier writer left
//!   last is synced (as replay found it) before this writer's first one starts;
//! - on storage without durable appends (object stores) every group is a segment of its own,
//!   written whole with put-if-absent, so two writers can never interleave in one segment;
//! - any storage error is fatal: after a failed write or sync nobody knows what is durable, so
//!   the writer stops the database rather than acknowledge anything more.

pub mod frame;
mod msg;
pub mod record;
pub mod replay;
pub mod segment;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::ArrowError;
use bytes::Bytes;
use damselfly_runtimes::{
    Appender, Durability, Instant, Runtime, Storage, StorageError, StorageErrorKind, Stored,
    put_if_absent_or_own,
};

use self::frame::{FrameKind, FrameTooLarge};
pub use self::msg::WalMessage;
use self::replay::ReplaySummary;
use self::segment::SegmentEnd;
use crate::kernel::{Actor, Notifier};
use crate::memtable::MemtableMessage;
use crate::metrics::EngineMetrics;
use crate::probe::{self, Probe};
use crate::table::{TableSchema, descriptor};
use crate::timestamp::Timestamp;

/// When the WAL is synced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalSyncPolicy {
    /// Sync before acknowledging every commit (commits that arrive together share one sync).
    /// An acknowledged commit survives power loss.
    #[default]
    Always,
    /// Acknowledge once written to the OS; sync whenever this many bytes are unsynced. A power
    /// loss can lose up to that many bytes of acknowledged commits, a process crash none.
    IntervalBytes(u64),
    /// Acknowledge once written to the OS; sync at most this long after an unsynced write. A
    /// power loss can lose that much time of acknowledged commits, a process crash none.
    IntervalTime(Duration),
    /// Acknowledge once written to the OS; sync only when a segment is closed. A power loss can
    /// lose acknowledged commits, a process crash none.
    Never,
}

/// How long after being written commits that do not wait for a sync are synced at the latest,
/// when the policy would sync every commit ([`WalSyncPolicy::Always`]).
pub const VISIBLE_SYNC_LAG: Duration = Duration::from_millis(10);

/// How the WAL is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// When to sync.
    pub sync_policy: WalSyncPolicy,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// A segment is closed and a new one started once it is this old (checked at writes).
    pub segment_age_max: Duration,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            sync_policy: WalSyncPolicy::Always,
            segment_bytes_max: 64 << 20,
            segment_age_max: Duration::from_secs(600),
        }
    }
}

/// A WAL failure.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log is damaged somewhere other than a torn tail.
    #[error("WAL segment {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: String,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another writer created a segment this writer was about to create.
    #[error(
        "WAL segment {path} already exists: another writer has opened this database since, so \
         this writer is fenced off and stops"
    )]
    SegmentTaken {
        /// The segment.
        path: String,
    },
    /// A commit could not be encoded.
    #[error("encoding a WAL record: {0}")]
    Encode(#[from] ArrowError),
    /// A commit is too large for one frame.
    #[error(transparent)]
    FrameTooLarge(#[from] FrameTooLarge),
}

/// The WAL writer actor.
#[derive(Debug)]
pub struct WalWriter {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Runtime>,
    options: WalOptions,
    schema_message: Vec<u8>,
    open: Option<OpenSegment>,
    previous: Option<SegmentEnd>,
    /// Closed segments (written here or replayed) and the newest commit timestamp in each.
    closed: BTreeMap<u64, Timestamp>,
    next_id: u64,
    queued: Vec<(Timestamp, Bytes)>,
    /// Whether a queued commit waits for the sync the policy promises.
    queued_waits: bool,
    /// The newest commit handed to the storage.
    written_through: Timestamp,
    unsynced_bytes: u64,
    last_sync: Instant,
    durable: Notifier<MemtableMessage>,
    metrics: Arc<EngineMetrics>,
    /// Whether this writer's part of the log was started ([`WalWriter::start_log`]).
    started: bool,
}

#[derive(Debug)]
struct OpenSegment {
    id: u64,
    file: Box<dyn Appender>,
    next_sequence: u64,
    synced_len: u64,
    opened_at: Instant,
    /// The newest commit written to it.
    last_timestamp: Timestamp,
}

impl WalWriter {
    /// A writer that continues the log `replayed` found.
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Runtime>,
        options: WalOptions,
        table: &TableSchema,
        replayed: &ReplaySummary,
        durable: Notifier<MemtableMessage>,
        metrics: Arc<EngineMetrics>,
    ) -> Result<Self, WalError> {
        let last_sync = clock.now();
        let previous = replayed.last_segment;
        Ok(Self {
            storage,
            clock,
            options,
            schema_message: descriptor::schema_message(table.schema())?,
            open: None,
            closed: replayed
                .segments
                .iter()
                .map(|segment| (segment.end.id, Timestamp::new(segment.last_timestamp)))
                .collect(),
            next_id: previous.map_or(1, |end| end.id + 1),
            previous,
            queued: Vec::new(),
            queued_waits: false,
            written_through: Timestamp::ZERO,
            unsynced_bytes: 0,
            last_sync,
            durable,
            metrics,
            started: false,
        })
    }

    /// Writes the queued commits as one group and reports them durable.
    async fn write_group(&mut self) -> Result<(), WalError> {
        let Some(&(through, _)) = self.queued.last() else {
            return Ok(());
        };
        if self.queued.len() > 1 {
            probe::hit(&*self.clock, Probe::WalGroupCommit);
        }
        if self.storage.supports_durable_append() {
            self.append_group(through).await?;
        } else {
            self.put_group(through).await?;
        }
        // The memtable only stops once every commit it sent here was reported, so a closed
        // notice lane means nobody waits for this answer.
        let _ = self.durable.notify(MemtableMessage::Durable { through });
        Ok(())
    }

    async fn append_group(&mut self, through: Timestamp) -> Result<(), WalError> {
        self.rotate_if_due().await?;
        let segment = match self.open.take() {
            Some(segment) => segment,
            None => self.create_segment().await?,
        };
        let segment = self.open.insert(segment);
        let mut group = Vec::new();
        if segment.next_sequence == 0 {
            group = header_frame(segment.id, self.previous, &self.schema_message)?;
            segment.next_sequence = 1;
        }
        for (timestamp, body) in self.queued.drain(..) {
            let timestamp = timestamp.get().to_le_bytes();
            frame::encode(
                &mut group,
                FrameKind::Commit,
                segment.next_sequence,
                segment.synced_len,
                &[&timestamp, &body],
            )?;
            segment.next_sequence += 1;
        }
        let group_len = group.len() as u64;
        let policy = if std::mem::take(&mut self.queued_waits) {
            self.options.sync_policy
        } else {
            self.options.sync_policy.without_waiting()
        };
        let durability = policy.durability_for(
            self.unsynced_bytes + group_len,
            self.clock.now().saturating_duration_since(self.last_sync),
        );
        segment.file.append(Bytes::from(group), durability).await?;
        segment.last_timestamp = through;
        self.written_through = through;
        self.metrics.wal_writes.add(1);
        self.metrics.wal_bytes_written.add(group_len);
        self.unsynced_bytes += group_len;
        if durability == Durability::Synced {
            self.mark_synced();
        }
        Ok(())
    }

    /// Object stores: the group becomes a whole segment, written with put-if-absent.
    async fn put_group(&mut self, through: Timestamp) -> Result<(), WalError> {
        let id = self.next_id;
        let mut group = header_frame(id, self.previous, &self.schema_message)?;
        for (sequence, (timestamp, body)) in (1..).zip(self.queued.drain(..)) {
            let timestamp = timestamp.get().to_le_bytes();
            frame::encode(
                &mut group,
                FrameKind::Commit,
                sequence,
                0,
                &[&timestamp, &body],
            )?;
        }
        self.queued_waits = false;
        let length = group.len() as u64;
        let path = segment::path(id);
        put_segment(&*self.storage, &*self.clock, &path, Bytes::from(group)).await?;
        self.next_id += 1;
        self.previous = Some(SegmentEnd { id, length });
        self.closed.insert(id, through);
        self.written_through = through;
        self.metrics.wal_segments_created.add(1);
        self.metrics.wal_writes.add(1);
        self.metrics.wal_bytes_written.add(length);
        self.mark_synced();
        Ok(())
    }

    /// Starts this writer's part of the log with a segment of its own, durably, unless it was
    /// started already (the actor starts it when it starts; opening a database starts it
    /// earlier, so that a stale writer's segment found in its place fails the open, which is
    /// retried, instead of the new writer). Its header records where replay ended, so whatever
    /// an older writer — crashed, or fenced off by this one's claim — still appends to its last
    /// segment is superseded and never replayed.
    ///
    /// The segment replay ended in is synced first. A crashed writer may have left frames there
    /// that only the OS held; replay applied them, so they are part of the log from now on, and
    /// the new header names them. Were they lost in a later power loss, the log would have a
    /// hole where the header says frames are.
    pub async fn start_log(&mut self) -> Result<(), WalError> {
        if std::mem::replace(&mut self.started, true) {
            return Ok(());
        }
        if !self.storage.supports_durable_append() {
            return self.put_group(self.written_through).await;
        }
        if let Some(previous) = self.previous {
            self.storage.sync(&segment::path(previous.id)).await?;
            probe::hit(&*self.clock, Probe::WalReplayedSegmentSynced);
        }
        let segment = self.create_segment().await?;
        let segment = self.open.insert(segment);
        let header = header_frame(segment.id, self.previous, &self.schema_message)?;
        segment.next_sequence = 1;
        segment
            .file
            .append(Bytes::from(header), Durability::Synced)
            .await?;
        self.mark_synced();
        Ok(())
    }

    async fn create_segment(&mut self) -> Result<OpenSegment, WalError> {
        let id = self.next_id;
        let path = segment::path(id);
        let mut file = match self.storage.create(&path).await {
            Ok(file) => file,
            Err(error) if error.kind == StorageErrorKind::AlreadyExists => {
                return Err(WalError::SegmentTaken { path });
            }
            Err(error) => return Err(error.into()),
        };
        // Appends inside reserved space sync faster than appends that grow the file; replay
        // reads the zeros after the last frame as the segment's end.
        file.preallocate(self.options.segment_bytes_max).await?;
        tracing::debug!(path, "WAL segment created");
        self.next_id += 1;
        self.metrics.wal_segments_created.add(1);
        Ok(OpenSegment {
            id,
            file,
            next_sequence: 0,
            synced_len: 0,
            opened_at: self.clock.now(),
            last_timestamp: Timestamp::ZERO,
        })
    }

    async fn rotate_if_due(&mut self) -> Result<(), WalError> {
        let Some(segment) = &self.open else {
            return Ok(());
        };
        let age = self
            .clock
            .now()
            .saturating_duration_since(segment.opened_at);
        if segment.file.len() >= self.options.segment_bytes_max
            || age >= self.options.segment_age_max
        {
            self.close_segment().await?;
            probe::hit(&*self.clock, Probe::WalSegmentRotated);
        }
        Ok(())
    }

    /// Syncs and closes the open segment; the next write starts a new one.
    async fn close_segment(&mut self) -> Result<(), WalError> {
        if let Some(segment) = self.open.take() {
            let length = segment.file.len();
            segment.file.close().await?;
            self.previous = Some(SegmentEnd {
                id: segment.id,
                length,
            });
            self.closed.insert(segment.id, segment.last_timestamp);
            self.mark_synced();
        }
        Ok(())
    }

    /// Deletes the oldest closed segments, as long as their commits are all at or below
    /// `through`. The newest segment is always kept, so that segment ids keep increasing across
    /// restarts.
    ///
    /// What is left is always a contiguous run of the newest segments, because replay checks
    /// that each segment follows the one before it: segments go oldest first, the first one
    /// that must stay (an empty segment after a kept one included) keeps every later one, and a
    /// segment that cannot be deleted now stops this truncation — it and the ones after it are
    /// retried at the next. Leftover segments cost space, never correctness, because replay
    /// skips their commits.
    async fn truncate(&mut self, through: Timestamp) {
        let newest = self.open.as_ref().map(|segment| segment.id).or(self
            .closed
            .keys()
            .next_back()
            .copied());
        let doomed: Vec<u64> = self
            .closed
            .iter()
            .take_while(|&(&id, &last)| last <= through && Some(id) != newest)
            .map(|(&id, _)| id)
            .collect();
        for id in doomed {
            let path = segment::path(id);
            match self.storage.delete(&path).await {
                Ok(()) => {}
                Err(error) if error.kind == StorageErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(path, %error, "could not delete a WAL segment below the floor; will retry");
                    probe::hit(&*self.clock, Probe::WalTruncationStopped);
                    return;
                }
            }
            self.closed.remove(&id);
            self.metrics.wal_segments_deleted.add(1);
            probe::hit(&*self.clock, Probe::WalSegmentsDeleted);
            tracing::debug!(path, "WAL segment deleted below the floor");
        }
    }

    async fn sync(&mut self) -> Result<(), WalError> {
        if let Some(segment) = &mut self.open {
            segment
                .file
                .append(Bytes::new(), Durability::Synced)
                .await?;
            self.mark_synced();
        }
        Ok(())
    }

    fn mark_synced(&mut self) {
        if let Some(segment) = &mut self.open {
            segment.synced_len = segment.file.len();
        }
        self.unsynced_bytes = 0;
        self.last_sync = self.clock.now();
        self.metrics.wal_syncs.add(1);
        self.metrics
            .wal_synced_timestamp
            .set(self.written_through.get());
    }
}

/// Stores a whole segment with put-if-absent, accepting a segment that holds its own bytes (a
/// put that took effect but was reported as failed). Anything else there means another writer
/// took over the database.
async fn put_segment(
    storage: &dyn Storage,
    clock: &dyn Runtime,
    path: &str,
    group: Bytes,
) -> Result<(), WalError> {
    match put_if_absent_or_own(storage, path, group).await? {
        Stored::Created => Ok(()),
        Stored::FoundOwn => {
            probe::hit(clock, Probe::WalOwnSegmentFound);
            Ok(())
        }
        Stored::Taken => Err(WalError::SegmentTaken {
            path: path.to_owned(),
        }),
    }
}

/// The header frame of segment `id`, which follows `previous`.
fn header_frame(
    id: u64,
    previous: Option<SegmentEnd>,
    schema_message: &[u8],
) -> Result<Vec<u8>, WalError> {
    let header = segment::encode_header(id, previous, schema_message);
    let mut frame_bytes = Vec::new();
    frame::encode(&mut frame_bytes, FrameKind::SegmentHeader, 0, 0, &[&header])?;
    Ok(frame_bytes)
}

impl WalSyncPolicy {
    /// The policy for commits that do not wait for a sync: [`WalSyncPolicy::Always`] relaxes to
    /// a sync within [`VISIBLE_SYNC_LAG`]; the other policies do not wait for syncs anyway.
    fn without_waiting(self) -> WalSyncPolicy {
        match self {
            WalSyncPolicy::Always => WalSyncPolicy::IntervalTime(VISIBLE_SYNC_LAG),
            relaxed => relaxed,
        }
    }

    /// How durable a write must be, given the bytes and the time since the last sync.
    fn durability_for(self, unsynced_bytes: u64, since_sync: Duration) -> Durability {
        let sync = match self {
            WalSyncPolicy::Always => true,
            WalSyncPolicy::IntervalBytes(limit) => unsynced_bytes >= limit,
            WalSyncPolicy::IntervalTime(interval) => since_sync >= interval,
            WalSyncPolicy::Never => false,
        };
        if sync {
            Durability::Synced
        } else {
            Durability::Buffered
        }
    }
}

impl Actor for WalWriter {
    type Message = WalMessage;
    type Error = WalError;

    const NAME: &'static str = "wal-writer";

    async fn on_start(&mut self) -> Result<(), WalError> {
        self.start_log().await
    }

    async fn handle(&mut self, message: WalMessage) -> Result<(), WalError> {
        match message {
            WalMessage::Append {
                timestamp,
                body,
                wait_for_sync,
            } => {
                debug_assert!(
                    self.queued.last().is_none_or(|(last, _)| *last < timestamp),
                    "appends arrive in timestamp order"
                );
                self.queued.push((timestamp, body));
                self.queued_waits |= wait_for_sync;
                Ok(())
            }
            WalMessage::Rotate => {
                // The commits before the rotation belong to the old segment.
                self.write_group().await?;
                self.close_segment().await
            }
            WalMessage::Truncate { through } => {
                self.truncate(through).await;
                Ok(())
            }
        }
    }

    async fn on_idle(&mut self) -> Result<(), WalError> {
        self.write_group().await
    }

    fn next_tick(&self) -> Option<Instant> {
        match self.options.sync_policy.without_waiting() {
            WalSyncPolicy::IntervalTime(interval) if self.unsynced_bytes > 0 => {
                Some(self.last_sync + interval)
            }
            _ => None,
        }
    }

    async fn on_tick(&mut self, _now: Instant) -> Result<(), WalError> {
        if self.unsynced_bytes > 0 {
            self.sync().await?;
        }
        Ok(())
    }

    async fn on_stop(&mut self) -> Result<(), WalError> {
        self.write_group().await?;
        self.close_segment().await
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer_tests;
