//! What each WAL sync policy promises. A process crash never loses an acknowledged commit; a
//! power loss loses none under `Always`, and under the interval policies loses at most a suffix
//! of whole commits — never a part of one, never one before a survivor — and never what a
//! recovery after a process crash replayed.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use damselfly::WalSyncPolicy;
use damselfly::runtime::Runtime;
use damselfly::storage::{MemoryStorage, Storage};

const POLICIES: [WalSyncPolicy; 4] = [
    WalSyncPolicy::Always,
    WalSyncPolicy::IntervalBytes(4096),
    WalSyncPolicy::IntervalTime(Duration::from_secs(3600)),
    WalSyncPolicy::Never,
];

/// Opens a database on `storage` with `policy` and commits 30 times, one key per commit (key =
/// commit number); returns the database and the acknowledged keys.
async fn write_commits(
    storage: Arc<dyn Storage>,
    policy: WalSyncPolicy,
    runtime: &Rt,
) -> Result<(damselfly::Db, Vec<u64>), damselfly::Error> {
    let db = events_builder()
        .on_storage(storage)
        .wal_sync_policy(policy)
        .open(runtime.clone())
        .await?;
    for key in 0..30 {
        db.ingest(events(&[key], 0)).await?;
    }
    Ok((db, (0..30).collect()))
}

runtime_test!(
    async fn a_process_crash_loses_nothing_acknowledged(runtime) {
        for policy in POLICIES {
            let storage = MemoryStorage::new();
            let (process, first) = Process::on(&storage);
            let (db, acknowledged) = write_commits(process, policy, &runtime).await?;
            first.crash(); // the process dies; the OS keeps what was written
            drop(db);

            let db = events_builder().on_storage(Arc::new(storage)).open(runtime.clone()).await?;
            let batches = db.scan().collect().await?;
            assert_eq!(u64_column(&batches, "id"), acknowledged, "{policy:?}");
            db.close().await?;
        }
        Ok(())
    }
);

runtime_test!(
    async fn a_power_loss_keeps_a_prefix_of_whole_commits(runtime) {
        for policy in POLICIES {
            let storage = MemoryStorage::new();
            let (db, acknowledged) =
                write_commits(Arc::new(storage.clone()), policy, &runtime).await?;
            storage.simulate_power_loss();
            drop(db);

            let db = events_builder().on_storage(Arc::new(storage)).open(runtime.clone()).await?;
            let survivors = u64_column(&db.scan().collect().await?, "id");
            assert_eq!(survivors, acknowledged[..survivors.len()], "{policy:?}: a prefix");
            if policy == WalSyncPolicy::Always {
                assert_eq!(survivors, acknowledged, "Always loses nothing acknowledged");
            }
            db.close().await?;
        }
        Ok(())
    }
);

runtime_test!(
    async fn interval_time_syncs_on_its_own(runtime) {
        let storage = MemoryStorage::new();
        let interval = Duration::from_millis(20);
        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .wal_sync_policy(WalSyncPolicy::IntervalTime(interval))
            .open(runtime.clone())
            .await?;
        db.ingest(events(&[0], 0)).await?;
        let last = db.ingest(events(&[1, 2], 0)).await?;
        // Without further writes, the WAL syncs by itself within the interval.
        while db.metrics().durable_timestamp < last {
            runtime.sleep(interval / 4).await;
        }
        storage.simulate_power_loss();
        drop(db);
        let db = events_builder().on_storage(Arc::new(storage)).open(runtime).await?;
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), [0, 1, 2]);
        db.close().await
    }
);

runtime_test!(
    async fn what_recovery_replayed_survives_a_later_power_loss(runtime) {
        for policy in POLICIES {
            let storage = MemoryStorage::new();
            let (process, first) = Process::on(&storage);
            let (db, acknowledged) = write_commits(process, policy, &runtime).await?;
            first.crash(); // the process dies with commits the OS holds but the disk may not
            drop(db);

            // Recovery replays them and the reopened database builds on them...
            let db = events_builder()
                .on_storage(Arc::new(storage.clone()))
                .wal_sync_policy(policy)
                .open(runtime.clone())
                .await?;
            assert_eq!(u64_column(&db.scan().collect().await?, "id"), acknowledged);
            for key in 30..40 {
                db.ingest(events(&[key], 0)).await?;
            }
            // ...so they must outlive a power loss; the later commits keep a prefix.
            storage.simulate_power_loss();
            drop(db);

            let db = events_builder().on_storage(Arc::new(storage)).open(runtime.clone()).await?;
            let survivors = u64_column(&db.scan().collect().await?, "id");
            assert_eq!(survivors[..30], acknowledged, "{policy:?}: what recovery saw");
            let later: Vec<u64> = (30..40).collect();
            assert_eq!(survivors[30..], later[..survivors.len() - 30], "{policy:?}: a prefix");
            db.close().await?;
        }
        Ok(())
    }
);
