//! The workload/oracle harness: one seed runs a whole life of a database on the simulator —
//! concurrent clients, crashes at random instants, power losses, crashes during recovery,
//! storage faults — and checks every answer against a model of every commit.
//!
//! A run is a number of *incarnations*. Each opens the database (maybe crashing during
//! recovery first), checks what recovery brought back, lets clients work with faults on until
//! their share of the operations is spent or a crash comes, and ends in a process crash, a power
//! loss or a clean close. A final incarnation turns faults off and must get every operation
//! through within a bound of virtual time (liveness), then closes and reopens once more to check
//! that recovery is idempotent.
//!
//! Checks (DESIGN.md §5): acknowledged durable commits survive every crash; recovery lands on a
//! prefix of the commit order; every read at `ts` equals the model at `ts`; snapshots are stable
//! for their life; scans are sorted without duplicates; every `Corruption` error follows a
//! ledgered bit flip; no file a published manifest names is deleted (checked at the delete);
//! the run ends within its virtual-time budget.

mod model;
mod remote;
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use damselfly::compaction::{CompactionOptions, CompactionStrategy, LeveledOptions, TieredOptions};
use damselfly::runtime::{Runtime, RuntimeExt};
use damselfly::{Db, DbBuilder, SstCompression, WalSyncPolicy};
use damselfly_actors::manifest::{Version, record, sst_id_from_path, sst_id_range};
use damselfly_runtimes::MemoryStorage;
use damselfly_runtimes::panic_message;

use self::model::Observation;
use self::workload::Shared;
use crate::faults::{FaultKind, FaultPlan, Ledger, PowerCutAt, SimStorage};
use crate::{SchedulePolicy, SimRuntime};

/// The stream number of the workload RNG, mixed into the seed.
const WORKLOAD_STREAM: u64 = 5;
/// Concurrent clients per incarnation.
const CLIENTS: u64 = 3;
/// How long the last, fault-free incarnation may take for its operations.
const LIVENESS_BOUND: Duration = Duration::from_secs(120);
/// Operations of the last, fault-free incarnation.
const FINAL_OPERATIONS: u64 = 200;
/// Attempts at opening the database while faults are on, before they are turned off.
const OPEN_ATTEMPTS: u32 = 10;
/// Points of a run the harness notes itself, beside the engine's probes
/// (`damselfly_actors::probe`).
pub const PROBES: &[&str] = &[UNPUBLISHED_SST];
/// A crash came after an SST was written and before a manifest version named it.
const UNPUBLISHED_SST: &str = "crash.unpublished_sst";
/// How long a power loss armed for a sync or a create waits for one before it cuts anyway.
const SYNC_WAIT: Duration = Duration::from_secs(3);
/// Incarnations before the fault-free one, at most (a run whose faults break every
/// incarnation early still ends).
const MAX_INCARNATIONS: u64 = 64;

/// What a run does: how much work and how many crashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Client operations in all, spread over the incarnations.
    pub operations: u64,
    /// How many incarnations end in a crash (or a clean close) before the final one.
    pub crash_cycles: u32,
    /// Keep a readable event log (`sim --trace`).
    pub event_log: bool,
    /// The faults to inject; `None`: the plan the seed draws.
    pub plan: Option<FaultPlan>,
}

impl Default for RunOptions {
    /// A standard seed: 10,000 operations and 3 crash cycles.
    fn default() -> Self {
        RunOptions {
            operations: 10_000,
            crash_cycles: 3,
            event_log: false,
            plan: None,
        }
    }
}

/// What one seed's run did and found.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The scheduling policy the seed drew.
    pub policy: SchedulePolicy,
    /// The first broken promise, or `None` if every check held.
    pub failure: Option<String>,
    /// Client operations done.
    pub operations: u64,
    /// Reads checked against the model.
    pub reads_checked: u64,
    /// Transactions checked against the others' commits (first committer wins).
    pub transactions_checked: u64,
    /// Virtual time the run took.
    pub virtual_time: Duration,
    /// The faults injected.
    pub ledger: Ledger,
    /// The plan the faults came from.
    pub plan: FaultPlan,
    /// The trace hash at the end of the run.
    pub trace_hash: u64,
    /// How many events the trace covers.
    pub event_count: u64,
    /// How often the run reached each probe — the engine's (`damselfly_actors::probe`) and the
    /// harness's ([`PROBES`]) — by name.
    pub probes: BTreeMap<&'static str, u64>,
    /// The event log, when asked for.
    pub event_log: Vec<String>,
    /// How the run went, one line per incarnation.
    pub story: Vec<String>,
}

