//! A flipped bit in a stored SST is reported, never read as different rows: every read that
//! touches the damaged bytes fails with `ErrorKind::Corruption` naming the file, reads that do not
//! touch them still answer, and nothing is lost — mend the byte and every row is back.

use std::sync::Arc;

use crate::common::*;
use damselfly::storage::{MemoryStorage, Storage};
use damselfly::{Db, ErrorKind, Expr, Key};

/// Ids of the first SST: enough rows that its file is more than twice the 64 KiB tail that
/// opening it reads and checks, so that its first pages are checked only when a read needs them.
const FIRST_IDS: std::ops::Range<u64> = 0..20_000;
/// Ids of the second SST.
const SECOND_IDS: std::ops::Range<u64> = 30_000..30_100;
/// An id only in the write-ahead log.
const LOGGED_ID: u64 = 50_000;

async fn open(runtime: &Rt, storage: &MemoryStorage) -> Result<Db, damselfly::Error> {
    events_builder()
        .on_storage(Arc::new(storage.clone()))
        .open(runtime.clone())
        .await
}

runtime_test!(
    async fn a_flipped_bit_in_an_sst_is_corruption_for_the_reads_that_touch_it(runtime) {
        let storage = MemoryStorage::new();
        let db = open(&runtime, &storage).await?;
        db.ingest(events(&FIRST_IDS.collect::<Vec<_>>(), 0)).await?;
        db.flush().await?;
        db.ingest(events(&SECOND_IDS.collect::<Vec<_>>(), 0)).await?;
        db.flush().await?;
        db.ingest(events(&[LOGGED_ID], 0)).await?;
        let everything = ids_and_scores(&db).await?;
        db.close().await?;

        // The first SST (the lower id), damaged in its first data page.
        let ssts = storage.list("sst").await?;
        assert_eq!(ssts.len(), 2);
        let damaged = ssts[0].path.clone();
        assert!(ssts[0].size > 128 << 10, "{damaged} is {} bytes", ssts[0].size);
        let (offset, mask) = (100, 0x04);
        storage.corrupt(&damaged, offset, mask)?;

        // Its footer is intact, so the database opens; what reads the damaged page fails.
        let db = open(&runtime, &storage).await?;
        assert_error(db.scan().collect().await, ErrorKind::Corruption, &damaged);
        let first_rows = Expr::col("id").lt(FIRST_IDS.end);
        assert_error(db.scan().filter(first_rows).collect().await, ErrorKind::Corruption, &damaged);
        assert_error(db.get(Key::from(FIRST_IDS.start)).await, ErrorKind::Corruption, &damaged);

        // Reads that do not touch it answer, and the database keeps working.
        let last = FIRST_IDS.end - 1;
        let found = db.get(Key::from(last)).await?.expect("the last row of the first SST");
        assert_eq!(u64_column(&[found], "id"), [last]);
        let second_rows = Expr::col("id").ge(SECOND_IDS.start);
        let second = db.scan().filter(second_rows).collect().await?;
        let mut expected: Vec<u64> = SECOND_IDS.collect();
        expected.push(LOGGED_ID);
        assert_eq!(u64_column(&second, "id"), expected);
        db.ingest(events(&[LOGGED_ID + 1], 0)).await?;
        db.close().await?;

        // Nothing was lost: with the bit mended, every row reads back.
        storage.corrupt(&damaged, offset, mask)?;
        let db = open(&runtime, &storage).await?;
        let mut expected = everything;
        expected.push((LOGGED_ID + 1, (LOGGED_ID + 1) as i64 * 10));
        assert_eq!(ids_and_scores(&db).await?, expected);
        db.close().await
    }
);
