//! [`ManifestStore`]: publishing, claiming, loading and pruning manifest records.
//!
//! The store holds no state of its own: every answer comes from the storage, so any number of
//! stores (in one process or many) can share a root, and the rules in the [module
//! docs](super) decide between them.

use std::sync::Arc;

use damselfly_runtimes::{PutOutcome, Storage, StorageErrorKind};

use super::record::{self, MANIFEST_DIR};
use super::{ManifestError, Version, VersionError};

/// How often a claim is retried when other claimants keep winning the race.
pub const CLAIM_ATTEMPTS_MAX: u32 = 64;

/// How often `load_latest` lists again when the record it listed was pruned meanwhile.
const LOAD_ATTEMPTS_MAX: u32 = 8;

/// What [`ManifestStore::publish`] did (being fenced is [`ManifestError::Fenced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The version is published: it is the newest record, and no writer can publish over it
    /// except with a higher number (which a writer of the same epoch builds on it, and a
    /// writer of an older epoch cannot take).
    Created,
    /// Another record of the same epoch took the number, or a newer one exists: the version
    /// is not the newest. `latest` is the newest version; the caller rebuilds its change on it
    /// and publishes again. (With one writer per epoch this only happens when the caller's
    /// idea of the current version was out of date.)
    Superseded {
        /// The newest version in the store.
        latest: Version,
    },
}

/// The decision every writer applies when it finds `latest` in its way: a newer epoch means
/// this writer was fenced and must stop; otherwise it may build on `latest`.
pub fn check_not_fenced(own_epoch: u64, latest: &Version) -> Result<(), ManifestError> {
    if latest.epoch > own_epoch {
        return Err(ManifestError::Fenced {
            own_epoch,
            current_epoch: latest.epoch,
        });
    }
    Ok(())
}

/// What a single publish attempt found.
enum Attempt {
    Created,
    Lost { latest: Version },
}

/// Whether a record holding exactly the bytes being published is this writer's own earlier
/// put. True for publishes: a version carries its writer's epoch, and one writer holds each
/// epoch. False for claims, whose epoch is not held by anyone yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnBytes {
    AreOurs,
    AreAnothers,
}

/// The manifest records of one database root.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    storage: Arc<dyn Storage>,
}

