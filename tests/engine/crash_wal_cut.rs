//! A crash can leave the log cut anywhere. Cutting the WAL at every frame boundary and inside
//! every frame, then reopening, must give exactly the commits whose frames are whole: never a
//! part of a commit, never a commit after a missing one. The reopened database must also accept
//! new writes and reopen again.

use std::sync::Arc;

use crate::common::*;
use damselfly::storage::{MemoryStorage, Storage};
use damselfly_actors::wal::frame::{self, FrameRead};

/// The frame boundaries of a segment: where each frame starts, and its end.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut offset = 0;
    while let FrameRead::Frame(frame) = frame::read(bytes, offset) {
        ends.push(frame.end);
        offset = frame.end;
    }
    ends
}

runtime_test!(
    async fn every_cut_recovers_a_prefix_of_whole_commits(runtime) {
        let storage = MemoryStorage::new();
        let db = events_builder()
            .on_storage(Arc::new(storage.clone()))
            .open(runtime.clone())
            .await?;
        // Commit i writes keys 10i..10i+3 (a multi-row commit, to catch partial ones).
        let commits = 6u64;
        for commit in 0..commits {
            db.ingest(events(&[commit * 10, commit * 10 + 1, commit * 10 + 2], 0)).await?;
        }
        db.close().await?;

        let segments = storage.list("wal").await?;
        assert_eq!(segments.len(), 1, "one segment: {segments:?}");
        let path = segments[0].path.clone();
        let bytes = storage.read(&path).await?;
        let ends = frame_ends(&bytes);
        assert_eq!(ends.len() as u64, commits + 1, "a header frame and one frame per commit");

        let mut cuts = vec![0];
        let mut start = 0;
        for &end in &ends {
            cuts.extend([start + 1, (start + end) / 2, end - 1, end]);
            start = end;
        }
        for cut in cuts {
            let crashed = storage.fork();
            crashed.truncate(&path, cut as u64)?;
            let db = events_builder()
                .on_storage(Arc::new(crashed.clone()))
                .open(runtime.clone())
                .await?;
            let whole_commits = ends.iter().skip(1).filter(|end| **end <= cut).count() as u64;
            let expected: Vec<u64> = (0..whole_commits)
                .flat_map(|commit| [commit * 10, commit * 10 + 1, commit * 10 + 2])
                .collect();
            let batches = db.scan().collect().await?;
            assert_eq!(u64_column(&batches, "id"), expected, "cut at byte {cut}");

            // Life goes on after the crash, and the next restart sees both histories.
            db.ingest(events(&[999], 0)).await?;
            db.close().await?;
            let db = events_builder()
                .on_storage(Arc::new(crashed))
                .open(runtime.clone())
                .await?;
            let batches = db.scan().collect().await?;
            let mut with_new = expected.clone();
            with_new.push(999);
            assert_eq!(u64_column(&batches, "id"), with_new, "cut at byte {cut}, reopened");
            db.close().await?;
        }
        Ok(())
    }
);
