//! The table: its Arrow schema, its key columns, and the checks every incoming batch passes.
//!
//! A [`TableSchema`] is fixed when a database is created and recorded in the table descriptor
//! ([`descriptor`]). It promises:
//!
//! - key columns exist, are named at most once, and have a type with a total order
//!   ([`key::is_supported_key_type`]); there is at least one;
//! - no user column uses the engine's reserved prefix [`RESERVED_PREFIX`];
//! - a batch accepted by [`TableSchema::conform`] has exactly the table's columns and types (in
//!   the table's order, whatever order the caller used), no null in a key column, and no null in
//!   a column the schema declares non-nullable. Anything else is a [`SchemaError`] that names the
//!   column, and nothing is stored.

pub mod descriptor;
mod key;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

pub use key::{KeyBytes, is_supported_key_type};

/// Column names starting with this prefix belong to the engine (commit timestamps, delete
/// markers in SSTs); user schemas may not use it.
pub const RESERVED_PREFIX: &str = "_damselfly";

/// Field metadata key that marks key columns in [`TableSchema::from_key_metadata`]: `"true"`
/// (key order = column order) or `"0"`, `"1"`, ... (explicit key order).
pub const KEY_METADATA: &str = "damselfly.key";

/// A problem with a schema, a key definition or a batch. Always the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No key column was given.
    #[error("the key must name at least one column")]
    EmptyKey,
    /// A key column is not in the schema.
    #[error("key column {column:?} is not in the schema (columns: {available})")]
    UnknownKeyColumn {
        /// The missing column.
        column: String,
        /// The schema's columns, comma separated.
        available: String,
    },
    /// A key column was named twice.
    #[error("key column {column:?} is named more than once")]
    DuplicateKeyColumn {
        /// The repeated column.
        column: String,
    },
    /// A key column's type cannot be a key.
    #[error(
        "key column {column:?} has type {data_type}, which cannot be a key (use integers, \
         strings, binary, boolean, dates, times or timestamps)"
    )]
    UnsupportedKeyType {
        /// The column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A user column uses the engine's reserved prefix.
    #[error(
        "column {column:?} uses the prefix {RESERVED_PREFIX:?}, which is reserved for the engine"
    )]
    ReservedColumnName {
        /// The column.
        column: String,
    },
    /// Two columns have the same name.
    #[error("column {column:?} appears more than once in the schema")]
    DuplicateColumn {
        /// The column.
        column: String,
    },
    /// The `damselfly.key` field metadata is not understood.
    #[error(
        "column {column:?} has {KEY_METADATA:?} = {value:?}; use \"true\" or a key position \
         (\"0\", \"1\", ...), the same style on every key column, each position once"
    )]
    KeyMetadata {
        /// The column.
        column: String,
        /// The metadata value.
        value: String,
    },
    /// A batch lacks one of the table's columns.
    #[error("the batch has no column {column:?}; the table's columns are {expected}")]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The table's columns, comma separated.
        expected: String,
    },
    /// A batch has a column the table does not.
    #[error("the batch has a column {column:?} that the table does not have")]
    UnexpectedColumn {
        /// The extra column.
        column: String,
    },
    /// A batch column has the wrong type.
    #[error("column {column:?} has type {found} in the batch, but the table's type is {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// The table's type.
        expected: DataType,
        /// The batch's type.
        found: DataType,
    },
    /// A key column holds a null.
    #[error("key column {column:?} is null in row {row}; key values may not be null")]
    NullKey {
        /// The column.
        column: String,
        /// The first row with a null.
        row: usize,
    },
    /// A non-nullable column holds a null.
    #[error("column {column:?} is declared non-nullable but is null in row {row}")]
    NullInNonNullable {
        /// The column.
        column: String,
        /// The first row with a null.
        row: usize,
    },
    /// The delete flags do not match the batch.
    #[error("{found} delete flags were given for a batch of {expected} rows")]
    TombstoneLength {
        /// The batch's row count.
        expected: usize,
        /// The number of flags.
        found: usize,
    },
    /// Arrow refused an operation on otherwise valid input.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// A table's schema and key, with the key encoder built once.
#[derive(Debug)]
pub struct TableSchema {
    schema: SchemaRef,
    key_indices: Vec<usize>,
    key_encoder: RowConverter,
}

