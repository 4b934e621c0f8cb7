//! Binlog row events → the loader's row changes (reference drainer.md §4.1): inserts carry every
//! writable column (missing ones filled with their default or zero value, §2.2), updates the
//! decoded old and new values, deletes every decoded column. Values are keyed by column name.
//! [`DmlSlices`] translates a transaction a slice at a time, consuming its raw rows; the names
//! every change carries are shared through a [`NameCache`], so a row costs no name allocations.

use std::collections::HashMap;
use std::sync::Arc;

use binlog_loader::{Columns, Dml, DmlKind, Name, Row};
use binlog_proto::binlog::{PrewriteValue, TableMutation};
use tidb_codec::mutation::{self, DecodedRow};
use tidb_codec::value::missing_column_value;
use tidb_codec::{ColumnInfo, ColumnValue, TableInfo};

use super::{EventCursor, RowError, RowKind, TranslateError, resolve_tables, take_next_row};
use crate::schema::Catalog;

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
    /// Which columns the row being translated carried (kept to reuse the allocation).
    present: Vec<bool>,
}

impl<'a> DmlSlices<'a> {
    pub fn new(
        commit_ts: i64,
        prewrite: &'a mut PrewriteValue,
        catalog: &'a Catalog,
        names: &mut NameCache,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<DmlSlices<'a>, TranslateError> {
        let targets = resolve_tables(commit_ts, prewrite, catalog, keep)?;
        let changes = targets
            .into_iter()
            .zip(prewrite.mutations.iter_mut())
            .filter_map(|(target, mutation)| {
                target.map(|(database, table)| Change {
                    names: names.get(database, table),
                    table,
                    mutation,
                })
            })
            .collect();
        Ok(DmlSlices {
            commit_ts,
            changes,
            current: 0,
            cursor: EventCursor::default(),
            present: Vec::new(),
        })
    }

    /// The next row changes, in statement order, until their estimated size
    /// ([`Dml::approx_bytes`]) reaches `max_bytes` (at least one change); `None` once every
    /// change was returned.
    pub fn next_slice(&mut self, max_bytes: usize) -> Result<Option<Vec<Dml>>, TranslateError> {
        let mut slice = Vec::with_capacity(self.remaining_events().min(MAX_PRESIZED_SLICE));
        let mut bytes = 0usize;
        while bytes < max_bytes {
            let Some(Change {
                names,
                table,
                mutation,
            }) = self.changes.get_mut(self.current)
            else {
                break;
            };
            let (commit_ts, table_id) = (self.commit_ts, mutation.table_id);
            let row_error = |source: RowError| TranslateError::Row {
                commit_ts,
                table: format!("{}.{}", names.database, table.name.o),
                table_id,
                source,
            };
            let Some(next) = take_next_row(mutation, &mut self.cursor) else {
                self.current += 1;
                self.cursor = EventCursor::default();
                continue;
            };
            let (kind, row) = next.map_err(row_error)?;
            let dml = to_dml(names, table, kind, &row, &mut self.present).map_err(row_error)?;
            bytes = bytes.saturating_add(dml.approx_bytes());
            slice.push(dml);
        }
        Ok((!slice.is_empty()).then_some(slice))
    }

    /// Row events not yet translated (an upper bound of the changes still to come).
    fn remaining_events(&self) -> usize {
        let events: usize = self.changes[self.current.min(self.changes.len())..]
            .iter()
            .map(|change| change.mutation.sequence.len())
            .sum();
        events.saturating_sub(self.cursor.sequence)
    }
}

/// Changes a slice is allocated for at most before it grows: most transactions are small, and
/// a huge one is cut into slices by bytes anyway.
const MAX_PRESIZED_SLICE: usize = 1024;

/// One mutation to translate, with its table's shared names.
struct Change<'a> {
    names: Arc<TableNames>,
    table: &'a TableInfo,
    mutation: &'a mut TableMutation,
}

/// The names a table's row changes share: its database's, its own, and its columns' in name
/// order (the loader wants a change's values by column name, which costs nothing when they come
/// sorted), each column with its position in the table definition and whether it is writable;
/// and the two column lists rows share: the writable columns (inserts, updates) and every
/// column (deletes).
#[derive(Debug)]
struct TableNames {
    database: Name,
    table: Name,
    columns: Vec<NamedColumn>,
    writable: Columns,
    all: Columns,
    /// For each column of the table definition (by position), its place in `writable`.
    writable_slot: Vec<Option<usize>>,
}

