//! Scans against the model: every read timestamp, random key ranges and projections, versions
//! and deletes, and the pass-through path against the per-row path.

use std::ops::Bound;

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;

use super::model::{Model, random_model};
use super::*;
use crate::sst::scan::Mode;
use crate::table::KeyBytes;

/// Scans `range` at `read_at` and checks everything the scan returns against the model.
fn check_scan(
    model: &Model,
    reader: &SstReader,
    range: KeyRange,
    read_at: u64,
    projection: &[usize],
    options: ScanOptions,
    context: &str,
) {
    let expected = model.scan(&range, read_at);
    let scan = reader
        .scan(range.clone(), read_at, projection, options)
        .expect("scan");
    let chunks = collect(scan);
    let schema = Arc::new(
        model
            .table
            .schema()
            .project(projection)
            .expect("projection"),
    );
    let batches: Vec<RecordBatch> = chunks.iter().map(|chunk| chunk.batch.clone()).collect();
    let found = concat_batches(&schema, &batches).expect("concat");
    assert_eq!(
        found,
        model.expected_rows(&expected, projection),
        "{context}: rows of {range:?} at {read_at}"
    );
    let deleted: Vec<bool> = chunks
        .iter()
        .flat_map(|chunk| chunk.deleted.iter().collect::<Vec<_>>())
        .collect();
    let expected_deleted: Vec<bool> = expected.iter().map(|(_, v)| v.deleted).collect();
    assert_eq!(deleted, expected_deleted, "{context}: delete flags");
    if options.need_keys {
        let keys: Vec<KeyBytes> = chunks
            .iter()
            .flat_map(|chunk| chunk.keys.clone().expect("keys were asked for"))
            .collect();
        let expected_keys: Vec<KeyBytes> = expected.iter().map(|(key, _)| key.clone()).collect();
        assert_eq!(keys, expected_keys, "{context}: keys");
    }
    if options.need_timestamps {
        let timestamps: Vec<u64> = chunks
            .iter()
            .flat_map(|chunk| {
                chunk
                    .timestamps
                    .clone()
                    .expect("timestamps were asked for")
                    .to_vec()
            })
            .collect();
        let expected_ts: Vec<u64> = expected.iter().map(|(_, v)| v.timestamp).collect();
        assert_eq!(timestamps, expected_ts, "{context}: timestamps");
    }
}

/// Readers of `sst` that scan in each way there is: from the file (no cache); through a cache
/// that fills as they go; and through a cache of a few blocks, primed by point lookups of
/// scattered keys, so that scans mix cached blocks, runs of missing ones and evictions.
fn readers(model: &Model, sst: &EncodedSst, seed: u64) -> Vec<(&'static str, SstReader)> {
    let (_, file) = open_with_cache(model, sst, Arc::new(BlockCache::new(0)));
    let (_, cached) = open_with_cache(model, sst, Arc::new(BlockCache::default()));
    let (_, small) = open_with_cache(model, sst, Arc::new(BlockCache::new(4 << 10)));
    let mut rng = fastrand::Rng::with_seed(seed);
    for (_, versions) in model.versions.iter().filter(|_| rng.u8(..8) == 0) {
        let row = versions[0].row;
        let key = KeyBytes::from_slice(
            model
                .table
                .encode_keys(&model.rows.slice(row, 1))
                .expect("key")
                .row(0)
                .data(),
        );
        let columns = key_columns(model, &model.rows, row);
        smol::block_on(small.get(&key, &columns, u64::MAX)).expect("get");
    }
    vec![("file", file), ("cache", cached), ("small cache", small)]
}

/// A random bound around the model's keys (present or absent ones).
fn random_bound(model: &Model, rng: &mut fastrand::Rng) -> Bound<KeyBytes> {
    let keys: Vec<&KeyBytes> = model.versions.keys().collect();
    let key = if rng.bool() {
        keys[rng.usize(..keys.len())].clone()
    } else {
        model.absent[rng.usize(..model.absent.len())].0.clone()
    };
    match rng.u8(..5) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

#[test]
fn scans_return_each_keys_newest_visible_version() {
    for seed in seeds() {
        println!("seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)");
        let model = random_model(seed, 150, 6, 60);
        let sst = encode(&model, &small_options(), seed);
        assert!(!sst.info.unique_keys);
        let all: Vec<usize> = (0..model.table.schema().fields().len()).collect();
        for (way, reader) in readers(&model, &sst, seed) {
            let mut rng = fastrand::Rng::with_seed(seed);
            for round in 0..60 {
                let range = KeyRange {
                    lower: random_bound(&model, &mut rng),
                    upper: random_bound(&model, &mut rng),
                };
                let read_at = rng.u64(0..=65);
                // Every column (through the cache, if there is one) or some.
                let every = rng.bool();
                let mut projection: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|_| every || rng.bool())
                    .collect();
                rng.shuffle(&mut projection);
                let options = ScanOptions {
                    need_keys: rng.bool(),
                    need_timestamps: rng.bool(),
                    batch_rows: rng.usize(1..=100),
                };
                let context =
                    format!("{way}: seed {seed} round {round} {projection:?} {options:?}");
                check_scan(
                    &model,
                    &reader,
                    range,
                    read_at,
                    &projection,
                    options,
                    &context,
                );
            }
            for read_at in [0, 1, 7, 30, 59, 60, 61, u64::MAX] {
                check_scan(
                    &model,
                    &reader,
                    KeyRange::all(),
                    read_at,
                    &all,
                    ScanOptions::default(),
                    &format!("{way}: all"),
                );
            }
        }
    }
}

