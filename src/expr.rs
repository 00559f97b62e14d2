//! Filter expressions: what users build ([`Expr`]), what binding checks, and how a bound
//! [`Predicate`] is evaluated over a `RecordBatch` with arrow kernels.
//!
//! Promises:
//!
//! - **Binding validates everything up front.** [`Expr::bind`] checks every column name against
//!   the schema, every operator against its column's type, and coerces every literal to its
//!   column's type (the rules are in [`crate::value`]). A predicate that binds does not fail on a
//!   batch of the schema it was bound to; a batch whose column types differ (e.g. Utf8 read back
//!   as Utf8View or as a dictionary) has its literals coerced again, and a missing column is an
//!   [`ExprError::UnknownColumn`].
//! - **Nothing panics**, for any expression a user can build and any batch: every failure is an
//!   [`ExprError`] whose message says what is wrong and what to write instead.
//! - **SQL three-valued logic.** A comparison with a null (a null cell, or a [`Value::Null`]
//!   literal) is null, `AND`/`OR` follow Kleene's truth tables, `NOT null` is null, and
//!   `is_null`/`is_not_null` are never null. The caller keeps only the rows where the result is
//!   true. `in_list` is the `OR` of equalities, so an empty list is false for every row;
//!   `between(lo, hi)` is `>= lo AND <= hi`.
//! - Filters nest at most 64 levels deep ([`ExprError::TooDeep`]). A chain of `and`s (or of
//!   `or`s) is kept flat and counts as one level however long it is, so folding 100 000
//!   conditions together with `or` works; the depth check and dropping an [`Expr`] never
//!   recurse, so no filter a user builds overflows the stack here.
//! - Floats compare by IEEE 754 totalOrder, as arrow's kernels do: NaN equals NaN and is greater
//!   than every other value including +inf, and -0.0 is less than +0.0.

use std::collections::BTreeSet;
use std::fmt;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar};
use arrow_buffer::BooleanBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

use crate::value::{Value, accepts_literals, literal_advice, value_type};

/// A filter over a table's rows, built from columns and literals.
///
/// Start from [`Expr::col`], apply one operator ([`eq`](Expr::eq), [`ne`](Expr::ne),
/// [`lt`](Expr::lt), [`le`](Expr::le), [`gt`](Expr::gt), [`ge`](Expr::ge),
/// [`between`](Expr::between), [`in_list`](Expr::in_list), [`is_null`](Expr::is_null),
/// [`is_not_null`](Expr::is_not_null), [`starts_with`](Expr::starts_with)), and combine the
/// results with [`and`](Expr::and), [`or`](Expr::or) and [`not`](Expr::not). A bare
/// `Expr::col("flag")` used as a filter means "the Boolean column `flag` is true".
///
/// ```
/// use damselfly::Expr;
///
/// let filter = Expr::col("score").gt(80i64).and(Expr::col("name").starts_with("a"));
/// assert_eq!(filter.to_string(), "score > 80 AND name LIKE 'a%'");
///
/// let recent = Expr::col("ts").between(1_700_000_000_i64, 1_800_000_000_i64);
/// let tagged = Expr::col("tag").in_list(["red", "blue"]).or(Expr::col("tag").is_null());
/// let filter = recent.and(!tagged);
/// assert_eq!(
///     filter.to_string(),
///     "ts BETWEEN 1700000000 AND 1800000000 AND NOT (tag IN ('red', 'blue') OR tag IS NULL)"
/// );
/// ```
///
/// Building never fails; the expression is checked against the table's schema when a scan
/// uses it, and every mistake (unknown column, operator that does not fit the column's type,
/// literal that does not fit the column) is reported then, before any data is read. Rows where
/// the filter is null (e.g. `score > 80` on a null score) are dropped, as in SQL.
///
/// Chains of `and`s (or of `or`s) are stored flat, so folding many conditions together in a
/// loop costs no nesting, and `a.and(b.and(c)) == a.and(b).and(c)`. A filter may nest at most
/// 64 levels otherwise (through `not`, alternating `and`/`or`, or operators applied to
/// operators). Cloning, comparing and formatting recurse over that nesting.
#[derive(Clone, PartialEq)]
pub struct Expr {
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Column(String),
    Compare {
        operand: Box<Expr>,
        op: CompareOp,
        value: Value,
    },
    Between {
        operand: Box<Expr>,
        low: Value,
        high: Value,
    },
    InList {
        operand: Box<Expr>,
        values: Vec<Value>,
    },
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
    StartsWith {
        operand: Box<Expr>,
        prefix: Value,
    },
    /// The operands of a chain of `and`s, at least two, none of them an `And` itself (a chain
    /// built in a loop stays flat, so its length costs no nesting).
    And(Vec<Expr>),
    /// The operands of a chain of `or`s, at least two, none of them an `Or` itself.
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// The two ways of combining filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Junction {
    And,
    Or,
}

