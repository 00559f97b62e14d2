//! What `LocalDiskStorage` does beyond the conformance suite: its root, what it leaves on disk,
//! what its errors say, and how an appender behaves after a failed append.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_lite::future::block_on;

use super::InlineRuntime;
use super::conformance::{kind_of, put, read};
use crate::storage::{Durability, LocalDiskStorage, PutOutcome, Storage, StorageErrorKind};

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory can be made")
}

fn open(root: &Path, runtime: Arc<InlineRuntime>) -> LocalDiskStorage {
    block_on(LocalDiskStorage::open(root, runtime)).expect("local storage opens")
}

/// The names in a directory, as std sees them, sorted.
fn names_on_disk(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).expect("the directory exists");
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn open_on_a_file_is_an_invalid_path() {
    let temp = temp_dir();
    let file = temp.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write a file");
    let runtime = Arc::new(InlineRuntime::default());

    let opened = block_on(LocalDiskStorage::open(&file, runtime.clone()));
    let error = opened.expect_err("a file cannot be a storage root");
    assert_eq!(error.kind, StorageErrorKind::InvalidPath);
    assert!(error.to_string().contains("is a file"), "{error}");

    let below = block_on(LocalDiskStorage::open(file.join("below"), runtime));
    assert_eq!(kind_of(below), StorageErrorKind::InvalidPath);
}

#[test]
fn open_creates_the_root_and_reports_it_as_the_location() {
    let temp = temp_dir();
    let root = temp.path().join("a").join("b");
    let storage = open(&root, Arc::new(InlineRuntime::default()));
    assert!(root.is_dir());
    assert_eq!(storage.location(), root.display().to_string());
    let again = open(&root, Arc::new(InlineRuntime::default()));
    assert_eq!(again.location(), storage.location());
}

#[cfg(feature = "tokio")]
#[test]
fn synced_appends_are_on_disk_before_close() {
    let temp = temp_dir();
    let tokio = super::tokio_runtime(tokio::runtime::Builder::new_multi_thread());
    tokio.block_on(async {
        let runtime = Arc::new(crate::TokioRuntime::current());
        let storage = LocalDiskStorage::open(temp.path(), runtime)
            .await
            .expect("open");
        let mut appender = storage.create("wal/00000001.log").await.expect("create");
        let synced = appender
            .append(Bytes::from_static(b"frame-1"), Durability::Synced)
            .await;
        synced.expect("synced append");
        let on_disk = std::fs::read(temp.path().join("wal").join("00000001.log"));
        assert_eq!(on_disk.expect("std reads the file"), b"frame-1");
        appender.close().await.expect("close");
    });
}

#[test]
fn temporary_files_are_hidden_and_removed() {
    let temp = temp_dir();
    let storage = open(temp.path(), Arc::new(InlineRuntime::default()));
    let dir = temp.path().join("manifest");
    std::fs::create_dir(&dir).expect("make a directory");
    let leftover = ".tmp-00000000000000ff-crashed";
    std::fs::write(dir.join(leftover), b"left by a crash").expect("write a leftover");

    block_on(async {
        put(&storage, "manifest/current", b"v1").await;
        put(&storage, "manifest/current", b"v2").await;
        let data = || Bytes::from_static(b"m1");
        let first = storage.put_if_absent("manifest/00000001", data()).await;
        assert_eq!(first.expect("put_if_absent"), PutOutcome::Created);
        let second = storage.put_if_absent("manifest/00000001", data()).await;
        assert_eq!(second.expect("put_if_absent"), PutOutcome::AlreadyExists);

        let listed: Vec<String> = storage
            .list("manifest")
            .await
            .expect("list")
            .into_iter()
            .map(|file| file.path)
            .collect();
        assert_eq!(listed, vec!["manifest/00000001", "manifest/current"]);
    });
    assert_eq!(names_on_disk(&dir), vec![leftover, "00000001", "current"]);
}

#[test]
fn errors_name_the_relative_path() {
    let temp = temp_dir();
    let storage = open(temp.path(), Arc::new(InlineRuntime::default()));
    let error = block_on(storage.read("sst/missing.parquet")).expect_err("no such file");
    assert_eq!(error.kind, StorageErrorKind::NotFound);
    assert_eq!(error.path, "sst/missing.parquet");
    let root = temp.path().display().to_string();
    assert!(!error.to_string().contains(&root), "{error}");
}

#[test]
fn reading_a_directory_is_an_invalid_path() {
    let temp = temp_dir();
    let storage = open(temp.path(), Arc::new(InlineRuntime::default()));
    block_on(async {
        put(&storage, "dir/file", b"x").await;
        assert_eq!(
            kind_of(storage.size("dir").await),
            StorageErrorKind::InvalidPath
        );
        assert_eq!(
            kind_of(storage.read("dir").await),
            StorageErrorKind::InvalidPath
        );
    });
}

#[test]
fn an_appender_is_unusable_after_an_unfinished_append() {
    let temp = temp_dir();
    let runtime = Arc::new(InlineRuntime::default());
    let storage = open(temp.path(), Arc::clone(&runtime));
    block_on(async {
        let mut appender = storage.create("wal/1").await.expect("create");
        appender
            .append(Bytes::from_static(b"ok"), Durability::Synced)
            .await
            .expect("append");

        runtime.drop_jobs.store(true, Ordering::Relaxed);
        let dropped = appender
            .append(Bytes::from_static(b"lost"), Durability::Synced)
            .await;
        assert_eq!(kind_of(dropped), StorageErrorKind::Io);
        runtime.drop_jobs.store(false, Ordering::Relaxed);

        let after = appender
            .append(Bytes::from_static(b"more"), Durability::Buffered)
            .await;
        let error = after.expect_err("the appender must stay unusable");
        assert_eq!(error.kind, StorageErrorKind::Io);
        assert!(error.to_string().contains("earlier append"), "{error}");
        assert_eq!(kind_of(appender.close().await), StorageErrorKind::Io);
        assert_eq!(read(&storage, "wal/1").await, &b"ok"[..]);
    });
}

#[test]
fn preallocated_space_reads_as_zeros_after_the_data() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let runtime: Arc<dyn crate::Runtime> = Arc::new(crate::SmolRuntime::new());
    block_on(async {
        let storage = LocalDiskStorage::open(folder.path(), runtime)
            .await
            .expect("opens");
        let mut file = storage.create("wal/segment").await.expect("creates");
        file.preallocate(1 << 20).await.expect("reserves");
        file.append(Bytes::from_static(b"frames"), Durability::Synced)
            .await
            .expect("appends");
        assert_eq!(
            file.len(),
            6,
            "reserving space does not change what was appended"
        );
        file.close().await.expect("closes");
        let content = storage.read("wal/segment").await.expect("reads");
        assert_eq!(&content[..6], b"frames");
        // On Linux the space is reserved; elsewhere the hint may do nothing.
        assert!(content[6..].iter().all(|&byte| byte == 0));
        if cfg!(target_os = "linux") {
            assert_eq!(content.len(), 1 << 20);
        }
    });
}
