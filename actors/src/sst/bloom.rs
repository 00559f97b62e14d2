//! Probing Parquet bloom filters with Arrow key values.
//!
//! Parquet hashes a value's plain encoding in the column's physical type, so a probe must
//! encode the Arrow value the way `ArrowWriter` stores it: narrow integers widened to 32 bits,
//! unsigned integers reinterpreted as signed of the same width, `Date64` as its 64-bit value,
//! strings and binaries as their bytes, booleans as one byte. A type we do not know how to
//! encode gives no probe, and the lookup then skips the bloom filter rather than risk a false
//! "absent".

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;

/// The bytes Parquet's bloom filter hashes for row 0 of `array`, or `None` if unknown.
pub(crate) fn probe_bytes(array: &dyn Array) -> Option<Vec<u8>> {
    if array.is_empty() || array.is_null(0) {
        return None;
    }
    fn first<T: ArrowPrimitiveType>(array: &dyn Array) -> T::Native {
        let array: &PrimitiveArray<T> = array.as_primitive();
        array.value(0)
    }
    let bytes = match array.data_type() {
        DataType::Boolean => vec![u8::from(array.as_boolean().value(0))],
        DataType::Int8 => i32::from(first::<Int8Type>(array)).to_le_bytes().to_vec(),
        DataType::Int16 => i32::from(first::<Int16Type>(array)).to_le_bytes().to_vec(),
        DataType::UInt8 => i32::from(first::<UInt8Type>(array)).to_le_bytes().to_vec(),
        DataType::UInt16 => i32::from(first::<UInt16Type>(array)).to_le_bytes().to_vec(),
        DataType::Int32 => first::<Int32Type>(array).to_le_bytes().to_vec(),
        DataType::UInt32 => first::<UInt32Type>(array).to_le_bytes().to_vec(),
        DataType::Date32 => first::<Date32Type>(array).to_le_bytes().to_vec(),
        DataType::Int64 => first::<Int64Type>(array).to_le_bytes().to_vec(),
        DataType::UInt64 => first::<UInt64Type>(array).to_le_bytes().to_vec(),
        DataType::Date64 => first::<Date64Type>(array).to_le_bytes().to_vec(),
        DataType::Time32(_) => array
            .to_data()
            .buffer::<i32>(0)
            .first()?
            .to_le_bytes()
            .to_vec(),
        DataType::Time64(_) | DataType::Timestamp(_, _) => array
            .to_data()
            .buffer::<i64>(0)
            .first()?
            .to_le_bytes()
            .to_vec(),
        DataType::Utf8 => array.as_string::<i32>().value(0).as_bytes().to_vec(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(0).as_bytes().to_vec(),
        DataType::Binary => array.as_binary::<i32>().value(0).to_vec(),
        DataType::LargeBinary => array.as_binary::<i64>().value(0).to_vec(),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(0).to_vec(),
        _ => return None,
    };
    Some(bytes)
}