/// A column of [`TableNames`]: where it is in the table definition, its shared name, and whether
/// inserts and updates write it.
#[derive(Debug)]
struct NamedColumn {
    position: usize,
    name: Name,
    writable: bool,
}

impl TableNames {
    fn new(database: &str, table: &TableInfo) -> TableNames {
        let mut columns: Vec<NamedColumn> = table
            .cols
            .iter()
            .enumerate()
            .map(|(position, col)| NamedColumn {
                position,
                name: Name::from(col.name.o.as_str()),
                writable: writable(col),
            })
            .collect();
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        let list = |writable_only: bool| -> Columns {
            columns
                .iter()
                .filter(|c| c.writable || !writable_only)
                .map(|c| c.name.clone())
                .collect()
        };
        let mut writable_slot = vec![None; table.cols.len()];
        for (slot, named) in columns.iter().filter(|c| c.writable).enumerate() {
            writable_slot[named.position] = Some(slot);
        }
        TableNames {
            database: database.into(),
            table: table.name.o.as_str().into(),
            writable: list(true),
            all: list(false),
            columns,
            writable_slot,
        }
    }

    /// Whether these are still the names of `table` in `database` (a DDL may have renamed or
    /// reshaped it, or changed a column's state, since).
    fn describe(&self, database: &str, table: &TableInfo) -> bool {
        *self.database == *database
            && *self.table == *table.name.o
            && self.columns.len() == table.cols.len()
            && self.columns.iter().all(|named| {
                table.cols.get(named.position).is_some_and(|col| {
                    *col.name.o == *named.name && writable(col) == named.writable
                })
            })
    }

    /// The table's columns in name order (only writable ones when `writable_only`), each with
    /// its shared name.
    fn columns<'t>(
        &'t self,
        table: &'t TableInfo,
        writable_only: bool,
    ) -> impl Iterator<Item = (&'t ColumnInfo, &'t Name)> {
        self.columns
            .iter()
            .filter(move |named| named.writable || !writable_only)
            .filter_map(|named| table.cols.get(named.position).map(|col| (col, &named.name)))
    }
}

/// Tables whose names a [`NameCache`] keeps before it starts afresh.
const CACHED_TABLES: usize = 4096;

/// Shared names per table id, checked against the table definition at every use, so a DDL
/// never leaves stale names behind. Keep one for the life of the translation.
#[derive(Debug, Default)]
pub struct NameCache {
    tables: HashMap<i64, Arc<TableNames>>,
}

impl NameCache {
    fn get(&mut self, database: &str, table: &TableInfo) -> Arc<TableNames> {
        if let Some(names) = self.tables.get(&table.id)
            && names.describe(database, table)
        {
            return names.clone();
        }
        if self.tables.len() >= CACHED_TABLES {
            self.tables.clear();
        }
        let names = Arc::new(TableNames::new(database, table));
        self.tables.insert(table.id, names.clone());
        names
    }
}

/// One raw row, from the mutation's list `kind`, as the loader's row change (`present`: scratch
/// space for inserts).
fn to_dml(
    names: &TableNames,
    table: &TableInfo,
    kind: RowKind,
    raw: &[u8],
    present: &mut Vec<bool>,
) -> Result<Dml, RowError> {
    let (kind, values, old_values) = match kind {
        RowKind::Inserted => (
            DmlKind::Insert,
            inserted_row(names, table, raw, present)?,
            Row::default(),
        ),
        RowKind::Updated => {
            let (old, new) = mutation::decode_update(table, raw)?;
            (
                DmlKind::Update,
                named(names, table, new, true)?,
                named(names, table, old, true)?,
            )
        }
        RowKind::Deleted => (
            DmlKind::Delete,
            named(names, table, mutation::decode_delete(table, raw)?, false)?,
            Row::default(),
        ),
    };
    Ok(Dml {
        database: names.database.clone(),
        table: names.table.clone(),
        kind,
        values,
        old_values,
    })
}

fn writable(col: &ColumnInfo) -> bool {
    col.is_public() && !col.is_generated()
}