/// The six comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    fn method(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }
}

impl Expr {
    /// The column `name`. Used alone as a filter it means "this Boolean column is true".
    pub fn col(name: impl Into<String>) -> Expr {
        Expr::from_node(Node::Column(name.into()))
    }

    /// `self = value`.
    pub fn eq(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Eq, value.into())
    }

    /// `self <> value`.
    pub fn ne(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Ne, value.into())
    }

    /// `self < value`.
    pub fn lt(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Lt, value.into())
    }

    /// `self <= value`.
    pub fn le(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Le, value.into())
    }

    /// `self > value`.
    pub fn gt(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Gt, value.into())
    }

    /// `self >= value`.
    pub fn ge(self, value: impl Into<Value>) -> Expr {
        self.compare(CompareOp::Ge, value.into())
    }

    /// `low <= self AND self <= high`: inclusive at both ends.
    pub fn between(self, low: impl Into<Value>, high: impl Into<Value>) -> Expr {
        Expr::from_node(Node::Between {
            operand: Box::new(self),
            low: low.into(),
            high: high.into(),
        })
    }

    /// `self IN (values...)`: true when `self` equals one of `values`. An empty list is false
    /// for every row; a NULL in the list makes a row that matches nothing else null.
    pub fn in_list<I, V>(self, values: I) -> Expr
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        Expr::from_node(Node::InList {
            operand: Box::new(self),
            values: values.into_iter().map(Into::into).collect(),
        })
    }

    /// `self IS NULL`: true for null cells, never null itself.
    pub fn is_null(self) -> Expr {
        Expr::from_node(Node::IsNull {
            operand: Box::new(self),
            negated: false,
        })
    }

    /// `self IS NOT NULL`: true for non-null cells, never null itself.
    pub fn is_not_null(self) -> Expr {
        Expr::from_node(Node::IsNull {
            operand: Box::new(self),
            negated: true,
        })
    }

    /// The cell begins with `prefix`: a string prefix on string columns (pass a `&str`), a byte
    /// prefix on binary columns (pass bytes).
    pub fn starts_with(self, prefix: impl Into<Value>) -> Expr {
        Expr::from_node(Node::StartsWith {
            operand: Box::new(self),
            prefix: prefix.into(),
        })
    }

    /// `self AND other` (Kleene: false wins over null).
    pub fn and(self, other: Expr) -> Expr {
        self.join(Junction::And, other)
    }

    /// `self OR other` (Kleene: true wins over null).
    pub fn or(self, other: Expr) -> Expr {
        self.join(Junction::Or, other)
    }

    /// `NOT self` (null stays null). The same as `!self`.
    // An inherent `not` keeps the builder chain readable without importing `std::ops::Not`;
    // the trait is implemented below too, and both do the same.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::from_node(Node::Not(Box::new(self)))
    }

    fn from_node(node: Node) -> Expr {
        Expr { node }
    }

    /// `self junction other`, flattened: joining onto a chain of the same junction extends it
    /// (in O(1) when `self` is the chain, as when a loop folds conditions together).
    fn join(self, junction: Junction, other: Expr) -> Expr {
        let mut operands = self.into_operands(junction);
        operands.extend(other.into_operands(junction));
        Expr::from_node(match junction {
            Junction::And => Node::And(operands),
            Junction::Or => Node::Or(operands),
        })
    }

    /// The operands of this chain of `junction`s, or `[self]` if it is not one.
    fn into_operands(mut self, junction: Junction) -> Vec<Expr> {
        match (&mut self.node, junction) {
            (Node::And(operands), Junction::And) | (Node::Or(operands), Junction::Or) => {
                std::mem::take(operands)
            }
            _ => vec![self],
        }
    }

    /// The nesting depth (a bare column is 1; a chain of `and`s or of `or`s is one level however
    /// long it is), computed without recursion so that any tree a user builds can be measured
    /// before anything recurses over it.
    fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 1)];
        while let Some((expr, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            pending.extend(expr.children().into_iter().map(|child| (child, depth + 1)));
        }
        deepest
    }

    /// The direct sub-expressions: operands and the sides of and / or / not.
    fn children(&self) -> Vec<&Expr> {
        match &self.node {
            Node::Column(_) => Vec::new(),
            Node::Compare { operand, .. }
            | Node::Between { operand, .. }
            | Node::InList { operand, .. }
            | Node::IsNull { operand, .. }
            | Node::StartsWith { operand, .. }
            | Node::Not(operand) => vec![operand],
            Node::And(operands) | Node::Or(operands) => operands.iter().collect(),
        }
    }

    /// Moves the direct sub-expressions out into `out`, leaving `self` a leaf.
    fn detach_children(&mut self, out: &mut Vec<Expr>) {
        let node = std::mem::replace(&mut self.node, Node::Column(String::new()));
        match node {
            Node::Column(_) => {}
            Node::Compare { operand, .. }
            | Node::Between { operand, .. }
            | Node::InList { operand, .. }
            | Node::IsNull { operand, .. }
            | Node::StartsWith { operand, .. }
            | Node::Not(operand) => out.push(*operand),
            Node::And(operands) | Node::Or(operands) => out.extend(operands),
        }
    }

    fn compare(self, op: CompareOp, value: Value) -> Expr {
        Expr::from_node(Node::Compare {
            operand: Box::new(self),
            op,
            value,
        })
    }

    /// Checks this expression against `schema` and prepares it for evaluation: every column
    /// exists, every operator fits its column's type, every literal coerces to its column's type.
    pub(crate) fn bind(&self, schema: &Schema) -> Result<Predicate, ExprError> {
        let depth = self.depth();
        if depth > MAX_DEPTH {
            return Err(ExprError::TooDeep {
                depth,
                limit: MAX_DEPTH,
            });
        }
        let node = bind_node(self, schema)?;
        Ok(Predicate { node })
    }
}