impl TableSchema {
    /// A table with the columns of `schema` and the key `key_names` (in key order).
    pub fn new(schema: SchemaRef, key_names: &[&str]) -> Result<Self, SchemaError> {
        check_column_names(&schema)?;
        if key_names.is_empty() {
            return Err(SchemaError::EmptyKey);
        }
        let mut key_indices: Vec<usize> = Vec::with_capacity(key_names.len());
        for name in key_names {
            let index = schema
                .index_of(name)
                .map_err(|_| SchemaError::UnknownKeyColumn {
                    column: (*name).to_owned(),
                    available: column_list(&schema),
                })?;
            if key_indices.contains(&index) {
                return Err(SchemaError::DuplicateKeyColumn {
                    column: (*name).to_owned(),
                });
            }
            let field = schema.field(index);
            if !is_supported_key_type(field.data_type()) {
                return Err(SchemaError::UnsupportedKeyType {
                    column: field.name().clone(),
                    data_type: field.data_type().clone(),
                });
            }
            key_indices.push(index);
        }
        let sort_fields = key_indices
            .iter()
            .map(|&index| SortField::new(schema.field(index).data_type().clone()))
            .collect();
        let key_encoder = RowConverter::new(sort_fields)?;
        Ok(Self {
            schema,
            key_indices,
            key_encoder,
        })
    }

    /// A table whose key columns are marked in the schema's field metadata with
    /// [`KEY_METADATA`].
    pub fn from_key_metadata(schema: SchemaRef) -> Result<Self, SchemaError> {
        let names = key_names_from_metadata(&schema)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Self::new(schema, &names)
    }

    /// The table's schema (user columns only).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The positions of the key columns in the schema, in key order.
    pub fn key_indices(&self) -> &[usize] {
        &self.key_indices
    }

    /// The key columns' names, in key order.
    pub fn key_names(&self) -> Vec<&str> {
        self.key_indices
            .iter()
            .map(|&index| self.schema.field(index).name().as_str())
            .collect()
    }

    /// The key columns' fields, in key order.
    pub fn key_fields(&self) -> Vec<&Field> {
        self.key_indices
            .iter()
            .map(|&index| self.schema.field(index))
            .collect()
    }

    /// Whether `other` describes the same table: same columns, types, nullability and key.
    pub fn same_table_as(&self, other: &TableSchema) -> bool {
        self.key_indices == other.key_indices
            && self.schema.fields().len() == other.schema.fields().len()
            && self
                .schema
                .fields()
                .iter()
                .zip(other.schema.fields().iter())
                .all(|(mine, theirs)| {
                    mine.name() == theirs.name()
                        && mine.data_type() == theirs.data_type()
                        && mine.is_nullable() == theirs.is_nullable()
                })
    }

