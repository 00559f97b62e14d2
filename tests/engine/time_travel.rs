//! Time travel: every commit is a version addressed by its timestamp; `snapshot_at` reads exactly
//! the commits at or before it — from memtables and from SSTs alike, after reopening too — and
//! the retention says how far back that reaches, with a clear error beyond.

use std::sync::Arc;

use crate::common::*;
use damselfly::storage::MemoryStorage;
use damselfly::{ErrorKind, Key, Timestamp};

/// Commits version `v` of keys 1..=3 for v in 0..5 (flushing after versions 1 and 3) and returns
/// the commit timestamps.
async fn five_versions(db: &damselfly::Db) -> Result<Vec<Timestamp>, damselfly::Error> {
    let mut timestamps = Vec::new();
    for version in 0..5i64 {
        timestamps.push(db.ingest(events(&[1, 2, 3], version)).await?);
        if version == 1 || version == 3 {
            db.flush().await?;
        }
    }
    Ok(timestamps)
}

runtime_test!(
    async fn every_commit_can_be_read_again(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        let timestamps = five_versions(&db).await?;
        let listed = db.list_versions(10).await?;
        let listed: Vec<Timestamp> = listed.iter().map(|version| version.timestamp).collect();
        let newest_first: Vec<Timestamp> = timestamps.iter().rev().copied().collect();
        assert_eq!(listed, newest_first);
        assert_eq!(db.list_versions(2).await?.len(), 2);

        for reopened in [false, true] {
            let db = if reopened {
                db.close().await?;
                events_builder().on_storage(storage.clone()).open(runtime.clone()).await?
            } else {
                db.clone()
            };
            for (version, &timestamp) in timestamps.iter().enumerate() {
                let snapshot = db.snapshot_at(timestamp).await?;
                assert_eq!(snapshot.timestamp(), timestamp);
                let scores = i64_column(&snapshot.scan().collect().await?, "score");
                let expected: Vec<i64> = (1..=3).map(|id| id * 10 + version as i64).collect();
                assert_eq!(scores, expected, "version {version}, reopened {reopened}");
                let row = snapshot.get(Key::from(2u64)).await?.expect("key 2 exists");
                assert_eq!(i64_column(&[row], "score"), [20 + version as i64]);
            }
            // Before the first commit nothing existed.
            let empty = db.snapshot_at(Timestamp::ZERO).await?;
            assert!(empty.scan().collect().await?.is_empty());
            if reopened {
                db.close().await?;
            }
        }
        Ok(())
    }
);

runtime_test!(
    async fn the_retention_bounds_time_travel_with_a_clear_error(runtime) {
        let db = events_builder().in_memory().retain_versions(2).open(runtime).await?;
        let timestamps = five_versions(&db).await?;
        let listed = db.list_versions(10).await?;
        assert_eq!(listed.len(), 2, "only the two newest versions are kept");
        let oldest = listed[1].timestamp;
        assert_eq!(oldest, timestamps[3]);
        assert!(db.snapshot_at(oldest).await.is_ok());
        let too_old = db.snapshot_at(timestamps[0]).await;
        assert_error(too_old, ErrorKind::InvalidInput, &format!("oldest available timestamp is {oldest}"));
        let future = db.snapshot_at(Timestamp::new(timestamps[4].get() + 1)).await;
        assert_error(future, ErrorKind::InvalidInput, "newer than the newest commit");
        db.close().await
    }
);
