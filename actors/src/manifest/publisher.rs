//! The manifest publisher actor: owns the current version, publishes the next ones.
//!
//! It hands out SST ids (from its epoch's range, never twice), and publishes each flushed SST as
//! a new version — SST added, WAL floor raised, time mark recorded — with put-if-absent, and
//! each compaction's result as one — inputs replaced by outputs, history floor raised. Once a
//! version is published it becomes part of the read view, with the SST readers it needs, the
//! compactor hears of it, the SSTs it no longer names go to the GC sweeper (each pinned by a
//! weak reference to its reader), and older records are pruned.
//!
//! Promises:
//! - a version is installed in the read view only after its record is durably published, and
//!   names only SSTs the flusher or a compaction wrote durably before asking (invariant 6);
//! - a compaction's result is published only if every input is still live, in one version;
//!   otherwise nothing is published and the compactor is told why;
//! - if another writer has claimed the database (a newer epoch), this actor fails with
//!   [`ManifestError::Fenced`]: the database stops and writes nothing more;
//! - a record this writer published but lost sight of (an ambiguous storage answer, then a
//!   retry) is built upon, not fought: same epoch means it is this writer's own.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use damselfly_runtimes::{Runtime, RuntimeExt, StorageErrorKind};

use super::{
    ManifestError, ManifestStore, Published, Retention, SstDescriptor, Version, VersionError,
    check_not_fenced, sst_id_range,
};
use crate::compactor::CompactorMessage;
use crate::gc::{GcMessage, RetiredSst};
use crate::kernel::{Actor, Notifier, Reply};
use crate::memtable::Visibility;
use crate::probe::{self, Probe};
use crate::sst::SstReader;
use crate::timestamp::Timestamp;

/// Records kept below the newest when pruning: enough to inspect recent history by hand.
const RECORDS_KEPT: u64 = 16;

/// How often one version is put again after an I/O error before the publisher gives up.
const PUBLISH_ATTEMPTS_MAX: u32 = 8;

/// The wait before the first retry of a publish; it doubles with every retry.
const PUBLISH_RETRY_DELAY: Duration = Duration::from_millis(20);

/// A published manifest version with the open readers of its SSTs: what reads consult.
#[derive(Debug)]
pub struct PublishedVersion {
    /// The version.
    pub version: Version,
    readers: BTreeMap<u64, Arc<SstReader>>,
}

impl PublishedVersion {
    /// `version` with a reader for each of its SSTs.
    pub fn new(version: Version, readers: BTreeMap<u64, Arc<SstReader>>) -> Self {
        debug_assert!(
            version.ssts().all(|sst| readers.contains_key(&sst.id)),
            "every SST of a published version has a reader"
        );
        Self { version, readers }
    }

    /// The version's SSTs with their readers.
    pub fn ssts(&self) -> impl Iterator<Item = (&SstDescriptor, &Arc<SstReader>)> {
        self.version
            .ssts()
            .filter_map(|sst| self.readers.get(&sst.id).map(|reader| (sst, reader)))
    }

    /// The number of SSTs.
    pub fn len(&self) -> usize {
        self.readers.len()
    }

    /// Whether the version has no SST.
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }
}

/// A message to the manifest publisher.
#[derive(Debug)]
pub enum PublisherMessage {
    /// Hand out `count` consecutive SST ids no file has been written under by this writer.
    ReserveSstIds {
        /// How many ids.
        count: u64,
        /// Where the ids go.
        reply: Reply<Range<u64>>,
    },
    /// Publish a version with this SST added and the WAL floor raised to `wal_floor`.
    AddSst {
        /// The SST, durably written.
        descriptor: SstDescriptor,
        /// Its reader.
        reader: Arc<SstReader>,
        /// Every commit at or below this is now in an SST.
        wal_floor: Timestamp,
        /// Answered once the version is published and visible.
        reply: Reply<()>,
    },
    /// Publish a version with the SSTs `removed` replaced by `added` (a compaction's result;
    /// an id in both moves that SST to the level `added` names), and the history floor raised
    /// to `history_floor`. Refused, without publishing, when an SST of `removed` is no longer
    /// live or the change breaks an invariant.
    ReplaceSsts {
        /// The SSTs to remove; every one must be live.
        removed: Vec<u64>,
        /// The SSTs to add, each durably written (or moved).
        added: Vec<SstDescriptor>,
        /// A reader for each added SST that is not a move.
        readers: BTreeMap<u64, Arc<SstReader>>,
        /// Row versions older than this may be gone from the added SSTs.
        history_floor: u64,
        /// Answered once the version is published and visible, or with why it was refused.
        reply: Reply<Result<(), VersionError>>,
    },
}

