//! Opening a database: the storage, the table descriptor, WAL replay, then the actors.
//!
//! Recovery only reads: the one thing opening writes is the table descriptor of a database that
//! does not exist yet (with put-if-absent). The next WAL segment, which records where replay
//! ended, is created by the first commit. A crash during recovery therefore recovers again to the
//! same state.

use std::sync::Arc;

use damselfly_actors::Timestamp;
use damselfly_actors::kernel::{Lifecycle, mailbox, spawn_actor};
use damselfly_actors::memtable::{
    Memtable, MemtableActor, PreparedWrite, ReadView, Visibility, WriteBudget,
};
use damselfly_actors::metrics::EngineMetrics;
use damselfly_actors::table::{TableSchema, descriptor};
use damselfly_actors::wal::{WalWriter, replay};
use damselfly_runtimes::{
    LocalDiskStorage, MemoryStorage, PutOutcome, Runtime, Storage, StorageErrorKind,
};

use crate::builder::{Location, Options};
use crate::db::{Db, DbInner};
use crate::error::{Error, ErrorKind};

pub(crate) async fn open(
    table: TableSchema,
    location: Location,
    options: Options,
    runtime: Arc<dyn Runtime>,
) -> Result<Db, Error> {
    let storage = resolve_storage(location, &runtime).await?;
    let table = Arc::new(check_descriptor(storage.as_ref(), table).await?);
    let metrics = Arc::new(EngineMetrics::default());
    let budget = Arc::new(WriteBudget::new(options.memtable_bytes));
    let memtable = Arc::new(Memtable::new());

    let summary = replay::replay(storage.as_ref(), &table, |commit| {
        let write = PreparedWrite::replayed(&table, commit.batch, commit.deletes)
            .map_err(|error| error.to_string())?;
        budget.force_reserve(write.memory_bytes);
        memtable.insert(
            Timestamp::new(commit.timestamp),
            write.batch,
            write.keys,
            write.deletes.as_ref(),
        );
        Ok(())
    })
    .await?;
    metrics.replayed_commits.add(summary.commits);
    metrics.replayed_rows.add(summary.rows);
    if budget.used() > budget.limit() {
        tracing::warn!(
            used = budget.used(),
            limit = budget.limit(),
            "the recovered memtable exceeds its budget; writes wait until memory is freed"
        );
    }

    let last_timestamp = Timestamp::new(summary.last_timestamp);
    let visibility = Arc::new(Visibility::new(
        ReadView {
            memtable: Arc::clone(&memtable),
        },
        last_timestamp,
    ));
    let lifecycle = Lifecycle::new();
    let (wal_address, wal_mailbox) = mailbox("wal-writer", options.mailbox_capacity);
    let (memtable_address, memtable_mailbox) = mailbox("memtable", options.mailbox_capacity);
    let wal = WalWriter::new(
        Arc::clone(&storage),
        Arc::clone(&runtime),
        options.wal.clone(),
        &table,
        summary.last_segment,
        memtable_address.notifier(),
        Arc::clone(&metrics),
    )?;
    let memtable_actor = MemtableActor::new(
        last_timestamp,
        Arc::clone(&visibility),
        wal_address,
        Arc::clone(&metrics),
    );
    let actors = vec![
        spawn_actor(&runtime, &lifecycle, memtable_actor, memtable_mailbox),
        spawn_actor(&runtime, &lifecycle, wal, wal_mailbox),
    ];
    tracing::info!(
        location = %storage.location(),
        commits = summary.commits,
        last_timestamp = summary.last_timestamp,
        "database open"
    );
    let close_token = async_channel::bounded(1);
    close_token
        .0
        .try_send(())
        .expect("a new channel with room for one message accepts one message");
    Ok(Db::from_inner(DbInner {
        table,
        runtime,
        storage,
        lifecycle,
        memtable: memtable_address,
        visibility,
        budget,
        metrics,
        options,
        actors: std::sync::Mutex::new(actors),
        close_token,
    }))
}

async fn resolve_storage(
    location: Location,
    runtime: &Arc<dyn Runtime>,
) -> Result<Arc<dyn Storage>, Error> {
    Ok(match location {
        Location::Memory => Arc::new(MemoryStorage::new()),
        Location::Disk(path) => Arc::new(LocalDiskStorage::open(path, Arc::clone(runtime)).await?),
        Location::Storage(storage) => storage,
    })
}

/// Creates the table descriptor, or checks that the stored one describes `table`.
async fn check_descriptor(storage: &dyn Storage, table: TableSchema) -> Result<TableSchema, Error> {
    let path = descriptor::DESCRIPTOR_PATH;
    match storage.read(path).await {
        Ok(bytes) => return compare(storage, table, descriptor::decode(path, &bytes)?),
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
