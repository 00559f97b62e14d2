//! The oracle: an in-memory model of every commit the workload made, and the checks that hold
//! the database's answers to it.
//!
//! Every row the workload writes carries the id of the commit that wrote it, so a read tells
//! exactly which version of each key it saw. A commit is *acknowledged* with its timestamp,
//! *unknown* when its call failed (it may or may not have taken effect; its timestamp is
//! unknown), or *lost* when a power loss legitimately took it (an acknowledgement that did not
//! promise durability). The model of a key at timestamp `ts` is its newest acknowledged version
//! `<= ts`. A key that an unknown commit wrote is *uncertain* at every `ts` the commit may lie
//! below: there the read may show that commit's version instead.
//!
//! Reads are recorded with the timestamp they read at and checked when every commit that could
//! matter has an outcome: at the end of each incarnation of the database.
//!
//! A transaction's commit also records the snapshot it read. Once every commit has an outcome,
//! first committer wins is checked both ways: an acknowledged transaction must not have written
//! a key that has an acknowledged version between its snapshot and its own timestamp, and a
//! transaction refused with a conflict must have written a key that someone else wrote after
//! its snapshot.

use std::collections::BTreeMap;

/// A commit's id, unique over a run (the workload writes it into every row of the commit).
pub(crate) type CommitId = u64;

/// One row of a commit: a key and whether it is deleted.
pub(crate) type Write = (u64, bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Acknowledged {
        ts: u64,
        durable: bool,
    },
    Unknown,
    Lost,
    /// A transaction's commit that failed with a conflict: it took no effect.
    Refused,
}

#[derive(Debug, Clone)]
struct Commit {
    writes: Vec<Write>,
    /// Every timestamp acknowledged before the commit was issued: its own is higher.
    above: u64,
    /// A transaction's snapshot timestamp.
    read_at: Option<u64>,
    outcome: Outcome,
}

/// What a read saw: for each key in its scope, the commit whose version it returned (`None`:
/// no row).
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) what: String,
    pub(crate) ts: u64,
    pub(crate) seen: BTreeMap<u64, Option<CommitId>>,
    /// For a filter on the commit column: a key without a row is right if its version is below
    /// this.
    pub(crate) commit_at_least: Option<CommitId>,
}

/// The model of every commit and the reads still to check.
#[derive(Debug, Default)]
pub(crate) struct Model {
    commits: BTreeMap<CommitId, Commit>,
    /// Per key, its acknowledged versions.
    versions: BTreeMap<u64, History>,
    /// Keys written by unknown commits, with the lowest timestamp such a commit may have.
    uncertain: BTreeMap<u64, u64>,
    /// Per key, the unknown commits that wrote it.
    unknown_writers: BTreeMap<u64, Vec<CommitId>>,
    /// Every acknowledged timestamp, ascending.
    acknowledged: Vec<u64>,
    observations: Vec<Observation>,
    /// Transactions whose outcome is still to check against the others'.
    transactions: Vec<CommitId>,
    /// The newest acknowledged timestamp.
    newest: u64,
}

impl Model {
    /// Records a commit about to be issued.
    pub(crate) fn issue(&mut self, id: CommitId, writes: Vec<Write>) {
        let commit = Commit {
            writes,
            above: self.newest,
            read_at: None,
            outcome: Outcome::Pending,
        };
        self.commits.insert(id, commit);
    }

    /// Records a transaction's commit about to be issued, of a transaction that read at
    /// `read_at`.
    pub(crate) fn issue_transaction(&mut self, id: CommitId, writes: Vec<Write>, read_at: u64) {
        self.issue(id, writes);
        if let Some(commit) = self.commits.get_mut(&id) {
            commit.read_at = Some(read_at);
        }
        self.transactions.push(id);
    }

    /// Records that a transaction's commit failed with a conflict: it took no effect.
    pub(crate) fn refuse(&mut self, id: CommitId) -> Result<(), String> {
        self.commit_mut(id)?.outcome = Outcome::Refused;
        Ok(())
    }

    /// Records a commit's acknowledgement at `ts`; `durable` if it promised to survive power
    /// loss.
    pub(crate) fn acknowledge(
        &mut self,
        id: CommitId,
        ts: u64,
        durable: bool,
    ) -> Result<(), String> {
        let commit = self.commit_mut(id)?;
        if ts <= commit.above {
            return Err(format!(
                "commit {id:#x} was acknowledged at {ts}, not above {} acknowledged before it was issued",
                commit.above
            ));
        }
        commit.outcome = Outcome::Acknowledged { ts, durable };
        let writes = commit.writes.clone();
        // Acknowledgements come nearly in timestamp order: this inserts at or near the end.
        let place = self.acknowledged.partition_point(|&other| other <= ts);
        self.acknowledged.insert(place, ts);
        for (key, deleted) in writes {
            let versions = self.versions.entry(key).or_default();
            if let Err(other) = versions.insert(ts, (!deleted).then_some(id)) {
                return Err(format!(
                    "commit {id:#x} was acknowledged at {ts}, which commit {other:?} also has"
                ));
            }
        }
        self.newest = self.newest.max(ts);
        Ok(())
    }

