//! Literal values and keys, and how they become one-row Arrow arrays.
//!
//! A [`Value`] is what a user writes: a literal in a filter (`Expr::col("score").gt(80)`) or a
//! component of a [`Key`]. Before it meets data it is *coerced* to the Arrow type of the column it
//! is compared with, by [`Value::to_array`]. Coercion is exact or it fails:
//!
//! - integers go to any integer column when the value is in the column type's range, to float
//!   columns only when the float represents the integer exactly, to date, time, timestamp and
//!   duration columns as the column's raw stored count (days, milliseconds, ... since the epoch or
//!   midnight; any time zone), and to decimal columns scaled by `10^scale`, checked against the
//!   precision;
//! - floats go to float columns (Float16 and Float32 only when the value is exactly
//!   representable; NaN and the infinities are allowed);
//! - strings go to Utf8, LargeUtf8 and Utf8View; bytes to Binary, LargeBinary, BinaryView and
//!   FixedSizeBinary(n) when the length is n; booleans to Boolean;
//! - a Dictionary column takes the literal of its value type: the array has the *value* type, and
//!   arrow's comparison kernels compare it with the dictionary's decoded values, so a
//!   `Dictionary(Int32, Utf8)` column compares exactly like a Utf8 column;
//! - [`Value::Null`] gives a null of the type.
//!
//! Everything else (a string on an integer column, a float on an integer column, any literal on a
//! nested or interval column) is an error that names the column, its type, the literal and the
//! literal that would fit. Nothing here panics on any value or any data type.

use std::fmt;
use std::sync::Arc;

use arrow_array::types::{
    ArrowPrimitiveType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, DecimalType,
    Float16Type,
};
use arrow_array::{
    ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array,
    DurationMicrosecondArray, DurationMillisecondArray, DurationNanosecondArray,
    DurationSecondArray, FixedSizeBinaryArray, Float16Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, PrimitiveArray,
    StringArray, StringViewArray, Time32MillisecondArray, Time32SecondArray,
    Time64MicrosecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array, new_null_array,
};
use arrow_buffer::{Buffer, i256};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::expr::ExprError;

/// One literal value: a filter operand or one component of a [`Key`].
///
/// Build it with `From`/`Into` from Rust values: `bool`; `i8`, `i16`, `i32`, `i64` (as
/// [`Value::Int64`]); `u8`, `u16`, `u32`, `u64` (as [`Value::UInt64`]); `f32`, `f64`; `&str`,
/// `String`; `Vec<u8>`, `&[u8]`, `&[u8; N]`; and `Option<T>` of any of these (`None` is
/// [`Value::Null`]). The value is matched to a column's Arrow type only when it is used; see the
/// module documentation for the coercion rules.
///
/// ```
/// use damselfly::Value;
///
/// assert_eq!(Value::from(7u8), Value::UInt64(7));
/// assert_eq!(Value::from("acme"), Value::Utf8("acme".to_owned()));
/// assert_eq!(Value::from(None::<i64>), Value::Null);
/// assert_eq!(Value::from(1.5f32).to_string(), "1.5");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL: compares as unknown with everything, so a comparison with it keeps no row.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A signed integer; fits any integer, float, temporal or decimal column that can hold it.
    Int64(i64),
    /// An unsigned integer; fits any integer, float, temporal or decimal column that can hold it.
    UInt64(u64),
    /// A floating-point number; fits float columns.
    Float64(f64),
    /// A string; fits Utf8, LargeUtf8 and Utf8View columns.
    Utf8(String),
    /// Bytes; fit Binary, LargeBinary, BinaryView and FixedSizeBinary columns.
    Binary(Vec<u8>),
}

/// Why a value did not coerce to a column type, before the column's name is attached.
enum Mismatch {
    /// The literal's kind does not fit the type at all.
    Kind,
    /// The kind fits but this value does not (range, exactness, length); says why.
    Range(String),
}

impl Value {
    /// Returns a one-row array of exactly `data_type` (of the value type, for a Dictionary
    /// column) holding this value, or an error naming `column`, its type and the literal.
    pub(crate) fn to_array(
        &self,
        data_type: &DataType,
        column: &str,
    ) -> Result<ArrayRef, ExprError> {
        let result = if accepts_literals(data_type) {
            self.coerce(value_type(data_type))
        } else {
            Err(Mismatch::Kind)
        };
        result.map_err(|mismatch| match mismatch {
            Mismatch::Kind => ExprError::LiteralType {
                column: column.to_owned(),
                data_type: data_type.clone(),
                value: self.clone(),
            },
            Mismatch::Range(reason) => ExprError::LiteralOutOfRange {
                column: column.to_owned(),
                data_type: data_type.clone(),
                value: self.clone(),
                reason,
            },
        })
    }

