//! [`DbBuilder`]: a table definition, a place to keep it, and options; `open` recovers or
//! creates the database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use damselfly_actors::compactor::{CompactionExecutor, CompactionOptions, LocalExecutor};
use damselfly_actors::gc::GcOptions;
use damselfly_actors::manifest::Retention;
use damselfly_actors::sst::{DEFAULT_BLOCK_CACHE_BYTES, SstCompression, SstOptions};
use damselfly_actors::table::TableSchema;
use damselfly_actors::wal::{WalOptions, WalSyncPolicy};
use damselfly_runtimes::{FusioStorage, Runtime, Storage};
use fusio::DynFs;
use fusio::fs::FsCas;

use crate::db::Db;
use crate::error::Error;

/// Where the database keeps its files.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A fresh in-memory store, gone when the database is dropped.
    Memory,
    /// A folder on the local disk.
    Disk(PathBuf),
    /// A storage the caller supplies (a fusio filesystem, shared memory, ...).
    Storage(Arc<dyn Storage>),
}

/// Options of a database, with their defaults.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) wal: WalOptions,
    pub(crate) memtable_bytes: usize,
    pub(crate) max_sealed_memtables: usize,
    pub(crate) write_stall_timeout: Duration,
    pub(crate) mailbox_capacity: usize,
    pub(crate) sst: SstOptions,
    pub(crate) block_cache_bytes: usize,
    pub(crate) retention: Retention,
    pub(crate) compaction: CompactionOptions,
    pub(crate) automatic_compaction: bool,
    pub(crate) level0_slowdown_files: usize,
    pub(crate) level0_stop_files: usize,
    pub(crate) executor: Option<ExecutorFactory>,
    pub(crate) gc: GcOptions,
    /// How often a read-only handle loads the newest version on its own.
    pub(crate) refresh_interval: Option<Duration>,
}

/// Makes the compaction executor from the in-process one (which it may wrap or ignore).
#[derive(Clone)]
pub(crate) struct ExecutorFactory(
    pub(crate) Arc<dyn Fn(LocalExecutor) -> Arc<dyn CompactionExecutor> + Send + Sync>,
);

impl std::fmt::Debug for ExecutorFactory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ExecutorFactory")
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wal: WalOptions::default(),
            memtable_bytes: 64 << 20,
            max_sealed_memtables: 2,
            write_stall_timeout: Duration::from_secs(30),
            mailbox_capacity: 1024,
            sst: SstOptions::default(),
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            retention: Retention::KEEP_ALL,
            compaction: CompactionOptions::default(),
            automatic_compaction: true,
            level0_slowdown_files: 20,
            level0_stop_files: 36,
            executor: None,
            gc: GcOptions::default(),
            refresh_interval: None,
        }
    }
}

impl Options {
    /// Memtable memory writers may fill before they wait: the writable memtable and the sealed
    /// ones waiting to be flushed.
    pub(crate) fn budget_bytes(&self) -> usize {
        self.memtable_bytes
            .saturating_mul(self.max_sealed_memtables.saturating_add(1))
    }

