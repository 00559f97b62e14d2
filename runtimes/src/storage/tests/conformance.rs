//! The storage conformance suite: what every backend must do, written once against
//! `&dyn Storage`. `mod.rs` runs each case on every backend.

use std::fmt::Debug;

use bytes::Bytes;
use futures_lite::future::zip;

use crate::storage::{Durability, FileInfo, PutOutcome, Storage, StorageError, StorageErrorKind};

/// The kind of the error `result` must be.
pub(super) fn kind_of<T: Debug>(result: Result<T, StorageError>) -> StorageErrorKind {
    result.expect_err("the operation must fail").kind
}

pub(super) async fn read(storage: &dyn Storage, path: &str) -> Bytes {
    storage.read(path).await.expect("the file can be read")
}

pub(super) async fn put(storage: &dyn Storage, path: &str, data: &'static [u8]) {
    let put = storage.put(path, Bytes::from_static(data)).await;
    put.expect("put succeeds");
}

fn file(path: &str, size: u64) -> FileInfo {
    FileInfo {
        path: path.to_owned(),
        size,
    }
}

pub(super) async fn create_append_read(storage: &dyn Storage) {
    let mut appender = storage.create("log/000001.wal").await.expect("create");
    assert!(appender.is_empty());
    let buffered = Durability::Buffered;
    appender
        .append(Bytes::from_static(b"hello "), buffered)
        .await
        .expect("append");
    appender
        .append(Bytes::new(), buffered)
        .await
        .expect("empty append");
    appender
        .append(Bytes::from_static(b"world"), buffered)
        .await
        .expect("append");
    assert_eq!(appender.len(), 11);
    assert!(!appender.is_empty());
    appender.close().await.expect("close");

    assert_eq!(read(storage, "log/000001.wal").await, &b"hello world"[..]);
    assert_eq!(storage.size("log/000001.wal").await.expect("size"), 11);
    let listed = storage.list("log").await.expect("list");
    assert_eq!(listed, vec![file("log/000001.wal", 11)]);
}

/// Backends with durable appends take synced and empty synced appends; the others refuse them
/// with `Unsupported` (object stores cannot make part of an object durable) and still work after.
pub(super) async fn durable_append_or_unsupported(storage: &dyn Storage) {
    let mut appender = storage.create("wal/segment").await.expect("create");
    let synced = Durability::Synced;
    if storage.supports_durable_append() {
        appender
            .append(Bytes::new(), synced)
            .await
            .expect("sync of an empty file");
        appender
            .append(Bytes::from_static(b"abc"), synced)
            .await
            .expect("synced append");
        appender
            .append(Bytes::from_static(b"de"), Durability::Buffered)
            .await
            .expect("append");
        appender
            .append(Bytes::new(), synced)
            .await
            .expect("sync of buffered bytes");
        appender
            .append(Bytes::new(), synced)
            .await
            .expect("sync of nothing new");
        assert_eq!(read(storage, "wal/segment").await, &b"abcde"[..]);
    } else {
        let refused = appender.append(Bytes::from_static(b"abc"), synced).await;
        assert_eq!(kind_of(refused), StorageErrorKind::Unsupported);
        appender
            .append(Bytes::from_static(b"abcde"), Durability::Buffered)
            .await
            .expect("append");
    }
    assert_eq!(appender.len(), 5);
    appender.close().await.expect("close");
    assert_eq!(read(storage, "wal/segment").await, &b"abcde"[..]);
}

pub(super) async fn create_existing_fails(storage: &dyn Storage) {
    put(storage, "manifest/current", b"v1").await;
    let created = storage.create("manifest/current").await;
    assert_eq!(kind_of(created), StorageErrorKind::AlreadyExists);
    assert_eq!(read(storage, "manifest/current").await, &b"v1"[..]);

    let appender = storage.create("sst/1.parquet").await.expect("create");
    appender.close().await.expect("close");
    let created = storage.create("sst/1.parquet").await;
    assert_eq!(kind_of(created), StorageErrorKind::AlreadyExists);
}

