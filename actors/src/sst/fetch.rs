//! Reading an SST's bytes, checked, and feeding them to Parquet's sans-IO push decoders.
//!
//! [`SstFile`] is the only way the reader reaches a file's bytes once it is open, and it hands
//! out only bytes that matched their checksums: each read from storage is widened to whole
//! checksummed units (stripes, or the footer) and every unit is checked before any of it is used.
//! Ranges that lie close together are read in one storage call, because a call costs more than a
//! few extra bytes; the decoder gets back exactly the ranges it asked for (slices of what was
//! read, without copying), as it requires. The file's tail, read and checked when the file was
//! opened, serves the reads that usually lie there (bloom filters) without a storage call.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use damselfly_runtimes::Storage;
use parquet::DecodeResult;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use parquet::arrow::push_decoder::ParquetPushDecoder;

use super::SstError;
use super::checksum::FileChecksums;

/// Ranges closer than this are read in one storage call.
const COALESCE_GAP_BYTES: u64 = 64 << 10;

/// An SST's bytes on storage, read only through checksums.
#[derive(Debug)]
pub(crate) struct SstFile {
    storage: Arc<dyn Storage>,
    path: String,
    checksums: FileChecksums,
    /// Where `tail` starts: a unit boundary.
    tail_start: u64,
    /// The file from `tail_start` to its end, checked.
    tail: Bytes,
}