/// How deeply a filter may nest (see [`Expr::depth`]: a chain of `and`s or of `or`s counts once).
/// Binding, evaluation and formatting recurse over the nesting, so the depth is checked, without
/// recursion, before they run. Unoptimised builds spend up to ~6 KiB of stack per level, so 64
/// levels take under 0.5 MiB, well inside the 2 MiB threads of tokio and smol; no filter written
/// by hand, nor a long chain built in a loop (which stays flat), comes near the limit.
const MAX_DEPTH: usize = 64;

impl Drop for Expr {
    // 100 000 nested `not`s are easy to build in a loop (chains of and / or stay flat, but
    // nesting does not), and dropping them the default, recursive way would overflow the
    // stack; detach the children and drop them one at a time instead.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.detach_children(&mut pending);
        while let Some(mut child) = pending.pop() {
            child.detach_children(&mut pending);
        }
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;

    /// `NOT self`, the same as [`Expr::not`].
    fn not(self) -> Expr {
        Expr::from_node(Node::Not(Box::new(self)))
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({self})")
    }
}

impl fmt::Display for Expr {
    /// SQL-like text, e.g. `score > 80 AND name LIKE 'a%'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Node::And(operands) => write_joined(f, operands.iter().map(AndChild), " AND "),
            Node::Or(operands) => write_joined(f, operands, " OR "),
            Node::Not(inner) => {
                f.write_str("NOT ")?;
                fmt::Display::fmt(&Operand(inner), f)
            }
            _ => self.fmt_leaf(f),
        }
    }
}

