//! The memtable index against a model: random commits (appends of increasing keys, scattered
//! keys, keys written twice in one commit, deletes), then every read at every timestamp —
//! point lookups, scans in chunks of every size, version chunks, the key range — compared with
//! what the model says. Seeded: a failure names the seed that replays it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, Field, Schema};

use super::index::{Chunk, Memtable, SMALL_COMMIT_VERSIONS};
use super::write::KeyedRows;
use crate::table::KeyBytes;
use crate::timestamp::Timestamp;

/// One version as the model and the reads see it: commit, delete flag, and the row's value.
type Seen = (u64, bool, i64);

/// Every version written, by key, newest first.
type Model = BTreeMap<Vec<u8>, Vec<Seen>>;

fn key(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// One commit: rows `(id, deleted)` whose values are `timestamp * 1000 + row`.
fn commit(memtable: &Memtable, model: &mut Model, timestamp: u64, rows: &[(u64, bool)]) {
    let values: Int64Array = (0..rows.len() as i64)
        .map(|row| timestamp as i64 * 1000 + row)
        .collect();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "value",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).expect("a batch");
    let deletes = BooleanBuffer::from_iter(rows.iter().map(|&(_, deleted)| deleted));
    memtable.insert(
        Timestamp::new(timestamp),
        KeyedRows {
            batch,
            keys: rows
                .iter()
                .map(|&(id, _)| KeyBytes::from_slice(&key(id)))
                .collect(),
            deletes: Some(deletes),
            memory_bytes: 0,
        },
    );
    // The last row of a key in one commit wins.
    let mut last: BTreeMap<u64, (usize, bool)> = BTreeMap::new();
    for (row, &(id, deleted)) in rows.iter().enumerate() {
        last.insert(id, (row, deleted));
    }
    for (id, (row, deleted)) in last {
        let value = timestamp as i64 * 1000 + row as i64;
        model
            .entry(key(id))
            .or_default()
            .insert(0, (timestamp, deleted, value));
    }
}

/// The versions of a chunk, with their keys, in order.
fn versions_of(chunk: &Chunk) -> Vec<(Vec<u8>, Seen)> {
    let versions: Vec<(Vec<u8>, Seen)> = chunk
        .rows
        .iter()
        .zip(&chunk.keys)
        .zip(&chunk.timestamps)
        .map(|((&(batch, row, deleted), key), timestamp)| {
            let value = chunk.batches[batch]
                .column(0)
                .as_primitive::<Int64Type>()
                .value(row);
            (key.as_bytes().to_vec(), (timestamp.get(), deleted, value))
        })
        .collect();
    if versions.is_empty() {
        assert!(
            chunk.gather(&[0]).is_err(),
            "an empty chunk has nothing to gather"
        );
        return versions;
    }
    // Gathering the column gives the same values, whether by slices or row by row.
    let gathered = chunk.gather(&[0]).expect("the chunk's rows gather");
    let values: Vec<i64> = gathered[0].as_primitive::<Int64Type>().values().to_vec();
    let expected: Vec<i64> = versions.iter().map(|(_, (_, _, value))| *value).collect();
    assert_eq!(values, expected, "gathered values");
    versions
}

fn random_rows(random: &mut fastrand::Rng, next_append: &mut u64) -> Vec<(u64, bool)> {
    // Mostly small commits (into the B-tree unless appended), sometimes large ones (new runs).
    let count = if random.u8(0..10) == 0 {
        random.usize(SMALL_COMMIT_VERSIONS..SMALL_COMMIT_VERSIONS + 16)
    } else {
        random.usize(1..40)
    };
    let ids: Vec<u64> = match random.u8(0..4) {
        // Appends of increasing keys (the fast path).
        0 | 1 => {
            let first = *next_append;
            *next_append += count as u64;
            (first..first + count as u64).collect()
        }
        // Scattered keys, some repeated within the commit.
        2 => (0..count).map(|_| random.u64(0..150)).collect(),
        // Decreasing keys.
        _ => {
            let last = random.u64(0..150) + count as u64;
            (0..count as u64).map(|offset| last - offset).collect()
        }
    };
    ids.into_iter()
        .map(|id| (id, random.u8(0..8) == 0))
        .collect()
}

