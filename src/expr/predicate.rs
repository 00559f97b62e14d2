//! Binding a filter to a schema, and evaluating the bound predicate with arrow kernels.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar};
use arrow_buffer::BooleanBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

use super::error::ExprError;
use super::{CompareOp, Expr, MAX_DEPTH, Node};
use crate::value::{Value, accepts_literals, value_type};

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

impl Expr {
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

    /// A range of `column` every row the filter keeps lies in, as ranges of `encode`d one-row
    /// literals (`encode` gives `None` for a literal it cannot encode; nothing is then assumed
    /// about it). `encode` must preserve the column's order.
    pub(crate) fn range_of<K: Ord + Clone>(
        &self,
        column: &str,
        encode: &dyn Fn(&ArrayRef) -> Option<K>,
    ) -> ValueRange<K> {
        self.node.range_of(column, encode)
    }

    /// The literal each of `columns` must equal for a row to be kept, when the filter's
    /// top-level conjunction says so for every one of them.
    pub(crate) fn equalities(&self, columns: &[&str]) -> Option<Vec<ArrayRef>> {
        let terms = match &self.node {
            Bound::And(terms) => terms.as_slice(),
            single => std::slice::from_ref(single),
        };
        columns
            .iter()
            .map(|&name| {
                terms.iter().find_map(|term| match term {
                    Bound::Compare {
                        column,
                        op: CompareOp::Eq,
                        literal,
                    } if column.name == name && literal.array.is_valid(0) => {
                        Some(Arc::clone(&literal.array))
                    }
                    _ => None,
                })
            })
            .collect()
    }
}

/// A range of values, by its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueRange<K> {
    pub(crate) lower: std::ops::Bound<K>,
    pub(crate) upper: std::ops::Bound<K>,
}

impl<K: Ord + Clone> ValueRange<K> {
    /// Every value.
    pub(crate) fn all() -> Self {
        Self {
            lower: std::ops::Bound::Unbounded,
            upper: std::ops::Bound::Unbounded,
        }
    }

    /// The values in both ranges.
    fn intersect(self, other: Self) -> Self {
        Self {
            lower: pick(self.lower, other.lower, Side::Lower, Admit::Less),
            upper: pick(self.upper, other.upper, Side::Upper, Admit::Less),
        }
    }

    /// The smallest range holding both ranges.
    fn hull(self, other: Self) -> Self {
        Self {
            lower: pick(self.lower, other.lower, Side::Lower, Admit::More),
            upper: pick(self.upper, other.upper, Side::Upper, Admit::More),
        }
    }
}

/// Which end of a range a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Lower,
    Upper,
}

/// Whether to keep the bound that admits fewer values or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Less,
    More,
}

/// Of two bounds on the same `side` of a range, the one that admits less or more.
fn pick<K: Ord>(
    a: std::ops::Bound<K>,
    b: std::ops::Bound<K>,
    side: Side,
    admit: Admit,
) -> std::ops::Bound<K> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    // Where a bound cuts the values: at its value, and for equal values an excluded lower bound
    // cuts after an included one, an excluded upper bound before.
    fn cut<K>(bound: &std::ops::Bound<K>, side: Side) -> Option<(&K, bool)> {
        match bound {
            Included(value) => Some((value, side == Side::Upper)),
            Excluded(value) => Some((value, side == Side::Lower)),
            Unbounded => None,
        }
    }
    let (Some(cut_a), Some(cut_b)) = (cut(&a, side), cut(&b, side)) else {
        // No bound admits every value on its side.
        let a_unbounded = matches!(a, Unbounded);
        return if a_unbounded == (admit == Admit::More) {
            a
        } else {
            b
        };
    };
    // A lower bound that cuts later admits less; an upper bound that cuts later admits more.
    let a_later = cut_a > cut_b;
    if a_later == ((side == Side::Lower) == (admit == Admit::Less)) {
        a
    } else {
        b
    }
}

