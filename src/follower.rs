//! Read-only followers: a [`Db`] handle that reads a database another process writes.
//!
//! A follower loads the newest manifest version the writer published and reads its SSTs; it
//! never writes anything — no claim, no WAL, no SST, no deletion — so any number of followers
//! can read one database beside its writer, on other machines too. [`Db::refresh`] (and, with
//! [`DbBuilder::refresh_interval`](crate::DbBuilder::refresh_interval), a background task) loads
//! the newest version again: SSTs already open are kept, new ones are opened, and reads from then
//! on see every commit the version covers. Commits the writer holds only in its memtables (its
//! write-ahead log) are not visible to followers until the writer flushes them.
//!
//! Snapshots stay valid on a follower exactly as long as the files they read exist: the writer's
//! GC sweeper deletes an SST the grace period after it left the writer's current version
//! ([`DbBuilder::gc_grace_period`](crate::DbBuilder::gc_grace_period)). A follower's snapshot —
//! and its current view, which is as old as its last refresh — must therefore be done within
//! that grace period of the writer replacing the version it was taken from.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use damselfly_actors::Timestamp;
use damselfly_actors::kernel::{Lifecycle, mailbox};
use damselfly_actors::manifest::{ManifestStore, PublishedVersion, Version};
use damselfly_actors::memtable::{Memtable, ReadView, TransactionPins, Visibility, WriteBudget};
use damselfly_actors::metrics::EngineMetrics;
use damselfly_actors::sst::{BlockCache, SstReader};
use damselfly_actors::table::TableSchema;
use damselfly_runtimes::{JoinHandle, Runtime, RuntimeExt};
use futures_lite::FutureExt;

use crate::builder::{Location, Options};
use crate::db::{Db, DbInner, token};
use crate::error::Error;
use crate::open::{Create, open_ssts, resolve};

/// What a follower needs beyond what every handle has.
pub(crate) struct Follower {
    store: ManifestStore,
    cache: Arc<BlockCache>,
    /// One token: holding it is the right to refresh (refreshes do not interleave).
    turn: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Closed by `close`, which stops the background refresh.
    stop: async_channel::Sender<()>,
}

impl Follower {
    /// Stops the background refresh, if there is one.
    pub(crate) fn stop(&self) {
        self.stop.close();
    }
}

/// Opens a read-only handle on the database at `location`, which must exist.
pub(crate) async fn open_read_only(
    table: TableSchema,
    location: Location,
    options: Options,
    runtime: Arc<dyn Runtime>,
) -> Result<Db, Error> {
    let (storage, table) = resolve(location, table, &runtime, Create::Never).await?;
    let cache = Arc::new(BlockCache::new(options.block_cache_bytes));
    let store = ManifestStore::new(Arc::clone(&storage));
    // The writer publishes its first version right after creating the descriptor.
    let latest = store
        .load_latest()
        .await?
        .unwrap_or_else(|| Version::empty(0));
    let version = Arc::new(open_ssts(&storage, &table, &cache, latest).await?);
    let watermark = Timestamp::new(version.version.last_commit);
    let visibility = Arc::new(Visibility::new(
        ReadView {
            memtables: vec![Arc::new(Memtable::new(0))],
            version,
        },
        watermark,
    ));
    let turn = token();
    let (stop, stopped) = async_channel::bounded(1);
    let follower = Follower {
        store,
        cache,
        turn,
        stop,
    };
    // A follower runs no actor; its write paths check for the follower before using these.
    let capacity = options.mailbox_capacity;
    let close_token = token();
    let interval = options.refresh_interval;
    tracing::info!(
        location = %storage.location(),
        last_commit = %watermark,
        "read-only database open"
    );
    let db = Db::from_inner(DbInner {
        table,
        runtime: Arc::clone(&runtime),
        storage,
        lifecycle: Lifecycle::new(),
        memtable: mailbox("memtable", capacity).0,
        compactor: mailbox("compactor", capacity).0,
        gc: mailbox("gc-sweeper", capacity).0,
        visibility,
        budget: Arc::new(WriteBudget::new(0)),
        pins: Arc::new(TransactionPins::default()),
        metrics: Arc::new(EngineMetrics::default()),
        options,
        actors: std::sync::Mutex::new(Vec::new()),
        close_token,
        follower: Some(follower),
    });
    if let Some(interval) = interval {
        let task = refresh_every(db.downgrade(), Arc::clone(&runtime), interval, stopped);
        db.track_task(task);
    }
    Ok(db)
}

/// Loads the newest published version into `inner`'s view, if it is newer than the one there;
/// returns the commit timestamp reads now see.
pub(crate) async fn refresh(inner: &DbInner, follower: &Follower) -> Result<Timestamp, Error> {
    let token = follower.turn.1.recv().await;
    let result = load_newest(inner, follower).await;
    if token.is_ok() {
        let _ = follower.turn.0.try_send(());
    }
    result
}

async fn load_newest(inner: &DbInner, follower: &Follower) -> Result<Timestamp, Error> {
    let (view, watermark) = inner.visibility.snapshot();
    let current = &view.version;
    let newer = follower.store.load_newer_than(current.version.number);
    let Some(latest) = newer.await? else {
        return Ok(watermark);
    };
    let open: BTreeMap<u64, &Arc<SstReader>> = current
        .ssts()
        .map(|(sst, reader)| (sst.id, reader))
        .collect();
    let mut readers = BTreeMap::new();
    for sst in latest.ssts() {
        let reader = match open.get(&sst.id) {
            Some(&reader) => Arc::clone(reader),
            None => Arc::new(
                SstReader::open(
                    Arc::clone(&inner.storage),
                    &sst.path(),
                    Arc::clone(&inner.table),
                    Arc::clone(&follower.cache),
                    sst.footer_checksum(),
                    sst.bytes,
                )
                .await?,
            ),
        };
        readers.insert(sst.id, reader);
    }
    let through = Timestamp::new(latest.last_commit);
    tracing::debug!(number = latest.number, last_commit = %through, "follower refreshed");
    inner
        .visibility
        .follow(Arc::new(PublishedVersion::new(latest, readers)), through);
    inner.metrics.follower_refreshes.add(1);
    Ok(inner.visibility.watermark())
}

/// Refreshes the database every `interval` until it is closed (or every handle is dropped). A
/// failed refresh is logged and tried again at the next tick; reads go on with the view loaded
/// before.
fn refresh_every(
    inner: Weak<DbInner>,
    runtime: Arc<dyn Runtime>,
    interval: Duration,
    stopped: async_channel::Receiver<()>,
) -> JoinHandle<()> {
    let ticks = Arc::clone(&runtime);
    let task = async move {
        loop {
            let stop = async {
                let _ = stopped.recv().await;
                true
            };
            let tick = async {
                ticks.sleep(interval).await;
                false
            };
            if stop.or(tick).await {
                return;
            }
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let Some(follower) = &inner.follower else {
                return;
            };
            if let Err(error) = refresh(&inner, follower).await {
                inner.metrics.follower_refresh_failures.add(1);
                tracing::warn!(%error, "a follower's refresh failed; retrying at the next tick");
            }
        }
    };
    runtime.spawn("follower-refresh", task)
}
