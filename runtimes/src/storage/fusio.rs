//! [`FusioStorage`]: the [`Storage`] port over any fusio filesystem with conditional put.
//!
//! What this module promises:
//!
//! - `put_if_absent` is fusio's conditional put ([`CasCondition::IfNotExists`]): exactly one of
//!   several racing writers wins, on every backend that implements [`FsCas`] faithfully (S3 does).
//! - A file is durable exactly when the backend's `close` makes it so: on object stores the
//!   object appears, whole and durable, when it is closed. Durable appends are not offered
//!   ([`Storage::supports_durable_append`] is false).
//! - Keys are the root, then the storage path: the root is a prefix in a flat key space. Listings
//!   strip it again, so callers only ever see relative paths.
//! - Storage paths with characters that fusio escapes in keys or that break object URLs
//!   (`%`, `#`, `?`, `*`, brackets, ...) are refused as [`StorageErrorKind::InvalidPath`], so a
//!   listed key is always the key that was written.
//! - Existence checks (`create`, `size`, `delete`, and classifying a failed read) list the file's
//!   own key as a prefix, which is one cheap request on object stores and does not depend on how
//!   a backend words its "not found" errors.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use fusio::dynamic::DynFile;
use fusio::fs::{CasCondition, FileMeta, FsCas, OpenOptions};
use fusio::path::Path as FusioPath;
use fusio::{DynFs, Read as _, Write as _};
use futures_lite::StreamExt as _;

use super::common::{
    AppendGuard, check_file_path, check_range, durable_append_unsupported, is_listed_child,
};
use super::{
    Appender, Durability, FileInfo, PutOutcome, Storage, StorageError, StorageErrorKind,
    validate_path,
};
use crate::runtime::BoxFuture;

/// Files in a fusio filesystem that supports conditional put (`FsCas`): S3-compatible object
/// storage, or fusio's `InMemoryFs` in tests.
///
/// Durability is whatever the backend's `close` gives. On object stores a file becomes durable,
/// atomically and whole, when it is closed, and `put` is atomic; fusio's `InMemoryFs` shows
/// writes as they happen. On fusio's local-disk backend nothing is fsynced: use
/// [`LocalDiskStorage`](super::LocalDiskStorage) for local disk.
///
/// `create` checks that no file exists and then opens one; the two steps are not atomic, so
/// `create` is not a compare-and-swap (the engine creates only uniquely named files, and uses
/// [`Storage::put_if_absent`] where it needs one).
#[derive(Clone)]
pub struct FusioStorage {
    inner: Arc<Inner>,
}

struct Inner {
    fs: Arc<dyn DynFs>,
    cas: Arc<dyn FsCas>,
    /// The key prefix, without leading or trailing `/`; empty for the filesystem's root.
    root: String,
}

impl fmt::Debug for FusioStorage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The filesystem itself may hold credentials; show only what is safe.
        formatter
            .debug_struct("FusioStorage")
            .field("file_system", &self.inner.fs.file_system())
            .field("root", &self.inner.root)
            .finish()
    }
}

impl FusioStorage {
    /// Storage on `fs`, with every file under the key prefix `root` (`""` for the whole
    /// filesystem; leading and trailing `/` are ignored).
    pub fn new<F>(fs: Arc<F>, root: impl Into<String>) -> FusioStorage
    where
        F: DynFs + FsCas + 'static,
    {
        let root = root.into().trim_matches('/').to_owned();
        let cas: Arc<dyn FsCas> = Arc::clone(&fs) as Arc<dyn FsCas>;
        FusioStorage {
            inner: Arc::new(Inner { fs, cas, root }),
        }
    }

    /// The fusio key of the storage path `path` (a file or a directory; `""` is the root).
    fn key(&self, operation: &'static str, path: &str) -> Result<FusioPath, StorageError> {
        if let Some(unsafe_char) = path.chars().find(|c| is_unsafe_in_key(*c)) {
            return Err(StorageError::new(
                StorageErrorKind::InvalidPath,
                operation,
                path,
                format!("invalid storage path: {unsafe_char:?} is not allowed in an object key"),
            ));
        }
        let root = &self.inner.root;
        let joined = match (root.is_empty(), path.is_empty()) {
            (true, _) => path.to_owned(),
            (false, true) => root.clone(),
            (false, false) => format!("{root}/{path}"),
        };
        FusioPath::parse(&joined).map_err(|error| {
            StorageError::new(StorageErrorKind::InvalidPath, operation, path, error)
        })
    }

