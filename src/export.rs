//! Exporting a snapshot as one plain Parquet file, for tools that know nothing of damselfly.
//!
//! The file holds the live table as of the snapshot: the newest version of every key at or
//! before its timestamp, deletes applied, user columns only, in key order. It is written
//! streaming — a chunk of the snapshot's scan is encoded at a time, off the async threads, and
//! finished row groups are appended to the file — so exporting a large table takes little
//! memory. The file is synced before `export_parquet` returns.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use damselfly_runtimes::{Durability, LocalDiskStorage, RuntimeExt, Storage, StorageErrorKind};
use futures_lite::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, ErrorKind};
use crate::snapshot::Snapshot;

/// Rows read from the snapshot per encoding step.
const EXPORT_BATCH_ROWS: usize = 64 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Rows in the file.
    pub rows: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

type Writer = ArrowWriter<Vec<u8>>;

impl Snapshot {
    /// Writes the table as of this snapshot — live rows only, user columns, in key order — to a
    /// new Parquet file (zstd) at `path` on the local disk, for DuckDB, pyarrow, polars or any
    /// Parquet reader. Fails if a file already exists there.
    pub async fn export_parquet(&self, path: impl AsRef<Path>) -> Result<ExportSummary, Error> {
        let path = path.as_ref();
        let (folder, name) = split(path)?;
        let runtime = Arc::clone(&self.db.runtime);
        let storage = LocalDiskStorage::open(folder, Arc::clone(&runtime)).await?;
        let mut file = storage.create(&name).await.map_err(|error| {
            if error.kind == StorageErrorKind::AlreadyExists {
                Error::invalid_input(format!(
                    "{} already exists; export writes a new file",
                    path.display()
                ))
            } else {
                error.into()
            }
        })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer: Writer = ArrowWriter::try_new(
            Vec::new(),
            Arc::clone(self.db.table.schema()),
            Some(properties),
        )
        .map_err(parquet_error)?;
        let mut rows = 0;
        let mut batches = self.scan().batch_rows(EXPORT_BATCH_ROWS).stream().await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            let (returned, encoded) = runtime
                .run_blocking("export.encode", move || encode(writer, batch))
                .await??;
            writer = returned;
            if !encoded.is_empty() {
                file.append(encoded, Durability::Buffered).await?;
            }
        }
        let tail = runtime
            .run_blocking("export.finish", move || finish(writer))
            .await??;
        file.append(tail, Durability::Synced).await?;
        let bytes = file.len();
        file.close().await?;
        Ok(ExportSummary { rows, bytes })
    }
}

/// Encodes `batch`; returns the writer and the bytes of the row groups it completed.
fn encode(mut writer: Writer, batch: RecordBatch) -> Result<(Writer, Bytes), Error> {
    writer.write(&batch).map_err(parquet_error)?;
    let finished = Bytes::from(std::mem::take(writer.inner_mut()));
    Ok((writer, finished))
}

/// Finishes the file; returns its last bytes (the open row group and the footer).
fn finish(writer: Writer) -> Result<Bytes, Error> {
    writer.into_inner().map(Bytes::from).map_err(parquet_error)
}

fn parquet_error(error: parquet::errors::ParquetError) -> Error {
    Error::with_source(ErrorKind::Internal, error)
}

/// The folder and the file name of `path`.
fn split(path: &Path) -> Result<(std::path::PathBuf, String), Error> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Error::invalid_input(format!("{} does not name a file", path.display())))?
        .to_owned();
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    Ok((folder, name))
}
