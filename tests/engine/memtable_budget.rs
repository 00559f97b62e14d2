//! The memtable memory budget bounds memory: sealed memtables wait for the flusher, writers wait
//! for room while flushing lags behind, and — if flushing cannot free room in time — a write
//! fails after the stall timeout with an error that says why, leaving everything already stored
//! intact. When flushing catches up, writers go on.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use damselfly::ErrorKind;
use damselfly::runtime::BoxFuture;
use damselfly::storage::{HookedStorage, MemoryStorage, StorageCall, StorageError, StorageHook};

/// Holds back every SST write until the gate is opened (its sender dropped).
#[derive(Debug)]
struct FlushGate {
    open: async_channel::Receiver<()>,
}

impl StorageHook for FlushGate {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let held =
            matches!(call, StorageCall::PutIfAbsent { path, .. } if path.starts_with("sst/"));
        let open = self.open.clone();
        Box::pin(async move {
            if held {
                // Returns once the sender is dropped: the gate is open.
                let _ = open.recv().await;
            }
            Ok(())
        })
    }
}

runtime_test!(
    async fn writes_wait_for_flushing_and_give_up_after_the_stall_timeout(runtime) {
        let (gate, open) = async_channel::bounded::<()>(1);
        let storage = HookedStorage::new(Arc::new(MemoryStorage::new()), Arc::new(FlushGate { open }));
        let db = events_builder()
            .on_storage(Arc::new(storage))
            .memtable_bytes(256 << 10)
            .max_sealed_memtables(1)
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
        assert!(refused.to_string().contains("memtables are full"), "{refused}");
        let metrics = db.metrics();
        assert_eq!((metrics.write_stalls, metrics.write_stall_timeouts), (1, 1));
        // Everything acknowledged before is still readable; the refused write left no trace.
        assert_eq!(row_count(&db.scan().collect().await?), stored as usize);

        // Once flushing can proceed, writes go on and everything ends up in SSTs.
        drop(gate);
        db.ingest(events(&[stored], 0)).await?;
        db.flush().await?;
        let metrics = db.metrics();
        assert!(metrics.memtables_flushed >= 2, "{metrics:?}");
        assert_eq!(row_count(&db.scan().collect().await?), stored as usize + 1);
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
