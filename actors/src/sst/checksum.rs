//! Checksums over every byte of an SST, so that damage anywhere in a stored file is reported as
//! corrupt instead of being decoded into wrong rows. (Parquet as arrow-rs writes it carries no
//! page checksums.)
//!
//! A file is cut into **units**, each with a CRC32C:
//! - the *body*, bytes `0..footer_start` — pages, dictionaries, bloom filters and the page index —
//!   in stripes of `stripe_bytes` (the last one may be shorter), whose checksums ([`Stripes`])
//!   the SST footer lists ([`SstFooter`](super::footer::SstFooter));
//! - the *footer*, `footer_start..` the end — Parquet's metadata (which holds the SST footer), its
//!   length and `PAR1`. It cannot hold its own checksum, so its length and CRC32C
//!   ([`FooterChecksum`]) are kept by whoever names the file: the manifest's SST descriptor, itself
//!   checksummed.
//!
//! Promises: [`FileChecksums::check`] accepts bytes only if every unit they touch is whole and
//! matches its checksum; readers widen each read to whole units ([`FileChecksums::widen`]) so
//! that every byte they use is checked. A mismatch is [`SstError::ChecksumMismatch`] naming the
//! file, the unit's byte range, and the expected and found CRC.

use std::ops::Range;

use super::SstError;

/// The stripe size SSTs are written with unless told otherwise. A read is widened to whole
/// stripes, so a stripe much larger than a page multiplies what a point lookup reads and checks
/// (a page of 4096 rows is a few KiB to a few tens of KiB compressed); a much smaller one makes
/// the list of checksums in the footer long (about 11 bytes of JSON per stripe), and every open
/// reads and parses it. On the benchmark table (3–4 KiB pages) a lookup that reads its block
/// took 2–5% longer than without checksums with 4 KiB or 16 KiB stripes and 7–10% with 64 KiB;
/// 16 KiB stripes add 0.07% to the file, 4 KiB ones 0.27% (`docs/format.md`, "Checksums").
pub const DEFAULT_STRIPE_BYTES: usize = 16 << 10;

/// The length and CRC32C of an SST's footer (its last `bytes` bytes: Parquet's metadata, the
/// metadata's length and `PAR1`), kept in the manifest's SST descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterChecksum {
    /// The footer's length: the file's last `bytes` bytes.
    pub bytes: u64,
    /// CRC32C of those bytes.
    pub crc32c: u32,
}

impl FooterChecksum {
    /// The checksum of `footer`.
    pub fn of(footer: &[u8]) -> Self {
        Self {
            bytes: footer.len() as u64,
            crc32c: crc32c::crc32c(footer),
        }
    }

    /// Checks `footer`, the footer of the file at `path`, which starts at byte `start`.
    pub(crate) fn check(&self, path: &str, start: u64, footer: &[u8]) -> Result<(), SstError> {
        check_unit(path, start..start + self.bytes, self.crc32c, footer)
    }
}

/// The CRC32C of every stripe of an SST's body, as its footer lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripes {
    /// Bytes per stripe; the last stripe of the body may be shorter.
    pub stripe_bytes: u64,
    /// The CRC32C of each stripe, in file order.
    pub crc32c: Vec<u32>,
}

impl Stripes {
    /// The checksums of `body` in stripes of `stripe_bytes` (at least 1).
    pub fn of(body: &[u8], stripe_bytes: usize) -> Self {
        Self {
            stripe_bytes: stripe_bytes as u64,
            crc32c: body.chunks(stripe_bytes).map(crc32c::crc32c).collect(),
        }
    }
}

/// Every unit of one file with its checksum: what reads of the file are checked against.
#[derive(Debug)]
pub(crate) struct FileChecksums {
    stripes: Stripes,
    footer: FooterChecksum,
    /// Where the footer starts: the body's length.
    footer_start: u64,
}

impl FileChecksums {
    /// The checksums of a file of `file_len` bytes; the error says why they cannot be its.
    pub fn new(stripes: Stripes, footer: FooterChecksum, file_len: u64) -> Result<Self, String> {
        let footer_start = file_len.checked_sub(footer.bytes).ok_or_else(|| {
            format!(
                "its footer is said to be {} bytes, but the file has {file_len}",
                footer.bytes
            )
        })?;
        if stripes.stripe_bytes == 0 {
            return Err("its stripes are 0 bytes".to_owned());
        }
        let expected = footer_start.div_ceil(stripes.stripe_bytes);
        if stripes.crc32c.len() as u64 != expected {
            return Err(format!(
                "its footer lists {} stripe checksums, but its {footer_start}-byte body has \
                 {expected} stripes of {} bytes",
                stripes.crc32c.len(),
                stripes.stripe_bytes
            ));
        }
        Ok(Self {
            stripes,
            footer,
            footer_start,
        })
    }

    /// The file's length.
    pub fn file_len(&self) -> u64 {
        self.footer_start + self.footer.bytes
    }

    /// `range` widened to whole units; `range` lies inside the file.
    pub fn widen(&self, range: Range<u64>) -> Range<u64> {
        if range.is_empty() {
            return range;
        }
        self.unit(range.start).0.start..self.unit(range.end - 1).0.end
    }

