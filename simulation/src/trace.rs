//! The trace hash: a running fingerprint of every event of a simulated run.
//!
//! Every scheduling decision (a task spawned, polled, completed or dropped, virtual time
//! advanced, a timer fired) and every application event handed to
//! [`SimRuntime::record`](crate::SimRuntime::record) is folded into one 64-bit FNV-1a hash, in
//! the order it happens. Two runs with the same seed must end with the same hash and the same
//! event count (DESIGN.md invariant 9); the first event at which they differ is where
//! determinism broke.
//!
//! The hash is written by hand so that it never depends on std's per-process `RandomState`, on
//! addresses or on the platform: every field is encoded as little-endian bytes behind a tag.

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One event of a simulated run, as it is mixed into the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A task was registered with `spawn_boxed`.
    Spawned { task_id: u64, name: &'a str },
    /// The scheduler chose a task and polls it.
    Polled { task_id: u64 },
    /// A task's future returned `Ready`.
    Completed { task_id: u64 },
    /// A pending task was dropped by `shutdown`.
    Dropped { task_id: u64 },
    /// Virtual time jumped forward to a timer's deadline.
    TimeAdvanced { now_nanos: u64 },
    /// A timer was due and woke its task.
    TimerFired { deadline_nanos: u64, sequence: u64 },
    /// An application event, from [`SimRuntime::record`](crate::SimRuntime::record) or
    /// `Runtime::trace` (every message an engine actor handles).
    Application { label: &'a str, value: u64 },
    /// A call to [traced storage](crate::SimRuntime::traced_storage) — operation, path, offset
    /// and length — and its outcome.
    Storage { call: &'a str, outcome: &'a str },
}

impl std::fmt::Display for Event<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Spawned { task_id, name } => {
                write!(formatter, "spawned task {task_id} {name:?}")
            }
            Event::Polled { task_id } => write!(formatter, "polled task {task_id}"),
            Event::Completed { task_id } => write!(formatter, "task {task_id} completed"),
            Event::Dropped { task_id } => write!(formatter, "task {task_id} dropped"),
            Event::TimeAdvanced { now_nanos } => {
                write!(formatter, "time advanced to {now_nanos} ns")
            }
            Event::TimerFired {
                deadline_nanos,
                sequence,
            } => write!(
                formatter,
                "timer {sequence} fired (deadline {deadline_nanos} ns)"
            ),
            Event::Application { label, value } => write!(formatter, "{label:?} = {value}"),
            Event::Storage { call, outcome } => write!(formatter, "storage {call} -> {outcome}"),
        }
    }
}

/// A running FNV-1a hash over the events of a run, how many events it has seen, and, when
/// asked for, every event written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    hash: u64,
    event_count: u64,
    log: Option<Vec<String>>,
}

impl Trace {
    /// An empty trace.
    pub(crate) fn new() -> Self {
        Self {
            hash: FNV_OFFSET_BASIS,
            event_count: 0,
            log: None,
        }
    }

    /// Writes out every event from now on (see [`Trace::log`]).
    pub(crate) fn keep_log(&mut self) {
        self.log.get_or_insert_with(Vec::new);
    }

    /// The events written out so far, one line each, numbered from 1 by their place in the
    /// trace: empty unless [`Trace::keep_log`] was called.
    pub(crate) fn log(&self) -> &[String] {
        self.log.as_deref().unwrap_or_default()
    }

    /// The hash of every event recorded so far.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events have been recorded.
    pub(crate) fn event_count(&self) -> u64 {
        self.event_count
    }

    /// Mixes `event` into the hash.
    pub(crate) fn record(&mut self, event: Event<'_>) {
        self.event_count += 1;
        if let Some(log) = &mut self.log {
            log.push(format!("#{} {event}", self.event_count));
        }
        match event {
            Event::Spawned { task_id, name } => {
                self.mix_bytes(&[1]);
                self.mix_u64(task_id);
                self.mix_str(name);
            }
            Event::Polled { task_id } => self.mix_tagged(2, &[task_id]),
            Event::Completed { task_id } => self.mix_tagged(3, &[task_id]),
            Event::Dropped { task_id } => self.mix_tagged(4, &[task_id]),
            Event::TimeAdvanced { now_nanos } => self.mix_tagged(5, &[now_nanos]),
            Event::TimerFired {
                deadline_nanos,
                sequence,
            } => self.mix_tagged(6, &[deadline_nanos, sequence]),
            Event::Application { label, value } => {
                self.mix_bytes(&[7]);
                self.mix_str(label);
                self.mix_u64(value);
            }
            Event::Storage { call, outcome } => {
                self.mix_bytes(&[8]);
                self.mix_str(call);
                self.mix_str(outcome);
            }
        }
    }

    fn mix_tagged(&mut self, tag: u8, values: &[u64]) {
        self.mix_bytes(&[tag]);
        for &value in values {
            self.mix_u64(value);
        }
    }

    /// Strings are length-prefixed so that ("ab", "c") and ("a", "bc") hash differently.
    fn mix_str(&mut self, text: &str) {
        self.mix_u64(u64::try_from(text.len()).unwrap_or(u64::MAX));
        self.mix_bytes(text.as_bytes());
    }

    fn mix_u64(&mut self, value: u64) {
        self.mix_bytes(&value.to_le_bytes());
    }

    fn mix_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }
}

/// Where two event logs of the same seed part ways: the first event they disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The position of the event in both logs, from 0.
    pub index: usize,
    /// The first log's event there (`None`: that log ended).
    pub left: Option<String>,
    /// The second log's event there (`None`: that log ended).
    pub right: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side =
            |event: &Option<String>| event.clone().unwrap_or_else(|| "(end of log)".to_owned());
        write!(
            formatter,
            "the runs diverge at event {}: {} versus {}",
            self.index + 1,
            side(&self.left),
            side(&self.right)
        )
    }
}

/// The first event at which two [event logs](crate::SimRuntime::event_log) differ, or `None`
/// when they are equal.
#[must_use]
pub fn first_divergence(left: &[String], right: &[String]) -> Option<Divergence> {
    let index =
        (0..left.len().max(right.len())).find(|&index| left.get(index) != right.get(index))?;
    Some(Divergence {
        index,
        left: left.get(index).cloned(),
        right: right.get(index).cloned(),
    })
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{Event, Trace};

    #[test]
    fn empty_trace_is_the_fnv_offset_basis() {
        // FNV-1a of the empty input is its offset basis; of "a" it is a published test vector.
        let mut trace = Trace::new();
        assert_eq!(trace.hash(), 0xcbf2_9ce4_8422_2325);
        trace.mix_bytes(b"a");
        assert_eq!(trace.hash(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn order_and_fields_change_the_hash() {
        let mut first = Trace::new();
        first.record(Event::Polled { task_id: 1 });
        first.record(Event::Polled { task_id: 2 });
        let mut second = Trace::new();
        second.record(Event::Polled { task_id: 2 });
        second.record(Event::Polled { task_id: 1 });
        assert_ne!(first.hash(), second.hash());
        assert_eq!(first.event_count(), 2);

        let mut split_a = Trace::new();
        split_a.record(Event::Application {
            label: "ab",
            value: 0,
        });
        let mut split_b = Trace::new();
        split_b.record(Event::Application {
            label: "a",
            value: 0,
        });
        assert_ne!(split_a.hash(), split_b.hash());
    }
}
