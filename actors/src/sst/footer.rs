//! The SST footer: our key-value metadata [`SST_METADATA_KEY`](super::SST_METADATA_KEY) in the
//! Parquet footer, a compact JSON object.
//!
//! ```json
//! {"version":2,"rows":1000000,"deletes":0,"unique_keys":true,
//!  "min_ts":1,"max_ts":1000,"min_key":"0180..","max_key":"0180..",
//!  "key_columns":["id"],"block_rows":4096,"block_first_keys":["0180..", ...],
//!  "stripe_bytes":16384,"stripe_crc32c":[3735928559, ...]}
//! ```
//!
//! Keys are encoded keys ([`KeyBytes`]) in lowercase hex. Block `i` is rows
//! `i * block_rows ..` of the file, counted per row group: a block never straddles a row group
//! (row groups hold a multiple of `block_rows` rows, except the last). The stripe checksums
//! cover every byte of the file before Parquet's metadata ([`Stripes`], see
//! the `checksum` module). Parsing checks every field against the others and against the
//! file's row count; a footer that does not add up is rejected, never guessed around.

use serde::{Deserialize, Serialize};

use super::checksum::Stripes;
use crate::table::KeyBytes;

/// The footer format this build writes and reads (2: stripe checksums added).
pub const FOOTER_VERSION: u32 = 2;

/// The footer of an SST, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SstFooter {
    /// Rows in the file.
    pub rows: u64,
    /// Rows that delete their key.
    pub deletes: u64,
    /// Whether every key appears in one row only.
    pub unique_keys: bool,
    /// The oldest commit timestamp.
    pub min_ts: u64,
    /// The newest commit timestamp.
    pub max_ts: u64,
    /// The smallest key.
    pub min_key: KeyBytes,
    /// The largest key.
    pub max_key: KeyBytes,
    /// The key columns' names, in key order (for other tools).
    pub key_columns: Vec<String>,
    /// Rows per block.
    pub block_rows: u64,
    /// The first key of every block.
    pub block_first_keys: Vec<KeyBytes>,
    /// The checksums of the file's body: every byte before Parquet's metadata.
    pub stripes: Stripes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    version: u32,
    rows: u64,
    deletes: u64,
    unique_keys: bool,
    min_ts: u64,
    max_ts: u64,
    min_key: String,
    max_key: String,
    key_columns: Vec<String>,
    block_rows: u64,
    block_first_keys: Vec<String>,
    stripe_bytes: u64,
    stripe_crc32c: Vec<u32>,
}

impl SstFooter {
    /// The footer as stored.
    pub fn to_json(&self) -> String {
        let json = Json {
            version: FOOTER_VERSION,
            rows: self.rows,
            deletes: self.deletes,
            unique_keys: self.unique_keys,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            min_key: to_hex(self.min_key.as_bytes()),
            max_key: to_hex(self.max_key.as_bytes()),
            key_columns: self.key_columns.clone(),
            block_rows: self.block_rows,
            block_first_keys: self
                .block_first_keys
                .iter()
                .map(|key| to_hex(key.as_bytes()))
                .collect(),
            stripe_bytes: self.stripes.stripe_bytes,
            stripe_crc32c: self.stripes.crc32c.clone(),
        };
        serde_json::to_string(&json).expect("a struct of strings and integers always serialises")
    }

