//! Compaction and garbage collection through the public API: reads, snapshots and time travel
//! are the same before and after compaction; versions outside the retention and deletes at the
//! bottom level really go; the GC sweeper deletes exactly the files nothing reaches (never one
//! a snapshot holds), orphans included; a custom executor runs every job through the port.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use damselfly::compaction::{
    CompactionExecutor, CompactionJob, CompactionOptions, CompactionOutcome, LocalExecutor,
};
use damselfly::runtime::BoxFuture;
use damselfly::storage::{MemoryStorage, Storage};
use damselfly::{Db, Key, Timestamp};

/// Ten rounds over keys 0..100: round r upserts the keys `k % 10 == r` with version r and
/// deletes the keys `k % 5 == (r + 1) % 5` (some written before, some never); a flush after
/// every round. The last rounds' keys survive. Returns the commit timestamps.
async fn ten_rounds(db: &Db) -> Result<Vec<Timestamp>, damselfly::Error> {
    let mut timestamps = Vec::new();
    for round in 0..10u64 {
        let ids: Vec<u64> = (0..100).filter(|id| id % 10 == round).collect();
        timestamps.push(db.ingest(events(&ids, round as i64)).await?);
        let doomed: Vec<u64> = (0..100).filter(|id| id % 5 == (round + 1) % 5).collect();
        let tombstones = vec![true; doomed.len()];
        timestamps.push(
            db.ingest_with_tombstones(events(&doomed, 99), tombstones)
                .await?,
        );
        db.flush().await?;
    }
    Ok(timestamps)
}

/// The ids and scores a read at every timestamp returns.
async fn every_version(
    db: &Db,
    timestamps: &[Timestamp],
) -> Result<Vec<Vec<(u64, i64)>>, damselfly::Error> {
    let mut versions = Vec::new();
    for &timestamp in timestamps {
        let batches = db.snapshot_at(timestamp).await?.scan().collect().await?;
        versions.push(
            u64_column(&batches, "id")
                .into_iter()
                .zip(i64_column(&batches, "score"))
                .collect(),
        );
    }
    Ok(versions)
}

/// The ids of the SST files on storage.
async fn sst_files(storage: &MemoryStorage) -> Result<BTreeSet<String>, damselfly::Error> {
    Ok(storage
        .list("sst")
        .await?
        .into_iter()
        .map(|file| file.path)
        .collect())
}

runtime_test!(
    async fn reads_snapshots_and_time_travel_are_the_same_after_compaction(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime.clone()).await?;
        let timestamps = ten_rounds(&db).await?;
        let before = every_version(&db, &timestamps).await?;
        let held = db.begin_snapshot().await?;
        let held_rows = held.scan().collect().await?;
        assert_eq!(db.metrics().level0_sst_count, 10);

        db.compact().await?;
        let metrics = db.metrics();
        assert_eq!(metrics.level0_sst_count, 0, "level 0 was merged: {metrics:?}");
        assert!(metrics.compaction_jobs >= 1);
        assert_eq!(every_version(&db, &timestamps).await?, before);
        assert_eq!(held.scan().collect().await?, held_rows, "a snapshot is stable across compaction");
        for id in [0u64, 5, 7, 99] {
            let expected = held.get(Key::from(id)).await?;
            assert_eq!(db.get(Key::from(id)).await?, expected, "key {id}");
        }
        drop(held);

        db.close().await?;
        let db = manual_compaction(&storage).open(runtime).await?;
        assert_eq!(every_version(&db, &timestamps).await?, before, "after reopening");
        db.close().await
    }
);

runtime_test!(
    async fn versions_beyond_the_retention_and_bottom_deletes_disappear(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).retain_versions(1).open(runtime.clone()).await?;
        let timestamps = ten_rounds(&db).await?;
        let newest = every_version(&db, &timestamps[timestamps.len() - 1..]).await?;
        db.compact().await?;
        let metrics = db.metrics();
        let live = newest[0].len() as u64;
        assert!(live > 0 && metrics.compaction_rows_read > 2 * live, "{metrics:?}");
        assert_eq!(metrics.level0_sst_count, 0);
        assert_eq!(
            metrics.compaction_rows_written, live,
            "only the newest version of each live key is left; no delete: {metrics:?}"
        );
        assert_eq!(every_version(&db, &timestamps[timestamps.len() - 1..]).await?, newest);
        assert_error(
            db.snapshot_at(timestamps[0]).await,
            damselfly::ErrorKind::InvalidInput,
            "older than the retention keeps",
        );
        db.close().await
    }
);

