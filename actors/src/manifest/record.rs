//! Manifest records: how a [`Version`] is named and laid out on storage.
//!
//! Version `n` is stored as `manifest/{n:020}.json`, so name order is number order. A record is
//! two lines, each a JSON document (`jq . FILE` prints both):
//!
//! ```text
//! {"format":2,"crc32c":1234567890,"length":812}
//! {"number":7,"epoch":2,"last_commit":41,...}
//! ```
//!
//! The first line is the header: `format` (always present, whatever the format, so a newer
//! record is refused as [`ManifestError::UnsupportedFormat`] rather than misread), the CRC32C of
//! the second line's bytes and its length. The second line is the [`Version`] (keys as hex
//! strings), followed by a newline. Decoding checks, in order: the header, the format, the
//! length, the checksum, the JSON, every invariant of the version ([`Version::validate`]) and
//! that its number is the one in the name — anything else is [`ManifestError::Corrupt`] naming
//! the path and what is wrong.
//!
//! Evolving the format: a field that older readers may safely ignore can be added to a format
//! (they skip unknown fields); anything an older reader must not misread needs a new format
//! number, which older readers then refuse.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{ManifestError, Version};

/// The folder of the manifest records, relative to the database root.
pub const MANIFEST_DIR: &str = "manifest";

/// The record format this build writes and reads (2: SST descriptors carry their footer's
/// checksum, without which an SST cannot be opened).
pub const FORMAT_VERSION: u64 = 2;

const EXTENSION: &str = ".json";

/// The path of the record of version `number`.
pub fn record_path(number: u64) -> String {
    format!("{MANIFEST_DIR}/{number:020}{EXTENSION}")
}

/// The version number of the record at `path`, or `None` if `path` is not a record name.
pub fn number_from_path(path: &str) -> Option<u64> {
    let name = path.strip_prefix(MANIFEST_DIR)?.strip_prefix('/')?;
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The part of the header every format has.
#[derive(Deserialize)]
struct FormatProbe {
    format: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u64,
    crc32c: u32,
    length: u64,
}

/// The record bytes of `version` (which the caller has validated).
pub fn encode(version: &Version) -> Result<Bytes, ManifestError> {
    let body = serde_json::to_vec(version).map_err(ManifestError::Encode)?;
    let header = Header {
        format: FORMAT_VERSION,
        crc32c: crc32c::crc32c(&body),
        length: body.len() as u64,
    };
    let mut record = serde_json::to_vec(&header).map_err(ManifestError::Encode)?;
    record.push(b'\n');
    record.extend_from_slice(&body);
    record.push(b'\n');
    Ok(Bytes::from(record))
}

/// Decodes and checks the record read from `path`; see the module docs for what is checked.
pub fn decode(path: &str, bytes: &[u8]) -> Result<Version, ManifestError> {
    let corrupt = |reason: String| ManifestError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let Some(header_end) = bytes.iter().position(|&byte| byte == b'\n') else {
        return Err(corrupt(format!(
            "no header line in its {} bytes (truncated?)",
            bytes.len()
        )));
    };
    let (header, rest) = (&bytes[..header_end], &bytes[header_end + 1..]);
    let probe: FormatProbe = serde_json::from_slice(header)
        .map_err(|error| corrupt(format!("the header line is not a record header: {error}")))?;
    if probe.format != FORMAT_VERSION {
        return Err(ManifestError::UnsupportedFormat {
            path: path.to_owned(),
            found: probe.format,
        });
    }
    let header: Header = serde_json::from_slice(header)
        .map_err(|error| corrupt(format!("the header line is not a record header: {error}")))?;
    let body = match rest.split_last() {
        Some((b'\n', body)) if body.len() as u64 == header.length => body,
        _ => {
            return Err(corrupt(format!(
                "the header announces {} bytes of version and a newline, found {} bytes \
                 (truncated?)",
                header.length,
                rest.len()
            )));
        }
    };
    let checksum = crc32c::crc32c(body);
    if checksum != header.crc32c {
        return Err(corrupt(format!(
            "checksum mismatch: the header says {:#010x}, the version's bytes give {checksum:#010x}",
            header.crc32c
        )));
    }
    let version: Version = serde_json::from_slice(body)
        .map_err(|error| corrupt(format!("the version does not decode: {error}")))?;
    version
        .validate()
        .map_err(|error| corrupt(format!("the version breaks an invariant: {error}")))?;
    match number_from_path(path) {
        Some(number) if number != version.number => Err(corrupt(format!(
            "it holds version {} but its name says {number}",
            version.number
        ))),
        _ => Ok(version),
    }
}
