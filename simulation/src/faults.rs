//! Fault injection: [`SimStorage`], the simulator's storage, breaks the way real devices and
//! object stores break, as often as the seed's [`FaultPlan`] says, and writes every fault it
//! injects into a [`Ledger`].
//!
//! The storage keeps its files in a [`MemoryStorage`] (writes are volatile until synced; a file
//! whose creation was never synced may vanish) and hands each database incarnation its own
//! [handle](SimStorage::handle). A [process crash](SimStorage::crash) kills every handle given
//! out before it — an old incarnation can never write again — while keeping what was written; a
//! [power loss](SimStorage::power_loss) also decides, file by file, what becomes of unsynced
//! bytes: lost, kept, or torn at 512-byte granularity with garbage after the tear.
//!
//! While [faults are on](SimStorage::set_faults_active), every call may also fail (an I/O error
//! on read, write, sync, create, list or delete; a full disk; a short read), be delayed (latency,
//! and rare stalls of seconds that reorder completions), or — for `put_if_absent`, the manifest's
//! compare-and-swap — fail before it applies (a conflict) or after (applied, but reported as
//! failed). [Bit flips](SimStorage::flip_bit_where) damage stored bytes; the engine must detect them.
//!
//! The storage port has no rename and no directory sync: a synced append makes the file's
//! directory entry durable and `put` is atomic and durable (DESIGN.md §2), so "an unsynced
//! create or rename vanishes" is modelled as a created file that was never synced vanishing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use damselfly_runtimes::{
    AfterPowerLoss, BoxFuture, Durability, HookedStorage, MemoryStorage, Storage, StorageCall,
    StorageError, StorageErrorKind, StorageHook, UnsyncedFile,
};

use crate::runtime::TraceHook;
use crate::shared::Shared;
use crate::timer::Sleep;

/// The stream number of the fault RNG, mixed into the seed.
const FAULT_STREAM: u64 = 4;
/// Power loss tears unsynced data at this granularity (a disk sector).
const SECTOR: usize = 512;
/// How many ledger entries are kept in full; later ones are only counted.
const LEDGER_DETAIL_LIMIT: usize = 200;

