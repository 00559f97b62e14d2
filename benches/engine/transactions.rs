//! Transaction commits against tables of different sizes: what a commit's conflict check costs,
//! and whether it grows with the table (it must not — it consults only the memtables and the
//! SSTs holding commits newer than the transaction's snapshot).
//!
//! For each table size: the table is ingested, flushed and compacted (automatic compaction is
//! off, so that no background merge of the whole table competes for the CPU); then one client
//! runs transactions of `TX_ROWS` upserts of random existing keys, committed with
//! `CommitMode::Visible` (so the sync does not hide the engine's own cost). `tx-commit` times
//! plain transactions. `tx-commit-after-flush` times commits of transactions that stay open
//! while another commit is flushed to a new SST, which the check must then consult;
//! `ingest-after-flush` times a plain ingest of the same rows in the same position, the
//! baseline: the difference is what the check costs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damselfly::arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use damselfly::runtime::Runtime;
use damselfly::{CommitMode, Db};

use crate::Report;
use crate::data::{RowSource, rows};
use crate::writes::{BULK_BATCH, open_with};

/// Rows per transaction.
const TX_ROWS: u64 = 16;

/// Plain transactions timed per table size.
const PLAIN: usize = 5_000;

/// Transactions timed across a flush per table size.
const ACROSS_FLUSH: usize = 300;

/// The table sizes, in rows.
const TABLES: [u64; 2] = [1 << 20, 8 << 20];

pub async fn transactions(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let mut reports = Vec::new();
    for table_rows in TABLES {
        let path = folder.join(format!("table-{table_rows}"));
        let db = open_with(&runtime, &path, |builder| {
            builder.automatic_compaction(false)
        })
        .await;
        let source = RowSource::new(BULK_BATCH);
        for index in 0..table_rows / BULK_BATCH {
            db.ingest(source.batch(index)).await.expect("ingest");
        }
        db.flush().await.expect("flush");
        db.compact().await.expect("compact");
        let size = format!("{}M", table_rows >> 20);
        let mut random = fastrand::Rng::with_seed(table_rows);

        let mut latencies = Vec::with_capacity(PLAIN);
        let started = Instant::now();
        for _ in 0..PLAIN {
            let batch = random_rows(&mut random, table_rows);
            latencies.push(commit(&db, batch, None).await);
        }
        reports.push(Report::per_second(
            format!("tx-commit {size}"),
            "commits/s",
            latencies,
            started.elapsed(),
        ));

        for (label, transaction) in [
            ("tx-commit-after-flush", true),
            ("ingest-after-flush", false),
        ] {
            let mut latencies = Vec::with_capacity(ACROSS_FLUSH);
            for _ in 0..ACROSS_FLUSH {
                let batch = random_rows(&mut random, table_rows);
                let other = random_rows(&mut random, table_rows);
                latencies.push(if transaction {
                    commit(&db, batch, Some(other)).await
                } else {
                    ingest_after_flush(&db, batch, other).await
                });
            }
            let spent: Duration = latencies.iter().sum();
            reports.push(Report::per_second(
                format!("{label} {size}"),
                "commits/s",
                latencies,
                spent,
            ));
        }
        db.close().await.expect("a clean close");
    }
    reports
}

/// Runs one transaction upserting `batch` and returns how long its commit took. With `other`,
/// another commit writes those rows and is flushed while the transaction is open.
async fn commit(db: &Db, batch: RecordBatch, other: Option<RecordBatch>) -> Duration {
    let mut tx = db.begin_transaction().await.expect("begin");
    tx.upsert(batch).expect("upsert");
    if let Some(other) = other {
        db.ingest(other).await.expect("ingest");
        db.flush().await.expect("flush");
    }
    let begun = Instant::now();
    match tx.commit_with(CommitMode::Visible).await {
        Ok(_) => {}
        // Two random draws of 16 keys from a million may meet: a conflict is a commit too.
        Err(error) if error.kind() == damselfly::ErrorKind::Conflict => {}
        Err(error) => panic!("commit: {error}"),
    }
    begun.elapsed()
}

/// Ingests `other` and flushes it, then returns how long an ingest of `batch` takes.
async fn ingest_after_flush(db: &Db, batch: RecordBatch, other: RecordBatch) -> Duration {
    db.ingest(other).await.expect("ingest");
    db.flush().await.expect("flush");
    let begun = Instant::now();
    db.ingest(batch).await.expect("ingest");
    begun.elapsed()
}

/// `TX_ROWS` rows of random keys below `table_rows`.
fn random_rows(random: &mut fastrand::Rng, table_rows: u64) -> RecordBatch {
    let template = rows(0, TX_ROWS);
    let mut columns: Vec<ArrayRef> = template.columns().to_vec();
    columns[0] = Arc::new(UInt64Array::from_iter_values(
        (0..TX_ROWS).map(|_| random.u64(0..table_rows)),
    ));
    RecordBatch::try_new(template.schema(), columns).expect("the columns match the schema")
}
