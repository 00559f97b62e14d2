//! Mailboxes and addresses: how actors and callers reach an actor.
//!
//! A mailbox has two lanes:
//!
//! - **requests** — bounded. `tell` and `ask` wait while it is full: a full mailbox is
//!   backpressure, not an error. Closing it (or dropping every [`Address`]) asks the actor to
//!   drain what is queued and stop.
//! - **notices** — unbounded, and read before requests. Actors use it to report back to an actor
//!   that sends *them* requests (the WAL writer tells the memtable which commits are durable).
//!   If both directions were bounded, two full mailboxes waiting on each other would deadlock;
//!   a notice never waits. Notices are small and each one answers work the receiver itself
//!   sent, so their number is bounded by the receiver's own requests in flight.
//!
//! A [`Notifier`] holds only the notice lane, so it does not keep the actor alive: once every
//! [`Address`] is gone the actor stops even if notifiers remain.

use std::fmt;

use async_channel::{Receiver, Sender, TryRecvError};

/// The actor this message was meant for has stopped (or is stopping and accepts no more work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {actor} actor has stopped")]
pub struct MailboxClosed {
    /// The name of the stopped actor.
    pub actor: &'static str,
}

/// Creates a mailbox for actor `actor` whose request lane holds up to `capacity` messages.
pub fn mailbox<M>(actor: &'static str, capacity: usize) -> (Address<M>, Mailbox<M>) {
    let (request_sender, requests) = async_channel::bounded(capacity.max(1));
    let (notice_sender, notices) = async_channel::unbounded();
    let address = Address {
        actor,
        requests: request_sender,
        notices: notice_sender,
    };
    let mailbox = Mailbox {
        actor,
        requests,
        notices,
    };
    (address, mailbox)
}

/// Sends requests and notices to one actor. Cloning is cheap.
pub struct Address<M> {
    actor: &'static str,
    requests: Sender<M>,
    notices: Sender<M>,
}

impl<M> Clone for Address<M> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor,
            requests: self.requests.clone(),
            notices: self.notices.clone(),
        }
    }
}

impl<M> fmt::Debug for Address<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Address")
            .field("actor", &self.actor)
            .field("queued", &self.requests.len())
            .finish()
    }
}

impl<M> Address<M> {
    /// Queues `message`, waiting while the request lane is full.
    pub async fn tell(&self, message: M) -> Result<(), MailboxClosed> {
        self.requests.send(message).await.map_err(|_| self.closed())
    }

    /// Sends the request built by `make` around a reply slot and waits for the answer.
    pub async fn ask<R>(&self, make: impl FnOnce(Reply<R>) -> M) -> Result<R, MailboxClosed> {
        let (sender, receiver) = async_channel::bounded(1);
        self.tell(make(Reply { sender })).await?;
        // The reply slot is dropped unanswered only when the actor stops first.
        receiver.recv().await.map_err(|_| self.closed())
    }

    /// A sender for the notice lane only; it does not keep the actor running.
    pub fn notifier(&self) -> Notifier<M> {
        Notifier {
            actor: self.actor,
            notices: self.notices.clone(),
        }
    }

    /// Stops accepting requests; the actor drains what is queued, then stops.
    pub fn close(&self) {
        self.requests.close();
    }

    /// The number of requests waiting in the mailbox.
    pub fn queued(&self) -> usize {
        self.requests.len()
    }

    fn closed(&self) -> MailboxClosed {
        MailboxClosed { actor: self.actor }
    }
}

/// Sends notices to an actor without waiting and without keeping it alive.
pub struct Notifier<M> {
    actor: &'static str,
    notices: Sender<M>,
}

impl<M> Clone for Notifier<M> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor,
            notices: self.notices.clone(),
        }
    }
}

impl<M> fmt::Debug for Notifier<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Notifier")
            .field("actor", &self.actor)
            .finish()
    }
}

impl<M> Notifier<M> {
    /// Delivers `message` on the notice lane. Fails only when the actor has stopped.
    pub fn notify(&self, message: M) -> Result<(), MailboxClosed> {
        self.notices
            .try_send(message)
            .map_err(|_| MailboxClosed { actor: self.actor })
    }
}

/// The slot a request's answer goes into.
pub struct Reply<T> {
    sender: Sender<T>,
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Reply")
    }
}

impl<T> Reply<T> {
    /// Answers the request. The asker may have given up waiting; that is not an error.
    pub fn send(self, value: T) {
        let _ = self.sender.try_send(value);
    }
}

/// The receiving end of a mailbox, read by the actor's run loop.
#[derive(Debug)]
pub struct Mailbox<M> {
    actor: &'static str,
    requests: Receiver<M>,
    notices: Receiver<M>,
}

/// An actor that stops — cleanly or not — must not leave requests behind: the channel keeps its
/// queue alive as long as any sender exists, and a queued request's reply slot would then never
/// be answered or dropped, so its caller would wait forever. Dropping the mailbox closes both
/// lanes (later sends fail at once) and drops every queued message with its reply slot.
impl<M> Drop for Mailbox<M> {
    fn drop(&mut self) {
        self.requests.close();
        self.notices.close();
        while self.requests.try_recv().is_ok() {}
        while self.notices.try_recv().is_ok() {}
    }
}

/// What a mailbox yields to the run loop.
#[derive(Debug)]
pub(crate) enum Delivery<M> {
    /// A message (notice or request).
    Message(M),
    /// The request lane is closed and empty: no more requests will come.
    RequestsEnded,
    /// After the request lane ended, every notice sender is gone too: nothing can arrive.
    NoticesEnded,
}

impl<M> Mailbox<M> {
    /// The actor's name.
    pub fn actor(&self) -> &'static str {
        self.actor
    }

    /// Waits for the next message, notices first. Once the request lane has ended only notices
    /// are awaited (`requests_ended`), so a stopping actor can still hear back from others.
    pub(crate) async fn next(&self, requests_ended: bool) -> Delivery<M> {
        if let Ok(notice) = self.notices.try_recv() {
            return Delivery::Message(notice);
        }
        if requests_ended {
            return match self.notices.recv().await {
                Ok(notice) => Delivery::Message(notice),
                Err(_) => Delivery::NoticesEnded,
            };
        }
        // While requests can still come, some Address (which holds a notice sender) exists, so
        // the notice lane cannot end; should it anyway, wait on requests alone.
        let notice = async {
            match self.notices.recv().await {
                Ok(notice) => Delivery::Message(notice),
                Err(_) => std::future::pending().await,
            }
        };
        let request = async {
            match self.requests.recv().await {
                Ok(request) => Delivery::Message(request),
                Err(_) => Delivery::RequestsEnded,
            }
        };
        futures_lite::future::or(notice, request).await
    }

    /// The next message already queued, notices first, without waiting.
    pub(crate) fn try_next(&self, requests_ended: bool) -> Option<M> {
        match self.notices.try_recv() {
            Ok(notice) => return Some(notice),
            Err(TryRecvError::Empty | TryRecvError::Closed) => {}
        }
        if requests_ended {
            return None;
        }
        self.requests.try_recv().ok()
    }
}