/// Runs `seed` with `options` and reports; never panics (a panic in the engine or the run is
/// the failure).
#[must_use]
pub fn run_seed(seed: u64, options: &RunOptions) -> SeedReport {
    let sim = SimRuntime::new(seed).with_time_limit(Duration::from_secs(4 * 60 * 60));
    let sim = if options.event_log {
        sim.with_event_log()
    } else {
        sim
    };
    let plan = options
        .plan
        .clone()
        .unwrap_or_else(|| FaultPlan::for_seed(seed));
    let storage = SimStorage::new(&sim, plan.clone());
    let mut run = Run::new(sim.clone(), storage.clone());
    let violations = Arc::new(Mutex::new(Vec::new()));
    storage.set_delete_check(delete_check(
        storage.files().clone(),
        Arc::clone(&violations),
    ));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let driver = sim.clone();
        driver.block_on(run.run(options))
    }));
    let mut failure = match outcome {
        Ok(result) => result.err(),
        Err(panic) => Some(format!("panicked: {}", panic_message(&*panic))),
    };
    if let Some(violation) = violations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .first()
    {
        failure.get_or_insert_with(|| violation.clone());
    }
    let report = SeedReport {
        seed,
        policy: sim.policy(),
        failure,
        operations: run.shared.done.load(Ordering::SeqCst),
        reads_checked: run.reads_checked,
        transactions_checked: run.transactions_checked,
        virtual_time: sim.now().since_origin(),
        ledger: storage.ledger(),
        plan,
        trace_hash: sim.trace_hash(),
        event_count: sim.event_count(),
        probes: sim.probe_hits(),
        event_log: sim.event_log(),
        story: run.story,
    };
    sim.shutdown();
    report
}

/// How an incarnation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A clean close once the clients are done.
    Close,
    /// A process crash at a random instant.
    ProcessCrash,
    /// A power loss at a random instant.
    PowerLoss,
    /// A process crash once the clients are done (the budget is spent or the database failed).
    WhenDone,
}

struct Run {
    sim: SimRuntime,
    storage: SimStorage,
    random: fastrand::Rng,
    story: Vec<String>,
    reads_checked: u64,
    transactions_checked: u64,
    shared: Arc<Shared>,
    config: DbConfig,
}

/// How a run's database is configured: the seed draws it once.
#[derive(Debug, Clone)]
struct DbConfig {
    policy: WalSyncPolicy,
    /// How SSTs are compressed: zstd for a quarter of the seeds, as by default; faster codecs
    /// for the rest, because zstd's per-page contexts dominate the cost of small simulated SSTs.
    compression: SstCompression,
    /// 256 KiB, or 64 KiB for a quarter of the seeds: more flushes, and WAL replays long
    /// enough to seal memtables.
    memtable_bytes: usize,
    /// Leveled with small levels (so that files reach deeper levels), or tiered for a quarter
    /// of the seeds; one or two jobs at once.
    compaction: CompactionOptions,
    /// 0 to 20 seconds: short enough that the sweeper deletes while snapshots are held.
    gc_grace_period: Duration,
    /// Level-0 slowdown and stop thresholds: the defaults, or a handful of files for a quarter
    /// of the seeds, so that writes slow down and flushes wait for compaction.
    level0_write_thresholds: (usize, usize),
    /// Every version (time travel reaches back to the first commit), or for a third of the
    /// seeds only the newest 1 to 63: compaction then drops versions, and reads at the
    /// timestamps still allowed must not notice.
    retain_versions: Option<u64>,
    /// The default block cache, or for a quarter of the seeds none: scans and lookups then
    /// decode every block from storage, meeting its faults as often as without a cache.
    block_cache: bool,
}

