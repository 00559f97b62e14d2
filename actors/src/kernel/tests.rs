//! The run loop's contract, on a real runtime: replies, batching, draining, failure, ticks.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use damselfly_runtimes::{Instant, Runtime, SmolRuntime};

use super::*;

/// What the test actor did, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn log_entries(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

enum Message {
    Echo(u64, Reply<u64>),
    Record(&'static str),
    Fail,
    Panic,
    /// A notice that settles pending work.
    Settle,
}

struct Recorder {
    log: Log,
    events: async_channel::Sender<String>,
    pending: usize,
    tick_at: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
#[error("recorder failed on purpose")]
struct RecorderError;

impl Recorder {
    fn push(&self, entry: impl Into<String>) {
        let entry = entry.into();
        let _ = self.events.try_send(entry.clone());
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }
}

impl Actor for Recorder {
    type Message = Message;
    type Error = RecorderError;
    const NAME: &'static str = "recorder";

    async fn handle(&mut self, message: Message) -> Result<(), RecorderError> {
        match message {
            Message::Echo(value, reply) => reply.send(value * 2),
            Message::Record(entry) => {
                self.pending += 1;
                self.push(entry);
            }
            Message::Fail => return Err(RecorderError),
            Message::Panic => panic!("recorder panicked on purpose"),
            Message::Settle => {
                self.pending = 0;
                self.push("settled");
            }
        }
        Ok(())
    }

    async fn on_idle(&mut self) -> Result<(), RecorderError> {
        self.push("idle");
        Ok(())
    }

    fn next_tick(&self) -> Option<Instant> {
        self.tick_at
    }

    async fn on_tick(&mut self, _now: Instant) -> Result<(), RecorderError> {
        self.tick_at = None;
        self.push("tick");
        Ok(())
    }

    fn ready_to_stop(&self) -> bool {
        self.pending == 0
    }

