//! Closing and failing: after `close` every call fails with `Closed`; when an actor fails
//! (here: the storage breaks under the WAL) every caller gets `Closed` carrying the cause —
//! nobody hangs — and `close` reports the failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use damselfly::runtime::{BoxFuture, RuntimeExt};
use damselfly::storage::{
    HookedStorage, MemoryStorage, StorageCall, StorageError, StorageErrorKind, StorageHook,
};
use damselfly::{ErrorKind, Key};

runtime_test!(
    async fn every_call_after_close_is_refused(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1], 0)).await?;
        let snapshot = db.begin_snapshot().await?;
        let clone = db.clone();
        db.close().await?;
        db.close().await?; // closing twice is fine
        assert_error(clone.ingest(events(&[2], 0)).await, ErrorKind::Closed, "closed");
        assert_error(clone.get(Key::from(1u64)).await, ErrorKind::Closed, "closed");
        assert_error(clone.scan().collect().await, ErrorKind::Closed, "closed");
        assert_error(clone.begin_snapshot().await, ErrorKind::Closed, "closed");
        assert_error(snapshot.scan().collect().await, ErrorKind::Closed, "closed");
        Ok(())
    }
);

runtime_test!(
    async fn concurrent_closes_all_return_once_closed(runtime) {
        let db = events_builder().in_memory().open(runtime.clone()).await?;
        db.ingest(events(&[1], 0)).await?;
        let closers: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                runtime.spawn("closer", async move { db.close().await })
            })
            .collect();
        for closer in closers {
            closer.await??;
            assert_error(db.ingest(events(&[2], 0)).await, ErrorKind::Closed, "closed");
        }
        Ok(())
    }
);

/// Fails every append while `broken` is set, as a device that stopped accepting writes.
#[derive(Debug, Default)]
struct BrokenDevice {
    broken: AtomicBool,
}

impl StorageHook for BrokenDevice {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let failed = match call {
            StorageCall::Append { path, .. } if self.broken.load(Ordering::SeqCst) => {
                Some(StorageError::new(
                    StorageErrorKind::Io,
                    "append",
                    path,
                    "injected device failure",
                ))
            }
            _ => None,
        };
        Box::pin(async move { failed.map_or(Ok(()), Err) })
    }
}

runtime_test!(
    async fn a_wal_failure_fails_the_database_with_its_cause(runtime) {
        let device = Arc::new(BrokenDevice::default());
        let storage = Arc::new(HookedStorage::new(Arc::new(MemoryStorage::new()), device.clone()));
        let db = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        db.ingest(events(&[1], 0)).await?;
        device.broken.store(true, Ordering::SeqCst);

        // Commits in flight when the WAL fails, and every call after, get the cause.
        let writers: Vec<_> = (0..5u64)
            .map(|id| {
                let db = db.clone();
                runtime.spawn("writer", async move { db.ingest(events(&[10 + id], 0)).await })
            })
            .collect();
        for writer in writers {
            assert_error(writer.await?, ErrorKind::Closed, "injected device failure");
        }
        assert_error(db.ingest(events(&[2], 0)).await, ErrorKind::Closed, "wal-writer");
        assert_error(db.get(Key::from(1u64)).await, ErrorKind::Closed, "injected device failure");
        assert_error(db.close().await, ErrorKind::Closed, "injected device failure");

        // Nothing that failed was acknowledged, and what was acknowledged is still there.
        device.broken.store(false, Ordering::SeqCst);
        let db = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, [(1, 10)]);
        db.close().await
    }
);