impl SstFile {
    /// The file at `path` with `checksums`, whose bytes from `read_start` to the end are
    /// `read` (the tail read when the file was opened). The whole units of `read` are checked
    /// and kept; the bytes before the first unit boundary are dropped.
    pub fn new(
        storage: Arc<dyn Storage>,
        path: &str,
        checksums: FileChecksums,
        read_start: u64,
        read: Bytes,
    ) -> Result<Self, SstError> {
        let tail_start = checksums.next_boundary(read_start);
        let tail = read.slice((tail_start - read_start) as usize..);
        checksums.check(path, tail_start, &tail)?;
        Ok(Self {
            storage,
            path: path.to_owned(),
            checksums,
            tail_start,
            tail,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.checksums.file_len()
    }

    /// The checked tail: its range in the file and its bytes.
    pub fn tail(&self) -> (Range<u64>, Bytes) {
        (self.tail_start..self.len(), self.tail.clone())
    }

    /// Reads `range`: from the tail if it lies there, else from storage (checked).
    pub async fn read_near_tail(&self, range: Range<u64>) -> Result<Bytes, SstError> {
        if range.start >= self.tail_start && range.start <= range.end && range.end <= self.len() {
            let start = (range.start - self.tail_start) as usize;
            return Ok(self
                .tail
                .slice(start..start + (range.end - range.start) as usize));
        }
        let mut buffers = self.read_ranges(std::slice::from_ref(&range)).await?;
        Ok(buffers.pop().unwrap_or_default())
    }

    /// Reads `ranges` from storage, returning one buffer per range, in the order asked, every
    /// byte checked. A range outside the file is [`SstError::Corrupt`] (the metadata that named
    /// it lies).
    pub async fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>, SstError> {
        if let Some(outside) = ranges
            .iter()
            .find(|range| range.start > range.end || range.end > self.len())
        {
            return Err(self.corrupt(format!(
                "bytes {}..{} lie outside the {}-byte file",
                outside.start,
                outside.end,
                self.len()
            )));
        }
        // Each range widened to whole units, with its index, in file order (an empty range
        // needs no read).
        let mut reads: Vec<(Range<u64>, usize)> = ranges
            .iter()
            .enumerate()
            .filter(|(_, range)| !range.is_empty())
            .map(|(index, range)| (self.checksums.widen(range.clone()), index))
            .collect();
        reads.sort_by_key(|(widened, _)| (widened.start, widened.end));
        let mut buffers = vec![Bytes::new(); ranges.len()];
        let mut next = 0;
        while next < reads.len() {
            // One read covers a run of ranges whose gaps are small; it starts and ends at unit
            // boundaries, as every widened range does.
            let start = reads[next].0.start;
            let mut end = reads[next].0.end;
            let mut last = next + 1;
            while last < reads.len() && reads[last].0.start <= end + COALESCE_GAP_BYTES {
                end = end.max(reads[last].0.end);
                last += 1;
            }
            let read = self.storage.read_range(&self.path, start..end).await?;
            if read.len() as u64 != end - start {
                return Err(self.corrupt(format!(
                    "a read of bytes {start}..{end} returned {} bytes",
                    read.len()
                )));
            }
            self.checksums.check(&self.path, start, &read)?;
            for &(_, index) in &reads[next..last] {
                let range = &ranges[index];
                buffers[index] =
                    read.slice((range.start - start) as usize..(range.end - start) as usize);
            }
            next = last;
        }
        Ok(buffers)
    }

    fn corrupt(&self, reason: String) -> SstError {
        SstError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The batches of a push decoder, decoded from `file`'s checked bytes, row group after row
/// group.
pub(crate) struct DecodedBatches {
    decoder: ParquetPushDecoder,
    /// The reader of the current row group.
    reader: Option<ParquetRecordBatchReader>,
}

impl DecodedBatches {
    pub fn new(decoder: ParquetPushDecoder) -> Self {
        Self {
            decoder,
            reader: None,
        }
    }

    /// The next batch, reading what the decoder needs from `file`; `None` when done.
    pub async fn next(&mut self, file: &SstFile) -> Result<Option<RecordBatch>, SstError> {
        let parquet_error = |source| SstError::Parquet {
            path: file.path().to_owned(),
            source,
        };
        loop {
            if let Some(batch) = self.reader.as_mut().and_then(Iterator::next) {
                return Ok(Some(batch.map_err(|error| parquet_error(error.into()))?));
            }
            match self.decoder.try_next_reader().map_err(parquet_error)? {
                DecodeResult::NeedsData(ranges) => {
                    let buffers = file.read_ranges(&ranges).await?;
                    self.decoder
                        .push_ranges(ranges, buffers)
                        .map_err(parquet_error)?;
                }
                DecodeResult::Data(reader) => self.reader = Some(reader),
                DecodeResult::Finished => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use damselfly_runtimes::MemoryStorage;

    use super::*;
    use crate::sst::checksum::{FooterChecksum, Stripes};

    /// A 100-byte file (a 90-byte body in 32-byte stripes, a 10-byte footer) whose last 30 bytes
    /// were read when it was opened.
    fn file(bytes: &[u8]) -> SstFile {
        let storage = Arc::new(MemoryStorage::new());
        let written: Vec<u8> = (0..100).collect();
        smol::block_on(storage.put("f", Bytes::copy_from_slice(bytes))).expect("put");
        let checksums = FileChecksums::new(
            Stripes::of(&written[..90], 32),
            FooterChecksum::of(&written[90..]),
            100,
        )
        .expect("checksums");
        let tail = Bytes::copy_from_slice(&bytes[70..]);
        SstFile::new(storage, "f", checksums, 70, tail).expect("an intact tail")
    }

    #[test]
    fn reads_return_exactly_the_ranges_asked_for() {
        let bytes: Vec<u8> = (0..100).collect();
        let file = file(&bytes);
        assert_eq!(file.tail().0, 90..100, "the tail starts at a unit boundary");
        let ranges = [70..95, 5..10, 40..40, 0..0, 33..34];
        let buffers = smol::block_on(file.read_ranges(&ranges)).expect("reads");
        for (range, buffer) in ranges.iter().zip(&buffers) {
            let range = range.start as usize..range.end as usize;
            assert_eq!(buffer.as_ref(), &bytes[range]);
        }
        let buffers = smol::block_on(file.read_ranges(&[45..45, 70..80])).expect("reads");
        assert_eq!((buffers[0].len(), buffers[1].as_ref()), (0, &bytes[70..80]));
        let near_tail = smol::block_on(file.read_near_tail(91..99)).expect("from the tail");
        assert_eq!(near_tail.as_ref(), &bytes[91..99]);
        let outside = smol::block_on(file.read_near_tail(95..101));
        assert!(
            matches!(outside, Err(SstError::Corrupt { .. })),
            "{outside:?}"
        );
    }

    #[test]
    fn damage_outside_the_ranges_asked_for_is_caught_in_their_stripes() {
        let mut bytes: Vec<u8> = (0..100).collect();
        bytes[60] ^= 1;
        let file = file(&bytes);
        let read = smol::block_on(file.read_near_tail(40..41));
        assert!(
            matches!(&read, Err(SstError::ChecksumMismatch { range, .. }) if *range == (32..64)),
            "{read:?}"
        );
        let elsewhere = smol::block_on(file.read_near_tail(0..10)).expect("another stripe");
        assert_eq!(elsewhere.as_ref(), &bytes[0..10]);
    }
}