impl DbConfig {
    fn draw(random: &mut fastrand::Rng) -> DbConfig {
        let policy = if random.u8(0..4) == 0 {
            WalSyncPolicy::IntervalBytes(4096)
        } else {
            WalSyncPolicy::Always
        };
        let compression = match random.u8(0..4) {
            0 => SstCompression::Zstd(1),
            1 => SstCompression::Snappy,
            _ => SstCompression::Uncompressed,
        };
        let memtable_bytes = if random.u8(0..4) == 0 {
            64 << 10
        } else {
            256 << 10
        };
        let strategy = if random.u8(0..4) == 0 {
            CompactionStrategy::Tiered(TieredOptions {
                min_merge_width: random.usize(2..5),
                ..TieredOptions::default()
            })
        } else {
            CompactionStrategy::Leveled(LeveledOptions {
                level0_file_trigger: random.usize(2..6),
                level1_bytes: random.u64(64..512) << 10,
                level_size_ratio: random.u64(2..5),
                max_levels: random.u32(3..6),
            })
        };
        let compaction = CompactionOptions {
            strategy,
            output_file_bytes: random.u64(32..256) << 10,
            concurrent_jobs: random.usize(1..3),
            ..CompactionOptions::default()
        };
        let level0_write_thresholds = if random.u8(0..4) == 0 {
            let due = compaction.level0_files_due();
            let slowdown = random.usize(2..due + 2);
            (slowdown, slowdown.max(due) + random.usize(0..3))
        } else {
            (20, 36)
        };
        DbConfig {
            policy,
            compression,
            memtable_bytes,
            compaction,
            gc_grace_period: Duration::from_secs(random.u64(0..20)),
            level0_write_thresholds,
            retain_versions: (random.u8(0..3) == 0).then(|| random.u64(1..64)),
            block_cache: random.u8(0..4) != 0,
        }
    }

    fn builder(&self) -> DbBuilder {
        let builder = DbBuilder::from_schema_key_name(workload::schema(), "id")
            .expect("the harness's schema has its key column");
        let builder = match self.retain_versions {
            Some(versions) => builder.retain_versions(versions),
            None => builder,
        };
        let builder = match self.block_cache {
            true => builder,
            false => builder.block_cache_bytes(0),
        };
        builder
            .sst_compression(self.compression)
            .memtable_bytes(self.memtable_bytes)
            .wal_sync_policy(self.policy)
            .wal_segment_bytes(16 << 10)
            .compaction(self.compaction.clone())
            .gc_grace_period(self.gc_grace_period)
            .level0_write_thresholds(
                self.level0_write_thresholds.0,
                self.level0_write_thresholds.1,
            )
    }
}

impl Run {
    /// A run of `sim`'s seed on `storage`, with the database configuration it draws.
    fn new(sim: SimRuntime, storage: SimStorage) -> Run {
        let mut random = fastrand::Rng::with_seed(sim.seed() ^ WORKLOAD_STREAM.rotate_left(48));
        let config = DbConfig::draw(&mut random);
        let shared = Arc::new(Shared::new(config.policy == WalSyncPolicy::Always));
        // A dead process answers nothing: what clients hear from now on is ignored.
        let crashed = Arc::clone(&shared);
        storage.on_death(move || crashed.crashed.store(true, Ordering::SeqCst));
        Run {
            sim,
            storage,
            random,
            story: vec![format!(
                "WAL sync policy {:?}, SSTs {:?}, memtables of {} KiB, {:?}, GC grace {:?}, \
                 level-0 thresholds {:?}, versions retained {:?}, block cache {}",
                config.policy,
                config.compression,
                config.memtable_bytes >> 10,
                config.compaction,
                config.gc_grace_period,
                config.level0_write_thresholds,
                config.retain_versions,
                if config.block_cache { "on" } else { "off" },
            )],
            reads_checked: 0,
            transactions_checked: 0,
            shared,
            config,
        }
    }

