//! The compaction planner: which SSTs to merge next, decided from a version alone.
//!
//! Owns the choice of the next compaction job ([`plan`]) under a [`CompactionStrategy`], the
//! options that steer it ([`CompactionOptions`]) and the rule for when a job may drop deletes
//! ([`nothing_older_outside`]). It decides; the executor does the I/O and the publisher checks
//! that the inputs are still live before it publishes (DESIGN.md §3).
//!
//! Promises, for every job [`plan`] returns:
//! - it is a pure function of the version, the options and the busy set: no I/O, no clock, no
//!   randomness, so the same arguments give the same job;
//! - every input is live in the version and none is busy, and the key range of the inputs
//!   overlaps no busy SST of the job's source or target level, so jobs that run at the same
//!   time never touch the same files or the same key ranges of the levels they write;
//! - leveled: level 0 is only ever taken as its *oldest* files (a suffix of `levels[0]`, which
//!   is newest first), so no older level-0 version of a key is left above a newer one moved
//!   down; a job into level `n + 1` includes every level-`n + 1` SST its inputs overlap, so
//!   levels 1 and deeper stay free of overlaps; the last level (`max_levels - 1`) is never a
//!   source;
//! - tiered: a job merges runs adjacent in age (a window of `levels[0]`) back into level 0;
//! - limits: the inputs stay within `max_input_files` and `max_input_bytes`, except when no
//!   job that makes progress fits them; then the job is the smallest one that does: one source
//!   SST with the target SSTs it must take along (leveled), or, once tiered runs are past their
//!   bound, the two cheapest adjacent runs. A level whose smallest job is too big would
//!   otherwise never shrink;
//! - `drop_deletes` is set only when [`nothing_older_outside`] holds.
//!
//! Never: a job that skips an older level-0 SST for a newer one, a job with no inputs, a panic
//! (invalid options give unspecified jobs, never a crash; callers check them first with
//! [`CompactionOptions::validate`]).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use self::options::{
    CompactionOptions, CompactionOptionsError, CompactionStrategy, LeveledOptions,
    SUBCOMPACTIONS_DEFAULT, TieredOptions,
};
use crate::manifest::{LEVEL_COUNT_MAX, SstDescriptor, Version};
use crate::table::KeyBytes;

mod options;
#[cfg(test)]
#[path = "plan_tests.rs"]
mod plan_tests;

/// A compaction to run: plain data, so an executor can run it anywhere that reaches the
/// storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The SSTs to merge, each with its level: the source level's first (level 0 newest first,
    /// deeper levels by key), then the target level's by key.
    pub inputs: Vec<SstDescriptor>,
    /// The level the outputs go to.
    pub target_level: u32,
    /// Whether the merge may drop deletes (and the versions they shadow) instead of keeping
    /// them: [`nothing_older_outside`] the job. Retention still decides which row versions
    /// time travel needs.
    pub drop_deletes: bool,
}

impl PlannedJob {
    /// Whether the job is a move: inputs going to a deeper level that overlap neither each
    /// other nor anything there, with nothing to drop, so the publisher can re-level the files
    /// without rewriting them — level-0 files of increasing keys, typically. (The planner
    /// always includes every target-level SST the inputs overlap, so inputs all from shallower
    /// levels overlap none.)
    pub fn is_move(&self) -> bool {
        let mut by_key: Vec<&SstDescriptor> = self.inputs.iter().collect();
        by_key.sort_by(|a, b| a.min_key.cmp(&b.min_key));
        !self.inputs.is_empty()
            && self.inputs.iter().all(|input| {
                input.level < self.target_level && (!self.drop_deletes || input.deletes == 0)
            })
            && by_key
                .windows(2)
                .all(|pair| pair[0].max_key < pair[1].min_key)
    }

    /// The ids of the inputs: what the compactor adds to the busy set while the job runs.
    pub fn input_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.inputs.iter().map(|input| input.id)
    }
}

