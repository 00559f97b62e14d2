//! Opening a database: the storage, the table descriptor, the manifest, WAL replay, the actors.
//!
//! 1. The table descriptor is created (a new database) or checked against the builder's table.
//! 2. The newest manifest version is loaded and *claimed*: republished with the next epoch, which
//!    fences off any older writer of the same root.
//! 3. The claimed version's SSTs are opened.
//! 4. The WAL is replayed above the version's floor into memtables; memtables that fill up during
//!    replay are sealed, and the memtable actor hands them to the flusher as soon as it starts.
//! 5. The commit clock resumes above the newest commit in the manifest and in the log.
//! 6. This writer's first WAL segment, which records where replay ended, is written. If a stale
//!    writer (fenced off by the claim, but not aware of it yet) wrote a segment under that id
//!    meanwhile, that segment is part of the log now: opening starts again from step 2, and the
//!    new claim and replay include it.
//!
//! Recovery writes only the descriptor of a new database, the claim and that first segment. Running
//! recovery again after a crash during it recovers to the same data.

use std::collections::BTreeMap;
use std::sync::Arc;

use damselfly_actors::Timestamp;
use damselfly_actors::compactor::{CompactionExecutor, Compactor, CompactorContext, LocalExecutor};
use damselfly_actors::flusher::{Flusher, FlusherContext, Level0Stop};
use damselfly_actors::gc::GcSweeper;
use damselfly_actors::kernel::{Lifecycle, mailbox, spawn_actor};
use damselfly_actors::manifest::{
    ManifestStore, PublishedVersion, Publisher, PublisherPeers, Version,
};
use damselfly_actors::memtable::{
    KeyedRows, Memtable, MemtableActor, MemtablePeers, ReadView, RecoveredMemtables,
    TransactionPins, Visibility, WriteBudget,
};
use damselfly_actors::metrics::EngineMetrics;
use damselfly_actors::probe::{self, Probe};
use damselfly_actors::sst::{BlockCache, SstReader};
use damselfly_actors::table::{TableSchema, descriptor};
use damselfly_actors::wal::replay::{self, ReplaySummary};
use damselfly_actors::wal::{WalError, WalWriter};
use damselfly_runtimes::{
    LocalDiskStorage, MemoryStorage, PutOutcome, Runtime, Storage, StorageErrorKind,
};

use crate::builder::{Location, Options};
use crate::db::{Db, DbInner, token};
use crate::error::{Error, ErrorKind};

/// How often opening is tried again when a stale writer's WAL segment took the place of this
/// writer's first one.
const OPEN_ATTEMPTS_MAX: u32 = 4;

pub(crate) async fn open(
    table: TableSchema,
    location: Location,
    options: Options,
    runtime: Arc<dyn Runtime>,
) -> Result<Db, Error> {
    let (storage, table) = resolve(location, table, &runtime, Create::IfMissing).await?;
    for _ in 0..OPEN_ATTEMPTS_MAX {
        let opened = open_writer(&storage, &table, &options, &runtime).await?;
        if let Some(db) = opened {
            return Ok(db);
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        format!(
            "could not open the database at {}: another writer kept writing its log while this \
             one claimed it ({OPEN_ATTEMPTS_MAX} attempts); is a second writer running?",
            storage.location()
        ),
    ))
}

