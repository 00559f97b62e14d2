//! Retention: how far back time travel reaches, as a commit timestamp called the *horizon*.
//!
//! Commit timestamps are dense (every commit takes the next one), so the versions a reader can
//! travel to are simply the commit timestamps from the horizon up to the newest. A
//! [`Retention`] keeps a number of them, or those younger than an age, or both (then a version
//! is kept if either rule keeps it).
//!
//! Age needs to know when commits happened. Each published version carries a small *time
//! index*: [`TimeMark`]s `(commit, wall_ms)`, each saying "every commit up to `commit` had
//! happened by wall-clock time `wall_ms`". The index only proves that commits are old, never
//! that they are young, so the horizon it gives is conservative: it never passes a commit that
//! the index does not prove older than the age. Precisely, the age horizon is the commit of
//! the newest mark older than the age — that version was the current one at some moment before
//! the cut-off, so "the table as it was `age` ago" stays readable — or 0 when no mark is that
//! old.
//!
//! The index is bounded: marks are recorded at most about every `age / TIME_INDEX_MARKS` (a
//! closer mark replaces the newest one, which only makes commits look younger), and marks that
//! the horizon can no longer need are dropped. Both only ever move the horizon back, never
//! forward.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// About how many time marks an age retention keeps: the age horizon is precise to roughly
/// `age / TIME_INDEX_MARKS`, always erring towards keeping more.
pub const TIME_INDEX_MARKS: u64 = 512;

/// How far back time travel reaches. With neither rule set, every version is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Keep this many of the newest versions (commit timestamps). `Some(0)` is taken as 1: the
    /// newest version is always readable.
    pub versions: Option<u64>,
    /// Keep the versions committed within this long before now.
    pub age: Option<Duration>,
}

/// One entry of the time index: every commit up to `commit` had happened by `wall_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeMark {
    /// A commit timestamp.
    pub commit: u64,
    /// Wall-clock milliseconds since the Unix epoch, at or after that commit.
    pub wall_ms: u64,
}

impl Retention {
    /// Every version is kept.
    pub const KEEP_ALL: Retention = Retention {
        versions: None,
        age: None,
    };

    /// The oldest commit timestamp this retention keeps, given the newest commit, the time
    /// index (commits increasing, as [`Version::validate`](super::Version::validate) checks)
    /// and the wall clock now. Never newer than `newest_commit`; 0 keeps everything.
    pub fn horizon(&self, newest_commit: u64, time_index: &[TimeMark], now_wall_ms: u64) -> u64 {
        let by_count = self
            .versions
            .map(|versions| (newest_commit + 1).saturating_sub(versions.max(1)));
        let by_age = self.age.map(|age| {
            let cutoff_ms = now_wall_ms.saturating_sub(duration_ms(age));
            newest_old_mark(time_index, cutoff_ms).map_or(0, |mark| mark.commit.min(newest_commit))
        });
        match (by_count, by_age) {
            (Some(count), Some(age)) => count.min(age),
            (Some(horizon), None) | (None, Some(horizon)) => horizon,
            (None, None) => 0,
        }
    }

    /// The least wall-clock distance between two kept marks (0: no age rule, no spacing).
    pub(super) fn mark_spacing_ms(&self) -> u64 {
        self.age
            .map_or(0, |age| duration_ms(age) / TIME_INDEX_MARKS)
    }
}

/// Adds a mark for `commit` at `now_wall_ms` to `index` and drops the marks `retention` can no
/// longer need. The mark's wall time is clamped to never run backwards, and a commit already
/// marked keeps its first mark: both only make commits look younger.
pub(super) fn add_mark(
    index: &mut Vec<TimeMark>,
    commit: u64,
    now_wall_ms: u64,
    retention: &Retention,
) {
    let last = index.last().copied();
    let mark = TimeMark {
        commit,
        wall_ms: last.map_or(now_wall_ms, |last| now_wall_ms.max(last.wall_ms)),
    };
    match last {
        Some(last) if last.commit >= commit => {}
        Some(_) if replaces_newest(index, mark.wall_ms, retention.mark_spacing_ms()) => {
            if let Some(newest) = index.last_mut() {
                *newest = mark;
            }
        }
        _ => index.push(mark),
    }
    prune(index, retention, now_wall_ms);
}

/// Whether a new mark at `wall_ms` is too close to the one before the newest, so that it
/// should replace the newest mark rather than follow it.
fn replaces_newest(index: &[TimeMark], wall_ms: u64, spacing_ms: u64) -> bool {
    match index {
        [.., before, _newest] => wall_ms < before.wall_ms.saturating_add(spacing_ms),
        _ => false,
    }
}

/// Drops marks the horizon can no longer need: all but the newest one older than the age cut-off
/// (with no age rule, all but the newest mark).
fn prune(index: &mut Vec<TimeMark>, retention: &Retention, now_wall_ms: u64) {
    let Some(age) = retention.age else {
        let keep_from = index.len().saturating_sub(1);
        index.drain(..keep_from);
        return;
    };
    let cutoff_ms = now_wall_ms.saturating_sub(duration_ms(age));
    let old = index
        .iter()
        .take_while(|mark| mark.wall_ms < cutoff_ms)
        .count();
    index.drain(..old.saturating_sub(1));
}

/// The newest mark of the prefix of marks older than `cutoff_ms`. Marks after a younger one are
/// not looked at, so a wall clock that once ran backwards can only make the horizon older.
fn newest_old_mark(index: &[TimeMark], cutoff_ms: u64) -> Option<&TimeMark> {
    index
        .iter()
        .take_while(|mark| mark.wall_ms < cutoff_ms)
        .last()
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
