//! The physical limits: arrow-rs writing the rows as one zstd Parquet file (level 1, as
//! damselfly's SSTs) and reading it back; a log that appends each commit's rows and calls
//! `fdatasync`.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::measure::{Latencies, Metric, best_rate, mib_on_disk, rows_per_second};
use crate::rows::{arrow60, key, value};
use crate::{COMMIT_ROWS, Params, Workload};

/// Rows per batch read, as damselfly's scans return them.
const READ_BATCH_ROWS: usize = 8192;

pub fn arrow_rs(workload: Workload, folder: &Path, params: &Params) -> Vec<Metric> {
    std::fs::create_dir_all(folder).expect("the folder");
    let path = folder.join("table.parquet");
    match workload {
        Workload::Ingest1k => write(&path, params.rows, 1024),
        Workload::Ingest8k => write(&path, params.rows, 8192),
        Workload::Scan => {
            let files = [path];
            let runs = params.scan_runs;
            smol::block_on(async {
                vec![
                    best_rate("scan rows/s", params.rows, runs, || async {
                        read_files(&files, None)
                    })
                    .await,
                    best_rate("projection rows/s", params.rows, runs, || async {
                        read_files(&files, Some(1))
                    })
                    .await,
                ]
            })
        }
        _ => unreachable!("arrow-rs does not run {workload:?}"),
    }
}

/// `rows` rows written in `batch_rows`-row batches to one synced zstd Parquet file.
fn write(path: &Path, rows: u64, batch_rows: u64) -> Vec<Metric> {
    let batches: Vec<_> = (0..rows)
        .step_by(batch_rows as usize)
        .map(|first| arrow60::rows(first, batch_rows))
        .collect();
    let started = Instant::now();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = File::create(path).expect("a file");
    let mut writer =
        ArrowWriter::try_new(file, arrow60::schema(), Some(properties)).expect("a writer");
    for batch in batches {
        writer.write(&batch).expect("write");
    }
    let file = writer.into_inner().expect("the file closes");
    file.sync_all().expect("fsync");
    let rate = rows_per_second("rows/s", rows, started);
    vec![rate, Metric::new("MiB on disk", mib_on_disk(path))]
}

/// The Parquet files in `folder`, in name order.
pub fn parquet_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .expect("a folder of Parquet files")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "parquet")
        })
        .collect();
    files.sort();
    files
}

/// arrow-rs reading the five table columns (or one of them) of `files`; returns the rows read.
pub fn read_files(files: &[PathBuf], column: Option<usize>) -> u64 {
    let mut rows = 0;
    for path in files {
        let file = File::open(path).expect("a Parquet file");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a reader");
        let columns: Vec<usize> = column.map_or_else(|| (0..5).collect(), |column| vec![column]);
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .expect("a reader");
        rows += reader
            .map(|batch| batch.expect("a batch").num_rows() as u64)
            .sum::<u64>();
    }
    rows
}

/// Each commit appends its 16 rows (key and value bytes, as slatedb stores them) to a log and
/// calls `fdatasync`: what one synchronous committer can do at best on this disk.
pub fn append_fsync(folder: &Path, params: &Params) -> Vec<Metric> {
    std::fs::create_dir_all(folder).expect("the folder");
    let mut log = File::create(folder.join("commits.log")).expect("a file");
    let commits: Vec<Vec<u8>> = (0..params.commits)
        .map(|commit| {
            let first = commit * COMMIT_ROWS;
            (first..first + COMMIT_ROWS)
                .flat_map(|id| [key(id).as_slice(), value(id).as_slice()].concat())
                .collect()
        })
        .collect();
    let mut latencies = Latencies::with_capacity(commits.len());
    let started = Instant::now();
    smol::block_on(async {
        for commit in commits {
            latencies
                .time(async {
                    log.write_all(&commit).expect("append");
                    log.sync_data().expect("fdatasync");
                })
                .await;
        }
    });
    latencies.metrics("commits", started.elapsed())
}
