//! [`MemoryStorage`]: files in memory, with an exact model of what survives a power loss.
//!
//! What this module promises:
//!
//! - Every operation completes at its first poll and never waits, so a run on the deterministic
//!   simulator is the same run every time.
//! - The durability model is the [`Storage`] contract and nothing more generous: a file's bytes
//!   survive [`MemoryStorage::simulate_power_loss`] only up to its last sync (a synced append, a
//!   close or [`Storage::sync`]; or whole, when it was written by `put`/`put_if_absent`), and a
//!   file whose existence was never synced disappears. While
//!   [`MemoryStorage::set_syncs_in_flight`] is on, syncs make nothing durable.
//! - After a power loss no [`Appender`] created before it can write again, so an old database
//!   instance can never touch the state a recovering one sees.
//!
//! The end of this file also holds the small helpers every backend shares (path checks, listing
//! filter, range checks, the guard that poisons an appender after a failed append).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::common::{check_file_path, check_range, is_listed_child};
use super::{
    Appender, Durability, FileInfo, PutOutcome, Storage, StorageError, StorageErrorKind,
    validate_path,
};
use crate::runtime::BoxFuture;

/// Files kept in memory, shared by every clone, with a model of durability for crash tests.
///
/// Used by `DbBuilder::in_memory()`, and by tests that crash a database on any runtime: write,
/// call [`MemoryStorage::simulate_power_loss`] (or take a [`MemoryStorage::fork`] at any moment),
/// and open a new database on what is left.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone, Default)]
struct State {
    files: BTreeMap<String, MemoryFile>,
    /// Bumped by every power loss; appenders of an older generation are dead.
    generation: u64,
    /// The last incarnation handed out, so an appender notices that its file was replaced.
    last_incarnation: u64,
    /// While set, syncs write their bytes without making them durable (a sync in flight).
    syncs_in_flight: bool,
}

#[derive(Debug, Clone)]
struct MemoryFile {
    bytes: Vec<u8>,
    /// How many bytes survive a power loss; `None` while the file's existence is not durable.
    durable_len: Option<u64>,
    incarnation: u64,
}

/// A file that was not wholly durable when the power went out, as
/// [`MemoryStorage::simulate_power_loss_with`] offers it.
#[derive(Debug, Clone, Copy)]
pub struct UnsyncedFile<'a> {
    /// The file's path.
    pub path: &'a str,
    /// Everything written to it, durable or not.
    pub bytes: &'a [u8],
    /// How many leading bytes are durable; `None` while the file's existence is not durable.
    pub durable_len: Option<u64>,
}

