//! The manifest store and record format: publishing, races, fencing, claims, damage, pruning
//! and the stale-writer hazard, unrelated files. Pure version and retention rules are in
//! `version_tests.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use damselfly_runtimes::{
    BoxFuture, HookedStorage, MemoryStorage, Storage, StorageCall, StorageError, StorageErrorKind,
    StorageHook,
};
use futures_lite::future;

use super::{
    FORMAT_VERSION, ManifestError, ManifestStore, Published, Retention, SstDescriptor, Version,
    record, record_path, sst_id_range,
};
use crate::table::KeyBytes;

fn key(value: u64) -> KeyBytes {
    KeyBytes::from_slice(&value.to_be_bytes())
}

/// An SST of `version`'s epoch holding keys `min..=max` written at `timestamp`.
fn sst(version: &Version, level: u32, min: u64, max: u64, timestamp: u64) -> SstDescriptor {
    SstDescriptor {
        id: version.next_sst_id,
        level,
        rows: max - min + 1,
        bytes: 4096,
        min_key: key(min),
        max_key: key(max),
        min_timestamp: timestamp,
        max_timestamp: timestamp,
        deletes: 0,
        unique_keys: true,
        footer_bytes: 100,
        footer_crc32c: 0x1234_5678,
    }
}

/// The next version of `version` with one more level-0 SST (a flush of commit last + 1).
fn flushed(version: &Version) -> Version {
    let timestamp = version.last_commit + 1;
    let next = version.successor();
    let added = sst(&next, 0, timestamp * 10, timestamp * 10 + 9, timestamp);
    next.with_sst_added(added)
        .and_then(|next| next.with_wal_floor(timestamp))
        .expect("a valid flush")
        .with_time_mark(timestamp * 1000, &Retention::KEEP_ALL)
}

fn memory_store() -> (MemoryStorage, ManifestStore) {
    let storage = MemoryStorage::new();
    let store = ManifestStore::new(Arc::new(storage.clone()));
    (storage, store)
}

/// A store on `storage` as a second, independent writer would have it.
fn another_store(storage: &MemoryStorage) -> ManifestStore {
    ManifestStore::new(Arc::new(storage.clone()))
}

fn claim_new(store: &ManifestStore) -> Version {
    let current = smol::block_on(store.load_latest()).expect("loadable");
    smol::block_on(store.claim(current)).expect("claimable")
}

fn publish(store: &ManifestStore, version: &Version) -> Result<Published, ManifestError> {
    smol::block_on(store.publish(version))
}

fn latest(store: &ManifestStore) -> Version {
    smol::block_on(store.load_latest())
        .expect("loadable")
        .expect("a version")
}

/// Record bytes with a correct header for an arbitrary body.
fn raw_record(format: u64, body: &str) -> Bytes {
    let header = format!(
        "{{\"format\":{format},\"crc32c\":{},\"length\":{}}}",
        crc32c::crc32c(body.as_bytes()),
        body.len()
    );
    Bytes::from(format!("{header}\n{body}\n"))
}

#[test]
fn a_record_round_trips_with_every_field() {
    let mut version = Version::empty(3).claimed().expect("an epoch");
    let mut long_key = vec![0u8; 40];
    long_key[39] = 0xff;
    let mut first = sst(&version, 2, 1, 2, 7);
    first.max_key = KeyBytes::from_slice(&long_key);
    first.min_key = KeyBytes::from_slice(&[]);
    first.deletes = 1;
    first.unique_keys = false;
    version = version.with_sst_added(first).expect("valid");
    let second = sst(&version, 0, 5, 9, 9);
    version = version
        .with_sst_added(second)
        .and_then(|version| version.with_wal_floor(8))
        .and_then(|version| version.with_history_floor(4))
        .expect("valid")
        .with_time_mark(1_700_000_000_000, &Retention::KEEP_ALL);

    let bytes = record::encode(&version).expect("encodable");
    let text = std::str::from_utf8(&bytes).expect("a record is text");
    assert!(
        text.starts_with(&format!("{{\"format\":{FORMAT_VERSION},")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"{}\"", "00".repeat(39) + "ff")),
        "hex keys: {text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    let path = record_path(version.number);
    assert_eq!(record::decode(&path, &bytes).expect("decodable"), version);
    assert_eq!(record::number_from_path(&path), Some(version.number));
}

