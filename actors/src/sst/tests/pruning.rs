//! What scans and lookups skip: blocks outside a key range, files newer than the read, keys
//! the bloom filters rule out — for every key type.

use std::ops::Bound;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, FixedSizeBinaryArray, Int8Array,
    Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, RecordBatch,
    StringArray, Time32MillisecondArray, Time32SecondArray, Time64MicrosecondArray,
    Time64NanosecondArray, TimestampNanosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow_schema::{Field, Schema};
use arrow_select::take::take;

use super::*;
use crate::table::{KeyBytes, TableSchema};

/// An SST of 50,000 rows keyed by a `UInt64`, and a reader that counts its reads, with a block
/// cache of `cache_bytes`.
fn counted_file(cache_bytes: usize) -> (Arc<TableSchema>, Arc<CountingStorage>, SstReader) {
    let schema = Schema::new(vec![
        Field::new("id", arrow_schema::DataType::UInt64, false),
        Field::new("value", arrow_schema::DataType::Int64, false),
    ]);
    let table = Arc::new(TableSchema::new(Arc::new(schema), &["id"]).expect("table"));
    let rows = 50_000u64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(0..rows)),
        // Incompressible values, so that bytes read measure pages read.
        Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15) as i64),
        )),
        Arc::new(UInt64Array::from_iter_values(
            (0..rows).map(|n| 100 + n % 10),
        )),
        Arc::new(BooleanArray::from(vec![false; rows as usize])),
    ];
    let batch = RecordBatch::try_new(sst_schema(&table), columns).expect("batch");
    let options = SstOptions {
        row_group_rows: 8_192,
        ..SstOptions::default()
    };
    let sst = encode_batch(&table, &batch, 2, &options);
    let (storage, reader) = open_counted(&table, &sst, Arc::new(BlockCache::new(cache_bytes)));
    (table, storage, reader)
}

fn key(table: &TableSchema, id: u64) -> KeyBytes {
    let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(vec![id]))];
    table.encode_key(&columns).expect("key")
}

/// Rows and bytes read by a scan.
fn scan_cost(
    storage: &CountingStorage,
    reader: &SstReader,
    range: KeyRange,
    read_at: u64,
) -> (usize, u64) {
    let before = storage.reads().1;
    let chunks = collect(
        reader
            .scan(range, read_at, &[0, 1], ScanOptions::default())
            .expect("scan"),
    );
    let rows = chunks.iter().map(|chunk| chunk.batch.num_rows()).sum();
    (rows, storage.reads().1 - before)
}

#[test]
fn a_key_range_reads_only_its_blocks() {
    // From the file (no cache), and through a cold cache.
    for cache_bytes in [0, DEFAULT_BLOCK_CACHE_BYTES] {
        let (table, storage, reader) = counted_file(cache_bytes);
        let range = KeyRange {
            lower: Bound::Included(key(&table, 20_000)),
            upper: Bound::Excluded(key(&table, 21_000)),
        };
        let (rows, range_bytes) = scan_cost(&storage, &reader, range, u64::MAX);
        assert_eq!(rows, 1_000);
        let (_, storage, reader) = counted_file(cache_bytes);
        let (rows, all_bytes) = scan_cost(&storage, &reader, KeyRange::all(), u64::MAX);
        assert_eq!(rows, 50_000);
        // The range lies in one of seven row groups; of that row group it reads the pages of
        // the two blocks it touches, and the dictionaries they need.
        assert!(
            range_bytes * 5 < all_bytes,
            "cache of {cache_bytes} bytes: a 2% range read {range_bytes} bytes, the whole file \
             {all_bytes}"
        );
    }
    let (table, storage, reader) = counted_file(0);
    let outside = KeyRange {
        lower: Bound::Excluded(key(&table, 49_999)),
        upper: Bound::Unbounded,
    };
    assert_eq!(scan_cost(&storage, &reader, outside, u64::MAX), (0, 0));
}

