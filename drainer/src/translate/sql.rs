//! Binlog row events → the loader's row changes (reference drainer.md §4.1): inserts carry every
//! writable column (missing ones filled with their default or zero value, §2.2), updates the
//! decoded old and new values, deletes every decoded column. Values are keyed by column name.

use binlog_loader::{Dml, DmlKind};
use binlog_proto::binlog::PrewriteValue;
use tidb_codec::mutation::DecodedRow;
use tidb_codec::value::missing_column_value;
use tidb_codec::{ColumnValue, TableInfo};

use super::{RowError, RowEvent, TableChange, TranslateError, row_events, table_changes};
use crate::schema::Catalog;

/// The row changes of one transaction for the tables `keep(database, table)` accepts. Mutations of
/// tables dropped or truncated since (replayed after a restart) are discarded.
pub fn dmls(
    commit_ts: i64,
    prewrite: &PrewriteValue,
    catalog: &Catalog,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<Vec<Dml>, TranslateError> {
    let mut out = Vec::new();
    for change in table_changes(commit_ts, prewrite, catalog, keep)? {
        let TableChange {
            database,
            table,
            mutation,
        } = change;
        let row_error = |source: RowError| change.row_error(commit_ts, source);
        for event in row_events(table, mutation) {
            let dml = match event.map_err(row_error)? {
                RowEvent::Insert(row) => Dml {
                    database: database.to_string(),
                    table: table.name.o.clone(),
                    kind: DmlKind::Insert,
                    values: insert_values(table, &row).map_err(|e| row_error(e.into()))?,
                    old_values: Vec::new(),
                },
                RowEvent::Update { old, new } => Dml {
                    database: database.to_string(),
                    table: table.name.o.clone(),
                    kind: DmlKind::Update,
                    values: named(table, new, true),
                    old_values: named(table, old, true),
                },
                RowEvent::Delete(row) => Dml {
                    database: database.to_string(),
                    table: table.name.o.clone(),
                    kind: DmlKind::Delete,
                    values: named(table, row, false),
                    old_values: Vec::new(),
                },
            };
            out.push(dml);
        }
    }
    Ok(out)
}

fn writable(col: &tidb_codec::ColumnInfo) -> bool {
    col.is_public() && !col.is_generated()
}

/// Every writable column of an inserted row; a column the row lacks gets its default (or NULL,
/// or its type's zero value), as TiDB would have stored it.
fn insert_values(
    table: &TableInfo,
    row: &DecodedRow,
) -> Result<Vec<(String, ColumnValue)>, tidb_codec::CodecError> {
    table
        .cols
        .iter()
        .filter(|col| writable(col))
        .map(|col| {
            let value = match row.values.get(&col.id) {
                Some(value) => value.clone(),
                None => missing_column_value(col)?,
            };
            Ok((col.name.o.clone(), value))
        })
        .collect()
}

/// The decoded columns by name (only writable ones when `writable_only`).
fn named(table: &TableInfo, row: DecodedRow, writable_only: bool) -> Vec<(String, ColumnValue)> {
    let mut values = row.values;
    table
        .cols
        .iter()
        .filter(|col| !writable_only || writable(col))
        .filter_map(|col| values.remove(&col.id).map(|v| (col.name.o.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use binlog_loader::DmlKind;
    use tidb_codec::ColumnValue;

    use super::dmls;
    use crate::translate::TranslateError;
    use crate::translate::tests::{orders, prewrite};

    fn named(pairs: &[(&str, ColumnValue)]) -> Vec<(String, ColumnValue)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn row_events_become_named_changes_in_statement_order() {
        let (catalog, table) = orders();
        let changes = dmls(100, &prewrite(&table), &catalog, |_, _| true).unwrap();
        let kinds: Vec<DmlKind> = changes.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [DmlKind::Insert, DmlKind::Update, DmlKind::Delete]);
        assert!(
            changes
                .iter()
                .all(|d| d.database == "shop" && d.table == "orders")
        );
        // The int PK comes from the handle; the omitted NOT NULL column gets its default.
        assert_eq!(
            changes[0].values,
            named(&[
                ("id", ColumnValue::Int(1)),
                ("note", ColumnValue::Null),
                ("qty", ColumnValue::Int(7))
            ])
        );
        assert_eq!(
            changes[1].old_values[1],
            ("note".to_string(), ColumnValue::Null)
        );
        assert_eq!(
            changes[1].values[1],
            ("note".to_string(), ColumnValue::Text("x".into()))
        );
        assert_eq!(
            changes[2].values[0],
            ("id".to_string(), ColumnValue::Int(2))
        );
    }

    #[test]
    fn filtered_tables_and_dropped_tables_yield_nothing() {
        let (mut catalog, table) = orders();
        assert!(
            dmls(100, &prewrite(&table), &catalog, |db, _| db != "shop")
                .unwrap()
                .is_empty()
        );
        let drop = serde_json::json!({"id": 13, "type": 4, "schema_id": 10, "table_id": 11, "state": 6,
            "binlog": {"SchemaVersion": 3}});
        catalog
            .apply(&serde_json::from_value(drop).unwrap())
            .unwrap();
        assert!(
            dmls(100, &prewrite(&table), &catalog, |_, _| true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unknown_table_id_is_an_error_naming_it() {
        let (_, table) = orders();
        let err = dmls(
            100,
            &prewrite(&table),
            &crate::schema::Catalog::new(),
            |_, _| true,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                TranslateError::UnknownTable {
                    table_id: 11,
                    commit_ts: 100,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_sequence_longer_than_its_rows_is_reported() {
        let (catalog, table) = orders();
        let mut value = prewrite(&table);
        value.mutations[0].sequence.push(0);
        let err = dmls(100, &value, &catalog, |_, _| true).unwrap_err();
        assert!(err.to_string().contains("inserted row #1"), "{err}");
    }
}