    /// The value as a SQL literal: `NULL`, `TRUE`, `42`, `1.5`, `'it''s'`, `X'0aff'`.
    pub(crate) fn to_sql(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            Value::Boolean(true) => "TRUE".to_owned(),
            Value::Boolean(false) => "FALSE".to_owned(),
            Value::Int64(v) => v.to_string(),
            Value::UInt64(v) => v.to_string(),
            Value::Float64(v) => format!("{v:?}"),
            Value::Utf8(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Binary(b) => format!("X'{}'", hex(b)),
        }
    }

    /// The literal's kind and value for error messages, e.g. `integer literal 256`.
    pub(crate) fn describe(&self) -> String {
        let kind = match self {
            Value::Null => return "NULL literal".to_owned(),
            Value::Boolean(_) => "bool",
            Value::Int64(_) | Value::UInt64(_) => "integer",
            Value::Float64(_) => "float",
            Value::Utf8(_) => "string",
            Value::Binary(_) => "bytes",
        };
        format!("{kind} literal {}", self.to_sql())
    }

    /// Coerces to `target`, which is a type [`accepts_literals`] and not a Dictionary.
    fn coerce(&self, target: &DataType) -> Result<ArrayRef, Mismatch> {
        match self {
            Value::Null => Ok(new_null_array(target, 1)),
            Value::Boolean(b) => match target {
                DataType::Boolean => Ok(Arc::new(BooleanArray::from(vec![*b]))),
                _ => Err(Mismatch::Kind),
            },
            Value::Int64(v) => integer_array(i128::from(*v), target),
            Value::UInt64(v) => integer_array(i128::from(*v), target),
            Value::Float64(v) => float_array(*v, target),
            Value::Utf8(s) => string_array(s, target),
            Value::Binary(b) => binary_array(b, target),
        }
    }
}

impl fmt::Display for Value {
    /// Plain text: `NULL`, `true`, `42`, `1.5`, `acme` (no quotes), `0x0aff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::UInt64(v) => write!(f, "{v}"),
            Value::Float64(v) => write!(f, "{v:?}"),
            Value::Utf8(s) => f.write_str(s),
            Value::Binary(b) => write!(f, "0x{}", hex(b)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether some literal can be coerced to `data_type`: the scalar types with a literal form, and
/// dictionaries (with an integer key type) of them. Nested, interval, union and run-end-encoded
/// types, and malformed types (e.g. `Time32(Microsecond)`), take no literal.
pub(crate) fn accepts_literals(data_type: &DataType) -> bool {
    use DataType as T;
    match data_type {
        T::Null | T::Boolean | T::Float16 | T::Float32 | T::Float64 => true,
        T::Int8 | T::Int16 | T::Int32 | T::Int64 => true,
        T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64 => true,
        T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::LargeBinary | T::BinaryView => true,
        T::FixedSizeBinary(length) => *length >= 0,
        T::Date32 | T::Date64 | T::Timestamp(_, _) | T::Duration(_) => true,
        T::Time32(unit) => matches!(unit, TimeUnit::Second | TimeUnit::Millisecond),
        T::Time64(unit) => matches!(unit, TimeUnit::Microsecond | TimeUnit::Nanosecond),
        T::Decimal32(p, s) => valid_decimal::<Decimal32Type>(*p, *s),
        T::Decimal64(p, s) => valid_decimal::<Decimal64Type>(*p, *s),
        T::Decimal128(p, s) => valid_decimal::<Decimal128Type>(*p, *s),
        T::Decimal256(p, s) => valid_decimal::<Decimal256Type>(*p, *s),
        T::Dictionary(key, value) => {
            key.is_dictionary_key_type()
                && !matches!(value.as_ref(), T::Dictionary(_, _))
                && accepts_literals(value)
        }
        _ => false,
    }
}

fn valid_decimal<D: DecimalType>(precision: u8, scale: i8) -> bool {
    arrow_array::types::validate_decimal_precision_and_scale::<D>(precision, scale).is_ok()
}

/// The type a literal for a `data_type` column has: the value type of a Dictionary, else itself.
pub(crate) fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, value) => value,
        other => other,
    }
}

