//! Versions: the whole state of the database's files at one moment.
//!
//! A [`Version`] lists every live SST by level with its key range, row count, size and
//! timestamp range, the WAL floor, the last commit timestamp, the history floor and the time
//! index. It is complete: a version never refers to an earlier one, so each record on storage
//! is its own checkpoint and opening reads exactly one record, whatever the history.
//!
//! Versions are values. The builders here (`successor`, `with_*`) are pure functions that the
//! publisher composes and then publishes; they refuse changes that would break an invariant,
//! and [`Version::validate`] checks every invariant again where a record is written and where
//! it is read back:
//!
//! - `wal_floor <= last_commit` and `history_floor <= last_commit`; the builders never lower
//!   `last_commit`, `wal_floor` or `history_floor`;
//! - each SST sits in the level its descriptor names, is well formed (keys and timestamps
//!   ordered, at least one row, no more deletes than rows, timestamps `1..=last_commit`), and
//!   its id is unique and below `next_sst_id`;
//! - level 0 is newest first (by newest timestamp, then id); deeper levels are sorted by
//!   smallest key, then id;
//! - the time index has strictly increasing commits (up to `last_commit`) and non-decreasing
//!   wall times;
//! - `next_sst_id` stays inside the id range of the version's epoch ([`sst_id_range`]).
//!
//! SST ids are partitioned by writer epoch: the writer of epoch `e` allocates ids only from
//! `sst_id_range(e)`, which a claim starts `next_sst_id` at. A fenced writer does not learn
//! that it is fenced until it next publishes, and meanwhile it may still write an SST; with
//! disjoint id ranges that file can never have the path of a file the new writer wrote or will
//! write, so it cannot replace data a published version names. (Its file is an orphan that no
//! version names.)

use std::collections::BTreeSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::hex;
use super::retention::{self, Retention, TimeMark};
use crate::sst::{FooterChecksum, SstInfo};
use crate::table::KeyBytes;

/// The folder of the SSTs, relative to the database root.
pub const SST_DIR: &str = "sst";

/// How many SST ids each writer epoch owns: epoch `e` allocates from `e * SST_IDS_PER_EPOCH`.
pub const SST_IDS_PER_EPOCH: u64 = 1 << 32;

/// Levels are numbered `0..LEVEL_COUNT_MAX`.
pub const LEVEL_COUNT_MAX: u32 = 64;

/// The path of SST `id`: `sst/{id:020}.parquet`, so that name order is id order.
pub fn sst_path(id: u64) -> String {
    format!("{SST_DIR}/{id:020}.parquet")
}

/// The id of the SST at `path`, or `None` if `path` is not an SST name ([`sst_path`]).
pub fn sst_id_from_path(path: &str) -> Option<u64> {
    let digits = path
        .strip_prefix(SST_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".parquet")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The SST ids the writer of `epoch` may allocate, or `None` past the last epoch
/// (`u64::MAX / SST_IDS_PER_EPOCH - 1`).
pub fn sst_id_range(epoch: u64) -> Option<Range<u64>> {
    let start = epoch.checked_mul(SST_IDS_PER_EPOCH)?;
    let end = start.checked_add(SST_IDS_PER_EPOCH)?;
    Some(start..end)
}

/// A version that breaks an invariant, or a change that would make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// An SST descriptor is not well formed or not where it belongs.
    #[error("SST {id} is invalid: {reason}")]
    InvalidSst {
        /// The SST's id.
        id: u64,
        /// What is wrong.
        reason: String,
    },
    /// An SST id appears twice.
    #[error("SST {id} is already in the version")]
    DuplicateSst {
        /// The SST's id.
        id: u64,
    },
    /// A change names an SST that is not in the version (a compaction whose input was
    /// replaced meanwhile: its result must be dropped, not published).
    #[error("SST {id} is not live in this version")]
    SstNotLive {
        /// The SST's id.
        id: u64,
    },
    /// A new SST's id is not in the id range of the version's epoch.
    #[error("SST id {id} is outside the id range {range:?} of writer epoch {epoch}")]
    SstIdOutsideEpoch {
        /// The SST's id.
        id: u64,
        /// The version's epoch.
        epoch: u64,
        /// The ids that epoch may use.
        range: Range<u64>,
    },
    /// No epoch is left to claim (or the epoch has no id range).
    #[error("writer epoch {epoch} has no SST id range: the epochs are exhausted")]
    EpochsExhausted {
        /// The epoch.
        epoch: u64,
    },
    /// Fields that contradict each other (floors above the last commit, a floor lowered, an
    /// unordered level or time index, ...).
    #[error("inconsistent version: {reason}")]
    Inconsistent {
        /// What is wrong.
        reason: String,
    },
}

