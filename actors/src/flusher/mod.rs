//! The flusher actor: sealed memtables become SSTs.
//!
//! Every sealed memtable is encoded as soon as it arrives — every version of every key (sorted
//! by key, newest first) as one Parquet SST, off the async threads, several memtables at once
//! when several are sealed. Then, in the order they were sealed, each SST is written under an
//! SST id the manifest publisher hands out, with put-if-absent (durable when it returns; an id
//! already taken — by an unpublished file a crash left behind, or by another writer — is skipped,
//! never overwritten); open it; have the publisher publish a version that adds it and raises the
//! WAL floor to the memtable's newest commit; then tell the memtable actor, which drops the
//! memtable and lets the WAL writer delete the segments below the floor.
//!
//! Promises:
//! - an SST is named in a manifest version only after it is durably written (invariant 6);
//! - memtables are published in the order they were sealed, so the WAL floor only rises;
//! - a failure (storage, or being fenced by a newer writer) stops the database: the memtable
//!   stays in memory and in the WAL, so nothing acknowledged is lost.

mod msg;

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{BooleanArray, RecordBatch, UInt64Array};
use damselfly_runtimes::{
    Runtime, RuntimeExt, Storage, StorageError, Stored, TaskError, put_if_absent_or_own,
};

pub use self::msg::FlusherMessage;
use crate::kernel::{Actor, Address, Lifecycle, MailboxClosed, Notifier};
use crate::manifest::{PublisherMessage, SstDescriptor, sst_path};
use crate::memtable::{Chunk, Memtable, MemtableMessage, Visibility};
use crate::metrics::EngineMetrics;
use crate::probe::{self, Probe};
use crate::sst::{BlockCache, EncodedSst, SstError, SstOptions, SstReader, SstWriter, sst_schema};
use crate::table::{KeyBytes, TableSchema};

/// Rows gathered from a memtable per batch handed to the SST writer.
const FLUSH_CHUNK_ROWS: usize = 8 * 1024;

