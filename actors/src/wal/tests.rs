//! The WAL's formats and replay rules, without actors: frames, commit records, segment chains,
//! torn tails versus corruption.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder, StructBuilder, UInt32Builder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_buffer::{BooleanBuffer, Buffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use damselfly_runtimes::{MemoryStorage, Storage};

use super::WalError;
use super::frame::{self, FrameKind, FrameRead};
use super::record;
use super::replay::{ReplaySummary, replay};
use super::segment::{self, SegmentEnd};
use crate::table::{TableSchema, descriptor};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int64, false),
    ]))
}

fn table() -> TableSchema {
    TableSchema::new(schema(), &["id"]).expect("valid table")
}

fn rows(ids: &[u64]) -> RecordBatch {
    let names: StringArray = ids.iter().map(|id| Some(format!("name-{id}"))).collect();
    let scores: Int64Array = ids.iter().map(|&id| id as i64 * 10).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(ids.to_vec())),
            Arc::new(names),
            Arc::new(scores),
        ],
    )
    .expect("valid batch")
}

/// A segment holding the given commits, each frame claiming `synced_offset` bytes were durable.
fn segment_bytes(
    id: u64,
    follows: Option<SegmentEnd>,
    commits: &[(u64, RecordBatch)],
    synced_offset: impl Fn(usize) -> u64,
) -> Vec<u8> {
    let schema_message = descriptor::schema_message(&schema()).expect("encodable");
    let header = segment::encode_header(id, follows, &schema_message);
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, FrameKind::SegmentHeader, 0, 0, &[&header]).expect("small");
    for (sequence, (timestamp, batch)) in (1..).zip(commits) {
        let body = record::encode_body(batch, None).expect("encodable");
        let synced = synced_offset(bytes.len());
        frame::encode(
            &mut bytes,
            FrameKind::Commit,
            sequence,
            synced,
            &[&timestamp.to_le_bytes(), &body],
        )
        .expect("small");
    }
    bytes
}

fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    while let FrameRead::Frame(frame) = frame::read(bytes, offset) {
        offsets.push(offset);
        offset = frame.end;
    }
    offsets
}

/// Where each frame of an intact segment ends: the header's end, then each commit's.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    frame_offsets(bytes)
        .into_iter()
        .skip(1)
        .chain(std::iter::once(bytes.len()))
        .collect()
}

async fn replay_all(storage: &MemoryStorage) -> Result<(ReplaySummary, Vec<u64>), WalError> {
    let mut timestamps = Vec::new();
    let summary = replay(storage, &table(), 0, |commit| {
        timestamps.push(commit.timestamp);
        Ok(())
    })
    .await?;
    Ok((summary, timestamps))
}

fn store(storage: &MemoryStorage, path: &str, bytes: Vec<u8>) {
    smol::block_on(storage.put(path, Bytes::from(bytes))).expect("memory put");
}

#[test]
fn frames_round_trip_and_detect_every_single_bit_flip() {
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, FrameKind::Commit, 7, 96, &[b"hello", b" world"]).expect("small");
    assert_eq!(bytes.len(), frame::framed_len(11));
    assert_eq!(bytes.len() % frame::ALIGN, 0);
    let FrameRead::Frame(decoded) = frame::read(&bytes, 0) else {
        panic!("an intact frame must decode");
    };
    assert_eq!(
        (
            decoded.kind,
            decoded.sequence,
            decoded.synced_offset,
            decoded.payload
        ),
        (FrameKind::Commit, 7, 96, &b"hello world"[..])
    );
    // Every bit of the header and payload is covered (padding is not data).
    for byte in 0..frame::HEADER_LEN + 11 {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 1 << bit;
            assert!(
                !matches!(frame::read(&damaged, 0), FrameRead::Frame(_)),
                "flipping bit {bit} of byte {byte} went unnoticed"
            );
        }
    }
}

#[test]
fn a_short_read_is_damage_and_the_exact_end_is_the_end() {
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, FrameKind::Commit, 1, 0, &[b"payload"]).expect("small");
    assert!(matches!(frame::read(&bytes, bytes.len()), FrameRead::End));
    for cut in 1..bytes.len() {
        assert!(
            matches!(frame::read(&bytes[..cut], 0), FrameRead::Damaged { .. }),
            "a frame cut at {cut} must not decode"
        );
    }
}

