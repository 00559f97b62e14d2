//! Scans: the newest visible version of every key, in key order, filtered and projected.
//!
//! Correctness first: for each key the scan picks the newest version at or before the snapshot
//! timestamp, drops it if it is a delete, and only then evaluates the filter — so an older
//! version of a key can never stand in for a newer one that fails the filter (DESIGN.md
//! invariant 3). Then: only the columns the filter and the projection need are gathered (with
//! arrow's `interleave`, a chunk at a time), and small filtered results are coalesced into
//! batches of `batch_rows`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use arrow_select::coalesce::BatchCoalescer;
use futures_lite::{Stream, StreamExt as _};

use crate::db::Db;
use crate::error::Error;
use crate::expr::{Expr, Predicate};
use crate::read::merge::Merge;
use crate::read::range::ScanRange;
use crate::snapshot::Snapshot;
use crate::transaction::StagedWrites;

/// Rows per output batch unless [`Scan::batch_rows`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// A scan being configured. Nothing is read until [`Scan::collect`] or [`Scan::stream`].
#[derive(Debug)]
#[must_use = "a scan does nothing until collected or streamed"]
pub struct Scan {
    source: Source,
    filter: Option<Expr>,
    projection: Option<Vec<String>>,
    limit: Option<usize>,
    batch_rows: usize,
}

#[derive(Debug)]
enum Source {
    /// Read the database as of the moment the scan starts.
    Db(Db),
    /// Read a snapshot.
    Snapshot(Snapshot),
    /// Read a transaction's snapshot overlaid with its writes so far.
    Transaction(Snapshot, StagedWrites),
}

impl Scan {
    pub(crate) fn of_db(db: Db) -> Self {
        Self::new(Source::Db(db))
    }

    pub(crate) fn of_snapshot(snapshot: Snapshot) -> Self {
        Self::new(Source::Snapshot(snapshot))
    }

    pub(crate) fn of_transaction(snapshot: Snapshot, staged: StagedWrites) -> Self {
        Self::new(Source::Transaction(snapshot, staged))
    }

    fn new(source: Source) -> Self {
        Self {
            source,
            filter: None,
            projection: None,
            limit: None,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// Keeps only rows for which `predicate` is true (a null result drops the row). Calling
    /// `filter` again adds a condition: both must hold.
    pub fn filter(mut self, predicate: Expr) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(existing) => existing.and(predicate),
            None => predicate,
        });
        self
    }

    /// Returns only these columns, in this order: `.projection(&["id", "score"])`.
    pub fn projection(mut self, columns: &[impl AsRef<str>]) -> Self {
        self.projection = Some(
            columns
                .iter()
                .map(|column| column.as_ref().to_owned())
                .collect(),
        );
        self
    }

    /// Returns at most `rows` rows (the first ones in key order).
    pub fn limit(mut self, rows: usize) -> Self {
        self.limit = Some(rows);
        self
    }

    /// Returns batches of at most `rows` rows (default 8192).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// Runs the scan and returns every batch.
    pub async fn collect(self) -> Result<Vec<RecordBatch>, Error> {
        let mut cursor = self.start().await?;
        let mut batches = Vec::new();
        while let Some(batch) = cursor.next_batch().await? {
            batches.push(batch);
        }
        Ok(batches)
    }

    /// Runs the scan as a stream of batches.
    pub async fn stream(self) -> Result<ScanStream, Error> {
        let cursor = self.start().await?;
        let stream = futures_lite::stream::unfold(Some(cursor), |cursor| async move {
            let mut cursor = cursor?;
            match cursor.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), Some(cursor))),
                Ok(None) => None,
                // Nothing follows an error.
                Err(error) => Some((Err(error), None)),
            }
        });
        Ok(ScanStream {
            // Fused: polled again after its end, it ends again instead of panicking.
            inner: Box::pin(stream.fuse()),
        })
    }

    async fn start(self) -> Result<Cursor, Error> {
        let (snapshot, staged) = match self.source {
            Source::Db(db) => (db.begin_snapshot().await?, None),
            Source::Snapshot(snapshot) => (snapshot, None),
            Source::Transaction(snapshot, staged) => (snapshot, Some(staged)),
        };
        snapshot.db.check_open()?;
        if self.batch_rows == 0 {
            return Err(Error::invalid_input("batch_rows must be greater than zero"));
        }
        let plan = Plan::new(
            snapshot.db.table.schema(),
            self.filter.as_ref(),
            self.projection.as_deref(),
        )?;
        let target_rows = self.batch_rows.min(self.limit.unwrap_or(usize::MAX)).max(1);
        let range = ScanRange::of(plan.predicate.as_ref(), &snapshot.db.table);
        let merge = snapshot
            .merge(
                plan.gathered.clone(),
                Arc::clone(&plan.gathered_schema),
                range,
                staged.as_ref(),
            )
            .await?;
        Ok(Cursor {
            _snapshot: snapshot,
            coalescer: BatchCoalescer::new(Arc::clone(&plan.output_schema), target_rows),
            merge,
            plan,
            remaining: self.limit,
            exhausted: false,
        })
    }
}

