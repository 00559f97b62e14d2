//! The options that steer compaction planning, their defaults and their validation.
//!
//! Owns [`CompactionOptions`] and the strategies' options. Promises: the defaults validate, and
//! [`CompactionOptions::validate`] rejects every value the planner cannot work with, saying
//! what is wrong and what is allowed. Options are plain serialisable data.

use serde::{Deserialize, Serialize};

use crate::manifest::LEVEL_COUNT_MAX;

#[cfg(doc)]
use super::{PlannedJob, plan};

/// How compaction is planned and how big its jobs may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionOptions {
    /// Leveled or tiered, with the strategy's own options.
    pub strategy: CompactionStrategy,
    /// The most SSTs one job reads (at least 2); default 32.
    pub max_input_files: usize,
    /// The most bytes one job reads (at least 1); default 1 GiB.
    pub max_input_bytes: u64,
    /// Where the executor cuts its outputs into files (at least 1); default 64 MiB. The planner
    /// only carries it.
    pub output_file_bytes: u64,
    /// How many jobs the compactor runs at once (at least 1); default 1. The planner does not
    /// read it: it keeps any number of jobs apart through the busy set.
    pub concurrent_jobs: usize,
    /// Into how many parts, by key range, the in-process executor may cut one job to merge
    /// them at once (at least 1); default [`SUBCOMPACTIONS_DEFAULT`]. A job is cut only as far
    /// as each part still fills an output file. The planner does not read it.
    pub subcompactions: usize,
}

/// The default of [`CompactionOptions::subcompactions`]: the two halves of a large job merge at
/// once, so a job uses a second core where there is one — a level-0 job must rewrite every
/// level-1 file its inputs overlap, and the other jobs wait for it.
pub const SUBCOMPACTIONS_DEFAULT: usize = 2;

/// The shape of the tree compaction maintains, and how [`plan`] picks a job for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompactionStrategy {
    /// Levels of growing size, each but level 0 one sorted run: cheap reads, more rewriting.
    ///
    /// A level is due at a score of at least 1: level 0 at `SSTs / level0_file_trigger`, level
    /// `n` at `bytes / `[`LeveledOptions::level_target_bytes`]; the highest score goes first,
    /// ties to the shallower level, and if its job is blocked by busy SSTs the next one.
    /// - Level 0 into 1: the longest oldest suffix of level 0 that fits the limits together
    ///   with every level-1 SST it overlaps (at least the oldest SST, fitting or not); if that
    ///   is blocked, the longest shorter suffix that is not.
    /// - Level `n >= 1` into `n + 1`: one SST and every level-`n + 1` SST it overlaps, the SST
    ///   with the fewest overlapping bytes per byte of its own first (RocksDB's "min
    ///   overlapping ratio"; ties by smallest key, then id), skipping blocked candidates and
    ///   those over the limits — unless none fits, then the best unblocked one. An SST that
    ///   overlaps nothing below is a move ([`PlannedJob::is_move`]).
    Leveled(LeveledOptions),
    /// Sorted runs in level 0 merged when similar in size: less rewriting, more runs to read.
    ///
    /// Every SST of level 0 is a run. A job merges `min_merge_width..=max_merge_width` runs
    /// adjacent in age, within the limits, whose sizes are similar: the largest is at most
    /// `size_ratio_percent` percent of the smallest. The window with the smallest mean run
    /// size goes first (the cheapest tier), then the widest, then the oldest. When no such
    /// window is free and level 0 has more than [`TieredOptions::run_count_bound`] runs, a
    /// window of up to `max_merge_width` runs of any sizes: the widest within the limits, then
    /// the cheapest, then the oldest (at least the cheapest two, fitting or not). Outputs go
    /// back to level 0.
    Tiered(TieredOptions),
}

/// When leveled compaction moves data down a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeveledOptions {
    /// Level 0 is compacted into level 1 at this many SSTs (at least 1); default 4.
    pub level0_file_trigger: usize,
    /// Level 1's target size in bytes (at least 1); default 256 MiB.
    pub level1_bytes: u64,
    /// Each level below 1 targets this many times the size of the one above (at least 2);
    /// default 10.
    pub level_size_ratio: u64,
    /// Levels `0..max_levels`; the last one is never compacted further (2 to
    /// [`LEVEL_COUNT_MAX`]); default 7.
    pub max_levels: u32,
}

/// When tiered compaction merges runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TieredOptions {
    /// The fewest similar runs merged at once (at least 2); default 4.
    pub min_merge_width: usize,
    /// The most runs merged at once (at least `min_merge_width`); default 16.
    pub max_merge_width: usize,
    /// Runs are similar when the largest is at most this percentage of the smallest (at least
    /// 100); default 200: within 2x of each other.
    pub size_ratio_percent: u64,
}

/// Compaction options that make no sense, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compaction options: {reason}")]
pub struct CompactionOptionsError {
    /// What is wrong and what is allowed.
    pub reason: String,
}