#[test]
fn a_scan_read_again_comes_from_the_block_cache() {
    let (table, storage, reader) = counted_file(DEFAULT_BLOCK_CACHE_BYTES);
    let range = KeyRange {
        lower: Bound::Included(key(&table, 20_000)),
        upper: Bound::Excluded(key(&table, 30_000)),
    };
    let (rows, bytes) = scan_cost(&storage, &reader, range.clone(), u64::MAX);
    assert!(rows == 10_000 && bytes > 0);
    let cache = Arc::clone(&reader.shared.cache);
    let misses = cache.stats().misses;
    assert_eq!(
        scan_cost(&storage, &reader, range, u64::MAX),
        (10_000, 0),
        "the range again"
    );
    assert_eq!(cache.stats().misses, misses);
    // The whole file: its other blocks are read, the cached ones are not.
    let (rows, more_bytes) = scan_cost(&storage, &reader, KeyRange::all(), u64::MAX);
    assert_eq!(rows, 50_000);
    let (_, cold_storage, cold_reader) = counted_file(DEFAULT_BLOCK_CACHE_BYTES);
    let (_, all_bytes) = scan_cost(&cold_storage, &cold_reader, KeyRange::all(), u64::MAX);
    assert!(
        more_bytes < all_bytes,
        "with a fifth cached, the whole file read {more_bytes} bytes, cold {all_bytes}"
    );
    // A scan of one column uses the cached blocks of every column.
    let before = storage.reads().1;
    let chunks = collect(
        reader
            .scan(
                KeyRange::all(),
                u64::MAX,
                &[1],
                ScanOptions::single_source(),
            )
            .expect("scan"),
    );
    let rows: usize = chunks.iter().map(|chunk| chunk.batch.num_rows()).sum();
    assert_eq!((rows, storage.reads().1 - before), (50_000, 0));
}

#[test]
fn a_scan_larger_than_a_quarter_of_the_cache_keeps_nothing() {
    let (table, storage, reader) = counted_file(256 << 10);
    let (key, columns) = (
        key(&table, 7),
        vec![Arc::new(UInt64Array::from(vec![7u64])) as ArrayRef],
    );
    assert!(
        smol::block_on(reader.get(&key, &columns, u64::MAX))
            .expect("get")
            .is_some()
    );
    let cache = Arc::clone(&reader.shared.cache);
    let held = cache.stats();
    assert_eq!(held.blocks, 1, "the lookup's block");
    assert_eq!(
        scan_cost(&storage, &reader, KeyRange::all(), u64::MAX).0,
        50_000
    );
    let after = cache.stats();
    assert_eq!(
        (after.blocks, after.bytes),
        (held.blocks, held.bytes),
        "the lookup's block stays"
    );
}

#[test]
fn a_read_older_than_the_file_reads_nothing() {
    let (table, storage, reader) = counted_file(DEFAULT_BLOCK_CACHE_BYTES);
    assert_eq!(scan_cost(&storage, &reader, KeyRange::all(), 99), (0, 0));
    let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(vec![5u64]))];
    let before = storage.reads();
    let found = smol::block_on(reader.get(&key(&table, 5), &columns, 99)).expect("get");
    assert!(found.is_none());
    assert_eq!(storage.reads(), before);
    // At 104 only rows with `n % 10 <= 4` are visible.
    assert_eq!(scan_cost(&storage, &reader, KeyRange::all(), 104).0, 25_000);
}

