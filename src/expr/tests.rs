//! Tests of values, keys and filter expressions.
//!
//! The core check is model-based: every filter is also evaluated row by row with plain Rust
//! over the same data (`model_eval`), including three-valued logic, and the two must agree.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, DictionaryArray, Float64Array,
    Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
    TimestampMicrosecondArray, UInt64Array, new_null_array,
};
use arrow_schema::{DataType, Field, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit};

use super::{CompareOp, Expr, ExprError, Node};
use crate::value::{Key, Value};

// ---------------------------------------------------------------------------------------------
// A tiny seeded RNG (xorshift64*), so randomized tests need no dependency and replay exactly.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// The model: columns as plain Rust cells, and a row-by-row evaluator.

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// What kind of data a test column holds, which decides its cells and its literals.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    UInt,
    Float,
    Str,
    Bytes,
    Bool,
    Temporal,
}

struct ModelColumn {
    name: &'static str,
    data_type: DataType,
    cells: Vec<Option<Cell>>,
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The column types the model covers, with their names.
fn model_types() -> Vec<(&'static str, DataType)> {
    vec![
        ("i64", DataType::Int64),
        ("u64", DataType::UInt64),
        ("f64", DataType::Float64),
        ("s", DataType::Utf8),
        ("ls", DataType::LargeUtf8),
        ("sv", DataType::Utf8View),
        ("bin", DataType::Binary),
        ("flag", DataType::Boolean),
        ("flag2", DataType::Boolean),
        ("day", DataType::Date32),
        ("ts", timestamp_type()),
        ("dict", dictionary_type()),
    ]
}

fn kind_of(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Int64 => Kind::Int,
        DataType::UInt64 => Kind::UInt,
        DataType::Float64 => Kind::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Str,
        DataType::Dictionary(_, _) => Kind::Str,
        DataType::Binary => Kind::Bytes,
        DataType::Boolean => Kind::Bool,
        DataType::Date32 | DataType::Timestamp(_, _) => Kind::Temporal,
        other => panic!("no model kind for {other}"),
    }
}

const STRINGS: &[&str] = &["", "a", "ab", "abc", "b", "ba", "a%", "é"];
const BYTES: &[&[u8]] = &[b"", b"\x00", b"\x00\x01", b"\x01", b"\xff", b"\x00\xff"];
const FLOATS: &[f64] = &[
    f64::NAN,
    f64::NEG_INFINITY,
    -1.5,
    -0.0,
    0.0,
    0.5,
    1.0,
    2.0,
    f64::INFINITY,
];

fn random_cell(kind: Kind, rng: &mut Rng) -> Cell {
    match kind {
        Kind::Int | Kind::Temporal => Cell::Int(rng.below(9) as i128 - 4),
        Kind::UInt => Cell::Int(rng.below(6) as i128),
        Kind::Float => Cell::Float(*rng.pick(FLOATS)),
        Kind::Str => Cell::Str(rng.pick(STRINGS).to_string()),
        Kind::Bytes => Cell::Bytes(rng.pick(BYTES).to_vec()),
        Kind::Bool => Cell::Bool(rng.percent(50)),
    }
}

/// A table with every model type; row 0 is null in every column, so nulls are always present.
fn random_table(rng: &mut Rng, rows: usize) -> Vec<ModelColumn> {
    model_types()
        .into_iter()
        .map(|(name, data_type)| {
            let kind = kind_of(&data_type);
            let cells = (0..rows)
                .map(|row| (row > 0 && !rng.percent(20)).then(|| random_cell(kind, rng)))
                .collect();
            ModelColumn {
                name,
                data_type,
                cells,
            }
        })
        .collect()
}

fn ints(cells: &[Option<Cell>]) -> Vec<Option<i128>> {
    cells
        .iter()
        .map(|c| match c {
            Some(Cell::Int(v)) => Some(*v),
            _ => None,
        })
        .collect()
}

fn strs(cells: &[Option<Cell>]) -> Vec<Option<&str>> {
    cells
        .iter()
        .map(|c| match c {
            Some(Cell::Str(v)) => Some(v.as_str()),
            _ => None,
        })
        .collect()
}

fn to_arrow(column: &ModelColumn) -> ArrayRef {
    let cells = &column.cells;
    let i64s = || ints(cells).into_iter().map(|v| v.map(|v| v as i64));
    match &column.data_type {
        DataType::Int64 => Arc::new(Int64Array::from_iter(i64s())),
        DataType::UInt64 => Arc::new(UInt64Array::from_iter(i64s().map(|v| v.map(|v| v as u64)))),
        DataType::Date32 => Arc::new(Date32Array::from_iter(i64s().map(|v| v.map(|v| v as i32)))),
        DataType::Timestamp(_, _) => {
            Arc::new(TimestampMicrosecondArray::from_iter(i64s()).with_timezone("UTC"))
        }
        DataType::Float64 => Arc::new(Float64Array::from_iter(cells.iter().map(|c| match c {
            Some(Cell::Float(v)) => Some(*v),
            _ => None,
        }))),
        DataType::Utf8 => Arc::new(StringArray::from(strs(cells))),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(strs(cells))),
        DataType::Utf8View => Arc::new(StringViewArray::from(strs(cells))),
        DataType::Dictionary(_, _) => {
            Arc::new(DictionaryArray::<Int32Type>::from_iter(strs(cells)))
        }
        DataType::Binary => Arc::new(BinaryArray::from_iter(cells.iter().map(|c| match c {
            Some(Cell::Bytes(v)) => Some(v.as_slice()),
            _ => None,
        }))),
        DataType::Boolean => Arc::new(BooleanArray::from_iter(cells.iter().map(|c| match c {
            Some(Cell::Bool(v)) => Some(*v),
            _ => None,
        }))),
        other => panic!("no model array for {other}"),
    }
}

fn schema_of(table: &[ModelColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .iter()
            .map(|c| Field::new(c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The table as a batch, its columns in the order `order` gives (a permutation of indexes).
fn batch_of(table: &[ModelColumn], order: &[usize]) -> RecordBatch {
    let fields: Vec<Field> = order
        .iter()
        .map(|&i| Field::new(table[i].name, table[i].data_type.clone(), true))
        .collect();
    let arrays = order.iter().map(|&i| to_arrow(&table[i])).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("model batch is valid")
}

/// A literal as the model cell a column of `data_type` compares it with.
fn literal_cell(value: &Value, data_type: &DataType) -> Option<Cell> {
    let float_column = data_type == &DataType::Float64;
    match value {
        Value::Null => None,
        Value::Boolean(b) => Some(Cell::Bool(*b)),
        Value::Int64(v) if float_column => Some(Cell::Float(*v as f64)),
        Value::UInt64(v) if float_column => Some(Cell::Float(*v as f64)),
        Value::Int64(v) => Some(Cell::Int(i128::from(*v))),
        Value::UInt64(v) => Some(Cell::Int(i128::from(*v))),
        Value::Float64(v) => Some(Cell::Float(*v)),
        Value::Utf8(s) => Some(Cell::Str(s.clone())),
        Value::Binary(b) => Some(Cell::Bytes(b.clone())),
    }
}

fn cell_order(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
        // arrow compares floats by IEEE 754 totalOrder.
        (Cell::Float(x), Cell::Float(y)) => x.total_cmp(y),
        (Cell::Str(x), Cell::Str(y)) => x.cmp(y),
        (Cell::Bytes(x), Cell::Bytes(y)) => x.cmp(y),
        (Cell::Bool(x), Cell::Bool(y)) => x.cmp(y),
        (a, b) => panic!("the model compares unlike cells {a:?} and {b:?}"),
    }
}

fn kleene_and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn kleene_or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn model_compare(op: CompareOp, cell: Option<&Cell>, literal: Option<&Cell>) -> Option<bool> {
    let ordering = cell_order(cell?, literal?);
    Some(match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    })
}

fn model_starts_with(cell: Option<&Cell>, prefix: Option<&Cell>) -> Option<bool> {
    match (cell?, prefix?) {
        (Cell::Str(s), Cell::Str(p)) => Some(s.starts_with(p.as_str())),
        (Cell::Bytes(s), Cell::Bytes(p)) => Some(s.starts_with(p)),
        (a, b) => panic!("the model cannot apply starts_with to {a:?} and {b:?}"),
    }
}

fn model_column<'t>(table: &'t [ModelColumn], expr: &Expr) -> &'t ModelColumn {
    let Node::Column(name) = &expr.node else {
        panic!("the model only evaluates operators on columns");
    };
    table
        .iter()
        .find(|c| c.name == name)
        .expect("the model knows the column")
}

