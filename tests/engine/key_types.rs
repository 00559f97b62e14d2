//! Keys of every supported Arrow type order like their values and find their rows; composite
//! keys order lexicographically; value columns of any type, nested ones included, round-trip
//! through the write-ahead log.

use std::sync::Arc;

use crate::common::*;
use damselfly::arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, StructBuilder};
use damselfly::arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, FixedSizeBinaryArray,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use damselfly::arrow_schema::{DataType, Field, Schema, TimeUnit};
use damselfly::storage::MemoryStorage;
use damselfly::{DbBuilder, Key, Value};

/// A key column of one type: values in insertion order, the same values as literals, and the
/// order (indices into the values) a scan must return them in.
struct KeyCase {
    name: &'static str,
    column: ArrayRef,
    literals: Vec<Value>,
    sorted: Vec<usize>,
}

fn cases() -> Vec<KeyCase> {
    let signed = [5i64, -3, 0, 127, -128];
    let signed_order = vec![4, 1, 2, 0, 3];
    let unsigned = [5u64, 3, 0, 200, 255];
    let unsigned_order = vec![2, 1, 0, 3, 4];
    let strings = ["b", "", "ab", "a", "ba"];
    let string_order = vec![1, 3, 2, 0, 4];
    let ints = |values: &[i64]| values.iter().map(|&v| Value::from(v)).collect::<Vec<_>>();
    let uints = |values: &[u64]| values.iter().map(|&v| Value::from(v)).collect::<Vec<_>>();
    let texts = |values: &[&str]| values.iter().map(|&v| Value::from(v)).collect::<Vec<_>>();
    let bytes = |values: &[&str]| {
        values
            .iter()
            .map(|v| Value::from(v.as_bytes().to_vec()))
            .collect::<Vec<_>>()
    };
    vec![
        KeyCase {
            name: "int8",
            column: Arc::new(Int8Array::from(signed.map(|v| v as i8).to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "int16",
            column: Arc::new(Int16Array::from(signed.map(|v| v as i16).to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "int32",
            column: Arc::new(Int32Array::from(signed.map(|v| v as i32).to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "int64",
            column: Arc::new(Int64Array::from(signed.to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "uint8",
            column: Arc::new(UInt8Array::from(unsigned.map(|v| v as u8).to_vec())),
            literals: uints(&unsigned),
            sorted: unsigned_order.clone(),
        },
        KeyCase {
            name: "uint16",
            column: Arc::new(UInt16Array::from(unsigned.map(|v| v as u16).to_vec())),
            literals: uints(&unsigned),
            sorted: unsigned_order.clone(),
        },
        KeyCase {
            name: "uint32",
            column: Arc::new(UInt32Array::from(unsigned.map(|v| v as u32).to_vec())),
            literals: uints(&unsigned),
            sorted: unsigned_order.clone(),
        },
        KeyCase {
            name: "uint64",
            column: Arc::new(UInt64Array::from(unsigned.to_vec())),
            literals: uints(&unsigned),
            sorted: unsigned_order.clone(),
        },
        KeyCase {
            name: "utf8",
            column: Arc::new(StringArray::from(strings.to_vec())),
            literals: texts(&strings),
            sorted: string_order.clone(),
        },
        KeyCase {
            name: "large_utf8",
            column: Arc::new(LargeStringArray::from(strings.to_vec())),
            literals: texts(&strings),
            sorted: string_order.clone(),
        },
        KeyCase {
            name: "binary",
            column: Arc::new(BinaryArray::from(strings.map(str::as_bytes).to_vec())),
            literals: bytes(&strings),
            sorted: string_order.clone(),
        },
        KeyCase {
            name: "fixed_binary",
            column: Arc::new(
                FixedSizeBinaryArray::try_from_iter(["bb", "aa", "ab", "ba", "a0"].into_iter())
                    .expect("same widths"),
            ),
            literals: bytes(&["bb", "aa", "ab", "ba", "a0"]),
            sorted: vec![4, 1, 2, 3, 0],
        },
        KeyCase {
            name: "boolean",
            column: Arc::new(BooleanArray::from(vec![true, false])),
            literals: vec![Value::from(true), Value::from(false)],
            sorted: vec![1, 0],
        },
        KeyCase {
            name: "date32",
            column: Arc::new(Date32Array::from(signed.map(|v| v as i32).to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "date64",
            column: Arc::new(Date64Array::from(signed.to_vec())),
            literals: ints(&signed),
            sorted: signed_order.clone(),
        },
        KeyCase {
            name: "timestamp",
            column: Arc::new(TimestampMicrosecondArray::from(signed.to_vec()).with_timezone("UTC")),
            literals: ints(&signed),
            sorted: signed_order,
        },
    ]
}

runtime_test!(
    async fn every_key_type_orders_and_finds_its_rows(runtime) {
        for case in cases() {
            let rows = case.column.len();
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", case.column.data_type().clone(), false),
                Field::new("row", DataType::UInt64, false),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![case.column.clone(), Arc::new(UInt64Array::from_iter_values(0..rows as u64))],
            )
            .expect("a valid batch");
            let db = DbBuilder::from_schema_key_name(schema, "k")?.in_memory().open(runtime.clone()).await?;
            db.ingest(batch).await?;
            let order = u64_column(&db.scan().collect().await?, "row");
            let expected: Vec<u64> = case.sorted.iter().map(|&row| row as u64).collect();
            assert_eq!(order, expected, "scan order of {} keys", case.name);
            for (row, literal) in case.literals.iter().enumerate() {
                let found = db.get(Key::new(vec![literal.clone()])).await?;
                let found = found.unwrap_or_else(|| panic!("{} key {literal} not found", case.name));
                assert_eq!(u64_column(&[found], "row"), [row as u64], "{} key {literal}", case.name);
            }
            db.close().await?;
        }
        Ok(())
    }
);

runtime_test!(
    async fn composite_keys_order_lexicographically(runtime) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("value", DataType::Int64, false),
        ]));
        let tenants = StringArray::from(vec!["b", "a", "a", "ab", "a"]);
        let times = damselfly::arrow_array::TimestampSecondArray::from(vec![1, 1_700_000_000, -5, 0, 1_700_000_000]);
        let values = Int64Array::from(vec![0, 1, 2, 3, 4]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(tenants), Arc::new(times), Arc::new(values)])
            .expect("a valid batch");
        let db = DbBuilder::from_schema_key_names(schema, &["tenant", "at"])?.in_memory().open(runtime).await?;
        db.ingest(batch).await?;
        // (a, -5) < (a, 1700000000) [the later duplicate, value 4, wins] < (ab, 0) < (b, 1)
        assert_eq!(i64_column(&db.scan().collect().await?, "value"), [2, 4, 3, 0]);
        let row = db.get(Key::from(("a", 1_700_000_000_i64))).await?.expect("present");
        assert_eq!(i64_column(&[row], "value"), [4]);
        assert!(db.get(("a", 1i64)).await?.is_none());
        db.close().await
    }
);

runtime_test!(
    async fn nested_value_columns_survive_the_log(runtime) {
        let mut tags = ListBuilder::new(StringBuilder::new());
        let mut point = StructBuilder::from_fields(vec![Field::new("x", DataType::Int64, true)], 3);
        for id in 0..3 {
            for tag in 0..id {
                tags.values().append_value(format!("tag{tag}"));
            }
            tags.append(id != 1);
            point.field_builder::<Int64Builder>(0).expect("x is Int64").append_value(id * 100);
            point.append(true);
        }
        let tags = tags.finish();
        let point = point.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("tags", tags.data_type().clone(), true),
            Field::new("point", point.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(UInt64Array::from(vec![0, 1, 2])), Arc::new(tags), Arc::new(point)],
        )
        .expect("a valid batch");
        let storage = Arc::new(MemoryStorage::new());
        let builder = || DbBuilder::from_schema_key_name(schema.clone(), "id");
        let db = builder()?.on_storage(storage.clone()).open(runtime.clone()).await?;
        db.ingest(batch.clone()).await?;
        db.close().await?;
        let db = builder()?.on_storage(storage).open(runtime).await?;
        let read = db.scan().collect().await?;
        assert_eq!(read, [batch]);
        db.close().await
    }
);

runtime_test!(
    async fn key_columns_can_be_marked_in_field_metadata(runtime) {
        #[allow(clippy::disallowed_types)] // arrow's field metadata is a HashMap
        let key = |position: &str| {
            std::collections::HashMap::from([("damselfly.key".to_owned(), position.to_owned())])
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("value", DataType::Int64, false),
            Field::new("at", DataType::Int64, false).with_metadata(key("1")),
            Field::new("tenant", DataType::Utf8, false).with_metadata(key("0")),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![20, 10, 10])),
                Arc::new(StringArray::from(vec!["b", "b", "a"])),
            ],
        )
        .expect("a valid batch");
        let db = DbBuilder::from_schema(schema)?.in_memory().open(runtime).await?;
        db.ingest(batch).await?;
        // Key order is (tenant, at): (a, 10) < (b, 10) < (b, 20).
        assert_eq!(i64_column(&db.scan().collect().await?, "value"), [3, 2, 1]);
        let row = db.get(("b", 10i64)).await?.expect("present");
        assert_eq!(i64_column(&[row], "value"), [2]);
        db.close().await
    }
);
