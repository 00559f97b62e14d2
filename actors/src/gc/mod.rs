//! The GC sweeper actor: deletes the SST files nothing can reach any more.
//!
//! Candidates come from three places: the publisher retires the SSTs a new version no longer
//! names ([`GcMessage::Retired`], each with a *pin*: a weak reference to its reader, alive as
//! long as a snapshot, scan or older read view still holds it); the compactor retires the
//! output ids of a job that failed or lost its race (files that may or may not exist); and at
//! start the sweeper lists the SST folder for *orphans* — files of an earlier writer (an older
//! epoch's ids) that the current version does not name: a flush or compaction that crashed
//! before publishing, or a sweep a crash interrupted.
//!
//! [`plan`] decides, as a pure function, which candidates are due: unpinned, past the grace
//! period since they became candidates, and not named by the current version. The sweeper then
//! deletes them.
//!
//! Promises (invariant 5):
//! - a file named by the current version, or held by a live reader, is never deleted — checked
//!   again right before each delete;
//! - every unreachable file is eventually deleted: a failed delete stays a candidate and is
//!   retried, and whatever a crash leaves behind is an orphan at the next start;
//! - deleting waits out the grace period, so a reader elsewhere (a follower that loaded an
//!   older version) has that long to finish with a file after it left the current version.
//!
//! WAL segments are not the sweeper's: the WAL writer deletes the segments below the floor once
//! the version that raised the floor is published (see `wal`).

mod msg;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use damselfly_runtimes::{Instant, Runtime, Storage, StorageError, StorageErrorKind};

pub use self::msg::{GcMessage, GcReport, RetiredSst};
use self::plan::{Candidate, Verdict};
use crate::kernel::Actor;
use crate::manifest::{SST_DIR, sst_id_from_path, sst_id_range, sst_path};
use crate::memtable::Visibility;
use crate::metrics::EngineMetrics;
use crate::probe::{self, Probe};

/// How the sweeper paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// How long a file stays after it became unreachable (default one minute).
    pub grace_period: Duration,
    /// How often pending candidates are looked at (default one second).
    pub interval: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(60),
            interval: Duration::from_secs(1),
        }
    }
}

/// A sweep failure that a caller asked about (sweeps on their own only log).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Listing the SST folder failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The GC sweeper actor.
#[derive(Debug)]
pub struct GcSweeper {
    storage: Arc<dyn Storage>,
    runtime: Arc<dyn Runtime>,
    visibility: Arc<Visibility>,
    metrics: Arc<EngineMetrics>,
    options: GcOptions,
    candidates: BTreeMap<u64, Candidate>,
    /// Whether the orphan scan is still to do (it failed, or has not run yet).
    scan_pending: bool,
}

impl GcSweeper {
    /// A sweeper of the SSTs on `storage`.
    pub fn new(
        storage: Arc<dyn Storage>,
        runtime: Arc<dyn Runtime>,
        visibility: Arc<Visibility>,
        metrics: Arc<EngineMetrics>,
        options: GcOptions,
    ) -> Self {
        Self {
            storage,
            runtime,
            visibility,
            metrics,
            options,
            candidates: BTreeMap::new(),
            scan_pending: true,
        }
    }

    /// Lists the SST folder and makes a candidate of every orphan: an SST of an older epoch's
    /// ids that the current version does not name. (Files of this writer's own ids are either
    /// published or reported by whoever wrote them; files of a newer epoch belong to a writer
    /// that fenced this one.)
    async fn scan_orphans(&mut self) -> Result<(), GcError> {
        // The version first: a file retired after it is still named there (and its pin comes
        // with the retirement); one retired before it is an orphan here until its retirement,
        // queued behind this scan, adds its pin.
        let (view, _) = self.visibility.snapshot();
        let files = self.storage.list(SST_DIR).await?;
        let version = &view.version.version;
        let own_ids_start = sst_id_range(version.epoch).map_or(u64::MAX, |range| range.start);
        let now = self.runtime.now();
        for file in files {
            let Some(id) = sst_id_from_path(&file.path) else {
                continue;
            };
            if id < own_ids_start && version.sst(id).is_none() {
                tracing::debug!(path = %file.path, "found an orphaned SST");
                self.candidates.entry(id).or_insert(Candidate {
                    since: now,
                    pin: None,
                    may_be_missing: true,
                });
            }
        }
        self.scan_pending = false;
        Ok(())
    }

    /// Deletes every due candidate (or only reports them, for a dry run).
    async fn sweep(&mut self, dry_run: bool) -> GcReport {
        if self.scan_pending
            && let Err(error) = self.scan_orphans().await
        {
            tracing::warn!(%error, "listing SSTs for orphans failed; will retry");
        }
        let (view, _) = self.visibility.snapshot();
        let verdicts = plan::plan(
            &self.candidates,
            &view.version.version,
            self.runtime.now(),
            self.options.grace_period,
        );
        let mut report = GcReport::default();
        for (id, verdict) in verdicts {
            let path = sst_path(id);
            match verdict {
                Verdict::Live => {
                    // Named again by the current version (a move of a retired id cannot happen,
                    // but a reachable file is never a candidate).
                    self.candidates.remove(&id);
                }
                Verdict::Waiting => report.waiting.push(path),
                Verdict::Due if dry_run => report.deletable.push(path),
                Verdict::Due => self.delete(id, path, &mut report).await,
            }
        }
        report
    }

    async fn delete(&mut self, id: u64, path: String, report: &mut GcReport) {
        // Checked right before the delete: the current version does not name the file.
        let (view, _) = self.visibility.snapshot();
        if view.version.version.sst(id).is_some() {
            self.candidates.remove(&id);
            return;
        }
        match self.storage.delete(&path).await {
            Ok(()) => {
                self.candidates.remove(&id);
                self.metrics.gc_files_deleted.add(1);
                probe::hit(&*self.runtime, Probe::GcDeleted);
                tracing::debug!(path, "deleted an unreachable SST");
                report.deleted.push(path);
            }
            Err(error)
                if error.kind == StorageErrorKind::NotFound
                    && self.candidates.get(&id).is_some_and(|c| c.may_be_missing) =>
            {
                self.candidates.remove(&id);
            }
            Err(error) => {
                tracing::warn!(%error, path, "deleting an unreachable SST failed; will retry");
                self.metrics.gc_delete_failures.add(1);
                report.waiting.push(path);
            }
        }
    }
}

impl Actor for GcSweeper {
    type Message = GcMessage;
    type Error = GcError;

    const NAME: &'static str = "gc-sweeper";

    async fn handle(&mut self, message: GcMessage) -> Result<(), GcError> {
        match message {
            GcMessage::Retired { ssts } => {
                let now = self.runtime.now();
                for sst in ssts {
                    let candidate = self.candidates.entry(sst.id).or_insert(Candidate {
                        since: now,
                        pin: None,
                        may_be_missing: sst.may_be_missing,
                    });
                    // Found as an orphan first, then retired: the pin must count.
                    if sst.pin.is_some() {
                        candidate.pin = sst.pin;
                    }
                }
            }
            GcMessage::Sweep { dry_run, reply } => {
                let report = self.sweep(dry_run).await;
                reply.send(report);
            }
        }
        Ok(())
    }

    fn next_tick(&self) -> Option<Instant> {
        (self.scan_pending || !self.candidates.is_empty())
            .then(|| self.runtime.now() + self.options.interval)
    }

    async fn on_tick(&mut self, _now: Instant) -> Result<(), GcError> {
        self.sweep(false).await;
        Ok(())
    }
}