runtime_test!(
    async fn gc_deletes_replaced_files_only_once_no_snapshot_holds_them(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime.clone()).await?;
        ten_rounds(&db).await?;
        let flushed = sst_files(&storage).await?;
        let held = db.begin_snapshot().await?;
        let held_rows = held.scan().collect().await?;
        db.compact().await?;

        let report = db.gc().await?;
        assert!(report.deleted.is_empty(), "the snapshot holds every input: {report:?}");
        let waiting: BTreeSet<String> = report.waiting.iter().cloned().collect();
        assert_eq!(waiting, flushed, "every replaced file waits for the snapshot");
        assert_eq!(held.scan().collect().await?, held_rows);

        drop(held);
        let dry = db.gc_dry_run().await?;
        assert_eq!(dry.deletable.iter().cloned().collect::<BTreeSet<_>>(), flushed);
        assert_eq!(sst_files(&storage).await?.intersection(&flushed).count(), flushed.len(), "a dry run deletes nothing");
        let report = db.gc().await?;
        assert_eq!(report.deleted.iter().cloned().collect::<BTreeSet<_>>(), flushed);
        let left = sst_files(&storage).await?;
        assert!(left.is_disjoint(&flushed), "the replaced files are gone: {left:?}");
        assert_eq!(left.len() as u64, db.metrics().sst_count, "exactly the live files are left");
        assert_eq!(db.metrics().gc_files_deleted, flushed.len() as u64);
        db.close().await
    }
);

runtime_test!(
    async fn orphans_left_by_an_earlier_writer_are_collected_after_the_grace_period(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime.clone()).await?;
        db.ingest(events(&[1, 2, 3], 0)).await?;
        db.flush().await?;
        let live = sst_files(&storage).await?;
        db.close().await?;
        // A file an earlier writer (epoch 1) wrote and never published: a crashed flush.
        let orphan = format!("sst/{:020}.parquet", (1u64 << 32) + 1000);
        storage.put(&orphan, bytes::Bytes::from_static(b"never published")).await?;

        let db = manual_compaction(&storage)
            .gc_grace_period(Duration::from_secs(3600))
            .open(runtime.clone())
            .await?;
        let report = db.gc().await?;
        assert_eq!(report.waiting, std::slice::from_ref(&orphan), "within the grace period the orphan waits");
        db.close().await?;

        let db = manual_compaction(&storage).open(runtime).await?;
        let report = db.gc().await?;
        assert_eq!(report.deleted, [orphan]);
        assert_eq!(sst_files(&storage).await?, live);
        assert_eq!(ids_and_scores(&db).await?, [(1, 10), (2, 20), (3, 30)]);
        db.close().await
    }
);

/// Runs every job through JSON and the in-process executor, counting them.
#[derive(Debug)]
struct Counting {
    local: LocalExecutor,
    jobs: Arc<AtomicU64>,
}

impl CompactionExecutor for Counting {
    fn execute(
        &self,
        job: CompactionJob,
    ) -> BoxFuture<'static, Result<CompactionOutcome, damselfly::compaction::CompactionError>> {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        let json = serde_json::to_string(&job).expect("a job serialises");
        let job: CompactionJob = serde_json::from_str(&json).expect("and deserialises");
        let local = self.local.clone();
        Box::pin(async move {
            let outcome = local.run(job).await?;
            let json = serde_json::to_string(&outcome).expect("an outcome serialises");
            Ok(serde_json::from_str(&json).expect("and deserialises"))
        })
    }
}

runtime_test!(
    async fn a_custom_executor_runs_every_job_through_the_port(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let jobs = Arc::new(AtomicU64::new(0));
        let counter = jobs.clone();
        let db = manual_compaction(&storage)
            .compaction_executor(move |local| {
                Arc::new(Counting { local, jobs: counter.clone() }) as Arc<dyn CompactionExecutor>
            })
            .open(runtime)
            .await?;
        let timestamps = ten_rounds(&db).await?;
        let before = every_version(&db, &timestamps).await?;
        db.compact().await?;
        let metrics = db.metrics();
        assert!(jobs.load(Ordering::SeqCst) >= 1);
        assert_eq!(metrics.compaction_jobs, jobs.load(Ordering::SeqCst));
        assert_eq!(every_version(&db, &timestamps).await?, before);
        db.close().await
    }
);

