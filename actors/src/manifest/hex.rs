//! Keys in manifest records: lowercase hex strings, so a record stays plain, readable JSON.
//!
//! Used as `#[serde(with = "hex")]` on [`KeyBytes`] fields. Decoding refuses odd lengths and
//! anything but hex digits (either case), so a damaged key is an error, never a different key.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::table::KeyBytes;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `key` as a hex string.
pub(super) fn serialize<S: Serializer>(key: &KeyBytes, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = String::with_capacity(key.as_bytes().len() * 2);
    for &byte in key.as_bytes() {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    serializer.serialize_str(&text)
}

/// Reads a key written by [`serialize`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<KeyBytes, D::Error> {
    // An owned string: a record may spell a digit with a JSON escape, which cannot be borrowed.
    let text = String::deserialize(deserializer)?;
    decode(&text)
        .map(|bytes| KeyBytes::from_slice(&bytes))
        .map_err(D::Error::custom)
}

/// The bytes of a hex string, or what is wrong with it.
pub(super) fn decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!(
            "a hex key has an even number of digits, found {}",
            text.len()
        ));
    }
    let digit = |position: usize, byte: u8| match byte {
        b'0'..=b'9' => Ok(byte - b'0'),
        b'a'..=b'f' => Ok(byte - b'a' + 10),
        b'A'..=b'F' => Ok(byte - b'A' + 10),
        _ => Err(format!(
            "a hex key has {:?} at position {position}",
            char::from(byte)
        )),
    };
    text.as_bytes()
        .chunks_exact(2)
        .enumerate()
        .map(|(index, pair)| Ok(digit(2 * index, pair[0])? << 4 | digit(2 * index + 1, pair[1])?))
        .collect()
}
