//! The table descriptor: the file that fixes a database's schema and key when it is created.
//!
//! Layout of `TABLE` at the database root (little endian):
//!
//! ```text
//! 0   8  magic "DMSFTBL\0"
//! 8   4  format version (1)
//! 12  4  length of the schema message
//! 16  4  CRC32C of the schema message
//! 20  4  zero in version 1; later versions put the CRC32C of bytes 0..20 here
//! 24  ..  the schema as an Arrow IPC schema message; key columns carry the field metadata
//!         "damselfly.key" = "0", "1", ... in key order
//! ```
//!
//! It is written once, with put-if-absent, before anything else; opening a database reads it and
//! refuses a different schema or key. Damage is reported as [`DescriptorError::Corrupt`], never
//! guessed around.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, write_message};
use arrow_schema::{ArrowError, Field, Schema};
use bytes::Bytes;

use super::{KEY_METADATA, SchemaError, TableSchema};
use crate::encoding::read_u32;

/// The descriptor's path, relative to the database root.
pub const DESCRIPTOR_PATH: &str = "TABLE";

const MAGIC: &[u8; 8] = b"DMSFTBL\0";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;

/// A descriptor that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The bytes are not a valid descriptor.
    #[error("table descriptor {path} is corrupt: {reason}")]
    Corrupt {
        /// The descriptor's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The descriptor was written by a newer version of damselfly.
    #[error(
        "table descriptor {path} has format version {found}; this build reads version {FORMAT_VERSION}"
    )]
    UnsupportedVersion {
        /// The descriptor's path.
        path: String,
        /// The version found.
        found: u32,
    },
    /// The stored schema does not make a valid table.
    #[error("table descriptor {path} describes an invalid table: {source}")]
    InvalidTable {
        /// The descriptor's path.
        path: String,
        /// Why the table is invalid.
        source: SchemaError,
    },
}

/// Encodes `table` as descriptor bytes.
pub fn encode(table: &TableSchema) -> Result<Bytes, ArrowError> {
    let key_positions: BTreeMap<usize, usize> = table
        .key_indices()
        .iter()
        .enumerate()
        .map(|(position, &index)| (index, position))
        .collect();
    let fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let mut metadata = field.metadata().clone();
            metadata.remove(KEY_METADATA);
            if let Some(position) = key_positions.get(&index) {
                metadata.insert(KEY_METADATA.to_owned(), position.to_string());
            }
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    let schema = Schema::new_with_metadata(fields, table.schema().metadata().clone());
    let message = schema_message(&schema)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + message.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&u32_len(message.len())?.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&message).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&message);
    Ok(Bytes::from(bytes))
}

/// Decodes descriptor bytes read from `path`.
pub fn decode(path: &str, bytes: &[u8]) -> Result<TableSchema, DescriptorError> {
    let corrupt = |reason: String| DescriptorError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "{} bytes is shorter than the header",
            bytes.len()
        )));
    }
    if &bytes[0..8] != MAGIC {
        return Err(corrupt(
            "it does not start with the descriptor magic".to_owned(),
        ));
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        // Only a header that proves itself intact names a newer version; otherwise a damaged
        // version field would pass for one.
        if crc32c::crc32c(&bytes[..20]) != read_u32(bytes, 20) {
            return Err(corrupt(format!(
                "the format version reads {version}, and the header carries no checksum that \
                 a later version would have"
            )));
        }
        return Err(DescriptorError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    if read_u32(bytes, 20) != 0 {
        return Err(corrupt("reserved header bytes are not zero".to_owned()));
    }
    let length = read_u32(bytes, 12) as usize;
    let message = bytes
        .get(HEADER_LEN..HEADER_LEN + length)
        .ok_or_else(|| corrupt(format!("the schema message ({length} bytes) is truncated")))?;
    if crc32c::crc32c(message) != read_u32(bytes, 16) {
        return Err(corrupt("the schema message fails its checksum".to_owned()));
    }
    let schema = arrow_ipc::convert::try_schema_from_ipc_buffer(message)
        .map_err(|error| corrupt(format!("the schema message does not decode: {error}")))?;
    TableSchema::from_key_metadata(Arc::new(schema)).map_err(|source| {
        DescriptorError::InvalidTable {
            path: path.to_owned(),
            source,
        }
    })
}

/// `schema` as an encapsulated Arrow IPC schema message (continuation marker, length, body).
pub fn schema_message(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let mut message = Vec::new();
    write_message(&mut message, encoded, &options)?;
    Ok(message)
}

fn u32_len(length: usize) -> Result<u32, ArrowError> {
    u32::try_from(length).map_err(|_| {
        ArrowError::InvalidArgumentError(format!("schema of {length} bytes is too large"))
    })
}
