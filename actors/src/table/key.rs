//! Keys as order-preserving byte strings.
//!
//! Key columns are encoded with arrow's row format: comparing two encodings byte by byte gives
//! the natural order of the key's Arrow types, lexicographic over the key's columns. The engine
//! compares, sorts and indexes keys only in this form.
//!
//! [`KeyBytes`] keeps keys of up to [`INLINE_KEY_BYTES`] bytes (every integer key, short strings)
//! inline, without an allocation, and compares them as one 128-bit integer: the 15 key bytes,
//! zero padded, followed by the length. That order is exactly the lexicographic order of the
//! bytes — a zero pad only ties with a real zero byte, and then the shorter key, which is a
//! prefix of the longer, sorts first, as the length byte makes it. Longer keys keep their bytes
//! on the heap and fall back to comparing them only when their first 15 bytes tie.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use arrow_array::{Array, BinaryArray};
use arrow_schema::DataType;

/// Keys up to this many bytes are stored inline.
pub const INLINE_KEY_BYTES: usize = 15;

/// Whether columns of `data_type` can be key columns: types with a total, natural order.
/// Floating point is excluded (NaN and -0.0 make equality surprising), as are nested types.
pub fn is_supported_key_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::FixedSizeBinary(_)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
    )
}

/// An encoded key: bytes whose order is the key's order.
#[derive(Clone)]
pub struct KeyBytes(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes 0..15: the key, zero padded; byte 15: its length.
    Inline([u8; INLINE_KEY_BYTES + 1]),
    /// Keys longer than [`INLINE_KEY_BYTES`].
    Heap(Box<[u8]>),
}

impl KeyBytes {
    /// A key from its encoded bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_KEY_BYTES {
            let mut inline = [0u8; INLINE_KEY_BYTES + 1];
            inline[..bytes.len()].copy_from_slice(bytes);
            inline[INLINE_KEY_BYTES] = bytes.len() as u8;
            Self(Repr::Inline(inline))
        } else {
            Self(Repr::Heap(bytes.into()))
        }
    }

    /// The keys of a binary array of encoded keys (as `arrow_row::Rows::try_into_binary`
    /// makes), one per element. Faster than [`KeyBytes::from_slice`] per element: an inline key
    /// is cut from a fixed 16-byte read where the buffer allows one.
    pub fn from_binary(array: &BinaryArray) -> Vec<KeyBytes> {
        let values = array.values().as_slice();
        let mut keys = Vec::with_capacity(array.len());
        for pair in array.value_offsets().windows(2) {
            let (start, end) = (pair[0] as usize, pair[1] as usize);
            let length = end - start;
            let window = values.get(start..start + INLINE_KEY_BYTES + 1);
            match window.and_then(|window| <[u8; INLINE_KEY_BYTES + 1]>::try_from(window).ok()) {
                Some(window) if length <= INLINE_KEY_BYTES => {
                    // Keep the key's bytes, zero the rest, and put the length in the last byte.
                    let kept = match length {
                        0 => 0,
                        _ => u128::from_be_bytes(window) & (u128::MAX << (128 - 8 * length)),
                    };
                    keys.push(KeyBytes(Repr::Inline(
                        (kept | length as u128).to_be_bytes(),
                    )));
                }
                _ => keys.push(KeyBytes::from_slice(&values[start..end])),
            }
        }
        keys
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(inline) => &inline[..usize::from(inline[INLINE_KEY_BYTES])],
            Repr::Heap(bytes) => bytes,
        }
    }

    /// Heap bytes held by this key (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline(_) => 0,
            Repr::Heap(bytes) => bytes.len(),
        }
    }

    /// The first 15 bytes, zero padded, then the length (16 for every heap key): comparing heads
    /// decides every comparison except between two heap keys with the same first 15 bytes.
    fn head(&self) -> u128 {
        match &self.0 {
            Repr::Inline(inline) => u128::from_be_bytes(*inline),
            Repr::Heap(bytes) => {
                let mut head = [0u8; INLINE_KEY_BYTES + 1];
                head[..INLINE_KEY_BYTES].copy_from_slice(&bytes[..INLINE_KEY_BYTES]);
                head[INLINE_KEY_BYTES] = INLINE_KEY_BYTES as u8 + 1;
                u128::from_be_bytes(head)
            }
        }
    }
}

impl Ord for KeyBytes {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // The common case, two inline keys, is one 128-bit comparison.
        if let (Repr::Inline(mine), Repr::Inline(theirs)) = (&self.0, &other.0) {
            return u128::from_be_bytes(*mine).cmp(&u128::from_be_bytes(*theirs));
        }
        self.cmp_with_heap(other)
    }
}

impl KeyBytes {
    #[cold]
    #[inline(never)]
    fn cmp_with_heap(&self, other: &Self) -> Ordering {
        self.head()
            .cmp(&other.head())
            .then_with(|| match (&self.0, &other.0) {
                (Repr::Heap(mine), Repr::Heap(theirs)) => mine.cmp(theirs),
                // Equal heads with an inline key on either side mean equal keys.
                _ => Ordering::Equal,
            })
    }
}

impl PartialOrd for KeyBytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for KeyBytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Inline keys are zero padded and end with their length: equal arrays, equal keys.
            (Repr::Inline(mine), Repr::Inline(theirs)) => mine == theirs,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for KeyBytes {}

impl Hash for KeyBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Lookups by `&[u8]` agree with the `Ord` above: both are the bytes' lexicographic order.
impl std::borrow::Borrow<[u8]> for KeyBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "KeyBytes(")?;
        for byte in self.as_bytes() {
            write!(formatter, "{byte:02x}")?;
        }
        write!(formatter, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator of byte strings biased towards shared prefixes and zeros,
    /// where an order bug would hide.
    fn keys(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 24) as usize;
                (0..len)
                    .map(|_| [0u8, 1, 0xff, b'a'][(next() % 4) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_order_is_the_byte_order() {
        for seed in 1..20 {
            let raw = keys(seed, 300);
            for left in &raw {
                for right in raw.iter().take(60) {
                    let (a, b) = (KeyBytes::from_slice(left), KeyBytes::from_slice(right));
                    assert_eq!(
                        a.cmp(&b),
                        left.cmp(right),
                        "seed {seed}: {left:?} vs {right:?}"
                    );
                    assert_eq!(a == b, left == right);
                    assert_eq!(a.as_bytes(), &left[..]);
                }
            }
        }
    }

    #[test]
    fn keys_from_a_binary_array_are_the_same_keys() {
        for seed in 1..10 {
            let raw = keys(seed, 200);
            let array = BinaryArray::from_iter_values(raw.iter());
            let sliced = array.slice(3, 150);
            for (array, raw) in [(&array, &raw[..]), (&sliced, &raw[3..153])] {
                let from_binary = KeyBytes::from_binary(array);
                let one_by_one: Vec<KeyBytes> =
                    raw.iter().map(|key| KeyBytes::from_slice(key)).collect();
                assert_eq!(from_binary.len(), one_by_one.len());
                for (a, b) in from_binary.iter().zip(&one_by_one) {
                    assert_eq!(a.as_bytes(), b.as_bytes(), "seed {seed}");
                    assert_eq!(a.cmp(b), Ordering::Equal, "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn inline_keys_allocate_nothing() {
        assert_eq!(KeyBytes::from_slice(&[1; 15]).heap_bytes(), 0);
        assert_eq!(KeyBytes::from_slice(&[1; 16]).heap_bytes(), 16);
    }
}