/// What to do about a literal that does not fit a column of `data_type`, for error messages:
/// `use a bool literal`, `use an integer literal in 0..=255`, ...
pub(crate) fn literal_advice(data_type: &DataType) -> String {
    if accepts_literals(data_type) {
        format!("use {}", expected_literal(data_type))
    } else {
        "no literal fits a column of this type; only is_null and is_not_null apply to it".to_owned()
    }
}

/// The literal that fits a column of `data_type`, a type that [`accepts_literals`].
fn expected_literal(data_type: &DataType) -> String {
    use DataType as T;
    match data_type {
        T::Null => "only NULL (Value::Null or None): the column holds nothing else".to_owned(),
        T::Boolean => "a bool literal".to_owned(),
        T::Float16 | T::Float32 | T::Float64 => {
            "a float literal, or an integer literal the float type represents exactly".to_owned()
        }
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "a string literal (&str or String)".to_owned(),
        T::Binary | T::LargeBinary | T::BinaryView => {
            "a bytes literal (Vec<u8> or &[u8])".to_owned()
        }
        T::FixedSizeBinary(n) => format!("a bytes literal of exactly {n} bytes"),
        T::Date32 => "an integer literal: days since 1970-01-01, the stored value".to_owned(),
        T::Date64 => "an integer literal: milliseconds since 1970-01-01, the stored value".into(),
        T::Time32(unit) | T::Time64(unit) => {
            format!(
                "an integer literal: {} since midnight, the stored value",
                unit_name(unit)
            )
        }
        T::Timestamp(unit, _) => format!(
            "an integer literal: {} since 1970-01-01T00:00:00Z, the stored value",
            unit_name(unit)
        ),
        T::Duration(unit) => format!("an integer literal: a count of {}", unit_name(unit)),
        T::Decimal32(_, s) | T::Decimal64(_, s) | T::Decimal128(_, s) | T::Decimal256(_, s) => {
            format!("an integer literal (it is scaled by 10^{s} to the stored value)")
        }
        T::Dictionary(_, value) => expected_literal(value),
        _ => match integer_range(data_type) {
            Some((min, max)) => format!("an integer literal in {min}..={max}"),
            None => "none".to_owned(),
        },
    }
}

fn unit_name(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "seconds",
        TimeUnit::Millisecond => "milliseconds",
        TimeUnit::Microsecond => "microseconds",
        TimeUnit::Nanosecond => "nanoseconds",
    }
}

/// The range of an integer or integer-backed temporal column type.
fn integer_range(data_type: &DataType) -> Option<(i128, i128)> {
    use DataType as T;
    let range = match data_type {
        T::Int8 => (i128::from(i8::MIN), i128::from(i8::MAX)),
        T::Int16 => (i128::from(i16::MIN), i128::from(i16::MAX)),
        T::Int32 | T::Date32 | T::Time32(_) => (i128::from(i32::MIN), i128::from(i32::MAX)),
        T::Int64 | T::Date64 | T::Time64(_) | T::Timestamp(_, _) | T::Duration(_) => {
            (i128::from(i64::MIN), i128::from(i64::MAX))
        }
        T::UInt8 => (0, i128::from(u8::MAX)),
        T::UInt16 => (0, i128::from(u16::MAX)),
        T::UInt32 => (0, i128::from(u32::MAX)),
        T::UInt64 => (0, i128::from(u64::MAX)),
        _ => return None,
    };
    Some(range)
}

/// One row of an integer-backed type: `value`, checked against the type's range.
fn integer_array(value: i128, target: &DataType) -> Result<ArrayRef, Mismatch> {
    use DataType as T;
    match target {
        T::Float16 | T::Float32 | T::Float64 => return exact_float_array(value, target),
        T::Decimal32(p, s) => return decimal_array::<Decimal32Type>(value, *p, *s, narrow_32),
        T::Decimal64(p, s) => return decimal_array::<Decimal64Type>(value, *p, *s, narrow_64),
        T::Decimal128(p, s) => {
            return decimal_array::<Decimal128Type>(value, *p, *s, i256::to_i128);
        }
        T::Decimal256(p, s) => return decimal_array::<Decimal256Type>(value, *p, *s, Some),
        _ => {}
    }
    let Some((min, max)) = integer_range(target) else {
        return Err(Mismatch::Kind);
    };
    if value < min || value > max {
        return Err(Mismatch::Range(format!(
            "the column's type holds integers in {min}..={max}"
        )));
    }
    checked_integer_array(value, target).ok_or_else(|| Mismatch::Range("out of range".to_owned()))
}

