//! The public error: a small, stable [`ErrorKind`] that says what to do, a message that says what
//! went wrong, and the internal error as its source.

use std::fmt;
use std::sync::Arc;

use damselfly_actors::compactor::CompactionError;
use damselfly_actors::kernel::Unavailable;
use damselfly_actors::manifest::ManifestError;
use damselfly_actors::memtable::PrepareError;
use damselfly_actors::sst::SstError;
use damselfly_actors::table::SchemaError;
use damselfly_actors::table::descriptor::DescriptorError;
use damselfly_actors::wal::WalError;
use damselfly_runtimes::{StorageError, StorageErrorKind, TaskError};

use crate::expr::ExprError;

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is wrong (schema, key, filter, option, path): fix the call. Nothing was stored.
    InvalidInput,
    /// A transaction conflicted with a concurrent commit: retry the transaction.
    Conflict,
    /// The database is closed, or failed and stopped; the message carries the cause. Reopen it.
    Closed,
    /// Stored data is damaged; the message names the file and offset.
    Corruption,
    /// The storage failed (or a wait for resources timed out); retrying may help.
    Io,
    /// A bug in damselfly; please report it with the message.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Closed => "closed",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Io => "I/O error",
            ErrorKind::Internal => "internal error",
        };
        formatter.write_str(name)
    }
}

/// An error from damselfly.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// What the caller should do about it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<SchemaError> for Error {
    fn from(error: SchemaError) -> Self {
        Self::with_source(ErrorKind::InvalidInput, error)
    }
}

impl From<ExprError> for Error {
    fn from(error: ExprError) -> Self {
        Self::with_source(ErrorKind::InvalidInput, error)
    }
}

impl From<PrepareError> for Error {
    fn from(error: PrepareError) -> Self {
        // Encoding a batch that passed the schema checks fails only for batches too large to be
        // one commit, which is the caller's to split.
        Self::with_source(ErrorKind::InvalidInput, error)
    }
}

/// What a storage failure means to the caller: invalid input for a bad path, I/O otherwise.
fn storage_kind(kind: StorageErrorKind) -> ErrorKind {
    match kind {
        StorageErrorKind::InvalidPath => ErrorKind::InvalidInput,
        _ => ErrorKind::Io,
    }
}

impl From<StorageError> for Error {
    fn from(error: StorageError) -> Self {
        Self::with_source(storage_kind(error.kind), error)
    }
}

impl From<WalError> for Error {
    fn from(error: WalError) -> Self {
        match error {
            WalError::Storage(storage) => storage.into(),
            WalError::Corrupt { .. } => Self::with_source(ErrorKind::Corruption, error),
            WalError::SegmentTaken { .. } => Self::with_source(ErrorKind::Closed, error),
            WalError::Encode(_) | WalError::FrameTooLarge(_) => {
                Self::with_source(ErrorKind::InvalidInput, error)
            }
        }
    }
}

impl From<DescriptorError> for Error {
    fn from(error: DescriptorError) -> Self {
        let kind = match error {
            DescriptorError::UnsupportedVersion { .. } => ErrorKind::InvalidInput,
            DescriptorError::Corrupt { .. } | DescriptorError::InvalidTable { .. } => {
                ErrorKind::Corruption
            }
        };
        Self::with_source(kind, error)
    }
}

impl From<Unavailable> for Error {
    fn from(error: Unavailable) -> Self {
        Self::with_source(ErrorKind::Closed, error)
    }
}

impl From<TaskError> for Error {
    fn from(error: TaskError) -> Self {
        Self::with_source(ErrorKind::Internal, error)
    }
}

impl From<ManifestError> for Error {
    fn from(error: ManifestError) -> Self {
        let kind = match &error {
            ManifestError::Storage(storage) => storage_kind(storage.kind),
            ManifestError::Fenced { .. } | ManifestError::ClaimContended { .. } => {
                ErrorKind::Closed
            }
            ManifestError::Corrupt { .. } | ManifestError::UnsupportedFormat { .. } => {
                ErrorKind::Corruption
            }
            ManifestError::Encode(_) | ManifestError::InvalidVersion(_) => ErrorKind::Internal,
        };
        Self::with_source(kind, error)
    }
}

fn sst_kind(error: &SstError) -> ErrorKind {
    match error {
        SstError::Storage(storage) => storage_kind(storage.kind),
        SstError::Corrupt { .. } | SstError::ChecksumMismatch { .. } => ErrorKind::Corruption,
        _ => ErrorKind::Internal,
    }
}

impl From<SstError> for Error {
    fn from(error: SstError) -> Self {
        Self::with_source(sst_kind(&error), error)
    }
}

impl From<Arc<CompactionError>> for Error {
    /// A failed compaction, as `Db::compact` reports it.
    fn from(error: Arc<CompactionError>) -> Self {
        let kind = match error.as_ref() {
            CompactionError::Sst(sst) => sst_kind(sst),
            CompactionError::Storage(storage) => storage_kind(storage.kind),
            CompactionError::Publisher(_) => ErrorKind::Closed,
            CompactionError::Executor(_) => ErrorKind::Io,
            _ => ErrorKind::Internal,
        };
        Self {
            kind,
            message: format!("compaction failed: {error}"),
            source: Some(error),
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    /// Arrow failing on data the engine already checked is a bug.
    fn from(error: arrow_schema::ArrowError) -> Self {
        Self::with_source(ErrorKind::Internal, error)
    }
}
