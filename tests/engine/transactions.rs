//! Transactions through the public API: a transaction reads its snapshot overlaid with its own
//! writes; its commit is one atomic commit; it fails with a conflict, and applies nothing, when a
//! key it writes was committed after its snapshot — whether that version is in a memtable, an
//! SST, or was compacted (a delete included); aborted and dropped transactions leave no trace.

use std::sync::Arc;

use crate::common::*;
use damselfly::runtime::RuntimeExt;
use damselfly::storage::MemoryStorage;
use damselfly::{CommitMode, Db, ErrorKind, Expr, Key};

/// The ids and scores of `batches`.
fn pairs(batches: &[damselfly::arrow_array::RecordBatch]) -> Vec<(u64, i64)> {
    u64_column(batches, "id")
        .into_iter()
        .zip(i64_column(batches, "score"))
        .collect()
}

/// The score of the row with `id`, or `None`.
async fn score_in(db: &Db, id: u64) -> Result<Option<i64>, damselfly::Error> {
    let row = db.get(id).await?;
    Ok(row.map(|row| i64_column(&[row], "score")[0]))
}

runtime_test!(
    async fn reads_see_the_snapshot_overlaid_with_the_transactions_own_writes(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime).await?;
        // Keys 0..20 in an SST, keys 20..30 in the memtable.
        db.ingest(events(&(0..20).collect::<Vec<_>>(), 0)).await?;
        db.flush().await?;
        db.ingest(events(&(20..30).collect::<Vec<_>>(), 1)).await?;

        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[5, 25, 40], 7))?;
        tx.delete(6u64)?;
        tx.delete(Key::from(26u64))?;
        tx.upsert(events(&[5], 8))?; // the later write of a key wins
        tx.delete(99u64)?; // a key that does not exist

        // Its own writes, over keys in SSTs and in the memtable.
        let score = |row: Option<damselfly::arrow_array::RecordBatch>| {
            row.map(|row| i64_column(&[row], "score")[0])
        };
        assert_eq!(score(tx.get(5u64).await?), Some(58));
        assert_eq!(score(tx.get(6u64).await?), None);
        assert_eq!(score(tx.get(25u64).await?), Some(257));
        assert_eq!(score(tx.get(26u64).await?), None);
        assert_eq!(score(tx.get(40u64).await?), Some(407));
        assert_eq!(score(tx.get(7u64).await?), Some(70), "the snapshot's row");
        assert_eq!(score(tx.get(99u64).await?), None);

        let mut expected: Vec<(u64, i64)> = (0..20).map(|id| (id, id as i64 * 10)).collect();
        expected.extend((20..30).map(|id| (id, id as i64 * 10 + 1)));
        expected.retain(|&(id, _)| id != 6 && id != 26);
        for (id, score) in &mut expected {
            match id {
                5 => *score = 58,
                25 => *score = 257,
                _ => {}
            }
        }
        expected.push((40, 407));
        assert_eq!(pairs(&tx.scan().collect().await?), expected);

        // Filters, projection and limit apply to the merged rows.
        let filtered = tx
            .scan()
            .filter(Expr::col("score").ge(200i64))
            .projection(&["id"])
            .limit(3)
            .collect()
            .await?;
        assert_eq!(u64_column(&filtered, "id"), [20, 21, 22]);
        assert_eq!(filtered[0].num_columns(), 1);
        let range = tx
            .scan()
            .filter(Expr::col("id").between(4u64, 7u64))
            .collect()
            .await?;
        assert_eq!(pairs(&range), [(4, 40), (5, 58), (7, 70)]);
        let point = tx.scan().filter(Expr::col("id").eq(25u64)).collect().await?;
        assert_eq!(pairs(&point), [(25, 257)]);

        // A scan sees the writes staged before it was created, none after.
        let before = tx.scan();
        tx.upsert(events(&[41], 0))?;
        let ids = u64_column(&before.collect().await?, "id");
        assert!(!ids.contains(&41), "a later write leaked into the scan");
        assert!(u64_column(&tx.scan().collect().await?, "id").contains(&41));

        // Nobody else sees any of it before the commit.
        assert_eq!(score_in(&db, 5).await?, Some(50));
        assert_eq!(score_in(&db, 40).await?, None);
        assert_eq!(db.metrics().live_transactions, 1);
        tx.commit().await?;
        assert_eq!(score_in(&db, 5).await?, Some(58));
        assert_eq!(score_in(&db, 6).await?, None);
        assert_eq!(score_in(&db, 41).await?, Some(410));
        assert_eq!(db.metrics().live_transactions, 0);
        db.close().await
    }
);