/// The filter's value for one row, computed with plain Rust.
fn model_eval(expr: &Expr, table: &[ModelColumn], row: usize) -> Option<bool> {
    let cell_of = |operand: &Expr| {
        let column = model_column(table, operand);
        (column.cells[row].as_ref(), &column.data_type)
    };
    match &expr.node {
        Node::Column(_) => match cell_of(expr).0? {
            Cell::Bool(b) => Some(*b),
            other => panic!("bare column holds {other:?}"),
        },
        Node::Compare { operand, op, value } => {
            let (cell, data_type) = cell_of(operand);
            model_compare(*op, cell, literal_cell(value, data_type).as_ref())
        }
        Node::Between { operand, low, high } => {
            let (cell, data_type) = cell_of(operand);
            let low = model_compare(CompareOp::Ge, cell, literal_cell(low, data_type).as_ref());
            let high = model_compare(CompareOp::Le, cell, literal_cell(high, data_type).as_ref());
            kleene_and(low, high)
        }
        Node::InList { operand, values } => {
            let (cell, data_type) = cell_of(operand);
            // Kleene OR over the equalities; a null does not stop the search for a true.
            let mut any = Some(false);
            for value in values {
                let literal = literal_cell(value, data_type);
                any = kleene_or(any, model_compare(CompareOp::Eq, cell, literal.as_ref()));
            }
            any
        }
        Node::IsNull { operand, negated } => Some(cell_of(operand).0.is_none() != *negated),
        Node::StartsWith { operand, prefix } => {
            let (cell, data_type) = cell_of(operand);
            model_starts_with(cell, literal_cell(prefix, data_type).as_ref())
        }
        Node::And(operands) => operands
            .iter()
            .map(|operand| model_eval(operand, table, row))
            .fold(Some(true), kleene_and),
        Node::Or(operands) => operands
            .iter()
            .map(|operand| model_eval(operand, table, row))
            .fold(Some(false), kleene_or),
        Node::Not(inner) => model_eval(inner, table, row).map(|b| !b),
    }
}

fn as_options(result: &BooleanArray) -> Vec<Option<bool>> {
    result.iter().collect()
}

/// Binds `expr` to the table's schema, evaluates it on `batch` and checks every row against
/// the model. `context` is printed on failure (e.g. the seed).
fn check_against_model(expr: &Expr, table: &[ModelColumn], batch: &RecordBatch, context: &str) {
    let predicate = expr
        .bind(&schema_of(table))
        .unwrap_or_else(|e| panic!("{context}: `{expr}` should bind: {e}"));
    let result = predicate
        .evaluate(batch)
        .unwrap_or_else(|e| panic!("{context}: `{expr}` should evaluate: {e}"));
    let rows = batch.num_rows();
    let expected: Vec<Option<bool>> = (0..rows).map(|row| model_eval(expr, table, row)).collect();
    assert_eq!(result.len(), rows, "{context}: `{expr}`: result length");
    assert_eq!(as_options(&result), expected, "{context}: `{expr}`");
}

// ---------------------------------------------------------------------------------------------
// Literal pools, per kind, used by both the exhaustive and the randomized tests.

fn literal_pool(kind: Kind) -> Vec<Value> {
    let mut pool = vec![Value::Null];
    match kind {
        Kind::Int | Kind::Temporal => {
            pool.extend((-4..=4).map(Value::from));
            pool.extend([
                Value::from(3u64),
                Value::from(i64::MIN),
                Value::from(i64::MAX),
            ]);
        }
        Kind::UInt => {
            pool.extend((0u64..=5).map(Value::from));
            pool.extend([Value::from(2i64), Value::from(u64::MAX)]);
        }
        Kind::Float => {
            pool.extend(FLOATS.iter().map(|&f| Value::from(f)));
            pool.extend([Value::from(1i64), Value::from(2u64), Value::from(0.5f32)]);
        }
        Kind::Str => pool.extend(STRINGS.iter().map(|&s| Value::from(s))),
        Kind::Bytes => pool.extend(BYTES.iter().map(|&b| Value::from(b))),
        Kind::Bool => pool.extend([Value::from(true), Value::from(false)]),
    }
    if kind == Kind::Temporal {
        // Temporal columns of these tests hold values near zero; i64 extremes overflow Date32.
        pool.retain(|v| !matches!(v, Value::Int64(i64::MIN | i64::MAX)));
    }
    pool
}

/// Every single-column operator on `column` with `literal` (and a second literal for between
/// and in_list).
fn operators_on(column: &str, kind: Kind, literal: &Value, other: &Value) -> Vec<Expr> {
    let col = || Expr::col(column);
    let mut exprs = vec![
        col().eq(literal.clone()),
        col().ne(literal.clone()),
        col().lt(literal.clone()),
        col().le(literal.clone()),
        col().gt(literal.clone()),
        col().ge(literal.clone()),
        col().between(literal.clone(), other.clone()),
        col().in_list([literal.clone(), other.clone()]),
        col().in_list([literal.clone()]),
        col().is_null(),
        col().is_not_null(),
    ];
    if matches!(kind, Kind::Str | Kind::Bytes) {
        exprs.push(col().starts_with(literal.clone()));
    }
    if kind == Kind::Bool {
        exprs.push(col());
    }
    exprs
}

