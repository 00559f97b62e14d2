//! The one run loop every actor lives in.
//!
//! An actor only says what it does when it starts ([`Actor::on_start`]), with a message
//! ([`Actor::handle`]), after a burst of
//! messages ([`Actor::on_idle`] — where the WAL writer syncs once for a whole group), on a timer
//! ([`Actor::next_tick`]/[`Actor::on_tick`]) and before it stops ([`Actor::on_stop`]). The loop
//! does the rest, the same way for everyone:
//!
//! - it delivers notices before requests, and hands over every queued message (up to
//!   [`BURST_LIMIT`]) before calling `on_idle`, so work that arrives while the actor is busy is
//!   batched;
//! - when its request lane ends (closed, or every address dropped) it drains what is queued,
//!   keeps listening to notices until [`Actor::ready_to_stop`], calls `on_stop` and exits;
//! - when the handler returns an error or panics, it records the failure in the [`Lifecycle`]
//!   — which stops every other actor — and exits without draining: after a failure no further
//!   work is safe to do;
//! - when another actor fails, it exits at the next message boundary.
//!
//! Exiting drops the actor, and with it every reply slot it still holds, so nobody waits on it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use damselfly_runtimes::{Instant, JoinHandle, Runtime, RuntimeExt};
use futures_lite::FutureExt;
use tracing::Instrument;

use super::lifecycle::Lifecycle;
use super::mailbox::{Delivery, Mailbox};

/// The most messages handled between two calls of [`Actor::on_idle`], so that a steady stream
/// of messages cannot postpone an actor's batch work (such as a WAL sync) forever.
pub const BURST_LIMIT: usize = 1024;

/// An engine component that owns its state and handles one message at a time.
pub trait Actor: Send + 'static {
    /// What the actor accepts.
    type Message: Send + 'static;
    /// What a failure looks like.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The actor's name, used for its task, its tracing spans and failure reports.
    const NAME: &'static str;

    /// Called once, before the first message.
    fn on_start(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Handles one message.
    fn handle(
        &mut self,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called once the mailbox is momentarily empty after one or more messages.
    fn on_idle(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// When the actor next wants [`Actor::on_tick`] called, if at all. Asked again after every
    /// burst and tick.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    /// Called when the deadline from [`Actor::next_tick`] has passed.
    fn on_tick(&mut self, _now: Instant) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Whether the actor may stop once its requests have ended (it may still be waiting for
    /// notices that finish work it accepted).
    fn ready_to_stop(&self) -> bool {
        true
    }

    /// Called once before a clean stop, after every request was handled.
    fn on_stop(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

/// Starts `actor` on `runtime`, reading `mailbox`. The handle completes when the actor stops.
pub fn spawn_actor<A: Actor>(
    runtime: &Arc<dyn Runtime>,
    lifecycle: &Lifecycle,
    actor: A,
    mailbox: Mailbox<A::Message>,
) -> JoinHandle<()> {
    let lifecycle = lifecycle.clone();
    let clock = Arc::clone(runtime);
    runtime.spawn(A::NAME, async move {
        let outcome = AssertUnwindSafe(run(actor, mailbox, &lifecycle, clock))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => lifecycle.fail(A::NAME, Arc::new(error)),
            Err(payload) => lifecycle.fail(A::NAME, Arc::new(ActorPanicked::from(payload))),
        }
    })
}

/// An actor's handler panicked; the payload's message is kept.
#[derive(Debug, thiserror::Error)]
#[error("panicked: {message}")]
pub struct ActorPanicked {
    message: String,
}

impl From<Box<dyn std::any::Any + Send>> for ActorPanicked {
    fn from(payload: Box<dyn std::any::Any + Send>) -> Self {
        Self {
            message: damselfly_runtimes::panic_message(payload.as_ref()),
        }
    }
}

enum Event<M> {
    Delivery(Delivery<M>),
    Tick,
    Failed,
}

async fn run<A: Actor>(
    mut actor: A,
    mailbox: Mailbox<A::Message>,
    lifecycle: &Lifecycle,
    clock: Arc<dyn Runtime>,
) -> Result<(), A::Error> {
    actor
        .on_start()
        .instrument(tracing::trace_span!("actor.start", actor = A::NAME))
        .await?;
    let mut requests_ended = false;
    // Messages handled so far, noted in the runtime's trace one by one.
    let mut delivered: u64 = 0;
    loop {
        if lifecycle.failure().is_some() {
            return Ok(());
        }
        if requests_ended && actor.ready_to_stop() {
            return stop(&mut actor).await;
        }
        let tick_at = actor.next_tick();
        match next_event(&mailbox, lifecycle, &clock, requests_ended, tick_at).await {
            Event::Failed => return Ok(()),
            Event::Tick => {
                let now = clock.now();
                actor
                    .on_tick(now)
                    .instrument(tracing::trace_span!("actor.tick", actor = A::NAME))
                    .await?;
            }
            Event::Delivery(Delivery::RequestsEnded) => requests_ended = true,
            // Nothing can arrive any more, so waiting longer cannot make the actor ready.
            Event::Delivery(Delivery::NoticesEnded) => return stop(&mut actor).await,
            Event::Delivery(Delivery::Message(first)) => {
                let mut next = Some(first);
                let mut handled = 0;
                while let Some(message) = next.take() {
                    delivered += 1;
                    clock.trace(A::NAME, delivered);
                    actor
                        .handle(message)
                        .instrument(tracing::trace_span!("actor.handle", actor = A::NAME))
                        .await?;
                    handled += 1;
                    if handled < BURST_LIMIT && lifecycle.failure().is_none() {
                        next = mailbox.try_next(requests_ended);
                    }
                }
                actor
                    .on_idle()
                    .instrument(tracing::trace_span!("actor.idle", actor = A::NAME))
                    .await?;
            }
        }
    }
}

async fn stop<A: Actor>(actor: &mut A) -> Result<(), A::Error> {
    tracing::debug!(actor = A::NAME, "actor stopping");
    actor.on_stop().await
}

/// The next thing to react to, in priority order: a failure elsewhere, a message, a tick.
async fn next_event<M>(
    mailbox: &Mailbox<M>,
    lifecycle: &Lifecycle,
    clock: &Arc<dyn Runtime>,
    requests_ended: bool,
    tick_at: Option<Instant>,
) -> Event<M> {
    let failed = async {
        lifecycle.failed().await;
        Event::Failed
    };
    let delivery = async { Event::Delivery(mailbox.next(requests_ended).await) };
    let tick = async {
        match tick_at {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(clock.now());
                clock.sleep(wait).await;
                Event::Tick
            }
            None => std::future::pending().await,
        }
    };
    // `or` polls its first future first: failure beats messages, messages beat ticks.
    failed.or(delivery.or(tick)).await
}