runtime_test!(
    async fn a_commit_is_one_atomic_version(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let before = db.ingest(events(&(0..100).collect::<Vec<_>>(), 0)).await?;
        let held = db.begin_snapshot().await?;
        let mut tx = db.begin_transaction().await?;
        assert_eq!(tx.timestamp(), before);
        tx.upsert(events(&(50..150).collect::<Vec<_>>(), 1))?;
        for id in 0..10u64 {
            tx.delete(id)?;
        }
        let commits = db.metrics().commits;
        let at = tx.commit().await?;
        assert!(at > before);
        let metrics = db.metrics();
        assert_eq!(metrics.commits, commits + 1, "one commit");
        assert_eq!(metrics.transactions_committed, 1);
        assert_eq!(metrics.rows_committed, 100 + 110);

        let after = pairs(&db.snapshot_at(at).await?.scan().collect().await?);
        let mut expected: Vec<(u64, i64)> = (10..50).map(|id| (id, id as i64 * 10)).collect();
        expected.extend((50..150).map(|id| (id, id as i64 * 10 + 1)));
        assert_eq!(after, expected, "every write at the commit's timestamp");
        let older = db.snapshot_at(damselfly::Timestamp::new(at.get() - 1)).await?;
        assert_eq!(row_count(&older.scan().collect().await?), 100, "none before it");
        assert_eq!(row_count(&held.scan().collect().await?), 100);
        db.close().await
    }
);

runtime_test!(
    async fn a_key_written_after_the_snapshot_conflicts_in_a_memtable_or_an_sst(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        // Time travel keeps only the newest version: compaction may drop everything older.
        let db = manual_compaction(&storage).retain_versions(1).open(runtime).await?;
        db.ingest(events(&[1, 2, 3], 0)).await?;

        // The newer version is still in the memtable.
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[1, 2], 5))?;
        db.ingest(events(&[2], 9)).await?;
        assert_error(tx.commit().await, ErrorKind::Conflict, "key (2)");
        assert_eq!(score_in(&db, 1).await?, Some(10), "nothing of it applied");
        assert_eq!(score_in(&db, 2).await?, Some(29));

        // The newer version was flushed to an SST before the commit.
        let mut tx = db.begin_transaction().await?;
        tx.delete(3u64)?;
        db.ingest(events(&[3], 9)).await?;
        db.flush().await?;
        assert_error(tx.commit().await, ErrorKind::Conflict, "key (3)");
        assert_eq!(score_in(&db, 3).await?, Some(39));

        // A newer delete, flushed and compacted down to the bottom level, where deletes are
        // dropped — but not while a transaction may need it.
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[1], 7))?;
        db.ingest_with_tombstones(events(&[1], 0), vec![true]).await?;
        db.flush().await?;
        db.compact().await?;
        assert_eq!(db.metrics().level0_sst_count, 0);
        assert_error(tx.commit().await, ErrorKind::Conflict, "key (1)");
        assert_eq!(score_in(&db, 1).await?, None, "the delete stands");
        assert_eq!(db.metrics().transaction_conflicts, 3);

        // Keys nobody else wrote commit, whatever happened around them.
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[7], 1))?;
        db.ingest(events(&[8], 1)).await?;
        db.flush().await?;
        tx.commit().await?;
        assert_eq!(score_in(&db, 7).await?, Some(71));
        db.close().await
    }
);

runtime_test!(
    async fn the_first_committer_wins(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2], 0)).await?;
        let mut first = db.begin_transaction().await?;
        let mut second = db.begin_transaction().await?;
        let mut disjoint = db.begin_transaction().await?;
        let reader = db.begin_transaction().await?;
        first.upsert(events(&[1], 1))?;
        second.delete(1u64)?;
        second.upsert(events(&[2], 2))?;
        disjoint.upsert(events(&[3], 3))?;
        first.commit().await?;
        assert_error(second.commit().await, ErrorKind::Conflict, "key (1)");
        disjoint.commit().await?;
        // Reading is never a conflict: a transaction without writes commits nothing.
        assert_eq!(score_in(&db, 1).await?, Some(11));
        let reader_at = reader.timestamp();
        assert_eq!(reader.commit().await?, reader_at);
        assert_eq!(
            pairs(&db.scan().collect().await?),
            [(1, 11), (2, 20), (3, 33)]
        );
        db.close().await
    }
);

