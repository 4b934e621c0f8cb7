//! What the loader applies: one upstream transaction, either row changes or one DDL statement.

use std::sync::Arc;

use tidb_codec::ColumnValue;
use tidb_codec::json::Json;

/// A database, table or column name. Shared: every row change of a table refers to the same
/// names, so a change costs no allocation per value for them.
pub type Name = Arc<str>;

pub use crate::row::{Columns, Row};

/// One upstream transaction, identified by its commit ts.
#[derive(Clone, Debug, PartialEq)]
pub struct Txn {
    pub commit_ts: i64,
    pub change: TxnChange,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TxnChange {
    /// Row changes in the upstream's statement order (per table).
    Dml(Vec<Dml>),
    Ddl(Ddl),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DmlKind {
    Insert,
    Update,
    Delete,
}

/// One row change. Values are keyed by column name; for an update `old_values` holds the row
/// before the change and `values` the row after it; for insert and delete `old_values` is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Dml {
    pub database: Name,
    pub table: Name,
    pub kind: DmlKind,
    pub values: Row,
    pub old_values: Row,
}

/// One DDL statement, as the upstream ran it. `should_skip` DDLs are not executed but still
/// invalidate the loader's cached view of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Ddl {
    pub database: String,
    pub table: String,
    pub sql: String,
    pub should_skip: bool,
}

/// The smallest heap allocation, with the allocator's header (glibc: 32 bytes).
const MIN_ALLOCATION: usize = 32;
/// Fixed per-value cost in the size estimate: the value itself (names are shared). Rows are
/// mostly such overhead, so the budget must count it or it bounds a fraction of the real memory.
const VALUE_OVERHEAD: usize = size_of::<ColumnValue>();
/// Fixed per-row-change cost in the size estimate: the change as the loader holds it until it
/// is applied (with its table), plus the allocations of its two rows.
const DML_OVERHEAD: usize = size_of::<crate::sql::RowChange>() + 2 * MIN_ALLOCATION;
/// Fixed cost of each node of a JSON value.
const JSON_NODE_OVERHEAD: usize = 32;

impl Txn {
    /// An estimate of the memory this transaction holds, for byte-bounded queues. Close enough
    /// to bound memory; not an exact allocation count.
    pub fn approx_bytes(&self) -> usize {
        64 + match &self.change {
            TxnChange::Dml(dmls) => dmls.iter().map(Dml::approx_bytes).sum(),
            TxnChange::Ddl(ddl) => ddl.database.len() + ddl.table.len() + ddl.sql.len(),
        }
    }
}

impl Dml {
    /// An estimate of the memory this row change holds (see [`Txn::approx_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        let values = |row: &Row| -> usize { row.values().iter().map(value_bytes).sum() };
        DML_OVERHEAD + values(&self.values) + values(&self.old_values)
    }
}

fn value_bytes(value: &ColumnValue) -> usize {
    VALUE_OVERHEAD
        + match value {
            ColumnValue::Text(s) => s.len(),
            ColumnValue::Bytes(b) => b.len(),
            ColumnValue::Enum { name, .. } => name.len(),
            ColumnValue::Set { names, .. } => names.len(),
            ColumnValue::Decimal(d) => d.int_digit_count() + d.frac_digit_count(),
            ColumnValue::Json(json) => json_bytes(json),
            _ => 0,
        }
}

fn json_bytes(json: &Json) -> usize {
    JSON_NODE_OVERHEAD
        + match json {
            Json::String(s) => s.len(),
            Json::Opaque { data, .. } => data.len(),
            Json::Array(items) => items.iter().map(json_bytes).sum(),
            Json::Object(members) => members
                .iter()
                .map(|(key, value)| key.len() + json_bytes(value))
                .sum(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_grows_with_payload() {
        let dml = |text: &str| Dml {
            database: "db".into(),
            table: "t".into(),
            kind: DmlKind::Insert,
            values: Row::from_iter([("c".into(), ColumnValue::Text(text.into()))]),
            old_values: Row::default(),
        };
        let small = Txn {
            commit_ts: 1,
            change: TxnChange::Dml(vec![dml("x")]),
        };
        let big = Txn {
            commit_ts: 1,
            change: TxnChange::Dml(vec![dml(&"x".repeat(10_000)), dml("y")]),
        };
        assert!(small.approx_bytes() < 500);
        assert!(big.approx_bytes() > 10_000);
        assert!(big.approx_bytes() < 11_000);
        let shared_names = |n: usize| Dml {
            values: Row::from_iter(vec![("c".into(), ColumnValue::Int(1)); n]),
            ..dml("")
        };
        assert!(
            shared_names(10).approx_bytes() - shared_names(0).approx_bytes()
                == 10 * size_of::<ColumnValue>(),
            "a value costs itself, not a name"
        );
    }
}
