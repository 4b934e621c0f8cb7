//! Binlog row events → the loader's row changes (reference drainer.md §4.1): inserts carry every
//! writable column (missing ones filled with their default or zero value, §2.2), updates the
//! decoded old and new values, deletes every decoded column. Values are keyed by column name.
//! [`DmlSlices`] translates a transaction a slice at a time, consuming its raw rows.

use binlog_loader::{Dml, DmlKind};
use binlog_proto::binlog::{PrewriteValue, TableMutation};
use tidb_codec::mutation::DecodedRow;
use tidb_codec::value::missing_column_value;
use tidb_codec::{ColumnInfo, ColumnValue, TableInfo};

use super::{EventCursor, RowError, RowEvent, TranslateError, resolve_tables, take_next_event};
use crate::schema::Catalog;

/// The row changes of one transaction for the tables `keep(database, table)` accepts, all at once
/// (see [`DmlSlices`]); the raw rows are taken out of `prewrite`.
pub fn dmls(
    commit_ts: i64,
    prewrite: &mut PrewriteValue,
    catalog: &Catalog,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<Vec<Dml>, TranslateError> {
    let mut slices = DmlSlices::new(commit_ts, prewrite, catalog, keep)?;
    Ok(slices.next_slice(usize::MAX)?.unwrap_or_default())
}

/// The row changes of one transaction for the tables `keep(database, table)` accepts, translated
/// a slice at a time, so that a huge transaction is never held whole as row changes; each raw
/// row is taken out of the prewrite value (and freed) as it is translated. Mutations of tables
/// dropped or truncated since (replayed after a restart) are discarded. Every table is looked
/// up before the first slice: an unknown table fails before anything was translated.
pub struct DmlSlices<'a> {
    commit_ts: i64,
    /// The kept mutations.
    changes: Vec<Change<'a>>,
    /// The mutation being translated, and where in it.
    current: usize,
    cursor: EventCursor,
}

impl<'a> DmlSlices<'a> {
    pub fn new(
        commit_ts: i64,
        prewrite: &'a mut PrewriteValue,
        catalog: &'a Catalog,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<DmlSlices<'a>, TranslateError> {
        let targets = resolve_tables(commit_ts, prewrite, catalog, keep)?;
        let changes = targets
            .into_iter()
            .zip(prewrite.mutations.iter_mut())
            .filter_map(|(target, mutation)| {
                target.map(|(database, table)| Change::new(database, table, mutation))
            })
            .collect();
        Ok(DmlSlices {
            commit_ts,
            changes,
            current: 0,
            cursor: EventCursor::default(),
        })
    }

    /// The next row changes, in statement order, until their estimated size
    /// ([`Dml::approx_bytes`]) reaches `max_bytes` (at least one change); `None` once every
    /// change was returned.
    pub fn next_slice(&mut self, max_bytes: usize) -> Result<Option<Vec<Dml>>, TranslateError> {
        let mut slice = Vec::new();
        let mut bytes = 0usize;
        while bytes < max_bytes {
            let Some(Change {
                database,
                table,
                mutation,
                by_name,
            }) = self.changes.get_mut(self.current)
            else {
                break;
            };
            let (commit_ts, table_id) = (self.commit_ts, mutation.table_id);
            let row_error = |source: RowError| TranslateError::Row {
                commit_ts,
                table: format!("{database}.{}", table.name.o),
                table_id,
                source,
            };
            let Some(event) = take_next_event(table, mutation, &mut self.cursor) else {
                self.current += 1;
                self.cursor = EventCursor::default();
                continue;
            };
            let event = event.map_err(row_error)?;
            let dml = to_dml(database, table, by_name, event).map_err(|e| row_error(e.into()))?;
            bytes = bytes.saturating_add(dml.approx_bytes());
            slice.push(dml);
        }
        Ok((!slice.is_empty()).then_some(slice))
    }
}

/// One mutation to translate, with its table's columns in name order: the loader sorts a
/// change's values by column name, which costs almost nothing when they come sorted.
struct Change<'a> {
    database: &'a str,
    table: &'a TableInfo,
    mutation: &'a mut TableMutation,
    by_name: Vec<&'a ColumnInfo>,
}

