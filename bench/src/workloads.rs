//! The workloads, the same for every engine: each engine implements [`Store`] through its
//! public API, and these functions drive it, time it and check every answer.

use std::path::Path;
use std::time::Instant;

use crate::measure::{Latencies, Metric, best_rate, mib_on_disk, rows_per_second};
use crate::rows::{filtered_rows, random_keys};
use crate::{COMMIT_ROWS, Params, Workload};

/// An engine under test.
pub trait Store: Clone + Send + Sync + 'static {
    /// Rows as the engine takes them.
    type Batch: Send + 'static;

    /// The rows with keys `first..first + rows`.
    fn batch(first: u64, rows: u64) -> Self::Batch;

    /// Writes `batch` and returns once the engine acknowledges it.
    fn write(&self, batch: Self::Batch) -> impl Future<Output = ()> + Send;

    /// Commits `batch` durably: what `write` does, where the engine syncs before acknowledging.
    fn commit(&self, batch: Self::Batch) -> impl Future<Output = ()> + Send {
        self.write(batch)
    }

    /// Ends an ingest: makes everything written durable and flushes it to the engine's files.
    fn flush(&self) -> impl Future<Output = ()>;

    /// The rows the engine returns for `read`.
    fn read(&self, read: Read) -> impl Future<Output = u64>;

    /// Runs `task` concurrently on the engine's runtime.
    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T>;

    /// Figures only this engine has, measured after `workload` ran in `folder`.
    fn more_figures(
        &self,
        _workload: Workload,
        _folder: &Path,
        _params: &Params,
    ) -> impl Future<Output = Vec<Metric>> {
        async { Vec::new() }
    }

    fn close(self) -> impl Future<Output = ()>;
}

/// Runs `workload` on the store `open` opens in `folder`.
pub async fn run<S: Store>(
    open: impl AsyncFn(&Path) -> S,
    workload: Workload,
    folder: &Path,
    params: &Params,
) -> Vec<Metric> {
    if workload == Workload::Recovery {
        let on_disk = mib_on_disk(folder);
        let started = Instant::now();
        let store = open(folder).await;
        let reopen = started.elapsed();
        let recovered = store.read(Read::All).await;
        assert_eq!(
            recovered, params.recovery_rows,
            "every acknowledged row is recovered"
        );
        store.close().await;
        return vec![
            Metric::new("reopen ms", reopen.as_secs_f64() * 1e3),
            Metric::new("MiB on disk", on_disk),
        ];
    }
    let store = open(folder).await;
    let mut metrics = match workload {
        Workload::Ingest1k => ingest(&store, params.rows, 1024).await,
        Workload::Ingest8k => ingest(&store, params.rows, 8192).await,
        Workload::Commit1 => commits(&store, 1, params.commits).await,
        Workload::Commit64 => commits(&store, 64, params.commits).await,
        Workload::Scan => scans(params, |query| store.read(query)).await,
        Workload::Get => lookups(params, |query| store.read(query)).await,
        Workload::CrashLoad => {
            for first in (0..params.recovery_rows).step_by(1024) {
                store.commit(S::batch(first, 1024)).await;
            }
            crate::crash()
        }
        Workload::Recovery => unreachable!("answered above"),
    };
    metrics.extend(store.more_figures(workload, folder, params).await);
    store.close().await;
    if let Workload::Ingest1k | Workload::Ingest8k = workload {
        metrics.push(Metric::new("MiB on disk", mib_on_disk(folder)));
    }
    metrics
}

/// `rows` rows in `batch_rows`-row batches, each acknowledged before the next, then a flush.
async fn ingest<S: Store>(store: &S, rows: u64, batch_rows: u64) -> Vec<Metric> {
    let batches: Vec<S::Batch> = (0..rows)
        .step_by(batch_rows as usize)
        .map(|first| S::batch(first, batch_rows))
        .collect();
    let started = Instant::now();
    for batch in batches {
        store.write(batch).await;
    }
    store.flush().await;
    vec![rows_per_second("rows/s", rows, started)]
}

/// `commits` durable commits of `COMMIT_ROWS` rows, shared out among `committers` concurrent
/// committers.
async fn commits<S: Store>(store: &S, committers: u64, commits: u64) -> Vec<Metric> {
    let per_committer = commits / committers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..committers)
        .map(|committer| {
            let committing = store.clone();
            let first = committer * per_committer * COMMIT_ROWS;
            let batches: Vec<S::Batch> = (0..per_committer)
                .map(|commit| S::batch(first + commit * COMMIT_ROWS, COMMIT_ROWS))
                .collect();
            store.spawn(async move {
                let mut latencies = Latencies::with_capacity(batches.len());
                for batch in batches {
                    latencies.time(committing.commit(batch)).await;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    for task in tasks {
        latencies.extend(task.await);
    }
    latencies.metrics("commits", started.elapsed())
}

/// One read of the table.
#[derive(Debug, Clone, Copy)]
pub enum Read {
    /// Every row, every column.
    All,
    /// Every row, the `value` column only.
    Value,
    /// The rows with `value < FILTER_BELOW` (about 1%, spread over the whole table).
    ValueFilter,
    /// The rows with keys `first..=last`.
    Keys(u64, u64),
    /// The row with this key.
    Key(u64),
}

/// Full scan, one-column projection, the 1% value filter and 1% key ranges over a table of
/// `params.rows` rows.
async fn scans<F: Future<Output = u64>>(
    params: &Params,
    mut read: impl FnMut(Read) -> F,
) -> Vec<Metric> {
    let rows = params.rows;
    let runs = params.scan_runs;
    let mut metrics = vec![
        best_rate("scan rows/s", rows, runs, || read(Read::All)).await,
        best_rate("projection rows/s", rows, runs, || read(Read::Value)).await,
    ];
    let selected = filtered_rows(rows);
    let started = Instant::now();
    for _ in 0..runs {
        assert_eq!(read(Read::ValueFilter).await, selected, "the 1% filter");
    }
    metrics.push(Metric::new(
        "1% filter, table rows/s",
        (rows * runs as u64) as f64 / started.elapsed().as_secs_f64(),
    ));
    let width = rows / 100;
    let mut latencies = Latencies::with_capacity(params.ranges);
    let started = Instant::now();
    for first in random_keys(rows - width, params.ranges) {
        let found = latencies
            .time(read(Read::Keys(first, first + width - 1)))
            .await;
        assert_eq!(found, width, "a 1% key range holds {width} rows");
    }
    metrics.extend(latencies.metrics("1% ranges", started.elapsed()));
    metrics
}

/// Random point lookups of existing keys, after as many to warm caches up; each half stops
/// early after `params.lookup_time` (for engines whose lookups take milliseconds).
async fn lookups<F: Future<Output = u64>>(
    params: &Params,
    mut read: impl FnMut(Read) -> F,
) -> Vec<Metric> {
    let keys = random_keys(params.rows, 2 * params.lookups);
    let (warm_up, timed) = keys.split_at(params.lookups);
    let deadline = Instant::now() + params.lookup_time;
    for &id in warm_up.iter().take_while(|_| Instant::now() < deadline) {
        assert_eq!(read(Read::Key(id)).await, 1, "key {id} exists");
    }
    let mut latencies = Latencies::with_capacity(params.lookups);
    let started = Instant::now();
    let deadline = started + params.lookup_time;
    for &id in timed.iter().take_while(|_| Instant::now() < deadline) {
        assert_eq!(
            latencies.time(read(Read::Key(id))).await,
            1,
            "key {id} exists"
        );
    }
    latencies.metrics("gets", started.elapsed())
}
