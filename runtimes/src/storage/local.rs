//! [`LocalDiskStorage`]: files in a folder of the local filesystem, on any [`Runtime`].
//!
//! What this module promises:
//!
//! - Every blocking filesystem call runs through [`RuntimeExt::run_blocking`], so the backend
//!   works on tokio (current-thread or multi-thread), smol, and the simulator that runs blocking
//!   jobs inline. Each operation is one blocking job; a synced append writes and syncs in the
//!   same job, so a group commit costs one hop.
//! - A synced append returns after `fdatasync` of the file and, the first time, `fsync` of every
//!   directory entry leading to the file that this storage made (the file's directory, each
//!   directory `create` had to make, and the one containing the topmost of them).
//! - `put` writes a temporary file, syncs it, renames it over the destination and syncs the
//!   directory: readers see the old file or the new one, never a part. `put_if_absent` links the
//!   synced temporary file to the destination with `hard_link`, which the OS does atomically and
//!   refuses when the destination exists: a compare-and-swap that holds between processes too.
//! - `delete` syncs the directory, so a deleted file stays deleted after a power loss.
//! - `sync` syncs an existing file and every directory from its own up to the root.
//! - Temporary files are named `.tmp-<16 hex digits>-<file name>`, are removed when an operation
//!   fails, and are never listed. A crash can leave one behind; it is harmless.
//! - Errors name the path relative to the root, never the absolute one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::common::{AppendGuard, TEMP_FILE_PREFIX, check_range, is_listed_child, split_file_path};
use super::{
    Appender, Durability, FileInfo, PutOutcome, Storage, StorageError, StorageErrorKind,
    validate_path,
};
use crate::runtime::{BoxFuture, Runtime, RuntimeExt};

/// Files in a folder of the local filesystem, durable as the [`Storage`] contract says, on any
/// [`Runtime`]. Cloning is cheap and the clones share the root and runtime.
#[derive(Debug, Clone)]
pub struct LocalDiskStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    runtime: Arc<dyn Runtime>,
}

/// Where a file lives on disk.
#[derive(Debug)]
struct Place {
    /// The file's absolute path.
    file: PathBuf,
    /// The directory the file is in.
    dir: PathBuf,
    /// The file's name in `dir`.
    name: String,
}

impl LocalDiskStorage {
    /// Opens storage rooted at the folder `root`, creating it (and its parents, durably) when
    /// missing. Fails with [`StorageErrorKind::InvalidPath`] when `root` is a file.
    pub async fn open(
        root: impl Into<PathBuf>,
        runtime: Arc<dyn Runtime>,
    ) -> Result<LocalDiskStorage, StorageError> {
        Self::open_root(root.into(), runtime, true).await
    }

    /// Opens storage rooted at the existing folder `root`, creating nothing (for readers that
    /// must not write). Fails with [`StorageErrorKind::NotFound`] when there is no such folder.
    pub async fn open_existing(
        root: impl Into<PathBuf>,
        runtime: Arc<dyn Runtime>,
    ) -> Result<LocalDiskStorage, StorageError> {
        Self::open_root(root.into(), runtime, false).await
    }

    async fn open_root(
        root: PathBuf,
        runtime: Arc<dyn Runtime>,
        create: bool,
    ) -> Result<LocalDiskStorage, StorageError> {
        let shown = root.display().to_string();
        let root = std::path::absolute(&root)
            .map_err(|error| StorageError::from_io("open", shown.as_str(), error))?;
        let job_root = root.clone();
        run_io_job(&*runtime, "open", &shown, move || {
            open_root(&job_root, create)
        })
        .await?;
        Ok(LocalDiskStorage {
            inner: Arc::new(Inner { root, runtime }),
        })
    }

    fn place(&self, operation: &'static str, path: &str) -> Result<Place, StorageError> {
        let (dirs, name) = split_file_path(operation, path)?;
        let dir = dirs.iter().fold(self.inner.root.clone(), |dir, component| {
            dir.join(component)
        });
        Ok(Place {
            file: dir.join(name),
            dir,
            name: name.to_owned(),
        })
    }

    fn temp_name(&self, name: &str) -> String {
        let nonce = self.inner.runtime.random_u64();
        format!("{TEMP_FILE_PREFIX}{nonce:016x}-{name}")
    }

    /// Runs `job` as a blocking job and maps its failure to a [`StorageError`] on `path`.
    async fn run<T, J>(
        &self,
        operation: &'static str,
        path: &str,
        job: J,
    ) -> Result<T, StorageError>
    where
        J: FnOnce() -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        run_io_job(&*self.inner.runtime, operation, path, job).await
    }
}

/// Runs `job` through [`RuntimeExt::run_blocking`] and maps its failure (or the runtime's) to a
/// [`StorageError`] on the relative `path`.
async fn run_io_job<T, J>(
    runtime: &dyn Runtime,
    operation: &'static str,
    path: &str,
    job: J,
) -> Result<T, StorageError>
where
    J: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match runtime.run_blocking(operation, job).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StorageError::from_io(operation, path, error)),
        Err(task_error) => Err(StorageError::new(
            StorageErrorKind::Io,
            operation,
            path,
            task_error,
        )),
    }
}