/// A kind of fault the simulator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The power went out: unsynced data is at the mercy of [`FaultKind::TornWrite`] and
    /// [`FaultKind::LostCreate`], or else lost.
    PowerLoss,
    /// At a power loss, a file's unsynced tail survived in part (cut at a sector boundary),
    /// whole, or with garbage after the tear.
    TornWrite,
    /// At a power loss, a file whose creation was never synced vanished.
    LostCreate,
    /// The process died: memory lost, storage kept.
    ProcessCrash,
    /// The process died while opening the database (during recovery).
    CrashDuringRecovery,
    /// A read (or size) failed with an I/O error.
    ReadError,
    /// A write (create, append, put) failed with an I/O error before it took effect.
    WriteError,
    /// A sync (synced append, close) failed with an I/O error.
    SyncError,
    /// A list failed.
    ListError,
    /// A delete failed.
    DeleteError,
    /// The disk was full for a while: every write failed.
    DiskFull,
    /// A read returned fewer bytes than asked, reported as an unexpected end of file.
    ShortRead,
    /// A call was delayed by up to a few milliseconds.
    Latency,
    /// A call was stalled for seconds, so that later calls completed before it.
    Stall,
    /// A bit of a stored file was flipped.
    BitFlip,
    /// The manifest's compare-and-swap (`put_if_absent`) failed without taking effect.
    CasConflict,
    /// The compare-and-swap took effect but was reported as failed.
    CasAppliedButFailed,
    /// The storage behaved as an object store for the whole run: no durable appends, so the
    /// write-ahead log wrote one object per group commit with put-if-absent.
    ObjectStore,
    /// A put-if-absent took effect but was answered "already exists" — what an object store
    /// client reports when it retries a put whose answer was lost and finds its own object.
    CasAppliedReportedTaken,
    /// Compaction ran on a (simulated) remote worker, whose answer came late.
    RemoteDelay,
    /// A remote worker ran a compaction job, but its answer was lost on the way back.
    RemoteAnswerLost,
    /// A second remote worker ran the same compaction job (as after a timeout and a retry),
    /// starting a while later; its answer went nowhere.
    RemoteDuplicate,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 22] = [
        FaultKind::PowerLoss,
        FaultKind::TornWrite,
        FaultKind::LostCreate,
        FaultKind::ProcessCrash,
        FaultKind::CrashDuringRecovery,
        FaultKind::ReadError,
        FaultKind::WriteError,
        FaultKind::SyncError,
        FaultKind::ListError,
        FaultKind::DeleteError,
        FaultKind::DiskFull,
        FaultKind::ShortRead,
        FaultKind::Latency,
        FaultKind::Stall,
        FaultKind::BitFlip,
        FaultKind::CasConflict,
        FaultKind::CasAppliedButFailed,
        FaultKind::ObjectStore,
        FaultKind::CasAppliedReportedTaken,
        FaultKind::RemoteDelay,
        FaultKind::RemoteAnswerLost,
        FaultKind::RemoteDuplicate,
    ];

    /// The kind's name, in snake case, as the `sim` command prints it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PowerLoss => "power_loss",
            FaultKind::TornWrite => "torn_write",
            FaultKind::LostCreate => "lost_create",
            FaultKind::ProcessCrash => "process_crash",
            FaultKind::CrashDuringRecovery => "crash_during_recovery",
            FaultKind::ReadError => "read_error",
            FaultKind::WriteError => "write_error",
            FaultKind::SyncError => "sync_error",
            FaultKind::ListError => "list_error",
            FaultKind::DeleteError => "delete_error",
            FaultKind::DiskFull => "disk_full",
            FaultKind::ShortRead => "short_read",
            FaultKind::Latency => "latency",
            FaultKind::Stall => "stall",
            FaultKind::BitFlip => "bit_flip",
            FaultKind::CasConflict => "cas_conflict",
            FaultKind::CasAppliedButFailed => "cas_applied_but_failed",
            FaultKind::ObjectStore => "object_store",
            FaultKind::CasAppliedReportedTaken => "cas_applied_reported_taken",
            FaultKind::RemoteDelay => "remote_delay",
            FaultKind::RemoteAnswerLost => "remote_answer_lost",
            FaultKind::RemoteDuplicate => "remote_duplicate",
        }
    }

    /// The kind named `name` (see [`FaultKind::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Which faults a seed injects and how often: each kind is on or off, and an enabled per-call
/// kind fires at one call in `one_in` of the calls it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    one_in: BTreeMap<FaultKind, u32>,
}

impl FaultPlan {
    /// No faults at all.
    #[must_use]
    pub fn none() -> FaultPlan {
        FaultPlan {
            one_in: BTreeMap::new(),
        }
    }

    /// The plan `seed` draws: each kind is on for half of the seeds (power loss for three in
    /// five), at a rate drawn from a few
    /// orders of magnitude (higher for calls a run makes seldom: creates, lists, deletes,
    /// compare-and-swaps), so that a swarm of seeds meets every kind often, alone and together.
    /// Torn writes and lost creates happen only at a power loss, so they are on with power
    /// losses and off without (a torn write's unsynced bytes are still dropped whole for a
    /// third of the files, as without it).
    #[must_use]
    pub fn for_seed(seed: u64) -> FaultPlan {
        let mut random = fastrand::Rng::with_seed(seed ^ FAULT_STREAM.rotate_left(32));
        let mut one_in = BTreeMap::new();
        for kind in FaultKind::ALL {
            let on = match kind {
                FaultKind::TornWrite | FaultKind::LostCreate => {
                    one_in.contains_key(&FaultKind::PowerLoss)
                }
                // More often than the rest, as the two kinds above depend on it.
                FaultKind::PowerLoss => random.u8(0..5) < 3,
                // Half the seeds without power loss and sync errors run on an object store,
                // which has no appends to tear and no syncs to fail: the seeds with those stay
                // on a disk, so that each kind still meets a fifth of the seeds.
                FaultKind::ObjectStore => {
                    !one_in.contains_key(&FaultKind::PowerLoss)
                        && !one_in.contains_key(&FaultKind::SyncError)
                        && random.bool()
                }
                _ => random.bool(),
            };
            if on {
                let rates = match kind {
                    FaultKind::WriteError
                    | FaultKind::ListError
                    | FaultKind::DeleteError
                    | FaultKind::CasConflict
                    | FaultKind::CasAppliedButFailed
                    | FaultKind::CasAppliedReportedTaken => [10, 50, 250],
                    // Per compaction job, and a run has a few dozen at most.
                    FaultKind::RemoteDelay
                    | FaultKind::RemoteAnswerLost
                    | FaultKind::RemoteDuplicate => [2, 4, 8],
                    // A mode, not a rate: on for the whole run.
                    FaultKind::ObjectStore => [1, 1, 1],
                    _ => [100, 1_000, 10_000],
                };
                one_in.insert(kind, rates[random.usize(0..3)]);
            }
        }
        FaultPlan { one_in }
    }