/// 64 distinct values of every key type, in key order.
fn key_type_columns() -> Vec<ArrayRef> {
    let n = 64;
    let ints = || 0..n as i64;
    vec![
        Arc::new(BooleanArray::from(vec![false, true])),
        Arc::new(Int8Array::from_iter_values(ints().map(|v| (v - 32) as i8))),
        Arc::new(Int16Array::from_iter_values(
            ints().map(|v| (v * 300 - 9000) as i16),
        )),
        Arc::new(Int32Array::from_iter_values(
            ints().map(|v| (v * 70_000 - 1_000_000) as i32),
        )),
        Arc::new(Int64Array::from_iter_values(
            ints().map(|v| v * (1 << 40) - (1 << 45)),
        )),
        Arc::new(UInt8Array::from_iter_values(ints().map(|v| (v * 3) as u8))),
        Arc::new(UInt16Array::from_iter_values(
            ints().map(|v| (v * 1000) as u16),
        )),
        Arc::new(UInt32Array::from_iter_values(
            ints().map(|v| (v as u32) * 60_000_000),
        )),
        Arc::new(UInt64Array::from_iter_values(
            ints().map(|v| (v as u64) << 58),
        )),
        Arc::new(StringArray::from_iter_values(
            ints().map(|v| format!("k{v:03}")),
        )),
        Arc::new(LargeStringArray::from_iter_values(
            ints().map(|v| format!("k{v:03}")),
        )),
        Arc::new(BinaryArray::from_iter_values(
            ints().map(|v| vec![v as u8; 3]),
        )),
        Arc::new(LargeBinaryArray::from_iter_values(
            ints().map(|v| vec![v as u8; 20]),
        )),
        Arc::new(
            FixedSizeBinaryArray::try_from_iter(ints().map(|v| [v as u8, 7, 7, 7])).expect("fsb"),
        ),
        Arc::new(Date32Array::from_iter_values(
            ints().map(|v| (v * 400 - 10_000) as i32),
        )),
        Arc::new(Date64Array::from_iter_values(
            ints().map(|v| v * 86_400_000 * 3),
        )),
        Arc::new(Time32SecondArray::from_iter_values(
            ints().map(|v| (v * 1000) as i32),
        )),
        Arc::new(Time32MillisecondArray::from_iter_values(
            ints().map(|v| (v * 9999) as i32),
        )),
        Arc::new(Time64MicrosecondArray::from_iter_values(
            ints().map(|v| v * 99_999_999),
        )),
        Arc::new(Time64NanosecondArray::from_iter_values(
            ints().map(|v| v * 999_999_999),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(ints().map(|v| v * 1_000_000_007 - 5))
                .with_timezone("+01:00"),
        ),
    ]
}

#[test]
fn bloom_filters_know_every_key_type() {
    for column in key_type_columns() {
        let data_type = column.data_type().clone();
        let schema = Schema::new(vec![Field::new("k", data_type.clone(), false)]);
        let table = Arc::new(TableSchema::new(Arc::new(schema), &["k"]).expect("table"));
        // Every other value goes into the file; the rest are absent.
        let present: Vec<u32> = (0..column.len() as u32).step_by(2).collect();
        let kept = take(&column, &UInt32Array::from(present.clone()), None).expect("take");
        let rows = kept.len();
        let batch = RecordBatch::try_new(
            sst_schema(&table),
            vec![
                kept,
                Arc::new(UInt64Array::from(vec![1; rows])),
                Arc::new(BooleanArray::from(vec![false; rows])),
            ],
        )
        .expect("batch");
        let sst = encode_batch(&table, &batch, 1, &SstOptions::default());
        let (storage, reader) = open_counted(&table, &sst, Arc::new(BlockCache::new(0)));
        let mut skipped = 0;
        for row in 0..column.len() {
            let columns = vec![column.slice(row, 1)];
            let key = table.encode_key(&columns).expect("key");
            let before = storage.reads().0;
            let found = smol::block_on(reader.get(&key, &columns, 1)).expect("get");
            assert_eq!(found.is_some(), row % 2 == 0, "{data_type} row {row}");
            if row % 2 == 1 && storage.reads().0 == before {
                skipped += 1;
            }
        }
        if column.len() > 2 {
            assert!(
                skipped >= column.len() / 2 - 3,
                "{data_type}: the bloom filter ruled out only {skipped} keys"
            );
        }
    }
}