impl Bound {
    fn range_of<K: Ord + Clone>(
        &self,
        name: &str,
        encode: &dyn Fn(&ArrayRef) -> Option<K>,
    ) -> ValueRange<K> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        // A null literal matches nothing, but nothing is assumed about it either.
        let key = |literal: &Literal| {
            literal
                .array
                .is_valid(0)
                .then(|| encode(&literal.array))
                .flatten()
        };
        let range = |lower, upper| ValueRange { lower, upper };
        match self {
            Bound::Compare {
                column,
                op,
                literal,
            } if column.name == name => match (op, key(literal)) {
                (CompareOp::Eq, Some(key)) => range(Included(key.clone()), Included(key)),
                (CompareOp::Lt, Some(key)) => range(Unbounded, Excluded(key)),
                (CompareOp::Le, Some(key)) => range(Unbounded, Included(key)),
                (CompareOp::Gt, Some(key)) => range(Excluded(key), Unbounded),
                (CompareOp::Ge, Some(key)) => range(Included(key), Unbounded),
                _ => ValueRange::all(),
            },
            Bound::Between { column, low, high } if column.name == name => {
                match (key(low), key(high)) {
                    (Some(low), Some(high)) => range(Included(low), Included(high)),
                    _ => ValueRange::all(),
                }
            }
            Bound::InList { column, values } if column.name == name => {
                let keys: Option<Vec<K>> = values.iter().map(key).collect();
                match keys
                    .as_deref()
                    .map(|keys| (keys.iter().min(), keys.iter().max()))
                {
                    Some((Some(low), Some(high))) => {
                        range(Included(low.clone()), Included(high.clone()))
                    }
                    _ => ValueRange::all(),
                }
            }
            Bound::And(terms) => terms
                .iter()
                .map(|term| term.range_of(name, encode))
                .fold(ValueRange::all(), ValueRange::intersect),
            Bound::Or(terms) => terms
                .iter()
                .map(|term| term.range_of(name, encode))
                .reduce(ValueRange::hull)
                .unwrap_or_else(ValueRange::all),
            _ => ValueRange::all(),
        }
    }

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
mod tests {
    use std::ops::Bound::{self, Excluded, Included, Unbounded};
    use std::ops::RangeBounds as _;

    use super::ValueRange;

    fn bounds() -> Vec<Bound<u8>> {
        let mut bounds = vec![Unbounded];
        for value in 1..4 {
            bounds.extend([Included(value), Excluded(value)]);
        }
        bounds
    }

    fn ranges() -> Vec<ValueRange<u8>> {
        let mut ranges = Vec::new();
        for lower in bounds() {
            for upper in bounds() {
                ranges.push(ValueRange { lower, upper });
            }
        }
        ranges
    }

    fn holds(range: &ValueRange<u8>, value: u8) -> bool {
        (range.lower, range.upper).contains(&value)
    }

    /// Against every pair of ranges over a few values: the intersection holds exactly the values
    /// of both; the hull holds every value of either, and what lies between them, and no more.
    #[test]
    fn intersections_and_hulls_hold_exactly_the_right_values() {
        for a in ranges() {
            for b in ranges() {
                let both = a.clone().intersect(b.clone());
                let hull = a.clone().hull(b.clone());
                let either: Vec<u8> = (0..5).filter(|&v| holds(&a, v) || holds(&b, v)).collect();
                for value in 0..5 {
                    let context = format!("{a:?} and {b:?} at {value}");
                    assert_eq!(
                        holds(&both, value),
                        holds(&a, value) && holds(&b, value),
                        "intersection of {context}"
                    );
                    let between = either.first().is_some_and(|&first| first <= value)
                        && either.last().is_some_and(|&last| value <= last);
                    if between {
                        assert!(holds(&hull, value), "hull of {context}");
                    }
                }
                // The hull adds nothing beyond the outermost bounds of the two.
                for (side, outer) in [
                    (hull.lower, [a.lower, b.lower]),
                    (hull.upper, [a.upper, b.upper]),
                ] {
                    assert!(outer.contains(&side), "hull of {a:?} and {b:?}: {side:?}");
                }
            }
        }
    }
}