    /// This plan with `kind` on at one call in `one_in` (`0`: off).
    #[must_use]
    pub fn with(mut self, kind: FaultKind, one_in: u32) -> FaultPlan {
        if one_in == 0 {
            self.one_in.remove(&kind);
        } else {
            self.one_in.insert(kind, one_in);
        }
        self
    }

    /// Whether `kind` is on.
    #[must_use]
    pub fn is_on(&self, kind: FaultKind) -> bool {
        self.one_in.contains_key(&kind)
    }

    /// The kinds that are on, in [`FaultKind::ALL`] order.
    pub fn kinds(&self) -> impl Iterator<Item = FaultKind> + '_ {
        self.one_in.keys().copied()
    }

    /// Draws whether `kind` fires now.
    fn fires(&self, kind: FaultKind, random: &mut fastrand::Rng) -> bool {
        self.one_in
            .get(&kind)
            .is_some_and(|&one_in| random.u32(0..one_in) == 0)
    }
}

/// One injected fault: when (virtual time), what, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    /// Virtual time since the run started.
    pub at: Duration,
    /// The kind.
    pub kind: FaultKind,
    /// What exactly: the call, the path, the offset and bit.
    pub detail: String,
}

/// Every fault injected in a run: how many of each kind, and the first ones in full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// How many faults of each kind were injected.
    pub counts: BTreeMap<FaultKind, u64>,
    /// The first faults, in the order they were injected.
    pub records: Vec<FaultRecord>,
    /// Every bit flip: path, byte offset and bit. The engine may report corruption only in a
    /// file listed here.
    pub bit_flips: Vec<(String, u64, u8)>,
}

impl Ledger {
    fn note(&mut self, at: Duration, kind: FaultKind, detail: impl FnOnce() -> String) {
        *self.counts.entry(kind).or_default() += 1;
        if self.records.len() < LEDGER_DETAIL_LIMIT {
            self.records.push(FaultRecord {
                at,
                kind,
                detail: detail(),
            });
        }
    }

    /// How many faults of `kind` were injected.
    #[must_use]
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }
}

/// The simulator's fault-injecting storage. Clones share the files, the plan and the ledger.
#[derive(Clone)]
pub struct SimStorage {
    shared: Arc<Faults>,
}

/// A check run before every delete reaches the files (the harness's reachability check).
type DeleteCheck = Arc<dyn Fn(&str) + Send + Sync>;
/// Run when the handles die (the harness's crash flag).
type Callback = Arc<dyn Fn() + Send + Sync>;

struct Faults {
    files: MemoryStorage,
    plan: FaultPlan,
    runtime: Weak<Shared>,
    state: Mutex<FaultState>,
    delete_check: Mutex<Option<DeleteCheck>>,
    on_death: Mutex<Option<Callback>>,
}

struct FaultState {
    random: fastrand::Rng,
    ledger: Ledger,
    /// Handles of older incarnations are dead.
    incarnation: u64,
    /// Whether per-call faults fire.
    active: bool,
    /// Writes still to fail in the current disk-full episode.
    disk_full_writes: u32,
    /// The process crashes at the storage call after this many more calls.
    crash_after_calls: Option<u64>,
    /// The power goes out during the next call of this kind.
    power_cut_at: Option<PowerCutAt>,
}