#[test]
fn record_names_sort_by_number_and_other_names_are_not_records() {
    assert_eq!(record_path(42), "manifest/00000000000000000042.json");
    assert!(record_path(9) < record_path(10));
    for path in [
        "manifest/42.json",
        "manifest/00000000000000000042.json.tmp",
        "manifest/0000000000000000004x.json",
        "wal/00000000000000000042.json",
        "manifest/README",
    ] {
        assert_eq!(record::number_from_path(path), None, "{path}");
    }
}

#[test]
fn a_published_version_is_loaded_back_and_the_newest_wins() {
    let (_, store) = memory_store();
    assert_eq!(smol::block_on(store.load_latest()).expect("empty"), None);
    let claimed = claim_new(&store);
    assert_eq!((claimed.number, claimed.epoch), (1, 1));
    assert_eq!(claimed.next_sst_id, sst_id_range(1).expect("a range").start);
    let mut version = claimed;
    for _ in 0..5 {
        version = flushed(&version);
        assert_eq!(
            publish(&store, &version).expect("published"),
            Published::Created
        );
    }
    assert_eq!(latest(&store), version);
    assert_eq!(version.ssts().count(), 5);
    assert_eq!(
        smol::block_on(store.record_numbers()).expect("listable"),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(smol::block_on(store.load(3)).expect("loadable").number, 3);
}

#[test]
fn two_writers_racing_for_one_number_exactly_one_wins() {
    let (storage, store) = memory_store();
    let base = claim_new(&store);
    let mine = flushed(&base);
    let next = base.successor();
    let theirs = sst(&next, 1, 500, 600, base.last_commit + 1);
    let theirs = next.with_sst_added(theirs).expect("valid");
    assert_eq!(mine.number, theirs.number);
    assert_ne!(mine, theirs);
    let other = another_store(&storage);
    let (first, second) = smol::block_on(future::zip(store.publish(&mine), other.publish(&theirs)));
    let outcomes = [first.expect("no error"), second.expect("no error")];
    let created = outcomes
        .iter()
        .filter(|outcome| **outcome == Published::Created);
    assert_eq!(created.count(), 1, "{outcomes:?}");
    let winner = latest(&store);
    assert!(winner == mine || winner == theirs);
    assert!(
        outcomes.contains(&Published::Superseded {
            latest: winner.clone()
        }),
        "the loser gets the winner back: {outcomes:?}"
    );
}

#[test]
fn publishing_the_same_version_again_counts_as_created() {
    let (_, store) = memory_store();
    let next = flushed(&claim_new(&store));
    assert_eq!(
        publish(&store, &next).expect("published"),
        Published::Created
    );
    // A retry after a storage error that left the outcome unknown.
    assert_eq!(
        publish(&store, &next).expect("published"),
        Published::Created
    );
    // Once a newer version exists, the same bytes are no longer the newest.
    let newer = flushed(&next);
    publish(&store, &newer).expect("published");
    assert_eq!(
        publish(&store, &next).expect("no error"),
        Published::Superseded { latest: newer }
    );
}

#[test]
fn a_claim_fences_the_older_writer() {
    let (storage, old_store) = memory_store();
    let old = flushed(&claim_new(&old_store));
    publish(&old_store, &old).expect("published");

    let new_store = another_store(&storage);
    let claimed = claim_new(&new_store);
    assert_eq!(
        (claimed.number, claimed.epoch),
        (old.number + 1, old.epoch + 1)
    );
    assert_eq!(
        claimed.ssts().collect::<Vec<_>>(),
        old.ssts().collect::<Vec<_>>()
    );

    match publish(&old_store, &flushed(&old)) {
        Err(ManifestError::Fenced {
            own_epoch,
            current_epoch,
        }) => assert_eq!((own_epoch, current_epoch), (1, 2)),
        other => panic!("the old writer must be fenced, got {other:?}"),
    }
    // Also once the new writer has moved on.
    let moved_on = flushed(&flushed(&claimed));
    publish(&new_store, &flushed(&claimed)).expect("published");
    publish(&new_store, &moved_on).expect("published");
    let error = publish(&old_store, &flushed(&old)).expect_err("fenced");
    assert!(error.to_string().contains("fenced"), "{error}");
    assert_eq!(latest(&old_store), moved_on);
}

#[test]
fn racing_claims_both_succeed_and_the_last_one_is_the_writer() {
    let (storage, first_store) = memory_store();
    let base = flushed(&claim_new(&first_store));
    publish(&first_store, &base).expect("published");
    let second_store = another_store(&storage);

    // Both loaded the same current version before either claimed.
    let (first, second) = smol::block_on(future::zip(
        first_store.claim(Some(base.clone())),
        second_store.claim(Some(base.clone())),
    ));
    let (first, second) = (first.expect("claimed"), second.expect("claimed"));
    let (loser_of_the_put, last) = if first.number < second.number {
        ((first, first_store), (second, second_store))
    } else {
        ((second, second_store), (first, first_store))
    };
    assert_eq!(
        (loser_of_the_put.0.number, loser_of_the_put.0.epoch),
        (3, 2)
    );
    assert_eq!((last.0.number, last.0.epoch), (4, 3));
    assert_eq!(latest(&last.1), last.0);
    assert!(matches!(
        publish(&loser_of_the_put.1, &flushed(&loser_of_the_put.0)),
        Err(ManifestError::Fenced {
            own_epoch: 2,
            current_epoch: 3
        })
    ));
    assert_eq!(
        publish(&last.1, &flushed(&last.0)).expect("the writer"),
        Published::Created
    );
}

#[test]
fn a_claim_on_a_stale_current_version_builds_on_the_newest() {
    let (storage, writer) = memory_store();
    let stale = claim_new(&writer);
    let mut version = stale.clone();
    for _ in 0..3 {
        version = flushed(&version);
        publish(&writer, &version).expect("published");
    }
    let claimed = smol::block_on(another_store(&storage).claim(Some(stale))).expect("claimed");
    assert_eq!((claimed.number, claimed.epoch), (version.number + 1, 2));
    assert_eq!(claimed.ssts().count(), 3, "no published SST may be lost");
    assert_eq!(claimed.wal_floor, version.wal_floor);
}

#[test]
fn a_stale_writer_cannot_win_a_pruned_slot() {
    let (storage, old_store) = memory_store();
    let old = flushed(&claim_new(&old_store));
    publish(&old_store, &old).expect("published");

    let new_store = another_store(&storage);
    let mut version = claim_new(&new_store);
    for _ in 0..5 {
        version = flushed(&version);
        publish(&new_store, &version).expect("published");
    }
    let pruned = smol::block_on(new_store.prune(version.number)).expect("pruned");
    assert_eq!(pruned, version.number - 1);

    // The old writer's next number was the new writer's claim, which is pruned: the put
    // succeeds, but the old writer must still learn that it is fenced.
    let stale = flushed(&old);
    assert!(!storage.paths().contains(&record_path(stale.number)));
    assert!(matches!(
        publish(&old_store, &stale),
        Err(ManifestError::Fenced {
            own_epoch: 1,
            current_epoch: 2
        })
    ));
    assert_eq!(
        latest(&new_store),
        version,
        "the stray record is never the newest"
    );

    // The same hazard within one epoch: a publish built on an out-of-date version.
    let out_of_date = version.clone();
    let newer = flushed(&flushed(&version));
    publish(&new_store, &flushed(&version)).expect("published");
    publish(&new_store, &newer).expect("published");
    smol::block_on(new_store.prune(newer.number)).expect("pruned");
    let next = out_of_date.successor();
    let late = sst(&next, 1, 1000, 1001, out_of_date.last_commit + 1);
    let late = next.with_sst_added(late).expect("valid");
    assert!(!storage.paths().contains(&record_path(late.number)));
    assert_eq!(
        publish(&new_store, &late).expect("no error"),
        Published::Superseded {
            latest: newer.clone()
        }
    );

    // The writer goes on, and its next prune removes the strays.
    let next = flushed(&newer);
    assert_eq!(
        publish(&new_store, &next).expect("published"),
        Published::Created
    );
    smol::block_on(new_store.prune(next.number)).expect("pruned");
    assert_eq!(
        smol::block_on(new_store.record_numbers()).expect("listable"),
        vec![next.number]
    );
}

#[test]
fn prune_never_deletes_the_newest_record_nor_other_files() {
    let (storage, store) = memory_store();
    assert_eq!(
        smol::block_on(store.prune(10)).expect("nothing to prune"),
        0
    );
    let mut version = claim_new(&store);
    for _ in 0..4 {
        version = flushed(&version);
        publish(&store, &version).expect("published");
    }
    smol::block_on(storage.put("manifest/NOTES.txt", Bytes::from_static(b"hello"))).expect("put");
    assert_eq!(smol::block_on(store.prune(3)).expect("pruned"), 2);
    assert_eq!(
        smol::block_on(store.record_numbers()).expect("listable"),
        vec![3, 4, 5]
    );
    assert_eq!(smol::block_on(store.prune(u64::MAX)).expect("pruned"), 2);
    assert_eq!(smol::block_on(store.prune(u64::MAX)).expect("pruned"), 0);
    assert_eq!(latest(&store), version);
    assert!(storage.paths().contains(&"manifest/NOTES.txt".to_owned()));
}

#[test]
fn unrelated_files_in_the_manifest_folder_are_ignored() {
    let (storage, store) = memory_store();
    let version = flushed(&claim_new(&store));
    publish(&store, &version).expect("published");
    for path in [
        "manifest/README",
        "manifest/99.json",
        "manifest/99999999999999999999.json.bak",
        "manifest/old/00000000000000000099.json",
        "manifest.json",
    ] {
        smol::block_on(storage.put(path, Bytes::from_static(b"not a record"))).expect("put");
    }
    assert_eq!(latest(&store), version);
    assert_eq!(
        smol::block_on(store.record_numbers()).expect("listable"),
        vec![1, 2]
    );
    assert_eq!(
        publish(&store, &flushed(&version)).expect("published"),
        Published::Created
    );
}

/// Damage done to a stored record.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut it to this many bytes.
    Cut(u64),
    /// XOR the byte at this offset with this mask.
    Flip(u64, u8),
}