/// The next compaction job for `version`, or `None` when nothing is due or every due job is
/// blocked by the `busy` SSTs (the inputs of jobs still running).
///
/// See the module docs for the promises and [`CompactionStrategy`] for how each strategy picks.
pub fn plan(
    version: &Version,
    options: &CompactionOptions,
    busy: &BTreeSet<u64>,
) -> Option<PlannedJob> {
    let planner = Planner {
        version,
        options,
        busy,
    };
    match &options.strategy {
        CompactionStrategy::Leveled(leveled) => planner.leveled(leveled),
        CompactionStrategy::Tiered(tiered) => planner.tiered(tiered),
    }
}

/// Whether no SST outside `inputs` can hold a version of a key in `inputs` that is older than
/// the inputs' newest row: every other SST whose key range overlaps the inputs' union key range
/// holds only rows newer than all of theirs (`min_timestamp > max max_timestamp`).
///
/// This is the safety rule for dropping deletes. A merge may drop a delete only if no older
/// version of its key survives anywhere else; otherwise dropping it would resurrect that
/// version. A key outside the union key range is in no input; an SST with only newer rows
/// cannot hold an older version of anything; and data not yet in any SST (memtables) is newer
/// than every SST, since memtables are flushed in commit order. What remains is exactly the
/// check below. It errs on the safe side: ranges, not keys, are compared. `false` for no inputs.
pub fn nothing_older_outside(version: &Version, inputs: &[SstDescriptor]) -> bool {
    let Some(range) = KeyRange::union(inputs) else {
        return false;
    };
    let newest_input_timestamp = inputs
        .iter()
        .map(|input| input.max_timestamp)
        .max()
        .unwrap_or(u64::MAX);
    let input_ids: BTreeSet<u64> = inputs.iter().map(|input| input.id).collect();
    version
        .ssts()
        .filter(|sst| !input_ids.contains(&sst.id) && range.overlaps(sst))
        .all(|sst| sst.min_timestamp > newest_input_timestamp)
}

/// An inclusive key range.
#[derive(Debug, Clone, Copy)]
struct KeyRange<'a> {
    min: &'a KeyBytes,
    max: &'a KeyBytes,
}

impl<'a> KeyRange<'a> {
    fn of(sst: &'a SstDescriptor) -> Self {
        Self {
            min: &sst.min_key,
            max: &sst.max_key,
        }
    }

    /// The smallest range holding every SST's range; `None` for no SSTs.
    fn union(ssts: impl IntoIterator<Item = &'a SstDescriptor>) -> Option<Self> {
        ssts.into_iter()
            .map(KeyRange::of)
            .reduce(|range, sst| KeyRange {
                min: range.min.min(sst.min),
                max: range.max.max(sst.max),
            })
    }

    fn overlaps(&self, sst: &SstDescriptor) -> bool {
        &sst.min_key <= self.max && self.min <= &sst.max_key
    }
}

/// The inputs of a candidate job, borrowed from the version.
type Inputs<'a> = Vec<&'a SstDescriptor>;

fn total_bytes<'a>(ssts: impl IntoIterator<Item = &'a SstDescriptor>) -> u64 {
    ssts.into_iter()
        .fold(0, |total: u64, sst| total.saturating_add(sst.bytes))
}

/// A level's compaction score as the fraction `size / target`; due at 1 or more. Compared
/// exactly, by cross-multiplying, so equal scores tie instead of differing by rounding.
#[derive(Debug, Clone, Copy)]
struct Score {
    size: u64,
    target: u64,
}

impl Score {
    fn is_due(self) -> bool {
        self.size >= self.target
    }

    fn cmp(self, other: Score) -> Ordering {
        let this = u128::from(self.size) * u128::from(other.target);
        let that = u128::from(other.size) * u128::from(self.target);
        this.cmp(&that)
    }
}

/// One SST of level `n >= 1` and the SSTs of level `n + 1` it overlaps: a candidate job.
#[derive(Debug)]
struct Candidate<'a> {
    source: &'a SstDescriptor,
    overlapping: Inputs<'a>,
}

