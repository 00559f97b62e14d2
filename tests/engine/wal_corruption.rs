//! Damage that is not a torn tail is reported, not skipped: a flipped bit in a synced frame in
//! the middle of the log makes opening fail with `ErrorKind::Corruption` naming the segment and
//! offset — and opening changes nothing, so the data can still be rescued.

use std::sync::Arc;

use crate::common::*;
use damselfly::ErrorKind;
use damselfly::storage::{MemoryStorage, Storage};
use damselfly_actors::wal::frame::{self, FrameRead};

runtime_test!(
    async fn a_flipped_bit_in_the_middle_of_the_log_is_corruption(runtime) {
        let storage = MemoryStorage::new();
        let db = events_builder().on_storage(Arc::new(storage.clone())).open(runtime.clone()).await?;
        for commit in 0..5u64 {
            db.ingest(events(&[commit], 0)).await?;
        }
        db.close().await?;
        let path = storage.list("wal").await?[0].path.clone();
        let bytes = storage.read(&path).await?;
        // The third frame (the second commit) starts after the header and the first commit.
        let mut offset = 0;
        for _ in 0..2 {
            let FrameRead::Frame(frame) = frame::read(&bytes, offset) else {
                panic!("the log is intact before the damage");
            };
            offset = frame.end;
        }
        storage.corrupt(&path, offset as u64 + 40, 0x10)?;
        let damaged = storage.read(&path).await?;

        let opened = events_builder().on_storage(Arc::new(storage.clone())).open(runtime.clone()).await;
        assert_error(opened, ErrorKind::Corruption, &path);
        assert_eq!(storage.read(&path).await?, damaged, "opening changed nothing");

        // The descriptor is checked too.
        storage.corrupt("TABLE", 30, 0x01)?;
        let opened = events_builder().on_storage(Arc::new(storage)).open(runtime).await;
        assert_error(opened, ErrorKind::Corruption, "TABLE");
        Ok(())
    }
);
