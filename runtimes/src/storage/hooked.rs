//! [`HookedStorage`]: a storage that asks a [`StorageHook`] before every call it passes on.
//!
//! For tests that must observe, delay or fail storage calls — a device that breaks after N
//! writes, a sync held until the test releases it, a backend that claims no durable appends —
//! without writing a storage of their own. The hook sees each call before the inner storage does;
//! if it returns an error, that error is the call's result and the inner storage is not touched.
//! It then sees the call's outcome ([`StorageHook::after`]), for example to trace it, and may
//! still fail the call — after it took effect, as a timed-out request to an object store may
//! have.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::{Appender, Durability, FileInfo, PutOutcome, Storage, StorageError, StorageErrorKind};
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
        /// The byte range `(start, end)` read, or `None` for the whole file.
        range: Option<(u64, u64)>,
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
    /// [`Storage::sync`].
    Sync {
        /// The file.
        path: &'a str,
    },
}

impl<'a> StorageCall<'a> {
    /// The operation's name: `"append"`, `"read"` (whole or ranged), `"put_if_absent"`, ...
    pub fn operation(self) -> &'static str {
        match self {
            StorageCall::Create { .. } => "create",
            StorageCall::Append { .. } => "append",
            StorageCall::Preallocate { .. } => "preallocate",
            StorageCall::Close { .. } => "close",
            StorageCall::Put { .. } => "put",
            StorageCall::PutIfAbsent { .. } => "put_if_absent",
            StorageCall::Read { .. } => "read",
            StorageCall::Size { .. } => "size",
            StorageCall::List { .. } => "list",
            StorageCall::Delete { .. } => "delete",
            StorageCall::Sync { .. } => "sync",
        }
    }

    /// The file the call is on (the directory, for a list).
    pub fn path(self) -> &'a str {
        match self {
            StorageCall::Create { path }
            | StorageCall::Append { path, .. }
            | StorageCall::Preallocate { path, .. }
            | StorageCall::Close { path }
            | StorageCall::Put { path, .. }
            | StorageCall::PutIfAbsent { path, .. }
            | StorageCall::Read { path, .. }
            | StorageCall::Size { path }
            | StorageCall::Delete { path }
            | StorageCall::Sync { path } => path,
            StorageCall::List { dir } => dir,
        }
    }
}

/// What a [`HookedStorage`] asks before each call.
pub trait StorageHook: Send + Sync + fmt::Debug + 'static {
    /// Called before `call` reaches the inner storage; an error is returned in its place. The
    /// future may wait, to hold the call back. Lets every call through at once by default.
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let _ = call;
        Box::pin(async { Ok(()) })
    }

    /// Called with a call's outcome once the inner storage answered (not when
    /// [`StorageHook::before`] failed it): on success a number — the bytes read, the size found,
    /// the entries listed, 1 when `put_if_absent` created the file and 0 when it existed, 0 for
    /// the other calls — or the kind of the error. An error returned here replaces the call's
    /// result although the call took effect ("applied, but reported as failed"); for
    /// [`Storage::put_if_absent`], an error of kind [`StorageErrorKind::AlreadyExists`] makes
    /// the call answer [`PutOutcome::AlreadyExists`] instead (as an object store client does when
    /// its retry of a put whose answer was lost finds the object). Lets every outcome through by
    /// default.
    fn after(
        &self,
        call: StorageCall<'_>,
        outcome: Result<u64, StorageErrorKind>,
    ) -> Result<(), StorageError> {
        let _ = (call, outcome);
        Ok(())
    }

    /// Whether the hooked storage claims durable appends; by default what the inner one says.
    fn supports_durable_append(&self, inner: bool) -> bool {
        inner
    }
}

impl HookedStorage {
    /// Runs `call` through the hook: `before`, then `run` on the inner storage, then `after` with
    /// the outcome `measure` makes of its result; an error from `after` replaces the result.
    async fn hooked<T>(
        hook: &dyn StorageHook,
        call: StorageCall<'_>,
        run: impl Future<Output = Result<T, StorageError>>,
        measure: impl FnOnce(&T) -> u64,
    ) -> Result<T, StorageError> {
        hook.before(call).await?;
        let result = run.await;
        hook.after(
            call,
            result.as_ref().map(measure).map_err(|error| error.kind),
        )?;
        result
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
            let call = StorageCall::Create { path };
            let inner =
                Self::hooked(self.hook.as_ref(), call, self.inner.create(path), |_| 0).await?;
            Ok(Box::new(HookedAppender {
                inner,
                hook: Arc::clone(&self.hook),
                path: path.to_owned(),
            }) as Box<dyn Appender>)
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Put {
                path,
                len: data.len(),
            };
            Self::hooked(self.hook.as_ref(), call, self.inner.put(path, data), |_| 0).await
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        Box::pin(async move {
            let call = StorageCall::PutIfAbsent {
                path,
                len: data.len(),
            };
            let put = self.inner.put_if_absent(path, data);
            let outcome = Self::hooked(self.hook.as_ref(), call, put, |outcome| {
                u64::from(*outcome == PutOutcome::Created)
            });
            match outcome.await {
                // The hook turned the answer into "taken" (see `StorageHook::after`).
                Err(error) if error.kind == StorageErrorKind::AlreadyExists => {
                    Ok(PutOutcome::AlreadyExists)
                }
                outcome => outcome,
            }
        })
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Read { path, range: None };
            Self::hooked(self.hook.as_ref(), call, self.inner.read(path), byte_count).await
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Read {
                path,
                range: Some((range.start, range.end)),
            };
            let read = self.inner.read_range(path, range);
            Self::hooked(self.hook.as_ref(), call, read, byte_count).await
        })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Size { path };
            Self::hooked(self.hook.as_ref(), call, self.inner.size(path), |&size| {
                size
            })
            .await
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        Box::pin(async move {
            let call = StorageCall::List { dir };
            Self::hooked(self.hook.as_ref(), call, self.inner.list(dir), |files| {
                files.len() as u64
            })
            .await
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Delete { path };
            Self::hooked(self.hook.as_ref(), call, self.inner.delete(path), |_| 0).await
        })
    }

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Sync { path };
            Self::hooked(self.hook.as_ref(), call, self.inner.sync(path), |_| 0).await
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
            let append = self.inner.append(data, durability);
            HookedStorage::hooked(self.hook.as_ref(), call, append, |_| 0).await
        })
    }

    fn preallocate(&mut self, len: u64) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Preallocate {
                path: &self.path,
                len,
            };
            let preallocate = self.inner.preallocate(len);
            HookedStorage::hooked(self.hook.as_ref(), call, preallocate, |_| 0).await
        })
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            let call = StorageCall::Close { path: &self.path };
            HookedStorage::hooked(self.hook.as_ref(), call, self.inner.close(), |_| 0).await
        })
    }
}

fn byte_count(bytes: &Bytes) -> u64 {
    bytes.len() as u64
}
