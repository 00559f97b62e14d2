//! The process's place in the kameo swarm.
//!
//! kameo keeps one swarm per process, so [`Network`] is one per process too: started once with
//! [`Network::start`], found again with [`Network::get`]. It owns a small tokio runtime on which
//! the swarm, the worker actors and every remote request run, so that a database on any runtime
//! (tokio, smol) can use remote workers: callers only await the results.
//!
//! Peers are found by address, never by multicast (addresses end in the peer id:
//! `/ip4/…/tcp/…/p2p/…`). Once connected, kameo's registry (a Kademlia DHT over the connections)
//! finds workers by the name they registered under. Best, the database listens and each worker
//! connects to it before registering (`damselfly-compactor --peer`): the registration is then
//! stored in the database's process. A database may also [`dial`](Network::dial) workers; then
//! a lookup asks only the five peers nearest the name, so with more than five peers some
//! workers may go unfound.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use kameo::remote::messaging;
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};

use crate::RemoteError;

/// How long a connection with nothing in flight stays open (jobs are occasional; redialing for
/// each would add a handshake to each).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest a request may wait for its reply on the wire. Jobs have their own, shorter
/// timeouts ([`RemoteOptions::job_timeout`](crate::RemoteOptions::job_timeout)); this only
/// keeps the transport from cutting a long job short.
const WIRE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Where the process listens and whom it dials at start.
#[derive(Debug, Clone, Default)]
pub struct NetworkConfig {
    listen: Vec<Multiaddr>,
    peers: Vec<Multiaddr>,
}

impl NetworkConfig {
    /// Nothing to listen on and nobody to dial: enough for a database that dials its workers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `address` (e.g. `/ip4/127.0.0.1/tcp/0` for a free port on loopback).
    pub fn listen(mut self, address: Multiaddr) -> Self {
        self.listen.push(address);
        self
    }

    /// Dials `address` at start. It should end in `/p2p/<peer id>` (as a worker prints it), so
    /// that the registry can ask that peer for workers.
    pub fn peer(mut self, address: Multiaddr) -> Self {
        self.peers.push(address);
        self
    }
}

/// This process's handle on the kameo swarm.
#[derive(Debug)]
pub struct Network {
    runtime: Runtime,
    peer_id: PeerId,
    commands: mpsc::UnboundedSender<Command>,
    listening: watch::Receiver<Vec<Multiaddr>>,
    /// Whether the config named addresses to listen on.
    listens: bool,
    /// The peers this process has a connection with.
    connected: watch::Receiver<BTreeSet<PeerId>>,
}

#[derive(Debug)]
enum Command {
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), RemoteError>>,
    },
}

static NETWORK: OnceLock<Network> = OnceLock::new();