#[test]
fn every_operator_on_every_column_type_matches_model() {
    let mut rng = Rng::new(7);
    let table = random_table(&mut rng, 40);
    let order: Vec<usize> = (0..table.len()).collect();
    let batch = batch_of(&table, &order);
    let mut checked = 0;
    for column in &table {
        let kind = kind_of(&column.data_type);
        let pool = literal_pool(kind);
        for literal in &pool {
            let other = rng.pick(&pool).clone();
            for expr in operators_on(column.name, kind, literal, &other) {
                check_against_model(&expr, &table, &batch, "exhaustive");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} filters were checked");
}

// ---------------------------------------------------------------------------------------------
// Randomized: random expression trees over random batches, against the model.

fn random_leaf(table: &[ModelColumn], rng: &mut Rng) -> Expr {
    let column = rng.pick(table);
    let kind = kind_of(&column.data_type);
    let pool = literal_pool(kind);
    let lit = rng_value(&pool);
    let col = Expr::col(column.name);
    match rng.below(13) {
        0 => col.eq(lit(rng)),
        1 => col.ne(lit(rng)),
        2 => col.lt(lit(rng)),
        3 => col.le(lit(rng)),
        4 => col.gt(lit(rng)),
        5 => col.ge(lit(rng)),
        6 => col.between(lit(rng), lit(rng)),
        7 => {
            let n = rng.below(4);
            col.in_list((0..n).map(|_| lit(rng)).collect::<Vec<_>>())
        }
        8 => col.is_null(),
        9 => col.is_not_null(),
        10 if matches!(kind, Kind::Str | Kind::Bytes) => col.starts_with(lit(rng)),
        11 if kind == Kind::Bool => col,
        _ => col.eq(lit(rng)),
    }
}

/// A closure that draws a literal from `pool`, mostly non-null.
fn rng_value(pool: &[Value]) -> impl Fn(&mut Rng) -> Value + '_ {
    move |rng: &mut Rng| {
        if rng.percent(5) {
            Value::Null
        } else {
            rng.pick(&pool[1..]).clone()
        }
    }
}

fn random_expr(table: &[ModelColumn], rng: &mut Rng, depth: usize) -> Expr {
    if depth == 0 || rng.percent(30) {
        return random_leaf(table, rng);
    }
    match rng.below(4) {
        0 => random_expr(table, rng, depth - 1).and(random_expr(table, rng, depth - 1)),
        1 => random_expr(table, rng, depth - 1).or(random_expr(table, rng, depth - 1)),
        2 => random_expr(table, rng, depth - 1).not(),
        _ => !random_expr(table, rng, depth - 1),
    }
}

fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// The seed to replay from `DAMSELFLY_EXPR_SEED`, if set.
// Tests may read the environment; the engine may not (clippy.toml bans it there).
#[allow(clippy::disallowed_methods)]
fn replay_seed() -> Option<u64> {
    std::env::var("DAMSELFLY_EXPR_SEED").ok()?.parse().ok()
}

#[test]
fn random_expressions_match_model() {
    let seeds: Vec<u64> = match replay_seed() {
        Some(seed) => vec![seed],
        None => (1..=400).collect(),
    };
    for seed in seeds {
        let context = format!(
            "seed {seed} (replay: DAMSELFLY_EXPR_SEED={seed} cargo test -p damselfly --lib random_expressions_match_model)"
        );
        let mut rng = Rng::new(seed);
        let rows = rng.below(50);
        let table = random_table(&mut rng, rows.max(1));
        let order = shuffled(&mut rng, table.len());
        let batch = batch_of(&table, &order);
        for _ in 0..8 {
            let expr = random_expr(&table, &mut rng, 4);
            check_against_model(&expr, &table, &batch, &context);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding never panics: arbitrary trees over a schema with exotic types.

fn exotic_schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Int64, true),
        ])),
        false,
    );
    let fields = vec![
        Field::new("list", DataType::List(item), true),
        Field::new(
            "record",
            DataType::Struct(Fields::from(vec![Field::new("x", DataType::Int64, true)])),
            true,
        ),
        Field::new("map", DataType::Map(Arc::new(entries), false), true),
        Field::new("interval", DataType::Interval(IntervalUnit::DayTime), true),
        Field::new("nothing", DataType::Null, true),
        Field::new("fixed", DataType::FixedSizeBinary(2), true),
        Field::new("money", DataType::Decimal128(10, 2), true),
        Field::new("half", DataType::Float16, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("i8", DataType::Int8, true),
        Field::new("u8", DataType::UInt8, true),
        Field::new("time", DataType::Time32(TimeUnit::Second), true),
        Field::new("bad_time", DataType::Time32(TimeUnit::Nanosecond), true),
        Field::new("duration", DataType::Duration(TimeUnit::Millisecond), true),
        Field::new("bin_view", DataType::BinaryView, true),
        Field::new("large_bin", DataType::LargeBinary, true),
        Field::new(
            "dict_i64",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Int64)),
            true,
        ),
        Field::new("s", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("i64", DataType::Int64, true),
    ];
    Arc::new(Schema::new(fields))
}

fn any_value(rng: &mut Rng) -> Value {
    let values = [
        Value::Null,
        Value::from(true),
        Value::from(0i64),
        Value::from(-1i64),
        Value::from(300u64),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::from(0.5),
        Value::from(f64::NAN),
        Value::from(1e300),
        Value::from("ab"),
        Value::from(vec![1u8, 2]),
        Value::from(vec![1u8, 2, 3]),
    ];
    rng.pick(&values).clone()
}

fn any_expr(names: &[String], rng: &mut Rng, depth: usize) -> Expr {
    let operand = if depth > 0 && rng.percent(10) {
        // An operator applied to something that is not a column.
        any_expr(names, rng, depth - 1)
    } else {
        Expr::col(rng.pick(names).as_str())
    };
    if depth > 0 && rng.percent(40) {
        let other = any_expr(names, rng, depth - 1);
        return match rng.below(3) {
            0 => operand.and(other),
            1 => operand.or(other),
            _ => other.not(),
        };
    }
    match rng.below(10) {
        0 => operand.eq(any_value(rng)),
        1 => operand.lt(any_value(rng)),
        2 => operand.ge(any_value(rng)),
        3 => operand.between(any_value(rng), any_value(rng)),
        4 => operand.in_list([any_value(rng), any_value(rng)]),
        5 => operand.is_null(),
        6 => operand.is_not_null(),
        7 => operand.starts_with(any_value(rng)),
        8 => operand,
        _ => operand.ne(any_value(rng)),
    }
}

/// Three rows for a column of the exotic schema: values and a null for the types that take
/// literals (so the kernels see real data), all nulls for the rest.
fn exotic_data(field: &Field) -> ArrayRef {
    use arrow_array::types::{ArrowPrimitiveType, Float16Type};
    use arrow_array::{
        BinaryViewArray, Decimal128Array, DurationMillisecondArray, FixedSizeBinaryArray,
        Float16Array, Float32Array, Int8Array, LargeBinaryArray, Time32SecondArray, UInt8Array,
    };
    let f16 = <Float16Type as ArrowPrimitiveType>::Native::from_f32;
    match field.name().as_str() {
        "fixed" => Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                [Some(vec![1u8, 2]), None, Some(vec![0, 0])].into_iter(),
                2,
            )
            .expect("valid"),
        ),
        "money" => Arc::new(
            Decimal128Array::from(vec![Some(150), None, Some(-1)])
                .with_precision_and_scale(10, 2)
                .expect("valid"),
        ),
        "half" => Arc::new(Float16Array::from(vec![
            Some(f16(0.5)),
            None,
            Some(f16(-2.0)),
        ])),
        "f32" => Arc::new(Float32Array::from(vec![Some(0.5), None, Some(f32::NAN)])),
        "i8" => Arc::new(Int8Array::from(vec![Some(-1), None, Some(127)])),
        "u8" => Arc::new(UInt8Array::from(vec![Some(0), None, Some(255)])),
        "time" => Arc::new(Time32SecondArray::from(vec![Some(0), None, Some(3600)])),
        "duration" => Arc::new(DurationMillisecondArray::from(vec![
            Some(1),
            None,
            Some(-1),
        ])),
        "bin_view" => Arc::new(BinaryViewArray::from(vec![
            Some(&b"ab"[..]),
            None,
            Some(b""),
        ])),
        "large_bin" => Arc::new(LargeBinaryArray::from(vec![Some(&b"\x01"[..]), None, None])),
        "dict_i64" => Arc::new(
            DictionaryArray::try_new(
                Int8Array::from(vec![Some(0), None, Some(1)]),
                Arc::new(Int64Array::from(vec![0, -1])),
            )
            .expect("valid"),
        ),
        "s" => Arc::new(StringArray::from(vec![Some("ab"), None, Some("")])),
        "flag" => Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        "i64" => Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(0)])),
        _ => new_null_array(field.data_type(), 3),
    }
}

#[test]
fn arbitrary_expressions_bind_or_fail_cleanly_and_evaluate_without_panic() {
    let schema = exotic_schema();
    let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    names.push("missing".to_owned());
    // `bad_time` has a malformed type (Time32(Nanosecond)) that arrow cannot build an array
    // of, so the batch lacks it; filters on it must bind or fail cleanly all the same.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != "bad_time")
        .map(|f| f.as_ref().clone())
        .collect();
    let arrays = fields.iter().map(exotic_data).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("valid");
    let (mut bound, mut failed) = (0, 0);
    for seed in 1..=2000 {
        let mut rng = Rng::new(seed);
        let expr = any_expr(&names, &mut rng, 3);
        match expr.bind(&schema) {
            Ok(predicate) => {
                bound += 1;
                match predicate.evaluate(&batch) {
                    Ok(result) => assert_eq!(result.len(), 3, "seed {seed}: `{expr}`"),
                    Err(ExprError::UnknownColumn { column, .. }) if column == "bad_time" => {}
                    Err(e) => panic!("seed {seed}: `{expr}`: {e}"),
                }
            }
            Err(error) => {
                failed += 1;
                assert!(!error.to_string().is_empty(), "seed {seed}: `{expr}`");
            }
        }
    }
    assert!(
        bound > 100 && failed > 100,
        "bound {bound}, failed {failed}"
    );
}