/// Claims the database, recovers it and starts the actors — or `None` when a stale writer (one
/// this claim fenced off, which has not noticed yet) wrote the WAL segment this writer was to
/// start with: its segment is part of the log now, so the caller opens again and replays it;
/// the new claim leaves the stale writer nothing more to write.
async fn open_writer(
    storage: &Arc<dyn Storage>,
    table: &Arc<TableSchema>,
    options: &Options,
    runtime: &Arc<dyn Runtime>,
) -> Result<Option<Db>, Error> {
    let (storage, table, options, runtime) = (
        Arc::clone(storage),
        Arc::clone(table),
        options.clone(),
        Arc::clone(runtime),
    );
    let metrics = Arc::new(EngineMetrics::default());
    let cache = Arc::new(BlockCache::new(options.block_cache_bytes));

    let store = ManifestStore::new(Arc::clone(&storage));
    let latest = store.load_latest().await?;
    let claimed = store.claim(latest).await?;
    let version = Arc::new(open_ssts(&storage, &table, &cache, claimed).await?);

    let budget = Arc::new(WriteBudget::new(options.budget_bytes()));
    let (memtables, summary) =
        replay_wal(&storage, &table, &version.version, &options, &budget).await?;
    metrics.replayed_commits.add(summary.commits);
    metrics.replayed_rows.add(summary.rows);
    probe_recovery(&*runtime, &summary, &memtables);
    let clock = Timestamp::new(summary.last_timestamp.max(version.version.last_commit));

    let mut view_memtables = vec![Arc::clone(&memtables.writable)];
    view_memtables.extend(memtables.sealed.iter().rev().cloned());
    let visibility = Arc::new(Visibility::new(
        ReadView {
            memtables: view_memtables,
            version: Arc::clone(&version),
        },
        clock,
    ));
    let lifecycle = Lifecycle::new();
    let pins = Arc::new(TransactionPins::default());
    let capacity = options.mailbox_capacity;
    let (wal_address, wal_mailbox) = mailbox("wal-writer", capacity);
    let (memtable_address, memtable_mailbox) = mailbox("memtable", capacity);
    let (flusher_address, flusher_mailbox) = mailbox("flusher", capacity);
    let (publisher_address, publisher_mailbox) = mailbox("manifest-publisher", capacity);
    let (compactor_address, compactor_mailbox) = mailbox("compactor", capacity);
    let (gc_address, gc_mailbox) = mailbox("gc-sweeper", capacity);
    let mut wal = WalWriter::new(
        Arc::clone(&storage),
        Arc::clone(&runtime),
        options.wal.clone(),
        &table,
        &summary,
        memtable_address.notifier(),
        Arc::clone(&metrics),
    )?;
    match wal.start_log().await {
        Ok(()) => {}
        Err(WalError::SegmentTaken { path }) => {
            tracing::info!(
                path,
                "a stale writer extended the log while this one opened; again"
            );
            probe::hit(&*runtime, Probe::OpenRetriedAfterStaleSegment);
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    }
    let publisher = Publisher::new(
        store,
        Arc::clone(&version),
        options.retention,
        Arc::clone(&runtime),
        Arc::clone(&visibility),
        PublisherPeers {
            compactor: compactor_address.notifier(),
            gc: gc_address.notifier(),
        },
    );
    let local = LocalExecutor::new(
        Arc::clone(&storage),
        Arc::clone(&runtime),
        Arc::clone(&table),
        options.sst.clone(),
    )
    .with_subcompactions(options.compaction.subcompactions)
    .with_metrics(Arc::clone(&metrics.executor));
    let executor: Arc<dyn CompactionExecutor> = match &options.executor {
        Some(factory) => (factory.0)(local),
        None => Arc::new(local),
    };
    let compactor = Compactor::new(CompactorContext {
        storage: Arc::clone(&storage),
        runtime: Arc::clone(&runtime),
        table: Arc::clone(&table),
        cache: Arc::clone(&cache),
        executor,
        options: options.compaction.clone(),
        automatic: options.automatic_compaction,
        retention: options.retention,
        pins: Arc::clone(&pins),
        visibility: Arc::clone(&visibility),
        publisher: publisher_address.clone(),
        gc: gc_address.notifier(),
        compactor: compactor_address.notifier(),
        metrics: Arc::clone(&metrics),
        lifecycle: lifecycle.clone(),
    });
    let gc = GcSweeper::new(
        Arc::clone(&storage),
        Arc::clone(&runtime),
        Arc::clone(&visibility),
        Arc::clone(&metrics),
        options.gc,
    );
    let flusher = Flusher::new(FlusherContext {
        storage: Arc::clone(&storage),
        runtime: Arc::clone(&runtime),
        table: Arc::clone(&table),
        options: options.sst.clone(),
        cache,
        publisher: publisher_address,
        memtable: memtable_address.notifier(),
        metrics: Arc::clone(&metrics),
        flusher: flusher_address.notifier(),
        level0_stop: options.automatic_compaction.then(|| Level0Stop {
            files: options.level0_stop_files,
            max_wait: options.write_stall_timeout,
            visibility: Arc::clone(&visibility),
            lifecycle: lifecycle.clone(),
        }),
    });
    let memtable_actor = MemtableActor::new(
        clock,
        memtables,
        options.memtable_bytes,
        (
            Arc::clone(&visibility),
            Arc::clone(&budget),
            Arc::clone(&metrics),
        ),
        MemtablePeers {
            wal: wal_address,
            flusher: flusher_address,
        },
    );
    // In shutdown order: the memtable stops first and closes the WAL writer and the flusher;
    // `close` closes the compactor, which finishes its running jobs; the publisher stops once
    // the flusher and the compactor, its users, are gone; `close` closes the GC sweeper last.
    let actors = vec![
        spawn_actor(&runtime, &lifecycle, memtable_actor, memtable_mailbox),
        spawn_actor(&runtime, &lifecycle, wal, wal_mailbox),
        spawn_actor(&runtime, &lifecycle, flusher, flusher_mailbox),
        spawn_actor(&runtime, &lifecycle, compactor, compactor_mailbox),
        spawn_actor(&runtime, &lifecycle, publisher, publisher_mailbox),
        spawn_actor(&runtime, &lifecycle, gc, gc_mailbox),
    ];
    tracing::info!(
        location = %storage.location(),
        epoch = version.version.epoch,
        ssts = version.len(),
        replayed_commits = summary.commits,
        last_timestamp = %clock,
        "database open"
    );
    let close_token = token();
    Ok(Some(Db::from_inner(DbInner {
        table,
        runtime,
        storage,
        lifecycle,
        memtable: memtable_address,
        compactor: compactor_address,
        gc: gc_address,
        visibility,
        budget,
        pins,
        metrics,
        options,
        actors: std::sync::Mutex::new(actors),
        close_token,
        follower: None,
    })))
}

/// Whether opening may create a database where there is none (a writer) or must find one (a
/// read-only follower, which writes nothing at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    IfMissing,
    Never,
}

