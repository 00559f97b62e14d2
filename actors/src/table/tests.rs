//! Schema checks, key encoding order, and the descriptor's round trip and damage detection.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::descriptor;
use super::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int64, false),
    ]))
}

fn batch(ids: Vec<Option<u64>>, scores: Vec<Option<i64>>) -> RecordBatch {
    let rows = ids.len();
    let names: StringArray = (0..rows).map(|row| Some(format!("n{row}"))).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(ids)),
        Arc::new(names),
        Arc::new(Int64Array::from(scores)),
    ];
    let nullable_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int64, true),
    ]));
    RecordBatch::try_new(nullable_schema, columns).expect("valid test batch")
}

#[test]
fn a_key_must_name_existing_distinct_orderable_columns() {
    assert!(matches!(
        TableSchema::new(schema(), &[]),
        Err(SchemaError::EmptyKey)
    ));
    assert!(matches!(
        TableSchema::new(schema(), &["nope"]),
        Err(SchemaError::UnknownKeyColumn { column, .. }) if column == "nope"
    ));
    assert!(matches!(
        TableSchema::new(schema(), &["id", "id"]),
        Err(SchemaError::DuplicateKeyColumn { .. })
    ));
    let floats = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    assert!(matches!(
        TableSchema::new(floats, &["x"]),
        Err(SchemaError::UnsupportedKeyType { .. })
    ));
}

#[test]
fn engine_column_names_are_reserved() {
    let reserved = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("_damselfly_ts", DataType::UInt64, false),
    ]));
    assert!(matches!(
        TableSchema::new(reserved, &["id"]),
        Err(SchemaError::ReservedColumnName { column }) if column == "_damselfly_ts"
    ));
}

#[test]
// Arrow's field metadata is a HashMap; nothing here depends on its iteration order.
#[allow(clippy::disallowed_types)]
fn key_columns_can_come_from_field_metadata() {
    let marked = |value: &str| {
        std::collections::HashMap::from([(KEY_METADATA.to_owned(), value.to_owned())])
    };
    let in_order = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false).with_metadata(marked("true")),
        Field::new("ts", DataType::Int64, false).with_metadata(marked("true")),
        Field::new("value", DataType::Int64, true),
    ]));
    let table = TableSchema::from_key_metadata(in_order).expect("valid metadata");
    assert_eq!(table.key_names(), ["tenant", "ts"]);

    let positioned = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false).with_metadata(marked("1")),
        Field::new("ts", DataType::Int64, false).with_metadata(marked("0")),
    ]));
    let table = TableSchema::from_key_metadata(positioned).expect("valid metadata");
    assert_eq!(table.key_names(), ["ts", "tenant"]);

    let gap = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false).with_metadata(marked("0")),
        Field::new("b", DataType::Int64, false).with_metadata(marked("2")),
    ]));
    assert!(matches!(
        TableSchema::from_key_metadata(gap),
        Err(SchemaError::KeyMetadata { .. })
    ));
    let none = schema();
    assert!(matches!(
        TableSchema::from_key_metadata(none),
        Err(SchemaError::EmptyKey)
    ));
}

#[test]
fn conform_accepts_any_column_order_and_returns_the_table_schema() {
    let table = TableSchema::new(schema(), &["id"]).expect("valid table");
    let original = batch(vec![Some(1), Some(2)], vec![Some(10), Some(20)]);
    let reordered = original.project(&[2, 0, 1]).expect("valid projection");
    let conformed = table.conform(&reordered).expect("same columns");
    assert_eq!(conformed.schema(), *table.schema());
    assert_eq!(conformed.column(0), original.column(0));
}

