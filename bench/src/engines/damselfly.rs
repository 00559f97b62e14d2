//! damselfly with its defaults: `WalSyncPolicy::Always` (an acknowledged write is synced),
//! 64 MiB memtables, zstd level 1 SSTs; on tokio or on smol, each with a worker thread per core.
//! The scans run without the block cache (see `step`).

use std::path::Path;
use std::sync::Arc;

use damselfly::arrow_array::RecordBatch;
use damselfly::runtime::{Runtime, RuntimeExt, SmolRuntime, TokioRuntime};
use damselfly::{Db, DbBuilder, Expr};

use crate::engines::baseline;
use crate::measure::{Metric, best_rate, mib_on_disk};
use crate::rows::{FILTER_BELOW, arrow60};
use crate::workloads::{self, Read, Store};
use crate::{Params, Workload};

/// Which runtime damselfly runs on.
#[derive(Debug, Clone, Copy)]
pub enum On {
    Tokio,
    Smol,
}

pub fn step(on: On, workload: Workload, folder: &Path, params: &Params) -> Vec<Metric> {
    // The block cache would serve the repeated scans of this table from memory (about 200M
    // rows/s): the scans measure reading the files, as arrow-rs does.
    let without_cache = workload == Workload::Scan;
    let open = async |runtime: Arc<dyn Runtime>, folder: &Path| {
        let builder = DbBuilder::from_schema_key_name(arrow60::schema(), "id")
            .and_then(|builder| builder.on_disk(folder))
            .expect("a valid builder");
        let builder = if without_cache {
            builder.block_cache_bytes(0)
        } else {
            builder
        };
        let db = builder
            .open(Arc::clone(&runtime))
            .await
            .expect("damselfly opens");
        Damselfly { db, runtime }
    };
    match on {
        On::Tokio => {
            let tokio = super::tokio();
            let runtime: Arc<dyn Runtime> = {
                let _entered = tokio.enter();
                Arc::new(TokioRuntime::current())
            };
            let open = async |folder: &Path| open(Arc::clone(&runtime), folder).await;
            tokio.block_on(workloads::run(open, workload, folder, params))
        }
        On::Smol => {
            let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new());
            let open = async |folder: &Path| open(Arc::clone(&runtime), folder).await;
            smol::block_on(workloads::run(open, workload, folder, params))
        }
    }
}

#[derive(Clone)]
struct Damselfly {
    db: Db,
    runtime: Arc<dyn Runtime>,
}

impl Store for Damselfly {
    type Batch = RecordBatch;

    fn batch(first: u64, rows: u64) -> RecordBatch {
        arrow60::rows(first, rows)
    }

    async fn write(&self, batch: RecordBatch) {
        self.db.ingest(batch).await.expect("ingest");
    }

    async fn flush(&self) {
        self.db.flush().await.expect("flush");
    }

    async fn read(&self, read: Read) -> u64 {
        let scan = self.db.scan();
        let scan = match read {
            Read::All => scan,
            Read::Value => scan.projection(&["value"]),
            Read::ValueFilter => scan.filter(Expr::col("value").lt(FILTER_BELOW)),
            Read::Keys(first, last) => scan.filter(Expr::col("id").between(first, last)),
            Read::Key(id) => {
                let row = self.db.get(id).await.expect("a lookup");
                return row.map_or(0, |row| row.num_rows() as u64);
            }
        };
        let stream = scan.stream().await.expect("a scan");
        super::count_rows(stream, RecordBatch::num_rows).await
    }

    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> {
        let task = self.runtime.spawn("bench", task);
        async { task.await.expect("the task finishes") }
    }

    /// After an ingest, the bytes of the SSTs alone (the rest is mostly the WAL's next segment,
    /// reserved in advance); after the scans, arrow-rs reading the same SST files.
    async fn more_figures(
        &self,
        workload: Workload,
        folder: &Path,
        params: &Params,
    ) -> Vec<Metric> {
        let ssts = folder.join("sst");
        match workload {
            Workload::Ingest1k | Workload::Ingest8k => {
                vec![Metric::new("MiB of SSTs", mib_on_disk(&ssts))]
            }
            Workload::Scan => {
                let files = baseline::parquet_files(&ssts);
                let name = "scan, arrow-rs on its SSTs rows/s";
                let arrow_rs = best_rate(name, params.rows, params.scan_runs, || async {
                    baseline::read_files(&files, None)
                });
                vec![arrow_rs.await]
            }
            _ => Vec::new(),
        }
    }

    async fn close(self) {
        self.db.close().await.expect("a clean close");
    }
}