impl Expr {
    /// Formats a column or an operator on a column. Kept out of `fmt`, which recurses through
    /// and / or / not, so that the recursive frame stays small (see [`MAX_DEPTH`]).
    #[inline(never)]
    fn fmt_leaf(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Node::Column(name) => f.write_str(&sql_identifier(name)),
            Node::Compare { operand, op, value } => {
                write!(f, "{} {} {}", Operand(operand), op.sql(), value.to_sql())
            }
            Node::Between { operand, low, high } => {
                let (low, high) = (low.to_sql(), high.to_sql());
                write!(f, "{} BETWEEN {low} AND {high}", Operand(operand))
            }
            Node::InList { operand, values } => {
                let values: Vec<String> = values.iter().map(Value::to_sql).collect();
                write!(f, "{} IN ({})", Operand(operand), values.join(", "))
            }
            Node::IsNull { operand, negated } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{} IS {not}NULL", Operand(operand))
            }
            Node::StartsWith { operand, prefix } => match prefix {
                Value::Utf8(text) => {
                    write!(f, "{} LIKE '{}%'", Operand(operand), like_escape(text))
                }
                other => write!(f, "starts_with({}, {})", Operand(operand), other.to_sql()),
            },
            Node::And(_) | Node::Or(_) | Node::Not(_) => fmt::Display::fmt(self, f),
        }
    }
}

fn write_joined<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl IntoIterator<Item = T>,
    separator: &str,
) -> fmt::Result {
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

/// Displays an expression, in parentheses unless it is a bare column.
struct Operand<'a>(&'a Expr);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.node {
            Node::Column(_) => fmt::Display::fmt(self.0, f),
            _ => parenthesized(self.0, f),
        }
    }
}

/// Displays an operand of an AND chain, in parentheses if it is an OR (which binds more
/// loosely).
struct AndChild<'a>(&'a Expr);

impl fmt::Display for AndChild<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.node {
            Node::Or(_) => parenthesized(self.0, f),
            _ => fmt::Display::fmt(self.0, f),
        }
    }
}

fn parenthesized(expr: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("(")?;
    fmt::Display::fmt(expr, f)?;
    f.write_str(")")
}

