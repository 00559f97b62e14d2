//! Reads skip what they cannot need, and say the same as reads that skip nothing: a filter on
//! the key keeps a scan away from SSTs outside its range, and an equality on the whole key is a
//! point lookup that asks the bloom filters before reading a block. Counted at the storage: the
//! reads each query makes of each SST file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::common::*;
use damselfly::runtime::BoxFuture;
use damselfly::storage::{HookedStorage, MemoryStorage, StorageCall, StorageError, StorageHook};
use damselfly::{Db, Expr, Key};

/// Counts reads per file.
#[derive(Debug, Default)]
struct ReadCounter {
    reads: Mutex<BTreeMap<String, usize>>,
}

impl ReadCounter {
    /// The SST files read since the last call, with how many reads each.
    fn take_sst_reads(&self) -> BTreeMap<String, usize> {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::take(&mut *reads);
        taken
            .into_iter()
            .filter(|(path, _)| path.starts_with("sst/"))
            .collect()
    }
}

impl StorageHook for ReadCounter {
    fn before(&self, call: StorageCall<'_>) -> BoxFuture<'static, Result<(), StorageError>> {
        if let StorageCall::Read { path, .. } = call {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            *reads.entry(path.to_owned()).or_default() += 1;
        }
        Box::pin(async { Ok(()) })
    }
}

/// A database with four SSTs of 1,000 even ids each: 0..2000, 2000..4000, ... It has no block
/// cache: every block a scan needs is read from storage, so the reads show what pruning kept.
async fn four_ssts(runtime: Rt) -> Result<(Db, Arc<ReadCounter>), damselfly::Error> {
    let counter = Arc::new(ReadCounter::default());
    let storage = HookedStorage::new(Arc::new(MemoryStorage::new()), counter.clone());
    let db = events_builder()
        .on_storage(Arc::new(storage))
        .automatic_compaction(false)
        .block_cache_bytes(0)
        .open(runtime)
        .await?;
    for part in 0..4u64 {
        let ids: Vec<u64> = (0..1000).map(|i| part * 2000 + i * 2).collect();
        db.ingest(events(&ids, 0)).await?;
        db.flush().await?;
    }
    assert_eq!(db.metrics().sst_count, 4);
    counter.take_sst_reads();
    Ok((db, counter))
}

runtime_test!(
    async fn a_key_range_filter_reads_only_the_ssts_it_overlaps(runtime) {
        let (db, counter) = four_ssts(runtime).await?;
        let ranged = db
            .scan()
            .filter(Expr::col("id").between(2100u64, 2199u64))
            .collect()
            .await?;
        assert_eq!(u64_column(&ranged, "id"), (2100..2200).step_by(2).collect::<Vec<_>>());
        let reads = counter.take_sst_reads();
        assert_eq!(reads.len(), 1, "one SST holds 2100..2200: {reads:?}");

        // Ranges from comparisons combined with and/or, and from in_list.
        let filter = Expr::col("id")
            .lt(100u64)
            .or(Expr::col("id").ge(7990u64))
            .and(Expr::col("score").ge(0i64));
        let edges = db.scan().filter(filter).collect().await?;
        let mut expected: Vec<u64> = (0..100).step_by(2).collect();
        expected.extend((7990..8000).step_by(2));
        assert_eq!(u64_column(&edges, "id"), expected);
        // The hull of the two ranges covers every SST: pruning never loses rows to an `or`.
        counter.take_sst_reads();

        let listed = db
            .scan()
            .filter(Expr::col("id").in_list([4002u64, 4004, 5998]))
            .collect()
            .await?;
        assert_eq!(u64_column(&listed, "id"), [4002, 4004, 5998]);
        let reads = counter.take_sst_reads();
        assert_eq!(reads.len(), 1, "one SST holds 4002..5998: {reads:?}");

        let none = db.scan().filter(Expr::col("id").gt(100_000u64)).collect().await?;
        assert!(none.is_empty());
        assert!(counter.take_sst_reads().is_empty(), "no SST holds keys above 100000");
        db.close().await
    }
);

runtime_test!(
    async fn an_equality_on_the_key_is_a_point_lookup_that_asks_the_bloom_filters(runtime) {
        let (db, counter) = four_ssts(runtime).await?;
        let found = db.scan().filter(Expr::col("id").eq(2468u64)).collect().await?;
        assert_eq!(ids_and_scores_of(&found), [(2468, 24680)]);
        let first = counter.take_sst_reads();
        assert_eq!(first.len(), 1, "only the SST whose range holds 2468: {first:?}");

        // Odd ids are absent, each in a different block of the same SST, and the bloom filters
        // of its row group were read above: nothing is read.
        for absent in [2001u64, 2601, 3201, 3801] {
            let scanned = db.scan().filter(Expr::col("id").eq(absent)).collect().await?;
            assert!(scanned.is_empty(), "{absent} is absent");
            assert!(db.get(Key::from(absent)).await?.is_none());
        }
        assert_eq!(counter.take_sst_reads(), BTreeMap::new(), "the bloom filters answer");

        // Other conditions still apply to the row found.
        let filter = Expr::col("id").eq(2468u64).and(Expr::col("score").lt(0i64));
        assert!(db.scan().filter(filter).collect().await?.is_empty());
        let projected = db
            .scan()
            .filter(Expr::col("id").eq(2470u64))
            .projection(&["score"])
            .collect()
            .await?;
        assert_eq!(i64_column(&projected, "score"), [24700]);
        db.close().await
    }
);

runtime_test!(
    async fn point_and_range_filters_see_deletes_and_newer_versions_in_memtables(runtime) {
        let (db, _counter) = four_ssts(runtime).await?;
        db.ingest(events(&[2468], 5)).await?; // newer version, in the memtable
        db.ingest_with_tombstones(events(&[2470], 0), vec![true]).await?;
        let point = db.scan().filter(Expr::col("id").eq(2468u64)).collect().await?;
        assert_eq!(ids_and_scores_of(&point), [(2468, 24685)]);
        let deleted = db.scan().filter(Expr::col("id").eq(2470u64)).collect().await?;
        assert!(deleted.is_empty(), "the delete in the memtable hides the SST's row");
        let ranged = db
            .scan()
            .filter(Expr::col("id").between(2466u64, 2472u64))
            .collect()
            .await?;
        assert_eq!(ids_and_scores_of(&ranged), [(2466, 24660), (2468, 24685), (2472, 24720)]);
        // A snapshot from before the changes answers as before them, by point and by range.
        let before = db.snapshot_at(db.list_versions(3).await?[2].timestamp).await?;
        let old_point = before.scan().filter(Expr::col("id").eq(2470u64)).collect().await?;
        assert_eq!(ids_and_scores_of(&old_point), [(2470, 24700)]);
        db.close().await
    }
);

fn ids_and_scores_of(batches: &[damselfly::arrow_array::RecordBatch]) -> Vec<(u64, i64)> {
    u64_column(batches, "id")
        .into_iter()
        .zip(i64_column(batches, "score"))
        .collect()
}