impl<'a> Candidate<'a> {
    fn inputs(&self) -> Inputs<'a> {
        let mut inputs = vec![self.source];
        inputs.extend(self.overlapping.iter().copied());
        inputs
    }

    /// RocksDB's "min overlapping ratio": the fewest next-level bytes rewritten per byte moved
    /// down first; ties by smallest key, then id.
    fn cmp(&self, other: &Candidate<'_>) -> Ordering {
        let overlap = |candidate: &Candidate<'_>| {
            u128::from(total_bytes(candidate.overlapping.iter().copied()))
        };
        let own = |candidate: &Candidate<'_>| u128::from(candidate.source.bytes.max(1));
        (overlap(self) * own(other))
            .cmp(&(overlap(other) * own(self)))
            .then_with(|| self.source.min_key.cmp(&other.source.min_key))
            .then_with(|| self.source.id.cmp(&other.source.id))
    }
}

/// Runs `start..start + width` of level 0 (newest first): runs adjacent in age.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: usize,
    width: usize,
    bytes: u64,
}

impl Window {
    fn end(self) -> usize {
        self.start + self.width
    }

    /// Smallest mean run size first (the cheapest tier), then the widest (fewest runs left),
    /// then the oldest.
    fn cmp_similar(self, other: Window) -> Ordering {
        let mean = |window: Window, other: Window| {
            u128::from(window.bytes) * u128::from(other.width as u64)
        };
        mean(self, other)
            .cmp(&mean(other, self))
            .then_with(|| other.width.cmp(&self.width))
            .then_with(|| other.end().cmp(&self.end()))
    }

    /// The widest first (fewest runs left), then the cheapest, then the oldest.
    fn cmp_bounding(self, other: Window) -> Ordering {
        other
            .width
            .cmp(&self.width)
            .then_with(|| self.bytes.cmp(&other.bytes))
            .then_with(|| other.end().cmp(&self.end()))
    }
}

/// The next job of a manual compaction (`Db::compact`): what [`plan`] gives, and once nothing
/// is due, whatever still leaves level 0 holding more than it must — leveled: the oldest
/// level-0 SSTs into level 1, until level 0 is empty; tiered: the widest window of runs that
/// fits the limits, until one run is left. So a manual compaction ends with every overwritten
/// or deleted version that no read needs gone from level 0, where only reaching the trigger
/// would otherwise take it.
pub fn plan_manual(
    version: &Version,
    options: &CompactionOptions,
    busy: &BTreeSet<u64>,
) -> Option<PlannedJob> {
    plan(version, options, busy).or_else(|| {
        let planner = Planner {
            version,
            options,
            busy,
        };
        match &options.strategy {
            CompactionStrategy::Leveled(_) => planner.level0_job(),
            CompactionStrategy::Tiered(_) => planner.widest_window(),
        }
    })
}

/// The arguments of one [`plan`] call, shared by both strategies.
#[derive(Debug)]
struct Planner<'a> {
    version: &'a Version,
    options: &'a CompactionOptions,
    busy: &'a BTreeSet<u64>,
}