    /// Records that a commit's call failed: it may or may not have taken effect.
    pub(crate) fn fail(&mut self, id: CommitId) -> Result<(), String> {
        let commit = self.commit_mut(id)?;
        commit.outcome = Outcome::Unknown;
        let above = commit.above;
        for &(key, _) in &commit.writes.clone() {
            let lowest = self.uncertain.entry(key).or_insert(above);
            *lowest = (*lowest).min(above);
            self.unknown_writers.entry(key).or_default().push(id);
        }
        Ok(())
    }

    /// Commits still pending when their process crashed: their outcome is unknown.
    pub(crate) fn fail_pending(&mut self) -> Result<(), String> {
        let pending: Vec<CommitId> = self
            .commits
            .iter()
            .filter(|(_, commit)| commit.outcome == Outcome::Pending)
            .map(|(&id, _)| id)
            .collect();
        pending.into_iter().try_for_each(|id| self.fail(id))
    }

    fn commit_mut(&mut self, id: CommitId) -> Result<&mut Commit, String> {
        self.commits
            .get_mut(&id)
            .ok_or_else(|| format!("commit {id:#x} was never issued"))
    }

    /// The acknowledged timestamps, ascending.
    pub(crate) fn acknowledged_timestamps(&self) -> &[u64] {
        &self.acknowledged
    }

    /// Records what a read saw, to be checked by [`Model::check_observations`].
    pub(crate) fn observe(&mut self, observation: Observation) {
        self.observations.push(observation);
    }

    /// The version of `key` the model has at `ts`: the commit, `None` for no row.
    fn expected(&self, key: u64, ts: u64) -> Option<CommitId> {
        self.versions
            .get(&key)
            .and_then(|versions| versions.newest_at(ts))
            .and_then(|(_, commit)| commit)
    }

    /// Whether a read of `key` at `ts` may show an unknown commit's version.
    fn is_uncertain(&self, key: u64, ts: u64) -> bool {
        self.uncertain.get(&key).is_some_and(|&lowest| lowest < ts)
    }