pub(super) async fn read_range_in_bounds_and_past_end(storage: &dyn Storage) {
    put(storage, "digits", b"0123456789").await;
    let read_range = |start, end| storage.read_range("digits", start..end);
    assert_eq!(read_range(2, 5).await.expect("middle"), &b"234"[..]);
    assert_eq!(read_range(0, 10).await.expect("whole"), &b"0123456789"[..]);
    assert_eq!(
        read_range(10, 10).await.expect("empty at the end"),
        &b""[..]
    );
    assert_eq!(
        kind_of(read_range(8, 11).await),
        StorageErrorKind::UnexpectedEof
    );
    assert_eq!(
        kind_of(read_range(12, 14).await),
        StorageErrorKind::UnexpectedEof
    );
    let empty_past_end = read_range(12, 12).await;
    assert_eq!(kind_of(empty_past_end), StorageErrorKind::UnexpectedEof);
}

pub(super) async fn missing_file_is_not_found(storage: &dyn Storage) {
    assert_eq!(
        kind_of(storage.read("nothing").await),
        StorageErrorKind::NotFound
    );
    let range = storage.read_range("dir/nothing", 0..1).await;
    assert_eq!(kind_of(range), StorageErrorKind::NotFound);
    assert_eq!(
        kind_of(storage.size("nothing").await),
        StorageErrorKind::NotFound
    );
}

pub(super) async fn put_replaces_content(storage: &dyn Storage) {
    put(storage, "config/options", b"first version").await;
    put(storage, "config/options", b"second").await;
    assert_eq!(read(storage, "config/options").await, &b"second"[..]);
    assert_eq!(storage.size("config/options").await.expect("size"), 6);
    let listed = storage.list("config").await.expect("list");
    assert_eq!(listed, vec![file("config/options", 6)]);
}

pub(super) async fn put_if_absent_creates_once(storage: &dyn Storage) {
    let first = storage
        .put_if_absent("manifest/00000001", Bytes::from_static(b"first"))
        .await;
    assert_eq!(first.expect("first put_if_absent"), PutOutcome::Created);
    let second = storage
        .put_if_absent("manifest/00000001", Bytes::from_static(b"second"))
        .await;
    assert_eq!(
        second.expect("second put_if_absent"),
        PutOutcome::AlreadyExists
    );
    assert_eq!(read(storage, "manifest/00000001").await, &b"first"[..]);
    let listed = storage.list("manifest").await.expect("list");
    assert_eq!(listed, vec![file("manifest/00000001", 5)]);
}

pub(super) async fn racing_put_if_absent_has_one_winner(storage: &dyn Storage) {
    let path = "manifest/00000002";
    let racer = |payload: &'static [u8]| storage.put_if_absent(path, Bytes::from_static(payload));
    let ((a, b), (c, d)) = zip(zip(racer(b"a"), racer(b"b")), zip(racer(b"c"), racer(b"d"))).await;
    let outcomes = [(a, b"a"), (b, b"b"), (c, b"c"), (d, b"d")]
        .map(|(outcome, payload)| (outcome.expect("put_if_absent"), payload));
    let winners: Vec<&[u8; 1]> = outcomes
        .iter()
        .filter(|(outcome, _)| *outcome == PutOutcome::Created)
        .map(|(_, payload)| *payload)
        .collect();
    assert_eq!(winners.len(), 1, "outcomes: {outcomes:?}");
    assert_eq!(read(storage, path).await, &winners[0][..]);
}

