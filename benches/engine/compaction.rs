//! Sustained ingest with overwrites, with compaction running and with it off, and what
//! compaction leaves behind: write and space amplification, and full scans of the compacted
//! table against arrow-rs reading the live SST files directly.
//!
//! `COMPACTION_ROWS` rows (20,000,000 unless the environment says otherwise) in `BULK_BATCH`-row
//! batches by one writer ([`Overwrites`]). The database keeps one version per key (`retain_versions(1)`), so compaction may
//! drop every overwritten version, and deletes files at once (`gc_grace_period(0)`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damselfly::runtime::Runtime;
use damselfly::{Db, DbBuilder};

use crate::Report;
use crate::data::{Overwrites, RowSource};
use crate::reads::{arrow_rs, best_rate, scan, sst_files};
use crate::writes::{BULK_BATCH, open_with, write_arrow_file};

fn total_rows() -> u64 {
    std::env::var("COMPACTION_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(20_000_000)
}

fn configure(builder: DbBuilder, automatic: bool) -> DbBuilder {
    builder
        .retain_versions(1)
        .gc_grace_period(Duration::ZERO)
        .automatic_compaction(automatic)
}

/// Ingests every batch and flushes; returns rows/s and the number of distinct keys.
async fn ingest(db: &Db) -> (f64, u64) {
    let mut batches = Overwrites::new(BULK_BATCH);
    let count = total_rows().div_ceil(BULK_BATCH);
    let started = Instant::now();
    for index in 0..count {
        db.ingest(batches.batch(index)).await.expect("ingest");
    }
    db.flush().await.expect("flush");
    let rows = count * BULK_BATCH;
    (
        rows as f64 / started.elapsed().as_secs_f64(),
        batches.distinct_keys(),
    )
}

/// Ingest with compaction off: the reference for ingest with compaction on.
pub async fn compaction_off(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let db = open_with(&runtime, folder, |builder| configure(builder, false)).await;
    let (rate, _) = ingest(&db).await;
    let metrics = db.metrics();
    db.close().await.expect("a clean close");
    vec![
        Report::new("overwrite ingest, no compaction", rate, "rows/s"),
        Report::new("  SSTs", metrics.sst_count as f64, "files"),
    ]
}

/// Ingest with compaction on, then `compact()`, amplification, and scans.
pub async fn compaction_on(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let db = open_with(&runtime, folder, |builder| configure(builder, true)).await;
    let (rate, live_rows) = ingest(&db).await;
    let during = db.metrics();
    let started = Instant::now();
    db.compact().await.expect("compact");
    let compact_seconds = started.elapsed().as_secs_f64();
    db.gc().await.expect("a GC sweep");
    let after = db.metrics();
    let files = sst_files(folder);
    assert_eq!(
        files.len() as u64,
        after.sst_count,
        "only live SSTs are left"
    );
    let stored_rows = arrow_rs(&files, Some(0)) as u64;
    let source = RowSource::new(BULK_BATCH);
    let arrow_bytes = write_arrow_file(
        &folder.join("live.parquet"),
        (0..live_rows.div_ceil(BULK_BATCH)).map(|index| source.batch(index)),
    );
    let engine = best_rate(live_rows, || scan(&db, None)).await;
    let reference = best_rate(live_rows, || async { arrow_rs(&files, None) }).await;
    db.close().await.expect("a clean close");
    vec![
        Report::new("overwrite ingest, compaction", rate, "rows/s"),
        Report::new(
            "  level-0 SSTs at the end",
            during.level0_sst_count as f64,
            "files",
        ),
        Report::new("  slowed writes", during.write_slowdowns as f64, "writes"),
        Report::new("  stalled flushes", during.flush_stalls as f64, "flushes"),
        Report::new("  compact() after ingest", compact_seconds, "s"),
        Report::new(
            "  write amplification",
            after.write_amplification(),
            "ratio",
        ),
        Report::new("  compaction jobs", after.compaction_jobs as f64, "jobs"),
        Report::new("  SSTs after compact()", after.sst_count as f64, "files"),
        Report::new(
            "  rows stored / live",
            stored_rows as f64 / live_rows as f64,
            "ratio",
        ),
        Report::new(
            "  SST bytes / arrow-rs live",
            after.sst_bytes as f64 / arrow_bytes as f64,
            "ratio",
        ),
        Report::new("scan after compaction", engine, "rows/s"),
        Report::new("  arrow-rs over the live SSTs", reference, "rows/s"),
        Report::new("  scan / arrow-rs", engine / reference, "ratio"),
    ]
}