/// What a power loss leaves of an [`UnsyncedFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPowerLoss {
    /// The unsynced bytes are lost; so is the file itself if its existence was not durable.
    Vanished,
    /// The file survives with its durable bytes followed by these (its unsynced bytes kept, a
    /// part of them, or garbage).
    Tail(Vec<u8>),
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        formatter
            .debug_struct("MemoryStorage")
            .field("files", &state.files.len())
            .field("generation", &state.generation)
            .finish_non_exhaustive()
    }
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power loss: every file is cut back to what was durable, files whose existence
    /// was never made durable disappear, and every [`Appender`] created before this call fails
    /// all later calls with [`StorageErrorKind::Io`].
    pub fn simulate_power_loss(&self) {
        self.simulate_power_loss_with(|_| AfterPowerLoss::Vanished);
    }

    /// Simulates a power loss in which `fate` decides what becomes of each file that was not
    /// wholly durable: its unsynced bytes may be lost, kept, or replaced (a torn write leaves a
    /// part of them, or garbage); a file whose existence was never made durable may vanish.
    /// Durable bytes always survive. Files are offered in path order. Afterwards every file is
    /// durable as it stands, and every [`Appender`] created before this call fails all later
    /// calls with [`StorageErrorKind::Io`].
    pub fn simulate_power_loss_with(
        &self,
        mut fate: impl FnMut(UnsyncedFile<'_>) -> AfterPowerLoss,
    ) {
        let mut state = self.lock();
        state.files.retain(|path, file| {
            let durable_len = file.durable_len.map(to_index);
            if durable_len == Some(file.bytes.len()) {
                return true;
            }
            let unsynced = UnsyncedFile {
                path,
                bytes: &file.bytes,
                durable_len: file.durable_len,
            };
            match (fate(unsynced), durable_len) {
                (AfterPowerLoss::Vanished, None) => false,
                (AfterPowerLoss::Vanished, Some(durable_len)) => {
                    file.bytes.truncate(durable_len);
                    true
                }
                (AfterPowerLoss::Tail(tail), durable_len) => {
                    file.bytes.truncate(durable_len.unwrap_or(0));
                    file.bytes.extend_from_slice(&tail);
                    file.durable_len = Some(len_u64(&file.bytes));
                    true
                }
            }
        });
        state.generation += 1;
        state.syncs_in_flight = false;
    }

    /// While `in_flight`, synced appends, closes and [`Storage::sync`] write what they write
    /// but make nothing durable: syncs still in flight when the power goes out. A power loss
    /// decides what becomes of their bytes, and ends this.
    pub fn set_syncs_in_flight(&self, in_flight: bool) {
        self.lock().syncs_in_flight = in_flight;
    }

    /// An independent deep copy of the current state (current bytes and durable lengths):
    /// writes to either storage are not seen by the other.
    pub fn fork(&self) -> MemoryStorage {
        let state = self.lock().clone();
        MemoryStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The paths of all files, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.lock().files.keys().cloned().collect()
    }

    /// The length of the file at `path`, or `None` if there is none.
    pub fn file_len(&self, path: &str) -> Option<u64> {
        self.lock().files.get(path).map(|file| len_u64(&file.bytes))
    }

    /// The bytes of the file at `path` (durable or not), or `None` if there is none.
    pub fn file_bytes(&self, path: &str) -> Option<Bytes> {
        self.lock()
            .files
            .get(path)
            .map(|file| Bytes::copy_from_slice(&file.bytes))
    }

    /// Cuts the file at `path` to `len` bytes (no-op if it is shorter), for damage tests. The
    /// durable length is cut too, so the damage survives a power loss.
    pub fn truncate(&self, path: &str, len: u64) -> Result<(), StorageError> {
        let mut state = self.lock();
        let file = state.file_mut("truncate", path)?;
        file.bytes.truncate(to_index(len));
        file.durable_len = file.durable_len.map(|durable_len| durable_len.min(len));
        Ok(())
    }

    /// XORs the byte at `offset` of the file at `path` with `xor_mask`, for damage tests. Fails
    /// with [`StorageErrorKind::UnexpectedEof`] when the file is not that long.
    pub fn corrupt(&self, path: &str, offset: u64, xor_mask: u8) -> Result<(), StorageError> {
        let mut state = self.lock();
        let file = state.file_mut("corrupt", path)?;
        match file.bytes.get_mut(to_index(offset)) {
            Some(byte) => {
                *byte ^= xor_mask;
                Ok(())
            }
            None => Err(StorageError::new(
                StorageErrorKind::UnexpectedEof,
                "corrupt",
                path,
                format!("offset {offset} is past the end of the file"),
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is made under the lock in a few statements that cannot panic
        // half-way, so the state behind a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn file(&self, operation: &'static str, path: &str) -> Result<&MemoryFile, StorageError> {
        check_file_path(operation, path)?;
        self.files
            .get(path)
            .ok_or_else(|| not_found(operation, path))
    }

    fn file_mut(
        &mut self,
        operation: &'static str,
        path: &str,
    ) -> Result<&mut MemoryFile, StorageError> {
        check_file_path(operation, path)?;
        self.files
            .get_mut(path)
            .ok_or_else(|| not_found(operation, path))
    }

    /// Checks that a file may live at `path` the way it could on a disk: no directory on the way
    /// is a file, and `path` itself is not a directory.
    fn check_placement(&self, operation: &'static str, path: &str) -> Result<(), StorageError> {
        check_file_path(operation, path)?;
        let invalid = |why: &str| {
            StorageError::new(
                StorageErrorKind::InvalidPath,
                operation,
                path,
                why.to_owned(),
            )
        };
        let ancestor_is_file = path
            .match_indices('/')
            .any(|(end, _)| self.files.contains_key(&path[..end]));
        if ancestor_is_file {
            return Err(invalid("a directory on the path is a file"));
        }
        let directory = format!("{path}/");
        let is_directory = self
            .files
            .range(directory.clone()..)
            .next()
            .is_some_and(|(other, _)| other.starts_with(&directory));
        if is_directory {
            return Err(invalid("the path is a directory"));
        }
        Ok(())
    }

    fn insert(&mut self, path: &str, bytes: Vec<u8>, durable_len: Option<u64>) -> u64 {
        self.last_incarnation += 1;
        let file = MemoryFile {
            bytes,
            durable_len,
            incarnation: self.last_incarnation,
        };
        self.files.insert(path.to_owned(), file);
        self.last_incarnation
    }

    fn create(&mut self, path: &str) -> Result<u64, StorageError> {
        self.check_placement("create", path)?;
        if self.files.contains_key(path) {
            return Err(already_exists("create", path));
        }
        Ok(self.insert(path, Vec::new(), None))
    }

    fn put(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.check_placement("put", path)?;
        self.insert(path, data.to_vec(), Some(len_u64(data)));
        Ok(())
    }

    fn put_if_absent(&mut self, path: &str, data: &[u8]) -> Result<PutOutcome, StorageError> {
        self.check_placement("put_if_absent", path)?;
        if self.files.contains_key(path) {
            return Ok(PutOutcome::AlreadyExists);
        }
        self.insert(path, data.to_vec(), Some(len_u64(data)));
        Ok(PutOutcome::Created)
    }

    fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let file = self.file("read_range", path)?;
        check_range("read_range", path, &range, Some(len_u64(&file.bytes)))?;
        let bytes = &file.bytes[to_index(range.start)..to_index(range.end)];
        Ok(Bytes::copy_from_slice(bytes))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>, StorageError> {
        validate_path("list", dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let files = self
            .files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| is_listed_child(dir, path))
            .map(|(path, file)| FileInfo {
                path: path.clone(),
                size: len_u64(&file.bytes),
            })
            .collect();
        Ok(files)
    }

    fn sync(&mut self, path: &str) -> Result<(), StorageError> {
        let in_flight = self.syncs_in_flight;
        let file = self.file_mut("sync", path)?;
        if !in_flight {
            file.durable_len = Some(len_u64(&file.bytes));
        }
        Ok(())
    }

    fn delete(&mut self, path: &str) -> Result<(), StorageError> {
        check_file_path("delete", path)?;
        match self.files.remove(path) {
            Some(_) => Ok(()),
            None => Err(not_found("delete", path)),
        }
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    fn supports_durable_append(&self) -> bool {
        true
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            let mut state = self.lock();
            let incarnation = state.create(path)?;
            let appender = MemoryAppender {
                storage: self.clone(),
                path: path.to_owned(),
                generation: state.generation,
                incarnation,
                len: 0,
            };
            Ok(Box::new(appender) as Box<dyn Appender>)
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.lock().put(path, &data) })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        Box::pin(async move { self.lock().put_if_absent(path, &data) })
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let state = self.lock();
            let file = state.file("read", path)?;
            Ok(Bytes::copy_from_slice(&file.bytes))
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move { self.lock().read_range(path, range) })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move { Ok(len_u64(&self.lock().file("size", path)?.bytes)) })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        Box::pin(async move { self.lock().list(dir) })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.lock().delete(path) })
    }

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.lock().sync(path) })
    }
}

