//! Bad input gets `ErrorKind::InvalidInput` with a message that names the problem, and nothing
//! already stored is lost or changed.

use std::sync::Arc;

use crate::common::*;
use damselfly::arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray, UInt64Array};
use damselfly::arrow_schema::{DataType, Field, Schema};
use damselfly::storage::MemoryStorage;
use damselfly::{DbBuilder, ErrorKind, Expr, Key, WalSyncPolicy};

runtime_test!(
    async fn bad_batches_are_refused_and_change_nothing(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1, 2], 0)).await?;

        let missing = events(&[3], 0).project(&[0, 1, 2, 3]).expect("a projection");
        assert_error(db.ingest(missing).await, ErrorKind::InvalidInput, "active");

        let wrong_type = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(UInt64Array::from(vec![3])) as ArrayRef),
            ("score", Arc::new(Int32Array::from(vec![3])) as ArrayRef),
        ])
        .expect("a valid batch");
        assert_error(db.ingest(wrong_type).await, ErrorKind::InvalidInput, "Int32");

        let mut columns = events(&[3], 0).columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec!["x"])));
        let mut fields: Vec<Field> = events_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("extra", DataType::Utf8, false));
        let extra = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("valid");
        assert_error(db.ingest(extra).await, ErrorKind::InvalidInput, "extra");

        let nullable: Vec<Field> = events_schema()
            .fields()
            .iter()
            .map(|field| field.as_ref().clone().with_nullable(true))
            .collect();
        let mut columns = events(&[3, 4], 0).columns().to_vec();
        columns[0] = Arc::new(UInt64Array::from(vec![Some(3), None]));
        let null_key = RecordBatch::try_new(Arc::new(Schema::new(nullable)), columns).expect("valid");
        assert_error(db.ingest(null_key).await, ErrorKind::InvalidInput, "null");

        assert_error(
            db.ingest_with_tombstones(events(&[3, 4], 0), vec![true]).await,
            ErrorKind::InvalidInput,
            "delete flags",
        );

        assert_eq!(ids_and_scores(&db).await?, [(1, 10), (2, 20)], "nothing changed");
        assert_eq!(db.metrics().commits, 1);
        db.close().await
    }
);

runtime_test!(
    async fn bad_reads_are_refused(runtime) {
        let db = events_builder().in_memory().open(runtime).await?;
        db.ingest(events(&[1], 0)).await?;
        assert_error(
            db.scan().filter(Expr::col("nope").eq(1i64)).collect().await,
            ErrorKind::InvalidInput,
            "nope",
        );
        assert_error(
            db.scan().projection(&["id", "nope"]).collect().await,
            ErrorKind::InvalidInput,
            "nope",
        );
        assert_error(
            db.scan().filter(Expr::col("score").gt("eighty")).collect().await,
            ErrorKind::InvalidInput,
            "score",
        );
        assert_error(db.scan().batch_rows(0).collect().await, ErrorKind::InvalidInput, "batch_rows");
        assert_error(db.get(Key::from("one")).await, ErrorKind::InvalidInput, "id");
        assert_error(db.get(Key::from((1u64, 2u64))).await, ErrorKind::InvalidInput, "key");
        assert_error(db.get(Key::from(-1i64)).await, ErrorKind::InvalidInput, "id");
        db.close().await
    }
);

#[test]
fn bad_table_definitions_are_refused() {
    let schema = events_schema();
    let check = |result: Result<DbBuilder, damselfly::Error>, needle: &str| {
        assert_error(result.map(|_| ()), ErrorKind::InvalidInput, needle);
    };
    check(
        DbBuilder::from_schema_key_names(schema.clone(), &[]),
        "at least one",
    );
    check(
        DbBuilder::from_schema_key_name(schema.clone(), "nope"),
        "nope",
    );
    check(
        DbBuilder::from_schema_key_name(schema.clone(), "weight"),
        "weight",
    );
    check(DbBuilder::from_schema(schema.clone()), "at least one");
    let reserved = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("_damselfly_ts", DataType::UInt64, false),
    ]));
    check(
        DbBuilder::from_schema_key_name(reserved, "id"),
        "_damselfly_ts",
    );
    check(events_builder().on_disk(""), "empty");
}

runtime_test!(
    async fn bad_options_are_refused_at_open(runtime) {
        let opened = |builder: DbBuilder| builder.in_memory().open(runtime.clone());
        assert_error(opened(events_builder().memtable_bytes(0)).await, ErrorKind::InvalidInput, "memtable_bytes");
        assert_error(opened(events_builder().wal_segment_bytes(0)).await, ErrorKind::InvalidInput, "wal_segment_bytes");
        assert_error(
            opened(events_builder().wal_sync_policy(WalSyncPolicy::IntervalBytes(0))).await,
            ErrorKind::InvalidInput,
            "IntervalBytes",
        );
        let folder = temp_dir();
        let file = folder.path().join("a-file");
        #[allow(clippy::disallowed_methods)] // the test puts a file where a folder should be
        std::fs::write(&file, b"not a folder").expect("a file");
        assert_error(
            events_builder().on_disk(&file)?.open(runtime.clone()).await,
            ErrorKind::InvalidInput,
            "not a directory",
        );
        Ok(())
    }
);

runtime_test!(
    async fn reopening_with_another_table_definition_is_refused(runtime) {
        let storage = Arc::new(MemoryStorage::new());
        let db = events_builder().on_storage(storage.clone()).open(runtime.clone()).await?;
        db.ingest(events(&[1], 0)).await?;
        db.close().await?;

        let other_key = DbBuilder::from_schema_key_name(events_schema(), "score")?;
        assert_error(
            other_key.on_storage(storage.clone()).open(runtime.clone()).await,
            ErrorKind::InvalidInput,
            "created with",
        );
        let other_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::UInt64, false)]));
        let other_schema = DbBuilder::from_schema_key_name(other_schema, "id")?;
        assert_error(
            other_schema.on_storage(storage.clone()).open(runtime.clone()).await,
            ErrorKind::InvalidInput,
            "created with",
        );
        // The data is untouched.
        let db = events_builder().on_storage(storage).open(runtime).await?;
        assert_eq!(ids_and_scores(&db).await?, [(1, 10)]);
        db.close().await
    }
);
