//! The memtable actor: the commit clock, the memtables and the visibility watermark.
//!
//! A commit is ordered here. The actor gives it the next timestamp, passes it to the WAL writer,
//! and indexes its rows while the WAL writer syncs them (they stay invisible until the watermark
//! reaches them). When the WAL writer reports a timestamp durable, the actor advances the
//! watermark to it and acknowledges every commit up to it.
//!
//! When the writable memtable reaches its size it is sealed: a new writable memtable takes its
//! place, the WAL writer starts a new segment (so segments line up with memtables), and — once
//! its newest commit is durable — the sealed memtable goes to the flusher. When the flusher
//! reports it in a published SST, the actor drops it from the read view, returns its memory to
//! the write budget and lets the WAL writer delete the segments below the new floor.
//!
//! Promises:
//! - timestamps are strictly increasing and reach the WAL in that order, so durability (and the
//!   watermark) advance in timestamp order;
//! - a commit is acknowledged only after it is durable as the WAL policy promises and visible to
//!   every later snapshot;
//! - a snapshot taken at the watermark sees every commit acknowledged before it was taken, and
//!   sees a commit only once that commit is durable (its acknowledgement may still be on its
//!   way to the committer) — or, for a commit that does not wait for a sync, once it and every
//!   commit before it are written to the OS;
//! - a transaction's commit is checked for conflicts and ordered in one step (see
//!   [`ConflictCheck`]): nothing can be committed between the check and the commit;
//! - a memtable is flushed only once every commit in it is durable, memtables are flushed in the
//!   order they were sealed, and one leaves the read view only after its SST is published;
//! - if the WAL writer fails, nothing more becomes visible: the actor stops and the database
//!   fails, dropping the waiting commits' replies so their callers get the failure.

mod budget;
mod conflict;
mod index;
mod msg;
mod pins;
mod view;
mod write;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

pub use budget::WriteBudget;
pub use conflict::{CommitAnswer, CommitRefused, ConflictCheck};
pub use index::{Chunk, Memtable, VisibleRow};
pub use msg::MemtableMessage;
pub use pins::{TransactionPin, TransactionPins};
pub use view::{ReadView, Visibility};
pub use write::{KeyedRows, PrepareError, PreparedWrite};

use crate::flusher::FlusherMessage;
use crate::kernel::{Actor, Address, MailboxClosed, Reply};
use crate::metrics::EngineMetrics;
use crate::timestamp::Timestamp;
use crate::wal::WalMessage;

/// The memtables an opened database starts with: the writable one and those sealed during
/// recovery (oldest first), all of whose commits are durable.
#[derive(Debug)]
pub struct RecoveredMemtables {
    /// The writable memtable.
    pub writable: Arc<Memtable>,
    /// Full memtables to flush first, oldest first.
    pub sealed: Vec<Arc<Memtable>>,
}

/// Where the memtable actor sends work.
#[derive(Debug)]
pub struct MemtablePeers {
    /// The WAL writer.
    pub wal: Address<WalMessage>,
    /// The flusher.
    pub flusher: Address<FlusherMessage>,
}

/// The memtable actor.
#[derive(Debug)]
pub struct MemtableActor {
    clock: Timestamp,
    writable: Arc<Memtable>,
    /// Sealed memtables not yet in a published SST, oldest first.
    sealed: VecDeque<Arc<Memtable>>,
    /// Sealed memtables waiting for their newest commit to be durable before they are flushed.
    unsent: VecDeque<Arc<Memtable>>,
    seal_bytes: usize,
    durable: Timestamp,
    visibility: Arc<Visibility>,
    budget: Arc<WriteBudget>,
    waiting: VecDeque<(Timestamp, usize, Reply<CommitAnswer>)>,
    /// `flush()` callers, each waiting until the SSTs hold every commit up to its timestamp.
    flush_waiting: Vec<(Timestamp, Reply<Timestamp>)>,
    peers: MemtablePeers,
    metrics: Arc<EngineMetrics>,
}

impl MemtableActor {
    /// An actor that continues after `clock` (the newest recovered timestamp) with the
    /// `memtables` recovery left, sealing a memtable once it holds `seal_bytes`.
    pub fn new(
        clock: Timestamp,
        memtables: RecoveredMemtables,
        seal_bytes: usize,
        shared: (Arc<Visibility>, Arc<WriteBudget>, Arc<EngineMetrics>),
        peers: MemtablePeers,
    ) -> Self {
        let (visibility, budget, metrics) = shared;
        Self {
            clock,
            writable: memtables.writable,
            sealed: memtables.sealed.iter().cloned().collect(),
            unsent: memtables.sealed.into_iter().collect(),
            seal_bytes,
            durable: clock,
            visibility,
            budget,
            waiting: VecDeque::new(),
            flush_waiting: Vec::new(),
            peers,
            metrics,
        }
    }

    async fn commit(
        &mut self,
        write: PreparedWrite,
        wait_for_sync: bool,
        check: Option<ConflictCheck>,
        reply: Reply<CommitAnswer>,
    ) -> Result<(), MailboxClosed> {
        let write = match check {
            None => write,
            Some(check) => {
                let bytes = write.rows.memory_bytes;
                let memtables: Vec<&Arc<Memtable>> = std::iter::once(&self.writable)
                    .chain(self.sealed.iter().rev())
                    .collect();
                match check.check(&memtables, write) {
                    Ok(write) => write,
                    Err(refused) => {
                        self.budget.release(bytes);
                        reply.send(Err(refused));
                        return Ok(());
                    }
                }
            }
        };
        let timestamp = self.clock.next();
        self.clock = timestamp;
        let PreparedWrite { rows, wal_body } = write;
        self.waiting
            .push_back((timestamp, rows.batch.num_rows(), reply));
        // Log first, index second: the WAL writer syncs while the rows are indexed. The rows
        // stay invisible until the WAL reports them durable, with a notice this actor reads only
        // after this handler returns.
        self.peers
            .wal
            .tell(WalMessage::Append {
                timestamp,
                body: wal_body,
                wait_for_sync,
            })
            .await?;
        self.writable.insert(timestamp, rows);
        if self.writable.bytes() >= self.seal_bytes {
            self.seal().await?;
        }
        Ok(())
    }