    /// Whether `seen` is a version a read of `key` at `ts` may return; with `commit_at_least`
    /// versions below it read as no row.
    fn allows(
        &self,
        key: u64,
        ts: u64,
        seen: Option<CommitId>,
        commit_at_least: Option<CommitId>,
    ) -> bool {
        let filtered = |commit: Option<CommitId>| {
            commit.filter(|&id| commit_at_least.is_none_or(|least| id >= least))
        };
        if seen == filtered(self.expected(key, ts)) {
            return true;
        }
        if !self.is_uncertain(key, ts) {
            return false;
        }
        // An unknown commit's version, or the absence one of its deletes (or a filtered-out
        // version of it) left.
        match seen {
            None => self
                .unknown_writers
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|id| Some((*id, self.commits.get(id)?)))
                .any(|(id, commit)| {
                    commit.outcome == Outcome::Unknown
                        && commit.above < ts
                        && (commit.writes.contains(&(key, true))
                            || (commit.writes.contains(&(key, false))
                                && filtered(Some(id)).is_none()))
                }),
            Some(id) => self.commits.get(&id).is_some_and(|commit| {
                commit.outcome == Outcome::Unknown
                    && commit.above < ts
                    && commit.writes.contains(&(key, false))
            }),
        }
    }

    /// Checks every recorded read against the model and forgets them. Call once every commit
    /// issued before the reads has an outcome.
    pub(crate) fn check_observations(&mut self) -> Result<usize, String> {
        let observations = std::mem::take(&mut self.observations);
        for observation in &observations {
            self.check(observation)?;
        }
        Ok(observations.len())
    }

    /// Checks every transaction recorded since the last call against the others (first
    /// committer wins, both ways) and forgets them. Call once every commit has an outcome.
    pub(crate) fn check_transactions(&mut self) -> Result<usize, String> {
        let transactions = std::mem::take(&mut self.transactions);
        for &id in &transactions {
            let commit = self.commit_mut(id)?.clone();
            let Some(read_at) = commit.read_at else {
                continue;
            };
            match commit.outcome {
                Outcome::Acknowledged { ts, .. } => {
                    for &(key, _) in &commit.writes {
                        let newer = self
                            .versions
                            .get(&key)
                            .and_then(|versions| versions.first_after(read_at))
                            .filter(|&(other_ts, _)| other_ts < ts);
                        if let Some((other_ts, other)) = newer {
                            return Err(format!(
                                "transaction {id:#x} (snapshot at {read_at}) committed at {ts}, \
                                although key {key} has a version committed at {other_ts} \
                                ({}) after its snapshot",
                                describe(other)
                            ));
                        }
                    }
                }
                Outcome::Refused => {
                    let written_since = |key: u64| {
                        self.versions
                            .get(&key)
                            .is_some_and(|versions| versions.first_after(read_at).is_some())
                            || self.commits.iter().any(|(&other, commit)| {
                                other != id
                                    && matches!(commit.outcome, Outcome::Unknown | Outcome::Lost)
                                    && commit.writes.iter().any(|&(written, _)| written == key)
                            })
                    };
                    if !commit.writes.iter().any(|&(key, _)| written_since(key)) {
                        return Err(format!(
                            "transaction {id:#x} (snapshot at {read_at}) was refused with a \
                            conflict, but nobody else wrote any of its keys {:?} after its \
                            snapshot",
                            commit
                                .writes
                                .iter()
                                .map(|&(key, _)| key)
                                .collect::<Vec<_>>()
                        ));
                    }
                }
                Outcome::Pending | Outcome::Unknown | Outcome::Lost => {}
            }
        }
        Ok(transactions.len())
    }

    /// Checks one read now.
    pub(crate) fn check(&self, observation: &Observation) -> Result<(), String> {
        // Both maps are in key order: walk them together for the common case, a read that shows
        // exactly the model's version.
        let mut histories = self.versions.iter().peekable();
        for (&key, &seen) in &observation.seen {
            while histories.next_if(|&(&other, _)| other < key).is_some() {}
            let expected = histories
                .peek()
                .filter(|&&(&other, _)| other == key)
                .and_then(|(_, history)| history.newest_at(observation.ts))
                .and_then(|(_, commit)| commit)
                .filter(|&id| observation.commit_at_least.is_none_or(|least| id >= least));
            if seen == expected {
                continue;
            }
            if !self.allows(key, observation.ts, seen, observation.commit_at_least) {
                let history: Vec<String> = self
                    .versions
                    .get(&key)
                    .into_iter()
                    .flat_map(History::iter)
                    .map(|(ts, commit)| match commit {
                        Some(id) => format!("{ts}:{id:#x}"),
                        None => format!("{ts}:deleted"),
                    })
                    .collect();
                return Err(format!(
                    "{} at ts {}: key {key} shows {} but the model has {} (acknowledged versions {}; {})",
                    observation.what,
                    observation.ts,
                    describe(seen),
                    describe(self.expected(key, observation.ts)),
                    history.join(" "),
                    if self.is_uncertain(key, observation.ts) {
                        "an unknown commit wrote it"
                    } else {
                        "no unknown commit wrote it"
                    }
                ));
            }
        }
        Ok(())
    }

    /// After a reopen that recovered up to `recovered` (the newest timestamp the database
    /// has): acknowledged commits above it must be ones whose durability was not promised, and
    /// are lost — all of them, so that what survives is a prefix of the commit order.
    pub(crate) fn recover(&mut self, recovered: u64, power_lost: bool) -> Result<u64, String> {
        let mut lost = 0;
        for (&id, commit) in &mut self.commits {
            let Outcome::Acknowledged { ts, durable } = commit.outcome else {
                continue;
            };
            if ts <= recovered {
                continue;
            }
            if durable || !power_lost {
                return Err(format!(
                    "commit {id:#x}, acknowledged at {ts}{}, is gone: the database recovered only up to {recovered}{}",
                    if durable { " as durable" } else { "" },
                    if power_lost {
                        ""
                    } else {
                        " after a process crash, which loses nothing acknowledged"
                    }
                ));
            }
            commit.outcome = Outcome::Lost;
            lost += 1;
            let place = self.acknowledged.partition_point(|&other| other < ts);
            self.acknowledged.remove(place);
            for &(key, _) in &commit.writes {
                if let Some(versions) = self.versions.get_mut(&key) {
                    versions.remove(ts);
                }
            }
        }
        self.newest = self.newest.min(recovered);
        Ok(lost)
    }
}

/// One key's acknowledged versions, by timestamp: the commit, `None` for a delete. A sorted
/// vector: versions arrive nearly in timestamp order, and reads look them up far more often.
#[derive(Debug, Default)]
struct History(Vec<(u64, Option<CommitId>)>);

impl History {
    /// Adds the version at `ts`; the commit already there, if any, is the error.
    fn insert(&mut self, ts: u64, commit: Option<CommitId>) -> Result<(), Option<CommitId>> {
        match self
            .0
            .binary_search_by_key(&ts, |&(version_ts, _)| version_ts)
        {
            Ok(found) => Err(self.0[found].1),
            Err(place) => {
                self.0.insert(place, (ts, commit));
                Ok(())
            }
        }
    }

    /// The newest version at or before `ts`.
    fn newest_at(&self, ts: u64) -> Option<(u64, Option<CommitId>)> {
        let after = self.0.partition_point(|&(version_ts, _)| version_ts <= ts);
        after.checked_sub(1).map(|newest| self.0[newest])
    }

    /// The oldest version after `ts`.
    fn first_after(&self, ts: u64) -> Option<(u64, Option<CommitId>)> {
        let after = self.0.partition_point(|&(version_ts, _)| version_ts <= ts);
        self.0.get(after).copied()
    }

    fn remove(&mut self, ts: u64) {
        if let Ok(found) = self
            .0
            .binary_search_by_key(&ts, |&(version_ts, _)| version_ts)
        {
            self.0.remove(found);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(u64, Option<CommitId>)> {
        self.0.iter()
    }
}

fn describe(commit: Option<CommitId>) -> String {
    commit.map_or_else(|| "no row".to_owned(), |id| format!("commit {id:#x}"))
}