fn inconsistent(reason: String) -> VersionError {
    VersionError::Inconsistent { reason }
}

/// One SST (a Parquet file) as the manifest knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SstDescriptor {
    /// The SST's id; its file is [`sst_path`]`(id)`.
    pub id: u64,
    /// The level it belongs to (0: flushed, possibly overlapping others).
    pub level: u32,
    /// Rows in the file, deletes included (at least 1).
    pub rows: u64,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The smallest key in the file (encoded; hex in the record).
    #[serde(with = "hex")]
    pub min_key: KeyBytes,
    /// The largest key in the file (encoded; hex in the record).
    #[serde(with = "hex")]
    pub max_key: KeyBytes,
    /// The oldest commit timestamp of a row in the file (at least 1).
    pub min_timestamp: u64,
    /// The newest commit timestamp of a row in the file.
    pub max_timestamp: u64,
    /// How many of the rows delete their key.
    pub deletes: u64,
    /// Whether every key appears in at most one row (one version per key), so that a point
    /// read can stop at the first row it finds.
    pub unique_keys: bool,
    /// The length of the file's footer (Parquet's metadata, its length and `PAR1`: the file's
    /// last bytes), which cannot hold its own checksum.
    pub footer_bytes: u64,
    /// The CRC32C of the footer; the footer holds the checksums of the rest of the file.
    pub footer_crc32c: u32,
}

impl SstDescriptor {
    /// The descriptor of SST `id` at `level`, holding what `info` says.
    pub fn from_info(id: u64, level: u32, info: &SstInfo) -> Self {
        Self {
            id,
            level,
            rows: info.rows,
            bytes: info.bytes,
            min_key: info.min_key.clone(),
            max_key: info.max_key.clone(),
            min_timestamp: info.min_ts,
            max_timestamp: info.max_ts,
            deletes: info.deletes,
            unique_keys: info.unique_keys,
            footer_bytes: info.footer.bytes,
            footer_crc32c: info.footer.crc32c,
        }
    }

    /// The file's path, relative to the database root.
    pub fn path(&self) -> String {
        sst_path(self.id)
    }

    /// The checksum of the file's footer, to open the file with.
    pub fn footer_checksum(&self) -> FooterChecksum {
        FooterChecksum {
            bytes: self.footer_bytes,
            crc32c: self.footer_crc32c,
        }
    }

    /// Checks the descriptor on its own: its level, ordered key and timestamp ranges, rows and
    /// deletes.
    pub fn validate(&self) -> Result<(), VersionError> {
        let invalid = |reason: String| VersionError::InvalidSst {
            id: self.id,
            reason,
        };
        if self.level >= LEVEL_COUNT_MAX {
            return Err(invalid(format!(
                "its level {} is not below {LEVEL_COUNT_MAX}",
                self.level
            )));
        }
        if self.rows == 0 {
            return Err(invalid("it has no rows".to_owned()));
        }
        if self.deletes > self.rows {
            return Err(invalid(format!(
                "it has {} deletes but only {} rows",
                self.deletes, self.rows
            )));
        }
        if self.min_key > self.max_key {
            return Err(invalid(format!(
                "its smallest key {:?} is above its largest {:?}",
                self.min_key, self.max_key
            )));
        }
        if self.min_timestamp == 0 || self.min_timestamp > self.max_timestamp {
            return Err(invalid(format!(
                "its timestamp range {}..={} is empty or starts at 0",
                self.min_timestamp, self.max_timestamp
            )));
        }
        // A Parquet footer ends in the metadata's 4-byte length and `PAR1`.
        if self.footer_bytes < 8 || self.footer_bytes > self.bytes {
            return Err(invalid(format!(
                "its footer of {} bytes does not fit its {} bytes",
                self.footer_bytes, self.bytes
            )));
        }
        Ok(())
    }
}

