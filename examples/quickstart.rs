//! The main job: create a database in a local folder, ingest 1,000,000 rows, run a filtered
//! scan and point lookups, delete some rows and read the table as it was before (time travel),
//! let two transactions race for one row (the second gets a conflict), flush everything to Parquet SSTs, export a snapshot to a plain Parquet file, close, reopen and
//! check every row.
//!
//! ```sh
//! cargo run --release --example quickstart [folder]
//! ```
//!
//! Without a folder it uses a fresh one under the system's temporary directory and removes it at
//! the end.

// The example measures elapsed wall time and manages its own folder, which the engine may not.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use damselfly::arrow_array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use damselfly::arrow_schema::{DataType, Field, Schema, SchemaRef};
use damselfly::runtime::TokioRuntime;
use damselfly::{DbBuilder, ErrorKind, Expr, Key};

const ROWS: u64 = 1_000_000;
const BATCH_ROWS: u64 = 10_000;
/// Rows the example deletes.
const DELETED: u64 = 1_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("score", DataType::Int64, false),
        Field::new("ratio", DataType::Float64, false),
        Field::new("active", DataType::Boolean, false),
    ]))
}

/// Rows `first..first + count`; every value is a function of the id, so reads can be checked.
fn rows(first: u64, count: u64) -> RecordBatch {
    let ids: Vec<u64> = (first..first + count).collect();
    let users: StringArray = ids
        .iter()
        .map(|id| Some(format!("user-{:06}", id % 100_000)))
        .collect();
    let scores: Int64Array = ids.iter().map(|&id| Some(score(id))).collect();
    let ratios: Float64Array = ids
        .iter()
        .map(|&id| Some(id as f64 / ROWS as f64))
        .collect();
    let active: BooleanArray = ids.iter().map(|id| Some(id % 3 == 0)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(ids)),
            Arc::new(users),
            Arc::new(scores),
            Arc::new(ratios),
            Arc::new(active),
        ],
    )
    .expect("the columns match the schema")
}

fn score(id: u64) -> i64 {
    (id.wrapping_mul(2_654_435_761) % 1000) as i64
}

