//! Tests of the SST format: round trips against a `BTreeMap` model, point lookups, pruning,
//! damaged files. Randomized tests print their seed; rerun one with `SST_TEST_SEED=<seed>`.

mod corrupt;
mod get;
pub(crate) mod model;
mod pruning;
mod scan;
mod storage;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use damselfly_runtimes::{MemoryStorage, Storage};

use self::model::Model;
use self::storage::CountingStorage;
use super::*;

/// Seeds for randomized tests: the one in `SST_TEST_SEED` if set, else a fixed list.
// Reading the environment is how a failing seed is replayed; tests are not engine code.
#[allow(clippy::disallowed_methods)]
fn seeds() -> Vec<u64> {
    match std::env::var("SST_TEST_SEED") {
        Ok(seed) => vec![seed.parse().expect("SST_TEST_SEED is a number")],
        Err(_) => vec![1, 2, 3, 0x5eed, 0xdead_beef],
    }
}

/// Small pages and row groups, so that a few hundred rows make many blocks and row groups.
fn small_options() -> SstOptions {
    SstOptions {
        page_rows: 8,
        row_group_rows: 32,
        ..SstOptions::default()
    }
}

/// Encodes the model's versions into an SST, in batches of random sizes.
fn encode(model: &Model, options: &SstOptions, seed: u64) -> EncodedSst {
    let (batch, keys) = model.sst_rows();
    let mut writer = SstWriter::new(&model.table, options, batch.num_rows()).expect("writer");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut offset = 0;
    while offset < batch.num_rows() {
        let length = rng.usize(1..=50).min(batch.num_rows() - offset);
        writer
            .write(&batch.slice(offset, length), &keys[offset..offset + length])
            .expect("write");
        offset += length;
    }
    writer.finish().expect("finish")
}

/// Stores `sst` in fresh memory storage and opens it.
fn open(model: &Model, sst: &EncodedSst) -> (Arc<MemoryStorage>, SstReader) {
    open_with_cache(model, sst, Arc::new(BlockCache::default()))
}

/// Stores `sst` in fresh memory storage and opens it with `cache`.
fn open_with_cache(
    model: &Model,
    sst: &EncodedSst,
    cache: Arc<BlockCache>,
) -> (Arc<MemoryStorage>, SstReader) {
    let storage = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put("sst/1.parquet", sst.bytes.clone())).expect("put");
    let reader = smol::block_on(SstReader::open(
        Arc::clone(&storage) as Arc<dyn Storage>,
        "sst/1.parquet",
        Arc::clone(&model.table),
        cache,
        sst.info.footer,
        sst.info.bytes,
    ))
    .expect("open");
    (storage, reader)
}

/// `sst` in storage that counts its reads, and a reader of it sharing `cache`.
fn open_counted(
    table: &Arc<TableSchema>,
    sst: &EncodedSst,
    cache: Arc<BlockCache>,
) -> (Arc<CountingStorage>, SstReader) {
    let storage = CountingStorage::with_file("sst/1.parquet", sst.bytes.clone());
    let reader = smol::block_on(SstReader::open(
        Arc::clone(&storage) as Arc<dyn Storage>,
        "sst/1.parquet",
        Arc::clone(table),
        cache,
        sst.info.footer,
        sst.info.bytes,
    ))
    .expect("open");
    (storage, reader)
}

/// Encodes `batch` — the SST's columns, the first `user_columns` of them the user's — into one
/// SST, in one write.
fn encode_batch(
    table: &TableSchema,
    batch: &RecordBatch,
    user_columns: usize,
    options: &SstOptions,
) -> EncodedSst {
    let user: Vec<usize> = (0..user_columns).collect();
    let keys: Vec<KeyBytes> = table
        .encode_keys(&batch.project(&user).expect("user columns"))
        .expect("keys")
        .iter()
        .map(|row| KeyBytes::from_slice(row.data()))
        .collect();
    let mut writer = SstWriter::new(table, options, batch.num_rows()).expect("writer");
    writer.write(batch, &keys).expect("write");
    writer.finish().expect("finish")
}

/// Every chunk of a scan.
fn collect(mut scan: SstScan) -> Vec<SstChunk> {
    let mut chunks = Vec::new();
    while let Some(chunk) = smol::block_on(scan.next_chunk()).expect("next chunk") {
        assert!(chunk.batch.num_rows() > 0, "chunks are never empty");
        chunks.push(chunk);
    }
    chunks
}

/// One-row arrays of the key columns of `row` of `batch`.
fn key_columns(model: &Model, batch: &RecordBatch, row: usize) -> Vec<ArrayRef> {
    model
        .table
        .key_indices()
        .iter()
        .map(|&index| batch.column(index).slice(row, 1))
        .collect()
}

/// Actors run readers, scans and writers on any runtime's threads.
#[test]
fn readers_scans_and_writers_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SstReader>();
    send_sync::<BlockCache>();
    let model = model::random_model(1, 20, 2, 10);
    let sst = encode(&model, &small_options(), 1);
    let (_storage, reader) = open(&model, &sst);
    let mut scan = reader
        .scan(KeyRange::all(), 5, &[0], ScanOptions::default())
        .expect("scan");
    send(&scan);
    send(&scan.next_chunk());
    let (key, versions) = model.versions.iter().next().expect("a key");
    let columns = key_columns(&model, &model.rows, versions[0].row);
    send(&reader.get(key, &columns, 5));
    let writer = SstWriter::new(&model.table, &SstOptions::default(), 0).expect("writer");
    send(&writer);
}
