//! The engines, each answering the suite's workloads through its public API.

pub mod baseline;
pub mod damselfly;
pub mod slatedb;
pub mod tonbo;

use std::fmt::Debug;

use futures_util::{Stream, StreamExt as _};

/// A multi-threaded tokio runtime, a worker thread per core.
fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Starts `task` on the current tokio runtime now; the future returned waits for its end.
fn spawn_on_tokio<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> impl Future<Output = T> {
    let task = tokio::spawn(task);
    async { task.await.expect("the task finishes") }
}

/// The rows of every batch of `stream`, counted by `rows`.
async fn count_rows<B, E: Debug>(
    stream: impl Stream<Item = Result<B, E>>,
    rows: impl Fn(&B) -> usize,
) -> u64 {
    let mut stream = std::pin::pin!(stream);
    let mut count = 0;
    while let Some(batch) = stream.next().await {
        count += rows(&batch.expect("a batch")) as u64;
    }
    count
}