fn main() -> Result<(), Box<dyn Error>> {
    let (folder, remove_after) = match std::env::args().nth(1) {
        Some(folder) => (PathBuf::from(folder), false),
        None => {
            let folder =
                std::env::temp_dir().join(format!("damselfly-quickstart-{}", std::process::id()));
            (folder, true)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(&folder));
    if remove_after {
        let _ = std::fs::remove_dir_all(&folder);
    }
    outcome
}

async fn run(folder: &std::path::Path) -> Result<(), Box<dyn Error>> {
    println!(
        "damselfly quickstart: {ROWS} rows into {}",
        folder.display()
    );
    let open = || async {
        DbBuilder::from_schema_key_name(schema(), "id")?
            .on_disk(folder)?
            .open(TokioRuntime::current())
            .await
    };
    let db = open().await?;

    let started = Instant::now();
    let mut first = 0;
    while first < ROWS {
        let count = BATCH_ROWS.min(ROWS - first);
        db.ingest(rows(first, count)).await?;
        first += count;
    }
    let elapsed = started.elapsed();
    let metrics = db.metrics();
    println!(
        "ingested {ROWS} rows in {} commits of {BATCH_ROWS} in {:.2?}: {:.0} rows/s, each commit synced \
         ({} WAL syncs, {:.1} MiB of WAL)",
        metrics.commits,
        elapsed,
        ROWS as f64 / elapsed.as_secs_f64(),
        metrics.wal_syncs,
        metrics.wal_bytes_written as f64 / (1 << 20) as f64,
    );

    let started = Instant::now();
    let filter = Expr::col("score")
        .lt(10i64)
        .and(Expr::col("active").eq(true));
    let matches = db
        .scan()
        .filter(filter)
        .projection(&["id", "score"])
        .collect()
        .await?;
    let matched: usize = matches.iter().map(RecordBatch::num_rows).sum();
    let expected = (0..ROWS)
        .filter(|&id| score(id) < 10 && id % 3 == 0)
        .count();
    println!(
        "filtered scan (score < 10 and active) over {ROWS} rows: {matched} rows in {:.2?}",
        started.elapsed()
    );
    check(
        matched == expected,
        format!("the scan found {matched} rows, expected {expected}"),
    )?;

    let started = Instant::now();
    let lookups = 10_000u64;
    for probe in 0..lookups {
        let id = probe.wrapping_mul(7919) % ROWS;
        let row = db
            .get(Key::from(id))
            .await?
            .ok_or(format!("row {id} is missing"))?;
        let found = row
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|scores| scores.value(0));
        check(
            found == Some(score(id)),
            format!("row {id} has the wrong score"),
        )?;
    }
    let elapsed = started.elapsed();
    println!(
        "{lookups} point lookups in {elapsed:.2?}: {:.1} µs each",
        elapsed.as_secs_f64() * 1e6 / lookups as f64
    );

    // Delete the first rows, then read the table as it was just before (time travel).
    let before_delete = db.list_versions(1).await?[0].timestamp;
    db.ingest_with_tombstones(rows(0, DELETED), vec![true; DELETED as usize])
        .await?;
    let now = row_count(db.scan().projection(&["id"]).collect().await?);
    let then_snapshot = db.snapshot_at(before_delete).await?;
    let then = row_count(then_snapshot.scan().projection(&["id"]).collect().await?);
    println!(
        "deleted {DELETED} rows: {now} rows now, {then} as of commit {before_delete} (time travel)"
    );
    check(
        now == ROWS - DELETED && then == ROWS,
        format!(
            "expected {} rows now and {ROWS} before the delete",
            ROWS - DELETED
        ),
    )?;

    // Two transactions read the same row and write it back: the first to commit wins; the
    // other gets a conflict and applies nothing.
    let id = ROWS - 1;
    let mut first = db.begin_transaction().await?;
    let mut second = db.begin_transaction().await?;
    for tx in [&mut first, &mut second] {
        let row = tx
            .get(Key::from(id))
            .await?
            .ok_or(format!("row {id} is missing"))?;
        tx.upsert(row)?;
    }
    let committed = first.commit().await?;
    let refused = second.commit().await;
    println!(
        "two transactions rewrote row {id}: the first committed at {committed}; the second: {}",
        match &refused {
            Ok(at) => format!("committed at {at}"),
            Err(error) => error.to_string(),
        }
    );
    check(
        matches!(&refused, Err(error) if error.kind() == ErrorKind::Conflict),
        "the second transaction should have met a conflict".to_owned(),
    )?;

    let started = Instant::now();
    db.flush().await?;
    let metrics = db.metrics();
    println!(
        "flushed to {} Parquet SSTs ({:.1} MiB) in {:.2?}",
        metrics.sst_count,
        metrics.sst_bytes as f64 / (1 << 20) as f64,
        started.elapsed()
    );

    let started = Instant::now();
    let export = folder.join("export.parquet");
    let _ = std::fs::remove_file(&export);
    let summary = then_snapshot.export_parquet(&export).await?;
    println!(
        "exported the table as of commit {before_delete} to {} ({} rows, {:.1} MiB) in {:.2?}; \
         DuckDB, pyarrow or polars read it as is",
        export.display(),
        summary.rows,
        summary.bytes as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    check(
        summary.rows == ROWS,
        format!("the export holds {} rows", summary.rows),
    )?;
    db.close().await?;

    let started = Instant::now();
    let db = open().await?;
    let replayed = db.metrics().replayed_rows;
    println!(
        "reopened in {:.2?}, replaying {replayed} rows from the write-ahead log; the others are in SSTs",
        started.elapsed()
    );
    let mut count = DELETED;
    for batch in db.scan().collect().await? {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or("id is not UInt64")?;
        for id in ids.values().iter() {
            check(*id == count, format!("expected row {count}, found {id}"))?;
            count += 1;
        }
    }
    check(
        count == ROWS,
        format!("found rows up to {count} after reopening, expected {ROWS}"),
    )?;
    println!("checked all {} rows after reopening: ok", ROWS - DELETED);

    // The reopened database takes writes as before.
    db.ingest(rows(ROWS, BATCH_ROWS)).await?;
    let found = db.get(Key::from(ROWS + BATCH_ROWS - 1)).await?;
    check(
        found.is_some(),
        "a write after reopening is missing".to_owned(),
    )?;
    let metrics = db.metrics();
    println!(
        "wrote {BATCH_ROWS} more rows after reopening; the memtables hold {} rows in {:.1} MiB",
        metrics.memtable_rows,
        metrics.memtable_bytes as f64 / (1 << 20) as f64
    );
    db.close().await?;
    Ok(())
}

fn row_count(batches: Vec<RecordBatch>) -> u64 {
    batches.iter().map(|batch| batch.num_rows() as u64).sum()
}

fn check(condition: bool, message: String) -> Result<(), Box<dyn Error>> {
    if condition {
        Ok(())
    } else {
        Err(message.into())
    }
}
