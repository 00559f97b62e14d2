//! A snapshot returns the same rows for its whole life while upserts, deletes and new keys
//! arrive; reads through the database see the new state.

use crate::common::*;
use damselfly::Key;

runtime_test!(
    async fn a_snapshot_stays_put_while_writes_continue(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let committed = db.ingest(events(&[1, 2, 3], 0)).await?;
        let snapshot = db.begin_snapshot().await?;
        assert_eq!(snapshot.timestamp(), committed);
        let before = snapshot.scan().collect().await?;

        for round in 1..=20i64 {
            db.ingest(events(&[1, 2, 3, 10 + round as u64], round)).await?;
            db.ingest_with_tombstones(events(&[2], 0), vec![true]).await?;
            // Every read through the snapshot, at any point, is the same.
            assert_eq!(snapshot.scan().collect().await?, before, "round {round}");
        }
        let row = snapshot.get(Key::from(2u64)).await?.expect("2 existed at the snapshot");
        assert_eq!(i64_column(&[row], "score"), [20]);
        assert!(snapshot.get(Key::from(11u64)).await?.is_none());

        assert!(db.get(Key::from(2u64)).await?.is_none(), "deleted since");
        assert_eq!(row_count(&db.scan().collect().await?), 22);
        Ok(())
    }
);

runtime_test!(
    async fn a_scan_reads_the_snapshot_taken_when_it_starts(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let ids: Vec<u64> = (0..5000).collect();
        db.ingest(events(&ids, 0)).await?;
        let mut stream = db.scan().batch_rows(100).stream().await?;
        let first = futures_lite::StreamExt::next(&mut stream).await.expect("a batch")?;
        // Writes after the scan started are invisible to it, even for keys it has not reached.
        db.ingest(events(&[4999, 6000], 1)).await?;
        let mut seen = u64_column(&[first], "id");
        while let Some(batch) = futures_lite::StreamExt::next(&mut stream).await {
            let batch = batch?;
            assert!(i64_column(std::slice::from_ref(&batch), "score").iter().all(|s| s % 10 == 0));
            seen.extend(u64_column(&[batch], "id"));
        }
        assert_eq!(seen, ids);
        // An ended stream stays ended.
        assert!(futures_lite::StreamExt::next(&mut stream).await.is_none());
        Ok(())
    }
);

runtime_test!(
    async fn a_snapshot_stays_put_across_flushes_and_compactions(runtime) {
        let db = events_builder().in_memory().memtable_bytes(64 << 10).open(runtime).await?;
        let ids: Vec<u64> = (0..2000).collect();
        db.ingest(events(&ids, 0)).await?;
        let snapshot = db.begin_snapshot().await?;
        let before = snapshot.scan().collect().await?;
        for round in 1..=5i64 {
            db.ingest(events(&ids, round)).await?; // every key gets a newer version
            db.ingest_with_tombstones(events(&[round as u64], 0), vec![true]).await?;
            db.flush().await?;
            assert_eq!(snapshot.scan().collect().await?, before, "after flush {round}");
        }
        assert!(db.metrics().memtables_flushed >= 5);
        db.compact().await?;
        assert!(db.metrics().compaction_jobs >= 1);
        assert_eq!(snapshot.scan().collect().await?, before, "after compaction");
        let row = snapshot.get(Key::from(3u64)).await?.expect("3 existed");
        assert_eq!(i64_column(&[row], "score"), [30]);
        Ok(())
    }
);
