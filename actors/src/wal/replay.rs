//! WAL replay: every intact commit above the floor, in order, exactly once; a torn tail ends it
//! cleanly; damage anywhere else is a corruption error with the segment and offset.
//!
//! Replay reads the segments in id order and checks, for each:
//!
//! - the header frame: magic, version, the id in the name, the schema (the table's);
//! - the chain: a segment's header says which segment it follows and at which length that one's
//!   frames end for good. Replay reads each segment exactly up to the length its successor
//!   names. Bytes after that point were written by a writer whose successor had already started
//!   (after a crash, or by a writer that was fenced off): they were never part of the log and
//!   are ignored. A segment whose frames end *before* that point lost frames: corruption;
//! - frames: sequence numbers without gaps, checksums, strictly increasing timestamps.
//!
//! Commits at or below the floor are already in SSTs: replay checks their frames but does not
//! decode or apply them.
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
use super::segment::{self, SegmentEnd, SegmentHeader, WAL_DIR};
use crate::encoding::read_u64;
use crate::table::TableSchema;

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Where replay ended in the last segment, if there was one.
    pub last_segment: Option<SegmentEnd>,
    /// Every segment read, in order, with the newest commit timestamp it holds.
    pub segments: Vec<ReplayedSegment>,
    /// The largest commit timestamp in the log (0 if none), replayed or below the floor.
    pub last_timestamp: u64,
    /// Commits replayed (above the floor).
    pub commits: u64,
    /// Rows replayed (above the floor).
    pub rows: u64,
    /// Commits at or below the floor, skipped.
    pub skipped_commits: u64,
    /// Bytes of torn tail ignored (in the last segment of an interrupted run).
    pub torn_bytes: u64,
    /// Bytes after the point where a successor segment continues the log, ignored.
    pub superseded_bytes: u64,
}

/// One replayed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayedSegment {
    /// Where its frames end.
    pub end: SegmentEnd,
    /// The newest commit timestamp in it (0 if it holds no commit).
    pub last_timestamp: u64,
}

/// Replays the WAL under `storage` for `table`, handing every commit above `floor` to `apply`
/// in order.
pub async fn replay(
    storage: &dyn Storage,
    table: &TableSchema,
    floor: u64,
    mut apply: impl FnMut(CommitRecord) -> Result<(), String>,
) -> Result<ReplaySummary, WalError> {
    let mut summary = ReplaySummary::default();
    let mut segments = segment_paths(storage).await?.into_iter().peekable();
    let mut next_bytes: Option<Buffer> = None;
    while let Some((id, path)) = segments.next() {
        let bytes = match next_bytes.take() {
            Some(bytes) => bytes,
            None => Buffer::from(storage.read(&path).await?),
        };
        // Where this segment's frames end for good, as its successor's header says.
        let mut continues_at = None;
        if let Some((next_id, next_path)) = segments.peek() {
            let next = Buffer::from(storage.read(next_path).await?);
            continues_at = successor_link(next_path, *next_id, id, next.as_slice())?;
            next_bytes = Some(next);
        }
        let mut reader = SegmentReplay {
            path: &path,
            id,
            frames: Frames::new(bytes.as_slice()),
            table,
            floor,
            summary: &mut summary,
        };
        let replayed = reader.run(&bytes, continues_at, &mut apply)?;
        summary.segments.push(replayed);
        summary.last_segment = Some(replayed.end);
    }
    tracing::info!(
        segments = summary.segments.len(),
        commits = summary.commits,
        skipped = summary.skipped_commits,
        rows = summary.rows,
        torn_bytes = summary.torn_bytes,
        superseded_bytes = summary.superseded_bytes,
        "WAL replayed"
    );
    Ok(summary)
}

/// The WAL's segments, in id order. Files that are not segments are left alone.
async fn segment_paths(storage: &dyn Storage) -> Result<Vec<(u64, String)>, WalError> {
    let mut segments: Vec<(u64, String)> = Vec::new();
    for file in storage.list(WAL_DIR).await? {
        match segment::id_from_path(&file.path) {
            Some(id) => segments.push((id, file.path)),
            None => {
                tracing::warn!(path = %file.path, "ignoring a file in the WAL folder that is not a segment")
            }
        }
    }
    segments.sort();
    Ok(segments)
}

/// The length at which segment `id` ends for good, read from the header of its successor
/// `next_id` (`next`). `None` when the successor's header never became durable.
fn successor_link(
    next_path: &str,
    next_id: u64,
    id: u64,
    next: &[u8],
) -> Result<Option<usize>, WalError> {
    let corrupt = |reason: String| WalError::Corrupt {
        path: next_path.to_owned(),
        offset: 0,
        reason,
    };
    let FrameRead::Frame(header) = Frames::new(next).read(0) else {
        return Ok(None);
    };
    let SegmentHeader { follows, .. } = segment::decode_header(header.payload).map_err(corrupt)?;
    match follows {
        Some(end) if end.id == id => usize::try_from(end.length)
            .map(Some)
            .map_err(|_| corrupt(format!("it follows segment {id} at length {}", end.length))),
        Some(end) => Err(corrupt(format!(
            "it follows segment {}, but the segment before it is {id} (segment {next_id} expected \
             to follow it)",
            end.id
        ))),
        None => Err(corrupt(format!(
            "it starts a new log, but segment {id} comes before it"
        ))),
    }
}