/// The storage at `location`, and the table stored there: created if missing and `create`
/// allows it, or else checked against `table`.
pub(crate) async fn resolve(
    location: Location,
    table: TableSchema,
    runtime: &Arc<dyn Runtime>,
    create: Create,
) -> Result<(Arc<dyn Storage>, Arc<TableSchema>), Error> {
    let storage: Arc<dyn Storage> = match (location, create) {
        (Location::Memory, Create::IfMissing) => Arc::new(MemoryStorage::new()),
        (Location::Memory, Create::Never) => {
            return Err(Error::invalid_input(
                "a read-only handle follows an existing database: give its location (on_disk, \
                 object_store, on_fs or on_storage), not a new in-memory one",
            ));
        }
        (Location::Disk(path), Create::IfMissing) => {
            Arc::new(LocalDiskStorage::open(path, Arc::clone(runtime)).await?)
        }
        (Location::Disk(path), Create::Never) => {
            let shown = path.display().to_string();
            match LocalDiskStorage::open_existing(path, Arc::clone(runtime)).await {
                Ok(storage) => Arc::new(storage),
                Err(error) if error.kind == StorageErrorKind::NotFound => {
                    return Err(no_database(&shown));
                }
                Err(error) => return Err(error.into()),
            }
        }
        (Location::Storage(storage), _) => storage,
    };
    let table = Arc::new(check_descriptor(storage.as_ref(), table, create).await?);
    Ok((storage, table))
}

fn no_database(location: &str) -> Error {
    Error::invalid_input(format!(
        "there is no database at {location}: a read-only handle follows a database its writer \
         has created"
    ))
}

