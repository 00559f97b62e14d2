//! Reads after `flush()`: full scans and a one-column projection against arrow-rs's
//! `ParquetRecordBatchReader` over the same SST files, scans of 1% key ranges, warm and cold
//! point lookups, and bytes on disk against one arrow-rs zstd file of the same rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use damselfly::arrow_array::RecordBatch;
use damselfly::runtime::Runtime;
use damselfly::{Db, Expr};
use futures_lite::StreamExt as _;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::Report;
use crate::data::{ROWS, rows};
use crate::writes::{BULK_BATCH, open, open_with, write_arrow_file};

/// Rows per output batch, for the engine (its default) and for arrow-rs alike.
const BATCH_ROWS: usize = 8192;
/// Each scan runs this many times; the best run counts.
const RUNS: usize = 5;
const LOOKUPS: usize = 20_000;
/// Lookups without a block cache: each reads and decodes its block.
const COLD_LOOKUPS: usize = 2_000;
const RANGE_SCANS: usize = 200;

pub async fn reads(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let batches: Vec<RecordBatch> = (0..ROWS / BULK_BATCH)
        .map(|index| rows(index * BULK_BATCH, BULK_BATCH))
        .collect();
    let arrow_bytes = write_arrow_file(&folder.join("arrow-rs.parquet"), batches.iter().cloned());
    let root = folder.join("db");
    let db = open(&runtime, &root).await;
    for batch in batches {
        db.ingest(batch).await.expect("ingest");
    }
    db.flush().await.expect("flush");
    let files = sst_files(&root);
    let sst_bytes = db.metrics().sst_bytes;

    let mut reports = vec![
        Report::new("scan", best_rate(ROWS, || scan(&db, None)).await, "rows/s"),
        Report::new(
            "scan arrow-rs",
            best_rate(ROWS, || async { arrow_rs(&files, None) }).await,
            "rows/s",
        ),
        Report::new(
            "scan 1 col",
            best_rate(ROWS, || scan(&db, Some("value"))).await,
            "rows/s",
        ),
        Report::new(
            "scan 1 col arrow-rs",
            best_rate(ROWS, || async { arrow_rs(&files, Some(1)) }).await,
            "rows/s",
        ),
    ];
    reports.push(range_scans(&db).await);
    reports.push(gets(&db, "get", LOOKUPS, LOOKUPS).await);
    reports.push(Report::new(
        "SST bytes / arrow-rs",
        sst_bytes as f64 / arrow_bytes as f64,
        "ratio",
    ));
    reports.push(Report::new("SST files", files.len() as f64, "files"));
    db.close().await.expect("a clean close");
    let cold = open_with(&runtime, &root, |builder| builder.block_cache_bytes(0)).await;
    reports.push(gets(&cold, "get cold", 0, COLD_LOOKUPS).await);
    cold.close().await.expect("a clean close");
    reports
}

/// The published SSTs, as files on disk.
pub fn sst_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("sst"))
        .expect("the SST folder")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    files.sort();
    files
}

/// The best rows/s of `RUNS` runs of `read`, which returns the rows it read (`rows` each time).
pub async fn best_rate<F: std::future::Future<Output = usize>>(
    rows: u64,
    mut read: impl FnMut() -> F,
) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        let read_rows = read().await;
        assert_eq!(read_rows as u64, rows, "every row is read once");
        best = best.min(started.elapsed());
    }
    rows as f64 / best.as_secs_f64()
}

pub async fn scan(db: &Db, column: Option<&str>) -> usize {
    let mut scan = db.scan().batch_rows(BATCH_ROWS);
    if let Some(column) = column {
        scan = scan.projection(&[column]);
    }
    let mut stream = scan.stream().await.expect("a scan");
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.expect("a batch").num_rows();
    }
    rows
}

/// Scans of every column of 1% of the keys, each from a random first key: the whole table's
/// SSTs are open, but only the blocks of the range are read.
async fn range_scans(db: &Db) -> Report {
    let width = ROWS / 100;
    let mut random = fastrand::Rng::with_seed(7);
    let mut latencies = Vec::with_capacity(RANGE_SCANS);
    let started = Instant::now();
    for _ in 0..RANGE_SCANS {
        let first = random.u64(0..ROWS - width);
        let begun = Instant::now();
        let batches = db
            .scan()
            .filter(Expr::col("id").between(first, first + width - 1))
            .collect()
            .await
            .expect("a range scan");
        latencies.push(begun.elapsed());
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows as u64, width, "the range holds {width} rows");
    }
    Report::per_second("scan 1% range", "scans/s", latencies, started.elapsed())
}

/// arrow-rs reading the user columns (or one of them) of every SST file.
pub fn arrow_rs(files: &[PathBuf], column: Option<usize>) -> usize {
    let mut rows = 0;
    for path in files {
        let file = std::fs::File::open(path).expect("an SST file");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a reader");
        let columns: Vec<usize> = match column {
            Some(column) => vec![column],
            None => (0..5).collect(),
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .expect("a reader");
        rows += reader
            .map(|batch| batch.expect("a batch").num_rows())
            .sum::<usize>();
    }
    rows
}

/// `lookups` gets of random existing keys, after `warm_up` lookups to warm the block cache.
async fn gets(db: &Db, label: &str, warm_up: usize, lookups: usize) -> Report {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next_key = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % ROWS
    };
    for _ in 0..warm_up {
        db.get(next_key())
            .await
            .expect("a lookup")
            .expect("the key exists");
    }
    let mut latencies = Vec::with_capacity(lookups);
    let started = Instant::now();
    for _ in 0..lookups {
        let key = next_key();
        let begun = Instant::now();
        let row = db.get(key).await.expect("a lookup");
        latencies.push(begun.elapsed());
        assert!(
            row.is_some_and(|row| row.num_rows() == 1),
            "key {key} exists"
        );
    }
    Report::per_second(label, "gets/s", latencies, started.elapsed())
}