    async fn on_stop(&mut self) -> Result<(), RecorderError> {
        self.push("stop");
        Ok(())
    }
}

struct Setup {
    runtime: Arc<dyn Runtime>,
    lifecycle: Lifecycle,
    address: Address<Message>,
    log: Log,
    events: async_channel::Receiver<String>,
    handle: damselfly_runtimes::JoinHandle<()>,
    tick_at: Option<Instant>,
}

fn start(tick_after: Option<Duration>) -> Setup {
    let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new());
    let lifecycle = Lifecycle::new();
    let log = Log::default();
    let (address, mailbox) = mailbox("recorder", 4);
    let (event_sender, events) = async_channel::unbounded();
    let tick_at = tick_after.map(|after| runtime.now() + after);
    let recorder = Recorder {
        log: Arc::clone(&log),
        events: event_sender,
        pending: 0,
        tick_at,
    };
    let handle = spawn_actor(&runtime, &lifecycle, recorder, mailbox);
    Setup {
        runtime,
        lifecycle,
        address,
        log,
        events,
        handle,
        tick_at,
    }
}

#[test]
fn ask_returns_the_reply() {
    let setup = start(None);
    let answer = smol::block_on(setup.address.ask(|reply| Message::Echo(21, reply)));
    assert_eq!(answer, Ok(42));
}

#[test]
fn dropping_every_address_drains_and_stops() {
    let setup = start(None);
    smol::block_on(async {
        setup
            .address
            .tell(Message::Record("a"))
            .await
            .expect("open");
        setup.address.tell(Message::Settle).await.expect("open");
        drop(setup.address);
        setup.handle.await.expect("the actor stops cleanly");
    });
    let entries = log_entries(&setup.log);
    assert_eq!(entries.first().map(String::as_str), Some("a"));
    assert_eq!(entries.last().map(String::as_str), Some("stop"));
    assert!(setup.lifecycle.check().is_ok());
}

#[test]
fn a_stopping_actor_waits_for_notices_before_it_stops() {
    let setup = start(None);
    smol::block_on(async {
        setup
            .address
            .tell(Message::Record("work"))
            .await
            .expect("open");
        // Notices overtake requests, so settle only once the work was taken.
        while setup.events.recv().await.expect("the actor runs") != "work" {}
        let notifier = setup.address.notifier();
        setup.address.close();
        // The actor has pending work, so it must still be running and listening to notices.
        assert!(setup.address.tell(Message::Record("late")).await.is_err());
        notifier
            .notify(Message::Settle)
            .expect("the actor still listens to notices");
        setup.handle.await.expect("the actor stops cleanly");
    });
    let entries = log_entries(&setup.log);
    let settled = entries.iter().position(|entry| entry == "settled");
    let stopped = entries.iter().position(|entry| entry == "stop");
    assert!(settled.is_some() && settled < stopped, "log: {entries:?}");
    assert!(!entries.iter().any(|entry| entry == "late"));
}

#[test]
fn queued_messages_are_handled_before_one_idle_call() {
    let setup = start(None);
    smol::block_on(async {
        // Fill the mailbox while the actor cannot run: on smol's executor it only runs once we
        // yield, and `tell` does not wait while there is room.
        for entry in ["1", "2", "3"] {
            setup
                .address
                .tell(Message::Record(entry))
                .await
                .expect("open");
        }
        setup.address.tell(Message::Settle).await.expect("open");
        drop(setup.address);
        setup.handle.await.expect("the actor stops cleanly");
    });
    let entries = log_entries(&setup.log);
    let work: Vec<&String> = entries.iter().filter(|entry| *entry != "idle").collect();
    assert_eq!(work, ["1", "2", "3", "settled", "stop"]);
    let idles = entries.iter().filter(|entry| *entry == "idle").count();
    assert!(
        (1..=4).contains(&idles),
        "one idle per burst, log: {entries:?}"
    );
}

#[test]
fn a_handler_error_fails_the_database_and_answers_every_caller() {
    let setup = start(None);
    smol::block_on(async {
        setup.address.tell(Message::Fail).await.expect("open");
        setup.handle.await.expect("the task itself completes");
        let failure = setup.lifecycle.failure().expect("the failure is recorded");
        assert_eq!(failure.actor, "recorder");
        assert!(failure.to_string().contains("failed on purpose"));
        // Later requests are refused instead of hanging.
        let answer = setup.address.ask(|reply| Message::Echo(1, reply)).await;
        assert_eq!(answer, Err(MailboxClosed { actor: "recorder" }));
        assert!(matches!(
            setup.lifecycle.check(),
            Err(Unavailable::Failed(_))
        ));
    });
}

#[test]
fn a_panic_is_a_failure_with_its_message() {
    let setup = start(None);
    smol::block_on(async {
        setup.address.tell(Message::Panic).await.expect("open");
        setup.handle.await.expect("the task itself completes");
    });
    let failure = setup.lifecycle.failure().expect("the panic is recorded");
    assert!(
        failure.to_string().contains("panicked on purpose"),
        "{failure}"
    );
}

#[test]
fn another_actors_failure_stops_an_idle_actor() {
    let setup = start(None);
    setup.lifecycle.fail(
        "elsewhere",
        Arc::new(RecorderError) as Arc<dyn std::error::Error + Send + Sync>,
    );
    smol::block_on(setup.handle).expect("the actor stops");
    assert_eq!(
        setup.lifecycle.failure().map(|failure| failure.actor),
        Some("elsewhere")
    );
    assert!(
        !log_entries(&setup.log).contains(&"stop".to_owned()),
        "no clean stop after a failure"
    );
}

#[test]
fn ticks_fire_at_their_deadline() {
    let setup = start(Some(Duration::from_millis(5)));
    smol::block_on(async { while setup.events.recv().await.expect("the actor runs") != "tick" {} });
    let deadline = setup.tick_at.expect("a tick was asked for");
    assert!(
        setup.runtime.now() >= deadline,
        "the tick came before its deadline"
    );
}

#[test]
fn the_first_failure_is_kept() {
    let lifecycle = Lifecycle::new();
    lifecycle.fail("first", Arc::new(RecorderError));
    lifecycle.fail("second", Arc::new(RecorderError));
    assert_eq!(
        lifecycle.failure().map(|failure| failure.actor),
        Some("first")
    );
    assert!(
        !lifecycle.begin_close(),
        "a failed database cannot start closing"
    );
}

#[test]
fn closing_refuses_new_work() {
    let lifecycle = Lifecycle::new();
    assert!(lifecycle.begin_close());
    assert!(matches!(lifecycle.check(), Err(Unavailable::Closed)));
    assert!(!lifecycle.begin_close(), "close is idempotent");
    lifecycle.finish_close();
    assert!(matches!(lifecycle.check(), Err(Unavailable::Closed)));
}

#[test]
fn requests_queued_when_an_actor_fails_are_answered_with_an_error() {
    let setup = start(None);
    smol::block_on(async {
        // Queue a failure and, behind it, requests that wait for replies.
        setup.address.tell(Message::Fail).await.expect("open");
        let waiting: Vec<_> = (0..3)
            .map(|value| {
                let address = setup.address.clone();
                smol::spawn(async move { address.ask(|reply| Message::Echo(value, reply)).await })
            })
            .collect();
        for request in waiting {
            // Answered or refused, never left hanging.
            let answer = request.await;
            assert!(
                matches!(answer, Ok(_) | Err(MailboxClosed { .. })),
                "{answer:?}"
            );
        }
        setup.handle.await.expect("the task completes");
    });
    assert!(setup.lifecycle.failure().is_some());
}
