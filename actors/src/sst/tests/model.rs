//! The model the SST tests check against: every version in a `BTreeMap` by encoded key, and
//! the rows themselves in one Arrow batch.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray, UInt32Array};
use arrow_schema::{DataType, Field, Fields, Schema};
use arrow_select::take::take_record_batch;

use crate::sst::{KeyRange, sst_batch};
use crate::table::{KeyBytes, TableSchema};

/// One version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub timestamp: u64,
    pub deleted: bool,
    /// The version's row in [`Model::rows`].
    pub row: usize,
}

/// A table's versions.
#[derive(Debug)]
pub(crate) struct Model {
    pub table: Arc<TableSchema>,
    /// Every version's row, in generation order, in the table's schema.
    pub rows: RecordBatch,
    /// Each key's versions, newest first.
    pub versions: BTreeMap<KeyBytes, Vec<Version>>,
    /// Keys the model does not hold, with one-row key columns for lookups.
    pub absent: Vec<(KeyBytes, Vec<ArrayRef>)>,
}

/// A table with a two-column key (a string and an integer, not the first columns), nested and
/// nullable value columns.
pub(crate) fn mixed_table() -> Arc<TableSchema> {
    let point = Fields::from(vec![
        Field::new("x", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let schema = Schema::new(vec![
        Field::new("count", DataType::Int64, true),
        Field::new("point", DataType::Struct(point), true),
        Field::new("tenant", DataType::Utf8, false),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
        Field::new("id", DataType::Int32, false),
        Field::new("score", DataType::Float64, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]);
    Arc::new(TableSchema::new(Arc::new(schema), &["tenant", "id"]).expect("valid table"))
}

const TENANTS: [&str; 4] = ["a", "acme", "", "a-tenant-name-longer-than-fifteen-bytes"];

/// Random keys of [`mixed_table`], each with 1..=`max_versions` versions at distinct
/// timestamps in `1..=max_ts`, a fifth of them deletes.
pub(crate) fn random_model(seed: u64, keys: usize, max_versions: usize, max_ts: u64) -> Model {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut key_values: BTreeSet<(usize, i32)> = BTreeSet::new();
    while key_values.len() < keys + 20 {
        key_values.insert((rng.usize(..TENANTS.len()), rng.i32(-1000..1000)));
    }
    let key_values: Vec<(usize, i32)> = key_values.into_iter().collect();
    let (present, absent) = key_values.split_at(keys);
    let mut generated: Vec<(usize, i32, u64, bool)> = Vec::new();
    for &(tenant, id) in present {
        let count = rng.usize(1..=max_versions);
        let mut timestamps: BTreeSet<u64> = BTreeSet::new();
        while timestamps.len() < count {
            timestamps.insert(rng.u64(1..=max_ts));
        }
        for timestamp in timestamps {
            generated.push((tenant, id, timestamp, rng.u8(..5) == 0));
        }
    }
    // Shuffle, so that generation order is not SST order.
    rng.shuffle(&mut generated);
    let table = mixed_table();
    let rows = rows(&table, &generated, &mut rng);
    let encoded = table.encode_keys(&rows).expect("keys encode");
    let mut versions: BTreeMap<KeyBytes, Vec<Version>> = BTreeMap::new();
    for (row, &(_, _, timestamp, deleted)) in generated.iter().enumerate() {
        let key = KeyBytes::from_slice(encoded.row(row).data());
        let version = Version {
            timestamp,
            deleted,
            row,
        };
        versions.entry(key).or_default().push(version);
    }
    for list in versions.values_mut() {
        list.sort_by_key(|version| std::cmp::Reverse(version.timestamp));
    }
    let absent_rows: Vec<(usize, i32, u64, bool)> = absent
        .iter()
        .map(|&(tenant, id)| (tenant, id, 1, false))
        .collect();
    let absent_batch = self::rows(&table, &absent_rows, &mut rng);
    let absent_keys = table.encode_keys(&absent_batch).expect("keys encode");
    let absent = (0..absent_rows.len())
        .map(|row| {
            let columns = table
                .key_indices()
                .iter()
                .map(|&index| absent_batch.column(index).slice(row, 1))
                .collect();
            (KeyBytes::from_slice(absent_keys.row(row).data()), columns)
        })
        .collect();
    Model {
        table,
        rows,
        versions,
        absent,
    }
}

/// Rows of [`mixed_table`] for `(tenant, id, _, _)` with random values.
fn rows(
    table: &TableSchema,
    generated: &[(usize, i32, u64, bool)],
    rng: &mut fastrand::Rng,
) -> RecordBatch {
    let mut count = Int64Builder::new();
    let mut x = Int32Builder::new();
    let mut name = StringBuilder::new();
    let mut point_valid = Vec::new();
    let mut tenant = StringBuilder::new();
    let mut tags = ListBuilder::new(Int32Builder::new());
    let mut id = Int32Builder::new();
    let mut score = Float64Builder::new();
    let mut label = StringBuilder::new();
    let mut flag = BooleanBuilder::new();
    for &(tenant_index, id_value, _, _) in generated {
        count.append_option(rng.bool().then(|| rng.i64(..)));
        x.append_option(rng.bool().then(|| rng.i32(..)));
        name.append_option(rng.bool().then(|| format!("p{}", rng.u16(..))));
        point_valid.push(rng.u8(..4) != 0);
        tenant.append_value(TENANTS[tenant_index]);
        if rng.bool() {
            for _ in 0..rng.usize(0..4) {
                tags.values().append_option(rng.bool().then(|| rng.i32(..)));
            }
            tags.append(true);
        } else {
            tags.append(false);
        }
        id.append_value(id_value);
        score.append_value(rng.f64());
        label.append_option(rng.bool().then(|| "x".repeat(rng.usize(0..40))));
        flag.append_option(rng.bool().then(|| rng.bool()));
    }
    let DataType::Struct(point_fields) = table.schema().field(1).data_type().clone() else {
        unreachable!("mixed_table's column 1 is a struct");
    };
    let point = StructArray::new(
        point_fields,
        vec![Arc::new(x.finish()) as ArrayRef, Arc::new(name.finish())],
        Some(point_valid.into()),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(count.finish()),
        Arc::new(point),
        Arc::new(tenant.finish()),
        Arc::new(tags.finish()),
        Arc::new(id.finish()),
        Arc::new(score.finish()),
        Arc::new(label.finish()),
        Arc::new(flag.finish()),
    ];
    RecordBatch::try_new(Arc::clone(table.schema()), columns).expect("valid rows")
}

impl Model {
    /// The model's versions in SST order, as a batch of the SST schema, and their keys.
    pub fn sst_rows(&self) -> (RecordBatch, Vec<KeyBytes>) {
        let mut order: Vec<(KeyBytes, Version)> = Vec::new();
        for (key, versions) in &self.versions {
            order.extend(versions.iter().map(|version| (key.clone(), *version)));
        }
        let indices = UInt32Array::from_iter_values(order.iter().map(|(_, v)| v.row as u32));
        let rows = take_record_batch(&self.rows, &indices).expect("take");
        let timestamps = order.iter().map(|(_, v)| v.timestamp).collect();
        let deleted = order.iter().map(|(_, v)| v.deleted).collect();
        let batch = sst_batch(&self.table, &rows, timestamps, deleted).expect("sst rows");
        (batch, order.into_iter().map(|(key, _)| key).collect())
    }

    /// The newest version of `key` at or before `read_at`.
    pub fn visible(&self, key: &KeyBytes, read_at: u64) -> Option<Version> {
        self.versions
            .get(key)?
            .iter()
            .find(|version| version.timestamp <= read_at)
            .copied()
    }

    /// What a scan of `range` at `read_at` must return: (key, version) in key order.
    pub fn scan(&self, range: &KeyRange, read_at: u64) -> Vec<(KeyBytes, Version)> {
        let bounds: (Bound<&KeyBytes>, Bound<&KeyBytes>) =
            (range.lower.as_ref(), range.upper.as_ref());
        // BTreeMap::range panics on these; they are empty.
        match bounds {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u))
                if l > u =>
            {
                return Vec::new();
            }
            (Bound::Excluded(l), Bound::Excluded(u)) if l == u => return Vec::new(),
            _ => {}
        }
        self.versions
            .range::<KeyBytes, _>(bounds)
            .filter_map(|(key, _)| Some((key.clone(), self.visible(key, read_at)?)))
            .collect()
    }

    /// The rows of `versions`, projected.
    pub fn expected_rows(
        &self,
        versions: &[(KeyBytes, Version)],
        projection: &[usize],
    ) -> RecordBatch {
        let indices = UInt32Array::from_iter_values(versions.iter().map(|(_, v)| v.row as u32));
        let rows = take_record_batch(&self.rows, &indices).expect("take");
        rows.project(projection).expect("projection")
    }
}