    async fn run(&mut self, options: &RunOptions) -> Result<(), String> {
        // Incarnations follow each other until the operations are spent: the first ones end in
        // a crash (or a clean close) at a random instant, any may end early when a fault breaks
        // the database (then the process is restarted, as a supervisor would).
        self.shared.budget.store(
            options.operations.saturating_sub(FINAL_OPERATIONS),
            Ordering::SeqCst,
        );
        let cycles = u64::from(options.crash_cycles);
        let per_cycle = options.operations / (cycles + 1);
        let mut power_lost = false;
        for incarnation in 0..MAX_INCARNATIONS {
            if self.shared.budget.load(Ordering::SeqCst) == 0 {
                break;
            }
            let Some(db) = self.open(power_lost, true).await? else {
                return Ok(());
            };
            let ending = if incarnation < cycles {
                match self.random.u8(0..5) {
                    0 => Ending::Close,
                    1..=3 if self.storage.plan().is_on(FaultKind::PowerLoss) => Ending::PowerLoss,
                    _ => Ending::ProcessCrash,
                }
            } else {
                Ending::WhenDone
            };
            self.incarnation(db, per_cycle, ending).await?;
            power_lost = ending == Ending::PowerLoss;
            if self.shared.first_corruption().is_some() {
                return self.check_corruption();
            }
        }
        // A bit flip, at most one per run, comes last: the engine must report it as corruption
        // (which ends the run) or answer as if it had not happened.
        if self.storage.plan().is_on(FaultKind::BitFlip) {
            self.storage
                .flip_bit_where(|path| !path.starts_with("wal/"));
        }
        // The last incarnation: no faults; everything must get through, in bounded time.
        self.storage.set_faults_active(false);
        let Some(db) = self.open(power_lost, false).await? else {
            return Ok(());
        };
        self.shared.crashed.store(false, Ordering::SeqCst);
        self.shared.budget.store(FINAL_OPERATIONS, Ordering::SeqCst);
        let clients = self.spawn_clients(&db, false).await;
        let deadline = self.sim.now().since_origin() + LIVENESS_BOUND;
        for client in clients {
            client
                .await
                .map_err(|panic| format!("a client panicked: {panic}"))?;
        }
        if self.sim.now().since_origin() > deadline {
            return Err(format!(
                "liveness: with faults off, {FINAL_OPERATIONS} operations took longer than {LIVENESS_BOUND:?} of virtual time"
            ));
        }
        self.settle()?;
        db.close()
            .await
            .map_err(|error| format!("closing with faults off failed: {error}"))?;
        // Recovery is idempotent: the closed database reopens to the same state, twice.
        for _ in 0..2 {
            let Some(db) = self.open(false, false).await? else {
                return Ok(());
            };
            db.close()
                .await
                .map_err(|error| format!("closing after a clean reopen failed: {error}"))?;
        }
        self.check_corruption()
    }

    /// Every `Corruption` error must follow a bit flip the simulator made.
    fn check_corruption(&self) -> Result<(), String> {
        match self.shared.first_corruption() {
            Some(error) if self.storage.ledger().bit_flips.is_empty() => Err(format!(
                "the engine reported corruption, but no stored bit was flipped: {error}"
            )),
            _ => Ok(()),
        }
    }

    /// Opens the database and checks what recovery brought back. When the read of it fails
    /// with faults on, the process restarts, as a supervisor would restart it, and opens again
    /// (faults stay off for that read after `OPEN_ATTEMPTS` restarts). `None`: the database
    /// reports corruption after a bit flip, and the run ends there.
    async fn open(&mut self, power_lost: bool, faults: bool) -> Result<Option<Db>, String> {
        let mut restarts = 0;
        let (db, recovered) = loop {
            let Some(db) = self.open_once(faults).await? else {
                return Ok(None);
            };
            self.storage
                .set_faults_active(faults && restarts < OPEN_ATTEMPTS);
            match self.recovered(&db).await {
                Ok(Some(recovered)) => break (db, recovered),
                Ok(None) => return Err(self.shared.failure().unwrap_or_default()),
                Err(error) if error.kind() == damselfly::ErrorKind::Corruption => {
                    self.shared.note_corruption(&error);
                    return self.check_corruption().map(|()| None);
                }
                Err(error) if faults => {
                    self.story.push(format!(
                        "reading after open failed: {error}; the process restarts"
                    ));
                    self.storage.retire_handles();
                    restarts += 1;
                }
                Err(error) => {
                    return Err(format!(
                        "reading after open with faults off failed: {error}"
                    ));
                }
            }
        };
        self.storage.set_faults_active(faults);
        let lost = self.shared.model().recover(recovered.ts, power_lost)?;
        self.shared.model().check(&recovered)?;
        self.story.push(format!(
            "opened at ts {} ({} acknowledged commits lost to the power loss)",
            recovered.ts, lost
        ));
        Ok(Some(db))
    }