runtime_test!(
    async fn aborted_and_dropped_transactions_leave_no_trace(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2], 0)).await?;
        let versions = db.list_versions(100).await?;

        let mut aborted = db.begin_transaction().await?;
        aborted.upsert(events(&[1, 5], 1))?;
        aborted.delete(2u64)?;
        aborted.abort();
        {
            let mut dropped = db.begin_transaction().await?;
            dropped.upsert(events(&[2, 6], 1))?;
        }
        assert_eq!(pairs(&db.scan().collect().await?), [(1, 10), (2, 20)]);
        assert_eq!(db.list_versions(100).await?, versions);
        let metrics = db.metrics();
        assert_eq!(metrics.live_transactions, 0);
        assert_eq!(metrics.transactions_committed, 0);

        // And they conflict with nobody.
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[1, 2], 3))?;
        tx.commit().await?;
        assert_eq!(pairs(&db.scan().collect().await?), [(1, 13), (2, 23)]);
        db.close().await
    }
);

runtime_test!(
    async fn a_visible_commit_is_readable_at_once_and_durable_after_close(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = events_builder()
            .on_storage(storage.clone())
            .open(runtime.clone())
            .await?;
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[1, 2], 4))?;
        let at = tx.commit_with(CommitMode::Visible).await?;
        assert_eq!(db.metrics().visible_timestamp, at);
        assert_eq!(score_in(&db, 2).await?, Some(24));
        // A durable commit after it makes it durable too.
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[3], 4))?;
        let durable = tx.commit().await?;
        assert!(db.metrics().durable_timestamp >= durable);
        db.close().await?;

        let db = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(
            pairs(&db.scan().collect().await?),
            [(1, 14), (2, 24), (3, 34)]
        );
        db.close().await
    }
);

runtime_test!(
    async fn bad_writes_are_refused_and_stage_nothing(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[1], 1))?;

        let other = damselfly::arrow_array::RecordBatch::try_new(
            Arc::new(damselfly::arrow_schema::Schema::new(vec![
                damselfly::arrow_schema::Field::new(
                    "id",
                    damselfly::arrow_schema::DataType::Utf8,
                    false,
                ),
            ])),
            vec![Arc::new(damselfly::arrow_array::StringArray::from(vec!["x"]))],
        )
        .expect("a batch");
        assert_error(tx.upsert(other), ErrorKind::InvalidInput, "id");
        assert_error(tx.delete("seven"), ErrorKind::InvalidInput, "id");
        assert_error(
            tx.delete(Key::new(vec![1u64.into(), 2u64.into()])),
            ErrorKind::InvalidInput,
            "key",
        );
        assert_error(
            tx.get(damselfly::Value::Null).await,
            ErrorKind::InvalidInput,
            "NULL",
        );
        tx.commit().await?;
        assert_eq!(pairs(&db.scan().collect().await?), [(1, 11)]);

        let mut late = db.begin_transaction().await?;
        late.upsert(events(&[2], 1))?;
        db.close().await?;
        assert_error(late.commit().await, ErrorKind::Closed, "closed");
        assert_error(db.begin_transaction().await, ErrorKind::Closed, "closed");
        Ok(())
    }
);

runtime_test!(
    async fn a_transaction_holds_its_snapshot_across_flush_compaction_and_gc(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage)
            .retain_versions(1)
            .open(runtime)
            .await?;
        db.ingest(events(&[1, 2, 3], 0)).await?;
        db.flush().await?;
        let mut tx = db.begin_transaction().await?;
        tx.upsert(events(&[4], 0))?;
        db.ingest(events(&[1, 2, 3], 5)).await?;
        db.ingest_with_tombstones(events(&[2], 0), vec![true])
            .await?;
        db.flush().await?;
        db.compact().await?;
        db.gc().await?;
        assert_eq!(
            pairs(&tx.scan().collect().await?),
            [(1, 10), (2, 20), (3, 30), (4, 40)]
        );
        assert_eq!(pairs(&db.scan().collect().await?), [(1, 15), (3, 35)]);
        tx.commit().await?;
        assert_eq!(
            pairs(&db.scan().collect().await?),
            [(1, 15), (3, 35), (4, 40)]
        );
        db.close().await
    }
);

/// Accounts of the bank: ids `0..ACCOUNTS`, balances in `score`.
const ACCOUNTS: u64 = 16;
const OPENING_BALANCE: i64 = 1_000;
const CLIENTS: u64 = 6;

/// The sum of the balances `snapshot` sees, after checking every account is there and none is
/// overdrawn: a snapshot that saw half a transfer would see money made or lost.
async fn audit(snapshot: &damselfly::Snapshot) -> Result<i64, damselfly::Error> {
    let accounts = pairs(&snapshot.scan().collect().await?);
    assert_eq!(
        accounts.len() as u64,
        ACCOUNTS,
        "every account, at {snapshot:?}"
    );
    assert!(
        accounts.iter().all(|&(_, balance)| balance >= 0),
        "an overdrawn account at {snapshot:?}: {accounts:?}"
    );
    Ok(accounts.iter().map(|&(_, balance)| balance).sum())
}