    /// Parses and checks a stored footer; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let json: Json =
            serde_json::from_str(text).map_err(|error| format!("footer is not valid: {error}"))?;
        if json.version != FOOTER_VERSION {
            return Err(format!(
                "footer version {} is not supported (this build reads {FOOTER_VERSION})",
                json.version
            ));
        }
        let key = |hex: &str| from_hex(hex).map(|bytes| KeyBytes::from_slice(&bytes));
        let footer = SstFooter {
            rows: json.rows,
            deletes: json.deletes,
            unique_keys: json.unique_keys,
            min_ts: json.min_ts,
            max_ts: json.max_ts,
            min_key: key(&json.min_key)?,
            max_key: key(&json.max_key)?,
            key_columns: json.key_columns,
            block_rows: json.block_rows,
            block_first_keys: json
                .block_first_keys
                .iter()
                .map(|hex| key(hex))
                .collect::<Result<_, _>>()?,
            stripes: Stripes {
                stripe_bytes: json.stripe_bytes,
                crc32c: json.stripe_crc32c,
            },
        };
        footer.check()?;
        Ok(footer)
    }

    /// Checks the fields against each other.
    fn check(&self) -> Result<(), String> {
        let expected_blocks = self.rows.div_ceil(self.block_rows.max(1));
        let problem = if self.rows == 0 {
            Some("an SST has at least one row".to_owned())
        } else if self.block_rows == 0 {
            Some("block_rows is zero".to_owned())
        } else if self.stripes.stripe_bytes == 0 || self.stripes.crc32c.is_empty() {
            Some("the file's body has no stripes".to_owned())
        } else if self.deletes > self.rows {
            Some(format!("{} deletes in {} rows", self.deletes, self.rows))
        } else if self.min_ts > self.max_ts || self.min_key > self.max_key {
            Some("a minimum is above its maximum".to_owned())
        } else if (self.block_first_keys.len() as u64) < expected_blocks {
            Some(format!(
                "{} block keys for {} rows of {} per block",
                self.block_first_keys.len(),
                self.rows,
                self.block_rows
            ))
        } else if self.block_first_keys.first() != Some(&self.min_key) {
            Some("the first block does not start at the minimum key".to_owned())
        } else if self
            .block_first_keys
            .windows(2)
            .any(|pair| pair[0] > pair[1])
            || self
                .block_first_keys
                .last()
                .is_some_and(|last| *last > self.max_key)
        {
            Some("block keys are out of order".to_owned())
        } else {
            None
        };
        problem.map_or(Ok(()), Err)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("key {text:?} is not lowercase hex")),
    };
    if !text.len().is_multiple_of(2) {
        return Err(format!("key {text:?} has an odd number of hex digits"));
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> SstFooter {
        let key = |byte: u8| KeyBytes::from_slice(&[byte, 0, 255]);
        SstFooter {
            rows: 10,
            deletes: 1,
            unique_keys: false,
            min_ts: 3,
            max_ts: 9,
            min_key: key(1),
            max_key: key(9),
            key_columns: vec!["id".to_owned()],
            block_rows: 4,
            block_first_keys: vec![key(1), key(4), key(8)],
            stripes: Stripes {
                stripe_bytes: 16,
                crc32c: vec![1, 2, 0xffff_ffff],
            },
        }
    }

    #[test]
    fn round_trips() {
        let footer = footer();
        assert_eq!(SstFooter::parse(&footer.to_json()), Ok(footer));
    }

    #[test]
    fn rejects_footers_that_do_not_add_up() {
        let mut short = footer();
        short.block_first_keys.pop();
        let mut unordered = footer();
        unordered.block_first_keys.swap(1, 2);
        let mut deletes = footer();
        deletes.deletes = 11;
        let mut no_stripes = footer();
        no_stripes.stripes.crc32c.clear();
        let mut empty_stripes = footer();
        empty_stripes.stripes.stripe_bytes = 0;
        for bad in [short, unordered, deletes, no_stripes, empty_stripes] {
            assert!(SstFooter::parse(&bad.to_json()).is_err(), "{bad:?}");
        }
        assert!(SstFooter::parse("{").is_err());
        assert!(SstFooter::parse(&footer().to_json().replace("\"01", "\"0g")).is_err());
        let newer = footer().to_json().replace("\"version\":2", "\"version\":3");
        assert!(
            SstFooter::parse(&newer)
                .expect_err("a newer version")
                .contains("version 3")
        );
    }
}
