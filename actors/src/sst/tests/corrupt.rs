//! Damaged, foreign and truncated files: a typed error or exactly the original rows, never
//! different rows and never a panic. And the other side: a good SST is a plain Parquet file
//! other readers understand.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use arrow_select::concat::concat_batches;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use super::model::{Model, random_model};
use super::*;
use crate::table::TableSchema;

const PATH: &str = "sst/1.parquet";

/// Opens `bytes` as an SST whose descriptor gives its footer the checksum `footer` and its
/// length as the length of `bytes`.
fn try_open(model: &Model, bytes: Bytes, footer: FooterChecksum) -> Result<SstReader, SstError> {
    let len = bytes.len() as u64;
    try_open_described(model, bytes, footer, len)
}

/// Opens `bytes` as an SST whose descriptor records `footer` and a length of `len` bytes.
fn try_open_described(
    model: &Model,
    bytes: Bytes,
    footer: FooterChecksum,
    len: u64,
) -> Result<SstReader, SstError> {
    let storage = Arc::new(MemoryStorage::new());
    smol::block_on(storage.put(PATH, bytes)).expect("put");
    smol::block_on(SstReader::open(
        storage,
        PATH,
        Arc::clone(&model.table),
        Arc::new(BlockCache::default()),
        footer,
        len,
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
        // As opening finds it: shorter than its descriptor says.
        let truncated = sst.bytes.slice(..cut);
        assert_corrupt(
            try_open_described(&model, truncated, sst.info.footer, sst.info.bytes),
            &format!("cut at {cut}, opened with the descriptor's length"),
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

/// What an SST's bytes are, by what Parquet keeps there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// The leading `PAR1`.
    Magic,
    /// The pages (dictionary and data) of a column chunk of a row group.
    Pages { row_group: usize },
    /// A key column's bloom filter for a row group.
    BloomFilter { row_group: usize },
    /// A column index or offset index.
    PageIndex,
    /// Parquet's metadata, its length and `PAR1`.
    Footer,
}

/// A number for each kind of [`Region`], `0..5`.
fn kind_of(region: &Region) -> usize {
    match region {
        Region::Magic => 0,
        Region::Pages { .. } => 1,
        Region::BloomFilter { .. } => 2,
        Region::PageIndex => 3,
        Region::Footer => 4,
    }
}

/// Every byte of the SST `bytes` in its region, as the Parquet metadata places them.
fn regions(bytes: &Bytes, footer: FooterChecksum) -> Vec<(Range<u64>, Region)> {
    let parquet = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Skip)
        .parse_and_finish(bytes)
        .expect("an intact SST");
    let length = bytes.len() as u64;
    let mut regions = vec![
        (0..4, Region::Magic),
        (length - footer.bytes..length, Region::Footer),
    ];
    let span = |offset: Option<i64>, length: Option<i32>| {
        Some(offset? as u64..offset? as u64 + length? as u64)
    };
    for (row_group, group) in parquet.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset()) as u64;
            regions.push((
                start..start + column.compressed_size() as u64,
                Region::Pages { row_group },
            ));
            if let Some(range) = span(column.bloom_filter_offset(), column.bloom_filter_length()) {
                regions.push((range, Region::BloomFilter { row_group }));
            }
            for range in [
                span(column.column_index_offset(), column.column_index_length()),
                span(column.offset_index_offset(), column.offset_index_length()),
            ]
            .into_iter()
            .flatten()
            {
                regions.push((range, Region::PageIndex));
            }
        }
    }
    regions.sort_by_key(|(range, _)| range.start);
    let mut covered = 0;
    for (range, region) in &regions {
        assert_eq!(
            range.start, covered,
            "{region:?} follows the region before it"
        );
        covered = range.end;
    }
    assert_eq!(covered, length, "the regions cover the whole file");
    regions
}

/// What a full scan returns: the rows, their keys, timestamps and delete flags.
type ScanRows = (RecordBatch, Vec<KeyBytes>, Vec<u64>, Vec<bool>);

fn scan_all(model: &Model, reader: &SstReader) -> Result<ScanRows, SstError> {
    let all: Vec<usize> = (0..model.table.schema().fields().len()).collect();
    let mut scan = reader.scan(KeyRange::all(), u64::MAX, &all, ScanOptions::default())?;
    let mut rows = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Some(chunk) = smol::block_on(scan.next_chunk())? {
        rows.0.push(chunk.batch);
        rows.1.extend(chunk.keys.expect("keys were asked for"));
        rows.2
            .extend(chunk.timestamps.expect("timestamps were asked for").iter());
        rows.3.extend(chunk.deleted.iter());
    }
    let batch = concat_batches(model.table.schema(), &rows.0).expect("concat");
    Ok((batch, rows.1, rows.2, rows.3))
}

/// What a lookup returns: the version's timestamp, delete flag and row.
type Found = Option<(u64, bool, RecordBatch)>;

fn get(model: &Model, reader: &SstReader, key: &KeyBytes) -> Result<Found, SstError> {
    let columns = key_columns(model, &model.rows, model.versions[key][0].row);
    let found = smol::block_on(reader.get(key, &columns, u64::MAX))?;
    Ok(found.map(|version| (version.timestamp, version.deleted, version.row)))
}

