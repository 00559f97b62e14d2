//! Release-mode measurements of the SST format against plain arrow-rs Parquet, on 1,000,000
//! rows (u64 key, i64, f64, 32-byte string, bool). Ignored by default; run with
//!
//! ```text
//! cargo test --release -p damselfly-actors sst_performance -- --ignored --nocapture
//! ```

// Measuring needs a real clock; this is a test, not engine code.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::*;
use crate::table::{KeyBytes, TableSchema};

const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;

fn table() -> Arc<TableSchema> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("count", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("flag", DataType::Boolean, false),
    ]);
    Arc::new(TableSchema::new(Arc::new(schema), &["id"]).expect("table"))
}

/// The rows in SST order (keys 0..ROWS), in batches, with their keys; commit timestamps are
/// random among 1,000 commits.
fn batches(table: &TableSchema) -> Vec<(RecordBatch, Vec<KeyBytes>)> {
    let mut rng = fastrand::Rng::with_seed(42);
    let schema = sst_schema(table);
    (0..ROWS)
        .step_by(BATCH)
        .map(|start| {
            let rows = BATCH.min(ROWS - start);
            let names: Vec<String> = (0..rows)
                .map(|_| (0..32).map(|_| rng.alphanumeric()).collect())
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from_iter_values(
                    start as u64..(start + rows) as u64,
                )),
                Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.i64(..)))),
                Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.f64()))),
                Arc::new(StringArray::from(names)),
                Arc::new(BooleanArray::from_iter((0..rows).map(|_| Some(rng.bool())))),
                Arc::new(UInt64Array::from_iter_values(
                    (0..rows).map(|_| rng.u64(1..=1000)),
                )),
                Arc::new(BooleanArray::from(vec![false; rows])),
            ];
            let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
            let keys = table
                .encode_keys(&batch.project(&[0, 1, 2, 3, 4]).expect("user"))
                .expect("keys");
            let keys = keys
                .iter()
                .map(|row| KeyBytes::from_slice(row.data()))
                .collect();
            (batch, keys)
        })
        .collect()
}

fn rate(rows: usize, seconds: f64) -> String {
    format!("{:.2} M rows/s", rows as f64 / seconds / 1e6)
}

/// Best of `runs` timings of `work`, in seconds.
fn best_of(runs: usize, mut work: impl FnMut() -> usize) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let rows = work();
            assert_eq!(rows, ROWS);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn encode_sst(
    table: &TableSchema,
    data: &[(RecordBatch, Vec<KeyBytes>)],
    options: &SstOptions,
) -> EncodedSst {
    let mut writer = SstWriter::new(table, options, ROWS).expect("writer");
    for (batch, keys) in data {
        writer.write(batch, keys).expect("write");
    }
    writer.finish().expect("finish")
}

fn encode_plain(data: &[(RecordBatch, Vec<KeyBytes>)], level: i32) -> Bytes {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(level).expect("level")))
        .build();
    let user = |batch: &RecordBatch| batch.project(&[0, 1, 2, 3, 4]).expect("user columns");
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, user(&data[0].0).schema(), Some(properties))
        .expect("writer");
    for (batch, _) in data {
        writer.write(&user(batch)).expect("write");
    }
    writer.close().expect("close");
    Bytes::from(buffer)
}