/// A column name as SQL: bare when it is a plain identifier, else double-quoted.
fn sql_identifier(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Escapes a LIKE prefix (`%`, `_`, `\`, and `'` for the SQL string).
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | '_' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\'' => escaped.push_str("''"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// What is being done to a column, for validation and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Compare(CompareOp),
    Between,
    InList,
    IsNull {
        negated: bool,
    },
    StartsWith,
    /// A bare column used as a filter.
    Predicate,
}

impl Operation {
    fn name(self) -> String {
        match self {
            Operation::Compare(op) => format!("{} ({})", op.method(), op.sql()),
            Operation::Between => "between".to_owned(),
            Operation::InList => "in_list".to_owned(),
            Operation::IsNull { negated: false } => "is_null".to_owned(),
            Operation::IsNull { negated: true } => "is_not_null".to_owned(),
            Operation::StartsWith => "starts_with".to_owned(),
            Operation::Predicate => "a bare column as a filter".to_owned(),
        }
    }

    /// Checks that this operation applies to a column of `data_type`.
    fn check(self, column: &str, data_type: &DataType) -> Result<(), ExprError> {
        let hint = match self {
            Operation::IsNull { .. } => return Ok(()),
            Operation::Compare(_) | Operation::Between | Operation::InList => {
                if accepts_literals(data_type) {
                    return Ok(());
                }
                "comparisons, between and in_list need a boolean, numeric, temporal, decimal, \
                 string or binary column (or a dictionary of one); this column admits only \
                 is_null and is_not_null"
                    .to_owned()
            }
            Operation::StartsWith => {
                if accepts_literals(data_type) && is_string_or_binary(value_type(data_type)) {
                    return Ok(());
                }
                "starts_with needs a string (Utf8, LargeUtf8, Utf8View) or binary (Binary, \
                 LargeBinary, BinaryView) column, or a dictionary of one; compare other types \
                 with eq, lt, between and the like"
                    .to_owned()
            }
            Operation::Predicate => {
                if data_type == &DataType::Boolean {
                    return Ok(());
                }
                format!(
                    "a column used alone as a filter must be Boolean; compare it instead, e.g. \
                     Expr::col(\"{column}\").eq(..)"
                )
            }
        };
        Err(ExprError::Unsupported {
            column: column.to_owned(),
            operation: self.name(),
            data_type: data_type.clone(),
            hint,
        })
    }
}

fn is_string_or_binary(data_type: &DataType) -> bool {
    use DataType as T;
    matches!(
        data_type,
        T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::LargeBinary | T::BinaryView
    )
}

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

/// A filter bound to a schema: columns resolved, operators checked, literals coerced.
///
/// [`evaluate`](Predicate::evaluate) gives, for each row of a batch, true, false or null; keep
/// the rows that are true.
#[derive(Debug, Clone)]
pub(crate) struct Predicate {
    node: Bound,
}

#[derive(Debug, Clone)]
enum Bound {
    /// A Boolean column used as the filter itself.
    Column(BoundColumn),
    Compare {
        column: BoundColumn,
        op: CompareOp,
        literal: Literal,
    },
    Between {
        column: BoundColumn,
        low: Literal,
        high: Literal,
    },
    InList {
        column: BoundColumn,
        values: Vec<Literal>,
    },
    IsNull {
        column: BoundColumn,
        negated: bool,
    },
    StartsWith {
        column: BoundColumn,
        prefix: Literal,
    },
    /// The operands of a whole chain of `and`s (at least two).
    And(Vec<Bound>),
    /// The operands of a whole chain of `or`s (at least two).
    Or(Vec<Bound>),
    Not(Box<Bound>),
}

/// A column as the schema declared it at binding time.
#[derive(Debug, Clone)]
struct BoundColumn {
    name: String,
    data_type: DataType,
}

/// A literal and its one-row array, coerced to the bound column's type.
#[derive(Debug, Clone)]
struct Literal {
    value: Value,
    array: ArrayRef,
}

/// Binds `expr`. Only and / or / not recurse, through this small function; everything else is
/// bound by [`bind_leaf`], whose large frame is thus never on the recursion (see [`MAX_DEPTH`]).
fn bind_node(expr: &Expr, schema: &Schema) -> Result<Bound, ExprError> {
    match &expr.node {
        Node::And(operands) => Ok(Bound::And(bind_all(operands, schema)?)),
        Node::Or(operands) => Ok(Bound::Or(bind_all(operands, schema)?)),
        Node::Not(inner) => Ok(Bound::Not(Box::new(bind_node(inner, schema)?))),
        _ => bind_leaf(expr, schema),
    }
}

/// Binds a column used as a filter, or an operator on a column.
#[inline(never)]
fn bind_leaf(expr: &Expr, schema: &Schema) -> Result<Bound, ExprError> {
    let bound = match &expr.node {
        Node::Column(_) => Bound::Column(bind_column(expr, Operation::Predicate, schema)?),
        Node::Compare { operand, op, value } => {
            let column = bind_column(operand, Operation::Compare(*op), schema)?;
            let literal = column.literal(value)?;
            Bound::Compare {
                op: *op,
                literal,
                column,
            }
        }
        Node::Between { operand, low, high } => {
            let column = bind_column(operand, Operation::Between, schema)?;
            let (low, high) = (column.literal(low)?, column.literal(high)?);
            Bound::Between { column, low, high }
        }
        Node::InList { operand, values } => {
            let column = bind_column(operand, Operation::InList, schema)?;
            let values = values.iter().map(|value| column.literal(value));
            let values = values.collect::<Result<_, _>>()?;
            Bound::InList { column, values }
        }
        Node::IsNull { operand, negated } => {
            let operation = Operation::IsNull { negated: *negated };
            let column = bind_column(operand, operation, schema)?;
            Bound::IsNull {
                column,
                negated: *negated,
            }
        }
        Node::StartsWith { operand, prefix } => {
            let column = bind_column(operand, Operation::StartsWith, schema)?;
            let prefix = column.literal(prefix)?;
            Bound::StartsWith { column, prefix }
        }
        Node::And(_) | Node::Or(_) | Node::Not(_) => bind_node(expr, schema)?,
    };
    Ok(bound)
}

fn bind_all(operands: &[Expr], schema: &Schema) -> Result<Vec<Bound>, ExprError> {
    operands
        .iter()
        .map(|operand| bind_node(operand, schema))
        .collect()
}

fn name_of(expr: &Expr) -> Option<&str> {
    match &expr.node {
        Node::Column(name) => Some(name),
        _ => None,
    }
}

/// Resolves `operand`, which must be a column of `schema` that `operation` applies to.
fn bind_column(
    operand: &Expr,
    operation: Operation,
    schema: &Schema,
) -> Result<BoundColumn, ExprError> {
    let Some(name) = name_of(operand) else {
        return Err(ExprError::NotAColumn {
            expression: operand.to_string(),
            operation: operation.name(),
        });
    };
    let field = schema
        .field_with_name(name)
        .map_err(|_| ExprError::UnknownColumn {
            column: name.to_owned(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })?;
    operation.check(name, field.data_type())?;
    Ok(BoundColumn {
        name: name.to_owned(),
        data_type: field.data_type().clone(),
    })
}

impl BoundColumn {
    fn literal(&self, value: &Value) -> Result<Literal, ExprError> {
        let array = value.to_array(&self.data_type, &self.name)?;
        Ok(Literal {
            value: value.clone(),
            array,
        })
    }

    /// This column's array in `batch`, checked for `operation` if its type differs from the
    /// bound one.
    fn find<'b>(
        &self,
        batch: &'b RecordBatch,
        operation: Operation,
    ) -> Result<&'b ArrayRef, ExprError> {
        let array = batch
            .column_by_name(&self.name)
            .ok_or_else(|| ExprError::UnknownColumn {
                column: self.name.clone(),
                available: batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            })?;
        if array.data_type() != &self.data_type {
            operation.check(&self.name, array.data_type())?;
        }
        Ok(array)
    }

    /// `literal` as a scalar of `array`'s type: the bound one, or coerced again when the batch's
    /// column type differs from the schema's.
    fn scalar(&self, literal: &Literal, array: &dyn Array) -> Result<Scalar<ArrayRef>, ExprError> {
        let coerced = if array.data_type() == &self.data_type {
            literal.array.clone()
        } else {
            literal.value.to_array(array.data_type(), &self.name)?
        };
        if coerced.len() != 1 {
            return Err(self.evaluation_error(
                "a literal",
                ArrowError::InvalidArgumentError("a literal must hold exactly one row".into()),
            ));
        }
        Ok(Scalar::new(coerced))
    }

    fn evaluation_error(&self, operation: &str, source: ArrowError) -> ExprError {
        ExprError::Evaluation {
            operation: format!("{operation} on column `{}`", self.name),
            source,
        }
    }
}

impl Predicate {
    /// For each row of `batch`: true, false or null (three-valued logic). Columns are found by
    /// name; the batch may hold more columns than the filter uses, in any order.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, ExprError> {
        self.node.evaluate(batch)
    }

    /// The columns the filter reads, sorted and without duplicates.
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut names = BTreeSet::new();
        self.node.collect_columns(&mut names);
        names.into_iter().collect()
    }
}