/// A model whose keys each have one version.
fn unique_model(seed: u64) -> Model {
    let mut model = random_model(seed, 300, 1, 40);
    for versions in model.versions.values_mut() {
        versions.truncate(1);
    }
    model
}

#[test]
fn every_mode_agrees_with_the_per_row_path() {
    for seed in seeds() {
        println!("seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)");
        let mut model = unique_model(seed);
        for versions in model.versions.values_mut() {
            versions[0].deleted = false;
        }
        let sst = encode(&model, &small_options(), seed);
        assert!(sst.info.unique_keys && sst.info.deletes == 0);
        let all: Vec<usize> = (0..model.table.schema().fields().len()).collect();
        for (way, reader) in readers(&model, &sst, seed) {
            let mut rng = fastrand::Rng::with_seed(seed);
            for round in 0..40 {
                let range = KeyRange {
                    lower: random_bound(&model, &mut rng),
                    upper: random_bound(&model, &mut rng),
                };
                let read_at = if rng.bool() {
                    u64::MAX
                } else {
                    rng.u64(0..=45)
                };
                let options = ScanOptions {
                    need_keys: rng.bool(),
                    need_timestamps: rng.bool(),
                    batch_rows: rng.usize(1..=100),
                };
                let mode = |mode| {
                    let scan = SstScan::with_mode(
                        Arc::clone(&reader.shared),
                        range.clone(),
                        read_at,
                        &all,
                        options,
                        Some(mode),
                    )
                    .expect("scan");
                    collect(scan)
                };
                let context = format!("{way}: seed {seed} round {round} {range:?} at {read_at}");
                let per_row = mode(Mode::Versions);
                let natural = collect(
                    reader
                        .scan(range.clone(), read_at, &all, options)
                        .expect("scan"),
                );
                let batches = |chunks: &[SstChunk]| -> Vec<RecordBatch> {
                    chunks.iter().map(|chunk| chunk.batch.clone()).collect()
                };
                let schema = Arc::clone(model.table.schema());
                assert_eq!(
                    concat_batches(&schema, &batches(&natural)).expect("concat"),
                    concat_batches(&schema, &batches(&per_row)).expect("concat"),
                    "{context}"
                );
                check_scan(&model, &reader, range, read_at, &all, options, &context);
            }
        }
    }
}

#[test]
fn unique_keys_with_deletes_and_newer_versions() {
    let seed = 77;
    println!("seed {seed}");
    let model = unique_model(seed);
    let sst = encode(&model, &small_options(), seed);
    assert!(sst.info.unique_keys && sst.info.deletes > 0);
    let (_storage, reader) = open(&model, &sst);
    let all: Vec<usize> = (0..model.table.schema().fields().len()).collect();
    for read_at in [0, 5, 20, 39, 40, u64::MAX] {
        for options in [ScanOptions::default(), ScanOptions::single_source()] {
            check_scan(
                &model,
                &reader,
                KeyRange::all(),
                read_at,
                &all,
                options,
                "unique",
            );
        }
    }
}

#[test]
fn a_single_source_scan_of_a_plain_file_decodes_only_the_projection() {
    let mut model = unique_model(5);
    for versions in model.versions.values_mut() {
        versions[0].deleted = false;
    }
    let sst = encode(&model, &small_options(), 5);
    let (_storage, reader) = open(&model, &sst);
    let scan = reader
        .scan(
            KeyRange::all(),
            u64::MAX,
            &[5],
            ScanOptions::single_source(),
        )
        .expect("scan");
    assert_eq!(
        scan.decoded_columns(),
        1,
        "only the projected column is decoded"
    );
    check_scan(
        &model,
        &reader,
        KeyRange::all(),
        u64::MAX,
        &[5],
        ScanOptions::single_source(),
        "plain",
    );
}

#[test]
fn an_empty_projection_counts_rows() {
    let model = random_model(9, 100, 3, 30);
    let sst = encode(&model, &small_options(), 9);
    let (_storage, reader) = open(&model, &sst);
    let chunks = collect(
        reader
            .scan(KeyRange::all(), 15, &[], ScanOptions::default())
            .expect("scan"),
    );
    let rows: usize = chunks.iter().map(|chunk| chunk.batch.num_rows()).sum();
    assert_eq!(rows, model.scan(&KeyRange::all(), 15).len());
}