/// One row of `target` (an integer-backed type) holding `value`; `None` if it does not fit.
fn checked_integer_array(value: i128, target: &DataType) -> Option<ArrayRef> {
    use DataType as T;
    use TimeUnit as U;
    let array: ArrayRef = match target {
        T::Int8 => Arc::new(Int8Array::from(vec![i8::try_from(value).ok()?])),
        T::Int16 => Arc::new(Int16Array::from(vec![i16::try_from(value).ok()?])),
        T::Int32 => Arc::new(Int32Array::from(vec![i32::try_from(value).ok()?])),
        T::Int64 => Arc::new(Int64Array::from(vec![i64::try_from(value).ok()?])),
        T::UInt8 => Arc::new(UInt8Array::from(vec![u8::try_from(value).ok()?])),
        T::UInt16 => Arc::new(UInt16Array::from(vec![u16::try_from(value).ok()?])),
        T::UInt32 => Arc::new(UInt32Array::from(vec![u32::try_from(value).ok()?])),
        T::UInt64 => Arc::new(UInt64Array::from(vec![u64::try_from(value).ok()?])),
        T::Date32 => Arc::new(Date32Array::from(vec![i32::try_from(value).ok()?])),
        T::Date64 => Arc::new(Date64Array::from(vec![i64::try_from(value).ok()?])),
        T::Time32(U::Second) => Arc::new(Time32SecondArray::from(vec![i32::try_from(value).ok()?])),
        T::Time32(U::Millisecond) => Arc::new(Time32MillisecondArray::from(vec![
            i32::try_from(value).ok()?,
        ])),
        T::Time64(U::Microsecond) => Arc::new(Time64MicrosecondArray::from(vec![
            i64::try_from(value).ok()?,
        ])),
        T::Time64(U::Nanosecond) => Arc::new(Time64NanosecondArray::from(vec![
            i64::try_from(value).ok()?,
        ])),
        T::Timestamp(unit, zone) => timestamp_array(i64::try_from(value).ok()?, unit, zone.clone()),
        T::Duration(unit) => duration_array(i64::try_from(value).ok()?, unit),
        _ => return None,
    };
    Some(array)
}

fn timestamp_array(value: i64, unit: &TimeUnit, zone: Option<Arc<str>>) -> ArrayRef {
    match unit {
        TimeUnit::Second => {
            Arc::new(TimestampSecondArray::from(vec![value]).with_timezone_opt(zone))
        }
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(vec![value]).with_timezone_opt(zone))
        }
        TimeUnit::Microsecond => {
            Arc::new(TimestampMicrosecondArray::from(vec![value]).with_timezone_opt(zone))
        }
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from(vec![value]).with_timezone_opt(zone))
        }
    }
}

fn duration_array(value: i64, unit: &TimeUnit) -> ArrayRef {
    match unit {
        TimeUnit::Second => Arc::new(DurationSecondArray::from(vec![value])),
        TimeUnit::Millisecond => Arc::new(DurationMillisecondArray::from(vec![value])),
        TimeUnit::Microsecond => Arc::new(DurationMicrosecondArray::from(vec![value])),
        TimeUnit::Nanosecond => Arc::new(DurationNanosecondArray::from(vec![value])),
    }
}

/// An integer into a float column, only when the float holds exactly that integer.
fn exact_float_array(value: i128, target: &DataType) -> Result<ArrayRef, Mismatch> {
    // Every i128 is finite in f64, and `as i128` on a finite float truncates without
    // saturating in this range, so the round trip is an exact equality test.
    let as_f64 = value as f64;
    let exact = match target {
        DataType::Float64 => as_f64 as i128 == value,
        DataType::Float32 => (value as f32) as i128 == value,
        _ => f16_from(as_f64).to_f64() as i128 == value,
    };
    if !exact {
        return Err(Mismatch::Range(format!(
            "{target} cannot represent {value} exactly; compare with a nearby value that it \
             represents, written as a float literal"
        )));
    }
    float_array(as_f64, target)
}