    /// Opens the database, first perhaps crashing during recovery, retrying while faults make
    /// it fail. `None`: the database reports corruption after a bit flip.
    async fn open_once(&mut self, faults: bool) -> Result<Option<Db>, String> {
        let runtime: Arc<dyn Runtime> = Arc::new(self.sim.clone());
        if faults && self.storage.plan().is_on(FaultKind::CrashDuringRecovery) && self.random.bool()
        {
            // Recovery of a small database makes a few dozen storage calls.
            self.storage.crash_after(self.random.u64(0..40));
        }
        let mut attempt = 0;
        let db = loop {
            attempt += 1;
            self.storage
                .set_faults_active(faults && attempt < OPEN_ATTEMPTS);
            let builder = self.config.builder().on_storage(self.storage.handle());
            let builder = match self.storage.remote_compaction() {
                true => {
                    let (storage, clock) = (self.storage.clone(), Arc::clone(&runtime));
                    builder.compaction_executor(move |local| {
                        Arc::new(remote::SimRemoteExecutor {
                            local,
                            storage: storage.clone(),
                            runtime: Arc::clone(&clock),
                        })
                    })
                }
                false => builder,
            };
            let opened = builder.open(Arc::clone(&runtime)).await;
            self.storage.cancel_crash();
            match opened {
                Ok(db) => break db,
                Err(error) if error.kind() == damselfly::ErrorKind::Corruption => {
                    self.story
                        .push(format!("open: corruption reported: {error}"));
                    self.shared.note_corruption(&error);
                    return self.check_corruption().map(|()| None);
                }
                Err(error) if attempt < OPEN_ATTEMPTS + 1 => {
                    self.story
                        .push(format!("open attempt {attempt} failed: {error}"));
                }
                Err(error) => return Err(format!("opening with faults off failed: {error}")),
            }
        };
        Ok(Some(db))
    }

    /// What recovery brought back: the whole table at the newest timestamp; `None` if the scan
    /// broke a promise of its own (recorded in `shared`).
    async fn recovered(&self, db: &Db) -> Result<Option<Observation>, damselfly::Error> {
        let snapshot = db.begin_snapshot().await?;
        let batches = snapshot.scan().collect().await?;
        let what = "scan after recovery";
        let observation = workload::rows(&batches, what, &self.shared).map(|rows| {
            let ts = snapshot.timestamp().get();
            workload::observation(what.to_owned(), ts, |_| true, rows)
        });
        Ok(observation)
    }

    /// The clients of one incarnation, with a read-only follower of the database beside them
    /// (when it opens: with faults on it may not).
    async fn spawn_clients(
        &mut self,
        db: &Db,
        faults: bool,
    ) -> Vec<damselfly::runtime::JoinHandle<()>> {
        let runtime: Arc<dyn Runtime> = Arc::new(self.sim.clone());
        let follower = self
            .config
            .builder()
            .on_storage(self.storage.handle())
            .open_read_only(Arc::clone(&runtime))
            .await
            .ok();
        (0..CLIENTS)
            .map(|_| {
                let random = fastrand::Rng::with_seed(self.random.u64(..));
                let client = workload::client(
                    db.clone(),
                    follower.clone(),
                    Arc::clone(&runtime),
                    Arc::clone(&self.shared),
                    random,
                    faults,
                );
                runtime.spawn("sim-client", client)
            })
            .collect()
    }

    /// One incarnation with faults on: clients work until their operations are spent or the
    /// crash (at a random instant) comes.
    async fn incarnation(&mut self, db: Db, operations: u64, ending: Ending) -> Result<(), String> {
        self.shared.crashed.store(false, Ordering::SeqCst);
        let runtime: Arc<dyn Runtime> = Arc::new(self.sim.clone());
        let clients = self.spawn_clients(&db, true).await;
        // The crash comes at a random instant, most likely while clients are busy.
        let crash_at = Duration::from_millis(self.random.u64(0..operations.max(1) * 4));
        let timed = matches!(ending, Ending::ProcessCrash | Ending::PowerLoss);
        // With torn writes or lost creates on, a power loss comes in the middle of a sync (when
        // the bytes it writes are there but not yet durable) or right after a create: the
        // faults have bytes to tear and files to lose even when every commit syncs.
        let plan = self.storage.plan();
        let cut_at = match (
            plan.is_on(FaultKind::TornWrite),
            plan.is_on(FaultKind::LostCreate),
        ) {
            _ if ending != Ending::PowerLoss => None,
            (true, true) if self.random.u8(0..5) < 3 => Some(PowerCutAt::Create),
            (true, _) => Some(PowerCutAt::Sync),
            (false, true) => Some(PowerCutAt::Create),
            (false, false) => None,
        };
        let crasher = timed.then(|| {
            let (storage, shared) = (self.storage.clone(), Arc::clone(&self.shared));
            let sleeper = Arc::clone(&runtime);
            runtime.spawn("sim-crasher", async move {
                sleeper.sleep(crash_at).await;
                probe_crash(&*sleeper, storage.files());
                if let Some(cut_at) = cut_at {
                    // The storage sets the crash flag when the power goes out (`on_death`).
                    storage.power_loss_at_next(cut_at);
                    sleeper.sleep(SYNC_WAIT).await;
                    storage.power_loss_if_armed();
                    return;
                }
                shared.crashed.store(true, Ordering::SeqCst);
                match ending {
                    Ending::PowerLoss => storage.power_loss(),
                    _ => storage.crash(),
                }
            })
        });
        for client in clients {
            client
                .await
                .map_err(|panic| format!("a client panicked: {panic}"))?;
        }
        match crasher {
            Some(crasher) => crasher
                .await
                .map_err(|panic| format!("the crasher panicked: {panic}"))?,
            None if ending == Ending::Close => {
                // A clean close may fail only because a fault broke the database.
                if let Err(error) = db.close().await {
                    self.story.push(format!("close failed: {error}"));
                }
                self.storage.retire_handles();
            }
            // The clients are done, the database dropped without a close: a process crash.
            None => {
                probe_crash(&self.sim, self.storage.files());
                self.storage.crash();
            }
        }
        self.shared.crashed.store(true, Ordering::SeqCst);
        drop(db);
        self.story.push(format!(
            "incarnation ended by {ending:?} at {:?}",
            self.sim.now().since_origin()
        ));
        self.settle()
    }