/// The batches of a running scan. `Send`, `'static` and `Unpin`: hold it across awaits, move it
/// between tasks. Once it has ended it keeps returning `None`.
pub struct ScanStream {
    inner: Pin<Box<dyn Stream<Item = Result<RecordBatch, Error>> + Send>>,
}

impl std::fmt::Debug for ScanStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ScanStream")
    }
}

impl Stream for ScanStream {
    type Item = Result<RecordBatch, Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(context)
    }
}

/// Which columns a scan reads and returns.
#[derive(Debug)]
struct Plan {
    /// The columns read from the table: the projection's and the filter's, in table order.
    gathered: Vec<usize>,
    gathered_schema: SchemaRef,
    predicate: Option<Predicate>,
    /// Positions in `gathered` of the output columns, in output order.
    output: Vec<usize>,
    output_schema: SchemaRef,
}

impl Plan {
    fn new(
        table: &SchemaRef,
        filter: Option<&Expr>,
        projection: Option<&[String]>,
    ) -> Result<Self, Error> {
        let predicate = filter.map(|filter| filter.bind(table)).transpose()?;
        let output_columns: Vec<usize> = match projection {
            None => (0..table.fields().len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| column_index(table, name))
                .collect::<Result<_, _>>()?,
        };
        let mut gathered = output_columns.clone();
        if let Some(predicate) = &predicate {
            for name in predicate.columns() {
                gathered.push(column_index(table, &name)?);
            }
        }
        gathered.sort_unstable();
        gathered.dedup();
        let output = output_columns
            .iter()
            .map(|column| gathered.binary_search(column).unwrap_or_default())
            .collect();
        Ok(Self {
            gathered_schema: Arc::new(table.project(&gathered)?),
            output_schema: Arc::new(table.project(&output_columns)?),
            gathered,
            predicate,
            output,
        })
    }
}

fn column_index(schema: &Schema, name: &str) -> Result<usize, Error> {
    schema.index_of(name).map_err(|_| {
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        Error::invalid_input(format!(
            "the table has no column {name:?} (columns: {})",
            columns.join(", ")
        ))
    })
}

/// A running scan: the merge of its sources, and the rows waiting to fill a batch.
struct Cursor {
    /// The snapshot the scan reads: holding it keeps its SST files from the GC sweeper until
    /// the scan is dropped (the merge's sources hold the files' contents, not the pins).
    _snapshot: Snapshot,
    merge: Merge,
    plan: Plan,
    coalescer: BatchCoalescer,
    /// Rows still to return, when limited.
    remaining: Option<usize>,
    /// Every row has been read into the coalescer.
    exhausted: bool,
}

impl Cursor {
    /// The next output batch, or `None` when the scan is complete. Yields to the executor after
    /// every merged batch, so a selective filter over many rows does not hold a thread.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        loop {
            if self.remaining == Some(0) {
                return Ok(None);
            }
            if let Some(batch) = self.coalescer.next_completed_batch() {
                return Ok(Some(self.take_limited(batch)));
            }
            if self.exhausted {
                return Ok(None);
            }
            match self.merge.next_batch().await? {
                Some(gathered) => self.push(gathered)?,
                None => {
                    self.exhausted = true;
                    self.coalescer.finish_buffered_batch()?;
                }
            }
            futures_lite::future::yield_now().await;
        }
    }

    fn take_limited(&mut self, batch: RecordBatch) -> RecordBatch {
        match &mut self.remaining {
            Some(remaining) => {
                let rows = batch.num_rows().min(*remaining);
                *remaining -= rows;
                batch.slice(0, rows)
            }
            None => batch,
        }
    }

    /// Filters and projects merged rows into the coalescer.
    fn push(&mut self, gathered: RecordBatch) -> Result<(), Error> {
        let output = gathered.project(&self.plan.output)?;
        match &self.plan.predicate {
            Some(predicate) => {
                let mask = predicate.evaluate(&gathered)?;
                self.coalescer.push_batch_with_filter(output, &mask)?;
            }
            None => self.coalescer.push_batch(output)?,
        }
        Ok(())
    }
}