// ---------------------------------------------------------------------------------------------
// Three-valued logic.

fn bool_batch(columns: &[(&str, Vec<Option<bool>>)]) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, _)| Field::new(*name, DataType::Boolean, true))
        .collect();
    let arrays = columns
        .iter()
        .map(|(_, values)| Arc::new(BooleanArray::from(values.clone())) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("valid batch")
}

fn run(expr: &Expr, batch: &RecordBatch) -> Vec<Option<bool>> {
    let predicate = expr.bind(&batch.schema()).expect("binds");
    as_options(&predicate.evaluate(batch).expect("evaluates"))
}

#[test]
fn and_or_not_follow_kleene_truth_tables() {
    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const N: Option<bool> = None;
    let a = vec![T, T, T, F, F, F, N, N, N];
    let b = vec![T, F, N, T, F, N, T, F, N];
    let batch = bool_batch(&[("a", a), ("b", b)]);
    let and = run(&Expr::col("a").and(Expr::col("b")), &batch);
    assert_eq!(and, vec![T, F, N, F, F, F, N, F, N]);
    let or = run(&Expr::col("a").or(Expr::col("b")), &batch);
    assert_eq!(or, vec![T, T, T, T, F, N, T, N, N]);
    let not = run(&Expr::col("a").not(), &batch);
    assert_eq!(not, vec![F, F, F, T, T, T, N, N, N]);
    assert_eq!(run(&!Expr::col("a"), &batch), not);
}

#[test]
fn bare_boolean_column_is_the_filter_itself() {
    let batch = bool_batch(&[("flag", vec![Some(true), Some(false), None])]);
    assert_eq!(
        run(&Expr::col("flag"), &batch),
        vec![Some(true), Some(false), None]
    );
    assert_eq!(
        run(&Expr::col("flag").is_null(), &batch),
        vec![Some(false), Some(false), Some(true)]
    );
    assert_eq!(
        run(&Expr::col("flag").eq(false), &batch),
        vec![Some(false), Some(true), None]
    );
}

fn int_batch(values: Vec<Option<i64>>) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
    let array = Arc::new(Int64Array::from(values)) as ArrayRef;
    RecordBatch::try_new(Arc::new(schema), vec![array]).expect("valid batch")
}

#[test]
fn comparisons_with_null_are_null() {
    let batch = int_batch(vec![Some(1), None, Some(3)]);
    assert_eq!(
        run(&Expr::col("x").gt(2), &batch),
        vec![Some(false), None, Some(true)]
    );
    let none: Option<i64> = None;
    assert_eq!(
        run(&Expr::col("x").eq(none), &batch),
        vec![None, None, None]
    );
    assert_eq!(
        run(&Expr::col("x").ne(Value::Null), &batch),
        vec![None, None, None]
    );
}

#[test]
fn in_list_and_between() {
    let batch = int_batch(vec![Some(1), Some(2), Some(3), Some(4), None]);
    let (t, f) = (Some(true), Some(false));
    let x = || Expr::col("x");
    assert_eq!(run(&x().in_list([1, 3]), &batch), vec![t, f, t, f, None]);
    assert_eq!(
        run(&x().in_list(vec![2i64]), &batch),
        vec![f, t, f, f, None]
    );
    // A NULL in the list: rows that match nothing else are unknown.
    let with_null = [Value::from(1), Value::Null];
    assert_eq!(
        run(&x().in_list(with_null), &batch),
        vec![t, None, None, None, None]
    );
    // The empty list is false for every row, null rows included (OR over nothing).
    let empty: [i64; 0] = [];
    assert_eq!(run(&x().in_list(empty), &batch), vec![f, f, f, f, f]);
    assert_eq!(run(&x().in_list(empty).not(), &batch), vec![t, t, t, t, t]);
    // between is inclusive at both ends, and empty when low > high.
    assert_eq!(run(&x().between(2, 3), &batch), vec![f, t, t, f, None]);
    assert_eq!(run(&x().between(3, 2), &batch), vec![f, f, f, f, None]);
    assert_eq!(
        run(&x().between(Value::Null, 2), &batch),
        vec![None, None, f, f, None]
    );
}

#[test]
fn starts_with_on_strings_and_binary() {
    let schema = Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::LargeBinary, true),
    ]);
    let strings = StringArray::from(vec![Some("apple"), Some("a%b"), Some("banana"), None]);
    let bytes: Vec<Option<&[u8]>> = vec![Some(b"\x01\x02"), Some(b"\x01"), Some(b""), None];
    let bytes = arrow_array::LargeBinaryArray::from(bytes);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(strings), Arc::new(bytes)])
        .expect("valid batch");
    let (t, f) = (Some(true), Some(false));
    assert_eq!(
        run(&Expr::col("s").starts_with("a"), &batch),
        vec![t, t, f, None]
    );
    // % and _ are plain characters in a prefix, not patterns.
    assert_eq!(
        run(&Expr::col("s").starts_with("a%"), &batch),
        vec![f, t, f, None]
    );
    assert_eq!(
        run(&Expr::col("s").starts_with(""), &batch),
        vec![t, t, t, None]
    );
    let prefix: &[u8] = b"\x01";
    assert_eq!(
        run(&Expr::col("b").starts_with(prefix), &batch),
        vec![t, t, f, None]
    );
    assert_eq!(
        run(&Expr::col("b").starts_with(b"\x01\x02"), &batch),
        vec![t, f, f, None]
    );
}

#[test]
fn dictionary_string_column_compares_with_its_decoded_values() {
    let dictionary: DictionaryArray<Int32Type> =
        vec![Some("b"), Some("a"), None, Some("b"), Some("c")]
            .into_iter()
            .collect();
    let schema = Schema::new(vec![Field::new("tag", dictionary_type(), true)]);
    let batch =
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(dictionary)]).expect("valid batch");
    let (t, f) = (Some(true), Some(false));
    let tag = || Expr::col("tag");
    assert_eq!(run(&tag().eq("b"), &batch), vec![t, f, None, t, f]);
    assert_eq!(run(&tag().lt("b"), &batch), vec![f, t, None, f, f]);
    assert_eq!(
        run(&tag().in_list(["a", "c"]), &batch),
        vec![f, t, None, f, t]
    );
    assert_eq!(run(&tag().starts_with("c"), &batch), vec![f, f, None, f, t]);
    assert_eq!(run(&tag().is_null(), &batch), vec![f, f, t, f, f]);
    let error = tag()
        .eq(1)
        .bind(&batch.schema())
        .expect_err("integer on a string dictionary");
    assert!(matches!(error, ExprError::LiteralType { .. }), "{error}");
}

#[test]
fn float_columns_use_total_order() {
    let schema = Schema::new(vec![Field::new("f", DataType::Float64, true)]);
    let values = Float64Array::from(vec![Some(f64::NAN), Some(-0.0), Some(0.0), Some(1.0), None]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(values)]).expect("batch");
    let (t, f) = (Some(true), Some(false));
    assert_eq!(
        run(&Expr::col("f").eq(f64::NAN), &batch),
        vec![t, f, f, f, None]
    );
    assert_eq!(
        run(&Expr::col("f").gt(f64::INFINITY), &batch),
        vec![t, f, f, f, None]
    );
    assert_eq!(run(&Expr::col("f").lt(0.0), &batch), vec![f, t, f, f, None]);
    assert_eq!(run(&Expr::col("f").eq(1), &batch), vec![f, f, f, t, None]);
}

// ---------------------------------------------------------------------------------------------
// Evaluation over batches that differ from the bound schema.

fn one_column_batch(name: &str, array: ArrayRef) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(name, array.data_type().clone(), true)]);
    RecordBatch::try_new(Arc::new(schema), vec![array]).expect("valid batch")
}