/// The whole state of the database's files at one moment; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The record number: version `n` is stored as `manifest/{n:020}.json`; 0 is the empty
    /// version that was never stored.
    pub number: u64,
    /// The epoch of the writer that published it (raised by every [`claim`]).
    ///
    /// [`claim`]: super::ManifestStore::claim
    pub epoch: u64,
    /// The newest commit timestamp the database had issued when this version was made: after
    /// a crash the commit clock resumes above it (and above whatever the WAL replays).
    pub last_commit: u64,
    /// Every commit `<= wal_floor` is in an SST of this version: WAL replay skips them, and
    /// segments that hold only such commits may be deleted.
    pub wal_floor: u64,
    /// The oldest commit timestamp whose state the SSTs still hold: compaction may have
    /// dropped row versions only older than this. Never lowered.
    pub history_floor: u64,
    /// The next SST id the version's writer would allocate (ids below it may be in use).
    pub next_sst_id: u64,
    /// The SSTs by level; level 0 newest first, deeper levels by smallest key.
    pub levels: Vec<Vec<SstDescriptor>>,
    /// When commits happened, for retention by age (see [`Retention`]).
    pub time_index: Vec<TimeMark>,
}

impl Version {
    /// The state of a database with no files, as seen by the writer of `epoch`; number 0.
    pub fn empty(epoch: u64) -> Version {
        Version {
            number: 0,
            epoch,
            last_commit: 0,
            wal_floor: 0,
            history_floor: 0,
            next_sst_id: sst_id_range(epoch).map_or(0, |range| range.start),
            levels: Vec::new(),
            time_index: Vec::new(),
        }
    }

    /// The same state as the next record of the same writer (number + 1): the start of every
    /// change the publisher makes.
    pub fn successor(&self) -> Version {
        Version {
            number: self.number + 1,
            ..self.clone()
        }
    }

    /// The version a new writer publishes to claim the database: number + 1, epoch + 1, and
    /// `next_sst_id` moved into the new epoch's id range.
    pub fn claimed(&self) -> Result<Version, VersionError> {
        let epoch = self.epoch + 1;
        let range = sst_id_range(epoch).ok_or(VersionError::EpochsExhausted { epoch })?;
        Ok(Version {
            number: self.number + 1,
            epoch,
            next_sst_id: self.next_sst_id.max(range.start),
            ..self.clone()
        })
    }

    /// The SSTs of `level` (none past the deepest level).
    pub fn level(&self, level: u32) -> &[SstDescriptor] {
        usize::try_from(level)
            .ok()
            .and_then(|level| self.levels.get(level))
            .map_or(&[], Vec::as_slice)
    }

    /// Every SST, level by level.
    pub fn ssts(&self) -> impl Iterator<Item = &SstDescriptor> {
        self.levels.iter().flatten()
    }

    /// The SST with `id`, if it is live in this version.
    pub fn sst(&self, id: u64) -> Option<&SstDescriptor> {
        self.ssts().find(|sst| sst.id == id)
    }

    /// Adds a newly written SST to its level (the front of level 0; by key below). Its id must
    /// be new and in the epoch's range; `next_sst_id` and `last_commit` are raised past it.
    pub fn with_sst_added(self, sst: SstDescriptor) -> Result<Version, VersionError> {
        self.with_ssts_replaced(&[], vec![sst])
    }

