//! Finding a pool's workers and asking them: what the remote executor is built on, public for
//! tools of your own (a dispatcher, a health check).

use std::time::Duration;

use kameo::actor::RemoteActorRef;
use libp2p::PeerId;
use libp2p::futures::StreamExt;

use crate::protocol::{JobRequest, JobResponse};
use crate::worker::CompactionWorker;
use crate::{Network, RemoteError};

/// A worker found in a pool.
#[derive(Debug, Clone)]
pub struct WorkerRef {
    network: &'static Network,
    actor: RemoteActorRef<CompactionWorker>,
}

/// The workers registered under `pool` that answer within `timeout`, ordered by peer id.
pub async fn find_workers(
    network: &'static Network,
    pool: &str,
    timeout: Duration,
) -> Vec<WorkerRef> {
    let pool = pool.to_owned();
    let found = network
        .run(async move {
            let mut found = RemoteActorRef::<CompactionWorker>::lookup_all(pool.clone());
            let deadline = tokio::time::Instant::now() + timeout;
            let mut workers = Vec::new();
            loop {
                match tokio::time::timeout_at(deadline, found.next()).await {
                    Ok(Some(Ok(worker))) => workers.push(worker),
                    Ok(Some(Err(error))) => tracing::debug!(%error, %pool, "a lookup failed"),
                    Ok(None) | Err(_) => break,
                }
            }
            workers
        })
        .await
        .unwrap_or_default();
    let mut workers: Vec<WorkerRef> = found
        .into_iter()
        .map(|actor| WorkerRef { network, actor })
        .collect();
    workers.sort_by_key(|worker| worker.actor.id());
    workers.dedup_by_key(|worker| worker.actor.id());
    workers
}

impl WorkerRef {
    /// The peer the worker runs on.
    pub fn peer_id(&self) -> PeerId {
        // Only a worker of this very process has no peer id of its own.
        self.actor
            .id()
            .peer_id()
            .copied()
            .unwrap_or_else(|| self.network.peer_id())
    }

    /// Sends `request` and waits at most `timeout` for the answer.
    pub async fn ask(
        &self,
        request: &JobRequest,
        timeout: Duration,
    ) -> Result<JobResponse, RemoteError> {
        let (actor, request) = (self.actor.clone(), request.clone());
        self.network
            .run(async move {
                let asked = actor.ask(&request).reply_timeout(timeout).send();
                match tokio::time::timeout(timeout, asked).await {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(error)) => Err(RemoteError::Network(error.to_string())),
                    Err(_) => Err(RemoteError::Network(format!(
                        "no answer within {timeout:?}"
                    ))),
                }
            })
            .await?
    }
}
