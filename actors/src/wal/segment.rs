//! WAL segments: naming, and the header frame every segment starts with.
//!
//! Segments live in `wal/` and are named by a strictly increasing id, zero-padded so that name
//! order is id order: `wal/00000000000000000042.wal`. A writer never appends to a segment it
//! did not create, so after a crash the damaged tail of the last segment stays as it was and
//! replay reaches the same result every time (recovery is idempotent).
//!
//! Header payload (little endian):
//!
//! ```text
//! 0   8  magic "DMSFWAL\0"
//! 8   4  format version (1)
//! 12  4  zero
//! 16  8  segment id
//! 24  8  id of the segment this one follows (0: none)
//! 32  8  length at which that segment's replayable frames end
//! 40  ..  the table schema as an Arrow IPC schema message
//! ```
//!
//! The "follows" fields chain the log: a writer that starts after recovery records where
//! replay ended in the previous segment (possibly before a torn tail); a writer that rotates
//! records the length it closed the previous segment at. Replay checks every link, so a
//! segment that lost frames in the middle of the log is reported, not skipped.

use crate::encoding::{read_u32, read_u64};

/// The folder of the WAL, relative to the database root.
pub const WAL_DIR: &str = "wal";
const EXTENSION: &str = ".wal";
const MAGIC: &[u8; 8] = b"DMSFWAL\0";
const FORMAT_VERSION: u32 = 1;
const FIXED_LEN: usize = 40;

/// The path of segment `id`.
pub fn path(id: u64) -> String {
    format!("{WAL_DIR}/{id:020}{EXTENSION}")
}

/// The id of the segment at `path`, or `None` if `path` is not a segment name.
pub fn id_from_path(path: &str) -> Option<u64> {
    let name = path.strip_prefix(WAL_DIR)?.strip_prefix('/')?;
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where the previous segment's replayable frames end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentEnd {
    /// The segment's id.
    pub id: u64,
    /// The offset after its last intact frame.
    pub length: u64,
}

/// A decoded segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader<'a> {
    /// This segment's id.
    pub id: u64,
    /// The end of the segment this one follows, if any.
    pub follows: Option<SegmentEnd>,
    /// The table schema as an IPC schema message.
    pub schema_message: &'a [u8],
}

/// Encodes a segment header payload.
pub fn encode_header(id: u64, follows: Option<SegmentEnd>, schema_message: &[u8]) -> Vec<u8> {
    let (follows_id, follows_length) = follows.map_or((0, 0), |end| (end.id, end.length));
    let mut payload = Vec::with_capacity(FIXED_LEN + schema_message.len());
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&id.to_le_bytes());
    payload.extend_from_slice(&follows_id.to_le_bytes());
    payload.extend_from_slice(&follows_length.to_le_bytes());
    payload.extend_from_slice(schema_message);
    payload
}

/// Decodes a segment header payload; the error says what is wrong.
pub fn decode_header(payload: &[u8]) -> Result<SegmentHeader<'_>, String> {
    if payload.len() < FIXED_LEN {
        return Err(format!(
            "a segment header needs {FIXED_LEN} bytes, found {}",
            payload.len()
        ));
    }
    if &payload[0..8] != MAGIC {
        return Err("the segment header has the wrong magic".to_owned());
    }
    let version = read_u32(payload, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
        ));
    }
    let follows_id = read_u64(payload, 24);
    Ok(SegmentHeader {
        id: read_u64(payload, 16),
        follows: (follows_id != 0).then(|| SegmentEnd {
            id: follows_id,
            length: read_u64(payload, 32),
        }),
        schema_message: &payload[FIXED_LEN..],
    })
}
