//! The actors of damselfly and the on-disk formats they own.
//!
//! The engine is a set of actors, each owning its state and reached only through typed messages
//! (see `DESIGN.md`): the [`wal`] writer, the [`memtable`], the [`flusher`], the [`compactor`],
//! the manifest publisher and the [`gc`] sweeper. [`manifest`] holds the manifest's versions,
//! record format and store, on which the publisher is built. The [`kernel`] gives them one run loop, bounded
//! mailboxes and a shared [`kernel::Lifecycle`] that turns any actor failure into a clear error
//! for every caller. [`table`] holds the table's schema and key encoding; [`sst`] the Parquet files
//! memtables are flushed to.
//!
//! Nothing here names a concrete runtime: time, tasks, randomness and files are reached through
//! `damselfly_runtimes::{Runtime, Storage}`, so the same actors run on tokio, smol and the
//! deterministic simulator.

#![deny(missing_docs)]

pub mod compactor;
mod encoding;
pub mod flusher;
pub mod gc;
pub mod kernel;
pub mod manifest;
pub mod memtable;
pub mod metrics;
pub mod probe;
pub mod sst;
pub mod table;
mod timestamp;
pub mod wal;

pub use timestamp::Timestamp;