/// Moves a random amount between two random accounts in one transaction, running it again after
/// each conflict. Returns the conflicts it met.
async fn transfer(db: &Db, random: &mut fastrand::Rng) -> Result<u64, damselfly::Error> {
    let mut conflicts = 0;
    loop {
        let from = random.u64(0..ACCOUNTS);
        let to = (from + random.u64(1..ACCOUNTS)) % ACCOUNTS;
        let amount = random.i64(1..=100);
        let mut tx = db.begin_transaction().await?;
        let balance = |row: Option<damselfly::arrow_array::RecordBatch>| {
            row.map(|row| i64_column(&[row], "score")[0])
                .expect("every account exists")
        };
        let from_balance = balance(tx.get(from).await?);
        let to_balance = balance(tx.get(to).await?);
        if from_balance < amount {
            tx.abort();
            return Ok(conflicts);
        }
        tx.upsert(events_scored(
            &[from, to],
            &[from_balance - amount, to_balance + amount],
        ))?;
        let mode = if random.bool() {
            CommitMode::Durable
        } else {
            CommitMode::Visible
        };
        match tx.commit_with(mode).await {
            Ok(_) => return Ok(conflicts),
            Err(error) if error.kind() == ErrorKind::Conflict => conflicts += 1,
            Err(error) => return Err(error),
        }
    }
}

/// `CLIENTS` clients doing `transfers` transfers each, concurrently; returns their handles.
fn spawn_clients(
    db: &Db,
    runtime: &Rt,
    transfers: u64,
    done: &Arc<std::sync::atomic::AtomicU64>,
) -> Vec<damselfly::runtime::JoinHandle<Result<u64, damselfly::Error>>> {
    (0..CLIENTS)
        .map(|client| {
            let (db, done) = (db.clone(), Arc::clone(done));
            let mut random = fastrand::Rng::with_seed(client + 100 * transfers);
            runtime.spawn("bank-client", async move {
                let mut conflicts = 0;
                for _ in 0..transfers {
                    conflicts += transfer(&db, &mut random).await?;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(conflicts)
            })
        })
        .collect()
}

runtime_test!(
    async fn bank_transfers_conserve_the_total_through_conflicts_flushes_and_a_crash(runtime) {
        use std::sync::atomic::{AtomicU64, Ordering};

        let storage = MemoryStorage::new();
        let (process, first) = Process::on(&storage);
        // Small memtables: transfers race flushes, and conflicts are found in SSTs too.
        let db = events_builder()
            .on_storage(process)
            .memtable_bytes(32 << 10)
            .open(runtime.clone())
            .await?;
        let accounts: Vec<u64> = (0..ACCOUNTS).collect();
        db.ingest(events_scored(&accounts, &[OPENING_BALANCE; ACCOUNTS as usize]))
            .await?;
        let total = OPENING_BALANCE * ACCOUNTS as i64;

        // Concurrent transfers, audited through snapshots all along.
        let done = Arc::new(AtomicU64::new(0));
        let clients = spawn_clients(&db, &runtime, 40, &done);
        let mut audits = 0;
        while done.load(Ordering::SeqCst) < CLIENTS * 40 {
            assert_eq!(audit(&db.begin_snapshot().await?).await?, total);
            audits += 1;
            futures_lite::future::yield_now().await;
        }
        let mut conflicts = 0;
        for client in clients {
            conflicts += client.await??;
        }
        let metrics = db.metrics();
        assert_eq!(metrics.transaction_conflicts, conflicts);
        assert!(audits > 0);
        assert_eq!(audit(&db.begin_snapshot().await?).await?, total);

        // More transfers, and the machine loses power in the middle of them.
        let done = Arc::new(AtomicU64::new(0));
        let clients = spawn_clients(&db, &runtime, 1_000, &done);
        while done.load(Ordering::SeqCst) < 50 {
            futures_lite::future::yield_now().await;
        }
        first.crash();
        storage.simulate_power_loss();
        for client in clients {
            if let Err(error) = client.await? {
                assert!(
                    matches!(error.kind(), ErrorKind::Io | ErrorKind::Closed),
                    "{error}"
                );
            }
        }
        drop(db);

        // Whatever the power loss took, it took whole transfers.
        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .open(runtime.clone())
            .await?;
        assert_eq!(audit(&db.begin_snapshot().await?).await?, total);
        let done = Arc::new(AtomicU64::new(0));
        for client in spawn_clients(&db, &runtime, 10, &done) {
            client.await??;
        }
        assert_eq!(audit(&db.begin_snapshot().await?).await?, total);
        db.close().await
    }
);
