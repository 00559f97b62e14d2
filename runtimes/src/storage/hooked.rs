//! [`HookedStorage`]: a storage that asks a [`StorageHook`] before every call it passes on.
//!
//! For tests that must observe, delay or fail storage calls — a device that breaks after N
//! writes, a sync held until the test releases it, a backend that claims no durable appends —
//! without writing a storage of their own. The hook sees each call before the inner storage does;
//! if it returns an error, that error is the call's result and the inner storage is not touched.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::{Appender, Durability, FileInfo, PutOutcome, Storage, StorageError};
use crate::runtime::BoxFuture;

/// A storage call, as a [`StorageHook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageCall<'a> {
    /// [`Storage::create`].
    Create {
        /// The file.
        path: &'a str,
    },
    /// [`Appender::append`].
    Append {
        /// The file.
        path: &'a str,
        /// Bytes appended.
        len: usize,
        /// How durable the append must be.
        durability: Durability,
    },
    /// [`Appender::preallocate`].
    Preallocate {
        /// The file.
        path: &'a str,
        /// The size to reserve.
        len: u64,
    },
    /// [`Appender::close`] (which syncs).
    Close {
        /// The file.
        path: &'a str,
    },
    /// [`Storage::put`].
    Put {
        /// The file.
        path: &'a str,
        /// Bytes written.
        len: usize,
    },
    /// [`Storage::put_if_absent`].
    PutIfAbsent {
        /// The file.
        path: &'a str,
        /// Bytes written.
        len: usize,
    },
    /// [`Storage::read`] and [`Storage::read_range`].
    Read {
        /// The file.
        path: &'a str,
    },
    /// [`Storage::size`].
    Size {
        /// The file.
        path: &'a str,
    },
    /// [`Storage::list`].
    List {
        /// The directory.
        dir: &'a str,
    },
    /// [`Storage::delete`].
    Delete {
        /// The file.
        path: &'a str,
    },
}

/// What a [`HookedStorage`] asks before each call.
pub trait StorageHook: Send + Sync + fmt::Debug + 'static {
    /// Called before `call` reaches the inner storage; an error is returned in its place. The
    /// future may wait, to hold the call back.
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>>;

    /// Whether the hooked storage claims durable appends; by default what the inner one says.
    fn supports_durable_append(&self, inner: bool) -> bool {
        inner
    }
}

/// A storage that passes every call to an inner storage after asking a [`StorageHook`].
#[derive(Debug, Clone)]
pub struct HookedStorage {
    inner: Arc<dyn Storage>,
    hook: Arc<dyn StorageHook>,
}

impl HookedStorage {
    /// `inner`, with `hook` consulted before every call.
    pub fn new(inner: Arc<dyn Storage>, hook: Arc<dyn StorageHook>) -> Self {
        Self { inner, hook }
    }
}

impl Storage for HookedStorage {
    fn location(&self) -> String {
        format!("hooked {}", self.inner.location())
    }

    fn supports_durable_append(&self) -> bool {
        self.hook
            .supports_durable_append(self.inner.supports_durable_append())
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::Create { path }).await?;
            let inner = self.inner.create(path).await?;
            Ok(Box::new(HookedAppender {
                inner,
                hook: Arc::clone(&self.hook),
                path: path.to_owned(),
            }) as Box<dyn Appender>)
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let len = data.len();
            self.hook.before(StorageCall::Put { path, len }).await?;
            self.inner.put(path, data).await
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        Box::pin(async move {
            let len = data.len();
            self.hook
                .before(StorageCall::PutIfAbsent { path, len })
                .await?;
            self.inner.put_if_absent(path, data).await
        })
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::Read { path }).await?;
            self.inner.read(path).await
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::Read { path }).await?;
            self.inner.read_range(path, range).await
        })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::Size { path }).await?;
            self.inner.size(path).await
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::List { dir }).await?;
            self.inner.list(dir).await
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            self.hook.before(StorageCall::Delete { path }).await?;
            self.inner.delete(path).await
        })
    }
}

#[derive(Debug)]
struct HookedAppender {
    inner: Box<dyn Appender>,
    hook: Arc<dyn StorageHook>,
    path: String,
}

impl Appender for HookedAppender {
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Append {
                path: &self.path,
                len: data.len(),
                durability,
            };
            self.hook.before(call).await?;
            self.inner.append(data, durability).await
        })
    }

    fn preallocate(&mut self, len: u64) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Preallocate {
                path: &self.path,
                len,
            };
            self.hook.before(call).await?;
            self.inner.preallocate(len).await
        })
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            self.hook
                .before(StorageCall::Close { path: &self.path })
                .await?;
            self.inner.close().await
        })
    }
}
