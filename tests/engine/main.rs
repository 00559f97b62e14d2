//! The public-API tests of the engine, one module per capability, compiled into one test binary
//! so that the workspace links once rather than once per file (`cargo test --test engine`;
//! `cargo test --test engine restart::` runs one module).

#[macro_use]
mod common;
mod compaction;

mod background;
mod bad_input;
mod concurrency;
mod crash_during_flush;
mod crash_wal_cut;
mod determinism;
mod fencing;
mod flush_and_read;
mod followers;
mod ingest_and_read;
mod interop;
mod key_types;
mod lifecycle;
mod memtable_budget;
mod model;
#[cfg(feature = "s3")]
mod object_store;
mod on_fs;
mod pruning;
mod restart;
#[cfg(feature = "s3")]
mod s3_proxy;
mod scan_filters;
mod snapshot_stability;
mod sst_corruption;
mod time_travel;
mod transactions;
mod wal_corruption;
mod wal_sync_policies;