struct SegmentReplay<'a> {
    path: &'a str,
    id: u64,
    frames: Frames<'a>,
    table: &'a TableSchema,
    floor: u64,
    summary: &'a mut ReplaySummary,
}

impl<'a> SegmentReplay<'a> {
    /// Replays the segment, up to `continues_at` when its successor says where it ends.
    fn run(
        &mut self,
        buffer: &Buffer,
        continues_at: Option<usize>,
        apply: &mut impl FnMut(CommitRecord) -> Result<(), String>,
    ) -> Result<ReplayedSegment, WalError> {
        let empty = ReplayedSegment {
            end: SegmentEnd {
                id: self.id,
                length: 0,
            },
            last_timestamp: 0,
        };
        if continues_at == Some(0) {
            return Ok(empty);
        }
        let Some(header) = self.next_frame(0, continues_at)? else {
            // Created, then torn before its header was durable: an empty segment.
            return self.ended(0, continues_at).map(|()| empty);
        };
        let mut decoder = self.check_header(&header)?;
        let mut offset = header.end;
        let mut sequence = 0;
        let mut last_timestamp = 0;
        while continues_at != Some(offset) {
            let Some(frame) = self.next_frame(offset, continues_at)? else {
                break;
            };
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
            last_timestamp = self.admit(&frame, buffer, &mut decoder, apply)?;
            offset = frame.end;
        }
        self.ended(offset, continues_at)?;
        Ok(ReplayedSegment {
            end: SegmentEnd {
                id: self.id,
                length: offset as u64,
            },
            last_timestamp,
        })
    }

    /// Checks where the frames ended against where the successor says they end, and accounts
    /// for the bytes after that point.
    fn ended(&mut self, offset: usize, continues_at: Option<usize>) -> Result<(), WalError> {
        let Some(expected) = continues_at else {
            return Ok(());
        };
        if offset != expected {
            return Err(self.corrupt(
                offset,
                format!(
                    "the frames end at {offset}, but the next segment continues the log from \
                     {expected}: frames are missing"
                ),
            ));
        }
        let superseded = self.frames.remaining(offset);
        if superseded > 0 {
            tracing::warn!(
                path = self.path,
                offset,
                bytes = superseded,
                "ignoring WAL bytes written after the next segment had started the log"
            );
            self.summary.superseded_bytes += superseded as u64;
        }
        Ok(())
    }

    /// The intact frame at `offset`, or `None` at the end of the replayable frames. A frame that
    /// reaches past `continues_at` is corruption.
    fn next_frame(
        &mut self,
        offset: usize,
        continues_at: Option<usize>,
    ) -> Result<Option<Frame<'a>>, WalError> {
        let frames = self.frames;
        match frames.read(offset) {
            FrameRead::Frame(frame) if continues_at.is_some_and(|end| frame.end > end) => Err(self
                .corrupt(
                    offset,
                    "a frame crosses the point where the next segment continues the log".to_owned(),
                )),
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
                None if continues_at.is_some() => Err(self.corrupt(offset, reason)),
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

    /// Checks a commit frame's timestamp and hands the commit on if it is above the floor.
    /// Returns the timestamp.
    fn admit(
        &mut self,
        frame: &Frame<'_>,
        buffer: &Buffer,
        decoder: &mut StreamDecoder,
        apply: &mut impl FnMut(CommitRecord) -> Result<(), String>,
    ) -> Result<u64, WalError> {
        if frame.payload.len() < 8 {
            return Err(self.corrupt(
                frame.offset,
                "a commit frame without a timestamp".to_owned(),
            ));
        }
        let timestamp = read_u64(frame.payload, 0);
        if timestamp <= self.summary.last_timestamp {
            return Err(self.corrupt(
                frame.offset,
                format!(
                    "commit timestamp {timestamp} does not follow {}",
                    self.summary.last_timestamp
                ),
            ));
        }
        self.summary.last_timestamp = timestamp;
        if timestamp <= self.floor {
            self.summary.skipped_commits += 1;
            return Ok(timestamp);
        }
        let payload =
            buffer.slice_with_length(frame.offset + frame::HEADER_LEN, frame.payload.len());
        let commit = record::decode(&payload, decoder)
            .map_err(|reason| self.corrupt(frame.offset, reason))?;
        let rows = commit.batch.num_rows() as u64;
        let commit = CommitRecord {
            batch: commit
                .batch
                .with_schema(Arc::clone(self.table.schema()))
                .map_err(|error| self.corrupt(frame.offset, error.to_string()))?,
            ..commit
        };
        apply(commit).map_err(|reason| self.corrupt(frame.offset, reason))?;
        self.summary.commits += 1;
        self.summary.rows += rows;
        Ok(timestamp)
    }

    fn corrupt(&self, offset: usize, reason: String) -> WalError {
        WalError::Corrupt {
            path: self.path.to_owned(),
            offset: offset as u64,
            reason,
        }
    }
}