    /// Gives every commit still pending an unknown outcome and checks the reads recorded so far.
    fn settle(&mut self) -> Result<(), String> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let mut model = self.shared.model();
        model.fail_pending()?;
        self.reads_checked += model.check_observations()? as u64;
        self.transactions_checked += model.check_transactions()? as u64;
        Ok(())
    }
}

/// The path of the newest manifest record in `files`.
fn newest_record(files: &MemoryStorage) -> Option<String> {
    files
        .paths()
        .into_iter()
        .filter(|path| record::number_from_path(path).is_some())
        .max_by_key(|path| record::number_from_path(path))
}

/// The version the record at `path` holds, if it decodes.
fn version_at(files: &MemoryStorage, path: &str) -> Option<Version> {
    files
        .file_bytes(path)
        .and_then(|bytes| record::decode(path, &bytes).ok())
}

/// Notes the crash windows the files show at a crash (see [`PROBES`]).
fn probe_crash(runtime: &dyn Runtime, files: &MemoryStorage) {
    let Some(version) = newest_record(files).and_then(|path| version_at(files, &path)) else {
        return;
    };
    // The crashing writer's SSTs: those of the epoch it claimed (older epochs' orphans stay,
    // as nothing collects them yet, and were counted at their own crash).
    let Some(own_ids) = sst_id_range(version.epoch) else {
        return;
    };
    let unpublished = files.paths().into_iter().any(|path| {
        sst_id_from_path(&path).is_some_and(|id| own_ids.contains(&id))
            && !version.ssts().any(|sst| sst.path() == path)
    });
    if unpublished {
        runtime.probe(UNPUBLISHED_SST);
    }
}

/// A manifest record's path and bytes, and the version it decodes to: the newest record is
/// decoded again only when it changes.
type DecodedRecord = (String, Vec<u8>, Option<Version>);

/// The check made before every delete: an SST named by the newest manifest record, or that
/// record itself, must never be deleted.
fn delete_check(
    files: MemoryStorage,
    violations: Arc<Mutex<Vec<String>>>,
) -> impl Fn(&str) + Send + Sync + 'static {
    let decoded: Mutex<Option<DecodedRecord>> = Mutex::new(None);
    move |path: &str| {
        let Some(newest) = newest_record(&files) else {
            return;
        };
        let violation = if newest == path {
            Some(format!("deleted {path}, the newest manifest record"))
        } else {
            let bytes = files.file_bytes(&newest).unwrap_or_default();
            let mut decoded = decoded.lock().unwrap_or_else(PoisonError::into_inner);
            let known = decoded
                .as_ref()
                .is_some_and(|(known_path, known_bytes, _)| {
                    *known_path == newest && known_bytes[..] == bytes[..]
                });
            if !known {
                let version = record::decode(&newest, &bytes).ok();
                *decoded = Some((newest, bytes.to_vec(), version));
            }
            decoded
                .as_ref()
                .and_then(|(_, _, version)| version.as_ref())
                .filter(|version| version.ssts().any(|sst| sst.path() == path))
                .map(|version| {
                    format!(
                        "deleted {path}, which the newest manifest version {} names",
                        version.number
                    )
                })
        };
        if let Some(violation) = violation {
            violations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(violation);
        }
    }
}
