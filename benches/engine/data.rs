//! The benchmark's table and rows.

use std::sync::Arc;

use damselfly::arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use damselfly::arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Rows of the standard workloads.
pub const ROWS: u64 = 1_048_576;

/// u64 key, i64, f64, a 32-byte string, bool.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("ratio", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("flag", DataType::Boolean, false),
    ]))
}

/// Rows `first..first + count`, every value derived from the id.
pub fn rows(first: u64, count: u64) -> RecordBatch {
    let ids: Vec<u64> = (first..first + count).collect();
    let values: Int64Array = ids.iter().map(|&id| Some(id as i64 * 3)).collect();
    let ratios: Float64Array = ids.iter().map(|&id| Some(id as f64 * 0.5)).collect();
    let labels: StringArray = ids
        .iter()
        .map(|id| Some(format!("label-{id:026}")))
        .collect();
    let flags: BooleanArray = ids.iter().map(|id| Some(id % 2 == 0)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(ids)),
            Arc::new(values),
            Arc::new(ratios),
            Arc::new(labels),
            Arc::new(flags),
        ],
    )
    .expect("the columns match the schema")
}

/// Batches made cheaply from a few prepared ones with fresh keys, for workloads too large to
/// prepare in memory (they would inflate the peak RSS being measured).
pub struct RowSource {
    templates: Vec<RecordBatch>,
    batch_rows: u64,
}

impl RowSource {
    pub fn new(batch_rows: u64) -> Self {
        Self {
            templates: (0..8)
                .map(|template| rows(template * 1_000_003, batch_rows))
                .collect(),
            batch_rows,
        }
    }

    /// Batch number `index`: keys `index * batch_rows ..`, values from a template.
    pub fn batch(&self, index: u64) -> RecordBatch {
        let template = &self.templates[(index % self.templates.len() as u64) as usize];
        let first = index * self.batch_rows;
        let mut columns: Vec<ArrayRef> = template.columns().to_vec();
        columns[0] = Arc::new(UInt64Array::from_iter_values(
            first..first + self.batch_rows,
        ));
        RecordBatch::try_new(template.schema(), columns).expect("the columns match the schema")
    }
}

/// One row in this many overwrites an older key.
const OVERWRITE_EVERY: u64 = 5;

/// Batches where a fifth of the rows overwrite random keys written before: each has
/// `batch_rows` rows, the first four fifths with new keys, the last fifth with random keys
/// already written (the same sequence every run).
pub struct Overwrites {
    source: RowSource,
    random: fastrand::Rng,
    next_key: u64,
    batch_rows: u64,
}

impl Overwrites {
    pub fn new(batch_rows: u64) -> Self {
        Self {
            source: RowSource::new(batch_rows),
            random: fastrand::Rng::with_seed(20),
            next_key: 0,
            batch_rows,
        }
    }

    /// How many distinct keys the batches so far hold.
    pub fn distinct_keys(&self) -> u64 {
        self.next_key
    }

    pub fn batch(&mut self, index: u64) -> RecordBatch {
        let template = self.source.batch(index);
        let fresh = self.batch_rows - self.batch_rows / OVERWRITE_EVERY;
        let mut ids: Vec<u64> = (self.next_key..self.next_key + fresh).collect();
        self.next_key += fresh;
        let written = self.next_key;
        ids.extend((fresh..self.batch_rows).map(|_| self.random.u64(0..written)));
        let mut columns: Vec<ArrayRef> = template.columns().to_vec();
        columns[0] = Arc::new(UInt64Array::from(ids));
        RecordBatch::try_new(template.schema(), columns).expect("the columns match the schema")
    }
}