    fn file_key(&self, operation: &'static str, path: &str) -> Result<FusioPath, StorageError> {
        check_file_path(operation, path)?;
        self.key(operation, path)
    }

    /// The storage path of a key the filesystem listed, or `None` when it is outside the root.
    fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        let root = &self.inner.root;
        if root.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(root.as_str())?.strip_prefix('/')
        }
    }

    /// Every file whose key starts with `prefix`.
    async fn list_prefix(
        &self,
        operation: &'static str,
        path: &str,
        prefix: &FusioPath,
    ) -> Result<Vec<FileMeta>, StorageError> {
        let fusio_error = |error| from_fusio(operation, path, error);
        let listed = match self.inner.fs.list(prefix).await {
            Ok(stream) => stream.try_collect().await.map_err(fusio_error),
            Err(error) => Err(fusio_error(error)),
        };
        match listed {
            // A backend with real directories fails to list a missing one: it holds no files.
            Err(error) if error.kind == StorageErrorKind::NotFound => Ok(Vec::new()),
            listed => listed,
        }
    }

    /// The size of the file at `key`, or `None` when there is none.
    async fn stat(
        &self,
        operation: &'static str,
        path: &str,
        key: &FusioPath,
    ) -> Result<Option<u64>, StorageError> {
        let listed = self.list_prefix(operation, path, key).await?;
        Ok(listed
            .iter()
            .find(|meta| meta.path == *key)
            .map(|meta| meta.size))
    }

    /// Gives a read failure the backend left unclassified its real kind: `NotFound` when the
    /// file is missing, `UnexpectedEof` when it is shorter than `end`.
    async fn classify_read_error(
        &self,
        key: &FusioPath,
        end: u64,
        mut error: StorageError,
    ) -> StorageError {
        if error.kind == StorageErrorKind::Io {
            match self.stat(error.operation, &error.path, key).await {
                Ok(None) => error.kind = StorageErrorKind::NotFound,
                Ok(Some(size)) if end > size => error.kind = StorageErrorKind::UnexpectedEof,
                _ => {}
            }
        }
        error
    }

    async fn open_for_read(
        &self,
        operation: &'static str,
        path: &str,
        key: &FusioPath,
    ) -> Result<Box<dyn DynFile>, StorageError> {
        let options = OpenOptions::default().read(true);
        let opened = self.inner.fs.open_options(key, options).await;
        opened.map_err(|error| from_fusio(operation, path, error))
    }

    async fn open_for_write(
        &self,
        operation: &'static str,
        path: &str,
        key: &FusioPath,
    ) -> Result<Box<dyn DynFile>, StorageError> {
        let options = OpenOptions::default()
            .create(true)
            .truncate(true)
            .write(true);
        let opened = self.inner.fs.open_options(key, options).await;
        opened.map_err(|error| from_fusio(operation, path, error))
    }

    async fn read_whole(&self, path: &str, key: &FusioPath) -> Result<Bytes, StorageError> {
        let mut file = self.open_for_read("read", path, key).await?;
        let (result, bytes) = file.read_to_end_at(Vec::new(), 0).await;
        result.map_err(|error| from_fusio("read", path, error))?;
        Ok(Bytes::from(bytes))
    }

    async fn read_part(
        &self,
        path: &str,
        key: &FusioPath,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        let mut file = self.open_for_read("read_range", path, key).await?;
        let (result, bytes) = file.read_exact_at(vec![0; len], offset).await;
        result.map_err(|error| from_fusio("read_range", path, error))?;
        Ok(Bytes::from(bytes))
    }
}

impl Storage for FusioStorage {
    fn location(&self) -> String {
        let tag = format!("{:?}", self.inner.fs.file_system()).to_lowercase();
        format!("fusio:{tag}:{}", self.inner.root)
    }