fn check(memtable: &Memtable, model: &Model, last: u64, random: &mut fastrand::Rng, seed: u64) {
    let total: usize = model.values().map(Vec::len).sum();
    assert_eq!(
        memtable.version_count(),
        total,
        "seed {seed}: version count"
    );
    let range = memtable
        .key_range()
        .map(|(first, last)| (first.as_bytes().to_vec(), last.as_bytes().to_vec()));
    let expected = model
        .keys()
        .next()
        .zip(model.keys().next_back())
        .map(|(first, last)| (first.clone(), last.clone()));
    assert_eq!(range, expected, "seed {seed}: key range");

    for read_at in 0..=last {
        let visible: Vec<(Vec<u8>, Seen)> = model
            .iter()
            .filter_map(|(key, versions)| {
                let version = versions
                    .iter()
                    .find(|(timestamp, _, _)| *timestamp <= read_at)?;
                Some((key.clone(), *version))
            })
            .collect();
        let max_rows = random.usize(1..50);
        let mut scanned = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let chunk = memtable.scan_chunk(from, Timestamp::new(read_at), max_rows);
            assert!(chunk.rows.len() <= max_rows, "seed {seed}: chunk size");
            let Some(last_key) = chunk.keys.last() else {
                break;
            };
            after = Some(last_key.as_bytes().to_vec());
            scanned.extend(versions_of(&chunk));
        }
        assert_eq!(scanned, visible, "seed {seed}: scan at {read_at}");
        let probe = key(random.u64(0..160));
        let from_probe =
            memtable.scan_chunk(Bound::Included(&probe), Timestamp::new(read_at), usize::MAX);
        let expected: Vec<(Vec<u8>, Seen)> = visible
            .iter()
            .filter(|(key, _)| *key >= probe)
            .cloned()
            .collect();
        assert_eq!(
            versions_of(&from_probe),
            expected,
            "seed {seed}: scan from {probe:?} at {read_at}"
        );
        for probe in (0..160u64).chain([150, 1000, 2015, 2039, 2040]) {
            let found = memtable
                .get(&key(probe), Timestamp::new(read_at))
                .map(|row| {
                    let value = row
                        .batch
                        .column(0)
                        .as_primitive::<Int64Type>()
                        .value(row.row);
                    (row.timestamp.get(), row.deleted, value)
                });
            let expected = visible
                .iter()
                .find(|(key_bytes, _)| *key_bytes == key(probe))
                .map(|(_, seen)| *seen);
            assert_eq!(found, expected, "seed {seed}: get({probe}) at {read_at}");
        }
    }

    let every: Vec<(Vec<u8>, Seen)> = model
        .iter()
        .flat_map(|(key, versions)| versions.iter().map(move |seen| (key.clone(), *seen)))
        .collect();
    let max_rows = random.usize(1..50);
    let mut listed = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let chunk = memtable.versions_chunk(from, max_rows);
        let Some(last_key) = chunk.keys.last() else {
            break;
        };
        let versions = versions_of(&chunk);
        let first_key = &versions[0].0;
        assert_ne!(
            after.as_ref(),
            Some(first_key),
            "seed {seed}: a key's versions are never split between chunks"
        );
        after = Some(last_key.as_bytes().to_vec());
        listed.extend(versions);
    }
    assert_eq!(listed, every, "seed {seed}: every version, newest first");
}

#[test]
fn reads_match_a_model_after_random_commits() {
    for seed in 0..40 {
        let mut random = fastrand::Rng::with_seed(seed);
        let memtable = Memtable::new(1);
        let mut model = Model::new();
        let mut next_append = 1000;
        let commits = random.u64(1..60);
        for timestamp in 1..=commits {
            let rows = random_rows(&mut random, &mut next_append);
            commit(&memtable, &mut model, timestamp, &rows);
        }
        check(&memtable, &model, commits, &mut random, seed);
    }
}

