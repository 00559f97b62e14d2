//! WAL replay: every intact commit, in order, exactly once; a torn tail ends it cleanly; damage
//! anywhere else is a corruption error with the segment and offset.
//!
//! Replay reads the segments in id order and checks, for each:
//!
//! - the header frame: magic, version, the id in the name, the schema (the table's);
//! - the chain: a segment's header names the segment it follows and the length at which that
//!   one's replayable frames ended, which must be exactly where replay ended in it;
//! - frames: sequence numbers without gaps, checksums, strictly increasing timestamps.
//!
//! On a damaged frame, replay looks for a later intact frame whose synced offset covers the
//! damage. If there is one the damaged bytes had been durable, so the log is corrupt; if not, the
//! damage is the torn tail of a write that a crash interrupted, and the segment ends there.
//! Replay writes nothing, so running it again gives the same result (recovery is idempotent).

use std::sync::Arc;

use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use damselfly_runtimes::Storage;

use super::WalError;
use super::frame::{self, Frame, FrameKind, FrameRead, Frames};
use super::record::{self, CommitRecord};
use super::segment::{self, SegmentEnd, WAL_DIR};
use crate::table::TableSchema;

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Where replay ended in the last segment, if there was one.
    pub last_segment: Option<SegmentEnd>,
    /// The largest commit timestamp replayed (0 if none).
    pub last_timestamp: u64,
    /// Commits replayed.
    pub commits: u64,
    /// Rows replayed.
    pub rows: u64,
    /// Segments read.
    pub segments: u64,
    /// Bytes of torn tail ignored (in the last segment of an interrupted run).
    pub torn_bytes: u64,
}

/// Replays the WAL under `storage` for `table`, handing every commit to `apply` in order.
pub async fn replay(
    storage: &dyn Storage,
    table: &TableSchema,
    mut apply: impl FnMut(CommitRecord) -> Result<(), String>,
) -> Result<ReplaySummary, WalError> {
    let mut summary = ReplaySummary::default();
    let mut segment_ids: Vec<(u64, String)> = Vec::new();
    for file in storage.list(WAL_DIR).await? {
        match segment::id_from_path(&file.path) {
            Some(id) => segment_ids.push((id, file.path)),
            None => {
                tracing::warn!(path = %file.path, "ignoring a file in the WAL folder that is not a segment")
            }
        }
    }
    segment_ids.sort();
    for (id, path) in segment_ids {
        let bytes = Buffer::from(storage.read(&path).await?);
        let mut reader = SegmentReplay {
            path: &path,
            id,
            frames: Frames::new(bytes.as_slice()),
            table,
            summary: &mut summary,
        };
        let end = reader.run(&bytes, &mut apply)?;
        summary.segments += 1;
        summary.last_segment = Some(end);
    }
    tracing::info!(
        segments = summary.segments,
        commits = summary.commits,
        rows = summary.rows,
        torn_bytes = summary.torn_bytes,
        "WAL replayed"
    );
    Ok(summary)
}

struct SegmentReplay<'a> {
    path: &'a str,
    id: u64,
    frames: Frames<'a>,
    table: &'a TableSchema,
    summary: &'a mut ReplaySummary,
}

impl<'a> SegmentReplay<'a> {
    fn run(
        &mut self,
        buffer: &Buffer,
        apply: &mut impl FnMut(CommitRecord) -> Result<(), String>,
    ) -> Result<SegmentEnd, WalError> {
        let Some(header) = self.next_frame(0)? else {
            // Created, then torn before its header was durable: an empty segment.
            return Ok(SegmentEnd {
                id: self.id,
                length: 0,
            });
        };
        let mut decoder = self.check_header(&header)?;
        let mut offset = header.end;
        let mut sequence = 0;
        while let Some(frame) = self.next_frame(offset)? {
            sequence += 1;
            if frame.kind != FrameKind::Commit || frame.sequence != sequence {
                return Err(self.corrupt(
                    frame.offset,
                    format!(
                        "expected commit frame {sequence}, found {:?} frame {}",
                        frame.kind, frame.sequence
                    ),
                ));
            }
            let payload =
                buffer.slice_with_length(frame.offset + frame::HEADER_LEN, frame.payload.len());
            let commit = record::decode(&payload, &mut decoder)
                .map_err(|reason| self.corrupt(frame.offset, reason))?;
            self.admit(&frame, commit, apply)?;
            offset = frame.end;
        }
        Ok(SegmentEnd {
            id: self.id,
            length: offset as u64,
        })
    }