impl Storage for LocalDiskStorage {
    fn location(&self) -> String {
        self.inner.root.display().to_string()
    }

    fn supports_durable_append(&self) -> bool {
        true
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            let place = self.place("create", path)?;
            let (file, unsynced_dirs) = self
                .run("create", path, move || create_file(&place))
                .await?;
            let appender = LocalAppender {
                file: Arc::new(file),
                path: path.to_owned(),
                runtime: Arc::clone(&self.inner.runtime),
                len: 0,
                synced_len: 0,
                unsynced_dirs,
                guard: AppendGuard::default(),
            };
            Ok(Box::new(appender) as Box<dyn Appender>)
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let place = self.place("put", path)?;
            let temp_name = self.temp_name(&place.name);
            self.run("put", path, move || replace_file(&place, &temp_name, &data))
                .await
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        Box::pin(async move {
            let place = self.place("put_if_absent", path)?;
            let temp_name = self.temp_name(&place.name);
            self.run("put_if_absent", path, move || {
                link_file_if_absent(&place, &temp_name, &data)
            })
            .await
        })
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let place = self.place("read", path)?;
            let bytes = self
                .run("read", path, move || fs::read(&place.file))
                .await?;
            Ok(Bytes::from(bytes))
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let place = self.place("read_range", path)?;
            let len = check_range("read_range", path, &range, None)?;
            let bytes = self
                .run("read_range", path, move || {
                    read_at(&place.file, range.start, len)
                })
                .await?;
            Ok(Bytes::from(bytes))
        })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let place = self.place("size", path)?;
            self.run("size", path, move || file_size(&place.file)).await
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        Box::pin(async move {
            let components = validate_path("list", dir)?;
            let absolute = components
                .iter()
                .fold(self.inner.root.clone(), |path, component| {
                    path.join(component)
                });
            let relative_dir = dir.to_owned();
            self.run("list", dir, move || list_files(&absolute, &relative_dir))
                .await
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let place = self.place("delete", path)?;
            self.run("delete", path, move || {
                fs::remove_file(&place.file)?;
                sync_dir(&place.dir)
            })
            .await
        })
    }

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let place = self.place("sync", path)?;
            let root = self.inner.root.clone();
            self.run("sync", path, move || sync_file(&place, &root))
                .await
        })
    }
}

/// A file being appended to, with what still has to be synced.
#[derive(Debug)]
struct LocalAppender {
    /// Shared with the blocking jobs, which must own what they touch.
    file: Arc<File>,
    path: String,
    runtime: Arc<dyn Runtime>,
    len: u64,
    synced_len: u64,
    /// Directories to sync at the first synced append, so that the file's entry is durable.
    unsynced_dirs: Vec<PathBuf>,
    guard: AppendGuard,
}

impl LocalAppender {
    async fn append_now(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> Result<(), StorageError> {
        self.guard.begin("append", &self.path)?;
        let new_len = self.len + data.len() as u64;
        let sync = durability == Durability::Synced
            && (new_len > self.synced_len || !self.unsynced_dirs.is_empty());
        if !data.is_empty() || sync {
            let file = Arc::clone(&self.file);
            let dirs = if sync {
                std::mem::take(&mut self.unsynced_dirs)
            } else {
                Vec::new()
            };
            run_io_job(&*self.runtime, "append", &self.path, move || {
                write_and_sync(&file, &data, sync, &dirs)
            })
            .await?;
        }
        self.len = new_len;
        if sync {
            self.synced_len = new_len;
        }
        self.guard.end();
        Ok(())
    }
}

impl Appender for LocalAppender {
    fn preallocate(&mut self, len: u64) -> BoxFuture<'_, Result<(), StorageError>> {
        let file = Arc::clone(&self.file);
        Box::pin(async move {
            run_io_job(&*self.runtime, "preallocate", &self.path, move || {
                reserve_space(&file, len)
            })
            .await
        })
    }

    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(self.append_now(data, durability))
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move { self.append_now(Bytes::new(), Durability::Synced).await })
    }
}

// The blocking jobs. Each runs on a blocking thread (or inline in the simulator) and returns an
// `io::Error` that `run_io_job` maps to a `StorageError` on the relative path.

fn open_root(root: &Path, create: bool) -> io::Result<()> {
    match fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!(
                "the storage root {} is a file, not a directory",
                root.display()
            ),
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound && create => {
            sync_dirs(&create_dirs(root)?)
        }
        Err(error) => Err(error),
    }
}

/// Creates `dir` and its missing ancestors. Returns the directories to sync so that an entry made
/// in `dir` is durable: `dir` itself and, when directories were made, each of them and the one
/// containing the topmost.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut existing = dir;
    while !existing.try_exists()? {
        missing.push(existing.to_path_buf());
        existing = existing.parent().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no ancestor of the directory exists",
            )
        })?;
    }
    for made in missing.iter().rev() {
        match fs::create_dir(made) {
            // Another writer may be making the same directory; ours still syncs it.
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
    }
    if missing.is_empty() {
        missing.push(dir.to_path_buf());
    } else {
        missing.push(existing.to_path_buf());
    }
    Ok(missing)
}