/// Asserts that `error` is the checksum mismatch of the unit holding byte `offset`: with one
/// flipped bit, nothing else can fail, because nothing is decoded before it is checked.
fn assert_caught(error: &SstError, offset: u64, context: &str) {
    assert!(
        is_corrupt(error)
            && matches!(error, SstError::ChecksumMismatch { range, .. } if range.contains(&offset)),
        "{context}: expected the checksum mismatch of byte {offset}, got {error}"
    );
}

/// Asserts that `outcome` is the original (`expected`) or the checksum mismatch of the unit
/// holding byte `offset`; returns whether it was the mismatch.
fn same_or_caught<T: PartialEq + std::fmt::Debug>(
    outcome: Result<T, SstError>,
    expected: &T,
    offset: u64,
    context: &str,
) -> bool {
    match outcome {
        Ok(found) => {
            assert!(found == *expected, "{context}: different rows: {found:?}");
            false
        }
        Err(error) => {
            assert_caught(&error, offset, context);
            true
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_is_corruption_or_changes_nothing() {
    let model = random_model(16, 2500, 3, 20);
    // Enough rows that the file is several times the tail an open reads and checks, so that
    // most pages and bloom filters are checked only when they are read; small stripes, so that
    // there are many.
    let options = SstOptions {
        page_rows: 16,
        row_group_rows: 128,
        stripe_bytes: 1024,
        ..SstOptions::default()
    };
    let (sst_rows, sst_keys) = model.sst_rows();
    for compression in [SstCompression::Zstd(1), SstCompression::Uncompressed] {
        let options = SstOptions {
            compression,
            ..options.clone()
        };
        let sst = encode(&model, &options, 16);
        let regions = regions(&sst.bytes, sst.info.footer);
        let reader = try_open(&model, sst.bytes.clone(), sst.info.footer).expect("intact");
        let expected_scan = scan_all(&model, &reader).expect("an intact scan");
        // A key from each row group (its first row), whose lookup reads its bloom filters.
        let group_keys: Vec<KeyBytes> = (0..sst_rows.num_rows())
            .step_by(options.row_group_rows)
            .map(|row| sst_keys[row].clone())
            .collect();
        let mut expected_gets = BTreeMap::new();
        for key in model.versions.keys() {
            expected_gets.insert(key.clone(), get(&model, &reader, key).expect("intact"));
        }
        let mut caught_by_reads = 0;
        for seed in seeds() {
            println!(
                "seed {seed} (replay: SST_TEST_SEED={seed} cargo test -p damselfly-actors sst)"
            );
            let mut rng = fastrand::Rng::with_seed(seed);
            // Offsets anywhere in the file, and as many spread over the kinds of region (the
            // leading magic's four bytes only by chance).
            let mut offsets: Vec<u64> =
                (0..12).map(|_| rng.u64(..sst.bytes.len() as u64)).collect();
            for round in 0..12 {
                let of_kind: Vec<&Range<u64>> = regions
                    .iter()
                    .filter(|(_, region)| kind_of(region) == 1 + round % 4)
                    .map(|(range, _)| range)
                    .collect();
                let range = of_kind[rng.usize(..of_kind.len())].clone();
                offsets.push(rng.u64(range));
            }
            for offset in offsets {
                let region = regions
                    .iter()
                    .find(|(range, _)| range.contains(&offset))
                    .map(|(_, region)| *region)
                    .expect("the regions cover the file");
                let bit = rng.u8(..8);
                let context = format!(
                    "{compression:?}, seed {seed}: bit {bit} of byte {offset} ({region:?})"
                );
                let mut bytes = sst.bytes.to_vec();
                bytes[offset as usize] ^= 1 << bit;
                let reader = match try_open(&model, Bytes::from(bytes), sst.info.footer) {
                    Err(error) => {
                        assert_caught(&error, offset, &format!("{context}, opening"));
                        continue;
                    }
                    Ok(reader) => reader,
                };
                assert!(
                    !matches!(region, Region::Footer | Region::PageIndex),
                    "{context}: opening reads and checks the footer and the page index"
                );
                let scan = scan_all(&model, &reader);
                let caught = same_or_caught(scan, &expected_scan, offset, &context);
                if matches!(region, Region::Magic | Region::Pages { .. }) {
                    assert!(caught, "{context}: a full scan reads every page");
                    caught_by_reads += 1;
                }
                let sample = (0..20).map(|_| rng.usize(..model.versions.len()));
                let mut keys: Vec<&KeyBytes> = sample
                    .filter_map(|index| model.versions.keys().nth(index))
                    .collect();
                if let Region::BloomFilter { row_group } = region {
                    keys.insert(0, &group_keys[row_group]);
                }
                for (number, key) in keys.into_iter().enumerate() {
                    let context = format!("{context}, get {key:?}");
                    let found = get(&model, &reader, key);
                    let caught = same_or_caught(found, &expected_gets[key], offset, &context);
                    if number == 0 && matches!(region, Region::BloomFilter { .. }) {
                        assert!(
                            caught,
                            "{context}: the lookup reads the row group's filters"
                        );
                        caught_by_reads += 1;
                    }
                }
            }
        }
        assert!(
            caught_by_reads > 0,
            "{compression:?}: some damage is caught when the bytes are read, not at open"
        );
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
        sst.info.bytes,
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