    /// The intact frame at `offset`, or `None` at the end of the replayable frames.
    fn next_frame(&mut self, offset: usize) -> Result<Option<Frame<'a>>, WalError> {
        let frames = self.frames;
        match frames.read(offset) {
            FrameRead::Frame(frame) => Ok(Some(frame)),
            FrameRead::End => Ok(None),
            FrameRead::Damaged { reason } => match frames.find_durability_proof(offset) {
                Some(proof) => Err(self.corrupt(
                    offset,
                    format!(
                        "{reason}; the frame at offset {} shows these bytes had been synced",
                        proof.offset
                    ),
                )),
                None => {
                    let torn = frames.remaining(offset);
                    tracing::warn!(path = self.path, offset, torn, %reason, "WAL ends in a torn write; replay stops before it");
                    self.summary.torn_bytes += torn as u64;
                    Ok(None)
                }
            },
        }
    }

    fn check_header(&self, frame: &Frame<'_>) -> Result<StreamDecoder, WalError> {
        if frame.kind != FrameKind::SegmentHeader || frame.sequence != 0 {
            return Err(self.corrupt(
                frame.offset,
                "the segment does not start with its header".to_owned(),
            ));
        }
        let header =
            segment::decode_header(frame.payload).map_err(|reason| self.corrupt(0, reason))?;
        if header.id != self.id {
            return Err(self.corrupt(0, format!("the header names segment {}", header.id)));
        }
        if let (Some(previous), Some(follows)) = (self.summary.last_segment, header.follows)
            && previous != follows
        {
            return Err(self.corrupt(
                0,
                format!(
                    "the segment follows segment {} at length {}, but replay ended segment {} at {}",
                    follows.id, follows.length, previous.id, previous.length
                ),
            ));
        }
        let schema = arrow_ipc::convert::try_schema_from_ipc_buffer(header.schema_message)
            .map_err(|error| {
                self.corrupt(0, format!("the header's schema does not decode: {error}"))
            })?;
        let table_schema = self.table.schema();
        let same = schema.fields().len() == table_schema.fields().len()
            && schema
                .fields()
                .iter()
                .zip(table_schema.fields().iter())
                .all(|(found, expected)| {
                    found.name() == expected.name() && found.data_type() == expected.data_type()
                });
        if !same {
            return Err(self.corrupt(
                0,
                format!("the segment was written for another schema: {schema}"),
            ));
        }
        record::decoder_for(header.schema_message).map_err(|reason| self.corrupt(0, reason))
    }

    fn admit(
        &mut self,
        frame: &Frame<'_>,
        commit: CommitRecord,
        apply: &mut impl FnMut(CommitRecord) -> Result<(), String>,
    ) -> Result<(), WalError> {
        if commit.timestamp <= self.summary.last_timestamp {
            return Err(self.corrupt(
                frame.offset,
                format!(
                    "commit timestamp {} does not follow {}",
                    commit.timestamp, self.summary.last_timestamp
                ),
            ));
        }
        let timestamp = commit.timestamp;
        let rows = commit.batch.num_rows() as u64;
        let commit = CommitRecord {
            batch: commit
                .batch
                .with_schema(Arc::clone(self.table.schema()))
                .map_err(|error| self.corrupt(frame.offset, error.to_string()))?,
            ..commit
        };
        apply(commit).map_err(|reason| self.corrupt(frame.offset, reason))?;
        self.summary.last_timestamp = timestamp;
        self.summary.commits += 1;
        self.summary.rows += rows;
        Ok(())
    }

    fn corrupt(&self, offset: usize, reason: String) -> WalError {
        WalError::Corrupt {
            path: self.path.to_owned(),
            offset: offset as u64,
            reason,
        }
    }
}
