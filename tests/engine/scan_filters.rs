//! Scans with every filter operator, projections, limits and batch sizes; and the MVCC rule:
//! a filter is applied to the newest visible version of each key only, so an older version that
//! matches can never stand in for a newer one that does not.

use crate::common::*;
use damselfly::{Expr, Value};
use futures_lite::StreamExt;

/// The ids in 0..100 whose events row satisfies `keep` (the model of a filter).
fn expected(keep: impl Fn(u64) -> bool) -> Vec<u64> {
    (0..100).filter(|&id| keep(id)).collect()
}

async fn filtered(db: &damselfly::Db, filter: Expr) -> Result<Vec<u64>, damselfly::Error> {
    let batches = db.scan().filter(filter).collect().await?;
    Ok(u64_column(&batches, "id"))
}

runtime_test!(
    async fn every_operator_matches_its_model(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let ids: Vec<u64> = (0..100).collect();
        db.ingest(events(&ids, 0)).await?;
        // score = 10 * id, weight = id / 2, name = name-000id, active = id is even.
        let score = |id: u64| id as i64 * 10;
        assert_eq!(filtered(&db, Expr::col("score").eq(500i64)).await?, expected(|id| score(id) == 500));
        assert_eq!(filtered(&db, Expr::col("score").ne(500i64)).await?, expected(|id| score(id) != 500));
        assert_eq!(filtered(&db, Expr::col("score").lt(100i64)).await?, expected(|id| score(id) < 100));
        assert_eq!(filtered(&db, Expr::col("score").le(100i64)).await?, expected(|id| score(id) <= 100));
        assert_eq!(filtered(&db, Expr::col("score").gt(900i64)).await?, expected(|id| score(id) > 900));
        assert_eq!(filtered(&db, Expr::col("score").ge(900i64)).await?, expected(|id| score(id) >= 900));
        assert_eq!(
            filtered(&db, Expr::col("id").between(10u64, 20u64)).await?,
            expected(|id| (10..=20).contains(&id))
        );
        assert_eq!(
            filtered(&db, Expr::col("id").in_list([3u64, 50, 77, 500])).await?,
            [3, 50, 77]
        );
        assert_eq!(
            filtered(&db, Expr::col("name").starts_with("name-0001")).await?,
            expected(|id| (10..20).contains(&id))
        );
        assert_eq!(filtered(&db, Expr::col("weight").gt(49.0)).await?, expected(|id| id > 98));
        assert_eq!(filtered(&db, Expr::col("active")).await?, expected(|id| id % 2 == 0));
        assert_eq!(
            filtered(&db, Expr::col("active").eq(false).and(Expr::col("id").lt(10u64))).await?,
            [1, 3, 5, 7, 9]
        );
        assert_eq!(
            filtered(&db, Expr::col("id").lt(2u64).or(Expr::col("id").gt(97u64))).await?,
            [0, 1, 98, 99]
        );
        assert_eq!(
            filtered(&db, Expr::col("id").ge(2u64).not()).await?,
            [0, 1]
        );
        assert_eq!(filtered(&db, Expr::col("weight").is_null()).await?, Vec::<u64>::new());
        assert_eq!(row_count(&db.scan().filter(Expr::col("weight").is_not_null()).collect().await?), 100);
        assert_eq!(filtered(&db, Expr::col("score").eq(Value::Null)).await?, Vec::<u64>::new());
        Ok(())
    }
);

runtime_test!(
    async fn projection_limit_and_batch_size(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        let ids: Vec<u64> = (0..1000).collect();
        db.ingest(events(&ids, 0)).await?;

        let projected = db.scan().projection(&["score", "id"]).limit(7).collect().await?;
        assert_eq!(row_count(&projected), 7);
        let schema = projected[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|field| field.name().as_str()).collect();
        assert_eq!(names, ["score", "id"], "projected columns in the requested order");
        assert_eq!(u64_column(&projected, "id"), (0..7).collect::<Vec<_>>());

        // The filter may use a column the projection drops.
        let batches = db
            .scan()
            .filter(Expr::col("active").eq(true))
            .projection(&["id"])
            .batch_rows(64)
            .collect()
            .await?;
        assert!(batches.iter().all(|batch| batch.num_rows() <= 64 && batch.num_columns() == 1));
        assert!(batches.iter().rev().skip(1).all(|batch| batch.num_rows() == 64), "full batches");
        assert_eq!(u64_column(&batches, "id"), (0..1000).step_by(2).collect::<Vec<_>>());

        // A stream yields the same rows as collect.
        let mut stream = db.scan().filter(Expr::col("id").ge(990u64)).batch_rows(3).stream().await?;
        let mut streamed = Vec::new();
        while let Some(batch) = stream.next().await {
            streamed.extend(u64_column(&[batch?], "id"));
        }
        assert_eq!(streamed, (990..1000).collect::<Vec<_>>());
        assert!(db.scan().limit(0).collect().await?.is_empty());
        Ok(())
    }
);

runtime_test!(
    async fn a_filter_sees_only_the_newest_version_of_each_key(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2, 3], 0)).await?; // scores 10, 20, 30
        db.ingest(events_scored(&[1], &[1000])).await?; // key 1 no longer matches score < 25
        db.ingest_with_tombstones(events(&[2], 0), vec![true]).await?; // key 2 deleted
        assert_eq!(filtered(&db, Expr::col("score").lt(25i64)).await?, Vec::<u64>::new());
        assert_eq!(filtered(&db, Expr::col("score").gt(25i64)).await?, [1, 3]);
        // The other way round: the newest version matches, an older one did not.
        db.ingest(events_scored(&[3], &[5])).await?;
        assert_eq!(filtered(&db, Expr::col("score").lt(25i64)).await?, [3]);
        Ok(())
    }
);

runtime_test!(
    async fn filters_see_only_the_newest_version_across_ssts(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        // Old versions that match `score < 25` go to an older SST ...
        db.ingest(events(&[1, 2, 3], 0)).await?; // scores 10, 20, 30
        db.flush().await?;
        // ... their newest versions, which do not, to a newer SST and to the memtable.
        db.ingest(events_scored(&[1], &[1000])).await?;
        db.flush().await?;
        db.ingest_with_tombstones(events(&[2], 0), vec![true]).await?;
        assert_eq!(filtered(&db, Expr::col("score").lt(25i64)).await?, Vec::<u64>::new());
        assert_eq!(filtered(&db, Expr::col("score").gt(25i64)).await?, [1, 3]);
        // The other way round: an older version fails the filter, the newest passes.
        db.ingest(events_scored(&[3], &[5])).await?;
        db.flush().await?;
        assert_eq!(filtered(&db, Expr::col("score").lt(25i64)).await?, [3]);
        assert_eq!(db.metrics().sst_count, 3);
        Ok(())
    }
);
