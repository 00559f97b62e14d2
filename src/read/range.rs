//! The key range a scan's filter confines it to, so that sources and blocks outside it are never
//! read.
//!
//! Only constraints on the key are used, and a key's versions all share the key: skipping keys
//! outside the range can never let an older version stand in for a newer one (invariant 3).

use std::ops::Bound;

use arrow_array::{Array, ArrayRef};
use damselfly_actors::sst::KeyRange;
use damselfly_actors::table::{KeyBytes, TableSchema};

use crate::expr::Predicate;

/// Where a scan may find rows its filter keeps.
#[derive(Debug, Clone)]
pub(crate) struct ScanRange {
    /// The keys.
    pub(crate) keys: KeyRange,
    /// When the filter pins the whole key with equalities: the key and its one-row key columns,
    /// so that the scan is a point lookup (bloom filters, the block cache, an early stop).
    pub(crate) point: Option<(KeyBytes, Vec<ArrayRef>)>,
}

impl ScanRange {
    /// Every key.
    pub(crate) fn all() -> Self {
        Self {
            keys: KeyRange::all(),
            point: None,
        }
    }

    /// What `predicate` implies about the keys of `table`: the whole key, when equalities pin
    /// every key column; otherwise, for a one-column key, the range its comparisons, `between`s
    /// and `in_list`s allow, combined through `and` and `or`.
    pub(crate) fn of(predicate: Option<&Predicate>, table: &TableSchema) -> Self {
        let Some(predicate) = predicate else {
            return Self::all();
        };
        let names = table.key_names();
        let fields = table.key_fields();
        if let Some(columns) = predicate.equalities(&names)
            && columns
                .iter()
                .zip(&fields)
                .all(|(column, field)| column.data_type() == field.data_type())
            && let Ok(key) = table.encode_key(&columns)
        {
            return Self {
                keys: KeyRange {
                    lower: Bound::Included(key.clone()),
                    upper: Bound::Included(key.clone()),
                },
                point: Some((key, columns)),
            };
        }
        let ([name], [field]) = (&names[..], &fields[..]) else {
            return Self::all();
        };
        let encode = |literal: &ArrayRef| {
            (literal.data_type() == field.data_type())
                .then(|| table.encode_key(std::slice::from_ref(literal)).ok())
                .flatten()
        };
        let range = predicate.range_of(name, &encode);
        Self {
            keys: KeyRange {
                lower: range.lower,
                upper: range.upper,
            },
            point: None,
        }
    }

    /// Whether keys from `first` to `last` may hold keys of the range.
    pub(crate) fn overlaps(&self, first: &KeyBytes, last: &KeyBytes) -> bool {
        self.keys.above_lower(last.as_bytes()) && self.keys.below_upper(first.as_bytes())
    }
}
