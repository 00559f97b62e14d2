//! tonbo 0.4 on local disk, with its WAL synced on every commit (`WalSyncPolicy::Always`; its
//! default syncs every 50 ms). An ingest is acknowledged once its WAL frames are durable.
//! tonbo 0.4 has no public flush: its memtables become Parquet files in the background, so the
//! ingest figures stop at the last acknowledgement. Lookups are scans with an equality filter on
//! the key (its `DB` has no `get`).

use std::path::Path;
use std::sync::Arc;

use arrow_array_57::RecordBatch;
use arrow_schema_57::Schema;
use fusio::disk::LocalFs;
use fusio::executor::tokio::TokioExecutor;
use tonbo::db::{DB, DbBuilder, Expr, ScalarValue, WalSyncPolicy};

use crate::measure::Metric;
use crate::rows::{FILTER_BELOW, arrow57};
use crate::workloads::{self, Read, Store};
use crate::{Params, Workload};

pub fn step(workload: Workload, folder: &Path, params: &Params) -> Vec<Metric> {
    super::tokio().block_on(workloads::run(open, workload, folder, params))
}

async fn open(folder: &Path) -> Tonbo {
    std::fs::create_dir_all(folder).expect("the database folder");
    let db = DbBuilder::from_schema_key_name(arrow57::schema(), "id")
        .expect("a valid schema")
        .on_disk(folder)
        .expect("a local folder")
        .wal_sync_policy(WalSyncPolicy::Always)
        .open()
        .await
        .expect("tonbo opens");
    Tonbo(Arc::new(db))
}

#[derive(Clone)]
struct Tonbo(Arc<DB<LocalFs, TokioExecutor>>);

impl Store for Tonbo {
    type Batch = RecordBatch;

    fn batch(first: u64, rows: u64) -> RecordBatch {
        arrow57::rows(first, rows)
    }

    async fn write(&self, batch: RecordBatch) {
        self.0.ingest(batch).await.expect("ingest");
    }

    async fn flush(&self) {}

    async fn read(&self, read: Read) -> u64 {
        let key = |id| ScalarValue::UInt64(Some(id));
        let scan = self.0.scan();
        let scan = match read {
            Read::All => scan,
            Read::Value => {
                let field = arrow57::schema()
                    .field_with_name("value")
                    .expect("a column")
                    .clone();
                scan.projection(Arc::new(Schema::new(vec![field])))
            }
            Read::ValueFilter => {
                scan.filter(Expr::lt("value", ScalarValue::Int64(Some(FILTER_BELOW))))
            }
            Read::Keys(first, last) => {
                scan.filter(Expr::between("id", key(first), key(last), true))
            }
            Read::Key(id) => scan.filter(Expr::eq("id", key(id))),
        };
        let stream = scan.stream().await.expect("a scan");
        super::count_rows(stream, RecordBatch::num_rows).await
    }

    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> {
        super::spawn_on_tokio(task)
    }

    async fn close(self) {}
}
