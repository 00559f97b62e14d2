//! Closing and failing: after `close` every call fails with `Closed`; when an actor fails
//! (here: the storage breaks under the WAL) every caller gets `Closed` carrying the cause —
//! nobody hangs — and `close` reports the failure.

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use common::*;
use damselfly::runtime::{BoxFuture, RuntimeExt};
use damselfly::storage::{
    Appender, Durability, FileInfo, MemoryStorage, PutOutcome, Storage, StorageError,
    StorageErrorKind,
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

/// Memory storage whose appends start failing when `broken` is set.
#[derive(Debug, Clone)]
struct BreakableStorage {
    inner: MemoryStorage,
    broken: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BreakableAppender {
    inner: Box<dyn Appender>,
    broken: Arc<AtomicBool>,
}

fn injected(path: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::Io,
        "append",
        path,
        "injected device failure",
    )
}

impl Appender for BreakableAppender {
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        if self.broken.load(Ordering::SeqCst) {
            return Box::pin(async { Err(injected("wal")) });
        }
        self.inner.append(data, durability)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        self.inner.close()
    }
}

impl Storage for BreakableStorage {
    fn location(&self) -> String {
        "breakable memory".to_owned()
    }
    fn supports_durable_append(&self) -> bool {
        true
    }
    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            let inner = self.inner.create(path).await?;
            Ok(Box::new(BreakableAppender {
                inner,
                broken: self.broken.clone(),
            }) as Box<dyn Appender>)
        })
    }
    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        self.inner.put(path, data)
    }
    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        self.inner.put_if_absent(path, data)
    }
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.inner.read(path)
    }
    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.inner.read_range(path, range)
    }
    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.inner.size(path)
    }
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        self.inner.list(dir)
    }
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.inner.delete(path)
    }
}

runtime_test!(
    async fn a_wal_failure_fails_the_database_with_its_cause(runtime) {
        let storage = BreakableStorage {
            inner: MemoryStorage::new(),
            broken: Arc::new(AtomicBool::new(false)),
        };
        let db = events_builder().on_storage(Arc::new(storage.clone())).open(runtime.clone()).await?;
        db.ingest(events(&[1], 0)).await?;
        storage.broken.store(true, Ordering::SeqCst);

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
        storage.broken.store(false, Ordering::SeqCst);
        let db = events_builder().on_storage(Arc::new(storage)).open(runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, [(1, 10)]);
        db.close().await
    }
);
