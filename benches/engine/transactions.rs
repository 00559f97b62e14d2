//! Transactions: throughput under contention, and what a commit's conflict check costs —
//! which must not grow with the table (it consults only the memtables and the SSTs holding
//! commits newer than the transaction's snapshot).
//!
//! - `tx-16-clients`: a table of 1,048,576 rows; 16 concurrent clients each run
//!   `CONTENDED_PER_CLIENT` transactions of `TX_ROWS` upserts of uniformly random keys, committed
//!   with the default `CommitMode::Durable` (synced), and run a transaction again after a
//!   conflict. Reports commits/s and the conflict rate (conflicts per commit attempt).
//! - For tables of 100,000 and 10,000,000 rows (ingested, flushed and compacted; automatic
//!   compaction off, so that no background merge of the whole table competes for the CPU), one
//!   client: `tx-commit` times `LATENCY` commits with the default mode, `tx-commit visible` as
//!   many with `CommitMode::Visible` (the engine's own cost, without the sync);
//!   `tx-commit-after-flush` times commits of transactions that stay open while another commit
//!   is flushed to a new SST, which the check must then consult; `ingest-after-flush` times a
//!   plain ingest of the same rows in the same position, the baseline for the line above.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use damselfly::arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use damselfly::runtime::{Runtime, RuntimeExt};
use damselfly::{CommitMode, Db, ErrorKind};

use crate::Report;
use crate::data::{RowSource, rows};
use crate::writes::{BULK_BATCH, open_with};

/// Rows (keys) per transaction.
const TX_ROWS: u64 = 4;

/// Transactions per client of `tx-16-clients`.
const CONTENDED_PER_CLIENT: u64 = 500;

/// Commits timed per mode and table size.
const LATENCY: usize = 2_000;

/// Transactions timed across a flush per table size.
const ACROSS_FLUSH: usize = 300;

/// The table sizes of the latency figures, in rows.
const TABLES: [u64; 2] = [100_000, 10_000_000];

pub async fn transactions(runtime: Arc<dyn Runtime>, folder: &Path) -> Vec<Report> {
    let mut reports = vec![contended(&runtime, &folder.join("contended")).await];
    for table_rows in TABLES {
        let db = table(
            &runtime,
            &folder.join(format!("table-{table_rows}")),
            table_rows,
        )
        .await;
        let size = if table_rows >= 1_000_000 {
            format!("{}M", table_rows / 1_000_000)
        } else {
            format!("{}k", table_rows / 1_000)
        };
        let mut random = fastrand::Rng::with_seed(table_rows);
        for (label, mode) in [
            ("tx-commit", CommitMode::Durable),
            ("tx-commit visible", CommitMode::Visible),
        ] {
            let mut latencies = Vec::with_capacity(LATENCY);
            let started = Instant::now();
            for _ in 0..LATENCY {
                let batch = random_rows(&mut random, table_rows);
                latencies.push(commit(&db, batch, None, mode).await);
            }
            reports.push(Report::per_second(
                format!("{label} {size}"),
                "commits/s",
                latencies,
                started.elapsed(),
            ));
        }
        for (label, transaction) in [
            ("tx-commit-after-flush", true),
            ("ingest-after-flush", false),
        ] {
            let mut latencies = Vec::with_capacity(ACROSS_FLUSH);
            for _ in 0..ACROSS_FLUSH {
                let batch = random_rows(&mut random, table_rows);
                let other = random_rows(&mut random, table_rows);
                latencies.push(if transaction {
                    commit(&db, batch, Some(other), CommitMode::Visible).await
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

/// A table of `table_rows` rows in `path`, flushed and compacted, automatic compaction off.
async fn table(runtime: &Arc<dyn Runtime>, path: &Path, table_rows: u64) -> Db {
    let db = open_with(runtime, path, |builder| builder.automatic_compaction(false)).await;
    let source = RowSource::new(BULK_BATCH);
    for index in 0..table_rows.div_ceil(BULK_BATCH) {
        let batch = source.batch(index);
        let keep = (table_rows - index * BULK_BATCH).min(BULK_BATCH) as usize;
        db.ingest(batch.slice(0, keep)).await.expect("ingest");
    }
    db.flush().await.expect("flush");
    db.compact().await.expect("compact");
    db
}

/// 16 clients running small transactions over a table of a million rows: commits/s and the
/// conflict rate.
async fn contended(runtime: &Arc<dyn Runtime>, path: &Path) -> Report {
    const CLIENTS: u64 = 16;
    const TABLE_ROWS: u64 = 1 << 20;
    let db = table(runtime, path, TABLE_ROWS).await;
    let conflicts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (db, conflicts) = (db.clone(), Arc::clone(&conflicts));
            let mut random = fastrand::Rng::with_seed(client);
            runtime.spawn("tx-client", async move {
                let mut latencies = Vec::with_capacity(CONTENDED_PER_CLIENT as usize);
                for _ in 0..CONTENDED_PER_CLIENT {
                    let begun = Instant::now();
                    loop {
                        let mut tx = db.begin_transaction().await.expect("begin");
                        tx.upsert(random_rows(&mut random, TABLE_ROWS))
                            .expect("upsert");
                        match tx.commit().await {
                            Ok(_) => break,
                            Err(error) if error.kind() == ErrorKind::Conflict => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(error) => panic!("commit: {error}"),
                        }
                    }
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("the client finishes"));
    }
    let elapsed = started.elapsed();
    let commits = latencies.len() as u64;
    let conflicts = conflicts.load(Ordering::Relaxed);
    db.close().await.expect("a clean close");
    let label = format!(
        "tx-16-clients ({:.3}% conflicts)",
        100.0 * conflicts as f64 / (commits + conflicts) as f64
    );
    Report::per_second(label, "commits/s", latencies, elapsed)
}

/// Runs one transaction upserting `batch` and returns how long its commit (in `mode`) took.
/// With `other`, another commit writes those rows and is flushed while the transaction is open.
async fn commit(
    db: &Db,
    batch: RecordBatch,
    other: Option<RecordBatch>,
    mode: CommitMode,
) -> Duration {
    let mut tx = db.begin_transaction().await.expect("begin");
    tx.upsert(batch).expect("upsert");
    if let Some(other) = other {
        db.ingest(other).await.expect("ingest");
        db.flush().await.expect("flush");
    }
    let begun = Instant::now();
    match tx.commit_with(mode).await {
        Ok(_) => {}
        // The rows `other` wrote may include one of the transaction's: a conflict is an answer.
        Err(error) if error.kind() == ErrorKind::Conflict => {}
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