fn create_file(place: &Place) -> io::Result<(File, Vec<PathBuf>)> {
    let unsynced_dirs = create_dirs(&place.dir)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&place.file)?;
    Ok((file, unsynced_dirs))
}

/// Extends `file` to `len` bytes of allocated zeros (Linux `fallocate`), durably. File systems
/// without `fallocate` are left alone: the reservation is only a hint.
#[cfg(target_os = "linux")]
fn reserve_space(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => file.sync_all(),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve_space(_file: &File, _len: u64) -> io::Result<()> {
    Ok(())
}

fn write_and_sync(file: &File, data: &[u8], sync: bool, dirs: &[PathBuf]) -> io::Result<()> {
    if !data.is_empty() {
        (&*file).write_all(data)?;
    }
    if sync {
        file.sync_data()?;
        sync_dirs(dirs)?;
    }
    Ok(())
}

/// Writes `data` to a new temporary file named `temp_name` beside `place`, syncs it, and hands
/// its path to `install`. The temporary file is removed afterwards, whatever happened.
fn with_temp_file<T>(
    place: &Place,
    temp_name: &str,
    data: &[u8],
    install: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let temp = place.dir.join(temp_name);
    let file = create_temp_file(&temp)?;
    let installed = fill_and_sync(file, data).and_then(|()| install(&temp));
    // After a rename the temporary name is gone and this fails harmlessly; any other failure
    // leaves a file that listings hide, so it is garbage, not damage.
    let _ = fs::remove_file(&temp);
    installed
}

fn create_temp_file(path: &Path) -> io::Result<File> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        // The name carries 64 random bits; a clash means two writers share a random seed. It
        // says nothing about the destination, so it must not surface as `AlreadyExists`.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::other(
            format!("temporary file {} already exists", path.display()),
        )),
        opened => opened,
    }
}

fn fill_and_sync(mut file: File, data: &[u8]) -> io::Result<()> {
    file.write_all(data)?;
    file.sync_all()
}

fn replace_file(place: &Place, temp_name: &str, data: &[u8]) -> io::Result<()> {
    let dirs = create_dirs(&place.dir)?;
    with_temp_file(place, temp_name, data, |temp| fs::rename(temp, &place.file))?;
    sync_dirs(&dirs)
}

fn link_file_if_absent(place: &Place, temp_name: &str, data: &[u8]) -> io::Result<PutOutcome> {
    let dirs = create_dirs(&place.dir)?;
    let linked = with_temp_file(place, temp_name, data, |temp| {
        match fs::hard_link(temp, &place.file) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    })?;
    if !linked {
        return Ok(PutOutcome::AlreadyExists);
    }
    sync_dirs(&dirs)?;
    Ok(PutOutcome::Created)
}

fn read_at(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    // Reading nothing succeeds anywhere; an empty range must still lie within the file.
    if len == 0 && offset > file.metadata()?.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the range starts past the end of the file",
        ));
    }
    let mut buffer = vec![0; len];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buffer, offset)?;
    #[cfg(not(unix))]
    {
        use std::io::{Read as _, Seek as _};
        let mut file = file;
        file.seek(io::SeekFrom::Start(offset))?;
        file.read_exact(&mut buffer)?;
    }
    Ok(buffer)
}

fn file_size(path: &Path) -> io::Result<u64> {
    let metadata = fs::metadata(path)?;
    if metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "the path is a directory, not a file",
        ));
    }
    Ok(metadata.len())
}

fn list_files(dir: &Path, relative_dir: &str) -> io::Result<Vec<FileInfo>> {
    let entries = match fs::read_dir(dir) {
        // No directory there (nothing, or a file): no files in it, as on the other backends.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        entries => entries?,
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        // A name that is not UTF-8 cannot be a storage path, so it is not one of our files.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = if relative_dir.is_empty() {
            name
        } else {
            format!("{relative_dir}/{name}")
        };
        if !is_listed_child(relative_dir, &path) {
            continue;
        }
        match entry.metadata() {
            Ok(metadata) if metadata.is_file() => files.push(FileInfo {
                path,
                size: metadata.len(),
            }),
            // Directories are not files; a file deleted since `read_dir` is gone.
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    files.sort_by(|left, right| left.path.cmp(&right.path));
    Ok(files)
}

/// Syncs an existing file's data, then every directory from its own up to `root`: a crashed
/// process may have made any of them without syncing.
fn sync_file(place: &Place, root: &Path) -> io::Result<()> {
    // Opened for writing because some platforms sync only files opened so; nothing is written.
    OpenOptions::new()
        .write(true)
        .open(&place.file)?
        .sync_data()?;
    for dir in place.dir.ancestors() {
        sync_dir(dir)?;
        if dir == root {
            break;
        }
    }
    Ok(())
}

fn sync_dirs(dirs: &[PathBuf]) -> io::Result<()> {
    dirs.iter().try_for_each(|dir| sync_dir(dir))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // std cannot open a directory for syncing on Windows; NTFS journals directory changes.
    Ok(())
}
