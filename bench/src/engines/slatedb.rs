//! slatedb 0.18 on local disk through object_store's `LocalFileSystem` with `fsync` on (without
//! it a "durable" write is only in the page cache). slatedb keys are the ids (big-endian),
//! values the other four columns in fixed width (`rows::value`).
//!
//! A slatedb write returns once it is in memory; it is durable after the WAL's next flush to
//! the object store (`await_durable`, every 100 ms by default) or after `flush()`. So a commit
//! is a write and a `flush()` (a sync per commit), while ingest writes every batch without
//! waiting and is durable at the final flush: slatedb's ingest acknowledges before syncing.
//! Ingest ends with a memtable flush, which writes its SSTs.

use std::path::Path;
use std::sync::Arc;

use slatedb::config::{FlushOptions, FlushType};
use slatedb::object_store::local::LocalFileSystem;
use slatedb::{Db, WriteBatch};

use crate::measure::Metric;
use crate::rows::{FILTER_BELOW, decode, key, value};
use crate::workloads::{self, Read, Store};
use crate::{Params, Workload};

pub fn step(workload: Workload, folder: &Path, params: &Params) -> Vec<Metric> {
    super::tokio().block_on(workloads::run(open, workload, folder, params))
}

async fn open(folder: &Path) -> Slatedb {
    std::fs::create_dir_all(folder).expect("the database folder");
    let store = LocalFileSystem::new_with_prefix(folder)
        .expect("a local object store")
        .with_fsync(true);
    Slatedb(Arc::new(
        Db::open("db", Arc::new(store))
            .await
            .expect("slatedb opens"),
    ))
}

#[derive(Clone)]
struct Slatedb(Arc<Db>);

impl Store for Slatedb {
    type Batch = WriteBatch;

    fn batch(first: u64, rows: u64) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for id in first..first + rows {
            batch.put(key(id), value(id));
        }
        batch
    }

    async fn write(&self, batch: WriteBatch) {
        self.0.write(batch).await.expect("a write");
    }

    async fn commit(&self, batch: WriteBatch) {
        self.write(batch).await;
        self.0.flush().await.expect("the WAL is durable");
    }

    async fn flush(&self) {
        let memtable = FlushOptions {
            flush_type: FlushType::MemTable,
        };
        self.0
            .flush_with_options(memtable)
            .await
            .expect("a memtable flush");
    }

    /// The rows slatedb returns for `read`, each decoded as a reader would.
    async fn read(&self, read: Read) -> u64 {
        let mut iterator = match read {
            Read::All | Read::Value | Read::ValueFilter => self.0.scan(key(0)..).await,
            Read::Keys(first, last) => self.0.scan(key(first)..=key(last)).await,
            Read::Key(id) => {
                let found = self.0.get(key(id)).await.expect("a lookup");
                return found.map_or(0, |bytes| u64::from(decode(&key(id), &bytes).id == id));
            }
        }
        .expect("a scan");
        let mut rows = 0;
        let mut checksum = 0f64;
        while let Some(entry) = iterator.next().await.expect("a row") {
            let row = decode(&entry.key, &entry.value);
            match read {
                Read::ValueFilter if row.value >= FILTER_BELOW => continue,
                Read::Value => checksum += row.value as f64,
                _ => checksum += row.ratio + row.label.len() as f64 + f64::from(u8::from(row.flag)),
            }
            rows += 1;
        }
        std::hint::black_box(checksum);
        rows
    }

    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> {
        super::spawn_on_tokio(task)
    }

    async fn close(self) {
        self.0.close().await.expect("a clean close");
    }
}
