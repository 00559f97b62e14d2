//! WAL frames: the checksummed unit of the write-ahead log.
//!
//! Every segment is a sequence of frames, each 8-byte aligned:
//!
//! ```text
//! 0   4  CRC32C of bytes 4..32 of this header followed by the payload
//! 4   4  payload length (bytes)
//! 8   8  sequence number of the frame in its segment (the segment header frame is 0)
//! 16  8  synced offset: every byte of the segment before it was durable when this frame was
//!        written
//! 24  1  kind (1 = segment header, 2 = commit)
//! 25  7  zero
//! 32  ..  payload, then zero padding to a multiple of 8
//! ```
//!
//! The synced offset is what lets replay tell a torn tail from damage in the middle of the log:
//! a crash can only tear bytes that were never synced, so if any intact frame after a damaged
//! one says the damaged bytes had been synced, the log is corrupt; otherwise the damage is the
//! torn tail of an interrupted write and replay ends cleanly before it.

use crate::encoding::{read_u32, read_u64};

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 32;
/// Frames start at multiples of this.
pub const ALIGN: usize = 8;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The first frame of a segment: format, segment id, schema.
    SegmentHeader,
    /// One commit's rows.
    Commit,
}

impl FrameKind {
    fn code(self) -> u8 {
        match self {
            FrameKind::SegmentHeader => 1,
            FrameKind::Commit => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(FrameKind::SegmentHeader),
            2 => Some(FrameKind::Commit),
            _ => None,
        }
    }
}

/// The bytes a frame with a payload of `payload_len` bytes occupies, padding included.
pub fn framed_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len.next_multiple_of(ALIGN)
}

/// Appends one frame to `out`; the payload is the concatenation of `payload_parts`.
///
/// `out` must end at a frame boundary (its length a multiple of [`ALIGN`]).
pub fn encode(
    out: &mut Vec<u8>,
    kind: FrameKind,
    sequence: u64,
    synced_offset: u64,
    payload_parts: &[&[u8]],
) -> Result<(), FrameTooLarge> {
    debug_assert_eq!(out.len() % ALIGN, 0, "frames start at aligned offsets");
    let payload_len: usize = payload_parts.iter().map(|part| part.len()).sum();
    let encoded_len = u32::try_from(payload_len).map_err(|_| FrameTooLarge { payload_len })?;
    let start = out.len();
    out.reserve(framed_len(payload_len));
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&encoded_len.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&synced_offset.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(&[0u8; 7]);
    let mut crc = crc32c::crc32c(&out[start + 4..start + HEADER_LEN]);
    for part in payload_parts {
        crc = crc32c::crc32c_append(crc, part);
        out.extend_from_slice(part);
    }
    out.resize(start + framed_len(payload_len), 0);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A payload too large for one frame (4 GiB and more).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("a WAL frame holds at most 4 GiB; this commit encodes to {payload_len} bytes")]
pub struct FrameTooLarge {
    /// The payload's size.
    pub payload_len: usize,
}

/// An intact frame read from a segment.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Where the frame starts in the segment.
    pub offset: usize,
    /// Where the next frame starts.
    pub end: usize,
    /// What it holds.
    pub kind: FrameKind,
    /// Its sequence number in the segment.
    pub sequence: u64,
    /// Bytes of the segment known durable when it was written.
    pub synced_offset: u64,
    /// Its payload.
    pub payload: &'a [u8],
}

/// The outcome of reading at one offset of a segment.
#[derive(Debug)]
pub enum FrameRead<'a> {
    /// An intact frame.
    Frame(Frame<'a>),
    /// The segment ends exactly here.
    End,
    /// The bytes here are not an intact frame.
    Damaged {
        /// What is wrong.
        reason: String,
    },
}

/// Reads the frame starting at `offset` of `segment`.
pub fn read(segment: &[u8], offset: usize) -> FrameRead<'_> {
    let Some(remaining) = segment.len().checked_sub(offset) else {
        return damaged(format!("offset {offset} is past the end of the segment"));
    };
    if remaining == 0 {
        return FrameRead::End;
    }
    if remaining < HEADER_LEN {
        return damaged(format!(
            "only {remaining} bytes left, a frame header needs {HEADER_LEN}"
        ));
    }
    let header = &segment[offset..offset + HEADER_LEN];
    let payload_len = read_u32(header, 4) as usize;
    let Some(kind) = FrameKind::from_code(header[24]) else {
        return damaged(format!("unknown frame kind {}", header[24]));
    };
    if header[25..32] != [0u8; 7] {
        return damaged("reserved header bytes are not zero".to_owned());
    }
    let framed = framed_len(payload_len);
    if framed > remaining {
        return damaged(format!(
            "the frame claims {payload_len} payload bytes but only {} remain",
            remaining - HEADER_LEN
        ));
    }
    let payload = &segment[offset + HEADER_LEN..offset + HEADER_LEN + payload_len];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), payload);
    if crc != read_u32(header, 0) {
        return damaged("checksum mismatch".to_owned());
    }
    FrameRead::Frame(Frame {
        offset,
        end: offset + framed,
        kind,
        sequence: read_u64(header, 8),
        synced_offset: read_u64(header, 16),
        payload,
    })
}

/// A segment as replay reads it: its frames, up to where its data ends.
///
/// Segments may be followed by zeros — space reserved with `Appender::preallocate` and never
/// written. The data ends after the last non-zero byte; a frame cannot start in the zeros after
/// it, because a frame's kind byte is never zero, so reading there is the end of the segment.
#[derive(Debug, Clone, Copy)]
pub struct Frames<'a> {
    segment: &'a [u8],
    data_end: usize,
}

impl<'a> Frames<'a> {
    /// The frames of `segment`.
    pub fn new(segment: &'a [u8]) -> Self {
        let data_end = segment
            .iter()
            .rposition(|&byte| byte != 0)
            .map_or(0, |last| last + 1);
        Self { segment, data_end }
    }

    /// The frame at `offset`; [`FrameRead::End`] at or past the end of the data.
    pub fn read(&self, offset: usize) -> FrameRead<'a> {
        if offset >= self.data_end {
            return FrameRead::End;
        }
        read(self.segment, offset)
    }

    /// Bytes between `offset` and the end of the data.
    pub fn remaining(&self, offset: usize) -> usize {
        self.data_end.saturating_sub(offset)
    }

    /// The first intact frame after `damaged_offset` whose synced offset covers it: proof that
    /// the damaged bytes had been made durable, so the damage is corruption, not a torn write.
    pub fn find_durability_proof(&self, damaged_offset: usize) -> Option<Frame<'a>> {
        (damaged_offset + ALIGN..self.data_end)
            .step_by(ALIGN)
            .filter_map(|offset| match read(self.segment, offset) {
                FrameRead::Frame(frame) => Some(frame),
                FrameRead::End | FrameRead::Damaged { .. } => None,
            })
            .find(|frame| frame.synced_offset > damaged_offset as u64)
    }
}

fn damaged<'a>(reason: String) -> FrameRead<'a> {
    FrameRead::Damaged { reason }
}