#[test]
fn conform_names_what_is_wrong() {
    let table = TableSchema::new(schema(), &["id"]).expect("valid table");
    let null_key = batch(vec![Some(1), None], vec![Some(1), Some(2)]);
    assert!(matches!(
        table.conform(&null_key),
        Err(SchemaError::NullKey { column, row: 1 }) if column == "id"
    ));
    let null_score = batch(vec![Some(1), Some(2)], vec![None, Some(2)]);
    assert!(matches!(
        table.conform(&null_score),
        Err(SchemaError::NullInNonNullable { column, row: 0 }) if column == "score"
    ));
    let full = batch(vec![Some(1)], vec![Some(1)]);
    let missing = full.project(&[0, 1]).expect("valid projection");
    assert!(matches!(
        table.conform(&missing),
        Err(SchemaError::MissingColumn { column, .. }) if column == "score"
    ));
    let wrong_type = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(UInt64Array::from(vec![1])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
        ("score", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
    ])
    .expect("valid batch");
    assert!(matches!(
        table.conform(&wrong_type),
        Err(SchemaError::ColumnType { column, .. }) if column == "score"
    ));
    let extra = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(UInt64Array::from(vec![1])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
        ("score", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("flag", Arc::new(BooleanArray::from(vec![true])) as ArrayRef),
    ])
    .expect("valid batch");
    assert!(matches!(
        table.conform(&extra),
        Err(SchemaError::UnexpectedColumn { column }) if column == "flag"
    ));
}

#[test]
fn encoded_keys_sort_like_the_values() {
    let composite = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let table = TableSchema::new(composite, &["tenant", "ts"]).expect("valid table");
    let rows = RecordBatch::try_from_iter(vec![
        (
            "tenant",
            Arc::new(StringArray::from(vec!["b", "a", "a", "ab"])) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(Int64Array::from(vec![1, 5, -3, 0])) as ArrayRef,
        ),
    ])
    .expect("valid batch");
    let rows = table.conform(&rows).expect("valid rows");
    let keys = table.encode_keys(&rows).expect("encodable");
    let mut order: Vec<usize> = (0..rows.num_rows()).collect();
    order.sort_by(|&left, &right| keys.row(left).cmp(&keys.row(right)));
    // ("a", -3) < ("a", 5) < ("ab", 0) < ("b", 1)
    assert_eq!(order, [2, 1, 3, 0]);
}

#[test]
fn the_descriptor_round_trips_and_detects_damage() {
    let table = TableSchema::new(schema(), &["score", "id"]).expect("valid table");
    let bytes = descriptor::encode(&table).expect("encodable");
    let decoded = descriptor::decode("TABLE", &bytes).expect("intact descriptor");
    assert!(decoded.same_table_as(&table));
    assert_eq!(decoded.key_names(), ["score", "id"]);

    // Every flipped bit is corruption — in the version field too, where it must not pass
    // for a newer format (the simulator found that one).
    for offset in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.to_vec();
            damaged[offset] ^= 1 << bit;
            let result = descriptor::decode("TABLE", &damaged);
            assert!(
                matches!(result, Err(descriptor::DescriptorError::Corrupt { .. })),
                "byte {offset} bit {bit}: {result:?}"
            );
        }
    }
    // A later format proves its header intact with a checksum; then it is a newer version.
    let mut newer = bytes.to_vec();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let header_crc = crc32c::crc32c(&newer[..20]);
    newer[20..24].copy_from_slice(&header_crc.to_le_bytes());
    assert!(matches!(
        descriptor::decode("TABLE", &newer),
        Err(descriptor::DescriptorError::UnsupportedVersion { found: 2, .. })
    ));
    let truncated = descriptor::decode("TABLE", &bytes[..bytes.len() - 3]);
    assert!(matches!(
        truncated,
        Err(descriptor::DescriptorError::Corrupt { .. })
    ));
}

#[test]
fn different_tables_are_told_apart() {
    let table = TableSchema::new(schema(), &["id"]).expect("valid table");
    let other_key = TableSchema::new(schema(), &["score"]).expect("valid table");
    assert!(!table.same_table_as(&other_key));
    let other_type = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("name", DataType::LargeUtf8, true),
        Field::new("score", DataType::Int64, false),
    ]));
    let other_type = TableSchema::new(other_type, &["id"]).expect("valid table");
    assert!(!table.same_table_as(&other_type));
}
