//! The WAL writer actor: group commit, sync policies, rotation, and one object per group on
//! storage without durable appends.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use damselfly_runtimes::{
    BoxFuture, Durability, HookedStorage, MemoryStorage, Runtime, SmolRuntime, StorageCall,
    StorageError, StorageHook,
};

use super::replay::ReplaySummary;
use super::*;
use crate::kernel::{Address, Lifecycle, Mailbox, mailbox, spawn_actor};
use crate::memtable::MemtableMessage;
use crate::table::TableSchema;

/// Records every append's durability (closing counts as a synced append), can hold synced
/// appends until the test releases them, and can pose as an object store (no durable appends).
#[derive(Debug)]
struct Observer {
    appends: Mutex<Vec<Durability>>,
    /// While set, a synced append reports itself on the first channel and waits on the second.
    gate: Option<(async_channel::Sender<()>, async_channel::Receiver<()>)>,
    object_store: bool,
}

impl StorageHook for Observer {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let durability = match call {
            StorageCall::Append { durability, .. } => durability,
            StorageCall::Close { .. } => Durability::Synced,
            _ => return Box::pin(async { Ok(()) }),
        };
        self.appends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(durability);
        let gate = self
            .gate
            .clone()
            .filter(|_| durability == Durability::Synced);
        Box::pin(async move {
            if let Some((entered, release)) = gate {
                let _ = entered.send(()).await;
                let _ = release.recv().await;
            }
            Ok(())
        })
    }

    fn supports_durable_append(&self, inner: bool) -> bool {
        inner && !self.object_store
    }
}

/// The storage under test: memory, observed.
struct Observed {
    memory: MemoryStorage,
    observer: Arc<Observer>,
    storage: HookedStorage,
}

impl Observed {
    fn appends(&self) -> Vec<Durability> {
        self.observer
            .appends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The test's side of a gate: it hears when a synced append starts, and releases it.
struct GateControl {
    entered: async_channel::Receiver<()>,
    release: async_channel::Sender<()>,
}

fn observed(gated: bool, object_store: bool) -> (Observed, Option<GateControl>) {
    let (entered_sender, entered) = async_channel::unbounded();
    let (release, release_receiver) = async_channel::unbounded();
    let observer = Arc::new(Observer {
        appends: Mutex::default(),
        gate: gated.then_some((entered_sender, release_receiver)),
        object_store,
    });
    let memory = MemoryStorage::new();
    let storage = HookedStorage::new(Arc::new(memory.clone()), observer.clone());
    let observed = Observed {
        memory,
        observer,
        storage,
    };
    (observed, gated.then_some(GateControl { entered, release }))
}

fn table() -> TableSchema {
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "id",
        arrow_schema::DataType::UInt64,
        false,
    )]));
    TableSchema::new(schema, &["id"]).expect("a valid table")
}

fn body(id: u64) -> Bytes {
    let table = table();
    let batch = arrow_array::RecordBatch::try_new(
        Arc::clone(table.schema()),
        vec![Arc::new(arrow_array::UInt64Array::from(vec![id]))],
    )
    .expect("a valid batch");
    record::encode_body(&batch, None).expect("encodable")
}

struct Running {
    wal: Address<WalMessage>,
    /// Held so the memtable's notice lane stays open for the writer.
    _memtable: Address<MemtableMessage>,
    durable: Mailbox<MemtableMessage>,
    handle: damselfly_runtimes::JoinHandle<()>,
    metrics: Arc<EngineMetrics>,
    lifecycle: Lifecycle,
}

fn start(observed: &Observed, options: WalOptions) -> Running {
    let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new());
    let lifecycle = Lifecycle::new();
    let metrics = Arc::new(EngineMetrics::default());
    let (memtable, durable) = mailbox::<MemtableMessage>("memtable", 16);
    let writer = WalWriter::new(
        Arc::new(observed.storage.clone()),
        Arc::clone(&runtime),
        options,
        &table(),
        &ReplaySummary::default(),
        memtable.notifier(),
        Arc::clone(&metrics),
    )
    .expect("a writer");
    let (wal, wal_mailbox) = mailbox("wal-writer", 64);
    let handle = spawn_actor(&runtime, &lifecycle, writer, wal_mailbox);
    Running {
        wal,
        _memtable: memtable,
        durable,
        handle,
        metrics,
        lifecycle,
    }
}

/// A writer with the default options on gated storage, past the synced segment header it
/// starts its part of the log with.
fn start_gated() -> (Observed, Running, GateControl) {
    let (storage, gate) = observed(true, false);
    let gate = gate.expect("gated");
    let running = start(&storage, WalOptions::default());
    smol::block_on(async {
        gate.entered
            .recv()
            .await
            .expect("the start of the log is synced");
        gate.release.send(()).await.expect("release the start");
    });
    (storage, running, gate)
}