pub(super) async fn list_shows_direct_children_sorted(storage: &dyn Storage) {
    for path in [
        "sst/b.parquet",
        "sst/a.parquet",
        "sst/l1/c.parquet",
        "sstx/d",
        "top",
    ] {
        put(storage, path, b"12345").await;
    }
    let listed = storage.list("sst").await.expect("list sst");
    assert_eq!(
        listed,
        vec![file("sst/a.parquet", 5), file("sst/b.parquet", 5)]
    );
    let nested = storage.list("sst/l1").await.expect("list sst/l1");
    assert_eq!(nested, vec![file("sst/l1/c.parquet", 5)]);
    let root = storage.list("").await.expect("list the root");
    assert_eq!(root, vec![file("top", 5)]);
    assert_eq!(
        storage.list("missing").await.expect("list missing"),
        Vec::new()
    );
    assert_eq!(
        storage.list("sst/missing/deeper").await.expect("list"),
        Vec::new()
    );
    let under_a_file = storage.list("top").await.expect("list a file");
    assert_eq!(under_a_file, Vec::new());
}

pub(super) async fn reserved_temp_names_are_rejected(storage: &dyn Storage) {
    let put = storage
        .put("dir/.tmp-0000000000000001-x", Bytes::from_static(b"x"))
        .await;
    assert_eq!(kind_of(put), StorageErrorKind::InvalidPath);
    let created = storage.create(".tmp-x").await;
    assert_eq!(kind_of(created), StorageErrorKind::InvalidPath);
    assert_eq!(storage.list("dir").await.expect("list"), Vec::new());
}

pub(super) async fn delete_removes_once(storage: &dyn Storage) {
    put(storage, "gc/old.parquet", b"old").await;
    put(storage, "gc/kept.parquet", b"kept").await;
    storage.delete("gc/old.parquet").await.expect("delete");
    assert_eq!(
        kind_of(storage.read("gc/old.parquet").await),
        StorageErrorKind::NotFound
    );
    let listed = storage.list("gc").await.expect("list");
    assert_eq!(listed, vec![file("gc/kept.parquet", 4)]);
    let again = storage.delete("gc/old.parquet").await;
    assert_eq!(kind_of(again), StorageErrorKind::NotFound);
    assert_eq!(
        kind_of(storage.delete("never/was").await),
        StorageErrorKind::NotFound
    );
}

pub(super) async fn sync_keeps_a_file_as_it_is(storage: &dyn Storage) {
    put(storage, "wal/7", b"written earlier").await;
    storage.sync("wal/7").await.expect("sync");
    assert_eq!(read(storage, "wal/7").await, &b"written earlier"[..]);
    assert_eq!(
        kind_of(storage.sync("wal/8").await),
        StorageErrorKind::NotFound
    );
}

pub(super) async fn invalid_paths_are_rejected(storage: &dyn Storage) {
    let data = || Bytes::from_static(b"x");
    for path in ["/absolute", "a/../b", "..", "a//b", "a/", "./a", "a\\b", ""] {
        let invalid = |kind: StorageErrorKind, operation: &str| {
            assert_eq!(
                kind,
                StorageErrorKind::InvalidPath,
                "{operation} of {path:?}"
            );
        };
        invalid(kind_of(storage.create(path).await), "create");
        invalid(kind_of(storage.put(path, data()).await), "put");
        invalid(
            kind_of(storage.put_if_absent(path, data()).await),
            "put_if_absent",
        );
        invalid(kind_of(storage.read(path).await), "read");
        invalid(kind_of(storage.read_range(path, 0..1).await), "read_range");
        invalid(kind_of(storage.size(path).await), "size");
        invalid(kind_of(storage.delete(path).await), "delete");
        if !path.is_empty() {
            invalid(kind_of(storage.list(path).await), "list");
        }
    }
}

/// On backends with real directories a path cannot be a file and a directory at once.
pub(super) async fn file_cannot_be_a_directory(storage: &dyn Storage) {
    put(storage, "plain", b"file").await;
    let created = storage.create("plain/child").await;
    assert_eq!(kind_of(created), StorageErrorKind::InvalidPath);
    let put = storage.put("plain/child", Bytes::from_static(b"x")).await;
    assert_eq!(kind_of(put), StorageErrorKind::InvalidPath);
    assert_eq!(read(storage, "plain").await, &b"file"[..]);
}
