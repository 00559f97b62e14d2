//! Point lookups against the model, versions that straddle block and row-group boundaries,
//! bloom filters and the block cache.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use super::model::{Model, random_model};
use super::*;
use crate::table::{KeyBytes, TableSchema};

/// Looks up `key` at `read_at` and checks the answer against the model.
fn check_get(
    model: &Model,
    reader: &SstReader,
    key: &KeyBytes,
    columns: &[ArrayRef],
    read_at: u64,
) {
    let found = smol::block_on(reader.get(key, columns, read_at)).expect("get");
    let expected = model.visible(key, read_at);
    match (found, expected) {
        (None, None) => {}
        (Some(found), Some(expected)) => {
            assert_eq!(found.timestamp, expected.timestamp, "{key:?} at {read_at}");
            assert_eq!(found.deleted, expected.deleted, "{key:?} at {read_at}");
            assert_eq!(
                found.row,
                model.rows.slice(expected.row, 1),
                "{key:?} at {read_at}"
            );
        }
        (found, expected) => panic!("{key:?} at {read_at}: found {found:?}, expected {expected:?}"),
    }
}

#[test]
fn get_returns_the_newest_visible_version_of_every_key() {
    for seed in seeds() {
        println!("seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)");
        let model = random_model(seed, 200, 8, 50);
        let sst = encode(&model, &small_options(), seed);
        let (_storage, reader) = open(&model, &sst);
        for (key, versions) in &model.versions {
            let columns = key_columns(&model, &model.rows, versions[0].row);
            let mut read_ats = vec![0, 1, 25, 50, u64::MAX];
            for version in versions {
                read_ats.extend([
                    version.timestamp - 1,
                    version.timestamp,
                    version.timestamp + 1,
                ]);
            }
            for read_at in read_ats {
                check_get(&model, &reader, key, &columns, read_at);
            }
        }
        for (key, columns) in &model.absent {
            check_get(&model, &reader, key, columns, u64::MAX);
        }
    }
}

/// A table keyed by a `UInt64` with one value column.
fn u64_table() -> Arc<TableSchema> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("value", DataType::Int64, true),
    ]);
    Arc::new(TableSchema::new(Arc::new(schema), &["id"]).expect("table"))
}

/// An SST of `(id, timestamp)` versions given in SST order; the value is `id * 1000 + ts`.
fn u64_sst(table: &TableSchema, versions: &[(u64, u64)], options: &SstOptions) -> EncodedSst {
    let ids = UInt64Array::from_iter_values(versions.iter().map(|(id, _)| *id));
    let values =
        Int64Array::from_iter_values(versions.iter().map(|(id, ts)| (id * 1000 + ts) as i64));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(values),
        Arc::new(UInt64Array::from_iter_values(
            versions.iter().map(|(_, ts)| *ts),
        )),
        Arc::new(BooleanArray::from(vec![false; versions.len()])),
    ];
    let batch = RecordBatch::try_new(sst_schema(table), columns).expect("batch");
    encode_batch(table, &batch, 2, options)
}

fn u64_key(table: &TableSchema, id: u64) -> (KeyBytes, Vec<ArrayRef>) {
    let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(vec![id]))];
    (table.encode_key(&columns).expect("key"), columns)
}

#[test]
fn versions_straddling_blocks_and_row_groups_are_found() {
    // Blocks of 4 rows, row groups of 8. Key 1 has 11 versions (rows 2..13): it starts inside
    // block 0, fills block 1 and crosses into row group 1; key 2 starts a block.
    let options = SstOptions {
        page_rows: 4,
        row_group_rows: 8,
        ..SstOptions::default()
    };
    let mut versions = vec![(0, 5), (0, 3)];
    versions.extend((0..11).map(|age| (1, 100 - age * 5)));
    versions.extend([(2, 9), (2, 8), (2, 7), (3, 1)]);
    let table = u64_table();
    let sst = u64_sst(&table, &versions, &options);
    let (_, reader) = open_counted(&table, &sst, Arc::new(BlockCache::default()));
    for id in 0..=4 {
        let (key, columns) = u64_key(&table, id);
        for read_at in 0..=110 {
            let expected = versions.iter().find(|(v, ts)| *v == id && *ts <= read_at);
            let found = smol::block_on(reader.get(&key, &columns, read_at)).expect("get");
            assert_eq!(
                found.as_ref().map(|v| v.timestamp),
                expected.map(|(_, ts)| *ts),
                "{id}@{read_at}"
            );
            if let Some(found) = found {
                let value = found
                    .row
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("i64");
                assert_eq!(value.value(0), (id * 1000 + found.timestamp) as i64);
            }
        }
    }
}

#[test]
fn bloom_filters_answer_absent_keys_without_reading_a_block() {
    let table = u64_table();
    let versions: Vec<(u64, u64)> = (0..20_000).map(|id| (id * 2, 1)).collect();
    let sst = u64_sst(&table, &versions, &SstOptions::default());
    let cache = Arc::new(BlockCache::default());
    let (storage, reader) = open_counted(&table, &sst, Arc::clone(&cache));
    let (key, columns) = u64_key(&table, 1000);
    assert!(
        smol::block_on(reader.get(&key, &columns, 5))
            .expect("get")
            .is_some()
    );
    let (reads, _) = storage.reads();
    let mut block_reads = 0;
    for id in (0..2000).map(|n| n * 20 + 1) {
        let before = storage.reads().0;
        let (key, columns) = u64_key(&table, id);
        assert!(
            smol::block_on(reader.get(&key, &columns, 5))
                .expect("get")
                .is_none()
        );
        block_reads += storage.reads().0 - before;
    }
    // Every bloom filter of this one-row-group file was loaded by the first lookup; absent keys
    // read nothing but the rare false positive (the default fpp is 3%).
    assert!(
        block_reads <= 60,
        "{block_reads} reads for 2000 absent keys"
    );
    assert!(reads <= 3, "open and the first lookup took {reads} reads");
}

#[test]
fn warm_lookups_hit_the_block_cache() {
    let table = u64_table();
    let versions: Vec<(u64, u64)> = (0..10_000).map(|id| (id, 1)).collect();
    let sst = u64_sst(&table, &versions, &SstOptions::default());
    let cache = Arc::new(BlockCache::default());
    let (storage, reader) = open_counted(&table, &sst, Arc::clone(&cache));
    for id in 0..10_000 {
        let (key, columns) = u64_key(&table, id);
        assert!(
            smol::block_on(reader.get(&key, &columns, 1))
                .expect("get")
                .is_some()
        );
    }
    let reads = storage.reads().0;
    for id in (0..10_000).rev() {
        let (key, columns) = u64_key(&table, id);
        assert!(
            smol::block_on(reader.get(&key, &columns, 1))
                .expect("get")
                .is_some()
        );
    }
    assert_eq!(storage.reads().0, reads, "warm lookups read nothing");
    assert!(cache.stats().hits >= 10_000);
    drop(reader);
    assert_eq!(
        cache.stats().bytes,
        0,
        "a dropped reader's blocks leave the cache"
    );
}
