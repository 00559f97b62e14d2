//! The runtime and storage ports of damselfly.
//!
//! damselfly's engine reaches tasks, time, randomness and files only through the two traits of
//! this crate, [`Runtime`] and [`Storage`], so that the same engine runs on tokio
//! ([`TokioRuntime`]), on smol ([`SmolRuntime`]), on the deterministic simulator of the
//! `damselfly-sim` crate, and on executors of users' own.

#![deny(missing_docs)]

#[cfg(any(feature = "tokio", feature = "smol"))]
mod background;
mod runtime;
#[cfg(feature = "smol")]
mod smol_runtime;
pub mod storage;
#[cfg(feature = "tokio")]
mod tokio_runtime;

pub use runtime::{
    BlockingJob, BlockingResult, BoxFuture, Instant, JoinHandle, Runtime, RuntimeExt, SeededRandom,
    TaskError, panic_message,
};
#[cfg(feature = "smol")]
pub use smol_runtime::SmolRuntime;
pub use storage::{
    AfterPowerLoss, Appender, Durability, FileInfo, FusioStorage, HookedStorage, LocalDiskStorage,
    MemoryStorage, PutOutcome, Storage, StorageCall, StorageError, StorageErrorKind, StorageHook,
    Stored, UnsyncedFile, put_if_absent_or_own,
};
#[cfg(feature = "tokio")]
pub use tokio_runtime::TokioRuntime;
