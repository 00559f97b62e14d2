//! A second writer opening the same database fences off the first: the first finds out at its
//! next flush (or WAL segment), fails with `ErrorKind::Closed` saying it was fenced, and nothing
//! it wrote after the second writer opened ever becomes visible.

use std::sync::Arc;

use crate::common::*;
use damselfly::ErrorKind;
use damselfly::storage::MemoryStorage;

runtime_test!(
    async fn a_second_writer_fences_off_the_first(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let first = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        first.ingest(events(&[1], 0)).await?;

        let second = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        assert_eq!(ids_and_scores(&second).await?, [(1, 10)], "what the first acknowledged");

        // The first writer has not noticed yet: this commit lands in its own WAL segment, which
        // the second writer's log has already superseded.
        let _ = first.ingest(events(&[2], 0)).await;
        assert_error(first.flush().await, ErrorKind::Closed, "fenced");
        assert_error(first.ingest(events(&[3], 0)).await, ErrorKind::Closed, "fenced");

        second.ingest(events(&[4], 0)).await?;
        second.flush().await?;
        assert_eq!(ids_and_scores(&second).await?, [(1, 10), (4, 40)]);
        second.close().await?;
        let _ = first.close().await;

        let third = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(
            ids_and_scores(&third).await?,
            [(1, 10), (4, 40)],
            "nothing the fenced writer wrote became visible"
        );
        third.close().await
    }
);
