//! The storage port: everything the engine does with files goes through [`Storage`].
//!
//! The trait is deliberately small and states its durability promises exactly, because the
//! engine's crash safety rests on them:
//!
//! - [`Appender::append`] with [`Durability::Synced`] returns only once every byte appended so
//!   far, and the file's directory entry, survive power loss (fdatasync + directory fsync).
//!   With [`Durability::Buffered`] the bytes are handed to the OS (they survive a process crash,
//!   not a power loss) — on backends that have an OS page cache.
//! - [`Storage::sync`] makes a file written earlier durable as it stands, so that recovery can
//!   build on bytes a crashed process had only handed to the OS.
//! - [`Storage::put`] and [`Storage::put_if_absent`] are atomic (readers see the old state or the
//!   whole new file, never a part) and durable when they return.
//! - [`Storage::put_if_absent`] is the compare-and-swap the manifest relies on: of two callers
//!   racing for the same path, exactly one gets [`PutOutcome::Created`].
//!
//! Paths are relative to the backend's root, `/`-separated, without `.` or `..` components.
//!
//! Backends: [`LocalDiskStorage`] (any runtime; blocking calls run through
//! [`Runtime::spawn_blocking`](crate::Runtime::spawn_blocking)), [`MemoryStorage`] (with a
//! durability model for crash tests), and [`FusioStorage`] (any fusio filesystem with
//! conditional put, such as S3). [`HookedStorage`] wraps any of them so that tests can observe,
//! hold back or fail individual calls.

mod common;
mod fusio;
mod hooked;
mod local;
mod memory;
#[cfg(feature = "s3")]
mod s3;

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

pub use self::fusio::FusioStorage;
pub use self::hooked::{HookedStorage, StorageCall, StorageHook};
pub use self::local::LocalDiskStorage;
pub use self::memory::{AfterPowerLoss, MemoryStorage, UnsyncedFile};
#[cfg(feature = "s3")]
pub use self::s3::{S3Credentials, S3Requests, S3Spec, S3SpecError, S3Storage};
use crate::runtime::BoxFuture;

/// How durable an [`Appender::append`] must be when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Handed to the OS: survives a process crash, not a power loss.
    Buffered,
    /// On stable storage, together with the file's directory entry: survives a power loss.
    Synced,
}

/// What [`Storage::put_if_absent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The file did not exist and now holds the given bytes, durably.
    Created,
    /// A file already existed at the path; nothing was written.
    AlreadyExists,
}

/// What [`put_if_absent_or_own`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The put created the file.
    Created,
    /// The file already held exactly these bytes: an earlier attempt of this writer's put took
    /// effect although it was reported as failed.
    FoundOwn,
    /// Another writer's file is there.
    Taken,
}

/// How often [`put_if_absent_or_own`] puts again when told the file exists but finds none.
const PUT_OWN_ATTEMPTS_MAX: usize = 3;

/// Put-if-absent for a writer whose bytes are its own (no other writer writes the same bytes to
/// the same path): a file found at `path` is read back, and if it holds exactly `data` the put
/// counts as done — an object store may report a put that took effect as failed, and the retry
/// then finds the object there. A "taken" answer with no file behind it (how some stores answer
/// a concurrent conditional write) is tried again, a few times.
pub async fn put_if_absent_or_own(
    storage: &dyn Storage,
    path: &str,
    data: Bytes,
) -> Result<Stored, StorageError> {
    for _ in 0..PUT_OWN_ATTEMPTS_MAX {
        if storage.put_if_absent(path, data.clone()).await? == PutOutcome::Created {
            return Ok(Stored::Created);
        }
        match storage.read(path).await {
            Ok(stored) if stored == data => return Ok(Stored::FoundOwn),
            Ok(_) => return Ok(Stored::Taken),
            Err(error) if error.kind == StorageErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Stored::Taken)
}

/// A file found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's path, relative to the storage root (it includes the listed directory).
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// An engine's view of a place to keep files: a local folder, memory, or an object store.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Where the files live, for messages: `"/var/lib/app/events"`, `"memory"`, ...
    fn location(&self) -> String;

    /// Whether [`Appender::append`] with [`Durability::Synced`] is supported. Object stores
    /// cannot make part of an object durable; there the write-ahead log writes one object per
    /// group commit with [`Storage::put_if_absent`] instead of appending.
    fn supports_durable_append(&self) -> bool;

    /// Creates a new, empty file for appending, creating missing parent directories. Fails with
    /// [`StorageErrorKind::AlreadyExists`] if the file exists.
    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>>;

    /// Writes `data` as the whole content of `path`, replacing any previous file, atomically
    /// and durably.
    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Writes `data` as the whole content of `path` if no file exists there, atomically and
    /// durably. Exactly one of several racing callers gets [`PutOutcome::Created`].
    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>>;

    /// Reads the whole file.
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>>;

    /// Reads `range` of the file. Fails with [`StorageErrorKind::UnexpectedEof`] if the range
    /// extends past the end of the file.
    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>>;

    /// The file's size in bytes.
    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>>;

    /// The files directly inside directory `dir` (`""` is the root), sorted by path. A missing
    /// directory has no files. Temporary files the backend uses internally are not listed.
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>>;

    /// Deletes a file. Fails with [`StorageErrorKind::NotFound`] if there is none.
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Makes every byte of an existing file, and its directory entry, durable — bytes that an
    /// appender of a crashed process left unsynced, for instance. Fails with
    /// [`StorageErrorKind::NotFound`] if there is no file. On backends where a file is durable
    /// once it can be read (object stores) it only checks that the file exists.
    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;
}

