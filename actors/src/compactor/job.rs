//! Compaction jobs and their outcomes: plain serialisable data, so that a job can run anywhere
//! that reaches the same storage (in this process, another process, another machine).
//!
//! A [`CompactionJob`] says which SSTs to merge, into which level, under which output ids, and
//! which versions must survive (everything readable at or after the `horizon`). A
//! [`CompactionOutcome`] lists the SSTs the executor wrote. Both carry a format number: a
//! database and an executor of different formats refuse each other instead of misreading.
//!
//! Whoever receives an outcome checks it against its job with [`CompactionOutcome::check`]
//! before anything is published: an executor can only lose a race or fail, never corrupt the
//! manifest.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::manifest::SstDescriptor;

/// The format of jobs and outcomes this build reads and writes. 2: a delete newer than the
/// horizon is never dropped (transactions' conflict checks need it).
pub const JOB_FORMAT: u32 = 2;

/// One compaction: merge `inputs` into new SSTs at `target_level`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionJob {
    /// [`JOB_FORMAT`] of the build that made the job.
    pub format: u32,
    /// The SSTs to merge, as the manifest describes them (each names its level).
    pub inputs: Vec<SstDescriptor>,
    /// The level the outputs go to.
    pub target_level: u32,
    /// Whether deletes may be dropped: nothing outside the job can hold an older version of a
    /// key in it, so a delete at or below the horizon that no reader needs can simply
    /// disappear.
    pub drop_deletes: bool,
    /// Every version a read at a timestamp `>= horizon` can see must survive: the merge keeps
    /// each key's versions newer than the horizon and its newest version at or below it. It is
    /// never newer than the oldest live transaction's snapshot, so every version a commit's
    /// conflict check needs (a delete included) is newer than it, and stays.
    pub horizon: u64,
    /// The SST ids the outputs may take, in order; reserved for this job alone.
    pub output_ids: Range<u64>,
    /// Outputs are cut (at a key boundary) once they reach about this size, while ids remain.
    pub output_file_bytes: u64,
}

impl CompactionJob {
    /// The ids of the inputs.
    pub fn input_ids(&self) -> Vec<u64> {
        self.inputs.iter().map(|sst| sst.id).collect()
    }

    /// The bytes of the inputs.
    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|sst| sst.bytes).sum()
    }

    /// How many output ids a job over `input_bytes` in `input_count` files needs at most with
    /// outputs of `output_file_bytes`: one per full output, one for the last, and slack for
    /// files that come out larger than their inputs (a different compression level).
    pub fn output_ids_needed(input_bytes: u64, input_count: usize, output_file_bytes: u64) -> u64 {
        input_bytes / output_file_bytes.max(1) + input_count as u64 + 1
    }
}

/// What an executor made of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionOutcome {
    /// [`JOB_FORMAT`] of the executor's build.
    pub format: u32,
    /// The SSTs written, durably, in key order (none when every version was dropped).
    pub outputs: Vec<SstDescriptor>,
    /// Versions read from the inputs.
    pub rows_read: u64,
    /// Versions written to the outputs.
    pub rows_written: u64,
}

/// An outcome that does not fit its job (a bug or a mismatched executor; nothing is published).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compaction outcome rejected: {reason}")]
pub struct OutcomeMismatch {
    /// What does not fit.
    pub reason: String,
}

impl CompactionOutcome {
    /// The bytes of the outputs.
    pub fn output_bytes(&self) -> u64 {
        self.outputs.iter().map(|sst| sst.bytes).sum()
    }

    /// Checks the outcome against its job: same format; every output well formed, at the
    /// target level, under a distinct id of the job's range, with keys inside the inputs' key
    /// range and timestamps inside theirs; outputs in key order and, below level 0, not
    /// overlapping; no more rows than were read.
    pub fn check(&self, job: &CompactionJob) -> Result<(), OutcomeMismatch> {
        let mismatch = |reason: String| Err(OutcomeMismatch { reason });
        if self.format != job.format {
            return mismatch(format!(
                "the executor speaks job format {}, the job is format {}",
                self.format, job.format
            ));
        }
        if self.rows_written > self.rows_read {
            return mismatch(format!(
                "{} rows written from {} read",
                self.rows_written, self.rows_read
            ));
        }
        let written: u64 = self.outputs.iter().map(|sst| sst.rows).sum();
        if written != self.rows_written {
            return mismatch(format!(
                "the outputs hold {written} rows, the outcome says {}",
                self.rows_written
            ));
        }
        let (Some(min_key), Some(max_key)) = (
            job.inputs.iter().map(|sst| &sst.min_key).min(),
            job.inputs.iter().map(|sst| &sst.max_key).max(),
        ) else {
            return mismatch("the job has no inputs".to_owned());
        };
        let min_timestamp = job.inputs.iter().map(|sst| sst.min_timestamp).min();
        let max_timestamp = job.inputs.iter().map(|sst| sst.max_timestamp).max();
        let mut ids = BTreeSet::new();
        for output in &self.outputs {
            output
                .validate()
                .or_else(|error| mismatch(error.to_string()))?;
            if !job.output_ids.contains(&output.id) || !ids.insert(output.id) {
                return mismatch(format!(
                    "output id {} is not a fresh id of the job's range {:?}",
                    output.id, job.output_ids
                ));
            }
            if output.level != job.target_level {
                return mismatch(format!(
                    "output {} is at level {}, the job targets level {}",
                    output.id, output.level, job.target_level
                ));
            }
            if &output.min_key < min_key || &output.max_key > max_key {
                return mismatch(format!(
                    "output {} holds keys outside the inputs' key range",
                    output.id
                ));
            }
            if Some(output.min_timestamp) < min_timestamp
                || Some(output.max_timestamp) > max_timestamp
            {
                return mismatch(format!(
                    "output {} holds commits outside the inputs' timestamps",
                    output.id
                ));
            }
        }
        if let Some(pair) = self
            .outputs
            .windows(2)
            .find(|pair| pair[0].max_key >= pair[1].min_key)
        {
            return mismatch(format!(
                "outputs {} and {} are not in key order without overlap",
                pair[0].id, pair[1].id
            ));
        }
        Ok(())
    }
}
