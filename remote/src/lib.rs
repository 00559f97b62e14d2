//! Remote compaction for damselfly, over kameo.
//!
//! Compaction is the CPU-heavy part of an LSM; this crate moves it to other processes or
//! machines that reach the same storage (a shared folder, or an S3-compatible bucket):
//!
//! - a [`Worker`] (and the `damselfly-compactor` binary around it) runs jobs for a database;
//! - a [`RemoteExecutor`] plugs into [`DbBuilder::compaction_executor`] and sends each job to a
//!   worker of its pool, with timeouts, failover to other workers and a [`Fallback`];
//! - a [`Network`] is the process's place in the kameo swarm (one per process).
//!
//! ```no_run
//! # async fn example(db_builder: damselfly::DbBuilder) -> Result<(), Box<dyn std::error::Error>> {
//! use damselfly_remote::{Network, NetworkConfig, RemoteExecutor, RemoteOptions};
//!
//! // Workers connect here: `damselfly-compactor --storage … --peer <an address printed below>`.
//! let network = Network::start(NetworkConfig::new().listen("/ip4/0.0.0.0/tcp/4000".parse()?))?;
//! for address in network.listen_addresses().await {
//!     println!("workers connect to {address}");
//! }
//! let db = db_builder
//!     .compaction_executor(RemoteExecutor::factory(network, RemoteOptions::default()))
//!     .open(damselfly::runtime::TokioRuntime::current())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Safety rests on the manifest, not on the network: the database checks every outcome against
//! its job and publishes it only if the job's inputs are still live, so a worker that dies, a
//! late or duplicated answer or a partition delays compaction and never loses or duplicates a
//! row. Requests and answers carry a protocol number ([`PROTOCOL_VERSION`]); builds of different
//! protocols refuse each other. See `docs/remote-compaction.md`.
//!
//! [`DbBuilder::compaction_executor`]: damselfly::DbBuilder::compaction_executor

#![deny(missing_docs)]

mod client;
mod executor;
mod network;
pub mod protocol;
mod worker;

pub use client::{WorkerRef, find_workers};
pub use executor::{Fallback, RemoteExecutor, RemoteOptions};
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use network::{Network, NetworkConfig};
pub use protocol::PROTOCOL_VERSION;
pub use worker::{DEFAULT_POOL, DRILL_CRASH_EXIT_CODE, Drill, Worker, WorkerOptions};

/// A failure of the remote machinery (never of a job: those are compaction errors).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// [`Network::start`] was called before in this process (kameo has one swarm per process).
    #[error("the network was already started in this process; use Network::get")]
    AlreadyStarted,
    /// Starting, listening, dialing, registering or a request failed.
    #[error("remote compaction network: {0}")]
    Network(String),
}