    /// The first unit boundary at or after `offset` (at most the file's length).
    pub fn next_boundary(&self, offset: u64) -> u64 {
        if offset >= self.file_len() {
            return self.file_len();
        }
        let (unit, _) = self.unit(offset);
        if unit.start == offset {
            offset
        } else {
            unit.end
        }
    }

    /// Checks `bytes`, the file's bytes from `start` on. They should start and end at unit
    /// boundaries (see [`FileChecksums::widen`]): a unit they hold only part of fails its check.
    pub fn check(&self, path: &str, start: u64, bytes: &[u8]) -> Result<(), SstError> {
        let end = start + bytes.len() as u64;
        let mut offset = start;
        while offset < end {
            let (unit, expected) = self.unit(offset);
            debug_assert_eq!(unit.start, offset, "checks start at a unit boundary");
            let held = (offset - start) as usize..(unit.end.min(end) - start) as usize;
            check_unit(path, unit.clone(), expected, &bytes[held])?;
            offset = unit.end;
        }
        Ok(())
    }

    /// The unit holding byte `offset` of the file, and its checksum.
    fn unit(&self, offset: u64) -> (Range<u64>, u32) {
        if offset >= self.footer_start {
            return (self.footer_start..self.file_len(), self.footer.crc32c);
        }
        let stripe_bytes = self.stripes.stripe_bytes;
        let index = offset / stripe_bytes;
        let start = index * stripe_bytes;
        let end = (start + stripe_bytes).min(self.footer_start);
        // `new` checked that there is a checksum for every stripe of the body.
        (start..end, self.stripes.crc32c[index as usize])
    }
}

/// Checks that `bytes` are the whole `unit` of the file at `path` and match `expected`.
fn check_unit(path: &str, unit: Range<u64>, expected: u32, bytes: &[u8]) -> Result<(), SstError> {
    let found = crc32c::crc32c(bytes);
    if found == expected && bytes.len() as u64 == unit.end - unit.start {
        return Ok(());
    }
    Err(SstError::ChecksumMismatch {
        path: path.to_owned(),
        range: unit,
        expected,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 100-byte file: a 90-byte body in stripes of 32 bytes, then a 10-byte footer.
    fn file() -> (Vec<u8>, FileChecksums) {
        let bytes: Vec<u8> = (0..100).collect();
        let stripes = Stripes::of(&bytes[..90], 32);
        assert_eq!(stripes.crc32c.len(), 3);
        let footer = FooterChecksum::of(&bytes[90..]);
        let checksums = FileChecksums::new(stripes, footer, 100).expect("checksums of the file");
        (bytes, checksums)
    }

    #[test]
    fn reads_widen_to_whole_stripes_or_the_whole_footer() {
        let (_, checksums) = file();
        assert_eq!(checksums.widen(0..1), 0..32);
        assert_eq!(checksums.widen(31..33), 0..64);
        assert_eq!(checksums.widen(64..65), 64..90);
        assert_eq!(checksums.widen(89..91), 64..100);
        assert_eq!(checksums.widen(95..96), 90..100);
        assert_eq!(checksums.widen(40..40), 40..40);
        assert_eq!(checksums.next_boundary(0), 0);
        assert_eq!(checksums.next_boundary(33), 64);
        assert_eq!(checksums.next_boundary(70), 90);
        assert_eq!(checksums.next_boundary(91), 100);
    }

    #[test]
    fn every_flipped_bit_is_caught_and_named() {
        let (bytes, checksums) = file();
        checksums.check("f", 0, &bytes).expect("the intact file");
        for offset in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[offset] ^= 1 << bit;
                match checksums.check("f", 0, &damaged) {
                    Err(SstError::ChecksumMismatch {
                        path,
                        range,
                        expected,
                        found,
                    }) => {
                        assert_eq!(path, "f");
                        assert!(range.contains(&(offset as u64)), "{range:?} holds {offset}");
                        assert_ne!(expected, found);
                    }
                    other => panic!("bit {bit} of byte {offset}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn partial_units_fail() {
        let (bytes, checksums) = file();
        checksums
            .check("f", 32, &bytes[32..64])
            .expect("one whole stripe");
        checksums
            .check("f", 90, &bytes[90..])
            .expect("the whole footer");
        assert!(checksums.check("f", 32, &bytes[32..63]).is_err());
        assert!(checksums.check("f", 90, &bytes[90..99]).is_err());
    }

    #[test]
    fn checksums_must_fit_the_file() {
        let bytes = [7u8; 100];
        let footer = FooterChecksum::of(&bytes[90..]);
        let short = Stripes::of(&bytes[..60], 32);
        assert!(FileChecksums::new(short, footer, 100).is_err());
        let right = Stripes::of(&bytes[..90], 32);
        assert!(FileChecksums::new(right.clone(), footer, 5).is_err());
        let zero = Stripes {
            stripe_bytes: 0,
            ..right
        };
        assert!(FileChecksums::new(zero, footer, 100).is_err());
    }
}