    /// Replaces the SSTs `removed` by `added` in one step (a compaction's result, or a move to
    /// another level when an id is in both). Every removed SST must be live, so a stale or
    /// duplicated job fails here instead of resurrecting or losing data. Added SSTs not being
    /// moved must have new ids in the epoch's range.
    pub fn with_ssts_replaced(
        mut self,
        removed: &[u64],
        added: Vec<SstDescriptor>,
    ) -> Result<Version, VersionError> {
        let removed: BTreeSet<u64> = removed.iter().copied().collect();
        for &id in &removed {
            if self.sst(id).is_none() {
                return Err(VersionError::SstNotLive { id });
            }
        }
        let epoch_range =
            sst_id_range(self.epoch).ok_or(VersionError::EpochsExhausted { epoch: self.epoch })?;
        for level in &mut self.levels {
            level.retain(|sst| !removed.contains(&sst.id));
        }
        for sst in added {
            sst.validate()?;
            if !removed.contains(&sst.id) && !epoch_range.contains(&sst.id) {
                return Err(VersionError::SstIdOutsideEpoch {
                    id: sst.id,
                    epoch: self.epoch,
                    range: epoch_range,
                });
            }
            if self.sst(sst.id).is_some() {
                return Err(VersionError::DuplicateSst { id: sst.id });
            }
            self.last_commit = self.last_commit.max(sst.max_timestamp);
            if epoch_range.contains(&sst.id) {
                self.next_sst_id = self.next_sst_id.max(sst.id + 1);
            }
            self.insert(sst);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
        self.validate()?;
        Ok(self)
    }

    /// Raises the WAL floor to `wal_floor` (at most `last_commit`; never lowered).
    pub fn with_wal_floor(mut self, wal_floor: u64) -> Result<Version, VersionError> {
        if wal_floor < self.wal_floor || wal_floor > self.last_commit {
            return Err(inconsistent(format!(
                "the WAL floor can move from {} only up to the last commit {}, not to {wal_floor}",
                self.wal_floor, self.last_commit
            )));
        }
        self.wal_floor = wal_floor;
        Ok(self)
    }

    /// Records that the database has issued commits up to `last_commit` (never lowered).
    pub fn with_last_commit(mut self, last_commit: u64) -> Result<Version, VersionError> {
        if last_commit < self.last_commit {
            return Err(inconsistent(format!(
                "the last commit cannot go back from {} to {last_commit}",
                self.last_commit
            )));
        }
        self.last_commit = last_commit;
        Ok(self)
    }

    /// Records that compaction may have dropped row versions older than `horizon`: the
    /// history floor becomes the larger of the two (at most `last_commit`).
    pub fn with_history_floor(mut self, horizon: u64) -> Result<Version, VersionError> {
        if horizon > self.last_commit {
            return Err(inconsistent(format!(
                "the history floor {horizon} cannot pass the last commit {}",
                self.last_commit
            )));
        }
        self.history_floor = self.history_floor.max(horizon);
        Ok(self)
    }

    /// Marks in the time index that every commit up to `last_commit` had happened by
    /// `now_wall_ms`, and drops the marks `retention` no longer needs. Call it on every
    /// version about to be published, with the wall clock from the runtime.
    pub fn with_time_mark(mut self, now_wall_ms: u64, retention: &Retention) -> Version {
        retention::add_mark(
            &mut self.time_index,
            self.last_commit,
            now_wall_ms,
            retention,
        );
        self
    }

    /// The time-travel horizon: the oldest commit timestamp a read may ask for under
    /// `retention` at `now_wall_ms`. It is the newer of the history floor (what the SSTs still
    /// hold) and the retention horizon computed from this version's last commit and time index
    /// (see [`Retention::horizon`]; commits newer than `last_commit` can only make the true
    /// horizon newer, so this one errs towards keeping more).
    pub fn oldest_timestamp(&self, retention: &Retention, now_wall_ms: u64) -> u64 {
        let horizon = retention.horizon(self.last_commit, &self.time_index, now_wall_ms);
        horizon.max(self.history_floor)
    }

    /// Checks every invariant listed in the module docs.
    pub fn validate(&self) -> Result<(), VersionError> {
        if self.wal_floor > self.last_commit || self.history_floor > self.last_commit {
            return Err(inconsistent(format!(
                "the WAL floor {} and history floor {} must not pass the last commit {}",
                self.wal_floor, self.history_floor, self.last_commit
            )));
        }
        let range =
            sst_id_range(self.epoch).ok_or(VersionError::EpochsExhausted { epoch: self.epoch })?;
        if self.next_sst_id > range.end {
            return Err(inconsistent(format!(
                "next SST id {} is past the id range {range:?} of epoch {}",
                self.next_sst_id, self.epoch
            )));
        }
        if self.levels.len() > LEVEL_COUNT_MAX as usize {
            return Err(inconsistent(format!(
                "it has {} levels; at most {LEVEL_COUNT_MAX} are allowed",
                self.levels.len()
            )));
        }
        let mut ids = BTreeSet::new();
        for (level, ssts) in self.levels.iter().enumerate() {
            for sst in ssts {
                self.validate_member(sst, level)?;
                if !ids.insert(sst.id) {
                    return Err(VersionError::DuplicateSst { id: sst.id });
                }
            }
            if let Some(pair) = ssts.windows(2).find(|pair| !in_level_order(level, pair)) {
                return Err(VersionError::InvalidSst {
                    id: pair[1].id,
                    reason: format!("it is out of order in level {level}"),
                });
            }
        }
        self.validate_time_index()
    }

    fn validate_member(&self, sst: &SstDescriptor, level: usize) -> Result<(), VersionError> {
        sst.validate()?;
        let invalid = |reason: String| VersionError::InvalidSst { id: sst.id, reason };
        if usize::try_from(sst.level).ok() != Some(level) {
            return Err(invalid(format!(
                "it says level {} but is listed in level {level}",
                sst.level
            )));
        }
        if sst.id >= self.next_sst_id {
            return Err(invalid(format!(
                "its id is not below the next SST id {}",
                self.next_sst_id
            )));
        }
        if sst.max_timestamp > self.last_commit {
            return Err(invalid(format!(
                "it holds commit {} but the last commit is {}",
                sst.max_timestamp, self.last_commit
            )));
        }
        Ok(())
    }

    fn validate_time_index(&self) -> Result<(), VersionError> {
        let unordered = self
            .time_index
            .windows(2)
            .any(|pair| pair[0].commit >= pair[1].commit || pair[0].wall_ms > pair[1].wall_ms);
        let beyond = self
            .time_index
            .last()
            .is_some_and(|mark| mark.commit > self.last_commit);
        if unordered || beyond {
            return Err(inconsistent(format!(
                "the time index must have increasing commits up to the last commit {} and \
                 non-decreasing wall times",
                self.last_commit
            )));
        }
        Ok(())
    }

    /// Inserts `sst` at its place in its level, creating missing levels.
    fn insert(&mut self, sst: SstDescriptor) {
        // `SstDescriptor::validate` bounds the level by LEVEL_COUNT_MAX, so this cannot fail.
        let level = usize::try_from(sst.level).expect("a validated level fits usize");
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let ssts = &mut self.levels[level];
        let position = ssts.partition_point(|existing| in_level_order(level, &[existing, &sst]));
        ssts.insert(position, sst);
    }
}

/// Whether `pair[0]` may come before `pair[1]` in `level`: level 0 newest first, deeper levels
/// by smallest key; ids break ties (newer first in level 0, older first below).
fn in_level_order<T: std::borrow::Borrow<SstDescriptor>>(level: usize, pair: &[T]) -> bool {
    let (first, second) = (pair[0].borrow(), pair[1].borrow());
    if level == 0 {
        (second.max_timestamp, second.id) < (first.max_timestamp, first.id)
    } else {
        (&first.min_key, first.id) < (&second.min_key, second.id)
    }
}