/// A file being written from start to end by one owner (a log segment, an SST).
pub trait Appender: Send + fmt::Debug {
    /// Appends `data` at the end of the file, as durable as `durability` says when it returns.
    /// An empty `data` with [`Durability::Synced`] just syncs what was appended before.
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Reserves room for the file to grow to `len` bytes, so that later appends inside it need
    /// not grow the file (syncing an overwrite is cheaper than syncing an append on most file
    /// systems). The reserved bytes read as zeros and may survive a crash as zeros past the
    /// appended data; readers of such files must treat a zero tail as the end. A hint: backends
    /// that cannot reserve space do nothing. [`Appender::len`] is not changed.
    fn preallocate(&mut self, _len: u64) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async { Ok(()) })
    }

    /// The number of bytes appended so far.
    fn len(&self) -> u64;

    /// Whether nothing was appended yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finishes the file: syncs it (so a closed file is always durable) and releases it.
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
}

/// What went wrong in a storage call, in terms the engine can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// No file at the path.
    NotFound,
    /// A file exists where a new one was to be created.
    AlreadyExists,
    /// A read past the end of the file.
    UnexpectedEof,
    /// The path is not acceptable (absolute, `..`, a directory where a file is expected, ...).
    InvalidPath,
    /// The backend cannot do this (for example a durable append on an object store).
    Unsupported,
    /// Any other failure of the device, the OS or the remote service.
    Io,
}

/// A failed storage call: the operation, the path, the kind, and the underlying cause.
#[derive(Debug, thiserror::Error)]
#[error("storage {operation} of {path:?} failed ({kind:?}): {source}")]
pub struct StorageError {
    /// What failed, in terms the engine can act on.
    pub kind: StorageErrorKind,
    /// The operation: "create", "append", "put", "read", "list", ...
    pub operation: &'static str,
    /// The path the operation was on (relative to the storage root).
    pub path: String,
    /// The underlying cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// A new error of `kind` for `operation` on `path`, caused by `source`.
    pub fn new(
        kind: StorageErrorKind,
        operation: &'static str,
        path: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            operation,
            path: path.into(),
            source: source.into(),
        }
    }

    /// An error from an `std::io::Error`, with the kind derived from the io error's kind.
    pub fn from_io(
        operation: &'static str,
        path: impl Into<String>,
        error: std::io::Error,
    ) -> Self {
        let kind = match error.kind() {
            std::io::ErrorKind::NotFound => StorageErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => StorageErrorKind::AlreadyExists,
            std::io::ErrorKind::UnexpectedEof => StorageErrorKind::UnexpectedEof,
            std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::IsADirectory => StorageErrorKind::InvalidPath,
            std::io::ErrorKind::Unsupported => StorageErrorKind::Unsupported,
            _ => StorageErrorKind::Io,
        };
        Self::new(kind, operation, path, error)
    }
}

/// Checks that `path` is a relative, normalised storage path; returns its components.
pub fn validate_path<'p>(
    operation: &'static str,
    path: &'p str,
) -> Result<Vec<&'p str>, StorageError> {
    let invalid = |why: &str| invalid_path(operation, path, why);
    if path.starts_with('/') {
        return Err(invalid("it must be relative to the storage root"));
    }
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let components: Vec<&str> = path.split('/').collect();
    for component in &components {
        match *component {
            "" => return Err(invalid("it has an empty component")),
            "." | ".." => return Err(invalid("it has a `.` or `..` component")),
            _ if component.contains('\\') || component.contains('\0') => {
                return Err(invalid("it contains `\\` or NUL"));
            }
            _ => {}
        }
    }
    Ok(components)
}

/// The error for a path that is not acceptable, saying why.
pub(crate) fn invalid_path(operation: &'static str, path: &str, why: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::InvalidPath,
        operation,
        path,
        format!("invalid storage path: {why}"),
    )
}

#[cfg(test)]
mod tests;
