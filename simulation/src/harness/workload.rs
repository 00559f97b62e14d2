//! The workload: concurrent clients doing what users do — upserts, deletes, transactions,
//! lookups, filtered scans, snapshots held across other work, time-travel reads, flushes,
//! compactions and GC sweeps — each operation drawn from the seed, each answer handed to the
//! model.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_lite::StreamExt as _;

use damselfly::arrow_array::cast::AsArray;
use damselfly::arrow_array::types::UInt64Type;
use damselfly::arrow_array::{RecordBatch, UInt64Array};
use damselfly::arrow_schema::{DataType, Field, Schema, SchemaRef};
use damselfly::runtime::Runtime;
use damselfly::{
    CommitMode, Db, Error, ErrorKind, Expr, Key, Scan, Snapshot, Timestamp, Transaction,
};

use super::model::{CommitId, Model, Observation, Write};

/// The key space: small, so that commits overwrite each other's keys often.
pub(crate) const KEYS: u64 = 256;

/// The table every simulated run uses: a key and the id of the commit that wrote the row.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("commit", DataType::UInt64, false),
    ]))
}

/// What the clients of one incarnation share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) model: Mutex<Model>,
    /// Operations left in this incarnation.
    pub(crate) budget: AtomicU64,
    /// Operations done, in all incarnations.
    pub(crate) done: AtomicU64,
    /// The last commit id handed out: ids are unique over the whole run.
    last_commit: AtomicU64,
    /// Set when the process crashed: answers that arrive later are ignored.
    pub(crate) crashed: AtomicBool,
    /// Whether acknowledged commits are durable (the WAL syncs before acknowledging).
    pub(crate) durable_acks: bool,
    /// `Corruption` errors seen: each needs a bit flip before it.
    corruption: Mutex<Vec<String>>,
    /// The first broken promise; stops the run.
    pub(crate) failure: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(durable_acks: bool) -> Shared {
        Shared {
            model: Mutex::new(Model::default()),
            budget: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last_commit: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
            durable_acks,
            corruption: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn fail(&self, failure: String) {
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(failure);
    }

    /// Records a `Corruption` error, which must follow a ledgered bit flip.
    pub(crate) fn note_corruption(&self, error: &Error) {
        self.corruption
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error.to_string());
    }

    /// The first `Corruption` error reported, if any.
    pub(crate) fn first_corruption(&self) -> Option<String> {
        self.corruption
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .cloned()
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stopped(&self) -> bool {
        self.crashed.load(Ordering::SeqCst) || self.failure().is_some()
    }

    /// Takes one operation from the budget; `false` when it is spent.
    fn take_operation(&self) -> bool {
        let taken = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if taken {
            self.done.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }
}

/// How an operation ended, for the client loop.
enum Next {
    Continue,
    /// The database failed or the process crashed: this client stops.
    Stop,
}

/// One client: draws operations from `random` until the budget is spent or the database fails.
pub(crate) async fn client(
    db: Db,
    follower: Option<Db>,
    runtime: Arc<dyn Runtime>,
    shared: Arc<Shared>,
    mut random: fastrand::Rng,
    faults_expected: bool,
) {
    while !shared.stopped() && shared.take_operation() {
        let think = Duration::from_micros(random.u64(0..20_000));
        runtime.sleep(think).await;
        if shared.stopped() {
            return;
        }
        let commit = shared.last_commit.fetch_add(1, Ordering::SeqCst) + 1;
        // Flushes and manual compactions are rare: the engine flushes and compacts on its own.
        let result = match random.u16(0..1000) {
            0..=419 => write(&db, &shared, &mut random, commit, false).await,
            420..=549 => write(&db, &shared, &mut random, commit, true).await,
            550..=649 => transaction(&db, &shared, &mut random, &runtime, commit).await,
            650..=849 => read(&db, &shared, &mut random, None).await,
            850..=879 => stable_snapshot(&db, &shared, &mut random, &runtime).await,
            960..=994 => match &follower {
                Some(follower) => follower_read(follower, &shared, &mut random).await,
                None => Ok(Next::Continue),
            },
            880..=959 => {
                let ts = {
                    let model = shared.model();
                    let timestamps = model.acknowledged_timestamps();
                    timestamps
                        .get(random.usize(0..timestamps.len().max(1)))
                        .copied()
                };
                match ts {
                    Some(ts) => read(&db, &shared, &mut random, Some(ts)).await,
                    None => Ok(Next::Continue),
                }
            }
            995..=997 => db.compact().await.map(|()| Next::Continue),
            _ => db.flush().await.map(|()| Next::Continue),
        };
        match result {
            Ok(Next::Continue) => {}
            Ok(Next::Stop) => return,
            Err(error) => {
                if !judge_error(&shared, &error, faults_expected) {
                    return;
                }
            }
        }
    }
}

/// Decides what an error means: `true` if the client may go on.
fn judge_error(shared: &Shared, error: &Error, faults_expected: bool) -> bool {
    if shared.crashed.load(Ordering::SeqCst) {
        return false;
    }
    match error.kind() {
        ErrorKind::Corruption => {
            shared.note_corruption(error);
            false
        }
        // A failed call: the database may go on (a read error) or have failed (then every
        // later call says it is closed).
        ErrorKind::Io if faults_expected => true,
        ErrorKind::Closed if faults_expected => false,
        _ => {
            shared.fail(format!("unexpected error: {error} ({:?})", error.kind()));
            false
        }
    }
}

/// Upserts (or deletes) a few keys in one commit.
async fn write(
    db: &Db,
    shared: &Shared,
    random: &mut fastrand::Rng,
    commit: CommitId,
    delete: bool,
) -> Result<Next, Error> {
    let keys = some_keys(random);
    let writes: Vec<Write> = keys.iter().map(|&key| (key, delete)).collect();
    shared.model().issue(commit, writes);
    let batch = rows_of(&keys, commit);
    let result = if delete {
        db.ingest_with_tombstones(batch, vec![true; keys.len()])
            .await
    } else {
        db.ingest(batch).await
    };
    let mut model = shared.model();
    let recorded = match &result {
        Ok(ts) => model.acknowledge(commit, ts.get(), shared.durable_acks),
        Err(_) => model.fail(commit),
    };
    drop(model);
    if let Err(failure) = recorded {
        shared.fail(failure);
        return Ok(Next::Stop);
    }
    result.map(|_| Next::Continue)
}

/// A few keys: a run of neighbours or scattered ones, sorted, without duplicates.
fn some_keys(random: &mut fastrand::Rng) -> Vec<u64> {
    let count = random.u64(1..9);
    let mut keys: Vec<u64> = if random.bool() {
        let first = random.u64(0..KEYS - count);
        (first..first + count).collect()
    } else {
        (0..count).map(|_| random.u64(0..KEYS)).collect()
    };
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Rows of `keys`, written by `commit`.
fn rows_of(keys: &[u64], commit: CommitId) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(keys.to_vec())),
            Arc::new(UInt64Array::from(vec![commit; keys.len()])),
        ],
    )
    .expect("two non-null u64 columns of one length fit the schema")
}

