//! A row's values with the names of their columns.
//!
//! Every row change of a table names the same columns, so the names are one shared list and a
//! row holds its values and a reference to that list: one reference count per row, not one per
//! value. This matters because rows are built on the drainer's translating thread and dropped
//! on the loader's: every shared count a row touches is a cache line the two cores pass back
//! and forth.

use std::fmt;
use std::sync::Arc;

use tidb_codec::ColumnValue;

use crate::txn::Name;

/// Column names, in a row's order. Build one per table and share it between its rows.
pub type Columns = Arc<[Name]>;

/// Values and the columns they belong to, in the same order. The empty row (an insert's old
/// values) allocates nothing.
#[derive(Clone, Default)]
pub struct Row {
    columns: Option<Columns>,
    values: Vec<ColumnValue>,
}

/// Why [`Row::new`] refused its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a row of {values} values cannot name {columns} columns")]
pub struct ColumnCountMismatch {
    pub columns: usize,
    pub values: usize,
}

impl Row {
    /// `values[i]` is the value of `columns[i]`.
    pub fn new(columns: Columns, values: Vec<ColumnValue>) -> Result<Row, ColumnCountMismatch> {
        if columns.len() != values.len() {
            return Err(ColumnCountMismatch {
                columns: columns.len(),
                values: values.len(),
            });
        }
        Ok(Row {
            columns: Some(columns),
            values,
        })
    }

    pub fn columns(&self) -> &[Name] {
        self.columns.as_deref().unwrap_or_default()
    }

    pub fn values(&self) -> &[ColumnValue] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// (column, value) pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Name, &ColumnValue)> {
        self.columns().iter().zip(&self.values)
    }

    /// The value of `column` (names compare case-insensitively, as MySQL's do).
    pub fn get(&self, column: &str) -> Option<&ColumnValue> {
        self.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(column))
            .map(|(_, value)| value)
    }

    /// Whether both rows name the same columns in the same order. Rows of one table share their
    /// list, so this is usually one pointer comparison.
    pub fn same_columns(&self, other: &Row) -> bool {
        match (&self.columns, &other.columns) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    /// Keeps the columns `keep` accepts and orders them by name. The shared list is kept when
    /// nothing changes (the usual case: producers share lists already in name order).
    pub fn retain_sorted(&mut self, keep: impl Fn(&str) -> bool) {
        let columns = self.columns();
        if columns.is_sorted() && columns.iter().all(|name| keep(name)) {
            return;
        }
        let values = std::mem::take(&mut self.values);
        let mut pairs: Vec<(Name, ColumnValue)> = self
            .columns()
            .iter()
            .cloned()
            .zip(values)
            .filter(|(name, _)| keep(name))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        *self = Row::from_iter(pairs);
    }
}

/// A row with a column list of its own (tests, and rows built one at a time).
impl FromIterator<(Name, ColumnValue)> for Row {
    fn from_iter<I: IntoIterator<Item = (Name, ColumnValue)>>(pairs: I) -> Row {
        let (columns, values): (Vec<Name>, Vec<ColumnValue>) = pairs.into_iter().unzip();
        if values.is_empty() {
            return Row::default();
        }
        Row {
            columns: Some(columns.into()),
            values,
        }
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.values == other.values && self.columns() == other.columns()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Columns {
        list.iter().map(|n| Name::from(*n)).collect()
    }

    #[test]
    fn values_must_match_their_columns() {
        let err = Row::new(names(&["a", "b"]), vec![ColumnValue::Int(1)]).unwrap_err();
        assert_eq!(err.to_string(), "a row of 1 values cannot name 2 columns");
    }

    #[test]
    fn rows_sharing_a_list_have_the_same_columns() {
        let shared = names(&["a", "b"]);
        let one = Row::new(shared.clone(), vec![ColumnValue::Int(1), ColumnValue::Null]).unwrap();
        let two = Row::new(shared, vec![ColumnValue::Int(2), ColumnValue::Null]).unwrap();
        let own = Row::from_iter([
            ("a".into(), ColumnValue::Int(3)),
            ("b".into(), ColumnValue::Null),
        ]);
        let other = Row::from_iter([("a".into(), ColumnValue::Int(3))]);
        assert!(one.same_columns(&two) && one.same_columns(&own));
        assert!(!one.same_columns(&other) && !one.same_columns(&Row::default()));
        assert!(Row::default().same_columns(&Row::from_iter([])));
        assert_eq!(own.get("A"), Some(&ColumnValue::Int(3)));
        assert_eq!(own.get("c"), None);
    }

    #[test]
    fn retain_sorted_keeps_a_sorted_shared_list_and_rebuilds_otherwise() {
        let shared = names(&["a", "b"]);
        let mut row = Row::new(
            shared.clone(),
            vec![ColumnValue::Int(1), ColumnValue::Int(2)],
        )
        .unwrap();
        row.retain_sorted(|_| true);
        assert!(Arc::ptr_eq(row.columns.as_ref().unwrap(), &shared));

        let mut row = Row::from_iter([
            ("c".into(), ColumnValue::Int(3)),
            ("g".into(), ColumnValue::Int(9)),
            ("a".into(), ColumnValue::Int(1)),
        ]);
        row.retain_sorted(|name| name != "g");
        assert_eq!(
            row,
            Row::from_iter([
                ("a".into(), ColumnValue::Int(1)),
                ("c".into(), ColumnValue::Int(3)),
            ])
        );
    }
}