#[test]
fn appends_of_increasing_keys_stay_one_run_and_read_back() {
    let memtable = Memtable::new(1);
    let mut model = Model::new();
    for timestamp in 1..=20u64 {
        // Stretches long enough to be gathered as slices.
        let first = timestamp * 100;
        let rows: Vec<(u64, bool)> = (first..first + 40).map(|id| (id, false)).collect();
        commit(&memtable, &mut model, timestamp, &rows);
    }
    check(&memtable, &model, 20, &mut fastrand::Rng::with_seed(7), 7);
}

#[test]
fn an_empty_memtable_reads_nothing() {
    let memtable = Memtable::new(1);
    assert!(memtable.key_range().is_none());
    assert!(memtable.get(&key(1), Timestamp::new(5)).is_none());
    assert!(
        memtable
            .scan_chunk(Bound::Unbounded, Timestamp::new(5), 10)
            .rows
            .is_empty()
    );
    assert!(
        memtable
            .versions_chunk(Bound::Unbounded, 10)
            .rows
            .is_empty()
    );
    assert_eq!(memtable.version_count(), 0);
}

#[test]
fn a_successor_reuses_index_memory_but_none_of_its_rows() {
    let first = Memtable::new(1);
    let mut model = Model::new();
    for timestamp in 1..=4u64 {
        let rows: Vec<(u64, bool)> = (timestamp * 10..timestamp * 10 + 10)
            .map(|id| (id, false))
            .collect();
        commit(&first, &mut model, timestamp, &rows);
    }
    let second = first.successor();
    assert_eq!(second.id(), 2);
    drop(first);
    // The successor starts empty, although its first run may be the predecessor's memory.
    assert_eq!(second.version_count(), 0);
    assert!(second.get(&key(10), Timestamp::new(9)).is_none());
    let mut model = Model::new();
    commit(&second, &mut model, 5, &[(3, false), (7, true)]);
    commit(&second, &mut model, 6, &[(5, false)]);
    check(&second, &model, 6, &mut fastrand::Rng::with_seed(11), 11);
}

/// A transaction's write of `ids` (the rows' values do not matter to the check).
fn transaction_write(ids: &[u64]) -> super::PreparedWrite {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "value",
        DataType::Int64,
        false,
    )]));
    let values = Int64Array::from(vec![0; ids.len()]);
    let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).expect("a batch");
    super::PreparedWrite {
        rows: KeyedRows {
            batch,
            keys: ids
                .iter()
                .map(|&id| KeyBytes::from_slice(&key(id)))
                .collect(),
            deletes: None,
            memory_bytes: 0,
        },
        wal_body: bytes::Bytes::new(),
    }
}

#[test]
fn a_conflict_check_finds_the_newest_version_of_each_key_in_any_memtable() {
    use super::{CommitRefused, ConflictCheck};

    let mut model = Model::new();
    let older = Arc::new(Memtable::new(1));
    commit(&older, &mut model, 3, &[(1, false), (2, false)]);
    commit(&older, &mut model, 5, &[(2, false)]);
    let newer = Arc::new(older.successor());
    commit(&newer, &mut model, 8, &[(2, true)]);
    let memtables = [&newer, &older];
    let check = |read_at: u64, oldest_memtable: u64, ids: &[u64]| {
        ConflictCheck {
            read_at: Timestamp::new(read_at),
            oldest_memtable,
        }
        .check(&memtables, transaction_write(ids))
    };

    assert!(
        check(5, 1, &[1, 3]).is_ok(),
        "nothing newer than 5 for keys 1 and 3"
    );
    assert!(
        check(8, 1, &[2]).is_ok(),
        "the delete at 8 is not after a snapshot at 8"
    );
    for (read_at, ids, row, newest) in [(5, &[2][..], 0, 8), (2, &[3, 1], 1, 3), (7, &[2], 0, 8)] {
        match check(read_at, 1, ids) {
            Err(CommitRefused::Conflict {
                row: found,
                timestamp,
            }) => {
                assert_eq!(
                    (found, timestamp.get()),
                    (row, newest),
                    "{ids:?} at {read_at}"
                );
            }
            other => panic!("{ids:?} at {read_at}: expected a conflict, got {other:?}"),
        }
    }
    // The committer's view held memtable 0, which is gone: its commits are in an SST the
    // committer did not check.
    assert!(matches!(
        check(5, 0, &[1]),
        Err(CommitRefused::ViewOutdated(_))
    ));
}