/// The manifest publisher actor.
#[derive(Debug)]
pub struct Publisher {
    store: ManifestStore,
    current: Arc<PublishedVersion>,
    next_sst_id: u64,
    retention: Retention,
    clock: Arc<dyn Runtime>,
    visibility: Arc<Visibility>,
    peers: PublisherPeers,
}

/// Who hears about new versions.
#[derive(Debug)]
pub struct PublisherPeers {
    /// Told whenever a version is installed.
    pub compactor: Notifier<CompactorMessage>,
    /// Given the SSTs a version no longer names.
    pub gc: Notifier<GcMessage>,
}

impl Publisher {
    /// A publisher continuing from `current` (the version this writer claimed at open).
    pub fn new(
        store: ManifestStore,
        current: Arc<PublishedVersion>,
        retention: Retention,
        clock: Arc<dyn Runtime>,
        visibility: Arc<Visibility>,
        peers: PublisherPeers,
    ) -> Self {
        Self {
            store,
            next_sst_id: current.version.next_sst_id,
            current,
            retention,
            clock,
            visibility,
            peers,
        }
    }

    /// Hands out `count` fresh ids (fewer only when the epoch's range runs out: publishing an
    /// SST under an id past it is then refused).
    fn reserve(&mut self, count: u64) -> Range<u64> {
        let end =
            sst_id_range(self.current.version.epoch).map_or(self.next_sst_id, |range| range.end);
        let start = self.next_sst_id.min(end);
        self.next_sst_id = start.saturating_add(count).min(end);
        start..self.next_sst_id
    }

    async fn add_sst(
        &mut self,
        descriptor: SstDescriptor,
        reader: Arc<SstReader>,
        wal_floor: Timestamp,
    ) -> Result<(), ManifestError> {
        let id = descriptor.id;
        let published = self
            .publish_change(|base| {
                base.successor()
                    .with_sst_added(descriptor.clone())?
                    .with_wal_floor(wal_floor.get())
            })
            .await?;
        let mut readers = self.current.readers.clone();
        readers.insert(id, reader);
        self.install(published, readers);
        Ok(())
    }

    /// Replaces SSTs; `Ok(Err(_))` when the change is refused (nothing was published).
    async fn replace_ssts(
        &mut self,
        removed: Vec<u64>,
        added: Vec<SstDescriptor>,
        mut new_readers: BTreeMap<u64, Arc<SstReader>>,
        history_floor: u64,
    ) -> Result<Result<(), VersionError>, ManifestError> {
        let change = |base: &Version| {
            base.successor()
                .with_ssts_replaced(&removed, added.clone())?
                .with_history_floor(history_floor)
        };
        // Checked on the current version first: a refused change publishes nothing.
        if let Err(refused) = change(&self.current.version) {
            return Ok(Err(refused));
        }
        if let Some(sst) = added
            .iter()
            .find(|sst| !new_readers.contains_key(&sst.id) && !removed.contains(&sst.id))
        {
            return Ok(Err(VersionError::InvalidSst {
                id: sst.id,
                reason: "it comes without a reader".to_owned(),
            }));
        }
        let published = self.publish_change(change).await?;
        let mut readers = self.current.readers.clone();
        let mut retired = Vec::new();
        for id in &removed {
            let Some(reader) = readers.remove(id) else {
                continue;
            };
            match added.iter().any(|sst| sst.id == *id) {
                true => {
                    readers.insert(*id, reader);
                }
                false => retired.push(RetiredSst {
                    id: *id,
                    pin: Some(Arc::downgrade(&reader)),
                    may_be_missing: false,
                }),
            }
        }
        readers.append(&mut new_readers);
        self.install(published, readers);
        // The sweeper may have stopped (closing); the next open finds these as orphans.
        let _ = self.peers.gc.notify(GcMessage::Retired { ssts: retired });
        Ok(Ok(()))
    }