    fn supports_durable_append(&self) -> bool {
        false
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            let key = self.file_key("create", path)?;
            if self.stat("create", path, &key).await?.is_some() {
                return Err(StorageError::new(
                    StorageErrorKind::AlreadyExists,
                    "create",
                    path,
                    "a file already exists at this path",
                ));
            }
            let file = self.open_for_write("create", path, &key).await?;
            let appender = FusioAppender {
                file,
                path: path.to_owned(),
                len: 0,
                guard: AppendGuard::default(),
            };
            Ok(Box::new(appender) as Box<dyn Appender>)
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let key = self.file_key("put", path)?;
            let mut file = self.open_for_write("put", path, &key).await?;
            let (written, _) = file.write_all(Vec::from(data)).await;
            written.map_err(|error| from_fusio("put", path, error))?;
            file.close()
                .await
                .map_err(|error| from_fusio("put", path, error))
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        Box::pin(async move {
            let key = self.file_key("put_if_absent", path)?;
            let condition = CasCondition::IfNotExists;
            let put = self
                .inner
                .cas
                .put_conditional(&key, &data, None, None, condition);
            match put.await {
                Ok(_) => Ok(PutOutcome::Created),
                Err(fusio::Error::PreconditionFailed) => Ok(PutOutcome::AlreadyExists),
                Err(error) => Err(from_fusio("put_if_absent", path, error)),
            }
        })
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let key = self.file_key("read", path)?;
            match self.read_whole(path, &key).await {
                Err(error) => Err(self.classify_read_error(&key, 0, error).await),
                read => read,
            }
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let key = self.file_key("read_range", path)?;
            let len = check_range("read_range", path, &range, None)?;
            match self.read_part(path, &key, range.start, len).await {
                Err(error) => Err(self.classify_read_error(&key, range.end, error).await),
                read => read,
            }
        })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let key = self.file_key("size", path)?;
            let size = self.stat("size", path, &key).await?;
            size.ok_or_else(|| not_found("size", path))
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        Box::pin(async move {
            validate_path("list", dir)?;
            let prefix = self.key("list", dir)?;
            let listed = self.list_prefix("list", dir, &prefix).await?;
            let mut files: Vec<FileInfo> = listed
                .iter()
                .filter_map(|meta| {
                    let path = self.relative(meta.path.as_ref())?;
                    is_listed_child(dir, path).then(|| FileInfo {
                        path: path.to_owned(),
                        size: meta.size,
                    })
                })
                .collect();
            files.sort_by(|left, right| left.path.cmp(&right.path));
            Ok(files)
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let key = self.file_key("delete", path)?;
            // Object stores (and `InMemoryFs`) delete a missing key without complaint.
            if self.stat("delete", path, &key).await?.is_none() {
                return Err(not_found("delete", path));
            }
            let removed = self.inner.fs.remove(&key).await;
            removed.map_err(|error| from_fusio("delete", path, error))
        })
    }

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            // A closed object is durable already; there is nothing more to make durable.
            let key = self.file_key("sync", path)?;
            match self.stat("sync", path, &key).await? {
                Some(_) => Ok(()),
                None => Err(not_found("sync", path)),
            }
        })
    }
}

/// A fusio file written from start to end; it becomes durable when closed.
struct FusioAppender {
    file: Box<dyn DynFile>,
    path: String,
    len: u64,
    guard: AppendGuard,
}

impl fmt::Debug for FusioAppender {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FusioAppender")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Appender for FusioAppender {
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            if durability == Durability::Synced {
                return Err(durable_append_unsupported(&self.path));
            }
            self.guard.begin("append", &self.path)?;
            let len = data.len() as u64;
            let (written, _) = self.file.write_all(Vec::from(data)).await;
            written.map_err(|error| from_fusio("append", &self.path, error))?;
            self.len += len;
            self.guard.end();
            Ok(())
        })
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            // Closing publishes the object, so a file whose content is unknown must not be.
            self.guard.begin("close", &self.path)?;
            let closed = self.file.close().await;
            closed.map_err(|error| from_fusio("close", &self.path, error))
        })
    }
}

/// Whether fusio would percent-encode `c` in a key (so that listings would not give back the key
/// that was written) or an object store URL would misread it (`#`, `?`).
fn is_unsafe_in_key(c: char) -> bool {
    c.is_ascii_control() || "\\{}^%`[]\"<>~#|*?".contains(c)
}

fn not_found(operation: &'static str, path: &str) -> StorageError {
    StorageError::new(StorageErrorKind::NotFound, operation, path, "no such file")
}

/// Maps a fusio error to a [`StorageError`], keeping it as the source.
fn from_fusio(operation: &'static str, path: &str, error: fusio::Error) -> StorageError {
    let kind = match error {
        fusio::Error::Io(error) => return StorageError::from_io(operation, path, error),
        fusio::Error::Path(source) => match source.downcast::<io::Error>() {
            Ok(error) => return StorageError::from_io(operation, path, *error),
            Err(source) => {
                return StorageError::new(StorageErrorKind::InvalidPath, operation, path, source);
            }
        },
        fusio::Error::PreconditionFailed => StorageErrorKind::AlreadyExists,
        fusio::Error::Unsupported { .. } => StorageErrorKind::Unsupported,
        _ => StorageErrorKind::Io,
    };
    StorageError::new(kind, operation, path, error)
}