    /// Checks `batch` against the table and returns it with the table's schema and column order.
    pub fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, SchemaError> {
        let batch_schema = batch.schema();
        for field in batch_schema.fields() {
            if self.schema.index_of(field.name()).is_err() {
                return Err(SchemaError::UnexpectedColumn {
                    column: field.name().clone(),
                });
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (index, field) in self.schema.fields().iter().enumerate() {
            let column =
                batch
                    .column_by_name(field.name())
                    .ok_or_else(|| SchemaError::MissingColumn {
                        column: field.name().clone(),
                        expected: column_list(&self.schema),
                    })?;
            if column.data_type() != field.data_type() {
                return Err(SchemaError::ColumnType {
                    column: field.name().clone(),
                    expected: field.data_type().clone(),
                    found: column.data_type().clone(),
                });
            }
            self.check_nulls(index, field, column.as_ref())?;
            columns.push(Arc::clone(column));
        }
        if batch_schema.fields().len() != columns.len() {
            // Same names found but more fields: a name must be repeated in the batch.
            let repeated = repeated_name(&batch_schema).unwrap_or_default();
            return Err(SchemaError::DuplicateColumn { column: repeated });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    fn check_nulls(
        &self,
        index: usize,
        field: &Field,
        column: &dyn Array,
    ) -> Result<(), SchemaError> {
        let is_key = self.key_indices.contains(&index);
        if column.null_count() == 0 || (!is_key && field.is_nullable()) {
            return Ok(());
        }
        let row = (0..column.len())
            .find(|&row| column.is_null(row))
            .unwrap_or_default();
        let column = field.name().clone();
        if is_key {
            Err(SchemaError::NullKey { column, row })
        } else {
            Err(SchemaError::NullInNonNullable { column, row })
        }
    }

    /// Encodes the key columns of a conformed `batch` into order-preserving byte strings.
    pub fn encode_keys(&self, batch: &RecordBatch) -> Result<Rows, SchemaError> {
        Ok(self.key_encoder.convert_columns(&self.key_columns(batch))?)
    }

    /// The keys of a conformed `batch` as [`KeyBytes`], one per row.
    pub fn batch_key_bytes(&self, batch: &RecordBatch) -> Result<Vec<KeyBytes>, SchemaError> {
        self.encode_key_bytes(&self.key_columns(batch))
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.key_indices
            .iter()
            .map(|&index| Arc::clone(batch.column(index)))
            .collect()
    }

    /// Encodes keys given as arrays of the key columns (in key order, equal lengths).
    pub fn encode_key_columns(&self, key_columns: &[ArrayRef]) -> Result<Rows, SchemaError> {
        Ok(self.key_encoder.convert_columns(key_columns)?)
    }

    /// Encodes keys given as arrays of the key columns (in key order, equal lengths) into
    /// [`KeyBytes`], one per row.
    pub fn encode_key_bytes(&self, key_columns: &[ArrayRef]) -> Result<Vec<KeyBytes>, SchemaError> {
        // The common key, one integer column, is encoded directly.
        if let ([column], [index]) = (key_columns, &self.key_indices[..])
            && column.data_type() == self.schema.field(*index).data_type()
            && let Some(keys) = KeyBytes::from_integers(column.as_ref())
        {
            return Ok(keys);
        }
        let rows = self.key_encoder.convert_columns(key_columns)?;
        Ok(KeyBytes::from_binary(&rows.try_into_binary()?))
    }

    /// Encodes one key given as single-row arrays of the key columns' types, in key order.
    pub fn encode_key(&self, key_columns: &[ArrayRef]) -> Result<KeyBytes, SchemaError> {
        let rows = self.key_encoder.convert_columns(key_columns)?;
        if rows.num_rows() != 1 {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a key must be one row, got {}",
                rows.num_rows()
            ))
            .into());
        }
        Ok(KeyBytes::from_slice(rows.row(0).data()))
    }
}

fn check_column_names(schema: &Schema) -> Result<(), SchemaError> {
    if let Some(column) = repeated_name(schema) {
        return Err(SchemaError::DuplicateColumn { column });
    }
    match schema
        .fields()
        .iter()
        .find(|field| field.name().starts_with(RESERVED_PREFIX))
    {
        Some(field) => Err(SchemaError::ReservedColumnName {
            column: field.name().clone(),
        }),
        None => Ok(()),
    }
}

fn repeated_name(schema: &Schema) -> Option<String> {
    let mut names: Vec<&String> = schema.fields().iter().map(|field| field.name()).collect();
    names.sort();
    names
        .windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0].clone())
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key column names marked with [`KEY_METADATA`], in key order.
fn key_names_from_metadata(schema: &Schema) -> Result<Vec<String>, SchemaError> {
    let marked: Vec<(&Field, &String)> = schema
        .fields()
        .iter()
        .filter_map(|field| {
            field
                .metadata()
                .get(KEY_METADATA)
                .map(|value| (field.as_ref(), value))
        })
        .collect();
    let bad = |field: &Field, value: &String| SchemaError::KeyMetadata {
        column: field.name().clone(),
        value: value.clone(),
    };
    if marked.iter().all(|(_, value)| value.as_str() == "true") {
        return Ok(marked
            .iter()
            .map(|(field, _)| field.name().clone())
            .collect());
    }
    let mut positioned: Vec<(usize, String)> = Vec::with_capacity(marked.len());
    for (field, value) in &marked {
        let position: usize = value.parse().map_err(|_| bad(field, value))?;
        positioned.push((position, field.name().clone()));
    }
    positioned.sort();
    for (expected, (position, name)) in positioned.iter().enumerate() {
        if *position != expected {
            let field = schema.field_with_name(name)?;
            return Err(bad(field, &position.to_string()));
        }
    }
    Ok(positioned.into_iter().map(|(_, name)| name).collect())
}

#[cfg(test)]
mod tests;
