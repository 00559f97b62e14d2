//! The memtable actor: the commit clock, the writable memtable and the visibility watermark.
//!
//! A commit is ordered here. The actor gives it the next timestamp, passes it to the WAL writer,
//! and indexes its rows while the WAL writer syncs them (they stay invisible until the watermark
//! reaches them). When the WAL writer reports a timestamp durable, the actor advances the
//! watermark to it and acknowledges every commit up to it.
//!
//! Promises:
//! - timestamps are strictly increasing and reach the WAL in that order, so durability (and the
//!   watermark) advance in timestamp order;
//! - a commit is acknowledged only after it is durable as the WAL policy promises and visible to
//!   every later snapshot;
//! - a snapshot taken at the watermark sees every commit acknowledged before it was taken, and
//!   sees a commit only once that commit is durable (its acknowledgement may still be on its
//!   way to the committer);
//! - if the WAL writer fails, nothing more becomes visible: the actor stops and the database
//!   fails, dropping the waiting commits' replies so their callers get the failure.

mod budget;
mod index;
mod msg;
mod view;
mod write;

use std::collections::VecDeque;
use std::sync::Arc;

pub use budget::WriteBudget;
pub use index::{Chunk, Memtable, VisibleRow};
pub use msg::MemtableMessage;
pub use view::{ReadView, Visibility};
pub use write::{PrepareError, PreparedWrite};

use crate::kernel::{Actor, Address, MailboxClosed, Reply};
use crate::metrics::EngineMetrics;
use crate::timestamp::Timestamp;
use crate::wal::WalMessage;

/// The memtable actor.
#[derive(Debug)]
pub struct MemtableActor {
    clock: Timestamp,
    memtable: Arc<Memtable>,
    visibility: Arc<Visibility>,
    waiting: VecDeque<(Timestamp, usize, Reply<Timestamp>)>,
    wal: Address<WalMessage>,
    metrics: Arc<EngineMetrics>,
}

impl MemtableActor {
    /// An actor that continues after `clock` (the newest recovered timestamp), writing into the
    /// memtable of `visibility`'s view and logging to `wal`.
    pub fn new(
        clock: Timestamp,
        visibility: Arc<Visibility>,
        wal: Address<WalMessage>,
        metrics: Arc<EngineMetrics>,
    ) -> Self {
        let (view, _) = visibility.snapshot();
        Self {
            clock,
            memtable: Arc::clone(&view.memtable),
            visibility,
            waiting: VecDeque::new(),
            wal,
            metrics,
        }
    }

    async fn commit(
        &mut self,
        write: PreparedWrite,
        reply: Reply<Timestamp>,
    ) -> Result<(), MailboxClosed> {
        let timestamp = self.clock.next();
        self.clock = timestamp;
        let PreparedWrite {
            batch,
            keys,
            deletes,
            wal_body,
            ..
        } = write;
        self.waiting.push_back((timestamp, batch.num_rows(), reply));
        // Log first, index second: the WAL writer syncs while the rows are indexed. The rows
        // stay invisible until the WAL reports them durable, with a notice this actor reads only
        // after this handler returns.
        self.wal
            .tell(WalMessage::Append {
                timestamp,
                body: wal_body,
            })
            .await?;
        self.memtable
            .insert(timestamp, batch, keys, deletes.as_ref());
        Ok(())
    }

    fn durable(&mut self, through: Timestamp) {
        self.visibility.advance(through);
        while let Some((timestamp, _, _)) = self.waiting.front() {
            if *timestamp > through {
                break;
            }
            if let Some((timestamp, rows, reply)) = self.waiting.pop_front() {
                self.metrics.commits.add(1);
                self.metrics.rows_committed.add(rows as u64);
                reply.send(timestamp);
            }
        }
    }
}

impl Actor for MemtableActor {
    type Message = MemtableMessage;
    type Error = MailboxClosed;

    const NAME: &'static str = "memtable";

    async fn handle(&mut self, message: MemtableMessage) -> Result<(), MailboxClosed> {
        match message {
            MemtableMessage::Commit { write, reply } => self.commit(write, reply).await,
            MemtableMessage::Durable { through } => {
                self.durable(through);
                Ok(())
            }
        }
    }

    /// Stop only once every accepted commit has been answered.
    fn ready_to_stop(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Closing the WAL writer's mailbox lets it write, sync and close the log, then stop.
    async fn on_stop(&mut self) -> Result<(), MailboxClosed> {
        self.wal.close();
        Ok(())
    }
}