fn invalid(reason: String) -> Result<(), CompactionOptionsError> {
    Err(CompactionOptionsError { reason })
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            strategy: CompactionStrategy::Leveled(LeveledOptions::default()),
            max_input_files: 32,
            max_input_bytes: 1 << 30,
            output_file_bytes: 64 << 20,
            concurrent_jobs: 1,
            subcompactions: SUBCOMPACTIONS_DEFAULT,
        }
    }
}

impl Default for LeveledOptions {
    fn default() -> Self {
        Self {
            level0_file_trigger: 4,
            level1_bytes: 256 << 20,
            level_size_ratio: 10,
            max_levels: 7,
        }
    }
}

impl Default for TieredOptions {
    fn default() -> Self {
        Self {
            min_merge_width: 4,
            max_merge_width: 16,
            size_ratio_percent: 200,
        }
    }
}

impl CompactionOptions {
    /// The number of level-0 SSTs at which compaction of level 0 is always due: the leveled
    /// trigger, or one past the tiered run-count bound. Write backpressure must not stop
    /// flushes below it, or they would wait for a compaction that never comes.
    pub fn level0_files_due(&self) -> usize {
        match &self.strategy {
            CompactionStrategy::Leveled(leveled) => leveled.level0_file_trigger,
            CompactionStrategy::Tiered(tiered) => tiered.run_count_bound().saturating_add(1),
        }
    }

    /// Checks every field and the strategy's options, and that they fit together.
    pub fn validate(&self) -> Result<(), CompactionOptionsError> {
        if self.max_input_files < 2 {
            return invalid(format!(
                "max_input_files is {}; a merge needs at least 2",
                self.max_input_files
            ));
        }
        for (name, value) in [
            ("max_input_bytes", self.max_input_bytes),
            ("output_file_bytes", self.output_file_bytes),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be at least 1 byte"));
            }
        }
        if self.concurrent_jobs == 0 {
            return invalid("concurrent_jobs is 0; at least 1 job must be able to run".to_owned());
        }
        if self.subcompactions == 0 {
            return invalid("subcompactions is 0; a job is merged in at least 1 part".to_owned());
        }
        match &self.strategy {
            CompactionStrategy::Leveled(leveled) => leveled.validate(),
            CompactionStrategy::Tiered(tiered) => {
                tiered.validate()?;
                if tiered.min_merge_width > self.max_input_files {
                    return invalid(format!(
                        "min_merge_width ({}) exceeds max_input_files ({}): no merge of similar \
                         runs could ever start",
                        tiered.min_merge_width, self.max_input_files
                    ));
                }
                Ok(())
            }
        }
    }
}

impl LeveledOptions {
    /// Checks the trigger, sizes and level count.
    pub fn validate(&self) -> Result<(), CompactionOptionsError> {
        if self.level0_file_trigger == 0 {
            return invalid("level0_file_trigger is 0; it must be at least 1 SST".to_owned());
        }
        if self.level1_bytes == 0 {
            return invalid("level1_bytes must be at least 1 byte".to_owned());
        }
        if self.level_size_ratio < 2 {
            return invalid(format!(
                "level_size_ratio is {}; each level must be at least 2 times the one above",
                self.level_size_ratio
            ));
        }
        if self.max_levels < 2 || self.max_levels > LEVEL_COUNT_MAX {
            return invalid(format!(
                "max_levels is {}; it must be from 2 to {LEVEL_COUNT_MAX}",
                self.max_levels
            ));
        }
        Ok(())
    }

    /// The size in bytes above which `level` (at least 1) is due: `level1_bytes *
    /// level_size_ratio^(level - 1)`, saturating.
    pub fn level_target_bytes(&self, level: u32) -> u64 {
        let growth = self
            .level_size_ratio
            .saturating_pow(level.saturating_sub(1));
        self.level1_bytes.saturating_mul(growth)
    }
}

impl TieredOptions {
    /// Checks the merge widths and the similarity ratio.
    pub fn validate(&self) -> Result<(), CompactionOptionsError> {
        if self.min_merge_width < 2 {
            return invalid(format!(
                "min_merge_width is {}; a merge needs at least 2 runs",
                self.min_merge_width
            ));
        }
        if self.max_merge_width < self.min_merge_width {
            return invalid(format!(
                "max_merge_width ({}) is below min_merge_width ({})",
                self.max_merge_width, self.min_merge_width
            ));
        }
        if self.size_ratio_percent < 100 {
            return invalid(format!(
                "size_ratio_percent is {}; below 100 not even equal runs would be similar",
                self.size_ratio_percent
            ));
        }
        Ok(())
    }

    /// Above this many runs, the cheapest adjacent runs are merged even when not similar, so
    /// that reads never face an unbounded number of runs: `4 * min_merge_width`.
    pub fn run_count_bound(&self) -> usize {
        self.min_merge_width.saturating_mul(4)
    }
}