#[test]
fn evaluation_finds_columns_by_name_in_any_order() {
    let mut rng = Rng::new(11);
    let table = random_table(&mut rng, 20);
    let expr = Expr::col("s").eq("a").or(Expr::col("i64").lt(0));
    let predicate = expr.bind(&schema_of(&table)).expect("binds");
    assert_eq!(predicate.columns(), vec!["i64".to_owned(), "s".to_owned()]);
    let forward: Vec<usize> = (0..table.len()).collect();
    let backward: Vec<usize> = forward.iter().rev().copied().collect();
    let a = predicate
        .evaluate(&batch_of(&table, &forward))
        .expect("evaluates");
    let b = predicate
        .evaluate(&batch_of(&table, &backward))
        .expect("evaluates");
    assert_eq!(a, b);
    // Only the referenced columns are needed.
    let s = table.iter().position(|c| c.name == "s").expect("s");
    let i = table.iter().position(|c| c.name == "i64").expect("i64");
    let c = predicate
        .evaluate(&batch_of(&table, &[i, s]))
        .expect("evaluates");
    assert_eq!(a, c);
}

#[test]
fn evaluation_reports_a_missing_column() {
    let schema = Schema::new(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Int64, true),
    ]);
    let predicate = Expr::col("y").gt(1).bind(&schema).expect("binds");
    let error = predicate
        .evaluate(&int_batch(vec![Some(1)]))
        .expect_err("y is missing");
    match &error {
        ExprError::UnknownColumn { column, available } => {
            assert_eq!(column, "y");
            assert_eq!(available, &vec!["x".to_owned()]);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().contains("no column named `y`"), "{error}");
}

#[test]
fn evaluation_recoerces_literals_when_the_batch_type_differs() {
    let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
    let predicate = Expr::col("s")
        .starts_with("a")
        .bind(&schema)
        .expect("binds");
    let values = vec![Some("ab"), None, Some("b")];
    let expected = vec![Some(true), None, Some(false)];
    let view = one_column_batch("s", Arc::new(StringViewArray::from(values.clone())));
    assert_eq!(
        as_options(&predicate.evaluate(&view).expect("view")),
        expected
    );
    let dictionary: DictionaryArray<Int32Type> = values.clone().into_iter().collect();
    let dictionary = one_column_batch("s", Arc::new(dictionary));
    assert_eq!(
        as_options(&predicate.evaluate(&dictionary).expect("dict")),
        expected
    );
    let large = one_column_batch("s", Arc::new(LargeStringArray::from(values)));
    assert_eq!(
        as_options(&predicate.evaluate(&large).expect("large")),
        expected
    );
    // A batch whose column no longer fits the literal is an error, not a panic.
    let ints = one_column_batch("s", Arc::new(Int64Array::from(vec![1])));
    let error = predicate.evaluate(&ints).expect_err("starts_with on Int64");
    assert!(matches!(error, ExprError::Unsupported { .. }), "{error}");
    let eq = Expr::col("s").eq("a").bind(&schema).expect("binds");
    let error = eq.evaluate(&ints).expect_err("string literal on Int64");
    assert!(matches!(error, ExprError::LiteralType { .. }), "{error}");
    let flag = Schema::new(vec![Field::new("s", DataType::Boolean, true)]);
    let bare = Expr::col("s").bind(&flag).expect("binds");
    let error = bare.evaluate(&ints).expect_err("bare Int64 column");
    assert!(matches!(error, ExprError::Unsupported { .. }), "{error}");
}

#[test]
fn columns_are_sorted_and_deduplicated() {
    let schema = Schema::new(vec![
        Field::new("b", DataType::Int64, true),
        Field::new("a", DataType::Int64, true),
        Field::new("c", DataType::Boolean, true),
    ]);
    let expr = Expr::col("b")
        .gt(1)
        .and(Expr::col("a").is_null())
        .or(Expr::col("b").lt(0).not())
        .or(Expr::col("c"));
    let predicate = expr.bind(&schema).expect("binds");
    assert_eq!(predicate.columns(), vec!["a", "b", "c"]);
}

// ---------------------------------------------------------------------------------------------
// Binding errors, one per variant, with their messages.

fn bind_error(expr: Expr) -> ExprError {
    expr.bind(&exotic_schema())
        .expect_err("binding should fail")
}

#[test]
fn unknown_column_lists_the_schema_and_suggests_case() {
    let error = bind_error(Expr::col("S").eq("a"));
    assert!(matches!(&error, ExprError::UnknownColumn { column, .. } if column == "S"));
    let message = error.to_string();
    assert!(message.contains("no column named `S`"), "{message}");
    assert!(message.contains("list, record, map"), "{message}");
    assert!(message.contains("did you mean `s`?"), "{message}");
    // Found deep inside a tree too.
    let error = bind_error(
        Expr::col("i64")
            .gt(1)
            .and(Expr::col("nope").is_null().not()),
    );
    assert!(matches!(error, ExprError::UnknownColumn { .. }), "{error}");
}

#[test]
fn unsupported_operations_name_column_type_and_remedy() {
    let cases = [
        (
            Expr::col("list").gt(1),
            "list",
            "gt (>)",
            "only is_null and is_not_null",
        ),
        (
            Expr::col("record").eq(1),
            "record",
            "eq (=)",
            "only is_null and is_not_null",
        ),
        (
            Expr::col("map").in_list([1]),
            "map",
            "in_list",
            "only is_null",
        ),
        (
            Expr::col("interval").between(1, 2),
            "interval",
            "between",
            "only is_null",
        ),
        (
            Expr::col("i64").starts_with("1"),
            "i64",
            "starts_with",
            "needs a string",
        ),
        (
            Expr::col("fixed").starts_with(b"ab"),
            "fixed",
            "starts_with",
            "binary",
        ),
        (
            Expr::col("s"),
            "s",
            "a bare column as a filter",
            "must be Boolean",
        ),
        (
            Expr::col("i64").not(),
            "i64",
            "a bare column",
            "Expr::col(\"i64\").eq(..)",
        ),
    ];
    for (expr, column, operation, remedy) in cases {
        let text = expr.to_string();
        let error = bind_error(expr);
        let message = error.to_string();
        match &error {
            ExprError::Unsupported {
                column: c,
                operation: o,
                ..
            } => {
                assert_eq!(c, column, "{text}: {message}");
                assert!(o.contains(operation), "{text}: {message}");
            }
            other => panic!("{text}: expected Unsupported, got {other:?}"),
        }
        assert!(
            message.contains(&format!("column `{column}` of type")),
            "{message}"
        );
        assert!(message.contains(remedy), "{text}: {message}");
    }
    // is_null and is_not_null apply to every type.
    let schema = exotic_schema();
    for field in schema.fields() {
        let expr = Expr::col(field.name().as_str()).is_null();
        assert!(expr.bind(&schema).is_ok(), "{expr}");
    }
}

