//! What can be wrong with a filter or a key.

use arrow_schema::{ArrowError, DataType};

use crate::value::{Value, literal_advice};

/// Errors from binding a filter to a schema, evaluating it, or converting a key.
///
/// Every one is the caller's mistake (damselfly reports them as invalid input), and each
/// message says what is wrong and what to write instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// A filter names a column the table (or batch) does not have.
    #[error("{}", unknown_column_message(.column, .available))]
    UnknownColumn {
        /// The name the filter used.
        column: String,
        /// The columns that do exist, in schema order.
        available: Vec<String>,
    },
    /// An operator does not apply to the column's type (e.g. a comparison on a list column,
    /// `starts_with` on an integer column, a bare non-Boolean column as a filter).
    #[error("{operation} is not supported on column `{column}` of type {data_type}: {hint}")]
    Unsupported {
        /// The column the operator was applied to.
        column: String,
        /// The operator, as its builder method (e.g. `gt (>)`, `starts_with`).
        operation: String,
        /// The column's type.
        data_type: DataType,
        /// Which columns the operator does apply to, or what to write instead.
        hint: String,
    },
    /// A literal's kind does not fit the column's type (e.g. a string compared with an integer
    /// column, a float with an integer column, any literal with a list column).
    #[error(
        "{} does not fit column `{column}` of type {data_type}; {}",
        .value.describe(),
        literal_advice(.data_type)
    )]
    LiteralType {
        /// The column the literal is compared with.
        column: String,
        /// The column's type.
        data_type: DataType,
        /// The literal.
        value: Value,
    },
    /// A literal of a fitting kind whose value the column's type cannot hold exactly (out of
    /// range, not exactly representable, wrong length).
    #[error(
        "{} does not fit column `{column}` of type {data_type}: {reason}",
        .value.describe()
    )]
    LiteralOutOfRange {
        /// The column the literal is compared with.
        column: String,
        /// The column's type.
        data_type: DataType,
        /// The literal.
        value: Value,
        /// Why it does not fit.
        reason: String,
    },
    /// An operator was applied to something that is not a column, e.g. `(a AND b) > 1`.
    #[error(
        "{operation} applies to a column, but was applied to `{expression}`; start each \
         comparison from Expr::col(name) and combine the results with and / or / not, e.g. \
         Expr::col(\"a\").gt(1).and(Expr::col(\"b\").gt(2))"
    )]
    NotAColumn {
        /// The expression the operator was applied to, as SQL-like text.
        expression: String,
        /// The operator.
        operation: String,
    },
    /// A filter nests more deeply than damselfly evaluates.
    #[error(
        "the filter nests {depth} levels deep, more than the {limit} allowed; nesting comes from \
         `not`, from alternating `and` and `or`, and from operators applied to operators (a \
         chain of `and`s, or of `or`s, is one level however long), so simplify the filter, \
         e.g. drop double negations"
    )]
    TooDeep {
        /// How deeply the filter nests (a bare column is 1).
        depth: usize,
        /// The deepest filter allowed.
        limit: usize,
    },
    /// A key has the wrong number of components.
    #[error(
        "the key has {found} component(s) but the table's key has {expected} column(s) ({}); \
         give one value per key column, in key order, e.g. Key::from((a, b)) for two",
        .key_columns.join(", ")
    )]
    KeyArity {
        /// The number of key columns.
        expected: usize,
        /// The number of components given.
        found: usize,
        /// The key columns, in key order.
        key_columns: Vec<String>,
    },
    /// A key component is NULL; keys never hold NULL.
    #[error("key column `{column}` is NULL in the key; keys never hold NULL, so give a value")]
    NullKey {
        /// The key column whose component is NULL.
        column: String,
    },
    /// An arrow kernel refused to evaluate a bound filter. Binding rules this out for batches
    /// of the bound schema; seeing it means a bug in damselfly's binding, worth reporting.
    #[error("evaluating {operation} failed: {source}")]
    Evaluation {
        /// The operator being evaluated and the column it applies to.
        operation: String,
        /// The kernel's error.
        source: ArrowError,
    },
}

fn unknown_column_message(column: &str, available: &[String]) -> String {
    let mut message = format!(
        "no column named `{column}`; the columns are: {}",
        available.join(", ")
    );
    if let Some(near) = available
        .iter()
        .find(|name| name.eq_ignore_ascii_case(column))
    {
        message.push_str(&format!(
            " (did you mean `{near}`? names are case-sensitive)"
        ));
    }
    message
}
