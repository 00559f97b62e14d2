//! Commit records: one commit's rows in a WAL frame.
//!
//! Payload of a commit frame (little endian):
//!
//! ```text
//! 0   8  commit timestamp
//! 8   4  flags (bit 0: delete flags present)
//! 12  4  row count
//! 16  ..  if flagged: one bit per row (1 = delete), ceil(rows / 8) bytes, zero padded to 8
//! ..  ..  the rows as Arrow IPC messages in the segment's schema: dictionary batches, then
//!         one record batch
//! ```
//!
//! Everything after the timestamp is the *body*; callers encode it on their own task before the
//! commit is ordered, and the WAL writer prefixes the timestamp it is given. Each body is
//! self-contained (dictionaries are repeated), so any frame decodes given the segment header.

use arrow_array::RecordBatch;
use arrow_buffer::{BooleanBuffer, Buffer};
use arrow_ipc::MetadataVersion;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
};
use arrow_schema::{ArrowError, DataType, Fields};
use bytes::Bytes;

use crate::encoding::{read_u32, read_u64};

const FLAG_DELETES: u32 = 1;
const FIXED_LEN: usize = 16;

/// Encodes the body of a commit record: `batch`, with `deletes` marking rows that delete their
/// key.
pub fn encode_body(
    batch: &RecordBatch,
    deletes: Option<&BooleanBuffer>,
) -> Result<Bytes, ArrowError> {
    let rows = u32::try_from(batch.num_rows()).map_err(|_| {
        ArrowError::InvalidArgumentError(format!(
            "a commit holds at most {} rows, this one has {}",
            u32::MAX,
            batch.num_rows()
        ))
    })?;
    let options = ipc_options()?;
    let generator = IpcDataGenerator::default();
    let mut dictionaries = DictionaryTracker::new(false);
    if has_dictionary(batch.schema().fields()) {
        // Encoding the schema assigns the dictionary ids, in the same order as the segment
        // header's schema message does, so that this frame's dictionaries decode against it.
        let _ = generator.schema_to_bytes_with_dictionary_tracker(
            &batch.schema(),
            &mut dictionaries,
            &options,
        );
    }
    let (dictionaries, record_batch) = generator.encode(
        batch,
        &mut dictionaries,
        &options,
        &mut IpcWriteContext::default(),
    )?;
    let mut body =
        Vec::with_capacity(8 + batch.num_rows().div_ceil(8) + 64 + batch.get_array_memory_size());
    body.extend_from_slice(&(if deletes.is_some() { FLAG_DELETES } else { 0 }).to_le_bytes());
    body.extend_from_slice(&rows.to_le_bytes());
    if let Some(deletes) = deletes {
        let bitmap_start = body.len();
        body.resize(bitmap_start + batch.num_rows().div_ceil(8), 0);
        for row in deletes.set_indices() {
            body[bitmap_start + row / 8] |= 1 << (row % 8);
        }
        body.resize(body.len().next_multiple_of(8), 0);
    }
    for encoded in dictionaries
        .into_iter()
        .chain(std::iter::once(record_batch))
    {
        write_message(&mut body, encoded, &options)?;
    }
    Ok(Bytes::from(body))
}

/// Whether any field, at any depth, is dictionary encoded.
fn has_dictionary(fields: &Fields) -> bool {
    fields
        .iter()
        .any(|field| data_type_has_dictionary(field.data_type()))
}

fn data_type_has_dictionary(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, _) => true,
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::ListView(field)
        | DataType::LargeListView(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => data_type_has_dictionary(field.data_type()),
        DataType::Struct(fields) => has_dictionary(fields),
        DataType::Union(fields, _) => fields
            .iter()
            .any(|(_, field)| data_type_has_dictionary(field.data_type())),
        DataType::RunEndEncoded(_, values) => data_type_has_dictionary(values.data_type()),
        _ => false,
    }
}

/// The IPC options of WAL records: 8-byte alignment keeps small commits small.
fn ipc_options() -> Result<IpcWriteOptions, ArrowError> {
    IpcWriteOptions::try_new(8, false, MetadataVersion::V5)
}

/// A decoded commit record.
#[derive(Debug, Clone)]
pub struct CommitRecord {
    /// The commit timestamp.
    pub timestamp: u64,
    /// The committed rows, in the segment's schema.
    pub batch: RecordBatch,
    /// Which rows delete their key, if any do.
    pub deletes: Option<BooleanBuffer>,
}

/// Decodes the commit record in `payload`; `payload_buffer` holds the same bytes, so the rows can
/// refer to them without a copy. `decoder` has been fed the segment's schema message.
pub fn decode(
    payload_buffer: &Buffer,
    decoder: &mut StreamDecoder,
) -> Result<CommitRecord, String> {
    let payload = payload_buffer.as_slice();
    if payload.len() < 8 + FIXED_LEN {
        return Err(format!(
            "a commit record needs {} bytes, found {}",
            8 + FIXED_LEN,
            payload.len()
        ));
    }
    let timestamp = read_u64(payload, 0);
    let flags = read_u32(payload, 8);
    let rows = read_u32(payload, 12) as usize;
    if flags & !FLAG_DELETES != 0 {
        return Err(format!("unknown commit record flags {flags:#x}"));
    }
    let mut offset = 8 + 8;
    let deletes = if flags & FLAG_DELETES != 0 {
        let bitmap_len = rows.div_ceil(8);
        let bitmap = payload
            .get(offset..offset + bitmap_len)
            .ok_or_else(|| format!("the delete flags of {rows} rows are truncated"))?;
        offset += bitmap_len.next_multiple_of(8);
        Some(BooleanBuffer::new(Buffer::from(bitmap), 0, rows))
    } else {
        None
    };
    if offset > payload.len() {
        return Err("the commit record ends before its rows".to_owned());
    }
    let mut messages = payload_buffer.slice(offset);
    let batch = decoder
        .decode(&mut messages)
        .map_err(|error| format!("the rows do not decode: {error}"))?
        .ok_or_else(|| "the commit record holds no record batch".to_owned())?;
    if !messages.is_empty() {
        return Err(format!("{} bytes follow the record batch", messages.len()));
    }
    if batch.num_rows() != rows {
        return Err(format!(
            "the record says {rows} rows, the batch has {}",
            batch.num_rows()
        ));
    }
    Ok(CommitRecord {
        timestamp,
        batch,
        deletes,
    })
}

/// A stream decoder primed with a segment's schema message.
pub fn decoder_for(schema_message: &[u8]) -> Result<StreamDecoder, String> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(schema_message);
    // The decoder takes the schema in when the next message arrives; replay has already checked
    // it with `try_schema_from_ipc_buffer`.
    match decoder.decode(&mut buffer) {
        Ok(None) if buffer.is_empty() => Ok(decoder),
        Ok(_) => Err("the segment's schema message is not a schema".to_owned()),
        Err(error) => Err(format!(
            "the segment's schema message does not decode: {error}"
        )),
    }
}