impl Network {
    /// Joins the swarm: starts the runtime, listens and dials as `config` says. Once per
    /// process: a second call fails with [`RemoteError::AlreadyStarted`].
    pub fn start(config: NetworkConfig) -> Result<&'static Network, RemoteError> {
        if NETWORK.get().is_some() {
            return Err(RemoteError::AlreadyStarted);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("damselfly-remote")
            .enable_all()
            .build()
            .map_err(|error| RemoteError::Network(format!("starting its runtime: {error}")))?;
        let listens = !config.listen.is_empty();
        let prepared = {
            let _context = runtime.enter();
            prepare(config)
        };
        let swarm = match prepared {
            Ok(swarm) => swarm,
            Err(error) => {
                // Dropping a runtime may block, which an async caller's thread must not.
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let (announce, listening) = watch::channel(Vec::new());
        let (connections, connected) = watch::channel(BTreeSet::new());
        let network = Network {
            runtime,
            peer_id: *swarm.local_peer_id(),
            commands,
            listening,
            listens,
            connected,
        };
        if let Err(network) = NETWORK.set(network) {
            network.runtime.shutdown_background();
            return Err(RemoteError::AlreadyStarted);
        }
        let network = NETWORK.get().ok_or(RemoteError::AlreadyStarted)?;
        network
            .runtime
            .spawn(drive(swarm, receiver, announce, connections));
        Ok(network)
    }

    /// The network, if this process started it.
    pub fn get() -> Option<&'static Network> {
        NETWORK.get()
    }

    /// This process's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Dials `address` (ending in `/p2p/<peer id>`, as a worker prints it), so that its workers
    /// can be found. Returns once the dial has started; the connection comes up in the
    /// background.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), RemoteError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Dial { address, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The addresses this process listens on, each ending in `/p2p/<peer id>`, once the first
    /// is up (none, at once, when the config names none).
    pub async fn listen_addresses(&self) -> Vec<Multiaddr> {
        let mut listening = self.listening.clone();
        if self.listens {
            // Fails only if the swarm stopped; then what is known is all there is.
            let _ = listening.wait_for(|addresses| !addresses.is_empty()).await;
        }
        let addresses = listening.borrow().clone();
        addresses
            .into_iter()
            .map(|address| address.with(Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Whether this process has a connection with `peer`.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.borrow().contains(peer)
    }

    /// Waits until this process is connected to every peer of `peers` (at most `timeout`);
    /// returns the ones it is not connected to.
    pub async fn wait_connected(&self, peers: &[PeerId], timeout: Duration) -> Vec<PeerId> {
        let mut connected = self.connected.clone();
        let all = |connected: &BTreeSet<PeerId>| peers.iter().all(|peer| connected.contains(peer));
        // Fails only if the swarm stopped; then what is known is all there is.
        let _ = tokio::time::timeout(timeout, connected.wait_for(all)).await;
        let connected = connected.borrow();
        peers
            .iter()
            .filter(|peer| !connected.contains(peer))
            .copied()
            .collect()
    }

    /// Runs `future` on the network's runtime (where kameo works) and returns its output to a
    /// caller on any runtime.
    pub async fn run<F>(&self, future: F) -> Result<F::Output, RemoteError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .spawn(future)
            .await
            .map_err(|error| RemoteError::Network(format!("a network task failed: {error}")))
    }

    /// The network's tokio runtime.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Blocks this (non-async) thread on `future`, run on the network's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

fn stopped() -> RemoteError {
    RemoteError::Network("the swarm stopped".to_owned())
}

/// A swarm listening and dialing as `config` says, set as kameo's swarm for the process.
fn prepare(config: NetworkConfig) -> Result<Swarm<kameo::remote::Behaviour>, RemoteError> {
    let mut swarm = build_swarm()?;
    for address in config.listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| RemoteError::Network(format!("listening on {address}: {error}")))?;
    }
    for address in config.peers {
        dial(&mut swarm, address)?;
    }
    // kameo's swarm is per process as well; whoever set it first keeps it.
    swarm
        .behaviour()
        .try_init_global()
        .map_err(|_| RemoteError::AlreadyStarted)?;
    Ok(swarm)
}

fn build_swarm() -> Result<Swarm<kameo::remote::Behaviour>, RemoteError> {
    let network_error = |what: &str, error: &dyn std::fmt::Display| {
        RemoteError::Network(format!("building the swarm ({what}): {error}"))
    };
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| network_error("transport", &error))?
        .with_behaviour(|key| {
            let config = messaging::Config::default().with_request_timeout(WIRE_TIMEOUT);
            kameo::remote::Behaviour::new(key.public().to_peer_id(), config)
        })
        .map_err(|error| network_error("behaviour", &error))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

/// Dials `address`, first telling the registry whom it reaches (so lookups ask that peer).
fn dial(
    swarm: &mut Swarm<kameo::remote::Behaviour>,
    address: Multiaddr,
) -> Result<(), RemoteError> {
    if let Some(Protocol::P2p(peer)) = address.iter().last() {
        let mut reachable = address.clone();
        reachable.pop();
        swarm.add_peer_address(peer, reachable);
    }
    swarm
        .dial(address.clone())
        .map_err(|error| RemoteError::Network(format!("dialing {address}: {error}")))
}

/// The swarm's event loop: drives kameo's behaviour, announces listen addresses, dials.
async fn drive(
    mut swarm: Swarm<kameo::remote::Behaviour>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    announce: watch::Sender<Vec<Multiaddr>>,
    connections: watch::Sender<BTreeSet<PeerId>>,
) {
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "listening");
                    // Registrations carry it, so peers that learn of this one can dial it.
                    swarm.add_external_address(address.clone());
                    announce.send_modify(|addresses| addresses.push(address));
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    tracing::debug!(%peer_id, address = %endpoint.get_remote_address(), "connected");
                    connections.send_modify(|peers| {
                        peers.insert(peer_id);
                    });
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, num_established, .. } => {
                    tracing::debug!(%peer_id, ?cause, "connection closed");
                    if num_established == 0 {
                        connections.send_modify(|peers| {
                            peers.remove(&peer_id);
                        });
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    tracing::debug!(?peer_id, %error, "dial failed");
                }
                _ => {}
            },
            // The network is static, so the sender never drops; were it to, the swarm still runs.
            Some(command) = commands.recv() => match command {
                Command::Dial { address, reply } => {
                    let _ = reply.send(dial(&mut swarm, address));
                }
            },
        }
    }
}
