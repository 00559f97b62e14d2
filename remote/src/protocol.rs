//! What a database and a worker say to each other.
//!
//! One request, [`JobRequest`], and one answer, [`JobResponse`]. Both are an envelope that never
//! changes — a protocol number and an opaque body — so that two builds of different protocols
//! still understand the one thing they must: that they differ. A side that receives another
//! protocol's number does not read the body as its own; it refuses, and a refusal's body is a
//! UTF-8 sentence saying why. When the numbers agree, the bodies are JSON: a request carries the
//! [`CompactionJob`] (which has its own format number, checked as well) and the database's SST
//! layout; an answer carries an [`Answer`].

use damselfly::compaction::{CompactionJob, CompactionOutcome, SstOptions};
use kameo::Reply;
use serde::{Deserialize, Serialize};

/// The protocol this build speaks. Bump it whenever the bodies change shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// A compaction job for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The sender's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// A [`JobBody`] as JSON, when the protocols agree.
    pub body: Vec<u8>,
}

/// A worker's answer to a [`JobRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Reply)]
pub struct JobResponse {
    /// The worker's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// An [`Answer`] as JSON when the protocols agree; otherwise a UTF-8 refusal.
    pub body: Vec<u8>,
}

/// What a request carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobBody {
    /// The job, exactly as the compactor planned it.
    pub job: CompactionJob,
    /// How the database lays out its SSTs: the outputs are written the same way.
    pub sst: SstOptions,
}

/// What a worker made of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The outputs are written, durably; here they are.
    Done(CompactionOutcome),
    /// The job ran and failed (an unreadable input, a storage error).
    Failed(String),
    /// The worker would not run the job (a job format it does not speak, a body it cannot read).
    Refused(String),
}

impl JobRequest {
    /// A request for `body` in this build's protocol.
    pub fn new(body: &JobBody) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            body: to_json(body),
        }
    }

    /// The body, if the request speaks this build's protocol and its body reads; otherwise
    /// the refusal to send back.
    pub fn open(&self) -> Result<JobBody, JobResponse> {
        if self.protocol != PROTOCOL_VERSION {
            return Err(JobResponse::refusal(format!(
                "this worker speaks remote compaction protocol {PROTOCOL_VERSION}, the database \
                 sent protocol {}; run builds of the same protocol on both sides",
                self.protocol
            )));
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            JobResponse::answer(&Answer::Refused(format!("unreadable job request: {error}")))
        })
    }
}

impl JobResponse {
    /// An answer in this build's protocol.
    pub fn answer(answer: &Answer) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            body: to_json(answer),
        }
    }

    /// A refusal of a request of another protocol: a sentence, which any build can show.
    fn refusal(reason: String) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            body: reason.into_bytes(),
        }
    }

    /// The answer, read as this build reads it: a response of another protocol is a refusal
    /// (its body says why, when it is the other side's refusal).
    pub fn open(&self) -> Answer {
        if self.protocol != PROTOCOL_VERSION {
            return Answer::Refused(format!(
                "the worker speaks remote compaction protocol {}, this database {PROTOCOL_VERSION}",
                self.protocol
            ));
        }
        match serde_json::from_slice(&self.body) {
            Ok(answer) => answer,
            // This build's refusals of other protocols are sentences, not JSON.
            Err(_) => Answer::Refused(String::from_utf8_lossy(&self.body).into_owned()),
        }
    }
}

/// JSON of plain data (maps keyed by strings, numbers, bytes): it cannot fail.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(error) => unreachable!("protocol bodies are plain data: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> CompactionJob {
        CompactionJob {
            format: damselfly::compaction::JOB_FORMAT,
            inputs: Vec::new(),
            target_level: 1,
            drop_deletes: false,
            horizon: 7,
            output_ids: 10..12,
            output_file_bytes: 1 << 20,
        }
    }

    #[test]
    fn a_request_round_trips() {
        let body = JobBody {
            job: job(),
            sst: SstOptions::default(),
        };
        let request = JobRequest::new(&body);
        assert_eq!(request.open().ok(), Some(body));
    }

    #[test]
    fn a_request_of_another_protocol_is_refused_in_words() {
        let mut request = JobRequest::new(&JobBody {
            job: job(),
            sst: SstOptions::default(),
        });
        request.protocol = PROTOCOL_VERSION + 1;
        let Err(refusal) = request.open() else {
            panic!("a request of another protocol was read");
        };
        match refusal.open() {
            Answer::Refused(reason) => assert!(
                reason.contains(&format!("database sent protocol {}", PROTOCOL_VERSION + 1)),
                "{reason}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_response_of_another_protocol_is_a_refusal() {
        let mut response = JobResponse::answer(&Answer::Failed("disk on fire".to_owned()));
        response.protocol = PROTOCOL_VERSION + 1;
        match response.open() {
            Answer::Refused(reason) => assert!(
                reason.contains(&format!(
                    "worker speaks remote compaction protocol {}",
                    PROTOCOL_VERSION + 1
                )),
                "{reason}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_unreadable_body_is_refused() {
        let request = JobRequest {
            protocol: PROTOCOL_VERSION,
            body: b"{not json".to_vec(),
        };
        let Err(refusal) = request.open() else {
            panic!("an unreadable request was read");
        };
        assert!(matches!(refusal.open(), Answer::Refused(reason) if reason.contains("unreadable")));
    }
}