/// A flush failure.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Writing or reading the SST failed.
    #[error(transparent)]
    Sst(#[from] SstError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The encoding task did not finish.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The manifest publisher stopped (it failed, or the database was fenced).
    #[error(transparent)]
    Publisher(#[from] MailboxClosed),
    /// Gathering a memtable's rows failed (a bug: the rows were checked when committed).
    #[error("gathering memtable rows: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// What the flusher needs around it.
#[derive(Debug)]
pub struct FlusherContext {
    /// Where SSTs go.
    pub storage: Arc<dyn Storage>,
    /// For the encoding work, off the async threads.
    pub runtime: Arc<dyn Runtime>,
    /// The table.
    pub table: Arc<TableSchema>,
    /// How SSTs are written.
    pub options: SstOptions,
    /// The cache new SST readers share.
    pub cache: Arc<BlockCache>,
    /// The manifest publisher.
    pub publisher: Address<PublisherMessage>,
    /// The memtable actor, told when a memtable is in a published SST.
    pub memtable: Notifier<MemtableMessage>,
    /// Counters.
    pub metrics: Arc<EngineMetrics>,
    /// The flusher's own mailbox, where encoding tasks report.
    pub flusher: Notifier<FlusherMessage>,
    /// When flushes wait for compaction (`None`: never).
    pub level0_stop: Option<Level0Stop>,
}

/// Flushes wait while level 0 has `files` SSTs or more, until compaction makes room — unless
/// the database is closing, or for at most `max_wait`: compaction that cannot make progress
/// (its storage failing, say) costs read speed, never a flush that waits forever.
#[derive(Debug)]
pub struct Level0Stop {
    /// The stop threshold.
    pub files: usize,
    /// The longest one flush waits.
    pub max_wait: Duration,
    /// Where the current version is.
    pub visibility: Arc<Visibility>,
    /// Whether the database is closing (then flushes no longer wait).
    pub lifecycle: Lifecycle,
}

/// How often a flush held back by level 0 looks again.
const LEVEL0_POLL: Duration = Duration::from_millis(10);

/// A memtable being flushed: encoding, or encoded and waiting for its turn to be published.
#[derive(Debug)]
struct Pending {
    memtable: Arc<Memtable>,
    encoded: Option<Result<EncodedSst, FlushError>>,
}

/// The flusher actor.
#[derive(Debug)]
pub struct Flusher {
    context: FlusherContext,
    /// Memtables in the order they were sealed.
    pending: VecDeque<Pending>,
    /// Buffers of SSTs already written, for the next ones to encode into.
    spare_buffers: Vec<Vec<u8>>,
}

/// Spare SST buffers kept at most: as many as flushes usually run at once.
const SPARE_BUFFERS: usize = 2;

impl Flusher {
    /// A flusher working in `context`.
    pub fn new(context: FlusherContext) -> Self {
        Self {
            context,
            pending: VecDeque::new(),
            spare_buffers: Vec::new(),
        }
    }

    /// Starts encoding `memtable` on a blocking thread; the result comes back as
    /// [`FlusherMessage::Encoded`].
    fn start(&mut self, memtable: Arc<Memtable>) {
        let context = &self.context;
        let (runtime, table, options, flusher) = (
            Arc::clone(&context.runtime),
            Arc::clone(&context.table),
            context.options.clone(),
            context.flusher.clone(),
        );
        let id = memtable.id();
        let sealed = Arc::clone(&memtable);
        let buffer = self.spare_buffers.pop().unwrap_or_default();
        // Detached: the result arrives as a message.
        drop(context.runtime.spawn("flusher.encode", async move {
            let result = runtime
                .run_blocking("flusher.encode", move || {
                    encode(&sealed, &table, &options, buffer)
                })
                .await
                .map_err(FlushError::from)
                .and_then(|encoded| encoded);
            // The flusher may have stopped (the database failed); then nobody waits for this.
            let _ = flusher.notify(FlusherMessage::Encoded {
                memtable: id,
                result,
            });
        }));
        self.pending.push_back(Pending {
            memtable,
            encoded: None,
        });
    }

    /// Publishes the encoded memtables at the head of the queue.
    async fn publish_ready(&mut self) -> Result<(), FlushError> {
        while self
            .pending
            .front()
            .is_some_and(|pending| pending.encoded.is_some())
        {
            let Some(Pending {
                memtable,
                encoded: Some(encoded),
            }) = self.pending.pop_front()
            else {
                break;
            };
            self.publish(memtable, encoded?).await?;
        }
        Ok(())
    }

    /// Waits while level 0 is at the stop threshold.
    async fn wait_for_level0(&self) {
        let context = &self.context;
        let Some(stop) = &context.level0_stop else {
            return;
        };
        let level0_files = || {
            let (view, _) = stop.visibility.snapshot();
            view.version.version.level(0).len()
        };
        if level0_files() < stop.files {
            return;
        }
        context.metrics.flush_stalls.add(1);
        probe::hit(&*context.runtime, Probe::FlushWaitedForCompaction);
        tracing::debug!(
            files = stop.files,
            "level 0 is full; the flush waits for compaction"
        );
        let deadline = context.runtime.now() + stop.max_wait;
        while level0_files() >= stop.files && stop.lifecycle.check().is_ok() {
            if context.runtime.now() >= deadline {
                tracing::warn!(
                    files = level0_files(),
                    waited = ?stop.max_wait,
                    "compaction made no room in level 0; the flush goes ahead"
                );
                probe::hit(&*context.runtime, Probe::FlushStopTimedOut);
                return;
            }
            context.runtime.sleep(LEVEL0_POLL).await;
        }
    }

    async fn publish(
        &mut self,
        memtable: Arc<Memtable>,
        encoded: EncodedSst,
    ) -> Result<(), FlushError> {
        self.wait_for_level0().await;
        let context = &self.context;
        let through = memtable.last_timestamp();
        let id = self.write(&encoded).await?;
        let path = sst_path(id);
        let reader = SstReader::open(
            Arc::clone(&context.storage),
            &path,
            Arc::clone(&context.table),
            Arc::clone(&context.cache),
            encoded.info.footer,
            encoded.info.bytes,
        )
        .await?;
        let descriptor = SstDescriptor::from_info(id, 0, &encoded.info);
        context
            .publisher
            .ask(|reply| PublisherMessage::AddSst {
                descriptor,
                reader: Arc::new(reader),
                wal_floor: through,
                reply,
            })
            .await?;
        context.metrics.rows_flushed.add(encoded.info.rows);
        context
            .metrics
            .sst_bytes_written
            .add(encoded.bytes.len() as u64);
        tracing::info!(
            memtable = memtable.id(),
            sst = id,
            rows = encoded.info.rows,
            bytes = encoded.bytes.len(),
            %through,
            "memtable flushed"
        );
        // The memtable may have stopped meanwhile (closing); then nobody waits for this.
        let _ = context.memtable.notify(MemtableMessage::Flushed {
            memtable: memtable.id(),
            through,
        });
        // The bytes are on storage now; their buffer serves the next SST, unless the storage
        // keeps them (in memory).
        if self.spare_buffers.len() < SPARE_BUFFERS
            && let Ok(mut buffer) = encoded.bytes.try_into_mut()
        {
            buffer.clear();
            self.spare_buffers.push(buffer.into());
        }
        Ok(())
    }

    /// Writes the SST under the next free id and returns the id.
    async fn write(&self, encoded: &EncodedSst) -> Result<u64, FlushError> {
        let context = &self.context;
        loop {
            let id = context
                .publisher
                .ask(|reply| PublisherMessage::ReserveSstIds { count: 1, reply })
                .await?
                .start;
            let path = sst_path(id);
            let stored = put_if_absent_or_own(&*context.storage, &path, encoded.bytes.clone());
            match stored.await? {
                Stored::Created | Stored::FoundOwn => return Ok(id),
                Stored::Taken => {
                    tracing::warn!(
                        path,
                        "an SST file already has this name; trying the next id"
                    );
                }
            }
        }
    }
}

/// Encodes every version of `memtable` as an SST. The memtable is sealed: nothing is added to it
/// while this runs.
fn encode(
    memtable: &Memtable,
    table: &TableSchema,
    options: &SstOptions,
    buffer: Vec<u8>,
) -> Result<EncodedSst, FlushError> {
    let mut writer = SstWriter::with_buffer(table, options, memtable.version_count(), buffer)?;
    let schema = sst_schema(table);
    let mut from = Bound::Unbounded;
    loop {
        let chunk =
            memtable.versions_chunk(from.as_ref().map(KeyBytes::as_bytes), FLUSH_CHUNK_ROWS);
        let Some(last) = chunk.keys.last().cloned() else {
            break;
        };
        let batch = sst_batch(&schema, table.schema().fields().len(), &chunk)?;
        writer.write(&batch, &chunk.keys)?;
        from = Bound::Excluded(last);
    }
    Ok(writer.finish()?)
}

/// A chunk of memtable versions as a batch of the SST schema: the user columns, then the commit
/// timestamp and the delete flag.
fn sst_batch(
    schema: &arrow_schema::SchemaRef,
    user_columns: usize,
    chunk: &Chunk,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut columns = chunk.gather(&(0..user_columns).collect::<Vec<_>>())?;
    columns.push(Arc::new(UInt64Array::from_iter_values(
        chunk.timestamps.iter().map(|timestamp| timestamp.get()),
    )));
    columns.push(Arc::new(BooleanArray::from_iter(
        chunk.rows.iter().map(|&(_, _, deleted)| Some(deleted)),
    )));
    RecordBatch::try_new(Arc::clone(schema), columns)
}

impl Actor for Flusher {
    type Message = FlusherMessage;
    type Error = FlushError;

    const NAME: &'static str = "flusher";

    async fn handle(&mut self, message: FlusherMessage) -> Result<(), FlushError> {
        match message {
            FlusherMessage::Flush { memtable } => {
                self.start(memtable);
                Ok(())
            }
            FlusherMessage::Encoded { memtable, result } => {
                if let Some(pending) = self
                    .pending
                    .iter_mut()
                    .find(|pending| pending.memtable.id() == memtable)
                {
                    pending.encoded = Some(result);
                }
                self.publish_ready().await
            }
        }
    }

    /// Memtables accepted are flushed before the flusher stops.
    fn ready_to_stop(&self) -> bool {
        self.pending.is_empty()
    }
}
