//! The suite's table: a `u64` key `id`, an `i64` `value`, an `f64` `ratio`, a 32-byte string
//! `label` and a `bool` `flag`, every value derived from the key, so that each engine stores the
//! same rows and each read can check what it got. damselfly speaks arrow 60 and tonbo arrow 57:
//! the same generator is compiled against both. slatedb stores bytes: [`key`] and [`value`].

/// `value` is a hash of the key below this bound, so a filter on it is not a key range.
pub const VALUE_RANGE: i64 = 1_000_000;
/// `value < FILTER_BELOW` selects about 1% of the rows.
pub const FILTER_BELOW: i64 = VALUE_RANGE / 100;

/// A well-mixed hash of the key (splitmix64's finaliser).
fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn value_of(id: u64) -> i64 {
    (mix(id) % VALUE_RANGE as u64) as i64
}

pub fn ratio_of(id: u64) -> f64 {
    id as f64 * 0.5
}

pub fn label_of(id: u64) -> String {
    format!("label-{id:026}")
}

pub fn flag_of(id: u64) -> bool {
    id.is_multiple_of(2)
}

/// How many of the keys `0..rows` pass the value filter.
pub fn filtered_rows(rows: u64) -> u64 {
    (0..rows).filter(|&id| value_of(id) < FILTER_BELOW).count() as u64
}

/// slatedb's key of a row: the id, big-endian, so byte order is key order.
pub fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The bytes of a row's non-key columns, fixed width: value, ratio, label, flag.
pub const VALUE_BYTES: usize = 8 + 8 + 32 + 1;

pub fn value(id: u64) -> [u8; VALUE_BYTES] {
    let mut bytes = [0u8; VALUE_BYTES];
    bytes[..8].copy_from_slice(&value_of(id).to_le_bytes());
    bytes[8..16].copy_from_slice(&ratio_of(id).to_le_bytes());
    bytes[16..48].copy_from_slice(label_of(id).as_bytes());
    bytes[48] = u8::from(flag_of(id));
    bytes
}

/// The columns of an encoded row, as a reader of slatedb would decode them.
#[derive(Debug, PartialEq)]
pub struct Decoded<'a> {
    pub id: u64,
    pub value: i64,
    pub ratio: f64,
    pub label: &'a str,
    pub flag: bool,
}

pub fn decode<'a>(key: &[u8], value: &'a [u8]) -> Decoded<'a> {
    let number = |bytes: &[u8]| -> [u8; 8] { bytes.try_into().expect("8 bytes") };
    Decoded {
        id: u64::from_be_bytes(number(key)),
        value: i64::from_le_bytes(number(&value[..8])),
        ratio: f64::from_le_bytes(number(&value[8..16])),
        label: std::str::from_utf8(&value[16..48]).expect("a UTF-8 label"),
        flag: value[48] != 0,
    }
}

/// Keys for random lookups over `0..rows`: the same sequence for every engine.
pub fn random_keys(rows: u64, count: usize) -> Vec<u64> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % rows
        })
        .collect()
}

/// The same table in two arrow versions.
macro_rules! arrow_table {
    ($array:ident, $schema:ident) => {
        use std::sync::Arc;

        use $array::{
            BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
        };
        use $schema::{DataType, Field, Schema, SchemaRef};

        use super::{flag_of, label_of, ratio_of, value_of};

        pub fn schema() -> SchemaRef {
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::UInt64, false),
                Field::new("value", DataType::Int64, false),
                Field::new("ratio", DataType::Float64, false),
                Field::new("label", DataType::Utf8, false),
                Field::new("flag", DataType::Boolean, false),
            ]))
        }

        /// Rows with the keys `first..first + count`.
        pub fn rows(first: u64, count: u64) -> RecordBatch {
            let ids = first..first + count;
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(UInt64Array::from_iter_values(ids.clone())),
                    Arc::new(Int64Array::from_iter_values(ids.clone().map(value_of))),
                    Arc::new(Float64Array::from_iter_values(ids.clone().map(ratio_of))),
                    Arc::new(StringArray::from_iter_values(ids.clone().map(label_of))),
                    Arc::new(ids.map(|id| Some(flag_of(id))).collect::<BooleanArray>()),
                ],
            )
            .expect("the columns match the schema")
        }
    };
}

/// The table in arrow 60 (damselfly, arrow-rs).
pub mod arrow60 {
    use damselfly::{arrow_array, arrow_schema};
    arrow_table!(arrow_array, arrow_schema);
}

/// The table in arrow 57 (tonbo).
pub mod arrow57 {
    use arrow_array_57 as arrow_array;
    use arrow_schema_57 as arrow_schema;
    arrow_table!(arrow_array, arrow_schema);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_row_decodes_to_its_columns() {
        let id = 123_456;
        let value = value(id);
        let row = decode(&key(id), &value);
        assert_eq!(
            row,
            Decoded {
                id,
                value: value_of(id),
                ratio: ratio_of(id),
                label: &label_of(id),
                flag: flag_of(id),
            }
        );
    }

    #[test]
    fn the_value_filter_selects_about_one_percent() {
        let selected = filtered_rows(100_000);
        assert!(
            (800..1_200).contains(&selected),
            "{selected} of 100,000 rows"
        );
    }

    #[test]
    fn both_arrow_versions_hold_the_same_rows() {
        let (new, old) = (arrow60::rows(10, 100), arrow57::rows(10, 100));
        assert_eq!(new.num_rows(), old.num_rows());
        assert_eq!(
            format!("{:?}", new.columns()),
            format!("{:?}", old.columns())
        );
    }
}