#[test]
fn commit_records_round_trip_with_deletes_dictionaries_and_nested_columns() {
    let mut names = StringDictionaryBuilder::<Int32Type>::new();
    let mut tags = ListBuilder::new(UInt32Builder::new());
    let mut point = StructBuilder::from_fields(vec![Field::new("x", DataType::Int64, true)], 3);
    for row in 0..3u32 {
        names.append_value(["a", "b", "a"][row as usize]);
        tags.values().append_value(row);
        tags.append(true);
        point
            .field_builder::<arrow_array::builder::Int64Builder>(0)
            .expect("x is an Int64 field")
            .append_value(i64::from(row));
        point.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(vec![1, 2, 3])),
        Arc::new(names.finish()),
        Arc::new(tags.finish()),
        Arc::new(point.finish()),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .zip(["id", "name", "tags", "point"])
        .map(|(column, name)| Field::new(name, column.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("valid batch");
    let deletes = BooleanBuffer::from(vec![false, true, false]);
    let body = record::encode_body(&batch, Some(&deletes)).expect("encodable");

    let schema_message = descriptor::schema_message(&schema).expect("encodable");
    let mut decoder = record::decoder_for(&schema_message).expect("a schema message");
    let mut payload = 42u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&body);
    // Decoding twice with one decoder checks that repeated dictionaries replace each other.
    for _ in 0..2 {
        let decoded = record::decode(&Buffer::from(payload.as_slice()), &mut decoder)
            .expect("an intact record");
        assert_eq!(decoded.timestamp, 42);
        assert_eq!(decoded.batch, batch);
        assert_eq!(decoded.deletes, Some(deletes.clone()));
    }
}

#[test]
fn replay_reads_every_commit_of_a_chain_of_segments() {
    let storage = MemoryStorage::new();
    let first = segment_bytes(1, None, &[(1, rows(&[1, 2])), (2, rows(&[3]))], |_| 0);
    let first_end = SegmentEnd {
        id: 1,
        length: first.len() as u64,
    };
    store(&storage, &segment::path(1), first);
    store(
        &storage,
        &segment::path(2),
        segment_bytes(2, Some(first_end), &[(3, rows(&[4]))], |_| 0),
    );
    let (summary, timestamps) = smol::block_on(replay_all(&storage)).expect("an intact log");
    assert_eq!(timestamps, [1, 2, 3]);
    assert_eq!(
        (summary.commits, summary.rows, summary.segments.len()),
        (3, 4, 2)
    );
    assert_eq!(summary.last_timestamp, 3);
    assert_eq!(summary.torn_bytes, 0);
}

#[test]
fn a_torn_tail_ends_replay_cleanly_at_every_cut() {
    let commits: Vec<(u64, RecordBatch)> = (1..=4).map(|ts| (ts, rows(&[ts]))).collect();
    let bytes = segment_bytes(1, None, &commits, |_| 0);
    let frame_ends = frame_ends(&bytes);
    for cut in 0..=bytes.len() {
        let storage = MemoryStorage::new();
        store(&storage, &segment::path(1), bytes[..cut].to_vec());
        let (summary, timestamps) = smol::block_on(replay_all(&storage))
            .unwrap_or_else(|error| panic!("cut at {cut}: {error}"));
        // Exactly the commits whose frames end at or before the cut survive, and replay ends
        // the segment after the last of them (or at 0 when even the header is torn).
        let whole_frames = frame_ends.iter().filter(|end| **end <= cut).count();
        let survivors = whole_frames.saturating_sub(1) as u64;
        assert_eq!(
            timestamps,
            (1..=survivors).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        let expected_end = frame_ends
            .iter()
            .rev()
            .find(|end| **end <= cut)
            .copied()
            .unwrap_or(0);
        let end = summary.last_segment.expect("one segment").length as usize;
        assert_eq!(end, expected_end, "cut at {cut}");
    }
}

#[test]
fn damage_that_a_later_frame_proves_durable_is_corruption() {
    let commits: Vec<(u64, RecordBatch)> = (1..=3).map(|ts| (ts, rows(&[ts]))).collect();
    // Every frame claims everything before it was synced (as under WalSyncPolicy::Always).
    let bytes = segment_bytes(1, None, &commits, |offset| offset as u64);
    let offsets = frame_offsets(&bytes);
    let mut damaged = bytes.clone();
    damaged[offsets[1] + frame::HEADER_LEN + 3] ^= 0x01;
    let storage = MemoryStorage::new();
    store(&storage, &segment::path(1), damaged);
    match smol::block_on(replay_all(&storage)) {
        Err(WalError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segment::path(1));
            assert_eq!(offset, offsets[1] as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn damage_in_unsynced_bytes_is_a_torn_tail_even_with_intact_frames_after_it() {
    let commits: Vec<(u64, RecordBatch)> = (1..=3).map(|ts| (ts, rows(&[ts]))).collect();
    // Nothing after the header was ever synced: sectors may have reached the disk out of order.
    let bytes = segment_bytes(1, None, &commits, |_| 0);
    let offsets = frame_offsets(&bytes);
    let mut damaged = bytes.clone();
    damaged[offsets[2] + frame::HEADER_LEN] ^= 0xff;
    let storage = MemoryStorage::new();
    store(&storage, &segment::path(1), damaged);
    let (summary, timestamps) = smol::block_on(replay_all(&storage)).expect("a torn tail");
    assert_eq!(timestamps, [1]);
    // The torn bytes run from the damage to the last non-zero byte of the segment.
    assert!(summary.torn_bytes > 0 && summary.torn_bytes as usize <= bytes.len() - offsets[2]);
}

#[test]
fn a_broken_chain_is_corruption() {
    let storage = MemoryStorage::new();
    let first = segment_bytes(1, None, &[(1, rows(&[1]))], |_| 0);
    let claimed = SegmentEnd {
        id: 1,
        length: first.len() as u64 + 64,
    };
    store(&storage, &segment::path(1), first);
    store(
        &storage,
        &segment::path(2),
        segment_bytes(2, Some(claimed), &[(2, rows(&[2]))], |_| 0),
    );
    let result = smol::block_on(replay_all(&storage));
    assert!(
        matches!(&result, Err(WalError::Corrupt { path, reason, .. })
            if *path == segment::path(1) && reason.contains("frames are missing")),
        "got {result:?}"
    );
}

#[test]
fn bytes_after_the_point_a_successor_continues_from_are_ignored() {
    // Segment 1 has three commits, but segment 2 was started (after a crash, or by a writer that
    // fenced this one) where segment 1's first commit ended: the two later commits were never
    // part of the log.
    let storage = MemoryStorage::new();
    let first = segment_bytes(
        1,
        None,
        &[(1, rows(&[1])), (2, rows(&[2])), (3, rows(&[3]))],
        |_| 0,
    );
    let ends = frame_ends(&first);
    let continues = SegmentEnd {
        id: 1,
        length: ends[1] as u64,
    };
    store(&storage, &segment::path(1), first.clone());
    store(
        &storage,
        &segment::path(2),
        segment_bytes(2, Some(continues), &[(2, rows(&[20]))], |_| 0),
    );
    let (summary, timestamps) = smol::block_on(replay_all(&storage)).expect("a valid log");
    assert_eq!(
        timestamps,
        [1, 2],
        "segment 1's commits 2 and 3 are superseded"
    );
    // Everything after the point, up to the last non-zero byte (padding zeros are not data).
    let superseded = summary.superseded_bytes as usize;
    assert!(
        superseded > 0 && superseded <= first.len() - ends[1],
        "{superseded}"
    );
}

#[test]
fn a_missing_segment_in_the_middle_is_corruption() {
    let storage = MemoryStorage::new();
    let first = segment_bytes(1, None, &[(1, rows(&[1]))], |_| 0);
    let second = segment_bytes(
        2,
        Some(SegmentEnd {
            id: 1,
            length: first.len() as u64,
        }),
        &[(2, rows(&[2]))],
        |_| 0,
    );
    let third = segment_bytes(
        3,
        Some(SegmentEnd {
            id: 2,
            length: second.len() as u64,
        }),
        &[(3, rows(&[3]))],
        |_| 0,
    );
    store(&storage, &segment::path(1), first);
    store(&storage, &segment::path(3), third);
    let result = smol::block_on(replay_all(&storage));
    assert!(
        matches!(&result, Err(WalError::Corrupt { path, .. }) if *path == segment::path(3)),
        "got {result:?}"
    );
}

#[test]
fn commits_at_or_below_the_floor_are_skipped() {
    let storage = MemoryStorage::new();
    let commits: Vec<(u64, RecordBatch)> = (1..=5).map(|ts| (ts, rows(&[ts]))).collect();
    store(
        &storage,
        &segment::path(1),
        segment_bytes(1, None, &commits, |_| 0),
    );
    let mut replayed = Vec::new();
    let summary = smol::block_on(replay(&storage, &table(), 3, |commit| {
        replayed.push(commit.timestamp);
        Ok(())
    }))
    .expect("an intact log");
    assert_eq!(replayed, [4, 5]);
    assert_eq!((summary.skipped_commits, summary.last_timestamp), (3, 5));
    assert_eq!(summary.segments[0].last_timestamp, 5);
}

#[test]
fn timestamps_must_increase() {
    let storage = MemoryStorage::new();
    let bytes = segment_bytes(1, None, &[(5, rows(&[1])), (5, rows(&[2]))], |_| 0);
    store(&storage, &segment::path(1), bytes);
    assert!(matches!(
        smol::block_on(replay_all(&storage)),
        Err(WalError::Corrupt { reason, .. }) if reason.contains("does not follow")
    ));
}

#[test]
fn a_segment_for_another_schema_is_refused() {
    let storage = MemoryStorage::new();
    let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
    let message = descriptor::schema_message(&other).expect("encodable");
    let header = segment::encode_header(1, None, &message);
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, FrameKind::SegmentHeader, 0, 0, &[&header]).expect("small");
    store(&storage, &segment::path(1), bytes);
    assert!(matches!(
        smol::block_on(replay_all(&storage)),
        Err(WalError::Corrupt { reason, .. }) if reason.contains("another schema")
    ));
}

#[test]
fn segment_names_round_trip() {
    assert_eq!(segment::path(42), "wal/00000000000000000042.wal");
    assert_eq!(segment::id_from_path(&segment::path(42)), Some(42));
    assert_eq!(segment::id_from_path("wal/42.wal"), None);
    assert_eq!(segment::id_from_path("wal/0000000000000000004x.wal"), None);
    assert_eq!(
        segment::id_from_path("other/00000000000000000042.wal"),
        None
    );
}

#[test]
fn a_zero_tail_from_reserved_space_is_a_clean_end_at_every_cut() {
    let commits: Vec<(u64, RecordBatch)> = (1..=3).map(|ts| (ts, rows(&[ts]))).collect();
    let bytes = segment_bytes(1, None, &commits, |offset| offset as u64);
    let frame_ends = frame_ends(&bytes);
    for cut in 0..=bytes.len() {
        // What a crash leaves in a preallocated segment: the written prefix, then zeros.
        let mut reserved = bytes[..cut].to_vec();
        reserved.resize(bytes.len() + 4096, 0);
        let storage = MemoryStorage::new();
        store(&storage, &segment::path(1), reserved);
        let (summary, timestamps) = smol::block_on(replay_all(&storage))
            .unwrap_or_else(|error| panic!("cut at {cut}: {error}"));
        // Bytes after the cut that were zeros anyway (padding) are as good as written.
        let intact = cut + bytes[cut..].iter().take_while(|&&byte| byte == 0).count();
        let survivors = frame_ends.iter().filter(|end| **end <= intact).count();
        assert_eq!(
            timestamps.len(),
            survivors.saturating_sub(1),
            "cut at {cut}"
        );
        let end = summary.last_segment.expect("one segment").length as usize;
        let expected_end = frame_ends.iter().rev().find(|end| **end <= intact);
        assert_eq!(end, expected_end.copied().unwrap_or(0), "cut at {cut}");
    }
}

#[test]
fn damage_before_a_zero_tail_is_still_corruption_when_proven_durable() {
    let commits: Vec<(u64, RecordBatch)> = (1..=3).map(|ts| (ts, rows(&[ts]))).collect();
    let mut bytes = segment_bytes(1, None, &commits, |offset| offset as u64);
    let offsets = frame_offsets(&bytes);
    bytes[offsets[1] + frame::HEADER_LEN + 1] ^= 0x04;
    bytes.resize(bytes.len() + (64 << 10), 0);
    let storage = MemoryStorage::new();
    store(&storage, &segment::path(1), bytes);
    assert!(matches!(
        smol::block_on(replay_all(&storage)),
        Err(WalError::Corrupt { offset, .. }) if offset == offsets[1] as u64
    ));
}