    /// Replaces the writable memtable with an empty one and queues the old one for flushing.
    async fn seal(&mut self) -> Result<(), MailboxClosed> {
        if self.writable.is_empty() {
            return Ok(());
        }
        let next = Arc::new(self.writable.successor());
        let sealed = std::mem::replace(&mut self.writable, next);
        tracing::debug!(
            memtable = sealed.id(),
            bytes = sealed.bytes(),
            through = %sealed.last_timestamp(),
            "memtable sealed"
        );
        self.sealed.push_back(Arc::clone(&sealed));
        self.unsent.push_back(sealed);
        self.publish_memtables();
        self.peers.wal.tell(WalMessage::Rotate).await?;
        self.send_durable_flushes().await
    }

    /// Hands the flusher every sealed memtable whose commits are all durable, in order.
    async fn send_durable_flushes(&mut self) -> Result<(), MailboxClosed> {
        while let Some(memtable) = self.unsent.front() {
            if memtable.last_timestamp() > self.durable {
                break;
            }
            let memtable = Arc::clone(memtable);
            self.unsent.pop_front();
            self.peers
                .flusher
                .tell(FlusherMessage::Flush { memtable })
                .await?;
        }
        Ok(())
    }

    async fn durable(&mut self, through: Timestamp) -> Result<(), MailboxClosed> {
        self.durable = self.durable.max(through);
        self.visibility.advance(through);
        while let Some((timestamp, _, _)) = self.waiting.front() {
            if *timestamp > through {
                break;
            }
            if let Some((timestamp, rows, reply)) = self.waiting.pop_front() {
                self.metrics.commits.add(1);
                self.metrics.rows_committed.add(rows as u64);
                reply.send(Ok(timestamp));
            }
        }
        self.send_durable_flushes().await
    }

    async fn flushed(&mut self, memtable: u64, through: Timestamp) -> Result<(), MailboxClosed> {
        let oldest = self.sealed.pop_front();
        debug_assert_eq!(
            oldest.as_ref().map(|oldest| oldest.id()),
            Some(memtable),
            "memtables are flushed in the order they were sealed"
        );
        if let Some(flushed) = oldest {
            self.publish_memtables();
            self.budget.release(flushed.bytes());
        }
        self.metrics.memtables_flushed.add(1);
        self.peers
            .wal
            .tell(WalMessage::Truncate { through })
            .await?;
        self.answer_flush_waiting();
        Ok(())
    }

    async fn flush_all(&mut self, reply: Reply<Timestamp>) -> Result<(), MailboxClosed> {
        let target = self.clock;
        self.flush_waiting.push((target, reply));
        self.seal().await?;
        self.answer_flush_waiting();
        Ok(())
    }

    fn answer_flush_waiting(&mut self) {
        let flushed = self.flushed_through();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flush_waiting)
            .into_iter()
            .partition(|(target, _)| *target <= flushed);
        self.flush_waiting = waiting;
        for (_, reply) in done {
            reply.send(flushed);
        }
    }

    /// The newest commit such that it and every older one are in published SSTs.
    fn flushed_through(&self) -> Timestamp {
        match self.sealed.front() {
            Some(oldest) => Timestamp::new(oldest.first_timestamp().get().saturating_sub(1)),
            None if self.writable.is_empty() => self.clock,
            None => Timestamp::new(self.writable.first_timestamp().get().saturating_sub(1)),
        }
    }

    fn publish_memtables(&self) {
        let mut memtables = Vec::with_capacity(self.sealed.len() + 1);
        memtables.push(Arc::clone(&self.writable));
        memtables.extend(self.sealed.iter().rev().cloned());
        self.visibility.set_memtables(memtables);
    }
}

impl Actor for MemtableActor {
    type Message = MemtableMessage;
    type Error = MailboxClosed;

    const NAME: &'static str = "memtable";

    /// Memtables recovery sealed are durable already: flush them first.
    async fn on_start(&mut self) -> Result<(), MailboxClosed> {
        self.send_durable_flushes().await
    }

    async fn handle(&mut self, message: MemtableMessage) -> Result<(), MailboxClosed> {
        match message {
            MemtableMessage::Commit {
                write,
                wait_for_sync,
                check,
                reply,
            } => self.commit(write, wait_for_sync, check, reply).await,
            MemtableMessage::FlushAll { reply } => self.flush_all(reply).await,
            MemtableMessage::Durable { through } => self.durable(through).await,
            MemtableMessage::Flushed { memtable, through } => self.flushed(memtable, through).await,
        }
    }

    /// Stop only once every accepted commit has been answered.
    fn ready_to_stop(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Closing the WAL writer's and the flusher's mailboxes lets them finish what they were
    /// given, then stop.
    async fn on_stop(&mut self) -> Result<(), MailboxClosed> {
        self.peers.wal.close();
        self.peers.flusher.close();
        Ok(())
    }
}