/// The claimed version with a reader for each of its SSTs.
pub(crate) async fn open_ssts(
    storage: &Arc<dyn Storage>,
    table: &Arc<TableSchema>,
    cache: &Arc<BlockCache>,
    version: Version,
) -> Result<PublishedVersion, Error> {
    let mut readers = BTreeMap::new();
    for sst in version.ssts() {
        let reader = SstReader::open(
            Arc::clone(storage),
            &sst.path(),
            Arc::clone(table),
            Arc::clone(cache),
            sst.footer_checksum(),
            sst.bytes,
        )
        .await?;
        readers.insert(sst.id, Arc::new(reader));
    }
    Ok(PublishedVersion::new(version, readers))
}

/// Replays the WAL above `version`'s floor into memtables, sealing each that fills up.
async fn replay_wal(
    storage: &Arc<dyn Storage>,
    table: &TableSchema,
    version: &Version,
    options: &Options,
    budget: &WriteBudget,
) -> Result<(RecoveredMemtables, ReplaySummary), Error> {
    let mut sealed = Vec::new();
    let mut writable = Arc::new(Memtable::new(0));
    let summary = replay::replay(storage.as_ref(), table, version.wal_floor, |commit| {
        let rows = KeyedRows::conformed(table, commit.batch, commit.deletes)
            .map_err(|error| error.to_string())?;
        budget.force_reserve(rows.memory_bytes);
        writable.insert(Timestamp::new(commit.timestamp), rows);
        if writable.bytes() >= options.memtable_bytes {
            let next = Arc::new(writable.successor());
            sealed.push(std::mem::replace(&mut writable, next));
        }
        Ok(())
    })
    .await?;
    Ok((RecoveredMemtables { writable, sealed }, summary))
}

/// Notes the recovery paths this open took.
fn probe_recovery(runtime: &dyn Runtime, summary: &ReplaySummary, memtables: &RecoveredMemtables) {
    let reached = [
        (summary.commits > 0, Probe::RecoveryReplayed),
        (
            summary.skipped_commits > 0,
            Probe::RecoverySkippedBelowFloor,
        ),
        (summary.torn_bytes > 0, Probe::RecoveryTornTail),
        (summary.superseded_bytes > 0, Probe::RecoverySupersededBytes),
        (
            !memtables.sealed.is_empty(),
            Probe::RecoverySealedDuringReplay,
        ),
    ];
    for (reached, probe) in reached {
        if reached {
            probe::hit(runtime, probe);
        }
    }
}

/// Creates the table descriptor (if `create` allows), or checks that the stored one describes
/// `table`.
async fn check_descriptor(
    storage: &dyn Storage,
    table: TableSchema,
    create: Create,
) -> Result<TableSchema, Error> {
    let path = descriptor::DESCRIPTOR_PATH;
    match storage.read(path).await {
        Ok(bytes) => return compare(storage, table, descriptor::decode(path, &bytes)?),
        Err(error) if error.kind == StorageErrorKind::NotFound && create == Create::Never => {
            return Err(no_database(&storage.location()));
        }
        Err(error) if error.kind == StorageErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    let encoded = descriptor::encode(&table)
        .map_err(|error| Error::with_source(ErrorKind::InvalidInput, error))?;
    match storage.put_if_absent(path, encoded).await? {
        PutOutcome::Created => Ok(table),
        // Someone created the database at the same moment: theirs is the definition.
        PutOutcome::AlreadyExists => {
            let stored = descriptor::decode(path, &storage.read(path).await?)?;
            compare(storage, table, stored)
        }
    }
}

fn compare(
    storage: &dyn Storage,
    wanted: TableSchema,
    stored: TableSchema,
) -> Result<TableSchema, Error> {
    if wanted.same_table_as(&stored) {
        return Ok(wanted);
    }
    Err(Error::invalid_input(format!(
        "the database at {} was created with schema {} and key ({}); it was opened with schema {} \
         and key ({}). Open it with the schema and key it was created with.",
        storage.location(),
        stored.schema(),
        stored.key_names().join(", "),
        wanted.schema(),
        wanted.key_names().join(", "),
    )))
}