/// Appends to one incarnation of one file, until the storage loses power.
#[derive(Debug)]
struct MemoryAppender {
    storage: MemoryStorage,
    path: String,
    generation: u64,
    incarnation: u64,
    len: u64,
}

impl MemoryAppender {
    fn append_now(&mut self, data: &[u8], durability: Durability) -> Result<(), StorageError> {
        let mut state = self.storage.lock();
        let syncs = !state.syncs_in_flight;
        if state.generation != self.generation {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                "append",
                self.path.as_str(),
                "the storage lost power after this file was created; its appender is dead",
            ));
        }
        let file = state
            .files
            .get_mut(&self.path)
            .filter(|file| file.incarnation == self.incarnation)
            .ok_or_else(|| {
                StorageError::new(
                    StorageErrorKind::NotFound,
                    "append",
                    self.path.as_str(),
                    "the file was deleted or replaced while it was being appended to",
                )
            })?;
        file.bytes.extend_from_slice(data);
        if durability == Durability::Synced && syncs {
            file.durable_len = Some(len_u64(&file.bytes));
        }
        self.len += len_u64(data);
        Ok(())
    }
}

impl Appender for MemoryAppender {
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move { self.append_now(&data, durability) })
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move { self.append_now(&[], Durability::Synced) })
    }
}

fn not_found(operation: &'static str, path: &str) -> StorageError {
    StorageError::new(StorageErrorKind::NotFound, operation, path, "no such file")
}

fn already_exists(operation: &'static str, path: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::AlreadyExists,
        operation,
        path,
        "a file already exists at this path",
    )
}

fn to_index(offset: u64) -> usize {
    // Memory offsets come from in-memory vectors or are clamped against their length before use;
    // saturating keeps an absurd offset from a test an out-of-range index instead of a wrap.
    usize::try_from(offset).unwrap_or(usize::MAX)
}

fn len_u64(bytes: &[u8]) -> u64 {
    // usize is at most 64 bits on every platform Rust supports.
    bytes.len() as u64
}
