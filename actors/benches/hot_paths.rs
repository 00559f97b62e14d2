//! Criterion micro-benchmarks of the engine's hot paths, so that a regression shows up as a
//! number: preparing a commit (schema check, key encoding, WAL record), inserting into a
//! memtable, WAL frame encode and decode, SST write and read, and the merge of k sorted runs (a
//! compaction job end to end, in memory).
//!
//! `cargo bench -p damselfly-actors --bench hot_paths` (add `-- <filter>` for one group). The
//! rows are the engine benchmark's table: `u64` key, `i64`, `f64`, a 32-byte string, `bool`.

// Criterion's loops are synchronous: the async calls (in-memory storage, the executor on a smol
// runtime) are driven with `smol::block_on`, as the crate's tests do.

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_buffer::{BooleanBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use damselfly_actors::Timestamp;
use damselfly_actors::compactor::{CompactionJob, JOB_FORMAT, LocalExecutor};
use damselfly_actors::manifest::{SstDescriptor, sst_path};
use damselfly_actors::memtable::{KeyedRows, Memtable, PreparedWrite};
use damselfly_actors::sst::{
    BlockCache, EncodedSst, KeyRange, SstOptions, SstReader, SstWriter, sst_batch,
};
use damselfly_actors::table::TableSchema;
use damselfly_actors::wal::frame::{self, FrameKind, FrameRead};
use damselfly_runtimes::{MemoryStorage, Runtime, SmolRuntime, Storage};

fn table() -> Arc<TableSchema> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("ratio", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("flag", DataType::Boolean, false),
    ]));
    Arc::new(TableSchema::new(schema, &["id"]).expect("a table"))
}

/// Rows with keys `first, first + step, ...`.
fn rows(table: &TableSchema, first: u64, step: u64, count: u64) -> RecordBatch {
    let ids: Vec<u64> = (0..count).map(|i| first + i * step).collect();
    RecordBatch::try_new(
        Arc::clone(table.schema()),
        vec![
            Arc::new(UInt64Array::from(ids.clone())),
            Arc::new(Int64Array::from_iter_values(
                ids.iter().map(|&id| id as i64 * 3),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|&id| id as f64 * 0.5),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|id| format!("{id:032}")),
            )),
            Arc::new(BooleanArray::from_iter(
                ids.iter().map(|id| Some(id % 2 == 0)),
            )),
        ],
    )
    .expect("rows of the table")
}

fn keyed(table: &TableSchema, batch: &RecordBatch) -> KeyedRows {
    KeyedRows::checked(table, batch, None).expect("valid rows")
}

/// One SST of `rows`, committed at `timestamp`.
fn encode_sst(table: &TableSchema, batch: &RecordBatch, timestamp: u64) -> EncodedSst {
    let rows = keyed(table, batch);
    let count = batch.num_rows();
    let sst_rows = sst_batch(
        table,
        batch,
        ScalarBuffer::from(vec![timestamp; count]),
        BooleanBuffer::new_unset(count),
    )
    .expect("an SST batch");
    let mut writer = SstWriter::new(table, &SstOptions::default(), count).expect("a writer");
    writer.write(&sst_rows, &rows.keys).expect("written");
    writer.finish().expect("an SST")
}