/// A float into a float column; Float16 and Float32 only when exactly representable (NaN and
/// the infinities are).
fn float_array(value: f64, target: &DataType) -> Result<ArrayRef, Mismatch> {
    let inexact = || {
        Mismatch::Range(format!(
            "{target} cannot represent {value:?} exactly; write a value it represents (for \
             Float32, an f32 literal such as 0.1f32 holds the column's nearest value)"
        ))
    };
    match target {
        DataType::Float64 => Ok(Arc::new(Float64Array::from(vec![value]))),
        DataType::Float32 => {
            let narrow = value as f32;
            if value.is_nan() || f64::from(narrow) == value {
                Ok(Arc::new(Float32Array::from(vec![narrow])))
            } else {
                Err(inexact())
            }
        }
        DataType::Float16 => {
            let narrow = f16_from(value);
            if value.is_nan() || narrow.to_f64() == value {
                Ok(Arc::new(Float16Array::from(vec![narrow])))
            } else {
                Err(inexact())
            }
        }
        _ => Err(Mismatch::Kind),
    }
}

/// The `half::f16` nearest to `value`, named through arrow so that `half` is no dependency.
fn f16_from(value: f64) -> <Float16Type as ArrowPrimitiveType>::Native {
    <Float16Type as ArrowPrimitiveType>::Native::from_f64(value)
}

fn narrow_32(value: i256) -> Option<i32> {
    value.to_i128().and_then(|v| i32::try_from(v).ok())
}

fn narrow_64(value: i256) -> Option<i64> {
    value.to_i128().and_then(|v| i64::try_from(v).ok())
}

/// An integer into a decimal column: `value * 10^scale`, exact and within the precision.
fn decimal_array<D: DecimalType>(
    value: i128,
    precision: u8,
    scale: i8,
    narrow: fn(i256) -> Option<D::Native>,
) -> Result<ArrayRef, Mismatch> {
    let out_of_range = || {
        Mismatch::Range(format!(
            "scaled by 10^{scale} it needs more than the column's {precision} digits"
        ))
    };
    let scaled = scale_integer(value, scale).ok_or_else(|| {
        Mismatch::Range(format!(
            "it is not a whole multiple of 10^{}",
            -i32::from(scale)
        ))
    })?;
    let stored = scaled.and_then(narrow).ok_or_else(out_of_range)?;
    if !D::is_valid_decimal_precision(stored, precision) {
        return Err(out_of_range());
    }
    let array = PrimitiveArray::<D>::from_value(stored, 1)
        .with_precision_and_scale(precision, scale)
        .map_err(|error| Mismatch::Range(error.to_string()))?;
    Ok(Arc::new(array))
}

/// `value * 10^scale` in i256. The outer `None` means a negative scale does not divide
/// `value` exactly; the inner `None` means the result overflows i256.
fn scale_integer(value: i128, scale: i8) -> Option<Option<i256>> {
    let value = i256::from_i128(value);
    let power = i256::from_i128(10).checked_pow(u32::from(scale.unsigned_abs()));
    if scale >= 0 {
        return Some(power.and_then(|p| value.checked_mul(p)));
    }
    match power {
        // 10^|scale| overflowing means it exceeds every i128, so only zero divides exactly.
        None => (value == i256::ZERO).then_some(Some(i256::ZERO)),
        Some(p) => {
            let remainder = value.checked_rem(p)?;
            (remainder == i256::ZERO).then(|| value.checked_div(p))
        }
    }
}

fn string_array(value: &str, target: &DataType) -> Result<ArrayRef, Mismatch> {
    match target {
        DataType::Utf8 => Ok(Arc::new(StringArray::from(vec![value]))),
        DataType::LargeUtf8 => Ok(Arc::new(LargeStringArray::from(vec![value]))),
        DataType::Utf8View => Ok(Arc::new(StringViewArray::from(vec![value]))),
        _ => Err(Mismatch::Kind),
    }
}

fn binary_array(value: &[u8], target: &DataType) -> Result<ArrayRef, Mismatch> {
    match target {
        DataType::Binary => Ok(Arc::new(BinaryArray::from(vec![value]))),
        DataType::LargeBinary => Ok(Arc::new(LargeBinaryArray::from(vec![value]))),
        DataType::BinaryView => Ok(Arc::new(BinaryViewArray::from(vec![value]))),
        DataType::FixedSizeBinary(length) => fixed_size_binary_array(value, *length),
        _ => Err(Mismatch::Kind),
    }
}

