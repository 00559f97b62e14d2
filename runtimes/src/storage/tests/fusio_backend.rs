//! What `FusioStorage` does beyond the conformance suite: how storage paths map to fusio keys
//! under the root, and what it shows of itself.

use std::sync::Arc;

use bytes::Bytes;
use fusio::fs::{CasCondition, FsCas};
use fusio::mem::fs::InMemoryFs;
use fusio::path::Path as FusioPath;
use futures_lite::future::block_on;

use super::conformance::{kind_of, put, read};
use crate::storage::{FusioStorage, Storage, StorageErrorKind};

/// Writes `data` at the raw fusio `key`, behind the storage's back.
fn put_key(fs: &InMemoryFs, key: &str, data: &[u8]) {
    let key = FusioPath::parse(key).expect("a valid key");
    let put = block_on(fs.put_conditional(&key, data, None, None, CasCondition::IfNotExists));
    put.expect("the key is new");
}

#[test]
fn paths_are_keys_under_the_root() {
    let fs = Arc::new(InMemoryFs::new());
    let storage = FusioStorage::new(Arc::clone(&fs), "/bucket/db/");
    put_key(&fs, "bucket/db/sst/1.parquet", b"inside");
    put_key(&fs, "bucket/other", b"outside");
    put_key(
        &fs,
        "bucket/dbx/sst/2.parquet",
        b"a sibling with the same prefix",
    );

    block_on(async {
        assert_eq!(read(&storage, "sst/1.parquet").await, &b"inside"[..]);
        let listed = storage.list("sst").await.expect("list");
        let paths: Vec<&str> = listed.iter().map(|file| file.path.as_str()).collect();
        assert_eq!(paths, vec!["sst/1.parquet"]);
        assert_eq!(storage.list("").await.expect("list the root"), Vec::new());

        put(&storage, "manifest/1", b"m").await;
        let key = FusioPath::parse("bucket/db/manifest/1").expect("a valid key");
        let stored = fs.load_with_tag(&key).await.expect("load");
        assert_eq!(stored.map(|(bytes, _tag)| bytes), Some(b"m".to_vec()));
    });
}

#[test]
fn an_empty_root_is_the_whole_filesystem() {
    let fs = Arc::new(InMemoryFs::new());
    let storage = FusioStorage::new(Arc::clone(&fs), "");
    put_key(&fs, "top", b"12");
    block_on(async {
        let listed = storage.list("").await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].path.as_str(), listed[0].size), ("top", 2));
        let put = storage.put_if_absent("top", Bytes::from_static(b"x")).await;
        assert_eq!(
            put.expect("put_if_absent"),
            crate::PutOutcome::AlreadyExists
        );
    });
}

#[test]
fn location_and_debug_name_the_file_system_and_root() {
    let storage = FusioStorage::new(Arc::new(InMemoryFs::new()), "bucket/db");
    assert_eq!(storage.location(), "fusio:memory:bucket/db");
    assert!(!storage.supports_durable_append());
    let debug = format!("{:?}", storage.clone());
    assert!(
        debug.contains("Memory") && debug.contains("bucket/db"),
        "{debug}"
    );
}

#[test]
fn characters_that_are_unsafe_in_keys_are_refused() {
    let storage = FusioStorage::new(Arc::new(InMemoryFs::new()), "bucket");
    block_on(async {
        for path in ["odd/a#b", "odd/100%", "odd/what?", "odd/[x]", "odd/~"] {
            let put = storage.put(path, Bytes::from_static(b"x")).await;
            assert_eq!(kind_of(put), StorageErrorKind::InvalidPath, "{path}");
        }
        put(&storage, "odd/plain-name_1.parquet", b"x").await;
        let listed = storage.list("odd").await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, "odd/plain-name_1.parquet");
    });
}