impl<'a> Change<'a> {
    fn new(database: &'a str, table: &'a TableInfo, mutation: &'a mut TableMutation) -> Self {
        let mut by_name: Vec<&ColumnInfo> = table.cols.iter().collect();
        by_name.sort_by(|a, b| a.name.o.cmp(&b.name.o));
        Change {
            database,
            table,
            mutation,
            by_name,
        }
    }
}

/// One row event as the loader's row change; `columns` are the table's, in name order.
fn to_dml(
    database: &str,
    table: &TableInfo,
    columns: &[&ColumnInfo],
    event: RowEvent,
) -> Result<Dml, tidb_codec::CodecError> {
    let (kind, values, old_values) = match event {
        RowEvent::Insert(row) => (DmlKind::Insert, insert_values(columns, row)?, Vec::new()),
        RowEvent::Update { old, new } => (
            DmlKind::Update,
            named(columns, new, true),
            named(columns, old, true),
        ),
        RowEvent::Delete(row) => (DmlKind::Delete, named(columns, row, false), Vec::new()),
    };
    Ok(Dml {
        database: database.to_string(),
        table: table.name.o.clone(),
        kind,
        values,
        old_values,
    })
}

fn writable(col: &ColumnInfo) -> bool {
    col.is_public() && !col.is_generated()
}

/// Every writable column of an inserted row; a column the row lacks gets its default (or NULL,
/// or its type's zero value), as TiDB would have stored it. Values move out of the decoded row.
fn insert_values(
    columns: &[&ColumnInfo],
    row: DecodedRow,
) -> Result<Vec<(String, ColumnValue)>, tidb_codec::CodecError> {
    let mut values = row.values;
    columns
        .iter()
        .filter(|col| writable(col))
        .map(|col| {
            let value = match values.remove(&col.id) {
                Some(value) => value,
                None => missing_column_value(col)?,
            };
            Ok((col.name.o.clone(), value))
        })
        .collect()
}

/// The decoded columns by name (only writable ones when `writable_only`).
fn named(
    columns: &[&ColumnInfo],
    row: DecodedRow,
    writable_only: bool,
) -> Vec<(String, ColumnValue)> {
    let mut values = row.values;
    columns
        .iter()
        .filter(|col| !writable_only || writable(col))
        .filter_map(|col| values.remove(&col.id).map(|v| (col.name.o.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use binlog_loader::DmlKind;
    use tidb_codec::ColumnValue;

    use super::{DmlSlices, dmls};
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
        let changes = dmls(100, &mut prewrite(&table), &catalog, |_, _| true).unwrap();
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
            dmls(100, &mut prewrite(&table), &catalog, |db, _| db != "shop")
                .unwrap()
                .is_empty()
        );
        let drop = serde_json::json!({"id": 13, "type": 4, "schema_id": 10, "table_id": 11, "state": 6,
            "binlog": {"SchemaVersion": 3}});
        catalog
            .apply(&serde_json::from_value(drop).unwrap())
            .unwrap();
        assert!(
            dmls(100, &mut prewrite(&table), &catalog, |_, _| true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unknown_table_id_is_an_error_naming_it() {
        let (_, table) = orders();
        let err = dmls(
            100,
            &mut prewrite(&table),
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
        let err = dmls(100, &mut value, &catalog, |_, _| true).unwrap_err();
        assert!(err.to_string().contains("inserted row #1"), "{err}");
    }

    #[test]
    fn slices_hold_about_the_byte_budget_and_consume_the_raw_rows() {
        let (catalog, table) = orders();
        let mut value = prewrite(&table);
        let whole = dmls(100, &mut prewrite(&table), &catalog, |_, _| true).unwrap();
        let mut slices = DmlSlices::new(100, &mut value, &catalog, |_, _| true).unwrap();
        let mut sliced = Vec::new();
        while let Some(slice) = slices.next_slice(1).unwrap() {
            assert_eq!(slice.len(), 1, "a budget of one byte still makes progress");
            sliced.extend(slice);
        }
        assert_eq!(sliced, whole);
        let rows = &value.mutations[0];
        assert!(
            [&rows.inserted_rows, &rows.updated_rows, &rows.deleted_rows]
                .iter()
                .all(|list| list.iter().all(Vec::is_empty)),
            "every raw row was taken out once translated"
        );
    }
}
