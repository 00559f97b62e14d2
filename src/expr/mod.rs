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

use std::fmt;

mod display;
mod error;
mod predicate;

pub use error::ExprError;
pub(crate) use predicate::Predicate;

use crate::value::Value;

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
}

/// How deeply a filter may nest (see [`Expr::depth`]: a chain of `and`s or of `or`s counts once).
/// Binding, evaluation and formatting recurse over the nesting, so the depth is checked, without
/// recursion, before they run. Unoptimised builds spend up to ~6 KiB of stack per level, so 64
/// levels take under 0.5 MiB, well inside the 2 MiB threads of tokio and smol; no filter written
/// by hand, nor a long chain built in a loop (which stays flat), comes near the limit.
pub(super) const MAX_DEPTH: usize = 64;

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

#[cfg(test)]
mod tests;