runtime_test!(
    async fn automatic_compaction_keeps_level0_small(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).automatic_compaction(true).open(runtime).await?;
        let timestamps = ten_rounds(&db).await?;
        let before = every_version(&db, &timestamps).await?;
        db.compact().await?;
        let metrics = db.metrics();
        assert!(metrics.level0_sst_count < 2, "{metrics:?}");
        assert!(metrics.compaction_jobs >= 1);
        assert_eq!(every_version(&db, &timestamps).await?, before);
        db.close().await
    }
);

runtime_test!(
    async fn a_full_level0_found_at_open_is_compacted_so_flushes_go_on(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime.clone()).await?;
        ten_rounds(&db).await?;
        db.close().await?;
        // Level 0 holds ten files, far past the stop threshold: the first flush waits until
        // the compactor, which nothing but the open wakes, has made room.
        let db = manual_compaction(&storage)
            .automatic_compaction(true)
            .level0_write_thresholds(2, 2)
            .open(runtime)
            .await?;
        db.ingest(events(&[1000], 0)).await?;
        db.flush().await?;
        let metrics = db.metrics();
        assert!(metrics.compaction_jobs >= 1, "{metrics:?}");
        assert!(metrics.level0_sst_count <= 2, "{metrics:?}");
        assert_eq!(db.get(Key::from(1000u64)).await?.map(|row| row.num_rows()), Some(1));
        db.close().await
    }
);

runtime_test!(
    async fn write_thresholds_below_what_compaction_is_due_at_are_refused(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let refused = manual_compaction(&storage)
            .level0_write_thresholds(1, 1)
            .open(runtime.clone())
            .await;
        assert_error(refused, damselfly::ErrorKind::InvalidInput, "stop at least 2");
        let refused = manual_compaction(&storage)
            .compaction(CompactionOptions {
                max_input_files: 1,
                ..CompactionOptions::default()
            })
            .open(runtime)
            .await;
        assert_error(refused, damselfly::ErrorKind::InvalidInput, "max_input_files");
        Ok(())
    }
);

runtime_test!(
    async fn overwrites_across_many_flushes_and_compactions_read_once_per_key(runtime) {
        let db = events_builder()
            .in_memory()
            .memtable_bytes(64 << 10)
            .retain_versions(1)
            .open(runtime)
            .await?;
        let mut random = fastrand::Rng::with_seed(sim_seed());
        let mut next = 0u64;
        for _ in 0..60 {
            let mut ids: Vec<u64> = (next..next + 400).collect();
            next += 400;
            ids.extend((0..100).map(|_| random.u64(0..next)));
            db.ingest(events(&ids, 0)).await?;
        }
        db.flush().await?;
        for round in 0..2 {
            let ids = u64_column(&db.scan().collect().await?, "id");
            assert_eq!(ids, (0..next).collect::<Vec<_>>(), "round {round}: one row per key, in order");
            db.compact().await?;
        }
        db.close().await
    }
);

runtime_test!(
    async fn a_running_scan_keeps_its_files_through_compaction_and_gc(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = manual_compaction(&storage).open(runtime).await?;
        ten_rounds(&db).await?;
        let expected = ids_and_scores(&db).await?;
        let mut stream = db.scan().batch_rows(7).stream().await?;
        let first = futures_lite::StreamExt::next(&mut stream).await.expect("a first batch")?;
        db.compact().await?;
        let report = db.gc().await?;
        assert!(report.deleted.is_empty(), "the scan holds the replaced files: {report:?}");
        let mut batches = vec![first];
        while let Some(batch) = futures_lite::StreamExt::next(&mut stream).await {
            batches.push(batch?);
        }
        let seen: Vec<(u64, i64)> = u64_column(&batches, "id")
            .into_iter()
            .zip(i64_column(&batches, "score"))
            .collect();
        assert_eq!(seen, expected);
        drop(stream);
        assert!(!db.gc().await?.deleted.is_empty(), "once the scan is gone, the files go");
        db.close().await
    }
);