/// What a simulated remote compaction worker does wrong with one job
/// ([`SimStorage::remote_faults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteFaults {
    /// The answer comes this much later ([`FaultKind::RemoteDelay`]).
    pub delay: Option<Duration>,
    /// The job ran; its answer was lost ([`FaultKind::RemoteAnswerLost`]).
    pub answer_lost: bool,
    /// A second worker runs the job too, starting this much later
    /// ([`FaultKind::RemoteDuplicate`]).
    pub duplicate: Option<Duration>,
}

/// Where an armed power loss comes ([`SimStorage::power_loss_at_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCutAt {
    /// In the middle of the next sync: its bytes are written, not durable.
    Sync,
    /// Right after the next create: the file exists, not durably.
    Create,
}

impl PowerCutAt {
    fn matches(self, call: StorageCall<'_>) -> bool {
        match self {
            PowerCutAt::Sync => syncs(call),
            PowerCutAt::Create => matches!(call, StorageCall::Create { .. }),
        }
    }
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        formatter
            .debug_struct("SimStorage")
            .field("plan", &self.shared.plan)
            .field("incarnation", &state.incarnation)
            .field("active", &state.active)
            .finish_non_exhaustive()
    }
}

impl SimStorage {
    /// A storage for `runtime`'s run, over the runtime's [files](crate::SimRuntime::storage),
    /// injecting the faults of `plan` with randomness derived from the runtime's seed. Faults
    /// are off until [`SimStorage::set_faults_active`].
    #[must_use]
    pub fn new(runtime: &crate::SimRuntime, plan: FaultPlan) -> SimStorage {
        let seed = runtime.seed();
        SimStorage {
            shared: Arc::new(Faults {
                files: runtime.storage(),
                plan,
                runtime: runtime.downgrade(),
                state: Mutex::new(FaultState {
                    random: fastrand::Rng::with_seed(seed ^ FAULT_STREAM),
                    ledger: Ledger::default(),
                    incarnation: 0,
                    active: false,
                    disk_full_writes: 0,
                    crash_after_calls: None,
                    power_cut_at: None,
                }),
                delete_check: Mutex::new(None),
                on_death: Mutex::new(None),
            }),
        }
    }