    fn validate(&self) -> Result<(), Error> {
        let positive = |value: u64, name: &str| {
            if value == 0 {
                Err(Error::invalid_input(format!(
                    "{name} must be greater than zero"
                )))
            } else {
                Ok(())
            }
        };
        positive(self.memtable_bytes as u64, "memtable_bytes")?;
        positive(self.wal.segment_bytes_max, "wal_segment_bytes")?;
        positive(
            self.wal.segment_age_max.as_nanos() as u64,
            "wal_segment_age",
        )?;
        positive(
            self.write_stall_timeout.as_nanos() as u64,
            "write_stall_timeout",
        )?;
        positive(self.mailbox_capacity as u64, "mailbox_capacity")?;
        positive(self.max_sealed_memtables as u64, "max_sealed_memtables")?;
        positive(
            self.gc.interval.as_nanos() as u64,
            "the GC interval (gc_interval)",
        )?;
        if let Some(interval) = self.refresh_interval {
            positive(interval.as_nanos() as u64, "refresh_interval")?;
        }
        self.compaction
            .validate()
            .map_err(|error| Error::invalid_input(error.to_string()))?;
        let due = self.compaction.level0_files_due();
        if self.level0_slowdown_files == 0
            || self.level0_stop_files < self.level0_slowdown_files
            || self.level0_stop_files < due
        {
            return Err(Error::invalid_input(format!(
                "level 0 write thresholds must be 0 < slowdown <= stop, and stop at least {due} \
                 (where the compaction strategy always compacts level 0, or flushes would wait \
                 for a compaction that never comes); got slowdown {} and stop {}",
                self.level0_slowdown_files, self.level0_stop_files
            )));
        }
        if self.retention.versions == Some(0) {
            return Err(Error::invalid_input(
                "retain_versions(0) would keep no version at all; keep at least one",
            ));
        }
        match self.wal.sync_policy {
            WalSyncPolicy::IntervalBytes(0) => Err(Error::invalid_input(
                "WalSyncPolicy::IntervalBytes(0) would sync every commit; use WalSyncPolicy::Always",
            )),
            WalSyncPolicy::IntervalTime(interval) if interval.is_zero() => {
                Err(Error::invalid_input(
                    "WalSyncPolicy::IntervalTime of zero would sync every commit; use WalSyncPolicy::Always",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Builds a [`Db`]: which table, where, and how.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow_schema::{DataType, Field, Schema};
/// use damselfly::{DbBuilder, WalSyncPolicy};
///
/// # fn main() -> Result<(), damselfly::Error> {
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("id", DataType::UInt64, false),
///     Field::new("name", DataType::Utf8, true),
/// ]));
/// let builder = DbBuilder::from_schema_key_name(schema, "id")?
///     .in_memory()
///     .wal_sync_policy(WalSyncPolicy::Always)
///     .memtable_bytes(64 << 20);
/// # let _ = builder;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DbBuilder {
    table: TableSchema,
    location: Location,
    options: Options,
}

impl DbBuilder {
    /// A table keyed by the single column `key_name`.
    pub fn from_schema_key_name(schema: SchemaRef, key_name: &str) -> Result<Self, Error> {
        Self::from_schema_key_names(schema, &[key_name])
    }

    /// A table keyed by `key_names`, in that order (a composite key).
    pub fn from_schema_key_names(schema: SchemaRef, key_names: &[&str]) -> Result<Self, Error> {
        Ok(Self::with_table(TableSchema::new(schema, key_names)?))
    }

    /// A table whose key columns are marked in the schema's field metadata: `"damselfly.key"`
    /// set to `"true"` on each key column (key order = column order) or to `"0"`, `"1"`, ...
    /// (explicit key order).
    pub fn from_schema(schema: SchemaRef) -> Result<Self, Error> {
        Ok(Self::with_table(TableSchema::from_key_metadata(schema)?))
    }

    fn with_table(table: TableSchema) -> Self {
        Self {
            table,
            location: Location::Memory,
            options: Options::default(),
        }
    }

    /// Keeps the database in memory (the default). Its contents are gone when it is dropped.
    pub fn in_memory(mut self) -> Self {
        self.location = Location::Memory;
        self
    }

    /// Keeps the database in the folder `path` on the local disk, creating it if needed. Opening
    /// fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) if `path` is a
    /// file.
    pub fn on_disk(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid_input(
                "on_disk needs a folder path, got an empty one",
            ));
        }
        self.location = Location::Disk(path);
        Ok(self)
    }

    /// Keeps the database under `root` of a fusio filesystem with conditional put (an object
    /// store such as S3, or fusio's in-memory filesystem). The write-ahead log then writes one
    /// object per group commit.
    pub fn on_fs<F>(self, fs: Arc<F>, root: impl Into<String>) -> Result<Self, Error>
    where
        F: DynFs + FsCas + 'static,
    {
        let root = root.into();
        let root = root.trim_matches('/');
        if root.is_empty() {
            return Err(Error::invalid_input(
                "on_fs needs a root folder for the database, got an empty one",
            ));
        }
        Ok(self.on_storage(Arc::new(FusioStorage::new(fs, root))))
    }

    /// Keeps the database in S3-compatible object storage (AWS S3, MinIO, R2, ...), under the
    /// bucket and key prefix `spec` names. Every part of the database lives there: the
    /// write-ahead log writes one object per group commit, and a commit is acknowledged once
    /// its object exists. Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// when the configuration is incomplete (no credentials, a plain-HTTP endpoint not allowed,
    /// ...); no request is sent before `open`. To read the request counts, make the
    /// [`S3Storage`](crate::storage::S3Storage) yourself and pass it to
    /// [`DbBuilder::on_storage`]. See `docs/object-storage.md`.
    #[cfg(feature = "s3")]
    pub fn object_store(self, spec: damselfly_runtimes::storage::S3Spec) -> Result<Self, Error> {
        let storage = damselfly_runtimes::storage::S3Storage::connect(spec)
            .map_err(|error| Error::with_source(crate::ErrorKind::InvalidInput, error))?;
        Ok(self.on_storage(Arc::new(storage)))
    }

    /// Keeps the database in `storage`, any implementation of the storage port — for example a
    /// [`MemoryStorage`](crate::storage::MemoryStorage) shared across reopenings in tests, or
    /// the simulator's storage.
    pub fn on_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.location = Location::Storage(storage);
        self
    }

    /// When the write-ahead log is synced (default [`WalSyncPolicy::Always`]).
    pub fn wal_sync_policy(mut self, policy: WalSyncPolicy) -> Self {
        self.options.wal.sync_policy = policy;
        self
    }

    /// The size at which a WAL segment is closed and a new one started (default 64 MiB).
    pub fn wal_segment_bytes(mut self, bytes: u64) -> Self {
        self.options.wal.segment_bytes_max = bytes;
        self
    }

    /// The age at which a WAL segment is closed and a new one started (default 10 minutes).
    pub fn wal_segment_age(mut self, age: Duration) -> Self {
        self.options.wal.segment_age_max = age;
        self
    }

    /// The size (data and index) at which the writable memtable is sealed and flushed to an SST
    /// (default 64 MiB).
    pub fn memtable_bytes(mut self, bytes: usize) -> Self {
        self.options.memtable_bytes = bytes;
        self
    }

    /// How many sealed memtables may wait for the flusher before writers wait for it (default 2).
    /// Memtable memory is bounded by `memtable_bytes × (1 + max_sealed_memtables)`.
    pub fn max_sealed_memtables(mut self, count: usize) -> Self {
        self.options.max_sealed_memtables = count;
        self
    }

    /// How SSTs are compressed (default zstd).
    pub fn sst_compression(mut self, compression: SstCompression) -> Self {
        self.options.sst.compression = compression;
        self
    }

    /// Memory for decoded SST blocks that point lookups and scans reuse (default 128 MiB: enough
    /// to keep a million-row table's blocks warm). A scan of every column keeps the blocks it
    /// decodes when they fit in a quarter of the cache; larger scans, and scans of some columns,
    /// read from the cache only when every block they need is there, and keep nothing.
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.options.block_cache_bytes = bytes;
        self
    }

    /// Keeps at least the newest `versions` commits readable with
    /// [`Db::snapshot_at`](crate::Db::snapshot_at) (by default every commit is kept).
    pub fn retain_versions(mut self, versions: u64) -> Self {
        self.options.retention.versions = Some(versions);
        self
    }

    /// Keeps the commits of at least the last `age` readable with
    /// [`Db::snapshot_at`](crate::Db::snapshot_at). With both a count and an age, a commit is
    /// kept if either keeps it.
    pub fn retain_for(mut self, age: Duration) -> Self {
        self.options.retention.age = Some(age);
        self
    }

    /// How long a write waits for memtable room before it fails with
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) (default 30 seconds).
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.options.write_stall_timeout = timeout;
        self
    }

    /// How compaction shapes the tree: the strategy (leveled by default, or tiered), its
    /// triggers, the limits of one job, the size of output files and how many jobs run at once.
    /// See [`CompactionOptions`].
    pub fn compaction(mut self, options: CompactionOptions) -> Self {
        self.options.compaction = options;
        self
    }

    /// Whether the compactor runs on its own as SSTs accumulate (default `true`). When off,
    /// only [`Db::compact`](crate::Db::compact) compacts, and level 0 never holds writes back.
    pub fn automatic_compaction(mut self, automatic: bool) -> Self {
        self.options.automatic_compaction = automatic;
        self
    }

    /// Write backpressure from level 0 (defaults 20 and 36 SSTs): from `slowdown` files on,
    /// each write is delayed a little (250 µs per MiB it brings per file past the threshold, at
    /// most 100 ms); at `stop` files, flushes wait for compaction (each at most
    /// `write_stall_timeout`), so memtables fill and writers wait for room. Applies only with
    /// automatic compaction.
    pub fn level0_write_thresholds(mut self, slowdown: usize, stop: usize) -> Self {
        self.options.level0_slowdown_files = slowdown;
        self.options.level0_stop_files = stop;
        self
    }

    /// Runs compaction jobs through the executor `factory` makes from the in-process one —
    /// it may wrap it (to count, log or delay jobs), fall back to it, or ignore it and run jobs
    /// elsewhere. See [`CompactionExecutor`] for what an executor must do.
    pub fn compaction_executor<F>(mut self, factory: F) -> Self
    where
        F: Fn(LocalExecutor) -> Arc<dyn CompactionExecutor> + Send + Sync + 'static,
    {
        self.options.executor = Some(ExecutorFactory(Arc::new(factory)));
        self
    }

    /// How long an SST stays on storage after it became unreachable (default one minute): a
    /// reader in another process that loaded an older manifest version has that long to finish
    /// with it. Files a snapshot of this process holds stay as long as the snapshot, whatever
    /// the grace period.
    pub fn gc_grace_period(mut self, grace_period: Duration) -> Self {
        self.options.gc.grace_period = grace_period;
        self
    }

    /// How often the GC sweeper looks at unreachable files (default one second).
    pub fn gc_interval(mut self, interval: Duration) -> Self {
        self.options.gc.interval = interval;
        self
    }

    /// Opens the database on `runtime`: creates it if the location is empty, otherwise checks
    /// the stored table definition and recovers every durable commit from the write-ahead log.
    pub async fn open(self, runtime: impl Runtime) -> Result<Db, Error> {
        self.options.validate()?;
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        crate::open::open(self.table, self.location, self.options, runtime).await
    }

    /// For a read-only handle: load the newest published version every `interval`, in the
    /// background (default: only when [`Db::refresh`] is called). Writers ignore it.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.options.refresh_interval = Some(interval);
        self
    }

    /// Opens a read-only handle — a *follower* — on the existing database at this location,
    /// which a writer in another process (or on another machine) may be writing. It reads the
    /// newest version the writer has published (its SSTs; not what the writer holds only in
    /// memory and in its write-ahead log), sees newer ones after [`Db::refresh`] or every
    /// [`refresh_interval`](Self::refresh_interval), and never writes: writes, transactions,
    /// `flush`, `compact` and `gc` fail with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput). Its snapshots stay
    /// readable for as long as the writer's GC grace period
    /// ([`gc_grace_period`](Self::gc_grace_period)) after the writer replaced the version they
    /// read. See `docs/object-storage.md`.
    pub async fn open_read_only(self, runtime: impl Runtime) -> Result<Db, Error> {
        self.options.validate()?;
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        crate::follower::open_read_only(self.table, self.location, self.options, runtime).await
    }
}