#[test]
fn damaged_records_are_corrupt_and_never_skipped() {
    let (storage, store) = memory_store();
    let version = flushed(&claim_new(&store));
    publish(&store, &version).expect("published");
    let path = record_path(version.number);
    let bytes = smol::block_on(storage.read(&path)).expect("readable");
    let header_len = bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .expect("a header") as u64;
    let length = bytes.len() as u64;
    let damages = [
        ("empty", Damage::Cut(0)),
        ("cut in the header", Damage::Cut(9)),
        ("cut in the body", Damage::Cut(header_len + 20)),
        ("no final newline", Damage::Cut(length - 1)),
        ("a flipped body bit", Damage::Flip(header_len + 30, 0x04)),
        ("a flipped checksum digit", Damage::Flip(22, 0x01)),
    ];
    for (name, damage) in damages {
        let damaged = storage.fork();
        match damage {
            Damage::Cut(len) => damaged.truncate(&path, len),
            Damage::Flip(offset, mask) => damaged.corrupt(&path, offset, mask),
        }
        .expect("damageable");
        match smol::block_on(another_store(&damaged).load_latest()) {
            Err(ManifestError::Corrupt { path: at, reason }) => {
                assert_eq!(at, path, "{name}");
                assert!(!reason.is_empty());
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn records_that_decode_but_lie_are_corrupt() {
    let (storage, store) = memory_store();
    let version = flushed(&claim_new(&store));
    let body = serde_json::to_string(&version).expect("encodable");
    let cases = [
        // Named 3 but holding version 2.
        (record_path(3), body.clone(), "name says 3"),
        // A valid checksum over a version that breaks an invariant.
        (
            record_path(2),
            body.replace("\"wal_floor\":1,", "\"wal_floor\":99,"),
            "invariant",
        ),
        // A key that is not hex.
        (
            record_path(2),
            body.replacen("\"min_key\":\"", "\"min_key\":\"zz", 1),
            "hex",
        ),
        // Not a version at all.
        (record_path(2), "{\"hello\":1}".to_owned(), "decode"),
    ];
    for (path, body, expected) in cases {
        let damaged = storage.fork();
        smol::block_on(damaged.put(&path, raw_record(FORMAT_VERSION, &body))).expect("put");
        match smol::block_on(another_store(&damaged).load_latest()) {
            Err(ManifestError::Corrupt { reason, .. }) => {
                assert!(reason.contains(expected), "{expected}: {reason}")
            }
            other => panic!("{expected}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_newer_format_is_refused_by_name() {
    let (storage, store) = memory_store();
    let path = record_path(1);
    let newer = FORMAT_VERSION + 1;
    let future_record = raw_record(newer, "{\"anything\":\"a newer build wrote\"}");
    smol::block_on(storage.put(&path, future_record)).expect("put");
    let error = smol::block_on(store.load_latest()).expect_err("refused");
    assert!(
        error
            .to_string()
            .contains(&format!("format version {newer}")),
        "{error}"
    );
    let refused = matches!(&error, ManifestError::UnsupportedFormat { path: at, found }
        if *at == path && *found == newer);
    assert!(refused, "{error:?}");

    // Format 1 had no SST footer checksums, without which this build cannot open an SST.
    smol::block_on(storage.put(&path, raw_record(1, "{}"))).expect("put");
    let error = smol::block_on(store.load_latest()).expect_err("refused");
    assert!(
        matches!(&error, ManifestError::UnsupportedFormat { found: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn invalid_versions_are_not_published() {
    let (storage, store) = memory_store();
    let claimed = claim_new(&store);
    let paths_before = storage.paths();
    let never_stored = Version::empty(1);
    let floors_crossed = Version {
        wal_floor: claimed.last_commit + 1,
        ..claimed.successor()
    };
    for version in [never_stored, floors_crossed] {
        assert!(matches!(
            publish(&store, &version),
            Err(ManifestError::InvalidVersion(_))
        ));
    }
    assert_eq!(storage.paths(), paths_before);
}

/// Fails calls with `kind` while `remaining` is above zero, for the calls `matches` picks.
#[derive(Debug)]
struct FailingHook {
    remaining: AtomicU32,
    kind: StorageErrorKind,
    matches: fn(&StorageCall<'_>) -> bool,
}

impl StorageHook for FailingHook {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let fail = (self.matches)(&call)
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        let error = fail.then(|| StorageError::new(self.kind, "hooked", "-", "injected failure"));
        Box::pin(async move { error.map_or(Ok(()), Err) })
    }
}

fn hooked(
    storage: &MemoryStorage,
    failures: u32,
    kind: StorageErrorKind,
    matches: fn(&StorageCall<'_>) -> bool,
) -> ManifestStore {
    let hook = FailingHook {
        remaining: AtomicU32::new(failures),
        kind,
        matches,
    };
    let inner: Arc<dyn Storage> = Arc::new(storage.clone());
    ManifestStore::new(Arc::new(HookedStorage::new(inner, Arc::new(hook))))
}

#[test]
fn load_latest_lists_again_when_its_record_was_pruned_meanwhile() {
    let (storage, store) = memory_store();
    let version = flushed(&claim_new(&store));
    publish(&store, &version).expect("published");
    let reads = |call: &StorageCall<'_>| matches!(call, StorageCall::Read { .. });
    let racing = hooked(&storage, 2, StorageErrorKind::NotFound, reads);
    assert_eq!(latest(&racing), version);
}

#[test]
fn storage_failures_are_reported_and_a_retry_publishes() {
    let (storage, store) = memory_store();
    let next = flushed(&claim_new(&store));
    let puts = |call: &StorageCall<'_>| matches!(call, StorageCall::PutIfAbsent { .. });
    let failing = hooked(&storage, 1, StorageErrorKind::Io, puts);
    match publish(&failing, &next) {
        Err(ManifestError::Storage(error)) => assert_eq!(error.kind, StorageErrorKind::Io),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(
        publish(&failing, &next).expect("retried"),
        Published::Created
    );
    let lists = |call: &StorageCall<'_>| matches!(call, StorageCall::List { .. });
    let failing = hooked(&storage, 1, StorageErrorKind::Io, lists);
    assert!(matches!(
        smol::block_on(failing.claim(None)),
        Err(ManifestError::Storage(_))
    ));
}
