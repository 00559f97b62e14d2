//! How filters print: SQL-like text (`score > 80 AND name LIKE 'a%'`).

use std::fmt;

use super::{Expr, Node};
use crate::value::Value;

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
