//! The actor kernel: mailboxes, addresses, the shared run loop and the database's lifecycle.
//!
//! Each engine component is an [`Actor`]: a struct that owns its state and handles one message
//! at a time from a bounded [`Mailbox`]. Requests that need an answer carry a [`Reply`]. A full
//! mailbox is backpressure, not an error. One run loop ([`spawn_actor`]) gives every actor the
//! same life: start, handle messages and ticks, drain on shutdown, and on a fatal error move the
//! [`Lifecycle`] to failed, so that every caller gets an error carrying the cause instead of
//! hanging.

mod lifecycle;
mod mailbox;
mod run_loop;

pub use lifecycle::{Failure, Lifecycle, Unavailable};
#[cfg(test)]
pub(crate) use mailbox::Delivery;
pub use mailbox::{Address, Mailbox, MailboxClosed, Notifier, Reply, mailbox};
pub use run_loop::{Actor, ActorPanicked, BURST_LIMIT, spawn_actor};

#[cfg(test)]
mod tests;
