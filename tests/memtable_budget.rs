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
