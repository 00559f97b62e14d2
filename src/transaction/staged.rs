//! A transaction's writes, staged in a private memtable until it commits.
//!
//! Each upsert or delete is inserted at the next *staging number* above the snapshot timestamp,
//! so a key's newest staged version is the transaction's last write to it, and every staged
//! version is newer than anything the snapshot sees: merged with the snapshot's sources, the
//! transaction reads its own writes with the same code that reads memtables. A read remembers
//! the staging number it started at, so writes after it never show up in it halfway.

use std::ops::Bound;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_buffer::BooleanBuffer;
use arrow_data::ArrayData;
use arrow_schema::DataType;
use damselfly_actors::Timestamp;
use damselfly_actors::memtable::{KeyedRows, Memtable, PreparedWrite};
use damselfly_actors::table::{KeyBytes, TableSchema};

use crate::error::Error;

/// A transaction's staged writes, as of one staging number. Cloning freezes a view of them.
#[derive(Debug, Clone)]
pub(crate) struct StagedWrites {
    memtable: Arc<Memtable>,
    /// The staging number of the last write this view sees.
    through: Timestamp,
}

impl StagedWrites {
    /// No writes yet, for a transaction reading at `read_at`.
    pub(crate) fn new(read_at: Timestamp) -> Self {
        Self {
            memtable: Arc::new(Memtable::new(0)),
            through: read_at,
        }
    }

    /// The memtable holding the writes.
    pub(crate) fn memtable(&self) -> &Arc<Memtable> {
        &self.memtable
    }

    /// The staging number of the last write this view sees.
    pub(crate) fn through(&self) -> Timestamp {
        self.through
    }

    /// Stages `rows`: they replace earlier writes of their keys.
    pub(crate) fn stage(&mut self, rows: KeyedRows) {
        if rows.batch.num_rows() == 0 {
            return;
        }
        self.through = self.through.next();
        self.memtable.insert(self.through, rows);
    }

    /// The transaction's own last write of `key`: `Some(None)` if it deleted the key, `None` if
    /// it did not write it.
    pub(crate) fn get(&self, key: &KeyBytes) -> Option<Option<RecordBatch>> {
        let found = self.memtable.get(key.as_bytes(), self.through)?;
        Some((!found.deleted).then(|| found.batch.slice(found.row, 1)))
    }

    /// The last write of every key, in key order, as one commit; `None` if nothing was
    /// written.
    pub(crate) fn to_write(&self, table: &TableSchema) -> Result<Option<PreparedWrite>, Error> {
        let chunk = self
            .memtable
            .scan_chunk(Bound::Unbounded, self.through, usize::MAX);
        if chunk.rows.is_empty() {
            return Ok(None);
        }
        let all: Vec<usize> = (0..table.schema().fields().len()).collect();
        let batch = RecordBatch::try_new(Arc::clone(table.schema()), chunk.gather(&all)?)?;
        let deleted: Vec<bool> = chunk.rows.iter().map(|&(_, _, deleted)| deleted).collect();
        let deletes = deleted
            .iter()
            .any(|&deleted| deleted)
            .then(|| BooleanBuffer::from(deleted));
        let rows = KeyedRows::conformed(table, batch, deletes)?;
        Ok(Some(PreparedWrite::of_rows(rows)?))
    }
}

/// The row a delete of the key `key_columns` (one-row arrays, in key order) is staged as: the
/// key, with placeholder values in the other columns — null where the column allows it, else
/// its type's zero value (nobody reads a deleted row's values).
pub(crate) fn delete_row(
    table: &TableSchema,
    key_columns: Vec<ArrayRef>,
) -> Result<RecordBatch, Error> {
    let schema = table.schema();
    let mut columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            if field.is_nullable() {
                Ok(new_null_array(field.data_type(), 1))
            } else {
                zero_value(field.data_type(), 1).map(arrow_array::make_array)
            }
        })
        .collect::<Result<_, Error>>()?;
    for (&index, column) in table.key_indices().iter().zip(key_columns) {
        columns[index] = column;
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// `rows` values of `data_type` without nulls: zeros, empty strings and lists, false.
fn zero_value(data_type: &DataType, rows: usize) -> Result<ArrayData, Error> {
    // The buffers of a null array are zeroed: without the validity bitmap they read as zeros.
    let zeroed = |data_type: &DataType| {
        new_null_array(data_type, rows)
            .to_data()
            .into_builder()
            .nulls(None)
    };
    let data = match data_type {
        DataType::Struct(fields) => {
            let children = fields
                .iter()
                .map(|field| zero_value(field.data_type(), rows))
                .collect::<Result<Vec<_>, _>>()?;
            zeroed(data_type).child_data(children).build()
        }
        DataType::FixedSizeList(field, size) => {
            let length = usize::try_from(*size).unwrap_or_default() * rows;
            let child = zero_value(field.data_type(), length)?;
            zeroed(data_type).child_data(vec![child]).build()
        }
        DataType::Dictionary(_, value) => {
            // Every key is 0: the dictionary needs one value for it to point at.
            let value = zero_value(value, 1)?;
            zeroed(data_type).child_data(vec![value]).build()
        }
        _ => zeroed(data_type).build(),
    };
    data.map_err(|error| {
        Error::invalid_input(format!(
            "cannot stage a delete in a table with a non-nullable {data_type} column: {error}; \
             delete the key with Db::ingest_with_tombstones instead"
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Array;
    use arrow_schema::{DataType, Field, Fields, IntervalUnit, TimeUnit};

    use super::zero_value;

    #[test]
    fn every_column_type_has_a_valid_zero_value_without_nulls() {
        let item = Arc::new(Field::new("item", DataType::Int32, false));
        let types = [
            DataType::Boolean,
            DataType::Int8,
            DataType::UInt64,
            DataType::Float64,
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Binary,
            DataType::BinaryView,
            DataType::FixedSizeBinary(16),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Interval(IntervalUnit::MonthDayNano),
            DataType::Decimal128(20, 3),
            DataType::List(Arc::clone(&item)),
            DataType::LargeList(Arc::clone(&item)),
            DataType::FixedSizeList(Arc::clone(&item), 3),
            DataType::Struct(Fields::from(vec![
                Field::new("a", DataType::Int64, false),
                Field::new("b", DataType::Utf8, true),
            ])),
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        ];
        for data_type in types {
            let data =
                zero_value(&data_type, 1).unwrap_or_else(|error| panic!("{data_type}: {error}"));
            let array = arrow_array::make_array(data);
            assert_eq!(array.len(), 1, "{data_type}");
            assert_eq!(array.null_count(), 0, "{data_type}");
            assert_eq!(array.data_type(), &data_type);
            array.to_data().validate_full().expect("a valid array");
        }
    }
}
