//! A database on a fusio filesystem (here fusio's in-memory one; S3 works the same way): the
//! write-ahead log writes one object per group commit with put-if-absent, and reopening replays
//! them in order.

use std::sync::Arc;

use crate::common::*;
use damselfly::ErrorKind;
use fusio::impls::mem::fs::InMemoryFs;

runtime_test!(
    async fn a_database_on_a_fusio_filesystem_reopens_with_its_data(runtime) {
        let fs = Arc::new(InMemoryFs::new());
        let db = events_builder().on_fs(fs.clone(), "tables/events")?.open(runtime.clone()).await?;
        for round in 0..5u64 {
            db.ingest(events(&[round, round + 100], round as i64)).await?;
        }
        let metrics = db.metrics();
        assert_eq!(metrics.wal_segments_created, metrics.wal_writes, "one object per group commit");
        assert_eq!(metrics.durable_timestamp, metrics.visible_timestamp, "every object is durable when written");
        db.close().await?;

        let db = events_builder().on_fs(fs.clone(), "/tables/events/")?.open(runtime.clone()).await?;
        let expected: Vec<u64> = (0..5).chain(100..105).collect();
        assert_eq!(u64_column(&db.scan().collect().await?, "id"), expected);
        db.close().await?;

        // Another root on the same filesystem is another database.
        let other = events_builder().on_fs(fs, "tables/other")?.open(runtime).await?;
        assert!(other.scan().collect().await?.is_empty());
        other.close().await
    }
);

#[test]
fn an_empty_root_is_refused() {
    let fs = Arc::new(InMemoryFs::new());
    let result = events_builder().on_fs(fs, "/");
    assert_error(result.map(|_| ()), ErrorKind::InvalidInput, "root");
}
