//! The memtable memory budget bounds memory: a write that does not fit waits, and — until
//! flushing frees memory — fails after the stall timeout with an error that says why, leaving
//! everything already stored intact.

mod common;

use std::time::Duration;

use common::*;
use damselfly::ErrorKind;

runtime_test!(
    async fn a_full_memtable_refuses_writes_after_the_stall_timeout(runtime) {
        let db = events_builder()
            .in_memory()
            .memtable_bytes(256 << 10)
            .write_stall_timeout(Duration::from_millis(50))
            .open(runtime)
            .await?;
        let mut stored = 0u64;
        let refused = loop {
            let ids: Vec<u64> = (stored..stored + 256).collect();
            match db.ingest(events(&ids, 0)).await {
                Ok(_) => stored += 256,
                Err(error) => break error,
            }
            assert!(stored < 1 << 20, "the budget never filled up");
        };
        assert_eq!(refused.kind(), ErrorKind::Io, "{refused}");
        assert!(refused.to_string().contains("memtable is full"), "{refused}");
        let metrics = db.metrics();
        assert!(metrics.memtable_bytes <= metrics.memtable_budget_bytes);
        assert_eq!((metrics.write_stalls, metrics.write_stall_timeouts), (1, 1));
        // Everything acknowledged before is still readable; the refused write left no trace.
        assert_eq!(row_count(&db.scan().collect().await?), stored as usize);
        db.close().await
    }
);

runtime_test!(
    async fn slices_of_a_large_batch_cost_only_their_own_rows(runtime) {
        // A common pattern: read one large batch, ingest it a slice at a time. Each slice shares
        // the large batch's buffers; the memtable must neither pin nor charge all of them.
        let ids: Vec<u64> = (0..200_000).collect();
        let large = events(&ids, 0);
        let db = events_builder()
            .in_memory()
            .memtable_bytes(64 << 20)
            .write_stall_timeout(Duration::from_millis(50))
            .open(runtime)
            .await?;
        for start in (0..ids.len()).step_by(1024) {
            let rows = 1024.min(ids.len() - start);
            db.ingest(large.slice(start, rows)).await?;
        }
        let metrics = db.metrics();
        assert_eq!(metrics.rows_committed, ids.len() as u64);
        assert!(
            metrics.memtable_bytes < 4 * large.get_array_memory_size() as u64,
            "{} bytes charged for a batch of {}",
            metrics.memtable_bytes,
            large.get_array_memory_size()
        );
        assert_eq!(row_count(&db.scan().collect().await?), ids.len());
        db.close().await
    }
);