/// A transaction: a few staged upserts and deletes, with reads of its own view and pauses (a
/// sleep, or a flush and a compaction) between them, then a commit — waiting for durability or only for visibility — or an abort. Every read
/// must show the transaction's own writes over its snapshot; the commit's outcome goes to the
/// model, which checks first committer wins once every commit has an outcome.
async fn transaction(
    db: &Db,
    shared: &Shared,
    random: &mut fastrand::Rng,
    runtime: &Arc<dyn Runtime>,
    commit: CommitId,
) -> Result<Next, Error> {
    let mut tx = db.begin_transaction().await?;
    // Key → whether the transaction's last write of it deletes it.
    let mut staged: BTreeMap<u64, bool> = BTreeMap::new();
    for _ in 0..random.usize(1..6) {
        match random.u8(0..6) {
            // Others commit meanwhile; their versions may move to SSTs and be compacted, deletes
            // at the bottom level dropped — except what this transaction's commit must check.
            5 => match random.u8(0..3) {
                0 => {
                    db.flush().await?;
                    db.compact().await?;
                }
                _ => {
                    runtime
                        .sleep(Duration::from_millis(random.u64(1..100)))
                        .await
                }
            },
            0 => {
                let key = random.u64(0..KEYS);
                tx.delete(key)?;
                staged.insert(key, true);
            }
            1 | 2 => {
                let keys = some_keys(random);
                tx.upsert(rows_of(&keys, commit))?;
                staged.extend(keys.into_iter().map(|key| (key, false)));
            }
            _ => {
                let Some(observation) =
                    read_own_writes(&tx, &staged, commit, shared, random).await?
                else {
                    return Ok(Next::Stop);
                };
                if let Next::Stop = record(shared, observation) {
                    return Ok(Next::Stop);
                }
            }
        }
    }
    let read_at = tx.timestamp();
    match random.u8(0..10) {
        0 => {
            tx.abort();
            return Ok(Next::Continue);
        }
        1 if !staged.is_empty() => {
            drop(tx);
            return Ok(Next::Continue);
        }
        _ if staged.is_empty() => {
            let committed = tx.commit().await?;
            if committed != read_at {
                shared.fail(format!(
                    "a transaction without writes committed at {committed}, not at its snapshot {read_at}"
                ));
                return Ok(Next::Stop);
            }
            return Ok(Next::Continue);
        }
        _ => {}
    }
    let writes: Vec<Write> = staged.into_iter().collect();
    shared
        .model()
        .issue_transaction(commit, writes, read_at.get());
    let mode = if random.bool() {
        CommitMode::Durable
    } else {
        CommitMode::Visible
    };
    let result = tx.commit_with(mode).await;
    let conflict = matches!(&result, Err(error) if error.kind() == ErrorKind::Conflict);
    let mut model = shared.model();
    let recorded = match &result {
        Ok(ts) => model.acknowledge(
            commit,
            ts.get(),
            shared.durable_acks && mode == CommitMode::Durable,
        ),
        Err(_) if conflict => model.refuse(commit),
        Err(_) => model.fail(commit),
    };
    drop(model);
    if let Err(failure) = recorded {
        shared.fail(failure);
        return Ok(Next::Stop);
    }
    match result {
        Err(_) if conflict => Ok(Next::Continue),
        other => other.map(|_| Next::Continue),
    }
}