    /// Publishes `change` applied to the current version, building it again on a newer record
    /// of this writer's own when it finds one in its way.
    async fn publish_change(
        &self,
        change: impl Fn(&Version) -> Result<Version, VersionError>,
    ) -> Result<Version, ManifestError> {
        let mut base = self.current.version.clone();
        loop {
            let next = change(&base)?.with_time_mark(self.clock.wall_clock_ms(), &self.retention);
            match self.publish(&next).await? {
                Published::Created => return Ok(next),
                // Only this writer publishes in its epoch: a newer record of the same epoch is
                // one of its own it lost sight of. Anything newer is checked for fencing.
                Published::Superseded { latest } => {
                    check_not_fenced(self.current.version.epoch, &latest)?;
                    tracing::warn!(
                        number = latest.number,
                        "building on a manifest record this writer published earlier"
                    );
                    base = latest;
                }
            }
        }
    }

    /// Publishes `next`, putting the same bytes again after an I/O error. Such an error leaves
    /// the outcome unknown — the put may have applied and only its answer been lost, as object
    /// stores do — and the store reads the record back on the next attempt: finding its own
    /// bytes under the number counts as published, never as a lost race.
    async fn publish(&self, next: &Version) -> Result<Published, ManifestError> {
        let mut delay = PUBLISH_RETRY_DELAY;
        let mut attempt = 1;
        loop {
            match self.store.publish(next).await {
                Err(ManifestError::Storage(error))
                    if error.kind == StorageErrorKind::Io && attempt < PUBLISH_ATTEMPTS_MAX =>
                {
                    tracing::warn!(%error, attempt, number = next.number, "publishing a manifest version failed; retrying");
                    probe::hit(&*self.clock, Probe::ManifestPublishRetried);
                    self.clock.sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    fn install(&mut self, version: Version, readers: BTreeMap<u64, Arc<SstReader>>) {
        tracing::debug!(
            number = version.number,
            ssts = readers.len(),
            "manifest version published"
        );
        let published = Arc::new(PublishedVersion::new(version, readers));
        self.visibility.set_version(Arc::clone(&published));
        self.current = published;
        // The compactor may have stopped (closing); then no more compactions are wanted.
        let _ = self
            .peers
            .compactor
            .notify(CompactorMessage::VersionChanged);
    }

    /// Deletes records well below the newest; failures only leave records behind.
    async fn prune(&self) {
        let keep_from = self.current.version.number.saturating_sub(RECORDS_KEPT);
        if let Err(error) = self.store.prune(keep_from).await {
            tracing::warn!(%error, "could not prune old manifest records; will retry");
            probe::hit(&*self.clock, Probe::ManifestPruneFailed);
        }
    }
}

impl Actor for Publisher {
    type Message = PublisherMessage;
    type Error = ManifestError;

    const NAME: &'static str = "manifest-publisher";

    async fn handle(&mut self, message: PublisherMessage) -> Result<(), ManifestError> {
        match message {
            PublisherMessage::ReserveSstIds { count, reply } => {
                reply.send(self.reserve(count));
                Ok(())
            }
            PublisherMessage::AddSst {
                descriptor,
                reader,
                wal_floor,
                reply,
            } => {
                self.add_sst(descriptor, reader, wal_floor).await?;
                reply.send(());
                self.prune().await;
                Ok(())
            }
            PublisherMessage::ReplaceSsts {
                removed,
                added,
                readers,
                history_floor,
                reply,
            } => {
                let outcome = self
                    .replace_ssts(removed, added, readers, history_floor)
                    .await?;
                let published = outcome.is_ok();
                reply.send(outcome);
                if published {
                    self.prune().await;
                }
                Ok(())
            }
        }
    }
}
