//! Memtables become SSTs — on `flush()` and by themselves when full — and every read answers the
//! same before and after: point lookups and scans across memtables and SSTs, upserts and deletes
//! whose versions live in different places, and reopening, which replays nothing flushed.

use std::sync::Arc;

use crate::common::*;
use damselfly::Key;
use damselfly::storage::{MemoryStorage, Storage};

runtime_test!(
    async fn reads_are_the_same_before_and_after_a_flush(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let ids: Vec<u64> = (0..5000).collect();
        db.ingest(events(&ids, 0)).await?;
        db.ingest_with_tombstones(events(&[10, 20], 0), vec![true, true]).await?;
        db.ingest(events(&[30, 5000], 7)).await?;
        let before = db.scan().collect().await?;
        let lookups = [0u64, 10, 30, 4999, 5000, 6000];
        let mut found_before = Vec::new();
        for id in lookups {
            found_before.push(db.get(Key::from(id)).await?);
        }

        db.flush().await?;
        let metrics = db.metrics();
        assert_eq!(metrics.sst_count, 1);
        assert_eq!(metrics.memtable_rows, 0, "the flushed memtable left the read view");
        assert_eq!(metrics.rows_flushed, 5004, "every version, deletes included");
        assert_eq!(db.scan().collect().await?, before);
        for (id, expected) in lookups.into_iter().zip(found_before) {
            assert_eq!(db.get(Key::from(id)).await?, expected, "key {id}");
        }
        db.close().await
    }
);

runtime_test!(
    async fn versions_in_different_ssts_and_the_memtable_resolve_to_the_newest(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2, 3, 4], 0)).await?; // SST 1: version 0
        db.flush().await?;
        db.ingest(events(&[1, 2], 1)).await?; // SST 2: version 1 of 1 and 2
        db.ingest_with_tombstones(events(&[3], 0), vec![true]).await?; // SST 2: 3 deleted
        db.flush().await?;
        db.ingest(events(&[1], 2)).await?; // memtable: version 2 of 1
        db.ingest_with_tombstones(events(&[2], 0), vec![true]).await?; // memtable: 2 deleted
        db.ingest(events(&[3], 3)).await?; // memtable: 3 comes back
        assert_eq!(db.metrics().sst_count, 2);
        assert_eq!(ids_and_scores(&db).await?, [(1, 12), (3, 33), (4, 40)]);
        assert!(db.get(Key::from(2u64)).await?.is_none());
        let three = db.get(Key::from(3u64)).await?.expect("3 is back");
        assert_eq!(i64_column(&[three], "score"), [33]);
        // The same after everything is in SSTs.
        db.flush().await?;
        assert_eq!(ids_and_scores(&db).await?, [(1, 12), (3, 33), (4, 40)]);
        assert!(db.get(Key::from(2u64)).await?.is_none());
        db.close().await
    }
);

runtime_test!(
    async fn sources_that_share_only_their_edge_key_are_merged(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 5, 10], 0)).await?;
        db.flush().await?;
        db.ingest(events(&[10, 15, 20], 1)).await?; // 10 is the last key of one SST, the first of the next
        db.flush().await?;
        db.ingest(events(&[30, 40], 0)).await?;
        db.flush().await?;
        db.ingest(events(&[40, 50], 2)).await?; // and of the last SST and the memtable
        let expected = [(1, 10), (5, 50), (10, 101), (15, 151), (20, 201), (30, 300), (40, 402), (50, 502)];
        assert_eq!(ids_and_scores(&db).await?, expected);
        db.flush().await?;
        assert_eq!(ids_and_scores(&db).await?, expected);
        db.close().await
    }
);

runtime_test!(
    async fn full_memtables_flush_by_themselves(runtime) {
        let db = events_builder()
            .in_memory()
            .memtable_bytes(128 << 10)
            .open(runtime)
            .await?;
        let mut expected = Vec::new();
        for round in 0..60u64 {
            let ids: Vec<u64> = (round * 100..round * 100 + 100).collect();
            db.ingest(events(&ids, 0)).await?;
            expected.extend(ids);
            let metrics = db.metrics();
            assert!(
                metrics.memtable_bytes <= metrics.memtable_budget_bytes + (64 << 10),
                "memory stays bounded: {} of {}",
                metrics.memtable_bytes,
                metrics.memtable_budget_bytes
            );
        }
        db.flush().await?;
        let metrics = db.metrics();
        assert!(metrics.memtables_flushed >= 3, "{metrics:?}");
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), expected);
        db.close().await
    }
);

runtime_test!(
    async fn reopening_after_flushes_replays_nothing_flushed(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = events_builder()
            .on_storage(storage.clone())
            .automatic_compaction(false)
            .open(runtime.clone())
            .await?;
        for round in 0..5u64 {
            db.ingest(events(&[round * 2, round * 2 + 1], round as i64)).await?;
            db.flush().await?;
        }
        db.ingest(events(&[100], 0)).await?; // only this one stays in the WAL
        let expected = ids_and_scores(&db).await?;
        let before = db.metrics();
        assert!(before.wal_segments_deleted > 0, "segments below the floor were deleted");
        db.close().await?;

        let db = events_builder()
            .on_storage(storage.clone())
            .automatic_compaction(false)
            .open(runtime)
            .await?;
        assert_eq!(ids_and_scores(&db).await?, expected);
        let after = db.metrics();
        assert_eq!(after.replayed_commits, 1, "only the unflushed commit is replayed");
        assert_eq!(after.sst_count, 5);
        // Old manifest records and WAL segments do not pile up.
        let records = storage.list("manifest").await?.len();
        assert!(records <= 20, "{records} manifest records");
        let segments = storage.list("wal").await?.len();
        assert!(segments <= 4, "{segments} WAL segments");
        db.close().await
    }
);