/// Reads `tx` with a query drawn at random: every key it wrote (`staged`, by `commit`) must
/// show its own last write; what the other keys show is returned, to be checked against the
/// model at the transaction's snapshot. `None` if the answer broke a promise (recorded).
async fn read_own_writes(
    tx: &Transaction,
    staged: &BTreeMap<u64, bool>,
    commit: CommitId,
    shared: &Shared,
    random: &mut fastrand::Rng,
) -> Result<Option<Observation>, Error> {
    let Some(mut observation) = read_view(tx, shared, random).await? else {
        return Ok(None);
    };
    observation.what = format!("transaction {commit:#x}: {}", observation.what);
    for (&key, &deleted) in staged {
        let Some(seen) = observation.seen.remove(&key) else {
            continue;
        };
        let passes = observation
            .commit_at_least
            .is_none_or(|least| commit >= least);
        let expected = (!deleted && passes).then_some(commit);
        if seen != expected {
            shared.fail(format!(
                "{} at ts {}: key {key} shows {seen:?}, but the transaction's own last write of \
                it is {}",
                observation.what,
                observation.ts,
                if deleted { "a delete" } else { "an upsert" }
            ));
            return Ok(None);
        }
    }
    Ok(Some(observation))
}

/// What the workload reads through: a snapshot or a transaction.
trait View {
    fn timestamp(&self) -> Timestamp;
    fn scan(&self) -> Scan;
    fn get(&self, key: Key) -> impl Future<Output = Result<Option<RecordBatch>, Error>>;
}

impl View for Snapshot {
    fn timestamp(&self) -> Timestamp {
        Snapshot::timestamp(self)
    }

    fn scan(&self) -> Scan {
        Snapshot::scan(self)
    }

    fn get(&self, key: Key) -> impl Future<Output = Result<Option<RecordBatch>, Error>> {
        Snapshot::get(self, key)
    }
}

