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
use arrow_buffer::{ArrowNativeType, ScalarBuffer};
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

    /// The keys of a one-column key of an integer type (or a date, time or timestamp, which
    /// are integers underneath) without nulls, one per element, encoded exactly as arrow's row
    /// format encodes them — a byte 1 ("valid"), then the value's big-endian bytes with the sign
    /// bit flipped for signed types — but without building rows first. `None` for any other
    /// array, which the row format must encode.
    pub fn from_integers(array: &dyn Array) -> Option<Vec<KeyBytes>> {
        if array.null_count() > 0 {
            return None;
        }
        // Flipping a signed value's sign bit makes unsigned order the values' order.
        Some(match array.data_type() {
            DataType::UInt8 => inline_integers::<u8>(array, u64::from),
            DataType::UInt16 => inline_integers::<u16>(array, u64::from),
            DataType::UInt32 => inline_integers::<u32>(array, u64::from),
            DataType::UInt64 => inline_integers::<u64>(array, |value| value),
            DataType::Int8 => inline_integers::<i8>(array, |value| u64::from(value as u8 ^ 1 << 7)),
            DataType::Int16 => {
                inline_integers::<i16>(array, |value| u64::from(value as u16 ^ 1 << 15))
            }
            DataType::Int32 | DataType::Date32 | DataType::Time32(_) => {
                inline_integers::<i32>(array, |value| u64::from(value as u32 ^ 1 << 31))
            }
            DataType::Int64
            | DataType::Date64
            | DataType::Time64(_)
            | DataType::Timestamp(_, _) => {
                inline_integers::<i64>(array, |value| value as u64 ^ 1 << 63)
            }
            _ => return None,
        })
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

/// Inline keys of the fixed-width integers of `array` (of native type `T`, without nulls):
/// `order` maps each value to an unsigned number of `T`'s width with the values' order, whose
/// big-endian bytes follow the "valid" byte 1.
fn inline_integers<T: ArrowNativeType>(
    array: &dyn Array,
    order: impl Fn(T) -> u64,
) -> Vec<KeyBytes> {
    let data = array.to_data();
    let values = ScalarBuffer::<T>::new(data.buffers()[0].clone(), data.offset(), data.len());
    let width = size_of::<T>();
    // Byte 0: the "valid" byte; bytes 1..=width: the value; byte 15: the length.
    let fixed = 1u128 << 120 | (1 + width) as u128;
    let shift = 8 * (INLINE_KEY_BYTES - width) as u32;
    values
        .iter()
        .map(|&value| {
            let bytes = (u128::from(order(value)) << shift | fixed).to_be_bytes();
            KeyBytes(Repr::Inline(bytes))
        })
        .collect()
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
    fn integer_keys_are_encoded_as_the_row_format_encodes_them() {
        use arrow_array::{
            ArrayRef, Date32Array, Date64Array, Int8Array, Int16Array, Int32Array, Int64Array,
            StringArray, Time32MillisecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
            UInt8Array, UInt16Array, UInt32Array, UInt64Array,
        };
        use arrow_row::{RowConverter, SortField};
        use std::sync::Arc;

        let mut random = fastrand::Rng::with_seed(7);
        let mut values: Vec<i64> = vec![0, 1, -1, i64::MIN, i64::MAX, 127, -128, 255, 256];
        values.extend((0..200).map(|_| random.i64(..) >> random.u32(0..64)));
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt8Array::from_iter_values(
                values.iter().map(|&v| v as u8),
            )),
            Arc::new(UInt16Array::from_iter_values(
                values.iter().map(|&v| v as u16),
            )),
            Arc::new(UInt32Array::from_iter_values(
                values.iter().map(|&v| v as u32),
            )),
            Arc::new(UInt64Array::from_iter_values(
                values.iter().map(|&v| v as u64),
            )),
            Arc::new(Int8Array::from_iter_values(values.iter().map(|&v| v as i8))),
            Arc::new(Int16Array::from_iter_values(
                values.iter().map(|&v| v as i16),
            )),
            Arc::new(Int32Array::from_iter_values(
                values.iter().map(|&v| v as i32),
            )),
            Arc::new(Int64Array::from_iter_values(values.iter().copied())),
            Arc::new(Date32Array::from_iter_values(
                values.iter().map(|&v| v as i32),
            )),
            Arc::new(Date64Array::from_iter_values(values.iter().copied())),
            Arc::new(Time32MillisecondArray::from_iter_values(
                values.iter().map(|&v| v as i32),
            )),
            Arc::new(Time64NanosecondArray::from_iter_values(
                values.iter().copied(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(values.iter().copied())
                    .with_timezone("+01:00"),
            ),
        ];
        for array in arrays {
            let converter = RowConverter::new(vec![SortField::new(array.data_type().clone())])
                .expect("converter");
            // Whole, and sliced (an offset into the values).
            for array in [Arc::clone(&array), array.slice(5, 100)] {
                let rows = converter
                    .convert_columns(&[Arc::clone(&array)])
                    .expect("rows");
                let expected = KeyBytes::from_binary(&rows.try_into_binary().expect("binary"));
                let direct = KeyBytes::from_integers(array.as_ref()).expect("an integer type");
                assert_eq!(direct.len(), expected.len(), "{}", array.data_type());
                for (direct, expected) in direct.iter().zip(&expected) {
                    assert_eq!(
                        direct.as_bytes(),
                        expected.as_bytes(),
                        "{}",
                        array.data_type()
                    );
                    assert!(direct == expected, "{}", array.data_type());
                }
            }
        }
        let nulls = Int32Array::from(vec![Some(1), None]);
        assert!(
            KeyBytes::from_integers(&nulls).is_none(),
            "nulls need the row format"
        );
        let strings = StringArray::from(vec!["a"]);
        assert!(KeyBytes::from_integers(&strings).is_none());
    }

    #[test]
    fn inline_keys_allocate_nothing() {
        assert_eq!(KeyBytes::from_slice(&[1; 15]).heap_bytes(), 0);
        assert_eq!(KeyBytes::from_slice(&[1; 16]).heap_bytes(), 16);
    }
}
