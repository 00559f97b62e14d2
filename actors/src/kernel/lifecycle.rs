//! The database's life: open, closing, closed, or failed with a cause.
//!
//! Every actor and every handle shares one [`Lifecycle`]. When an actor fails (an error from a
//! handler, or a panic) the run loop records the cause here, once — the first failure wins —
//! and trips a kill switch that every run loop watches, so all actors stop promptly. Callers
//! check the lifecycle before they start work and consult it when a reply never comes, so a
//! caller always gets an error that carries the cause instead of hanging.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A shared, cheaply cloned view of the database's state.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    // Nothing is ever sent on this channel: closing it is the kill switch. Receivers see the
    // close as an error from `recv`, which wakes every waiting run loop at once.
    kill_sender: async_channel::Sender<()>,
    kill_receiver: async_channel::Receiver<()>,
}

#[derive(Clone)]
enum State {
    Open,
    Closing,
    Closed,
    Failed(Failure),
}

/// Why the database failed: the actor that failed and the error it failed with.
#[derive(Clone)]
pub struct Failure {
    /// The name of the actor that failed first.
    pub actor: &'static str,
    /// The error it failed with.
    pub cause: Arc<dyn std::error::Error + Send + Sync>,
}

impl fmt::Debug for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "the {} actor failed: {}", self.actor, self.cause)
    }
}

/// Why the database does not accept work.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// `close` was called (or is in progress).
    Closed,
    /// An actor failed; the database stopped.
    Failed(Failure),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Closed => formatter.write_str("the database is closed"),
            Unavailable::Failed(failure) => write!(formatter, "the database failed ({failure})"),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unavailable::Closed => None,
            Unavailable::Failed(failure) => Some(failure.cause.as_ref()),
        }
    }
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Lifecycle")
            .field(
                "available",
                &self.check().map_err(|reason| reason.to_string()),
            )
            .finish()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A new, open lifecycle.
    pub fn new() -> Self {
        let (kill_sender, kill_receiver) = async_channel::bounded(1);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::Open),
                kill_sender,
                kill_receiver,
            }),
        }
    }

    /// `Ok` while the database accepts work; otherwise why not.
    pub fn check(&self) -> Result<(), Unavailable> {
        match &*self.state() {
            State::Open => Ok(()),
            State::Closing | State::Closed => Err(Unavailable::Closed),
            State::Failed(failure) => Err(Unavailable::Failed(failure.clone())),
        }
    }

    /// Why work cannot go on: the failure if there was one, else "closed". Used when an actor
    /// stopped under a caller's feet and the caller needs the reason.
    pub fn unavailable(&self) -> Unavailable {
        match &*self.state() {
            State::Failed(failure) => Unavailable::Failed(failure.clone()),
            _ => Unavailable::Closed,
        }
    }

    /// The failure, if the database failed.
    pub fn failure(&self) -> Option<Failure> {
        match &*self.state() {
            State::Failed(failure) => Some(failure.clone()),
            _ => None,
        }
    }

    /// Records that `actor` failed with `cause` and stops every actor. Only the first failure is
    /// kept: later ones are usually consequences of it.
    pub fn fail(&self, actor: &'static str, cause: Arc<dyn std::error::Error + Send + Sync>) {
        {
            let mut state = self.state();
            if matches!(*state, State::Failed(_)) {
                return;
            }
            tracing::error!(actor, error = %cause, "actor failed; the database stops");
            *state = State::Failed(Failure { actor, cause });
        }
        self.inner.kill_sender.close();
    }

    /// Marks the start of a clean shutdown: new work is refused. Returns `false` when the
    /// database was already closing, closed or failed.
    pub fn begin_close(&self) -> bool {
        let mut state = self.state();
        if matches!(*state, State::Open) {
            *state = State::Closing;
            true
        } else {
            false
        }
    }

    /// Marks the end of a clean shutdown (a failure that happened meanwhile is kept).
    pub fn finish_close(&self) {
        let mut state = self.state();
        if matches!(*state, State::Closing) {
            *state = State::Closed;
        }
    }

    /// Completes when the database fails.
    pub async fn failed(&self) {
        // `recv` fails once the kill switch is closed; nothing is ever sent, so any return
        // means the switch tripped.
        let _ = self.inner.kill_receiver.recv().await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain enum, valid even if a holder panicked.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