impl View for Transaction {
    fn timestamp(&self) -> Timestamp {
        Transaction::timestamp(self)
    }

    fn scan(&self) -> Scan {
        Transaction::scan(self)
    }

    fn get(&self, key: Key) -> impl Future<Output = Result<Option<RecordBatch>, Error>> {
        Transaction::get(self, key)
    }
}

/// One read through a snapshot — now, or at `at` (time travel) — of a kind drawn at random:
/// a full scan, a key range, a filter on the commit column (MVCC-correct pushdown), or a get.
async fn read(
    db: &Db,
    shared: &Shared,
    random: &mut fastrand::Rng,
    at: Option<u64>,
) -> Result<Next, Error> {
    let snapshot = match at {
        Some(ts) => match db.snapshot_at(ts.into()).await {
            // Beyond the retention: allowed, and says so.
            Err(error) if error.kind() == ErrorKind::InvalidInput => return Ok(Next::Continue),
            other => other?,
        },
        None => db.begin_snapshot().await?,
    };
    match read_view(&snapshot, shared, random).await? {
        Some(observation) => Ok(record(shared, observation)),
        None => Ok(Next::Stop),
    }
}

/// One read through a read-only follower of the database, after a refresh: it reads at the
/// newest published version's timestamp, and must read exactly what the model says there. A
/// follower may meet injected faults or files the writer's GC deleted after the grace period:
/// errors are allowed (corruption still only after a bit flip), wrong rows are not.
async fn follower_read(
    follower: &Db,
    shared: &Shared,
    random: &mut fastrand::Rng,
) -> Result<Next, Error> {
    let outcome = async {
        follower.refresh().await?;
        let snapshot = follower.begin_snapshot().await?;
        read_view(&snapshot, shared, random).await
    }
    .await;
    match outcome {
        Ok(Some(observation)) => Ok(record(shared, observation)),
        Ok(None) => Ok(Next::Stop),
        Err(error) if error.kind() == ErrorKind::Corruption => Err(error),
        Err(_) => Ok(Next::Continue),
    }
}

/// Which keys a query can return.
type KeyScope = Box<dyn Fn(u64) -> bool>;

/// Reads one random kind of query from `snapshot`; `None` if the answer broke a promise of
/// its own (recorded in `shared`).
async fn read_view(
    snapshot: &impl View,
    shared: &Shared,
    random: &mut fastrand::Rng,
) -> Result<Option<Observation>, Error> {
    let ts = snapshot.timestamp().get();
    let (low, high) = {
        let (a, b) = (random.u64(0..KEYS), random.u64(0..KEYS));
        (a.min(b), a.max(b))
    };
    let mut commit_at_least = None;
    let (what, batches, in_scope): (String, Vec<RecordBatch>, KeyScope) = match random.u8(0..4) {
        0 => (
            "scan".to_owned(),
            snapshot.scan().collect().await?,
            Box::new(|_| true),
        ),
        1 => (
            format!("scan id between {low} and {high}"),
            snapshot
                .scan()
                .filter(Expr::col("id").between(low, high))
                .collect()
                .await?,
            Box::new(move |key| (low..=high).contains(&key)),
        ),
        2 => {
            // Commit ids grow over the run: the filter keeps some versions, and must decide
            // on the newest visible one, never an older one that matches.
            let threshold = random.u64(0..=shared.last_commit.load(Ordering::SeqCst));
            commit_at_least = Some(threshold);
            (
                format!("scan commit >= {threshold:#x}"),
                snapshot
                    .scan()
                    .filter(Expr::col("commit").ge(threshold))
                    .collect()
                    .await?,
                Box::new(|_| true),
            )
        }
        _ => {
            let key = random.u64(0..KEYS);
            let batches = snapshot.get(Key::from(key)).await?.into_iter().collect();
            (
                format!("get {key}"),
                batches,
                Box::new(move |found| found == key),
            )
        }
    };
    let Some(rows) = rows(&batches, &what, shared) else {
        return Ok(None);
    };
    let excluded = rows.iter().find(|&&(key, commit)| {
        !in_scope(key) || commit_at_least.is_some_and(|least| commit < least)
    });
    if let Some((key, commit)) = excluded {
        shared.fail(format!(
            "{what} at ts {ts} returned key {key} of commit {commit:#x}, which the query excludes"
        ));
        return Ok(None);
    }
    let mut observation = observation(what, ts, in_scope, rows);
    observation.commit_at_least = commit_at_least;
    Ok(Some(observation))
}

