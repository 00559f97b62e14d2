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

/// Makes the storage pose as an object store (the WAL writes one object per group commit), and
/// holds its first WAL object until the test lets it go, saying when it got there.
#[derive(Debug)]
struct HoldFirstLogWrite {
    reached: async_channel::Sender<()>,
    release: async_channel::Receiver<()>,
    held: std::sync::atomic::AtomicBool,
}

impl damselfly::storage::StorageHook for HoldFirstLogWrite {
    fn before(
        &self,
        call: damselfly::storage::StorageCall<'_>,
    ) -> damselfly::runtime::BoxFuture<'static, Result<(), damselfly::storage::StorageError>> {
        let first = matches!(call, damselfly::storage::StorageCall::PutIfAbsent { path, .. }
                if path.starts_with("wal/"))
            && !self.held.swap(true, std::sync::atomic::Ordering::SeqCst);
        let (reached, release) = (self.reached.clone(), self.release.clone());
        Box::pin(async move {
            if first {
                let _ = reached.send(()).await;
                let _ = release.recv().await;
            }
            Ok(())
        })
    }

    fn supports_durable_append(&self, _inner: bool) -> bool {
        false
    }
}

impl HoldFirstLogWrite {
    /// `files` posing as an object store, with the first WAL object held (`hold`) or not, and
    /// the channels to see it held and to release it.
    fn over(
        files: &MemoryStorage,
        hold: bool,
    ) -> (
        Arc<dyn damselfly::storage::Storage>,
        async_channel::Receiver<()>,
        async_channel::Sender<()>,
    ) {
        let (reached, reached_rx) = async_channel::bounded(1);
        let (release, release_rx) = async_channel::bounded(1);
        let hook = Arc::new(HoldFirstLogWrite {
            reached,
            release: release_rx,
            held: std::sync::atomic::AtomicBool::new(!hold),
        });
        let storage = damselfly::storage::HookedStorage::new(Arc::new(files.clone()), hook);
        (Arc::new(storage), reached_rx, release)
    }
}

runtime_test!(
    async fn a_stale_writer_racing_the_open_is_fenced_and_the_open_goes_through(runtime) {
        // On an object store, where every group commit is a WAL object of its own.
        let files = MemoryStorage::new();
        let (storage, _, _) = HoldFirstLogWrite::over(&files, false);
        let first = events_builder().on_storage(storage).open(runtime.clone()).await?;
        first.ingest(events(&[1], 0)).await?;

        // The second writer claims the database and replays the log; before it writes its first
        // object, the first writer — which has not noticed the claim — commits into that slot.
        let (storage, reached, release) = HoldFirstLogWrite::over(&files, true);
        let opening = events_builder().on_storage(storage).open(runtime.clone());
        let racing = async {
            let _ = reached.recv().await;
            let stale = first.ingest(events(&[2], 0)).await;
            let _ = release.send(()).await;
            stale
        };
        let (second, stale) = futures_lite::future::zip(opening, racing).await;
        let second = second?;
        assert!(stale.is_ok(), "the stale writer's commit landed first: {stale:?}");

        // The open started again and replayed the stale segment: its commit is kept.
        assert_eq!(ids_and_scores(&second).await?, [(1, 10), (2, 20)]);
        assert_error(first.ingest(events(&[3], 0)).await, ErrorKind::Closed, "fenced");
        second.ingest(events(&[4], 0)).await?;
        second.close().await?;
        let _ = first.close().await;

        let (storage, _, _) = HoldFirstLogWrite::over(&files, false);
        let third = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(ids_and_scores(&third).await?, [(1, 10), (2, 20), (4, 40)]);
        third.close().await
    }
);
