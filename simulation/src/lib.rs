//! The deterministic simulation runtime of damselfly: one seed replays a whole run.
//!
//! [`SimRuntime`] implements [`damselfly_runtimes::Runtime`], so the engine runs on it unchanged.
//! It runs every task on the thread that calls [`SimRuntime::block_on`], one poll at a time,
//! and takes every decision from a seed:
//!
//! - **Scheduling.** Whenever several tasks are runnable, the seed's [`SchedulePolicy`] picks
//!   the next one to poll: uniformly at random, by PCT-style random priorities that change at
//!   random points (reaching orders where one task runs far ahead of the others), or first-in
//!   first-out. Each seed draws its policy; [`SimRuntime::with_policy`] fixes one. Different
//!   seeds explore different interleavings; the same seed repeats one exactly.
//! - **Time.** The clock is virtual. It starts at zero (the wall clock at
//!   2023-11-14T22:13:20Z) and only moves when no task can run: it then jumps to the earliest
//!   pending timer, so an hour-long sleep completes at once. Timers may fire late by a random
//!   part of their duration, as an OS's do — how much the seed decides (none for half of the
//!   seeds), or [`SimRuntime::with_timer_jitter`] — but never early.
//! - **Randomness.** [`Runtime::random_u64`](damselfly_runtimes::Runtime::random_u64) draws from
//!   its own stream, also derived from the seed, independent of scheduling.
//! - **Blocking work** given to `spawn_blocking` / `run_blocking` runs inline, at the call.
//!
//! Every scheduling event is folded into a [trace hash](SimRuntime::trace_hash): two runs of the
//! same program with the same seed end with the same hash and [event
//! count](SimRuntime::event_count), in this process or another one (DESIGN.md invariant 9). So
//! is every message an engine actor handles (through `Runtime::trace`), and every call to the
//! [traced storage](SimRuntime::traced_storage) with its offset, length and outcome.
//!
//! Runs that go wrong stop with a panic naming the seed and the pending tasks: a deadlock
//! (nothing runnable, no timer set: "simulation is stuck"), and a runaway whose virtual time
//! passes the [limit](SimRuntime::with_time_limit) (one hour per `block_on` by default).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use damselfly_runtimes::{Runtime, RuntimeExt};
//! use damselfly_sim::SimRuntime;
//!
//! fn run(seed: u64) -> (Vec<&'static str>, u64) {
//!     // Timers fire on time (a seed may otherwise make them a little late, at random).
//!     let sim = SimRuntime::new(seed).with_timer_jitter(0);
//!     let runtime = sim.clone();
//!     let order = sim.block_on(async move {
//!         let (sender, receiver) = async_channel::unbounded();
//!         for (name, delay) in [("slow", 60), ("fast", 1)] {
//!             let (task_runtime, sender) = (runtime.clone(), sender.clone());
//!             let handle = runtime.spawn(name, async move {
//!                 task_runtime.sleep(Duration::from_secs(delay)).await;
//!                 sender.send(name).await.expect("the receiver outlives the tasks");
//!             });
//!             // Dropping a handle detaches its task, which still runs to completion.
//!             drop(handle);
//!         }
//!         drop(sender);
//!         let mut order = Vec::new();
//!         while let Ok(name) = receiver.recv().await {
//!             order.push(name);
//!         }
//!         // A minute of virtual time passed, in no time at all.
//!         assert_eq!(runtime.now().since_origin(), Duration::from_secs(60));
//!         order
//!     });
//!     let trace_hash = sim.trace_hash();
//!     // Break the reference cycles between leftover tasks and the runtime.
//!     sim.shutdown();
//!     (order, trace_hash)
//! }
//!
//! let (order, trace_hash) = run(42);
//! assert_eq!(order, ["fast", "slow"]);
//! // The same seed replays the run event for event.
//! assert_eq!(run(42).1, trace_hash);
//! ```
//!
//! # Reproducing a run
//!
//! A failing simulated test should print its seed (the simulator's own panics always do).
//! Running the same program on `SimRuntime::new(seed)` replays it exactly: the same tasks are
//! polled in the same order at the same virtual times, and the same random numbers are drawn.
//! Compare [`SimRuntime::trace_hash`] to check that a replay matches, and use
//! [`SimRuntime::record`] to fold application events (bytes written, messages delivered) into
//! the trace so that divergence is caught where it starts. When two runs of a seed disagree, run
//! both again [with an event log](SimRuntime::with_event_log): [`first_divergence`] names the
//! first event where they part ways.
//!
//! Determinism holds as long as the program takes time, tasks and randomness only from the
//! runtime: no OS clock, no threads, no OS randomness, no iteration over hash maps where the
//! order reaches behaviour (DESIGN.md section 2).

#![deny(missing_docs)]

mod executor;
mod faults;
pub mod harness;
mod runtime;
mod scheduler;
mod shared;
mod timer;
mod trace;
mod waker;

pub use faults::{FaultKind, FaultPlan, FaultRecord, Ledger, PowerCutAt, RemoteFaults, SimStorage};
pub use runtime::SimRuntime;
pub use scheduler::{PCT_STARVATION_POLLS, SchedulePolicy};
pub use trace::{Divergence, first_divergence};