impl Bound {
    /// Evaluates over `batch`. Only and / or / not recurse, through this small function; the
    /// rest is [`Bound::evaluate_leaf`], whose frame is thus never on the recursion.
    fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, ExprError> {
        match self {
            Bound::And(operands) => evaluate_chain(operands, batch, and_kleene, true),
            Bound::Or(operands) => evaluate_chain(operands, batch, or_kleene, false),
            Bound::Not(inner) => combine(not(&inner.evaluate(batch)?)),
            _ => self.evaluate_leaf(batch),
        }
    }

    /// Evaluates a Boolean column used as a filter, or an operator on a column.
    #[inline(never)]
    fn evaluate_leaf(&self, batch: &RecordBatch) -> Result<BooleanArray, ExprError> {
        match self {
            Bound::Column(column) => evaluate_boolean_column(column, batch),
            Bound::Compare {
                column,
                op,
                literal,
            } => {
                let array = column.find(batch, Operation::Compare(*op))?;
                compare(column, *op, array, literal)
            }
            Bound::Between { column, low, high } => {
                let array = column.find(batch, Operation::Between)?;
                let above = compare(column, CompareOp::Ge, array, low)?;
                let below = compare(column, CompareOp::Le, array, high)?;
                kernel_result(column, "between", and_kleene(&above, &below))
            }
            Bound::InList { column, values } => evaluate_in_list(column, values, batch),
            Bound::IsNull { column, negated } => {
                let array = column.find(batch, Operation::IsNull { negated: *negated })?;
                let result = if *negated {
                    is_not_null(array)
                } else {
                    is_null(array)
                };
                kernel_result(column, "is_null", result)
            }
            Bound::StartsWith { column, prefix } => {
                let array = column.find(batch, Operation::StartsWith)?;
                let prefix = column.scalar(prefix, array.as_ref())?;
                let result = arrow_string::like::starts_with(&array.as_ref(), &prefix);
                kernel_result(column, "starts_with", result)
            }
            Bound::And(_) | Bound::Or(_) | Bound::Not(_) => self.evaluate(batch),
        }
    }