async fn next_durable(durable: &Mailbox<MemtableMessage>) -> u64 {
    match durable.next(true).await {
        crate::kernel::Delivery::Message(MemtableMessage::Durable { through }) => through.get(),
        other => panic!("expected a durable notice, got {other:?}"),
    }
}

async fn append(wal: &Address<WalMessage>, timestamp: u64) {
    append_waiting(wal, timestamp, true).await;
}

async fn append_waiting(wal: &Address<WalMessage>, timestamp: u64, wait_for_sync: bool) {
    wal.tell(WalMessage::Append {
        timestamp: Timestamp::new(timestamp),
        body: body(timestamp),
        wait_for_sync,
    })
    .await
    .expect("the writer runs");
}

#[test]
fn commits_that_arrive_during_a_sync_share_the_next_one() {
    let (storage, running, GateControl { entered, release }) = start_gated();
    smol::block_on(async {
        append(&running.wal, 1).await;
        entered.recv().await.expect("the first sync starts");
        // While it is in flight, nine more commits arrive.
        for timestamp in 2..=10 {
            append(&running.wal, timestamp).await;
        }
        release.send(()).await.expect("release the first sync");
        assert_eq!(next_durable(&running.durable).await, 1);
        entered.recv().await.expect("the second sync starts");
        release.send(()).await.expect("release the second sync");
        assert_eq!(
            next_durable(&running.durable).await,
            10,
            "one sync for all nine"
        );
    });
    let appends = storage.appends();
    assert_eq!(
        appends,
        [Durability::Synced; 3],
        "the start, then two groups"
    );
    assert_eq!(running.metrics.wal_writes.get(), 2);
    assert_eq!(running.metrics.wal_synced_timestamp.get(), 10);
    assert!(running.lifecycle.failure().is_none());
}

#[test]
fn commits_that_do_not_wait_are_reported_written_then_synced_on_their_own() {
    let (storage, running, GateControl { entered, release }) = start_gated();
    smol::block_on(async {
        append_waiting(&running.wal, 1, false).await;
        // Reported before any sync: the gate holds every synced append, and none has come.
        assert_eq!(next_durable(&running.durable).await, 1);
        assert_eq!(running.metrics.wal_synced_timestamp.get(), 0);
        // With nothing else to do, the writer syncs it within the lag.
        entered.recv().await.expect("the written commit is synced");
        release.send(()).await.expect("release that sync");
        // A commit that waits is synced before it is reported.
        append_waiting(&running.wal, 2, true).await;
        entered
            .recv()
            .await
            .expect("the waiting commit's sync starts");
        assert!(
            running.durable.try_next(false).is_none(),
            "not reported before its sync"
        );
        release.send(()).await.expect("release it");
        assert_eq!(next_durable(&running.durable).await, 2);
    });
    assert_eq!(
        storage.appends(),
        [
            Durability::Synced,
            Durability::Buffered,
            Durability::Synced,
            Durability::Synced
        ],
        "the start, the written commit, its sync, the waiting commit"
    );
    assert_eq!(running.metrics.wal_synced_timestamp.get(), 2);
}

#[test]
fn interval_bytes_syncs_once_enough_is_unsynced() {
    let (storage, _) = observed(false, false);
    let options = WalOptions {
        sync_policy: WalSyncPolicy::IntervalBytes(2_000),
        ..WalOptions::default()
    };
    let running = start(&storage, options);
    smol::block_on(async {
        for timestamp in 1..=12 {
            append(&running.wal, timestamp).await;
            assert_eq!(next_durable(&running.durable).await, timestamp);
        }
        running.wal.close();
        running.handle.await.expect("a clean stop");
    });
    let appends = storage.appends();
    let synced = appends
        .iter()
        .filter(|&&durability| durability == Durability::Synced)
        .count();
    assert!(
        synced >= 1 && synced < appends.len() - 1,
        "some buffered, some synced: {appends:?}"
    );
    assert_eq!(appends.last(), Some(&Durability::Synced), "closing syncs");
}

#[test]
fn segments_rotate_by_size_and_replay_as_one_log() {
    let (storage, _) = observed(false, false);
    let options = WalOptions {
        segment_bytes_max: 1_000,
        ..WalOptions::default()
    };
    let running = start(&storage, options);
    smol::block_on(async {
        for timestamp in 1..=20 {
            append(&running.wal, timestamp).await;
            next_durable(&running.durable).await;
        }
        running.wal.close();
        running.handle.await.expect("a clean stop");
    });
    assert!(running.metrics.wal_segments_created.get() > 2);
    let summary = smol::block_on(replay::replay(&storage.memory, &table(), 0, |_| Ok(())))
        .expect("an intact log");
    assert_eq!((summary.commits, summary.last_timestamp), (20, 20));
    assert_eq!(
        summary.segments.len() as u64,
        running.metrics.wal_segments_created.get()
    );
}

