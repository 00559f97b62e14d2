//! Every acknowledged write is there after a restart: after `close`, after dropping the handle
//! without closing, after a power loss (with the default `Always` policy), and after several
//! restarts in a row, each of which continues the log.

use std::sync::Arc;

use crate::common::*;
use damselfly::storage::MemoryStorage;

runtime_test!(
    async fn close_then_reopen_on_disk(runtime) {
        let folder = temp_dir();
        let db = events_builder().on_disk(folder.path())?.open(runtime.clone()).await?;
        db.ingest(events(&[1, 2, 3], 0)).await?;
        db.ingest(events(&[2], 5)).await?;
        db.ingest_with_tombstones(events(&[3], 0), vec![true]).await?;
        db.close().await?;

        let db = events_builder().on_disk(folder.path())?.open(runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, [(1, 10), (2, 25)]);
        assert_eq!(db.metrics().replayed_commits, 3);
        db.close().await
    }
);

runtime_test!(
    async fn drop_without_close_then_reopen_on_disk(runtime) {
        let folder = temp_dir();
        let db = events_builder().on_disk(folder.path())?.open(runtime.clone()).await?;
        for round in 0..10 {
            db.ingest(events(&[round], round as i64)).await?;
        }
        drop(db);

        let db = events_builder().on_disk(folder.path())?.open(runtime).await?;
        let expected: Vec<(u64, i64)> = (0..10).map(|id| (id, id as i64 * 11)).collect();
        assert_eq!(ids_and_scores(&db).await?, expected);
        db.close().await
    }
);

runtime_test!(
    async fn acknowledged_writes_survive_power_loss(runtime) {
        let storage = MemoryStorage::new();
        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .open(runtime.clone())
            .await?;
        for round in 0..20 {
            db.ingest(events(&[round % 7], round as i64)).await?;
        }
        let before = ids_and_scores(&db).await?;
        // The machine loses power: whatever was not synced is gone, and the old instance can
        // write nothing more.
        storage.simulate_power_loss();
        drop(db);

        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .open(runtime)
            .await?;
        assert_eq!(ids_and_scores(&db).await?, before);
        db.close().await
    }
);

runtime_test!(
    async fn restarts_continue_the_log(runtime) {
        let storage: Arc<MemoryStorage> = Arc::new(MemoryStorage::new());
        let mut expected = Vec::new();
        let mut last_timestamp = damselfly::Timestamp::ZERO;
        for generation in 0..4u64 {
            let db = events_builder()
                .on_storage(storage.clone())
                .wal_segment_bytes(2048)
                .open(runtime.clone())
                .await?;
            assert_eq!(ids_and_scores(&db).await?, expected, "generation {generation}");
            for id in generation * 3..generation * 3 + 3 {
                let timestamp = db.ingest(events(&[id], 0)).await?;
                assert!(timestamp > last_timestamp, "the clock resumes above the log");
                last_timestamp = timestamp;
                expected.push((id, id as i64 * 10));
            }
            if generation % 2 == 0 {
                db.close().await?;
            } else {
                drop(db);
            }
        }
        let db = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, expected);
        assert!(db.metrics().replayed_commits == 12);
        db.close().await
    }
);

runtime_test!(
    async fn a_reopened_memtable_costs_what_it_cost_before(runtime) {
        let folder = temp_dir();
        let db = events_builder().on_disk(folder.path())?.open(runtime.clone()).await?;
        for start in (0..20_000u64).step_by(1000) {
            let ids: Vec<u64> = (start..start + 1000).collect();
            db.ingest(events(&ids, 0)).await?;
        }
        let before = db.metrics().memtable_bytes;
        db.close().await?;

        let db = events_builder().on_disk(folder.path())?.open(runtime).await?;
        let after = db.metrics().memtable_bytes;
        // Replayed rows are decoded from whole segments; they must not be charged (or pin) the
        // segment buffers they were read from.
        assert!(after <= before * 3 / 2, "{after} bytes after reopening, {before} before");
        db.ingest(events(&[1_000_000], 0)).await?;
        db.close().await
    }
);

runtime_test!(
    async fn an_export_holds_exactly_the_snapshot(runtime) {
        let folder = temp_dir();
        let db = events_builder().in_memory().memtable_bytes(32 << 10).open(runtime).await?;
        let ids: Vec<u64> = (0..3000).collect();
        db.ingest(events(&ids, 0)).await?;
        db.ingest_with_tombstones(events(&[5, 6], 0), vec![true, true]).await?;
        let snapshot = db.begin_snapshot().await?;
        db.ingest(events(&[7, 9999], 1)).await?; // after the snapshot: not exported
        let path = folder.path().join("snapshot.parquet");
        let summary = snapshot.export_parquet(&path).await?;
        assert_eq!(summary.rows, 2998);
        #[allow(clippy::disallowed_types)] // the test reads the exported file back from disk
        let file = std::fs::File::open(&path).expect("the export exists");
        assert_eq!(file.metadata().expect("metadata").len(), summary.bytes);
        let read: Vec<_> = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
            .expect("a Parquet file")
            .collect::<Result<_, _>>()
            .expect("readable");
        assert_eq!(read, snapshot.scan().batch_rows(1024).collect().await?);
        let again = snapshot.export_parquet(&path).await;
        assert_error(again, damselfly::ErrorKind::InvalidInput, "already exists");
        db.close().await
    }
);