fn commit_path(c: &mut Criterion) {
    let table = table();
    let mut group = c.benchmark_group("commit");
    for count in [16u64, 1024, 8192] {
        let batch = rows(&table, 0, 1, count);
        group.throughput(Throughput::Elements(count));
        group.bench_with_input(BenchmarkId::new("prepare", count), &batch, |b, batch| {
            b.iter(|| PreparedWrite::for_commit(&table, black_box(batch), None).expect("prepared"))
        });
        group.bench_with_input(
            BenchmarkId::new("memtable_insert", count),
            &batch,
            |b, batch| {
                b.iter_batched(
                    || (Memtable::new(1), keyed(&table, batch)),
                    |(memtable, rows)| {
                        memtable.insert(Timestamp::new(1), rows);
                        memtable
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

fn wal_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_frame");
    for bytes in [1usize << 10, 64 << 10] {
        let payload = vec![0x5au8; bytes];
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("encode", bytes), &payload, |b, payload| {
            let mut out = Vec::with_capacity(frame::framed_len(bytes));
            b.iter(|| {
                out.clear();
                frame::encode(&mut out, FrameKind::Commit, 7, 0, &[black_box(payload)])
                    .expect("fits a frame");
            })
        });
        let mut segment = Vec::new();
        frame::encode(&mut segment, FrameKind::Commit, 7, 0, &[&payload]).expect("fits a frame");
        group.bench_with_input(BenchmarkId::new("decode", bytes), &segment, |b, segment| {
            b.iter(|| match frame::read(black_box(segment), 0) {
                FrameRead::Frame(frame) => frame.payload.len(),
                other => panic!("an intact frame, not {other:?}"),
            })
        });
    }
    group.finish();
}

fn sst(c: &mut Criterion) {
    let table = table();
    let count = 65_536u64;
    let batch = rows(&table, 0, 1, count);
    let mut group = c.benchmark_group("sst");
    group.sample_size(20);
    group.throughput(Throughput::Elements(count));
    group.bench_function(BenchmarkId::new("write", count), |b| {
        b.iter(|| encode_sst(&table, black_box(&batch), 1))
    });
    let encoded = encode_sst(&table, &batch, 1);
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put("sst/1.parquet", encoded.bytes.clone())).expect("stored");
    group.bench_function(BenchmarkId::new("scan", count), |b| {
        b.iter(|| {
            smol::block_on(async {
                // A cold cache: every block is read and decoded.
                let reader = SstReader::open(
                    Arc::clone(&storage),
                    "sst/1.parquet",
                    Arc::clone(&table),
                    Arc::new(BlockCache::new(0)),
                    encoded.info.footer,
                    encoded.info.bytes,
                )
                .await
                .expect("opens");
                let mut scan = reader.scan_versions(KeyRange::all(), 8192).expect("a scan");
                let mut rows = 0;
                while let Some(chunk) = scan.next_chunk().await.expect("a chunk") {
                    rows += chunk.batch.num_rows();
                }
                rows
            })
        })
    });
    group.finish();
}

/// k SSTs of interleaved keys (run i holds keys i, i + k, ...), merged into one.
fn merge(c: &mut Criterion) {
    let table = table();
    let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new());
    let per_run = 16_384u64;
    let mut group = c.benchmark_group("merge");
    group.sample_size(10);
    for k in [2u64, 4, 8] {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let inputs: Vec<SstDescriptor> = (0..k)
            .map(|run| {
                let encoded = encode_sst(&table, &rows(&table, run, k, per_run), run + 1);
                let id = run + 1;
                smol::block_on(storage.put(&sst_path(id), encoded.bytes.clone())).expect("stored");
                SstDescriptor::from_info(id, 0, &encoded.info)
            })
            .collect();
        let executor = LocalExecutor::new(
            Arc::clone(&storage),
            Arc::clone(&runtime),
            Arc::clone(&table),
            SstOptions::default(),
        );
        let mut next_ids = 1_000u64;
        group.throughput(Throughput::Elements(k * per_run));
        group.bench_function(BenchmarkId::new("runs", k), |b| {
            b.iter(|| {
                // Fresh output ids each time: outputs are written with put-if-absent.
                let output_ids = next_ids..next_ids + 4;
                next_ids += 4;
                let job = CompactionJob {
                    format: JOB_FORMAT,
                    inputs: inputs.clone(),
                    target_level: 1,
                    drop_deletes: false,
                    horizon: 0,
                    output_ids,
                    output_file_bytes: u64::MAX,
                };
                smol::block_on(executor.run(job)).expect("the job runs")
            })
        });
    }
    group.finish();
}

criterion_group!(hot_paths, commit_path, wal_frames, sst, merge);
criterion_main!(hot_paths);
