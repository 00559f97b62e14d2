//! Read-only followers: a second handle on a database another handle writes. It sees what the
//! writer has published, newer versions after a refresh, keeps its snapshots across the
//! writer's flushes, compactions and GC (within the grace period), and never writes a byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use damselfly::runtime::BoxFuture;
use damselfly::storage::{HookedStorage, MemoryStorage, StorageCall, StorageError, StorageHook};
use damselfly::{DbBuilder, ErrorKind};

/// Refuses (and counts) every call that would change the storage, so that a follower on it is
/// seen to read only.
#[derive(Debug, Default)]
struct ReadOnly {
    refused: AtomicU64,
}

impl StorageHook for ReadOnly {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let writes = !matches!(
            call,
            StorageCall::Read { .. } | StorageCall::Size { .. } | StorageCall::List { .. }
        );
        if writes {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        let (operation, path) = (call.operation(), call.path().to_owned());
        Box::pin(async move {
            if writes {
                return Err(StorageError::new(
                    damselfly::storage::StorageErrorKind::Io,
                    operation,
                    path,
                    "a follower must not write",
                ));
            }
            Ok(())
        })
    }
}

/// `storage` as a follower sees it: writes refused and counted.
fn read_only(storage: &Arc<MemoryStorage>) -> (Arc<HookedStorage>, Arc<ReadOnly>) {
    let hook = Arc::new(ReadOnly::default());
    let inner = storage.clone() as Arc<dyn damselfly::storage::Storage>;
    (Arc::new(HookedStorage::new(inner, hook.clone())), hook)
}

runtime_test!(
    async fn a_follower_sees_what_the_writer_publishes_and_writes_nothing(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let writer = manual_compaction(&storage).open(runtime.clone()).await?;
        writer.ingest(events(&[1, 2], 0)).await?;
        writer.flush().await?;

        let (view, hook) = read_only(&storage);
        let follower = events_builder().on_storage(view).open_read_only(runtime.clone()).await?;
        assert!(follower.is_read_only() && !writer.is_read_only());
        assert_eq!(ids_and_scores(&follower).await?, [(1, 10), (2, 20)]);
        let before = follower.begin_snapshot().await?;

        // Unflushed commits live in the writer's memory and WAL: not visible to followers.
        writer.ingest(events(&[3], 0)).await?;
        writer.ingest_with_tombstones(events(&[1], 0), vec![true]).await?;
        follower.refresh().await?;
        assert_eq!(ids_and_scores(&follower).await?, [(1, 10), (2, 20)]);

        writer.flush().await?;
        let newest = follower.refresh().await?;
        assert_eq!(newest, writer.refresh().await?, "the follower reads at the writer's newest");
        assert_eq!(ids_and_scores(&follower).await?, [(2, 20), (3, 30)]);
        assert_eq!(follower.get(2u64).await?.map(|row| row.num_rows()), Some(1));
        assert!(follower.get(1u64).await?.is_none(), "the delete is applied");
        let older = follower.snapshot_at(before.timestamp()).await?;
        assert_eq!(u64_column(&older.scan().collect().await?, "id"), [1, 2], "time travel");
        assert_eq!(u64_column(&before.scan().collect().await?, "id"), [1, 2], "a held snapshot");
        assert_eq!(follower.metrics().follower_refreshes, 1, "one newer version was loaded");

        assert_error(follower.ingest(events(&[9], 0)).await, ErrorKind::InvalidInput, "read-only");
        assert_error(follower.begin_transaction().await, ErrorKind::InvalidInput, "read-only");
        assert_error(follower.flush().await, ErrorKind::InvalidInput, "read-only");
        assert_error(follower.compact().await, ErrorKind::InvalidInput, "read-only");
        assert_error(follower.gc().await, ErrorKind::InvalidInput, "read-only");
        assert_eq!(hook.refused.load(Ordering::SeqCst), 0, "the follower tried no write");
        follower.close().await?;
        assert_error(follower.refresh().await, ErrorKind::Closed, "closed");
        writer.close().await
    }
);

