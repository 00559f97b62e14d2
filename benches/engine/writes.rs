//! Write workloads: the fsync baseline, ingest, small commits, the arrow-rs writer baseline, and
//! sustained ingest with flushing.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damselfly::arrow_array::RecordBatch;
use damselfly::runtime::{Runtime, RuntimeExt};
use damselfly::{Db, DbBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::Report;
use crate::data::{ROWS, RowSource, rows, schema};

const INGEST_BATCH: u64 = 1024;
const COMMIT_ROWS: u64 = 16;
/// Rows of the sustained-ingest workload, and the batch size it and the arrow-rs writer use.
const SUSTAINED_ROWS: u64 = 10_000_000;
pub const BULK_BATCH: u64 = 8192;

pub fn fsync_baseline(folder: &Path) -> Report {
    let mut file = std::fs::File::create(folder.join("baseline.log")).expect("a file");
    let block = vec![7u8; 1024];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let begun = Instant::now();
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        latencies.push(begun.elapsed());
    }
    Report::per_second("fsync-baseline", "commits/s", latencies, started.elapsed())
}

/// arrow-rs's `ArrowWriter` writing the rows of `ingest-10m`, made the same way, to one synced
/// zstd Parquet file: the reference for sustained ingest.
pub fn arrow_write(folder: &Path) -> Vec<Report> {
    let source = RowSource::new(BULK_BATCH);
    let batches = SUSTAINED_ROWS.div_ceil(BULK_BATCH);
    let started = Instant::now();
    write_arrow_file(
        &folder.join("arrow-rs.parquet"),
        (0..batches).map(|index| source.batch(index)),
    );
    let rows = batches * BULK_BATCH;
    vec![Report::new(
        "arrow-write",
        rows as f64 / started.elapsed().as_secs_f64(),
        "rows/s",
    )]
}

/// Writes `batches` to a synced zstd Parquet file at `path` with arrow-rs; returns its size.
pub fn write_arrow_file(path: &Path, batches: impl IntoIterator<Item = RecordBatch>) -> u64 {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path).expect("a file");
    let mut writer = ArrowWriter::try_new(file, schema(), Some(properties)).expect("a writer");
    for batch in batches {
        writer.write(&batch).expect("write");
    }
    let file = writer.into_inner().expect("close");
    file.sync_all().expect("sync");
    file.metadata().expect("the file").len()
}

pub async fn open(runtime: &Arc<dyn Runtime>, folder: &Path) -> Db {
    open_with(runtime, folder, |builder| builder).await
}

/// Opens the benchmark's database in `folder` with the defaults changed by `configure`.
pub async fn open_with(
    runtime: &Arc<dyn Runtime>,
    folder: &Path,
    configure: impl FnOnce(DbBuilder) -> DbBuilder,
) -> Db {
    let builder = DbBuilder::from_schema_key_name(schema(), "id")
        .and_then(|builder| builder.on_disk(folder))
        .expect("a valid builder");
    configure(builder)
        .open(Arc::clone(runtime))
        .await
        .expect("the database opens")
}

pub async fn engine_workload(
    workload: &str,
    runtime: Arc<dyn Runtime>,
    folder: &Path,
) -> Vec<Report> {
    let db = open(&runtime, folder).await;
    let report = match workload {
        "ingest" => ingest(&db, &runtime, 1).await,
        "ingest-4" => ingest(&db, &runtime, 4).await,
        "commit-1" => commits(&db, &runtime, 1, 10_000).await,
        "commit-64" => commits(&db, &runtime, 64, 1_000).await,
        _ => panic!("unknown workload {workload}"),
    };
    db.close().await.expect("a clean close");
    vec![Report {
        label: workload.to_owned(),
        ..report
    }]
}

/// `ROWS` rows in `INGEST_BATCH`-row batches by `writers` concurrent writers.
async fn ingest(db: &Db, runtime: &Arc<dyn Runtime>, writers: u64) -> Report {
    let batches: Vec<RecordBatch> = (0..ROWS / INGEST_BATCH)
        .map(|batch| rows(batch * INGEST_BATCH, INGEST_BATCH))
        .collect();
    let per_writer = batches.len() as u64 / writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let db = db.clone();
            let mine: Vec<RecordBatch> = batches
                [(writer * per_writer) as usize..((writer + 1) * per_writer) as usize]
                .to_vec();
            runtime.spawn("ingest", async move {
                for batch in mine {
                    db.ingest(batch).await.expect("ingest");
                }
            })
        })
        .collect();
    drop(batches);
    for task in tasks {
        task.await.expect("the writer finishes");
    }
    Report::new("", ROWS as f64 / started.elapsed().as_secs_f64(), "rows/s")
}

/// `per_committer` commits of `COMMIT_ROWS` rows by each of `committers` concurrent committers.
async fn commits(
    db: &Db,
    runtime: &Arc<dyn Runtime>,
    committers: u64,
    per_committer: u64,
) -> Report {
    let started = Instant::now();
    let tasks: Vec<_> = (0..committers)
        .map(|committer| {
            let db = db.clone();
            let first = committer * per_committer * COMMIT_ROWS;
            let batches: Vec<RecordBatch> = (0..per_committer)
                .map(|commit| rows(first + commit * COMMIT_ROWS, COMMIT_ROWS))
                .collect();
            runtime.spawn("committer", async move {
                let mut latencies = Vec::with_capacity(batches.len());
                for batch in batches {
                    let begun = Instant::now();
                    db.ingest(batch).await.expect("commit");
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("the committer finishes"));
    }
    Report::per_second("", "commits/s", latencies, started.elapsed())
}

/// `SUSTAINED_ROWS` rows in `BULK_BATCH`-row batches by one writer with default options, timed
/// until `flush()` has published the last SST: ingest with the flusher keeping up.
pub async fn ingest_10m(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let source = RowSource::new(BULK_BATCH);
    let db = open(&runtime, folder).await;
    let started = Instant::now();
    let batches = SUSTAINED_ROWS.div_ceil(BULK_BATCH);
    for index in 0..batches {
        db.ingest(source.batch(index)).await.expect("ingest");
    }
    db.flush().await.expect("flush");
    let seconds = started.elapsed().as_secs_f64();
    let rows = batches * BULK_BATCH;
    let metrics = db.metrics();
    db.close().await.expect("a clean close");
    vec![
        Report::new("ingest-10m", rows as f64 / seconds, "rows/s"),
        Report::new("ingest-10m SSTs", metrics.sst_count as f64, "files"),
        Report::new("ingest-10m stalls", metrics.write_stalls as f64, "writes"),
    ]
}