fn fixed_size_binary_array(value: &[u8], length: i32) -> Result<ArrayRef, Mismatch> {
    if usize::try_from(length).ok() != Some(value.len()) {
        return Err(Mismatch::Range(format!(
            "it has {} byte(s) and the column holds exactly {length}",
            value.len()
        )));
    }
    FixedSizeBinaryArray::try_new_with_len(length, Buffer::from(value.to_vec()), None, 1)
        .map(|array| Arc::new(array) as ArrayRef)
        .map_err(|error| Mismatch::Range(error.to_string()))
}

macro_rules! value_from {
    ($variant:ident <- $($source:ty),+) => {
        $(impl From<$source> for Value {
            fn from(value: $source) -> Self {
                Value::$variant(value.into())
            }
        })+
    };
}

value_from!(Boolean <- bool);
value_from!(Int64 <- i8, i16, i32, i64);
value_from!(UInt64 <- u8, u16, u32, u64);
value_from!(Float64 <- f32, f64);
value_from!(Utf8 <- &str, String);
value_from!(Binary <- Vec<u8>, &[u8]);

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(value: &[u8; N]) -> Self {
        Value::Binary(value.to_vec())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Utf8(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// A primary-key value: one [`Value`] per key column, in key order.
///
/// Build one from a single value (`Key::from(42u64)`, `Key::from("acme")`), from a tuple for a
/// composite key (`Key::from(("acme", 1_700_000_000_i64))`, up to 4 components), or from a
/// `Vec<Value>`. Each component is coerced to its key column's type like a filter literal (see
/// the module documentation); a key never holds NULL.
///
/// ```
/// use damselfly::{Key, Value};
///
/// let key = Key::from(("acme", 1_700_000_000_i64));
/// assert_eq!(key.values(), &[Value::from("acme"), Value::Int64(1_700_000_000)]);
/// assert_eq!(key.to_string(), "(acme, 1700000000)");
/// assert_eq!(Key::from(42u64), Key::new(vec![Value::UInt64(42)]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    values: Vec<Value>,
}

impl Key {
    /// A key with these components, one per key column in key order.
    pub fn new(values: Vec<Value>) -> Key {
        Key { values }
    }

    /// The components, one per key column in key order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The components, consuming the key.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// One one-row array per key column, each of that column's type (the value type for a
    /// Dictionary column), built by [`Value::to_array`].
    pub(crate) fn to_columns(&self, key_fields: &[&Field]) -> Result<Vec<ArrayRef>, ExprError> {
        if self.values.len() != key_fields.len() {
            return Err(ExprError::KeyArity {
                expected: key_fields.len(),
                found: self.values.len(),
                key_columns: key_fields
                    .iter()
                    .map(|field| field.name().clone())
                    .collect(),
            });
        }
        self.values
            .iter()
            .zip(key_fields)
            .map(|(value, field)| match value {
                Value::Null => Err(ExprError::NullKey {
                    column: field.name().clone(),
                }),
                value => value.to_array(field.data_type(), field.name()),
            })
            .collect()
    }
}

impl fmt::Display for Key {
    /// The components in parentheses: `(acme, 1700000000)`, `(42)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (index, value) in self.values.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{value}")?;
        }
        f.write_str(")")
    }
}

macro_rules! key_from_scalar {
    ($($source:ty),+) => {
        $(impl From<$source> for Key {
            fn from(value: $source) -> Self {
                Key::new(vec![value.into()])
            }
        })+
    };
}

key_from_scalar!(bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);
key_from_scalar!(&str, String, &String, Vec<u8>, &[u8], Value);

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(value: &[u8; N]) -> Self {
        Key::new(vec![value.into()])
    }
}

impl<T: Into<Value>> From<Option<T>> for Key {
    fn from(value: Option<T>) -> Self {
        Key::new(vec![value.into()])
    }
}

impl From<Vec<Value>> for Key {
    fn from(values: Vec<Value>) -> Self {
        Key::new(values)
    }
}

macro_rules! key_from_tuple {
    ($($name:ident),+) => {
        impl<$($name: Into<Value>),+> From<($($name,)+)> for Key {
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> Self {
                Key::new(vec![$($name.into()),+])
            }
        }
    };
}

key_from_tuple!(A, B);
key_from_tuple!(A, B, C);
key_from_tuple!(A, B, C, D);