impl<'a> Planner<'a> {
    /// The SSTs of `level`; none past the version's deepest level.
    fn level(&self, level: u32) -> &'a [SstDescriptor] {
        self.version.level(level)
    }

    fn within_limits(&self, inputs: &[&SstDescriptor]) -> bool {
        inputs.len() <= self.options.max_input_files
            && total_bytes(inputs.iter().copied()) <= self.options.max_input_bytes
    }

    /// Whether a job would interfere with a running one: an input is busy, or the inputs' key
    /// range overlaps a busy SST of the source or target level. (No inputs count as blocked.)
    fn is_blocked(&self, inputs: &[&SstDescriptor], source_level: u32, target_level: u32) -> bool {
        if inputs.iter().any(|input| self.busy.contains(&input.id)) {
            return true;
        }
        let Some(range) = KeyRange::union(inputs.iter().copied()) else {
            return true;
        };
        [source_level, target_level].into_iter().any(|level| {
            self.level(level)
                .iter()
                .any(|sst| self.busy.contains(&sst.id) && range.overlaps(sst))
        })
    }

    /// The SSTs of `level` that the union key range of `ssts` overlaps.
    fn overlapping(&self, ssts: &[&'a SstDescriptor], level: u32) -> Inputs<'a> {
        let Some(range) = KeyRange::union(ssts.iter().copied()) else {
            return Vec::new();
        };
        self.level(level)
            .iter()
            .filter(|sst| range.overlaps(sst))
            .collect()
    }

    fn job(&self, inputs: Inputs<'_>, target_level: u32) -> PlannedJob {
        let inputs: Vec<SstDescriptor> = inputs.into_iter().cloned().collect();
        let drop_deletes = nothing_older_outside(self.version, &inputs);
        PlannedJob {
            inputs,
            target_level,
            drop_deletes,
        }
    }

    /// Leveled: of the levels with a score of at least 1 (level 0: SSTs per
    /// `level0_file_trigger`; level `n`: bytes per [`LeveledOptions::level_target_bytes`]),
    /// the highest score first, ties to the shallower level, the first whose job is not
    /// blocked. The last level is never a source.
    fn leveled(&self, leveled: &LeveledOptions) -> Option<PlannedJob> {
        let last_level = leveled.max_levels.min(LEVEL_COUNT_MAX).saturating_sub(1);
        let mut due: Vec<(u32, Score)> = (0..last_level)
            .map(|level| (level, self.score(leveled, level)))
            .filter(|(_, score)| score.is_due())
            .collect();
        due.sort_by(|(level, score), (other_level, other_score)| {
            other_score.cmp(*score).then(level.cmp(other_level))
        });
        due.into_iter().find_map(|(level, _)| {
            if level == 0 {
                self.level0_job()
            } else {
                self.deeper_job(level)
            }
        })
    }

    fn score(&self, leveled: &LeveledOptions, level: u32) -> Score {
        let ssts = self.level(level);
        if level == 0 {
            Score {
                size: ssts.len() as u64,
                target: leveled.level0_file_trigger as u64,
            }
        } else {
            Score {
                size: total_bytes(ssts),
                target: leveled.level_target_bytes(level),
            }
        }
    }

    /// Level 0 into level 1: the longest oldest suffix of level 0 that fits the limits together
    /// with every level-1 SST it overlaps — at least the oldest SST, fitting or not — or, if
    /// that job is blocked, the longest shorter suffix that is not. (A longer suffix never
    /// needs fewer inputs, so the first suffix that does not fit ends the search.)
    fn level0_job(&self) -> Option<PlannedJob> {
        let count_max = self.level(0).len();
        let fitting = (1..=count_max)
            .take_while(|&count| self.within_limits(&self.level0_inputs(count)))
            .last()
            .unwrap_or(1)
            .min(count_max);
        (1..=fitting)
            .rev()
            .map(|count| self.level0_inputs(count))
            .find(|inputs| !self.is_blocked(inputs, 0, 1))
            .map(|inputs| self.job(inputs, 1))
    }

    /// The oldest `count` SSTs of level 0 and the level-1 SSTs they overlap.
    fn level0_inputs(&self, count: usize) -> Inputs<'a> {
        let level0 = self.level(0);
        let mut inputs: Inputs<'a> = level0[level0.len().saturating_sub(count)..]
            .iter()
            .collect();
        let overlapping = self.overlapping(&inputs, 1);
        inputs.extend(overlapping);
        inputs
    }

    /// Level `source_level >= 1` into the next: the unblocked [`Candidate`] that ranks first
    /// and fits the limits, or — when none fits — the first unblocked one.
    fn deeper_job(&self, source_level: u32) -> Option<PlannedJob> {
        let target_level = source_level + 1;
        let mut candidates: Vec<Candidate<'a>> = self
            .level(source_level)
            .iter()
            .map(|source| Candidate {
                source,
                overlapping: self.overlapping(&[source], target_level),
            })
            .collect();
        candidates.sort_by(|candidate, other| candidate.cmp(other));
        let mut unblocked = candidates
            .iter()
            .map(Candidate::inputs)
            .filter(|inputs| !self.is_blocked(inputs, source_level, target_level));
        let best = unblocked.next()?;
        let chosen = if self.within_limits(&best) {
            best
        } else {
            unblocked
                .find(|inputs| self.within_limits(inputs))
                .unwrap_or(best)
        };
        Some(self.job(chosen, target_level))
    }

    /// Tiered: the best window of similar runs; failing that, once level 0 has more than
    /// [`TieredOptions::run_count_bound`] runs, the best window of any runs.
    fn tiered(&self, tiered: &TieredOptions) -> Option<PlannedJob> {
        let runs = self.level(0);
        let window = self.similar_window(tiered).or_else(|| {
            (runs.len() > tiered.run_count_bound())
                .then(|| self.bounding_window(tiered))
                .flatten()
        })?;
        Some(self.job(runs[window.start..window.end()].iter().collect(), 0))
    }

    /// `min_merge_width..=max_merge_width` adjacent runs within the limits whose sizes are
    /// similar (largest * 100 <= smallest * size_ratio_percent), best by [`Window::cmp_similar`].
    fn similar_window(&self, tiered: &TieredOptions) -> Option<Window> {
        let runs = self.level(0);
        self.unblocked_windows(tiered.min_merge_width.max(2), tiered.max_merge_width)
            .filter(|window| {
                let sizes = runs[window.start..window.end()].iter().map(|run| run.bytes);
                let largest = u128::from(sizes.clone().max().unwrap_or(0));
                let smallest = u128::from(sizes.min().unwrap_or(0));
                largest * 100 <= smallest * u128::from(tiered.size_ratio_percent)
                    && self.window_within_limits(*window)
            })
            .min_by(|window, other| window.cmp_similar(*other))
    }

    /// `2..=max_merge_width` adjacent runs of any sizes within the limits, best by
    /// [`Window::cmp_bounding`]; if no two adjacent runs fit the limits, the cheapest two.
    fn bounding_window(&self, tiered: &TieredOptions) -> Option<Window> {
        let fitting = self
            .unblocked_windows(2, tiered.max_merge_width)
            .filter(|window| self.window_within_limits(*window))
            .min_by(|window, other| window.cmp_bounding(*other));
        fitting.or_else(|| {
            self.unblocked_windows(2, 2)
                .min_by(|window, other| window.cmp_bounding(*other))
        })
    }

    /// The widest unblocked window of two or more runs within the limits (ties: the oldest),
    /// as one job; `None` with fewer than two runs.
    fn widest_window(&self) -> Option<PlannedJob> {
        let runs = self.level(0);
        let window = self
            .unblocked_windows(2, runs.len())
            .filter(|window| self.window_within_limits(*window))
            .max_by_key(|window| (window.width, window.start))?;
        Some(self.job(runs[window.start..window.end()].iter().collect(), 0))
    }

    fn window_within_limits(&self, window: Window) -> bool {
        window.width <= self.options.max_input_files && window.bytes <= self.options.max_input_bytes
    }

    /// Every window of `width_min..=width_max` runs of level 0 that is not blocked.
    fn unblocked_windows(
        &self,
        width_min: usize,
        width_max: usize,
    ) -> impl Iterator<Item = Window> + '_ {
        let runs = self.level(0);
        (width_min..=width_max.min(runs.len()))
            .flat_map(move |width| {
                (0..=runs.len() - width).map(move |start| Window {
                    start,
                    width,
                    bytes: total_bytes(&runs[start..start + width]),
                })
            })
            .filter(move |window| {
                let inputs: Inputs<'_> = runs[window.start..window.end()].iter().collect();
                !self.is_blocked(&inputs, 0, 0)
            })
    }
}
