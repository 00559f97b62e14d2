#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod builder;
mod db;
mod error;
mod export;
mod expr;
mod follower;
mod metrics;
mod open;
mod read;
mod scan;
mod snapshot;
mod transaction;
mod value;

pub use builder::DbBuilder;
pub use damselfly_actors::Timestamp;
pub use damselfly_actors::sst::SstCompression;
pub use damselfly_actors::wal::WalSyncPolicy;
pub use db::{Db, VersionInfo};
pub use error::{Error, ErrorKind};
pub use export::ExportSummary;
pub use expr::{Expr, ExprError};
pub use metrics::Metrics;
pub use scan::{DEFAULT_BATCH_ROWS, Scan, ScanStream};
pub use snapshot::Snapshot;
pub use transaction::{CommitMode, Transaction};
pub use value::{Key, Value};

/// The arrow crates damselfly's API speaks, re-exported so applications use the same versions.
pub use {arrow_array, arrow_schema};

/// Runtimes: the [`Runtime`](runtime::Runtime) trait the engine reaches the world through, and
/// its tokio and smol implementations. The deterministic runtime is `damselfly_sim::SimRuntime`.
pub mod runtime {
    #[cfg(feature = "smol")]
    pub use damselfly_runtimes::SmolRuntime;
    #[cfg(feature = "tokio")]
    pub use damselfly_runtimes::TokioRuntime;
    pub use damselfly_runtimes::{
        BlockingJob, BlockingResult, BoxFuture, Instant, JoinHandle, Runtime, RuntimeExt,
        SeededRandom, TaskError,
    };
}

/// Compaction and garbage collection: the compactor's knobs, the [`CompactionExecutor`]
/// port with its serialisable jobs, and what a GC sweep reports.
///
/// [`CompactionExecutor`]: compaction::CompactionExecutor
pub mod compaction {
    pub use damselfly_actors::compactor::plan::{
        LeveledOptions, SUBCOMPACTIONS_DEFAULT, TieredOptions,
    };
    pub use damselfly_actors::compactor::{
        CompactionError, CompactionExecutor, CompactionJob, CompactionOptions, CompactionOutcome,
        CompactionStrategy, JOB_FORMAT, LocalExecutor,
    };
    pub use damselfly_actors::gc::GcReport;
    pub use damselfly_actors::metrics::ExecutorMetrics;
    pub use damselfly_actors::sst::SstOptions;
}

/// Storage: the port the engine keeps its files through, and its backends.
pub mod storage {
    pub use damselfly_runtimes::storage::*;
}
