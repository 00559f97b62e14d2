//! Feeding Parquet's sans-IO push decoder with byte ranges read through [`Storage`].
//!
//! The decoder says which byte ranges it needs; we read them — ranges that lie close together
//! in one storage call, because a call costs more than a few extra bytes — and push back exactly
//! the ranges asked for (slices of what was read, without copying), as the decoder requires.

use std::ops::Range;

use bytes::Bytes;
use damselfly_runtimes::Storage;
use parquet::DecodeResult;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use parquet::arrow::push_decoder::ParquetPushDecoder;

use super::SstError;

/// Ranges closer than this are read in one storage call.
const COALESCE_GAP_BYTES: u64 = 64 << 10;

/// Reads `ranges` of `path`, returning one buffer per range, in the order asked.
pub(crate) async fn read_ranges(
    storage: &dyn Storage,
    path: &str,
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>, SstError> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&index| (ranges[index].start, ranges[index].end));
    let mut buffers = vec![Bytes::new(); ranges.len()];
    let mut next = 0;
    while next < order.len() {
        // One read covers a run of ranges whose gaps are small.
        let start = ranges[order[next]].start;
        let mut end = ranges[order[next]].end;
        let mut last = next + 1;
        while last < order.len() && ranges[order[last]].start <= end + COALESCE_GAP_BYTES {
            end = end.max(ranges[order[last]].end);
            last += 1;
        }
        let read = storage.read_range(path, start..end).await?;
        for &index in &order[next..last] {
            let range = &ranges[index];
            buffers[index] =
                read.slice((range.start - start) as usize..(range.end - start) as usize);
        }
        next = last;
    }
    Ok(buffers)
}

/// The reader of the decoder's next row group, reading what it needs; `None` when done.
pub(crate) async fn next_reader(
    decoder: &mut ParquetPushDecoder,
    storage: &dyn Storage,
    path: &str,
) -> Result<Option<ParquetRecordBatchReader>, SstError> {
    let parquet_error = |source| SstError::Parquet {
        path: path.to_owned(),
        source,
    };
    loop {
        match decoder.try_next_reader().map_err(parquet_error)? {
            DecodeResult::NeedsData(ranges) => {
                let buffers = read_ranges(storage, path, &ranges).await?;
                decoder
                    .push_ranges(ranges, buffers)
                    .map_err(parquet_error)?;
            }
            DecodeResult::Data(reader) => return Ok(Some(reader)),
            DecodeResult::Finished => return Ok(None),
        }
    }
}