fn arrow_rs_read(bytes: &Bytes, columns: Option<&[usize]>, batch_size: usize) -> usize {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).expect("builder");
    let builder = match columns {
        Some(columns) => {
            let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder.with_batch_size(batch_size).build().expect("reader");
    reader.map(|batch| batch.expect("batch").num_rows()).sum()
}

fn sst_read(reader: &SstReader, projection: &[usize], options: ScanOptions) -> usize {
    let mut scan = reader
        .scan(KeyRange::all(), u64::MAX, projection, options)
        .expect("scan");
    let mut rows = 0;
    while let Some(chunk) = smol::block_on(scan.next_chunk()).expect("chunk") {
        rows += chunk.batch.num_rows();
    }
    rows
}

#[test]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
fn sst_performance() {
    let table = table();
    let data = batches(&table);
    for level in [1, 3] {
        let options = SstOptions {
            compression: SstCompression::Zstd(level),
            ..SstOptions::default()
        };
        let seconds = best_of(3, || encode_sst(&table, &data, &options).info.rows as usize);
        let sst = encode_sst(&table, &data, &options);
        let plain_seconds = best_of(3, || {
            encode_plain(&data, level);
            ROWS
        });
        let plain = encode_plain(&data, level);
        println!(
            "zstd({level}): SST encode {} ({} bytes); ArrowWriter encode {} ({} bytes); size ratio {:.3}",
            rate(ROWS, seconds),
            sst.bytes.len(),
            rate(ROWS, plain_seconds),
            plain.len(),
            sst.bytes.len() as f64 / plain.len() as f64
        );
    }
    let sst = encode_sst(&table, &data, &SstOptions::default());
    let storage = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put("sst/1.parquet", sst.bytes.clone())).expect("put");
    let cache = Arc::new(BlockCache::default());
    let reader = smol::block_on(SstReader::open(
        storage,
        "sst/1.parquet",
        Arc::clone(&table),
        cache,
    ))
    .expect("open");

    let parquet = reader.shared.metadata.parquet();
    let bloom_bytes: i64 = parquet
        .row_groups()
        .iter()
        .filter_map(|group| group.column(0).bloom_filter_length())
        .map(i64::from)
        .sum();
    println!(
        "SST of {} bytes: {} row groups, {bloom_bytes} bytes of key bloom filters",
        sst.bytes.len(),
        parquet.num_row_groups()
    );
    let all = [0, 1, 2, 3, 4];
    for batch_size in [1024, 8192] {
        let arrow_all = best_of(3, || arrow_rs_read(&sst.bytes, None, batch_size));
        let arrow_user = best_of(3, || arrow_rs_read(&sst.bytes, Some(&all), batch_size));
        let arrow_one = best_of(3, || arrow_rs_read(&sst.bytes, Some(&[2]), batch_size));
        println!(
            "arrow-rs on the SST, batch {batch_size}: all columns {}, user columns {}, one column (f64) {}",
            rate(ROWS, arrow_all),
            rate(ROWS, arrow_user),
            rate(ROWS, arrow_one)
        );
    }
    let single = ScanOptions::single_source();
    let ours_single = best_of(3, || sst_read(&reader, &all, single));
    let ours_merge = best_of(3, || sst_read(&reader, &all, ScanOptions::default()));
    let ours_one = best_of(3, || sst_read(&reader, &[2], single));
    let ours_one_merge = best_of(3, || sst_read(&reader, &[2], ScanOptions::default()));
    let keys_only = ScanOptions {
        need_timestamps: false,
        ..ScanOptions::default()
    };
    let ours_one_keys = best_of(3, || sst_read(&reader, &[2], keys_only));
    println!(
        "SstScan from memory: all user columns {} (single source), {} (keys + timestamps); \
         one column (f64) {} (single source), {} (keys), {} (keys + timestamps)",
        rate(ROWS, ours_single),
        rate(ROWS, ours_merge),
        rate(ROWS, ours_one),
        rate(ROWS, ours_one_keys),
        rate(ROWS, ours_one_merge)
    );

    println!("block cache of {DEFAULT_BLOCK_CACHE_BYTES} bytes (the default):");
    measure_gets(&table, &reader);
    for capacity in [64 << 20, 0] {
        let storage = Arc::new(MemoryStorage::new());
        smol::block_on(storage.put("sst/1.parquet", sst.bytes.clone())).expect("put");
        let cache = Arc::new(BlockCache::new(capacity));
        let reader = smol::block_on(SstReader::open(
            storage,
            "sst/1.parquet",
            Arc::clone(&table),
            cache,
        ))
        .expect("open");
        println!("block cache of {capacity} bytes:");
        measure_gets(&table, &reader);
    }
}

fn measure_gets(table: &TableSchema, reader: &SstReader) {
    let mut rng = fastrand::Rng::with_seed(7);
    let lookups: Vec<(KeyBytes, Vec<ArrayRef>)> = (0..20_000)
        .map(|_| {
            let columns: Vec<ArrayRef> =
                vec![Arc::new(UInt64Array::from(vec![rng.u64(..ROWS as u64)]))];
            (table.encode_key(&columns).expect("key"), columns)
        })
        .collect();
    // Warm: every block decoded once.
    for id in (0..ROWS as u64).step_by(1000) {
        let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(vec![id]))];
        let key = table.encode_key(&columns).expect("key");
        smol::block_on(reader.get(&key, &columns, u64::MAX))
            .expect("get")
            .expect("found");
    }
    println!(
        "decoded blocks held after warming: {:?}",
        reader.shared.cache.stats()
    );
    let mut latencies: Vec<f64> = lookups
        .iter()
        .map(|(key, columns)| {
            let start = Instant::now();
            let found = smol::block_on(reader.get(key, columns, u64::MAX)).expect("get");
            let elapsed = start.elapsed().as_secs_f64();
            assert!(found.is_some());
            elapsed
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] * 1e6;
    println!(
        "get, warm, {} random existing keys: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs",
        latencies.len(),
        percentile(0.5),
        percentile(0.99),
        percentile(0.999)
    );
}