/// Every writable column of a raw inserted row, each value decoded straight into its place
/// (inserts are most of any workload); a column the row lacks gets its default (or NULL, or its
/// type's zero value), as TiDB would have stored it. `present`: scratch space.
fn inserted_row(
    names: &TableNames,
    table: &TableInfo,
    raw: &[u8],
    present: &mut Vec<bool>,
) -> Result<Row, RowError> {
    let slots = names.writable.len();
    let mut values = vec![ColumnValue::Null; slots];
    present.clear();
    present.resize(slots, false);
    mutation::decode_insert_each(table, raw, |index, value| {
        if let Some(&Some(slot)) = names.writable_slot.get(index) {
            values[slot] = value;
            present[slot] = true;
        }
    })?;
    for (slot, (col, _)) in names.columns(table, true).enumerate() {
        if !present[slot] {
            values[slot] = missing_column_value(col)?;
        }
    }
    Ok(Row::new(names.writable.clone(), values)?)
}

/// The decoded columns by name (only writable ones when `writable_only`). A row with every
/// column (TiDB writes them all) shares the table's list.
fn named(
    names: &TableNames,
    table: &TableInfo,
    row: DecodedRow,
    writable_only: bool,
) -> Result<Row, RowError> {
    let shared = if writable_only {
        &names.writable
    } else {
        &names.all
    };
    let mut decoded = row.values;
    let mut values = Vec::with_capacity(shared.len());
    // The names of the values so far, once a column turned out to be missing.
    let mut present: Option<Vec<Name>> = None;
    for (i, (col, name)) in names.columns(table, writable_only).enumerate() {
        match decoded.take(col.id) {
            Some(value) => {
                values.push(value);
                if let Some(present) = &mut present {
                    present.push(name.clone());
                }
            }
            None if present.is_none() => present = Some(shared[..i].to_vec()),
            None => {}
        }
    }
    let columns = present.map_or_else(|| shared.clone(), Columns::from);
    Ok(Row::new(columns, values)?)
}

#[cfg(test)]
mod tests {
    use binlog_loader::{DmlKind, Row};
    use tidb_codec::{ColumnValue, mutation};

    use binlog_loader::Dml;
    use binlog_proto::binlog::PrewriteValue;

    use super::{DmlSlices, NameCache};
    use crate::schema::Catalog;
    use crate::translate::TranslateError;
    use crate::translate::tests::{orders, prewrite};

    /// The row changes of one transaction for the tables `keep(database, table)` accepts, all at once
    /// (see [`DmlSlices`]); the raw rows are taken out of `prewrite`.
    fn dmls(
        commit_ts: i64,
        prewrite: &mut PrewriteValue,
        catalog: &Catalog,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<Dml>, TranslateError> {
        let mut names = NameCache::default();
        let mut slices = DmlSlices::new(commit_ts, prewrite, catalog, &mut names, keep)?;
        Ok(slices.next_slice(usize::MAX)?.unwrap_or_default())
    }

    fn named(pairs: &[(&str, ColumnValue)]) -> Row {
        Row::from_iter(pairs.iter().map(|(n, v)| ((*n).into(), v.clone())))
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
                .all(|d| &*d.database == "shop" && &*d.table == "orders")
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
        assert_eq!(changes[1].old_values.get("note"), Some(&ColumnValue::Null));
        assert_eq!(
            changes[1].values.get("note"),
            Some(&ColumnValue::Text("x".into()))
        );
        assert_eq!(changes[2].values.get("id"), Some(&ColumnValue::Int(2)));
        assert!(
            changes[0].values.same_columns(&changes[1].values),
            "an update of every column names the columns an insert does"
        );
    }

    #[test]
    fn a_row_lacking_a_column_names_only_the_columns_it_has() {
        let (catalog, table) = orders();
        let mut value = prewrite(&table);
        value.mutations[0].deleted_rows[0] = mutation::encode_delete(
            &table,
            &[(1, ColumnValue::Int(2)), (3, ColumnValue::Int(5))],
            None,
        )
        .unwrap()
        .into();
        let changes = dmls(100, &mut value, &catalog, |_, _| true).unwrap();
        assert_eq!(
            changes[2].values,
            named(&[("id", ColumnValue::Int(2)), ("qty", ColumnValue::Int(5))])
        );
        assert!(changes[0].values.same_columns(&changes[1].values));
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
        let mut names = NameCache::default();
        let mut slices =
            DmlSlices::new(100, &mut value, &catalog, &mut names, |_, _| true).unwrap();
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
                .all(|list| list.iter().all(prost::bytes::Bytes::is_empty)),
            "every raw row was taken out once translated"
        );
    }
}