#[test]
fn without_durable_appends_every_group_is_its_own_segment() {
    let (storage, _) = observed(false, true);
    let running = start(&storage, WalOptions::default());
    smol::block_on(async {
        for timestamp in 1..=5 {
            append(&running.wal, timestamp).await;
            next_durable(&running.durable).await;
        }
        running.wal.close();
        running.handle.await.expect("a clean stop");
    });
    assert!(storage.appends().is_empty());
    // One object to start the writer's part of the log, then one per group.
    assert_eq!(running.metrics.wal_segments_created.get(), 6);
    let summary = smol::block_on(replay::replay(&storage.memory, &table(), 0, |_| Ok(())))
        .expect("an intact log");
    assert_eq!((summary.commits, summary.segments.len()), (5, 6));
}

#[test]
fn segments_rotate_by_age() {
    let (storage, _) = observed(false, false);
    let options = WalOptions {
        // Every segment is too old by the next write, so each group starts a new segment.
        segment_age_max: std::time::Duration::from_nanos(1),
        ..WalOptions::default()
    };
    let running = start(&storage, options);
    smol::block_on(async {
        for timestamp in 1..=4 {
            append(&running.wal, timestamp).await;
            next_durable(&running.durable).await;
        }
        running.wal.close();
        running.handle.await.expect("a clean stop");
    });
    // The segment that starts the log, then a new one for each group.
    assert_eq!(running.metrics.wal_segments_created.get(), 5);
    let summary = smol::block_on(replay::replay(&storage.memory, &table(), 0, |_| Ok(())))
        .expect("an intact log");
    assert_eq!((summary.commits, summary.segments.len()), (4, 5));
}

/// Fails every delete of one path while it is set.
#[derive(Debug, Default)]
struct StuckDelete {
    path: Mutex<Option<String>>,
}

impl StorageHook for StuckDelete {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let stuck = self.path.lock().unwrap_or_else(PoisonError::into_inner);
        let failed = matches!(call, StorageCall::Delete { path } if stuck.as_deref() == Some(path));
        let error = failed.then(|| {
            StorageError::new(
                damselfly_runtimes::StorageErrorKind::Io,
                "delete",
                call.path(),
                "the device refused",
            )
        });
        Box::pin(async move { error.map_or(Ok(()), Err) })
    }
}

#[test]
fn truncation_leaves_a_contiguous_run_of_the_newest_segments() {
    let memory = MemoryStorage::new();
    let hook = Arc::new(StuckDelete::default());
    let storage = Arc::new(HookedStorage::new(Arc::new(memory.clone()), hook.clone()));
    // Segments 1-5 as replay found them, with the newest commit in each; 3 holds none.
    let newest = [(1, 10), (2, 20), (3, 0), (4, 40), (5, 50)];
    let mut replayed = ReplaySummary::default();
    for (id, last_timestamp) in newest {
        smol::block_on(memory.put(&segment::path(id), Bytes::from_static(b"x"))).expect("put");
        replayed.segments.push(replay::ReplayedSegment {
            end: SegmentEnd { id, length: 1 },
            last_timestamp,
        });
    }
    let (memtable, _durable) = mailbox::<MemtableMessage>("memtable", 16);
    let mut writer = WalWriter::new(
        storage,
        Arc::new(SmolRuntime::new()),
        WalOptions::default(),
        &table(),
        &replayed,
        memtable.notifier(),
        Arc::new(EngineMetrics::default()),
    )
    .expect("a writer");
    let left = || memory.paths();
    let paths = |ids: &[u64]| ids.iter().map(|&id| segment::path(id)).collect::<Vec<_>>();

    // Segment 1 cannot be deleted: nothing after it may go either.
    *hook.path.lock().unwrap_or_else(PoisonError::into_inner) = Some(segment::path(1));
    smol::block_on(writer.truncate(Timestamp::new(20)));
    assert_eq!(left(), paths(&[1, 2, 3, 4, 5]));

    // Once it can, the oldest go; the empty segment 3 stays while segment 2 does.
    *hook.path.lock().unwrap_or_else(PoisonError::into_inner) = None;
    smol::block_on(writer.truncate(Timestamp::new(15)));
    assert_eq!(left(), paths(&[2, 3, 4, 5]));
    smol::block_on(writer.truncate(Timestamp::new(45)));
    assert_eq!(left(), paths(&[5]), "the newest segment always stays");
}
