//! What is garbage now: a pure function of the candidates, the current version and the time.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use damselfly_runtimes::Instant;

use crate::manifest::Version;
use crate::sst::SstReader;

/// A file that may be garbage.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// When it became a candidate.
    pub since: Instant,
    /// Alive while something reads the file.
    pub pin: Option<Weak<SstReader>>,
    /// The file may not exist.
    pub may_be_missing: bool,
}

impl Candidate {
    fn pinned(&self) -> bool {
        self.pin.as_ref().is_some_and(|pin| pin.strong_count() > 0)
    }
}

/// What to do with one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The current version names it: it is not garbage.
    Live,
    /// In use, or within the grace period.
    Waiting,
    /// Delete it.
    Due,
}

/// The verdict on every candidate, in id order: `Live` if `version` names it, `Waiting` while it
/// is pinned or younger than `grace_period` at `now`, else `Due`.
pub fn plan(
    candidates: &BTreeMap<u64, Candidate>,
    version: &Version,
    now: Instant,
    grace_period: Duration,
) -> Vec<(u64, Verdict)> {
    candidates
        .iter()
        .map(|(&id, candidate)| {
            let verdict = if version.sst(id).is_some() {
                Verdict::Live
            } else if candidate.pinned() || now < candidate.since + grace_period {
                Verdict::Waiting
            } else {
                Verdict::Due
            };
            (id, verdict)
        })
        .collect()
}
