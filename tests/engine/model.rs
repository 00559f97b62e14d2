//! Random upserts, deletes and flushes checked against a model of the table after every step
//! that can change where rows live: full scans, scans with a filter, lookups and time travel
//! must answer exactly what the model says, whichever memtables and SSTs hold the versions and
//! however their key ranges overlap.
//!
//! The operations come from the simulator's seed (`DAMSELFLY_SEED`, printed on failure), on
//! every runtime.

use std::collections::BTreeMap;

use crate::common::*;
use damselfly::{Db, Error, Expr, Key, Timestamp};

/// The table as the model sees it: id → score.
type Rows = BTreeMap<u64, i64>;

/// Which ids a filter on the key keeps, as the model sees it.
type KeepsId = Box<dyn Fn(u64) -> bool>;

const KEYS: u64 = 3000;
const STEPS: usize = 240;

runtime_test!(
    async fn random_writes_read_back_as_the_model_says(runtime) {
        let seed = sim_seed();
        let mut random = fastrand::Rng::with_seed(seed);
        let context = |step: usize, what: &str| format!("seed {seed}, step {step}: {what}");
        // Small memtables: they fill and flush by themselves too; compaction runs on its own
        // and when asked.
        let db = events_builder()
            .in_memory()
            .memtable_bytes(96 << 10)
            .open(runtime)
            .await?;
        let mut model = Rows::new();
        let mut history: Vec<(Timestamp, Rows)> = Vec::new();
        for step in 0..STEPS {
            match random.u8(0..10) {
                0..=4 => {
                    let ids = random_ids(&mut random);
                    let scores: Vec<i64> = ids.iter().map(|_| random.i64(0..1000)).collect();
                    let timestamp = db.ingest(events_scored(&ids, &scores)).await?;
                    model.extend(ids.iter().copied().zip(scores));
                    history.push((timestamp, model.clone()));
                }
                5 | 6 => {
                    let ids = random_ids(&mut random);
                    let deletes = vec![true; ids.len()];
                    let timestamp = db.ingest_with_tombstones(events(&ids, 0), deletes).await?;
                    for id in &ids {
                        model.remove(id);
                    }
                    history.push((timestamp, model.clone()));
                }
                7 => {
                    db.flush().await?;
                    if random.u8(0..3) == 0 {
                        db.compact().await?;
                    }
                }
                _ => {
                    check(&db, &model, &mut random, &context(step, "now")).await?;
                    if let Some((timestamp, rows)) = history.get(random.usize(0..history.len().max(1))) {
                        let snapshot = db.snapshot_at(*timestamp).await?;
                        let batches = snapshot.scan().collect().await?;
                        assert_eq!(
                            scan_rows(&batches),
                            *rows,
                            "{}",
                            context(step, &format!("snapshot_at({timestamp})"))
                        );
                    }
                }
            }
        }
        check(&db, &model, &mut random, &context(STEPS, "before the last flush")).await?;
        db.flush().await?;
        check(&db, &model, &mut random, &context(STEPS, "after the last flush")).await?;
        assert!(db.metrics().memtables_flushed > 1, "{}", context(STEPS, "several flushes"));
        db.close().await
    }
);

/// Ids of one write: a run of neighbours (a narrow key range, as appends make) or ids scattered
/// over the whole key space (a wide one, overlapping everything).
fn random_ids(random: &mut fastrand::Rng) -> Vec<u64> {
    let count = random.u64(1..200);
    let mut ids: Vec<u64> = if random.bool() {
        let first = random.u64(0..KEYS - count);
        (first..first + count).collect()
    } else {
        (0..count).map(|_| random.u64(0..KEYS)).collect()
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Checks a full scan, a filtered scan and lookups of present and absent keys against `model`.
async fn check(
    db: &Db,
    model: &Rows,
    random: &mut fastrand::Rng,
    context: &str,
) -> Result<(), Error> {
    assert_eq!(
        scan_rows(&db.scan().collect().await?),
        *model,
        "{context}: scan"
    );
    let threshold = random.i64(0..1000);
    let filtered = db
        .scan()
        .filter(Expr::col("score").gt(threshold))
        .collect()
        .await?;
    let expected: Rows = model
        .iter()
        .filter(|(_, score)| **score > threshold)
        .map(|(id, score)| (*id, *score))
        .collect();
    assert_eq!(
        scan_rows(&filtered),
        expected,
        "{context}: score > {threshold}"
    );
    // Filters on the key: each confines the scan to a key range (or one key), and must answer
    // exactly what the model says.
    let (low, high) = {
        let (a, b) = (random.u64(0..KEYS), random.u64(0..KEYS));
        (a.min(b), a.max(b))
    };
    let probes = [low, high, random.u64(0..KEYS)];
    let key_filters: [(Expr, KeepsId); 6] = [
        (
            Expr::col("id").between(low, high),
            Box::new(move |id| (low..=high).contains(&id)),
        ),
        (Expr::col("id").lt(low), Box::new(move |id| id < low)),
        (Expr::col("id").ge(high), Box::new(move |id| id >= high)),
        (Expr::col("id").eq(low), Box::new(move |id| id == low)),
        (
            Expr::col("id").in_list(probes),
            Box::new(move |id| probes.contains(&id)),
        ),
        (
            Expr::col("id").le(low).or(Expr::col("id").gt(high)),
            Box::new(move |id| id <= low || id > high),
        ),
    ];
    for (filter, keeps) in key_filters {
        let described = filter.to_string();
        let found = scan_rows(&db.scan().filter(filter).collect().await?);
        let expected: Rows = model
            .iter()
            .filter(|(id, _)| keeps(**id))
            .map(|(id, score)| (*id, *score))
            .collect();
        assert_eq!(found, expected, "{context}: {described}");
    }
    for _ in 0..20 {
        let id = random.u64(0..KEYS);
        let found = db.get(Key::from(id)).await?;
        let score = found.map(|row| i64_column(&[row], "score")[0]);
        assert_eq!(score, model.get(&id).copied(), "{context}: get({id})");
    }
    Ok(())
}

fn scan_rows(batches: &[damselfly::arrow_array::RecordBatch]) -> Rows {
    let ids = u64_column(batches, "id");
    assert!(
        ids.is_sorted_by(|left, right| left < right),
        "keys ascend, each once"
    );
    ids.into_iter().zip(i64_column(batches, "score")).collect()
}
