//! Many tasks write and read at once. Every commit is all-or-nothing for every reader, every
//! acknowledged commit is visible once acknowledged, and commit timestamps are unique.

use std::collections::BTreeSet;

use crate::common::*;
use damselfly::runtime::RuntimeExt;

const WRITERS: u64 = 8;
const COMMITS_PER_WRITER: u64 = 25;
const ROWS_PER_COMMIT: u64 = 10;

/// The keys of commit `commit` of writer `writer`: a block of ROWS_PER_COMMIT consecutive keys.
fn keys(writer: u64, commit: u64) -> Vec<u64> {
    let first = (writer * COMMITS_PER_WRITER + commit) * ROWS_PER_COMMIT;
    (first..first + ROWS_PER_COMMIT).collect()
}

runtime_test!(
    async fn writers_and_readers_at_once(runtime) {
        let db = events_builder().in_memory().open(runtime.clone()).await?;
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let db = db.clone();
            writers.push(runtime.spawn("writer", async move {
                let mut timestamps = Vec::new();
                for commit in 0..COMMITS_PER_WRITER {
                    let timestamp = db.ingest(events(&keys(writer, commit), 0)).await?;
                    // Acknowledged means visible, to this task and to everyone else.
                    let row = db.get(keys(writer, commit)[0]).await?;
                    assert!(row.is_some(), "writer {writer} commit {commit} not visible after its ack");
                    timestamps.push(timestamp);
                }
                Ok::<_, damselfly::Error>(timestamps)
            }));
        }
        let mut readers = Vec::new();
        for _ in 0..3 {
            let db = db.clone();
            readers.push(runtime.spawn("reader", async move {
                let mut previous = 0;
                for _ in 0..20 {
                    let ids = u64_column(&db.scan().collect().await?, "id");
                    // All-or-nothing: every commit's block of keys is complete or absent.
                    let blocks: BTreeSet<u64> = ids.iter().map(|id| id / ROWS_PER_COMMIT).collect();
                    assert_eq!(ids.len() as u64, blocks.len() as u64 * ROWS_PER_COMMIT, "a partial commit was visible");
                    assert!(ids.len() >= previous, "rows never disappear");
                    previous = ids.len();
                }
                Ok::<_, damselfly::Error>(())
            }));
        }
        let mut all_timestamps = BTreeSet::new();
        for writer in writers {
            for timestamp in writer.await?? {
                assert!(all_timestamps.insert(timestamp), "timestamp {timestamp} given twice");
            }
        }
        for reader in readers {
            reader.await??;
        }
        let total = WRITERS * COMMITS_PER_WRITER;
        assert_eq!(all_timestamps.len() as u64, total);
        let ids = u64_column(&db.scan().collect().await?, "id");
        assert_eq!(ids, (0..total * ROWS_PER_COMMIT).collect::<Vec<_>>());
        let metrics = db.metrics();
        assert_eq!(metrics.commits, total);
        // At most one sync per commit, plus the one that starts this writer's part of the log.
        assert!(metrics.wal_syncs <= total + 1, "at most one sync per commit");
        db.close().await
    }
);