/// What a read at `ts` of the keys `in_scope` saw, given the `(id, commit)` rows it returned:
/// every key in scope without a row is seen as absent.
pub(crate) fn observation(
    what: String,
    ts: u64,
    in_scope: impl Fn(u64) -> bool,
    rows: Vec<(u64, u64)>,
) -> Observation {
    let absent = (0..KEYS)
        .filter(|&key| in_scope(key))
        .map(|key| (key, None));
    let present = rows.into_iter().map(|(key, commit)| (key, Some(commit)));
    Observation {
        what,
        ts,
        seen: absent.chain(present).collect(),
        commit_at_least: None,
    }
}

/// The `(id, commit)` rows of `batches`; `None` (recorded as a failure) unless they are in key
/// order without duplicates.
pub(crate) fn rows(
    batches: &[RecordBatch],
    what: &str,
    shared: &Shared,
) -> Option<Vec<(u64, u64)>> {
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch.column_by_name("id")?.as_primitive::<UInt64Type>();
        let commits = batch.column_by_name("commit")?.as_primitive::<UInt64Type>();
        rows.extend(
            ids.values()
                .iter()
                .copied()
                .zip(commits.values().iter().copied()),
        );
    }
    if let Some(pair) = rows.windows(2).find(|pair| pair[0].0 >= pair[1].0) {
        shared.fail(format!(
            "{what} returned keys out of order or twice: {} then {}",
            pair[0].0, pair[1].0
        ));
        return None;
    }
    Some(rows)
}

/// Hands a read to the model; reads that completed after a crash are ignored.
fn record(shared: &Shared, observation: Observation) -> Next {
    if shared.crashed.load(Ordering::SeqCst) {
        return Next::Stop;
    }
    shared.model().observe(observation);
    Next::Continue
}

/// Takes a snapshot, reads it, lets other work (a flush, or a sleep) happen, and reads it
/// again — or streams it again across a flush, a compaction and a GC sweep, with only the
/// stream holding it: both reads must be equal, whatever was committed, flushed, compacted or
/// deleted meanwhile.
async fn stable_snapshot(
    db: &Db,
    shared: &Shared,
    random: &mut fastrand::Rng,
    runtime: &Arc<dyn Runtime>,
) -> Result<Next, Error> {
    let snapshot = db.begin_snapshot().await?;
    let Some(first) = rows(&snapshot.scan().collect().await?, "snapshot scan", shared) else {
        return Ok(Next::Stop);
    };
    let timestamp = snapshot.timestamp();
    let batches = if random.u8(0..5) == 0 {
        // A scan in flight, with nothing else holding its snapshot, while compaction replaces
        // the files it reads and the sweeper runs: the scan must keep them.
        let mut stream = snapshot
            .scan()
            .batch_rows(random.usize(1..64))
            .stream()
            .await?;
        drop(snapshot);
        let mut batches = Vec::new();
        if let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        db.flush().await?;
        db.compact().await?;
        db.gc().await?;
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        batches
    } else {
        if random.u8(0..4) == 0 {
            db.flush().await?;
        } else {
            runtime
                .sleep(Duration::from_millis(random.u64(1..200)))
                .await;
        }
        snapshot.scan().collect().await?
    };
    let Some(second) = rows(&batches, "snapshot scan again", shared) else {
        return Ok(Next::Stop);
    };
    if first != second && !shared.crashed.load(Ordering::SeqCst) {
        shared.fail(format!(
            "snapshot at ts {timestamp} changed: {} rows, then {} rows",
            first.len(),
            second.len()
        ));
        return Ok(Next::Stop);
    }
    let ts = timestamp.get();
    let observation = observation("snapshot scan".to_owned(), ts, |_| true, second);
    Ok(record(shared, observation))
}