    fn collect_columns(&self, names: &mut BTreeSet<String>) {
        match self {
            Bound::Column(column)
            | Bound::Compare { column, .. }
            | Bound::Between { column, .. }
            | Bound::InList { column, .. }
            | Bound::IsNull { column, .. }
            | Bound::StartsWith { column, .. } => {
                names.insert(column.name.clone());
            }
            Bound::And(operands) | Bound::Or(operands) => {
                for operand in operands {
                    operand.collect_columns(names);
                }
            }
            Bound::Not(inner) => inner.collect_columns(names),
        }
    }
}

fn evaluate_boolean_column(
    column: &BoundColumn,
    batch: &RecordBatch,
) -> Result<BooleanArray, ExprError> {
    let array = column.find(batch, Operation::Predicate)?;
    array
        .as_boolean_opt()
        .cloned()
        .ok_or_else(|| ExprError::Unsupported {
            column: column.name.clone(),
            operation: Operation::Predicate.name(),
            data_type: array.data_type().clone(),
            hint: "a column used alone as a filter must be Boolean".to_owned(),
        })
}

/// Combines the operands' results left to right with `junction` (`and_kleene`/`or_kleene`);
/// no operands give `identity` for every row (chains always have two or more).
fn evaluate_chain(
    operands: &[Bound],
    batch: &RecordBatch,
    junction: fn(&BooleanArray, &BooleanArray) -> Result<BooleanArray, ArrowError>,
    identity: bool,
) -> Result<BooleanArray, ExprError> {
    let mut operands = operands.iter();
    let Some(first) = operands.next() else {
        let rows = batch.num_rows();
        return Ok(BooleanArray::from(vec![identity; rows]));
    };
    let mut result = first.evaluate(batch)?;
    for operand in operands {
        result = combine(junction(&result, &operand.evaluate(batch)?))?;
    }
    Ok(result)
}

fn evaluate_in_list(
    column: &BoundColumn,
    values: &[Literal],
    batch: &RecordBatch,
) -> Result<BooleanArray, ExprError> {
    let array = column.find(batch, Operation::InList)?;
    let mut result = BooleanArray::new(BooleanBuffer::new_unset(array.len()), None);
    for value in values {
        let equal = compare(column, CompareOp::Eq, array, value)?;
        result = kernel_result(column, "in_list", or_kleene(&result, &equal))?;
    }
    Ok(result)
}

fn compare(
    column: &BoundColumn,
    op: CompareOp,
    array: &ArrayRef,
    literal: &Literal,
) -> Result<BooleanArray, ExprError> {
    let scalar = column.scalar(literal, array.as_ref())?;
    let array = array.as_ref();
    let result = match op {
        CompareOp::Eq => cmp::eq(&array, &scalar),
        CompareOp::Ne => cmp::neq(&array, &scalar),
        CompareOp::Lt => cmp::lt(&array, &scalar),
        CompareOp::Le => cmp::lt_eq(&array, &scalar),
        CompareOp::Gt => cmp::gt(&array, &scalar),
        CompareOp::Ge => cmp::gt_eq(&array, &scalar),
    };
    result.map_err(|source| column.evaluation_error(&Operation::Compare(op).name(), source))
}

fn kernel_result(
    column: &BoundColumn,
    operation: &str,
    result: Result<BooleanArray, ArrowError>,
) -> Result<BooleanArray, ExprError> {
    result.map_err(|source| column.evaluation_error(operation, source))
}

/// The result of combining two results of the same batch (equal lengths, so this cannot fail in
/// practice); the error still surfaces rather than panicking.
fn combine(result: Result<BooleanArray, ArrowError>) -> Result<BooleanArray, ExprError> {
    result.map_err(|source| ExprError::Evaluation {
        operation: "and / or / not".to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
