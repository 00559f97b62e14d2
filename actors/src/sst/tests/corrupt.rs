//! Damaged, foreign and truncated files: always a typed error, never a panic. And the other
//! side: a good SST is a plain Parquet file other readers understand.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;

use super::model::{Model, random_model};
use super::*;
use crate::table::TableSchema;

const PATH: &str = "sst/1.parquet";

/// Opens `bytes` as an SST whose descriptor gives its footer the checksum `footer`.
fn try_open(model: &Model, bytes: Bytes, footer: FooterChecksum) -> Result<SstReader, SstError> {
    let storage = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put(PATH, bytes)).expect("put");
    smol::block_on(SstReader::open(
        storage,
        PATH,
        Arc::clone(&model.table),
        Arc::new(BlockCache::default()),
        footer,
    ))
}

/// The checksum a descriptor of `bytes` would give their footer, if they were an SST: of the
/// Parquet footer their last 8 bytes describe, or of those 8 bytes when that does not fit.
fn footer_of(bytes: &[u8]) -> FooterChecksum {
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let metadata = tail.get(..4).map_or(0, |length| {
        u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize
    });
    let footer = if metadata + 8 <= bytes.len() {
        metadata + 8
    } else {
        tail.len()
    };
    FooterChecksum::of(&bytes[bytes.len() - footer..])
}

/// Whether `error` reports the file at [`PATH`] as corrupt.
fn is_corrupt(error: &SstError) -> bool {
    match error {
        SstError::Corrupt { path, reason } => path == PATH && !reason.is_empty(),
        SstError::ChecksumMismatch {
            path,
            range,
            expected,
            found,
        } => path == PATH && !range.is_empty() && expected != found,
        _ => false,
    }
}

fn assert_corrupt(result: Result<SstReader, SstError>, context: &str) {
    match result {
        Err(error) => assert!(
            is_corrupt(&error),
            "{context}: expected corruption, got {error}"
        ),
        Ok(_) => panic!("{context}: a damaged file opened"),
    }
}

/// Reads everything a reader offers; errors are fine, panics are not.
fn exercise(model: &Model, reader: &SstReader) {
    let all: Vec<usize> = (0..model.table.schema().fields().len()).collect();
    if let Ok(mut scan) = reader.scan(KeyRange::all(), u64::MAX, &all, ScanOptions::default()) {
        while let Ok(Some(_)) = smol::block_on(scan.next_chunk()) {}
    }
    for (key, versions) in model.versions.iter().take(20) {
        let columns = key_columns(model, &model.rows, versions[0].row);
        let _ = smol::block_on(reader.get(key, &columns, u64::MAX));
    }
}

#[test]
fn truncated_files_are_corrupt() {
    let model = random_model(11, 120, 3, 20);
    let sst = encode(&model, &small_options(), 11);
    let length = sst.bytes.len();
    let mut cuts: Vec<usize> = (0..16).collect();
    cuts.extend((1..200).map(|back| length - back));
    cuts.extend((1..20).map(|part| length * part / 20));
    for cut in cuts {
        assert_corrupt(
            try_open(&model, sst.bytes.slice(..cut), sst.info.footer),
            &format!("cut at {cut}"),
        );
    }
}

#[test]
fn garbage_is_corrupt() {
    let model = random_model(12, 50, 2, 20);
    for seed in seeds() {
        println!("seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)");
        let mut rng = fastrand::Rng::with_seed(seed);
        for round in 0..50 {
            let length = rng.usize(0..5000);
            let mut bytes: Vec<u8> = (0..length).map(|_| rng.u8(..)).collect();
            if round % 2 == 0 && length >= 8 {
                // A plausible footer: a metadata length, then the magic.
                let metadata = rng.u32(..length as u32) as usize;
                bytes[length - 8..length - 4].copy_from_slice(&(metadata as u32).to_le_bytes());
                bytes[length - 4..].copy_from_slice(b"PAR1");
            }
            // A descriptor that vouches for the garbage's footer: the decoder must refuse it.
            let footer = footer_of(&bytes);
            assert_corrupt(
                try_open(&model, Bytes::from(bytes), footer),
                &format!("seed {seed} round {round}"),
            );
        }
    }
}