runtime_test!(
    async fn a_follower_snapshot_outlives_the_writers_compaction_within_the_grace_period(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let writer = manual_compaction(&storage)
            .gc_grace_period(Duration::from_secs(3600))
            .open(runtime.clone())
            .await?;
        for round in 0..4u64 {
            writer.ingest(events(&[round, round + 10], round as i64)).await?;
            writer.flush().await?;
        }
        let follower = events_builder()
            .on_storage(storage.clone())
            .block_cache_bytes(0)
            .open_read_only(runtime.clone())
            .await?;
        let snapshot = follower.begin_snapshot().await?;
        let expected = ids_and_scores(&follower).await?;
        assert_eq!(expected.len(), 8);

        // The writer rewrites every SST the follower's snapshot reads, and sweeps.
        for round in 0..4u64 {
            writer.ingest(events(&[round], 100)).await?;
        }
        writer.flush().await?;
        writer.compact().await?;
        let report = writer.gc().await?;
        assert!(report.deleted.is_empty(), "within the grace period nothing is deleted");

        let batches = snapshot.scan().collect().await?;
        let held: Vec<(u64, i64)> = u64_column(&batches, "id")
            .into_iter()
            .zip(i64_column(&batches, "score"))
            .collect();
        assert_eq!(held, expected, "the follower's snapshot reads the files it started with");

        follower.refresh().await?;
        let now = ids_and_scores(&follower).await?;
        assert_eq!(now, ids_and_scores(&writer).await?, "after a refresh: the compacted version");
        follower.close().await?;
        writer.close().await
    }
);

runtime_test!(
    async fn a_follower_with_a_refresh_interval_catches_up_on_its_own(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let writer = manual_compaction(&storage).open(runtime.clone()).await?;
        let follower = events_builder()
            .on_storage(storage.clone())
            .refresh_interval(Duration::from_millis(5))
            .open_read_only(runtime.clone())
            .await?;
        assert!(ids_and_scores(&follower).await?.is_empty());
        writer.ingest(events(&[7], 1)).await?;
        writer.flush().await?;
        // Wait for the background refresh to load the flush, not for a length of time.
        let mut waited = 0;
        while follower.metrics().follower_refreshes == 0 {
            waited += 1;
            assert!(waited < 100_000, "the follower never refreshed");
            runtime.sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(ids_and_scores(&follower).await?, [(7, 71)]);
        follower.close().await?;
        writer.close().await
    }
);

runtime_test!(
    async fn a_follower_needs_an_existing_database(runtime) {
        let missing = events_builder()
            .on_storage(Arc::new(MemoryStorage::new()))
            .open_read_only(runtime.clone())
            .await;
        assert_error(missing, ErrorKind::InvalidInput, "no database");
        let fresh = events_builder().in_memory().open_read_only(runtime.clone()).await;
        assert_error(fresh, ErrorKind::InvalidInput, "existing database");
        let folder = temp_dir();
        let nowhere = folder.path().join("no-database-here");
        let absent = events_builder().on_disk(&nowhere)?.open_read_only(runtime.clone()).await;
        assert_error(absent, ErrorKind::InvalidInput, "no database");
        assert!(!nowhere.exists(), "a follower creates nothing, not even the folder");

        let storage = Arc::new(MemoryStorage::new());
        events_builder().on_storage(storage.clone()).open(runtime.clone()).await?.close().await?;
        let other = DbBuilder::from_schema_key_name(events_schema(), "score")?;
        let wrong = other.on_storage(storage.clone()).open_read_only(runtime.clone()).await;
        assert_error(wrong, ErrorKind::InvalidInput, "created with");
        let zero = events_builder().on_storage(storage).refresh_interval(Duration::ZERO);
        assert_error(zero.open_read_only(runtime).await, ErrorKind::InvalidInput, "refresh_interval");
        Ok(())
    }
);
