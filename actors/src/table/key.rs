//! Keys as order-preserving byte strings.
//!
//! Key columns are encoded with arrow's row format: comparing two encodings byte by byte gives
//! the natural order of the key's Arrow types, lexicographic over the key's columns. The engine
//! compares, sorts and indexes keys only in this form.

use std::fmt;

use arrow_schema::DataType;

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
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyBytes(Box<[u8]>);

impl KeyBytes {
    /// A key from its encoded bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Heap bytes held by this key (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "KeyBytes(")?;
        for byte in self.0.iter() {
            write!(formatter, "{byte:02x}")?;
        }
        write!(formatter, ")")
    }
}

impl std::borrow::Borrow<[u8]> for KeyBytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}