/// Damage the checksums cannot see — metadata that was wrong before its checksum was taken, as a
/// writer bug or a lying descriptor would make it — is refused or read without a panic.
#[test]
fn damaged_metadata_with_a_matching_checksum_never_panics() {
    let model = random_model(13, 120, 3, 20);
    for compression in [SstCompression::Zstd(1), SstCompression::Uncompressed] {
        let options = SstOptions {
            compression,
            ..small_options()
        };
        let sst = encode(&model, &options, 13);
        let footer_start = sst.bytes.len() - sst.info.footer.bytes as usize;
        for seed in seeds() {
            println!(
                "seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)"
            );
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..100 {
                let mut bytes = sst.bytes.to_vec();
                let position = rng.usize(footer_start..bytes.len());
                bytes[position] ^= rng.u8(1..);
                let footer = footer_of(&bytes);
                if let Ok(reader) = try_open(&model, Bytes::from(bytes), footer) {
                    exercise(&model, &reader);
                }
            }
        }
    }
}

#[test]
fn files_of_other_tables_are_corrupt() {
    let model = random_model(14, 30, 2, 20);
    let sst = encode(&model, &small_options(), 14);
    let other_schema = Schema::new(vec![Field::new("id", DataType::UInt64, false)]);
    let other = Arc::new(TableSchema::new(Arc::new(other_schema.clone()), &["id"]).expect("table"));
    let storage = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put(PATH, sst.bytes.clone())).expect("put");
    let result = smol::block_on(SstReader::open(
        storage,
        PATH,
        Arc::clone(&other),
        Arc::new(BlockCache::default()),
        sst.info.footer,
    ));
    assert!(matches!(result, Err(SstError::Corrupt { reason, .. }) if reason.contains("schema")));

    // A Parquet file with the right columns but without our footer.
    let other_model = Model {
        table: Arc::clone(&other),
        rows: RecordBatch::new_empty(Arc::new(other_schema)),
        versions: Default::default(),
        absent: Vec::new(),
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(vec![1, 2])),
        Arc::new(UInt64Array::from(vec![1, 1])),
        Arc::new(arrow_array::BooleanArray::from(vec![false, false])),
    ];
    let batch = RecordBatch::try_new(sst_schema(&other), columns).expect("batch");
    let mut plain = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut plain, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let footer = footer_of(&plain);
    let result = try_open(&other_model, Bytes::from(plain), footer);
    assert!(
        matches!(result, Err(SstError::Corrupt { reason, .. }) if reason.contains(SST_METADATA_KEY))
    );
}

#[test]
fn an_sst_is_a_plain_parquet_file() {
    let model = random_model(15, 200, 3, 20);
    let options = small_options();
    let sst = encode(&model, &options, 15);
    let reader_options =
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(sst.bytes.clone(), reader_options)
            .expect("a Parquet file");
    assert_eq!(builder.schema().fields(), sst_schema(&model.table).fields());
    let metadata = Arc::clone(builder.metadata());
    let (expected, _) = model.sst_rows();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect();
    let read =
        arrow_select::concat::concat_batches(&sst_schema(&model.table), &batches).expect("concat");
    assert_eq!(
        read, expected,
        "the rows, in SST order, readable by any Parquet reader"
    );
    for (group_index, group) in metadata.row_groups().iter().enumerate() {
        let page_index = metadata.page_index_for_row_group(group_index);
        assert!(group.num_rows() as usize <= options.row_group_rows);
        let sorting = group.sorting_columns().expect("sorting columns");
        assert_eq!(sorting.len(), 3, "two key columns and the commit timestamp");
        assert!(sorting[2].descending);
        for leaf in [3, 5] {
            assert!(
                group.column(leaf).bloom_filter_offset().is_some(),
                "key column {leaf} has a bloom filter"
            );
        }
        for leaf in 0..group.num_columns() {
            // Parquet writes no page statistics for repeated columns.
            let repeated = metadata
                .file_metadata()
                .schema_descr()
                .column(leaf)
                .max_rep_level()
                > 0;
            assert!(
                repeated || page_index.column_index(leaf).is_some(),
                "page statistics of {leaf}"
            );
            let pages = page_index.page_locations(leaf).expect("an offset index");
            let starts: Vec<i64> = pages.iter().map(|page| page.first_row_index).collect();
            let mut bounds = starts.clone();
            bounds.push(group.num_rows());
            for pair in bounds.windows(2) {
                assert!(
                    (pair[1] - pair[0]) as usize <= options.page_rows,
                    "page of {} rows",
                    pair[1] - pair[0]
                );
            }
        }
    }
}
