//! Rows written with `ingest` are read back by `get` and `scan`: upserts replace, deletes hide,
//! the last row of a key in one batch wins, and scans come back in key order.

use crate::common::*;
use damselfly::{Key, Timestamp};

runtime_test!(
    async fn get_and_scan_return_what_was_ingested(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let first = db.ingest(events(&[3, 1, 2], 0)).await?;
        let second = db.ingest(events(&[5, 4], 0)).await?;
        assert!(second > first, "timestamps increase: {first} then {second}");

        let row = db.get(Key::from(4u64)).await?.expect("key 4 exists");
        assert_eq!(i64_column(&[row], "score"), [40]);
        assert!(db.get(Key::from(9u64)).await?.is_none());

        let all = db.scan().collect().await?;
        assert_eq!(u64_column(&all, "id"), [1, 2, 3, 4, 5], "ascending key order");
        assert_eq!(all[0].schema(), events_schema());
        Ok(())
    }
);

runtime_test!(
    async fn an_upsert_replaces_and_a_tombstone_deletes(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2, 3], 0)).await?;
        db.ingest(events(&[2], 7)).await?;
        db.ingest_with_tombstones(events(&[3, 4], 0), vec![true, false]).await?;

        assert_eq!(
            ids_and_scores(&db).await?,
            [(1, 10), (2, 27), (4, 40)],
            "2 was replaced, 3 deleted, 4 added"
        );
        assert!(db.get(Key::from(3u64)).await?.is_none());
        // A deleted key can be written again.
        db.ingest(events(&[3], 9)).await?;
        let row = db.get(3u64).await?.expect("key 3 is back");
        assert_eq!(i64_column(&[row], "score"), [39]);
        Ok(())
    }
);

runtime_test!(
    async fn the_last_row_of_a_key_in_one_batch_wins(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let batch = events_scored(&[7, 8, 7], &[1, 2, 3]);
        db.ingest(batch).await?;
        assert_eq!(ids_and_scores(&db).await?, [(7, 3), (8, 2)]);
        Ok(())
    }
);

runtime_test!(
    async fn an_empty_batch_commits_nothing(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let before = db.ingest(events(&[1], 0)).await?;
        let empty = db.ingest(events(&[], 0)).await?;
        assert_eq!(empty, before, "an empty ingest reports the newest visible timestamp");
        assert_eq!(db.metrics().commits, 1);
        Ok(())
    }
);

runtime_test!(
    async fn columns_may_come_in_any_order(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let reordered = events(&[1, 2], 0).project(&[4, 3, 2, 1, 0]).expect("a projection");
        db.ingest(reordered).await?;
        let all = db.scan().collect().await?;
        assert_eq!(all[0].schema(), events_schema(), "rows come back in the table's order");
        assert_eq!(ids_and_scores(&db).await?, [(1, 10), (2, 20)]);
        Ok(())
    }
);

runtime_test!(
    async fn metrics_count_commits_and_rows(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        for round in 0..5u64 {
            db.ingest(events(&[round * 2, round * 2 + 1], 0)).await?;
        }
        let metrics = db.metrics();
        assert_eq!(metrics.commits, 5);
        assert_eq!(metrics.rows_committed, 10);
        assert_eq!(metrics.memtable_rows, 10);
        assert!(metrics.wal_bytes_written > 0);
        // At most one sync per commit, plus the one that starts this writer's part of the log.
        assert!(metrics.wal_syncs >= 2 && metrics.wal_syncs <= 6, "{}", metrics.wal_syncs);
        assert!(metrics.memtable_bytes > 0 && metrics.memtable_bytes <= metrics.memtable_budget_bytes);
        assert_eq!(metrics.visible_timestamp, Timestamp::new(5));
        Ok(())
    }
);