    /// Runs `check` with the path before every delete reaches the files — to check, at that
    /// moment, that nothing reachable is deleted.
    pub fn set_delete_check(&self, check: impl Fn(&str) + Send + Sync + 'static) {
        *self
            .shared
            .delete_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(check));
    }

    /// Runs `callback` whenever the handles given out so far die — at a crash, a power loss
    /// (also one armed for a sync, at the moment it comes) and [`SimStorage::retire_handles`] —
    /// before they do.
    pub fn on_death(&self, callback: impl Fn() + Send + Sync + 'static) {
        *self
            .shared
            .on_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// A handle for one process incarnation: it works until the next [crash](Self::crash) or
    /// [power loss](Self::power_loss), and then fails every call (appenders it made included).
    /// Every call is folded into the runtime's trace with its outcome.
    #[must_use]
    pub fn handle(&self) -> Arc<dyn Storage> {
        if self.shared.plan.is_on(FaultKind::ObjectStore) {
            let at = self.shared.now();
            let mut state = self.shared.lock();
            if !state.ledger.counts.contains_key(&FaultKind::ObjectStore) {
                state.ledger.note(at, FaultKind::ObjectStore, || {
                    "no durable appends; put-if-absent per WAL group".to_owned()
                });
            }
        }
        let hook = FaultHook {
            faults: Arc::clone(&self.shared),
            incarnation: self.shared.lock().incarnation,
            trace: TraceHook::new(self.shared.runtime.clone()),
        };
        Arc::new(HookedStorage::new(
            Arc::new(self.shared.files.clone()),
            Arc::new(hook),
        ))
    }

    /// The plan.
    #[must_use]
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.plan
    }

    /// The files, for checks that look at what is stored (the harness reads the manifest).
    #[must_use]
    pub fn files(&self) -> &MemoryStorage {
        &self.shared.files
    }

    /// Turns per-call faults (errors, disk full, latency, CAS faults) on or off. Crashes, power
    /// losses and bit flips are injected by calls, whatever this says.
    pub fn set_faults_active(&self, active: bool) {
        let mut state = self.shared.lock();
        state.active = active;
        state.disk_full_writes = 0;
    }

    /// Whether compaction runs on simulated remote workers (any remote kind is on).
    #[must_use]
    pub fn remote_compaction(&self) -> bool {
        [
            FaultKind::RemoteDelay,
            FaultKind::RemoteAnswerLost,
            FaultKind::RemoteDuplicate,
        ]
        .into_iter()
        .any(|kind| self.shared.plan.is_on(kind))
    }

    /// Draws what a simulated remote worker does wrong with the compaction job `job` (nothing
    /// while faults are off), and ledgers it.
    pub fn remote_faults(&self, job: &str) -> RemoteFaults {
        let at = self.shared.now();
        let mut state = self.shared.lock();
        if !state.active {
            return RemoteFaults::default();
        }
        let FaultState { random, ledger, .. } = &mut *state;
        let plan = &self.shared.plan;
        let mut faults = RemoteFaults::default();
        // Up to a minute: past the compactor's tick, often past another job's publication.
        let mut late = |kind: FaultKind, random: &mut fastrand::Rng| {
            plan.fires(kind, random).then(|| {
                let delay = Duration::from_millis(random.u64(0..60_000));
                ledger.note(at, kind, || format!("{job}: {delay:?}"));
                delay
            })
        };
        faults.delay = late(FaultKind::RemoteDelay, random);
        faults.duplicate = late(FaultKind::RemoteDuplicate, random);
        if plan.fires(FaultKind::RemoteAnswerLost, random) {
            ledger.note(at, FaultKind::RemoteAnswerLost, || job.to_owned());
            faults.answer_lost = true;
        }
        faults
    }

    /// The faults injected so far.
    #[must_use]
    pub fn ledger(&self) -> Ledger {
        self.shared.lock().ledger.clone()
    }

    /// A process crash: every handle given out so far dies; all written bytes stay.
    pub fn crash(&self) {
        self.retire_handles();
        let at = self.shared.now();
        let mut state = self.shared.lock();
        state.ledger.note(at, FaultKind::ProcessCrash, String::new);
    }

    /// Ends an incarnation that closed (or tried to close) cleanly: its handles die, as at a
    /// crash, but no fault is recorded.
    pub fn retire_handles(&self) {
        self.shared.retire_handles();
    }

    /// Makes the process crash at the storage call after `calls` more calls succeeded (during
    /// recovery, say). Disarmed by any crash or power loss, and by [`SimStorage::cancel_crash`].
    pub fn crash_after(&self, calls: u64) {
        self.shared.lock().crash_after_calls = Some(calls);
    }

    /// Disarms a [`SimStorage::crash_after`] that has not come yet.
    pub fn cancel_crash(&self) {
        self.shared.lock().crash_after_calls = None;
    }

    /// A power loss: every handle dies, and each file's unsynced tail is lost — or, when the plan
    /// has [`FaultKind::TornWrite`] or [`FaultKind::LostCreate`] on, kept, torn or garbled, and
    /// unsynced creates may survive or vanish.
    pub fn power_loss(&self) {
        self.shared.power_loss(None);
    }

    /// Arms a power loss for the next call of a kind: a sync (a synced append, a close, a
    /// sync), whose bytes reach the files but not durably, so the power loss decides their fate
    /// as for any unsynced bytes; or a create, whose file is not durable yet. The call fails,
    /// as the process is gone.
    pub fn power_loss_at_next(&self, at: PowerCutAt) {
        self.shared.lock().power_cut_at = Some(at);
    }

    /// Cuts the power now if an armed [`SimStorage::power_loss_at_next`] has not come yet (no
    /// such call came); returns whether it did.
    pub fn power_loss_if_armed(&self) -> bool {
        let armed = self.shared.lock().power_cut_at.take().is_some();
        if armed {
            self.power_loss();
        }
        armed
    }

    /// Flips one random bit of one random non-empty file whose path `eligible` accepts, records
    /// it, and returns where: `(path, offset, bit)`; `None` when no such file has a byte.
    pub fn flip_bit_where(&self, eligible: impl Fn(&str) -> bool) -> Option<(String, u64, u8)> {
        let mut state = self.shared.lock();
        let files = self.shared.files.paths();
        let mut candidates = Vec::new();
        for path in files.into_iter().filter(|path| eligible(path)) {
            if let Some(size) = self.shared.files.file_len(&path)
                && size > 0
            {
                candidates.push((path, size));
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let (path, size) = candidates.swap_remove(state.random.usize(0..candidates.len()));
        let offset = state.random.u64(0..size);
        let bit = state.random.u8(0..8);
        self.shared.files.corrupt(&path, offset, 1 << bit).ok()?;
        let at = self.shared.now();
        state.ledger.note(at, FaultKind::BitFlip, || {
            format!("{path} byte {offset} bit {bit}")
        });
        state.ledger.bit_flips.push((path.clone(), offset, bit));
        Some((path, offset, bit))
    }
}

impl Faults {
    /// Kills every handle given out so far, telling the death callback first.
    fn retire_handles(&self) {
        let on_death = self
            .on_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(on_death) = on_death {
            on_death();
        }
        let mut state = self.lock();
        state.incarnation += 1;
        state.crash_after_calls = None;
    }

    /// See [`SimStorage::power_loss`]; `during` is the call the power went out in, if any.
    fn power_loss(&self, during: Option<StorageCall<'_>>) {
        self.retire_handles();
        let at = self.now();
        let mut state = self.lock();
        state.power_cut_at = None;
        state.ledger.note(at, FaultKind::PowerLoss, || {
            during.map_or_else(String::new, |call| format!("during {call:?}"))
        });
        let plan = &self.plan;
        let FaultState { random, ledger, .. } = &mut *state;
        self.files.simulate_power_loss_with(|file| {
            let fate = unsynced_fate(plan, random, file);
            let kind = match &fate {
                AfterPowerLoss::Vanished if file.durable_len.is_none() => FaultKind::LostCreate,
                AfterPowerLoss::Vanished => return fate,
                AfterPowerLoss::Tail(_) => FaultKind::TornWrite,
            };
            ledger.note(at, kind, || describe_fate(&file, &fate));
            fate
        });
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // Every change is a few statements that cannot panic half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.runtime
            .upgrade()
            .map_or(Duration::ZERO, |shared| shared.lock().now)
    }
}

/// What a power loss leaves of `file` under `plan`.
fn unsynced_fate(
    plan: &FaultPlan,
    random: &mut fastrand::Rng,
    file: UnsyncedFile<'_>,
) -> AfterPowerLoss {
    let durable = file
        .durable_len
        .map_or(0, |len| usize::try_from(len).unwrap_or(usize::MAX));
    let unsynced = file.bytes.get(durable..).unwrap_or_default();
    if file.durable_len.is_none() && plan.is_on(FaultKind::LostCreate) && random.bool() {
        return AfterPowerLoss::Vanished;
    }
    if !plan.is_on(FaultKind::TornWrite) || random.u8(0..3) == 0 {
        return AfterPowerLoss::Vanished;
    }
    // Sectors are counted from the start of the file: the tear falls on a sector boundary.
    let boundaries: Vec<usize> = (durable..=durable + unsynced.len())
        .filter(|offset| offset % SECTOR == 0 || *offset == durable + unsynced.len())
        .map(|offset| offset - durable)
        .collect();
    let keep = boundaries[random.usize(0..boundaries.len())];
    let mut tail = unsynced[..keep].to_vec();
    if keep < unsynced.len() && random.bool() {
        // The sector after the tear holds garbage: half written, or stale.
        let garbage = (SECTOR - (durable + keep) % SECTOR).min(unsynced.len() - keep);
        tail.extend((0..garbage).map(|_| random.u8(..)));
    }
    AfterPowerLoss::Tail(tail)
}

fn describe_fate(file: &UnsyncedFile<'_>, fate: &AfterPowerLoss) -> String {
    match fate {
        AfterPowerLoss::Vanished => format!("{} vanished (never synced)", file.path),
        AfterPowerLoss::Tail(tail) => format!(
            "{}: {} of {} unsynced bytes survived (durable {:?})",
            file.path,
            tail.len(),
            file.bytes.len() as u64 - file.durable_len.unwrap_or(0),
            file.durable_len
        ),
    }
}

/// The hook behind one incarnation's handle.
#[derive(Debug)]
struct FaultHook {
    faults: Arc<Faults>,
    incarnation: u64,
    trace: TraceHook,
}

impl fmt::Debug for Faults {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Faults")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// The error an injected fault gives.
fn injected(kind: StorageErrorKind, call: StorageCall<'_>, why: &str) -> StorageError {
    StorageError::new(
        kind,
        call.operation(),
        call.path(),
        format!("injected by the simulator: {why}"),
    )
}

/// The I/O-error fault a call may meet.
fn error_fault(call: StorageCall<'_>) -> FaultKind {
    match call {
        StorageCall::Read { .. } | StorageCall::Size { .. } => FaultKind::ReadError,
        StorageCall::Create { .. } | StorageCall::Put { .. } | StorageCall::Preallocate { .. } => {
            FaultKind::WriteError
        }
        StorageCall::Append { durability, .. } => match durability {
            Durability::Buffered => FaultKind::WriteError,
            Durability::Synced => FaultKind::SyncError,
        },
        StorageCall::Close { .. } | StorageCall::Sync { .. } => FaultKind::SyncError,
        StorageCall::PutIfAbsent { .. } => FaultKind::CasConflict,
        StorageCall::List { .. } => FaultKind::ListError,
        StorageCall::Delete { .. } => FaultKind::DeleteError,
    }
}

/// Whether `call` makes bytes durable that were not: the calls a sync error can fail.
fn syncs(call: StorageCall<'_>) -> bool {
    error_fault(call) == FaultKind::SyncError
}

fn writes(call: StorageCall<'_>) -> bool {
    match call {
        StorageCall::Create { .. } | StorageCall::Preallocate { .. } => true,
        StorageCall::Append { len, .. }
        | StorageCall::Put { len, .. }
        | StorageCall::PutIfAbsent { len, .. } => len > 0,
        _ => false,
    }
}

impl FaultHook {
    /// Decides what happens to `call` before it runs: an error, a delay, or nothing.
    fn decide(&self, call: StorageCall<'_>) -> Result<Duration, StorageError> {
        let faults = &self.faults;
        let mut state = faults.lock();
        if state.incarnation != self.incarnation {
            return Err(injected(
                StorageErrorKind::Io,
                call,
                "the process crashed; this incarnation's storage is gone",
            ));
        }
        if let Some(calls) = state.crash_after_calls {
            if calls == 0 {
                state.incarnation += 1;
                state.crash_after_calls = None;
                let at = faults.now();
                state.ledger.note(at, FaultKind::CrashDuringRecovery, || {
                    format!("at {call:?}")
                });
                return Err(injected(StorageErrorKind::Io, call, "the process crashed"));
            }
            state.crash_after_calls = Some(calls - 1);
        }
        if let Some(at) = state.power_cut_at.filter(|at| at.matches(call)) {
            // The call goes to the files (a sync's bytes not durably); the power goes out
            // before it completes (`after`).
            if at == PowerCutAt::Sync {
                faults.files.set_syncs_in_flight(true);
            }
            return Ok(Duration::ZERO);
        }
        if !state.active {
            return Ok(Duration::ZERO);
        }
        let plan = &faults.plan;
        let at = faults.now();
        let FaultState {
            random,
            ledger,
            disk_full_writes,
            ..
        } = &mut *state;
        if writes(call) {
            if *disk_full_writes == 0 && plan.fires(FaultKind::DiskFull, random) {
                *disk_full_writes = random.u32(1..30);
                ledger.note(at, FaultKind::DiskFull, || {
                    format!("for {disk_full_writes} writes")
                });
            }
            if *disk_full_writes > 0 {
                *disk_full_writes -= 1;
                return Err(injected(
                    StorageErrorKind::Io,
                    call,
                    "no space left on device",
                ));
            }
        }
        let kind = error_fault(call);
        if plan.fires(kind, random) {
            ledger.note(at, kind, || format!("{call:?}"));
            return Err(injected(StorageErrorKind::Io, call, kind.name()));
        }
        if let StorageCall::Read {
            range: Some((start, end)),
            ..
        } = call
            && end > start
            && plan.fires(FaultKind::ShortRead, random)
        {
            ledger.note(at, FaultKind::ShortRead, || format!("{call:?}"));
            return Err(injected(
                StorageErrorKind::UnexpectedEof,
                call,
                "short read: the device returned fewer bytes than asked",
            ));
        }
        if plan.fires(FaultKind::Stall, random) {
            let stall = Duration::from_millis(random.u64(1_000..10_000));
            ledger.note(at, FaultKind::Stall, || format!("{call:?} for {stall:?}"));
            return Ok(stall);
        }
        if plan.is_on(FaultKind::Latency) {
            *ledger.counts.entry(FaultKind::Latency).or_default() += 1;
            return Ok(Duration::from_micros(random.u64(0..5_000)));
        }
        Ok(Duration::ZERO)
    }
}

impl StorageHook for FaultHook {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let decided = self.decide(call);
        if let (StorageCall::Delete { path }, Ok(_)) = (call, &decided) {
            let check = self
                .faults
                .delete_check
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(check) = check {
                check(path);
            }
        }
        let runtime = self.faults.runtime.upgrade();
        let (faults, incarnation) = (Arc::clone(&self.faults), self.incarnation);
        let operation = call.operation();
        let path = call.path().to_owned();
        Box::pin(async move {
            let delay = decided?;
            if let Some(shared) = runtime.filter(|_| !delay.is_zero()) {
                Sleep::new(&shared, delay).await;
                // A process that died while its call was delayed never completes the call: a
                // dead process cannot write (or read) after a newer one has started.
                if faults.lock().incarnation != incarnation {
                    return Err(StorageError::new(
                        StorageErrorKind::Io,
                        operation,
                        path,
                        "injected by the simulator: the process crashed during the call",
                    ));
                }
            }
            Ok(())
        })
    }

    fn after(
        &self,
        call: StorageCall<'_>,
        outcome: Result<u64, StorageErrorKind>,
    ) -> Result<(), StorageError> {
        self.trace.after(call, outcome)?;
        let faults = &self.faults;
        let mut state = faults.lock();
        let cut = state.power_cut_at.is_some_and(|at| at.matches(call));
        if cut && state.incarnation == self.incarnation {
            drop(state);
            faults.power_loss(Some(call));
            return Err(injected(
                StorageErrorKind::Io,
                call,
                "the power went out during the call",
            ));
        }
        if !matches!(call, StorageCall::PutIfAbsent { .. }) || outcome != Ok(1) {
            return Ok(());
        }
        if !state.active || state.incarnation != self.incarnation {
            return Ok(());
        }
        let at = faults.now();
        let FaultState { random, ledger, .. } = &mut *state;
        if faults.plan.fires(FaultKind::CasAppliedButFailed, random) {
            ledger.note(at, FaultKind::CasAppliedButFailed, || format!("{call:?}"));
            return Err(injected(
                StorageErrorKind::Io,
                call,
                "the put applied, but its answer was lost (timeout)",
            ));
        }
        if faults
            .plan
            .fires(FaultKind::CasAppliedReportedTaken, random)
        {
            ledger.note(at, FaultKind::CasAppliedReportedTaken, || {
                format!("{call:?}")
            });
            return Err(injected(
                StorageErrorKind::AlreadyExists,
                call,
                "the put applied, its answer was lost, and the retry found the file there",
            ));
        }
        Ok(())
    }

    fn supports_durable_append(&self, inner: bool) -> bool {
        inner && !self.faults.plan.is_on(FaultKind::ObjectStore)
    }
}
