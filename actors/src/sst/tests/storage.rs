//! A storage that counts reads, to see what a lookup or a scan costs.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use damselfly_runtimes::{
    Appender, BoxFuture, FileInfo, MemoryStorage, PutOutcome, Storage, StorageError,
};

/// Memory storage that counts `read_range` calls and the bytes they return.
#[derive(Debug, Default)]
pub(super) struct CountingStorage {
    pub inner: MemoryStorage,
    reads: AtomicU64,
    bytes: AtomicU64,
}

impl CountingStorage {
    /// `(reads, bytes)` so far.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }

    /// A storage holding `bytes` at `path`.
    pub fn with_file(path: &str, bytes: Bytes) -> Arc<Self> {
        let storage = Arc::new(Self::default());
        smol::block_on(storage.inner.put(path, bytes)).expect("put");
        storage
    }
}

impl Storage for CountingStorage {
    fn location(&self) -> String {
        "counting memory".to_owned()
    }

    fn supports_durable_append(&self) -> bool {
        self.inner.supports_durable_append()
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        self.inner.create(path)
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
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.bytes
            .fetch_add(range.end.saturating_sub(range.start), Ordering::SeqCst);
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

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.inner.sync(path)
    }
}
