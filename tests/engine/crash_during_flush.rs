//! A crash at any point of a flush — the SST not written, written but not published, published
//! but the WAL not yet truncated, anywhere in between — recovers to exactly the acknowledged
//! rows, once each; and the recovered database flushes and reopens normally.
//!
//! The power is cut at the n-th storage write after the flush starts, for every n until the
//! flush, one more commit and a clean close complete without reaching it: unsynced data is lost
//! and the old instance can write nothing more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::common::*;
use damselfly::runtime::BoxFuture;
use damselfly::storage::{
    HookedStorage, MemoryStorage, StorageCall, StorageError, StorageErrorKind, StorageHook,
};

/// Cuts the power at the n-th storage write after it is armed.
#[derive(Debug)]
struct PowerCut {
    storage: MemoryStorage,
    /// Writes left before the cut; negative while disarmed.
    countdown: AtomicI64,
    cut: AtomicBool,
}

impl PowerCut {
    fn writes(call: &StorageCall<'_>) -> bool {
        !matches!(
            call,
            StorageCall::Read { .. } | StorageCall::Size { .. } | StorageCall::List { .. }
        )
    }
}

impl StorageHook for PowerCut {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        let lost = || StorageError::new(StorageErrorKind::Io, "any", "", "the machine lost power");
        if self.cut.load(Ordering::SeqCst) {
            return Box::pin(async move { Err(lost()) });
        }
        if Self::writes(&call) && self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.cut.store(true, Ordering::SeqCst);
            self.storage.simulate_power_loss();
            return Box::pin(async move { Err(lost()) });
        }
        Box::pin(async { Ok(()) })
    }
}

runtime_test!(
    async fn a_crash_at_any_step_of_a_flush_loses_nothing_acknowledged(runtime) {
        for cut_at in 1.. {
            let storage = MemoryStorage::new();
            let power = Arc::new(PowerCut {
                storage: storage.clone(),
                countdown: AtomicI64::new(-1),
                cut: AtomicBool::new(false),
            });
            let hooked = Arc::new(HookedStorage::new(Arc::new(storage.clone()), power.clone()));
            let db = events_builder().on_storage(hooked).open(runtime.clone()).await?;
            db.ingest(events(&[1, 2, 3], 0)).await?;
            db.flush().await?; // an SST and a WAL floor to build on
            db.ingest(events(&[2], 1)).await?;
            db.ingest_with_tombstones(events(&[3], 0), vec![true]).await?;
            db.ingest(events(&[4], 0)).await?;
            let mut acknowledged = ids_and_scores(&db).await?;

            // The power is cut somewhere in: the flush, the cleanup after it (WAL truncation,
            // record pruning), the next commit's new segment, and a clean close.
            power.countdown.store(cut_at, Ordering::SeqCst);
            let flushed = db.flush().await;
            if db.ingest(events(&[6], 0)).await.is_ok() {
                acknowledged.push((6, 60));
            }
            let closed = db.close().await;
            let crashed = power.cut.load(Ordering::SeqCst);
            assert!(flushed.is_ok() || crashed, "cut at write {cut_at}: {flushed:?}");
            assert!(closed.is_ok() || crashed, "cut at write {cut_at}: {closed:?}");

            // The machine restarts: open the same storage, without the power cut.
            let db = events_builder().on_storage(Arc::new(storage.clone())).open(runtime.clone()).await?;
            assert_eq!(ids_and_scores(&db).await?, acknowledged, "cut at write {cut_at}");
            db.ingest(events(&[5], 0)).await?;
            db.flush().await?;
            db.close().await?;
            let db = events_builder().on_storage(Arc::new(storage)).open(runtime.clone()).await?;
            let mut expected = acknowledged.clone();
            expected.push((5, 50));
            expected.sort_unstable();
            assert_eq!(ids_and_scores(&db).await?, expected, "cut at write {cut_at}, reopened");
            db.close().await?;
            if !crashed {
                // The flush finished before the n-th write: every step has been cut at.
                assert!(cut_at > 3, "a flush writes several times");
                break;
            }
        }
        Ok(())
    }
);

/// Reports the first `put_if_absent` of a manifest record as failed after it applied, as an
/// object store's lost answer would.
#[derive(Debug, Default)]
struct LostAnswer {
    lost: AtomicBool,
}

impl StorageHook for LostAnswer {
    fn after(
        &self,
        call: StorageCall<'_>,
        outcome: Result<u64, StorageErrorKind>,
    ) -> Result<(), StorageError> {
        match call {
            StorageCall::PutIfAbsent { path, .. }
                if path.starts_with("manifest/")
                    && outcome == Ok(1)
                    && !self.lost.swap(true, Ordering::SeqCst) =>
            {
                Err(StorageError::new(
                    StorageErrorKind::Io,
                    "put_if_absent",
                    path,
                    "timed out waiting for the answer",
                ))
            }
            _ => Ok(()),
        }
    }
}

runtime_test!(
    async fn a_publish_whose_answer_is_lost_is_read_back_not_repeated(runtime) {
        let storage = MemoryStorage::new();
        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .open(runtime.clone())
            .await?;
        db.ingest(events(&[1, 2], 0)).await?;
        db.close().await?;
        // The open's claim is a manifest put too: arm the hook only for the flush's publish.
        let hook = Arc::new(LostAnswer {
            lost: AtomicBool::new(true),
        });
        let hooked = Arc::new(HookedStorage::new(Arc::new(storage.clone()), hook.clone()));
        let db = events_builder().on_storage(hooked).open(runtime.clone()).await?;
        hook.lost.store(false, Ordering::SeqCst);
        let records_before = manifest_records(&storage);
        db.flush().await?;
        assert!(hook.lost.load(Ordering::SeqCst), "the publish met the lost answer");
        // The version was published once: the retry found its own record and built nothing
        // on top of it.
        assert_eq!(manifest_records(&storage), records_before + 1);
        assert_eq!(db.metrics().sst_count, 1);
        db.ingest(events(&[3], 0)).await?;
        db.close().await?;
        let db = events_builder().on_storage(Arc::new(storage)).open(runtime).await?;
        assert_eq!(
            ids_and_scores(&db).await?,
            [(1, 10), (2, 20), (3, 30)],
            "every row once, after the retried publish and a reopen"
        );
        db.close().await
    }
);

fn manifest_records(storage: &MemoryStorage) -> usize {
    storage
        .paths()
        .iter()
        .filter(|path| path.starts_with("manifest/"))
        .count()
}