impl ManifestStore {
    /// The manifest under the root of `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The numbers of the records present, ascending. Files in `manifest/` that are not
    /// records are ignored.
    pub async fn record_numbers(&self) -> Result<Vec<u64>, ManifestError> {
        let mut numbers = Vec::new();
        for file in self.storage.list(MANIFEST_DIR).await? {
            match record::number_from_path(&file.path) {
                Some(number) => numbers.push(number),
                None => {
                    tracing::debug!(path = %file.path, "ignoring a file in the manifest folder that is not a record")
                }
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The version stored as record `number`, checked (see [`record::decode`]).
    pub async fn load(&self, number: u64) -> Result<Version, ManifestError> {
        let path = record::record_path(number);
        let bytes = self.storage.read(&path).await?;
        record::decode(&path, &bytes)
    }

    /// The newest version, or `None` if nothing was ever published. A damaged newest record is
    /// an error, never skipped for an older one: the WAL and SSTs an older record relies on
    /// may be gone.
    pub async fn load_latest(&self) -> Result<Option<Version>, ManifestError> {
        self.load_newer_than(0).await
    }

    /// The newest version if its number is above `number`, else `None` — one listing when
    /// nothing newer was published (how a read-only follower polls).
    pub async fn load_newer_than(&self, number: u64) -> Result<Option<Version>, ManifestError> {
        let mut attempt = 1;
        loop {
            let Some(&newest) = self.record_numbers().await?.last() else {
                return Ok(None);
            };
            if newest <= number {
                return Ok(None);
            }
            match self.load(newest).await {
                // A writer published a newer record and pruned this one after we listed.
                Err(ManifestError::Storage(error))
                    if error.kind == StorageErrorKind::NotFound && attempt < LOAD_ATTEMPTS_MAX =>
                {
                    attempt += 1;
                }
                result => return result.map(Some),
            }
        }
    }

    /// Publishes `next` as record `next.number` with put-if-absent, then checks that no newer
    /// record exists (see the module docs for why). `Ok(Created)`: it is the newest version.
    /// `Ok(Superseded)`: it is not, and a writer of the same or an older epoch is in the way.
    /// `Err(Fenced)`: a newer epoch claimed the database; the caller must stop and write or
    /// delete nothing more — whether `next` itself took effect is not known, so even the SSTs
    /// it added may be named by the new writer's versions.
    ///
    /// Publishing the same version again (after a storage error left the first outcome
    /// unknown) is safe: finding its own bytes under the number counts as created. (A claim
    /// retried the same way finds its record taken and claims the next number instead.)
    pub async fn publish(&self, next: &Version) -> Result<Published, ManifestError> {
        match self.try_publish(next, OwnBytes::AreOurs).await? {
            Attempt::Created => Ok(Published::Created),
            Attempt::Lost { latest } => {
                check_not_fenced(next.epoch, &latest)?;
                Ok(Published::Superseded { latest })
            }
        }
    }

    /// What a writer does when it opens the database: publishes `current` (what
    /// [`load_latest`](Self::load_latest) returned; `None` for a new database) again as the
    /// next number with the next epoch, which fences every older writer. If another record
    /// takes the number first, the claim is retried on top of the newest record, with the
    /// epoch after that one's. Returns the claimed version: recovery replays the WAL above
    /// *its* floor, not `current`'s.
    pub async fn claim(&self, current: Option<Version>) -> Result<Version, ManifestError> {
        let mut base = current.unwrap_or_else(|| Version::empty(0));
        for _ in 0..CLAIM_ATTEMPTS_MAX {
            let candidate = base.claimed()?;
            // Claimants racing from the same base make byte-identical records, so finding
            // "our" bytes proves nothing here: a claim wins only by its own put.
            match self.try_publish(&candidate, OwnBytes::AreAnothers).await? {
                Attempt::Created => {
                    tracing::debug!(
                        number = candidate.number,
                        epoch = candidate.epoch,
                        "manifest claimed"
                    );
                    return Ok(candidate);
                }
                Attempt::Lost { latest } => base = latest,
            }
        }
        Err(ManifestError::ClaimContended {
            attempts: CLAIM_ATTEMPTS_MAX,
        })
    }

    /// Deletes the records numbered below `keep_from`, but never the newest record, whatever
    /// `keep_from` says. Returns how many were deleted. Records someone else deleted meanwhile
    /// are not an error. Only the writer that holds the newest epoch should prune.
    pub async fn prune(&self, keep_from: u64) -> Result<u64, ManifestError> {
        let numbers = self.record_numbers().await?;
        let Some(&newest) = numbers.last() else {
            return Ok(0);
        };
        let keep_from = keep_from.min(newest);
        let mut deleted = 0;
        for number in numbers.into_iter().take_while(|&number| number < keep_from) {
            match self.storage.delete(&record::record_path(number)).await {
                Ok(()) => deleted += 1,
                Err(error) if error.kind == StorageErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        tracing::debug!(keep_from, deleted, "manifest records pruned");
        Ok(deleted)
    }

    /// One publish: put-if-absent (accepting a record with our exact bytes if `own_bytes`
    /// says so), then make sure nothing newer exists. Anything else is a lost race, reported
    /// with the newest version.
    async fn try_publish(
        &self,
        next: &Version,
        own_bytes: OwnBytes,
    ) -> Result<Attempt, ManifestError> {
        if next.number == 0 || next.epoch == 0 {
            return Err(ManifestError::InvalidVersion(VersionError::Inconsistent {
                reason: format!(
                    "stored versions have a number and an epoch of at least 1, not {} and {}",
                    next.number, next.epoch
                ),
            }));
        }
        next.validate()?;
        let path = record::record_path(next.number);
        let bytes = record::encode(next)?;
        if self.storage.put_if_absent(&path, bytes.clone()).await? == PutOutcome::AlreadyExists {
            match self.storage.read(&path).await {
                Ok(existing) if own_bytes == OwnBytes::AreOurs && existing == bytes => {}
                Ok(_) => return self.lost(next).await,
                Err(error) if error.kind == StorageErrorKind::NotFound => {
                    return self.lost(next).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        // The put may have landed in a slot that was pruned long ago (a stale writer): then
        // newer records exist, and the newest record is never deleted, so listing finds one.
        let numbers = self.record_numbers().await?;
        if numbers.last().is_some_and(|&newest| newest > next.number) {
            return self.lost(next).await;
        }
        tracing::debug!(
            number = next.number,
            epoch = next.epoch,
            "manifest version published"
        );
        Ok(Attempt::Created)
    }

    async fn lost(&self, next: &Version) -> Result<Attempt, ManifestError> {
        match self.load_latest().await? {
            Some(latest) => {
                if latest.epoch > next.epoch {
                    tracing::warn!(
                        own_epoch = next.epoch,
                        current_epoch = latest.epoch,
                        "manifest writer fenced by a newer writer"
                    );
                }
                Ok(Attempt::Lost { latest })
            }
            None => Err(ManifestError::Corrupt {
                path: MANIFEST_DIR.to_owned(),
                reason: format!(
                    "record {} was taken but the folder now holds no record",
                    next.number
                ),
            }),
        }
    }
}