#[test]
fn literal_errors_name_column_type_literal_and_what_fits() {
    let error = bind_error(Expr::col("i64").eq("5"));
    assert!(matches!(error, ExprError::LiteralType { .. }), "{error:?}");
    let message = error.to_string();
    for part in [
        "string literal '5'",
        "column `i64`",
        "type Int64",
        "use an integer literal",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let message = bind_error(Expr::col("i64").gt(1.5)).to_string();
    assert!(message.contains("float literal 1.5"), "{message}");
    let message = bind_error(Expr::col("s").eq(true)).to_string();
    assert!(
        message.contains("bool literal TRUE") && message.contains("use a string"),
        "{message}"
    );
    let message = bind_error(Expr::col("nothing").eq(1)).to_string();
    assert!(message.contains("only NULL"), "{message}");

    let error = bind_error(Expr::col("u8").in_list([1, 256]));
    assert!(
        matches!(error, ExprError::LiteralOutOfRange { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for part in ["integer literal 256", "column `u8`", "UInt8", "0..=255"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let message = bind_error(Expr::col("fixed").eq(vec![1u8, 2, 3])).to_string();
    assert!(
        message.contains("3 byte(s)") && message.contains("exactly 2"),
        "{message}"
    );
    let message = bind_error(Expr::col("money").lt(100_000_000)).to_string();
    assert!(message.contains("10 digits"), "{message}");
}

#[test]
fn operators_on_non_columns_are_rejected() {
    let both = Expr::col("i64").gt(1).and(Expr::col("flag"));
    let error = bind_error(both.clone().gt(1));
    match &error {
        ExprError::NotAColumn {
            expression,
            operation,
        } => {
            assert_eq!(expression, "i64 > 1 AND flag");
            assert_eq!(operation, "gt (>)");
        }
        other => panic!("expected NotAColumn, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("`i64 > 1 AND flag`"), "{message}");
    assert!(message.contains("Expr::col(name)"), "{message}");
    for expr in [
        both.clone().is_null(),
        both.clone().between(1, 2),
        both.clone().in_list([1]),
        both.clone().starts_with("a"),
        Expr::col("i64").eq(1).eq(true),
        Expr::col("flag").not().is_not_null(),
    ] {
        let text = expr.to_string();
        let error = bind_error(expr);
        assert!(
            matches!(error, ExprError::NotAColumn { .. }),
            "{text}: {error:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Display.

#[test]
fn display_is_sql_like() {
    let expr = Expr::col("score")
        .gt(80i64)
        .and(Expr::col("name").starts_with("a"));
    assert_eq!(expr.to_string(), "score > 80 AND name LIKE 'a%'");
    assert_eq!(format!("{expr:?}"), "Expr(score > 80 AND name LIKE 'a%')");
    let a = || Expr::col("a");
    let cases = [
        (
            a().eq(1).and(a().eq(2).or(a().eq(3))),
            "a = 1 AND (a = 2 OR a = 3)",
        ),
        (
            a().eq(1).or(a().eq(2).and(a().eq(3))),
            "a = 1 OR a = 2 AND a = 3",
        ),
        (a().gt(1).not(), "NOT (a > 1)"),
        (!a(), "NOT a"),
        (a().ne("it's"), "a <> 'it''s'"),
        (
            a().le(1.5).or(a().ge(u64::MAX)),
            "a <= 1.5 OR a >= 18446744073709551615",
        ),
        (a().lt(Value::Null), "a < NULL"),
        (a().between(1, 5), "a BETWEEN 1 AND 5"),
        (a().in_list(["x", "y"]), "a IN ('x', 'y')"),
        (
            a().is_null().and(a().is_not_null()),
            "a IS NULL AND a IS NOT NULL",
        ),
        (a().starts_with("50%_"), "a LIKE '50\\%\\_%'"),
        (a().starts_with(vec![0u8, 255]), "starts_with(a, X'00ff')"),
        (Expr::col("my col").eq(true), "\"my col\" = TRUE"),
        (a().eq(1).and(a()).gt(2), "(a = 1 AND a) > 2"),
    ];
    for (expr, text) in cases {
        assert_eq!(expr.to_string(), text);
    }
}

#[test]
fn expressions_compare_structurally() {
    assert_eq!(Expr::col("a").eq(1), Expr::col("a").eq(1i8));
    assert_ne!(Expr::col("a").eq(1), Expr::col("a").eq(1u64));
    assert_eq!(Expr::col("a").not(), !Expr::col("a"));
}

// ---------------------------------------------------------------------------------------------
// Values and the coercion table.

#[test]
fn values_convert_from_rust_types() {
    assert_eq!(Value::from(true), Value::Boolean(true));
    assert_eq!(Value::from(-3i8), Value::Int64(-3));
    assert_eq!(Value::from(-3i16), Value::Int64(-3));
    assert_eq!(Value::from(-3i32), Value::Int64(-3));
    assert_eq!(Value::from(3u8), Value::UInt64(3));
    assert_eq!(Value::from(3u16), Value::UInt64(3));
    assert_eq!(Value::from(3u32), Value::UInt64(3));
    assert_eq!(Value::from(3u64), Value::UInt64(3));
    assert_eq!(Value::from(0.5f32), Value::Float64(0.5));
    assert_eq!(Value::from("x"), Value::Utf8("x".into()));
    assert_eq!(Value::from(String::from("x")), Value::Utf8("x".into()));
    assert_eq!(Value::from(vec![1u8]), Value::Binary(vec![1]));
    assert_eq!(Value::from(&[1u8][..]), Value::Binary(vec![1]));
    assert_eq!(Value::from(b"\x01"), Value::Binary(vec![1]));
    assert_eq!(Value::from(Some(5i32)), Value::Int64(5));
    assert_eq!(Value::from(None::<&str>), Value::Null);
    let shown: Vec<String> = [
        Value::Null,
        Value::from(false),
        Value::from(-1),
        Value::from(1.0),
        Value::from("acme"),
        Value::from(vec![10u8, 255]),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(shown, ["NULL", "false", "-1", "1.0", "acme", "0x0aff"]);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Fits,
    WrongKind,
    OutOfRange,
}

fn outcome(value: &Value, data_type: &DataType) -> Outcome {
    match value.to_array(data_type, "c") {
        Ok(array) => {
            let expected = crate::value::value_type(data_type);
            assert_eq!(array.data_type(), expected, "{value:?} into {data_type}");
            assert_eq!(array.len(), 1, "{value:?} into {data_type}");
            let null = array.logical_nulls().is_some_and(|nulls| nulls.is_null(0));
            assert_eq!(null, value == &Value::Null, "{value:?} into {data_type}");
            Outcome::Fits
        }
        Err(ExprError::LiteralType { .. }) => Outcome::WrongKind,
        Err(ExprError::LiteralOutOfRange { .. }) => Outcome::OutOfRange,
        Err(other) => panic!("{value:?} into {data_type}: unexpected {other:?}"),
    }
}

fn coercion_table() -> Vec<(DataType, Value, Outcome)> {
    use DataType as T;
    use Outcome::{Fits, OutOfRange, WrongKind};
    let two_53 = 1i64 << 53;
    let utc = || Some(Arc::<str>::from("+01:00"));
    vec![
        // Integers into integer columns: in range or not.
        (T::UInt8, Value::from(255u64), Fits),
        (T::UInt8, Value::from(256u64), OutOfRange),
        (T::UInt8, Value::from(0i64), Fits),
        (T::UInt8, Value::from(-1i64), OutOfRange),
        (T::Int8, Value::from(-128i64), Fits),
        (T::Int8, Value::from(127u64), Fits),
        (T::Int8, Value::from(128i64), OutOfRange),
        (T::Int8, Value::from(-129i64), OutOfRange),
        (T::Int16, Value::from(i16::MIN), Fits),
        (T::Int16, Value::from(32768u64), OutOfRange),
        (T::UInt16, Value::from(65535u64), Fits),
        (T::UInt16, Value::from(65536u64), OutOfRange),
        (T::Int32, Value::from(i32::MAX), Fits),
        (T::Int32, Value::from(i64::from(i32::MAX) + 1), OutOfRange),
        (T::UInt32, Value::from(u32::MAX), Fits),
        (T::UInt32, Value::from(-1i64), OutOfRange),
        (T::Int64, Value::from(i64::MIN), Fits),
        (T::Int64, Value::from(i64::MAX as u64), Fits),
        (T::Int64, Value::from(i64::MAX as u64 + 1), OutOfRange),
        (T::UInt64, Value::from(u64::MAX), Fits),
        (T::UInt64, Value::from(-1i64), OutOfRange),
        // Integers into floats only when exact.
        (T::Float64, Value::from(two_53), Fits),
        (T::Float64, Value::from(two_53 + 1), OutOfRange),
        (T::Float64, Value::from(-two_53 - 1), OutOfRange),
        (T::Float64, Value::from(i64::MAX), OutOfRange),
        (T::Float64, Value::from(i64::MIN), Fits),
        (T::Float64, Value::from(u64::MAX), OutOfRange),
        (T::Float32, Value::from(1i64 << 24), Fits),
        (T::Float32, Value::from((1i64 << 24) + 1), OutOfRange),
        (T::Float16, Value::from(2048), Fits),
        (T::Float16, Value::from(2049), OutOfRange),
        (T::Float16, Value::from(65504), Fits),
        (T::Float16, Value::from(1_000_000), OutOfRange),
        // Floats into floats.
        (T::Float64, Value::from(0.1), Fits),
        (T::Float64, Value::from(f64::NAN), Fits),
        (T::Float32, Value::from(0.5), Fits),
        (T::Float32, Value::from(0.1f32), Fits),
        (T::Float32, Value::from(0.1f64), OutOfRange),
        (T::Float32, Value::from(f64::NAN), Fits),
        (T::Float32, Value::from(f64::NEG_INFINITY), Fits),
        (T::Float32, Value::from(1e300), OutOfRange),
        (T::Float16, Value::from(0.5), Fits),
        (T::Float16, Value::from(0.1), OutOfRange),
        (T::Float16, Value::from(65505.0), OutOfRange),
        (T::Float16, Value::from(f64::NAN), Fits),
        // Floats never into integers, decimals or temporals.
        (T::Int64, Value::from(1.0), WrongKind),
        (T::UInt8, Value::from(1.0), WrongKind),
        (T::Decimal128(10, 2), Value::from(1.5), WrongKind),
        (T::Date32, Value::from(1.0), WrongKind),
        // Strings and bytes.
        (T::Utf8, Value::from("a"), Fits),
        (T::LargeUtf8, Value::from("a"), Fits),
        (
            T::Utf8View,
            Value::from("a long string, longer than twelve bytes"),
            Fits,
        ),
        (T::Utf8, Value::from(vec![97u8]), WrongKind),
        (T::Int64, Value::from("1"), WrongKind),
        (T::Binary, Value::from(vec![1u8]), Fits),
        (T::LargeBinary, Value::from(vec![1u8]), Fits),
        (T::BinaryView, Value::from(vec![1u8]), Fits),
        (T::Binary, Value::from("a"), WrongKind),
        (T::FixedSizeBinary(4), Value::from(vec![1u8, 2, 3, 4]), Fits),
        (
            T::FixedSizeBinary(4),
            Value::from(vec![1u8, 2, 3]),
            OutOfRange,
        ),
        (T::FixedSizeBinary(0), Value::from(Vec::<u8>::new()), Fits),
        // Booleans.
        (T::Boolean, Value::from(true), Fits),
        (T::Boolean, Value::from(1), WrongKind),
        (T::Utf8, Value::from(true), WrongKind),
        (T::Int64, Value::from(true), WrongKind),
        // Temporal columns take their raw stored value.
        (T::Date32, Value::from(19_000), Fits),
        (T::Date32, Value::from(i64::from(i32::MAX) + 1), OutOfRange),
        (T::Date64, Value::from(1_700_000_000_000i64), Fits),
        (T::Time32(TimeUnit::Second), Value::from(3600), Fits),
        (T::Time32(TimeUnit::Millisecond), Value::from(-1), Fits),
        (
            T::Time64(TimeUnit::Nanosecond),
            Value::from(1u64 << 40),
            Fits,
        ),
        (T::Time32(TimeUnit::Nanosecond), Value::from(1), WrongKind),
        (T::Time64(TimeUnit::Second), Value::from(1), WrongKind),
        (
            T::Timestamp(TimeUnit::Second, None),
            Value::from(1_700_000_000),
            Fits,
        ),
        (
            T::Timestamp(TimeUnit::Nanosecond, utc()),
            Value::from(-5),
            Fits,
        ),
        (
            T::Timestamp(TimeUnit::Millisecond, utc()),
            Value::from(u64::MAX),
            OutOfRange,
        ),
        (
            T::Timestamp(TimeUnit::Microsecond, None),
            Value::from("2024-01-01"),
            WrongKind,
        ),
        (T::Duration(TimeUnit::Microsecond), Value::from(10), Fits),
        // Decimals: integers scaled by 10^scale, checked against the precision.
        (T::Decimal128(10, 2), Value::from(99_999_999), Fits),
        (T::Decimal128(10, 2), Value::from(100_000_000), OutOfRange),
        (T::Decimal128(10, 2), Value::from(-99_999_999), Fits),
        (T::Decimal128(38, 0), Value::from(u64::MAX), Fits),
        (T::Decimal128(38, -2), Value::from(500), Fits),
        (T::Decimal128(38, -2), Value::from(501), OutOfRange),
        (T::Decimal256(76, 50), Value::from(i64::MIN), Fits),
        (T::Decimal256(76, 60), Value::from(i64::MIN), OutOfRange),
        (T::Decimal32(9, 2), Value::from(9_999_999), Fits),
        (T::Decimal32(9, 2), Value::from(10_000_000), OutOfRange),
        (T::Decimal64(18, 3), Value::from(1), Fits),
        (T::Decimal128(0, 0), Value::from(1), WrongKind),
        (T::Decimal128(10, 2), Value::from("1.5"), WrongKind),
        // Dictionaries coerce to their value type.
        (dictionary_type(), Value::from("a"), Fits),
        (dictionary_type(), Value::from(1), WrongKind),
        (
            T::Dictionary(Box::new(T::UInt8), Box::new(T::Int16)),
            Value::from(-7),
            Fits,
        ),
        (
            T::Dictionary(Box::new(T::UInt8), Box::new(T::Int16)),
            Value::from(1 << 20),
            OutOfRange,
        ),
        (
            T::Dictionary(Box::new(T::Utf8), Box::new(T::Utf8)),
            Value::from("a"),
            WrongKind,
        ),
        (
            T::Dictionary(Box::new(T::Int8), Box::new(dictionary_type())),
            Value::from("a"),
            WrongKind,
        ),
        // Nulls: a null of any type that takes literals.
        (T::Int64, Value::Null, Fits),
        (T::Utf8View, Value::Null, Fits),
        (T::Null, Value::Null, Fits),
        (T::Null, Value::from(1), WrongKind),
        (dictionary_type(), Value::Null, Fits),
        (T::Timestamp(TimeUnit::Second, utc()), Value::Null, Fits),
        // Nested and interval columns take no literal at all.
        (
            T::List(Arc::new(Field::new("item", T::Int64, true))),
            Value::from(1),
            WrongKind,
        ),
        (
            T::List(Arc::new(Field::new("item", T::Int64, true))),
            Value::Null,
            WrongKind,
        ),
        (T::Struct(Fields::empty()), Value::from("a"), WrongKind),
        (
            T::Interval(IntervalUnit::YearMonth),
            Value::from(1),
            WrongKind,
        ),
    ]
}

#[test]
fn coercion_table_accepts_and_rejects() {
    for (data_type, value, expected) in coercion_table() {
        assert_eq!(
            outcome(&value, &data_type),
            expected,
            "{value:?} into {data_type}"
        );
    }
}

#[test]
fn coercion_keeps_exact_types_and_values() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, TimestampNanosecondType};
    let zone = DataType::Timestamp(TimeUnit::Nanosecond, Some("+01:00".into()));
    let array = Value::from(-5).to_array(&zone, "ts").expect("fits");
    assert_eq!(array.data_type(), &zone);
    assert_eq!(array.as_primitive::<TimestampNanosecondType>().value(0), -5);
    let money = DataType::Decimal128(10, 2);
    let array = Value::from(5).to_array(&money, "m").expect("fits");
    assert_eq!(array.data_type(), &money);
    assert_eq!(array.as_primitive::<Decimal128Type>().value(0), 500);
    let coarse = DataType::Decimal128(38, -2);
    let array = Value::from(-1200).to_array(&coarse, "m").expect("fits");
    assert_eq!(array.as_primitive::<Decimal128Type>().value(0), -12);
}

#[test]
fn decimal_and_temporal_columns_filter_by_stored_value() {
    let schema = Schema::new(vec![Field::new("m", DataType::Decimal128(10, 2), true)]);
    let values = arrow_array::Decimal128Array::from(vec![Some(150), Some(200), None, Some(250)])
        .with_precision_and_scale(10, 2)
        .expect("valid decimal");
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(values)]).expect("batch");
    let (t, f) = (Some(true), Some(false));
    // 2 is scaled to 200 (2.00).
    assert_eq!(run(&Expr::col("m").ge(2), &batch), vec![f, t, None, t]);
    assert_eq!(run(&Expr::col("m").eq(2), &batch), vec![f, t, None, f]);
}

// ---------------------------------------------------------------------------------------------
// Keys.

#[test]
fn keys_convert_from_scalars_tuples_and_vectors() {
    assert_eq!(Key::from(42u64).values(), &[Value::UInt64(42)]);
    assert_eq!(Key::from(-1i8).values(), &[Value::Int64(-1)]);
    assert_eq!(Key::from("acme").values(), &[Value::from("acme")]);
    assert_eq!(Key::from(String::from("acme")), Key::from("acme"));
    assert_eq!(Key::from(vec![1u8]).values(), &[Value::Binary(vec![1])]);
    assert_eq!(Key::from(b"\x01"), Key::from(&[1u8][..]));
    assert_eq!(Key::from(true).values(), &[Value::Boolean(true)]);
    assert_eq!(Key::from(1.5f64).values(), &[Value::Float64(1.5)]);
    assert_eq!(Key::from(Value::from(3)).values(), &[Value::Int64(3)]);
    let pair = Key::from(("acme", 1_700_000_000_i64));
    assert_eq!(
        pair.values(),
        &[Value::from("acme"), Value::Int64(1_700_000_000)]
    );
    assert_eq!(pair.to_string(), "(acme, 1700000000)");
    let triple = Key::from((1u8, "b", 2.5f32));
    assert_eq!(triple.values().len(), 3);
    let quad = Key::from((1u8, "b", vec![3u8], Some(4i16)));
    assert_eq!(quad.to_string(), "(1, b, 0x03, 4)");
    assert_eq!(
        Key::from(vec![Value::from(1), Value::from("x")]),
        Key::from((1, "x"))
    );
    assert_eq!(
        Key::new(vec![Value::from(7u32)]).into_values(),
        vec![Value::UInt64(7)]
    );
    assert_eq!(Key::from(42u64).to_string(), "(42)");
}

fn key_fields() -> Vec<Field> {
    vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
    ]
}

#[test]
fn keys_become_one_row_columns_of_the_key_types() {
    let fields = key_fields();
    let refs: Vec<&Field> = fields.iter().collect();
    let columns = Key::from(("acme", 1_700_000_000_i64))
        .to_columns(&refs)
        .expect("fits");
    assert_eq!(columns.len(), 2);
    assert_eq!(columns[0].data_type(), &DataType::Utf8);
    assert_eq!(columns[1].data_type(), fields[1].data_type());
    assert!(columns.iter().all(|c| c.len() == 1 && c.null_count() == 0));
}

#[test]
fn key_errors_name_the_key_columns() {
    let fields = key_fields();
    let refs: Vec<&Field> = fields.iter().collect();
    let error = Key::from(42u64).to_columns(&refs).expect_err("one of two");
    match &error {
        ExprError::KeyArity {
            expected,
            found,
            key_columns,
        } => {
            assert_eq!((*expected, *found), (2, 1));
            assert_eq!(key_columns, &vec!["tenant".to_owned(), "ts".to_owned()]);
        }
        other => panic!("expected KeyArity, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("1 component(s)") && message.contains("(tenant, ts)"),
        "{message}"
    );
    let error = Key::from(("a", 1, 2))
        .to_columns(&refs)
        .expect_err("three of two");
    assert!(
        matches!(error, ExprError::KeyArity { found: 3, .. }),
        "{error:?}"
    );

    let error = Key::from(("acme", None::<i64>))
        .to_columns(&refs)
        .expect_err("null");
    assert!(
        matches!(&error, ExprError::NullKey { column } if column == "ts"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("key column `ts` is NULL"),
        "{error}"
    );

    let error = Key::from((1, 2))
        .to_columns(&refs)
        .expect_err("integer tenant");
    assert!(matches!(&error, ExprError::LiteralType { column, .. } if column == "tenant"));
    let error = Key::from(("acme", u64::MAX))
        .to_columns(&refs)
        .expect_err("too large");
    assert!(
        matches!(error, ExprError::LiteralOutOfRange { .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits and thread-safety.

#[test]
fn long_chains_stay_flat_and_evaluate() {
    let batch = int_batch(vec![Some(1), Some(7), None, Some(99_999)]);
    // Folded the way a loop builds it: one OR chain of 100 000 equalities.
    let any = (1..100_000).fold(Expr::col("x").eq(0), |e, v| e.or(Expr::col("x").eq(v)));
    assert_eq!(any.depth(), 3); // OR, =, column
    assert_eq!(
        run(&any, &batch),
        vec![Some(true), Some(true), None, Some(true)]
    );
    let all = (0..100_000).fold(Expr::col("x").ge(0), |e, v| e.and(Expr::col("x").ne(v + 1)));
    assert_eq!(all.depth(), 3);
    assert_eq!(
        run(&all, &batch),
        vec![Some(false), Some(false), None, Some(false)]
    );
    assert!(any.to_string().ends_with("OR x = 99999"));
    // Nested chains of the same junction flatten; mixed ones keep their structure.
    let (a, b, c) = (Expr::col("a"), Expr::col("b"), Expr::col("c"));
    assert_eq!(
        a.clone().and(b.clone().and(c.clone())),
        a.clone().and(b.clone()).and(c.clone())
    );
    assert_eq!(a.clone().and(b.clone().or(c.clone())).depth(), 3);
}

#[test]
fn deep_filters_are_refused_without_recursing() {
    let batch = bool_batch(&[("flag", vec![Some(false), Some(true), None])]);
    let mut deep = Expr::col("flag");
    for _ in 0..100_000 {
        deep = !deep;
    }
    let error = deep.bind(&batch.schema()).expect_err("too deep");
    assert!(
        matches!(
            error,
            ExprError::TooDeep {
                depth: 100_001,
                limit: 64
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("double negations"), "{error}");
    drop(deep);
    // Exactly at the limit binds, evaluates and displays within half of the 2 MiB stack that
    // tokio and smol threads have, in this (possibly unoptimised) test build.
    let at_limit = filter_at_depth_limit();
    assert_eq!(at_limit.depth(), super::MAX_DEPTH);
    let within_budget = with_stack(1 << 20, move || {
        let table = [ModelColumn {
            name: "flag",
            data_type: DataType::Boolean,
            cells: vec![Some(Cell::Bool(false)), Some(Cell::Bool(true)), None],
        }];
        check_against_model(&at_limit, &table, &batch, "at the depth limit");
        assert!(!at_limit.to_string().is_empty());
        let too_deep = !at_limit;
        let error = too_deep.bind(&batch.schema()).expect_err("one too deep");
        assert!(
            matches!(error, ExprError::TooDeep { depth: 65, .. }),
            "{error:?}"
        );
    });
    assert!(
        within_budget,
        "a filter at the depth limit needs more than 1 MiB of stack"
    );
}

/// A filter exactly `MAX_DEPTH` deep, alternating and / or / not.
fn filter_at_depth_limit() -> Expr {
    let mut filter = Expr::col("flag");
    // The first level adds two (a column under is_not_null), every later one adds one.
    for level in 1..super::MAX_DEPTH - 1 {
        filter = match level % 3 {
            0 => !filter,
            1 => filter.and(Expr::col("flag").is_not_null()),
            _ => filter.or(Expr::col("flag").is_null()),
        };
    }
    filter
}

/// Runs `body` on a thread with `bytes` of stack; false if it panicked. (An overflow aborts
/// the test process, which fails the run as loudly.)
// Tests may start threads; the engine may not (clippy.toml bans it there).
#[allow(clippy::disallowed_types)]
fn with_stack(bytes: usize, body: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(body)
        .and_then(|thread| thread.join().map_err(|_| std::io::Error::other("panicked")))
        .is_ok()
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Expr>();
    send_sync::<Value>();
    send_sync::<Key>();
    send_sync::<ExprError>();
    send_sync::<super::Predicate>();
}
