//! SQL statements for row changes (reference drainer.md §4.2, §4.3): pure text and parameters,
//! no connection.
//!
//! Identifiers are backquoted (embedded backquotes doubled), tables are `` `db`.`t` ``, column
//! lists follow the row's order (sorted by name by [`normalize`]) and values are always `?`
//! parameters, converted by [`to_param`] the way the original's `formatData` does (§3.4).
//! [`plan`] turns a chunk of row changes into statements, folding runs of inserts into one table
//! into multi-row `INSERT`/`REPLACE` statements.

use std::sync::Arc;

use mysql_async::Value;
use tidb_codec::ColumnValue;

use crate::table_info::TableInfo;
use crate::txn::{Dml, DmlKind, Name, Row};

/// The most placeholders one prepared statement may carry (the protocol's 16-bit count).
pub const MAX_PLACEHOLDERS: usize = u16::MAX as usize;
/// A multi-row statement stops growing past this estimated size, well below the usual
/// `max_allowed_packet` (MariaDB 16 MiB, MySQL 64 MiB); a single bigger row still goes alone.
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// One statement and its parameters, in placeholder order.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

/// A row change ready to be written: values normalized against the downstream table, which
/// travels with it so that workers need no lookups.
#[derive(Clone, Debug)]
pub struct RowChange {
    /// Commit ts of the upstream transaction the change belongs to (for error messages).
    pub commit_ts: i64,
    pub dml: Dml,
    pub table: Arc<TableInfo>,
}

/// A statement of a [`plan`] and the index of the first row change it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub statement: Statement,
    pub source: usize,
}

/// `` `name` `` with backquotes doubled.
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    push_ident(&mut quoted, name);
    quoted
}

/// `` `db`.`table` ``.
pub fn quote_table(database: &str, table: &str) -> String {
    let mut quoted = String::with_capacity(database.len() + table.len() + 5);
    push_ident(&mut quoted, database);
    quoted.push('.');
    push_ident(&mut quoted, table);
    quoted
}

/// Appends `` `name` `` with backquotes doubled. Statements are built for every chunk, so this
/// path avoids allocating per identifier.
fn push_ident(sql: &mut String, name: &str) {
    sql.push('`');
    for part in name.split_inclusive('`') {
        sql.push_str(part);
        if part.ends_with('`') {
            sql.push('`');
        }
    }
    sql.push('`');
}

/// The parameter for a value (§3.4): numbers and bytes as they are; decimal, date/time, TIME
/// and JSON as their text; ENUM, SET and BIT as unsigned numbers. TIMESTAMP values are UTC and
/// sent as such: the loader's sessions run with `time_zone = '+00:00'`.
pub fn to_param(value: &ColumnValue) -> Value {
    match value {
        ColumnValue::Null => Value::NULL,
        ColumnValue::Int(i) => Value::Int(*i),
        ColumnValue::Uint(u) => Value::UInt(*u),
        ColumnValue::Float(f) => Value::Float(*f),
        ColumnValue::Double(f) => Value::Double(*f),
        ColumnValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        ColumnValue::Bytes(b) => Value::Bytes(b.clone()),
        ColumnValue::Enum { index, .. } => Value::UInt(*index),
        ColumnValue::Set { bits, .. } => Value::UInt(*bits),
        ColumnValue::Bit { value, .. } => Value::UInt(*value),
        ColumnValue::Decimal(d) => {
            let mut text = Vec::new();
            d.write_text(&mut text);
            Value::Bytes(text)
        }
        ColumnValue::Time(_) | ColumnValue::Duration(_) | ColumnValue::Json(_) => {
            Value::Bytes(value.to_text().unwrap_or_default().into_bytes())
        }
    }
}

/// Prepares a change for SQL: drops values of columns generated downstream and sorts both rows
/// by column name.
pub fn normalize(dml: &mut Dml, table: &TableInfo) {
    for row in [&mut dml.values, &mut dml.old_values] {
        row.retain_sorted(|name| !table.is_generated(name));
    }
}

fn push_column_list(sql: &mut String, row: &Row) {
    for (i, name) in row.columns().iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        push_ident(sql, name);
    }
}

fn placeholders(count: usize) -> String {
    let mut text = String::with_capacity(count * 2 + 2);
    text.push('(');
    for i in 0..count {
        if i > 0 {
            text.push(',');
        }
        text.push('?');
    }
    text.push(')');
    text
}

/// `INSERT INTO t(cols) VALUES (..),(..)` (or `REPLACE`) for the longest prefix of `rows` (which
/// all have the same columns, in the same order, as the first) whose parameters stay within
/// [`MAX_STATEMENT_BYTES`], at least one row; and how many rows it writes. The size is counted
/// as the parameters are made, so the rows are read once.
pub fn insert_rows(rows: &[&Dml], replace: bool) -> (Statement, usize) {
    let Some(first) = rows.first() else {
        return (
            Statement {
                sql: String::new(),
                params: Vec::new(),
            },
            0,
        );
    };
    let verb = if replace { "REPLACE" } else { "INSERT" };
    let one_row = placeholders(first.values.len());
    let mut sql =
        String::with_capacity(64 + 16 * first.values.len() + rows.len() * (one_row.len() + 1));
    sql.push_str(verb);
    sql.push_str(" INTO ");
    push_ident(&mut sql, &first.database);
    sql.push('.');
    push_ident(&mut sql, &first.table);
    sql.push('(');
    push_column_list(&mut sql, &first.values);
    sql.push_str(") VALUES ");
    let mut params = Vec::with_capacity(rows.len() * first.values.len());
    let mut bytes = sql.len();
    let mut written = 0;
    for row in rows {
        let row_start = params.len();
        params.extend(row.values.values().iter().map(to_param));
        bytes += one_row.len() + params[row_start..].iter().map(param_bytes).sum::<usize>();
        if written > 0 && bytes > MAX_STATEMENT_BYTES {
            params.truncate(row_start);
            break;
        }
        if written > 0 {
            sql.push(',');
        }
        sql.push_str(&one_row);
        written += 1;
    }
    (Statement { sql, params }, written)
}

/// About the bytes a parameter takes in the statement's packet.
fn param_bytes(value: &Value) -> usize {
    match value {
        Value::Bytes(bytes) => bytes.len() + 9,
        _ => 9,
    }
}

/// `INSERT INTO t(cols) VALUES (..)` (or `REPLACE`) for one row.
pub fn insert(dml: &Dml, replace: bool) -> Statement {
    insert_rows(&[dml], replace).0
}

/// Appends ` WHERE …` identifying `row` (§4.2): the first unique key whose values are all
/// non-NULL, else every column of the row with `IS NULL` for NULLs.
fn push_where(row: &Row, table: &TableInfo, sql: &mut String, params: &mut Vec<Value>) {
    sql.push_str(" WHERE ");
    let conditions: Vec<(&str, &ColumnValue)> = match table.first_usable_key(row) {
        Some((key, values)) => key.columns.iter().map(String::as_str).zip(values).collect(),
        None => row.iter().map(|(name, value)| (&**name, value)).collect(),
    };
    for (i, (column, value)) in conditions.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(" AND ");
        }
        push_ident(sql, column);
        if *value == ColumnValue::Null {
            sql.push_str(" IS NULL");
        } else {
            sql.push_str(" = ?");
            params.push(to_param(value));
        }
    }
}

/// `UPDATE t SET a = ?,b = ? WHERE <old row> LIMIT 1`: every column of the new row is set,
/// changed or not.
pub fn update(dml: &Dml, table: &TableInfo) -> Statement {
    let mut sql = format!("UPDATE {} SET ", quote_table(&dml.database, &dml.table));
    let mut params = Vec::with_capacity(dml.values.len() + dml.old_values.len());
    for (i, (name, value)) in dml.values.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        push_ident(&mut sql, name);
        sql.push_str(" = ?");
        params.push(to_param(value));
    }
    push_where(&dml.old_values, table, &mut sql, &mut params);
    sql.push_str(" LIMIT 1");
    Statement { sql, params }
}

/// `DELETE FROM t WHERE <row> LIMIT 1` for `row`.
fn delete_row(dml: &Dml, row: &Row, table: &TableInfo) -> Statement {
    let mut sql = format!("DELETE FROM {}", quote_table(&dml.database, &dml.table));
    let mut params = Vec::new();
    push_where(row, table, &mut sql, &mut params);
    sql.push_str(" LIMIT 1");
    Statement { sql, params }
}

/// `DELETE FROM t WHERE <row> LIMIT 1` for a delete.
pub fn delete(dml: &Dml, table: &TableInfo) -> Statement {
    delete_row(dml, &dml.values, table)
}

/// Safe mode's first half of an update: `DELETE FROM t WHERE <old row> LIMIT 1`.
pub fn delete_old_row(dml: &Dml, table: &TableInfo) -> Statement {
    delete_row(dml, &dml.old_values, table)
}

/// Safe mode for a table without any unique key, where REPLACE cannot find an applied row:
/// `DELETE FROM t WHERE <row> LIMIT 1` of the row about to be written, so re-applying a change
/// leaves one copy, not two.
pub fn delete_new_row(dml: &Dml, table: &TableInfo) -> Statement {
    delete_row(dml, &dml.values, table)
}

/// Whether `next` can join a multi-row insert that starts with `first`.
fn same_insert_shape(first: &Dml, next: &Dml) -> bool {
    // Changes of one table share their names, so pointer equality settles most comparisons.
    let same = |a: &Name, b: &Name| Arc::ptr_eq(a, b) || a == b;
    next.kind == DmlKind::Insert
        && same(&next.table, &first.table)
        && same(&next.database, &first.database)
        && next.values.same_columns(&first.values)
}

/// The statements that apply `changes`. Normal mode: INSERT / UPDATE / DELETE. Safe mode
/// (§4.3), idempotent when re-applied: insert → REPLACE, update → DELETE by the old row then
/// REPLACE the new one, delete unchanged; on a table without unique keys (where REPLACE finds
/// nothing to replace) inserts and updates first delete one copy of the row they write.
///
/// The changes of one table keep their order, but the tables are taken one after the other (in
/// order of first appearance): changes to different tables never touch the same row, and a
/// chunk commits as one transaction, so only the number of statements changes. Consecutive
/// inserts into one table with the same columns then become one multi-row statement, bounded by
/// [`MAX_PLACEHOLDERS`] and [`MAX_STATEMENT_BYTES`]. Each statement names the index in
/// `changes` of the first change it writes.
pub fn plan(changes: &[RowChange], safe_mode: bool) -> Vec<Planned> {
    let order = by_table(changes);
    let mut planned = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let source = order[i];
        let change = &changes[source];
        let dml = &change.dml;
        let keyless = change.table.unique_keys.is_empty();
        let mut push = |statement| planned.push(Planned { statement, source });
        match dml.kind {
            DmlKind::Insert if safe_mode && keyless => {
                push(delete_new_row(dml, &change.table));
                push(insert(dml, false));
            }
            DmlKind::Insert => {
                let columns = dml.values.len().max(1);
                let mut end = i + 1;
                while let Some(next) = order.get(end).map(|&k| &changes[k].dml)
                    && same_insert_shape(dml, next)
                    && (end - i + 1) * columns <= MAX_PLACEHOLDERS
                {
                    end += 1;
                }
                let rows: Vec<&Dml> = order[i..end].iter().map(|&k| &changes[k].dml).collect();
                let (statement, written) = insert_rows(&rows, safe_mode);
                push(statement);
                i += written.max(1);
                continue;
            }
            DmlKind::Update if safe_mode => {
                push(delete_old_row(dml, &change.table));
                if keyless {
                    push(delete_new_row(dml, &change.table));
                }
                push(insert(dml, true));
            }
            DmlKind::Update => push(update(dml, &change.table)),
            DmlKind::Delete => push(delete(dml, &change.table)),
        }
        i += 1;
    }
    planned
}

/// Indexes of `changes`, grouped by table in order of the tables' first appearance, each
/// table's changes in their original order.
fn by_table(changes: &[RowChange]) -> Vec<usize> {
    let mut tables: Vec<(&str, &str)> = Vec::new();
    let mut grouped: Vec<(usize, usize)> = changes
        .iter()
        .enumerate()
        .map(|(index, change)| {
            let table = (&*change.dml.database, &*change.dml.table);
            let group = match tables.iter().position(|t| *t == table) {
                Some(group) => group,
                None => {
                    tables.push(table);
                    tables.len() - 1
                }
            };
            (group, index)
        })
        .collect();
    grouped.sort_unstable();
    grouped.into_iter().map(|(_, index)| index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_info::UniqueKey;
    use tidb_codec::decimal::Decimal;
    use tidb_codec::json::Json;
    use tidb_codec::time::{Duration, Time, TimeKind};

    fn table(keys: &[(&str, &[&str])]) -> Arc<TableInfo> {
        Arc::new(TableInfo {
            columns: Vec::new(),
            generated: vec!["g".into()],
            unique_keys: keys
                .iter()
                .map(|(name, columns)| UniqueKey {
                    name: name.to_string(),
                    columns: columns.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
        })
    }

    fn row(values: &[(&str, ColumnValue)]) -> Row {
        Row::from_iter(
            values
                .iter()
                .map(|(name, value)| (Name::from(*name), value.clone())),
        )
    }

    fn change(
        kind: DmlKind,
        values: &[(&str, ColumnValue)],
        old: &[(&str, ColumnValue)],
        info: &Arc<TableInfo>,
    ) -> RowChange {
        let mut dml = Dml {
            database: "d`b".into(),
            table: "t".into(),
            kind,
            values: row(values),
            old_values: row(old),
        };
        normalize(&mut dml, info);
        RowChange {
            commit_ts: 1,
            dml,
            table: info.clone(),
        }
    }

    fn sqls(planned: &[Planned]) -> Vec<&str> {
        planned.iter().map(|p| p.statement.sql.as_str()).collect()
    }

    use ColumnValue::{Int, Null, Text};

    #[test]
    fn identifiers_are_backquoted_with_backquotes_doubled() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("`"), "````");
        assert_eq!(quote_ident("x``"), "`x`````");
        assert_eq!(quote_ident(""), "``");
        assert_eq!(quote_table("d`b", "t"), "`d``b`.`t`");
    }

    #[test]
    fn insert_sorts_columns_and_drops_generated_ones() {
        let info = table(&[("PRIMARY", &["id"])]);
        let c = change(
            DmlKind::Insert,
            &[("name", Text("x".into())), ("id", Int(1)), ("g", Int(9))],
            &[],
            &info,
        );
        let s = insert(&c.dml, false);
        assert_eq!(s.sql, "INSERT INTO `d``b`.`t`(`id`,`name`) VALUES (?,?)");
        assert_eq!(s.params, [Value::Int(1), Value::Bytes(b"x".to_vec())]);
        assert!(insert(&c.dml, true).sql.starts_with("REPLACE INTO "));
    }

    #[test]
    fn update_and_delete_use_the_first_key_without_nulls() {
        let info = table(&[("PRIMARY", &["id"]), ("u", &["a", "b"])]);
        let c = change(
            DmlKind::Update,
            &[("id", Int(2)), ("a", Int(5)), ("b", Null)],
            &[("id", Int(1)), ("a", Int(5)), ("b", Null)],
            &info,
        );
        let s = update(&c.dml, &info);
        assert_eq!(
            s.sql,
            "UPDATE `d``b`.`t` SET `a` = ?,`b` = ?,`id` = ? WHERE `id` = ? LIMIT 1"
        );
        assert_eq!(
            s.params,
            [Value::Int(5), Value::NULL, Value::Int(2), Value::Int(1)]
        );

        let unique_only = table(&[("u", &["a", "b"])]);
        let d = change(
            DmlKind::Delete,
            &[("a", Int(5)), ("b", Int(6)), ("c", Null)],
            &[],
            &unique_only,
        );
        let s = delete(&d.dml, &unique_only);
        assert_eq!(
            s.sql,
            "DELETE FROM `d``b`.`t` WHERE `a` = ? AND `b` = ? LIMIT 1"
        );
        assert_eq!(s.params, [Value::Int(5), Value::Int(6)]);
    }

    #[test]
    fn rows_without_a_usable_key_match_every_column_with_is_null() {
        let info = table(&[("u", &["a"])]);
        let d = change(
            DmlKind::Delete,
            &[("b", Text("x".into())), ("a", Null)],
            &[],
            &info,
        );
        let s = delete(&d.dml, &info);
        assert_eq!(
            s.sql,
            "DELETE FROM `d``b`.`t` WHERE `a` IS NULL AND `b` = ? LIMIT 1"
        );
        assert_eq!(s.params, [Value::Bytes(b"x".to_vec())]);
    }

    #[test]
    fn consecutive_inserts_into_one_table_become_one_statement() {
        let info = table(&[("PRIMARY", &["id"])]);
        let ins = |id| change(DmlKind::Insert, &[("id", Int(id))], &[], &info);
        let upd = change(DmlKind::Update, &[("id", Int(3))], &[("id", Int(1))], &info);
        let del = change(DmlKind::Delete, &[("id", Int(3))], &[], &info);
        let chunk = vec![ins(1), ins(2), upd, ins(4), ins(5), ins(6), del];
        let planned = plan(&chunk, false);
        assert_eq!(
            sqls(&planned),
            [
                "INSERT INTO `d``b`.`t`(`id`) VALUES (?),(?)",
                "UPDATE `d``b`.`t` SET `id` = ? WHERE `id` = ? LIMIT 1",
                "INSERT INTO `d``b`.`t`(`id`) VALUES (?),(?),(?)",
                "DELETE FROM `d``b`.`t` WHERE `id` = ? LIMIT 1",
            ]
        );
        let sources: Vec<usize> = planned.iter().map(|p| p.source).collect();
        assert_eq!(sources, [0, 2, 3, 6]);
        assert_eq!(
            planned[2].statement.params,
            [Value::Int(4), Value::Int(5), Value::Int(6)]
        );
    }

    #[test]
    fn inserts_with_other_columns_or_tables_are_not_folded() {
        let info = table(&[("PRIMARY", &["id"])]);
        let a = change(DmlKind::Insert, &[("id", Int(1))], &[], &info);
        let b = change(
            DmlKind::Insert,
            &[("id", Int(2)), ("x", Int(0))],
            &[],
            &info,
        );
        let mut c = change(
            DmlKind::Insert,
            &[("id", Int(3)), ("x", Int(0))],
            &[],
            &info,
        );
        c.dml.table = "other".into();
        assert_eq!(plan(&[a, b, c], false).len(), 3);
    }

    #[test]
    fn interleaved_tables_are_planned_table_by_table_keeping_each_tables_order() {
        let info = table(&[("PRIMARY", &["id"])]);
        let on =
            |table: &str, kind, values: &[(&str, ColumnValue)], old: &[(&str, ColumnValue)]| {
                let mut c = change(kind, values, old, &info);
                c.dml.table = table.into();
                c
            };
        let chunk = vec![
            on("t", DmlKind::Insert, &[("id", Int(1))], &[]),
            on("u", DmlKind::Insert, &[("id", Int(1))], &[]),
            on("t", DmlKind::Delete, &[("id", Int(1))], &[]),
            on("u", DmlKind::Insert, &[("id", Int(2))], &[]),
            on("t", DmlKind::Insert, &[("id", Int(1))], &[]),
            on("t", DmlKind::Insert, &[("id", Int(2))], &[]),
            on("u", DmlKind::Update, &[("id", Int(3))], &[("id", Int(2))]),
        ];
        let planned = plan(&chunk, false);
        assert_eq!(
            sqls(&planned),
            [
                "INSERT INTO `d``b`.`t`(`id`) VALUES (?)",
                "DELETE FROM `d``b`.`t` WHERE `id` = ? LIMIT 1",
                "INSERT INTO `d``b`.`t`(`id`) VALUES (?),(?)",
                "INSERT INTO `d``b`.`u`(`id`) VALUES (?),(?)",
                "UPDATE `d``b`.`u` SET `id` = ? WHERE `id` = ? LIMIT 1",
            ]
        );
        let sources: Vec<usize> = planned.iter().map(|p| p.source).collect();
        assert_eq!(sources, [0, 2, 4, 1, 6]);
        assert_eq!(planned[3].statement.params, [Value::Int(1), Value::Int(2)]);
    }

    #[test]
    fn multi_row_statements_respect_the_placeholder_limit() {
        let info = table(&[("PRIMARY", &["id"])]);
        let columns = Row::from_iter((0..1000).map(|i| (format!("c{i:04}").into(), Int(i))));
        let chunk: Vec<RowChange> = (0..200)
            .map(|_| RowChange {
                commit_ts: 1,
                dml: Dml {
                    database: "d".into(),
                    table: "t".into(),
                    kind: DmlKind::Insert,
                    values: columns.clone(),
                    old_values: Row::default(),
                },
                table: info.clone(),
            })
            .collect();
        let planned = plan(&chunk, false);
        assert!(planned.len() > 1);
        assert!(
            planned
                .iter()
                .all(|p| p.statement.params.len() <= MAX_PLACEHOLDERS)
        );
        let total: usize = planned.iter().map(|p| p.statement.params.len()).sum();
        assert_eq!(total, 200 * 1000);
    }

    #[test]
    fn multi_row_statements_stop_at_the_byte_limit_but_hold_at_least_one_row() {
        let info = table(&[("PRIMARY", &["id"])]);
        let third = "x".repeat(MAX_STATEMENT_BYTES / 3);
        let over = "y".repeat(MAX_STATEMENT_BYTES + 1);
        let texts = [&third, &third, &third, &over, &third];
        let chunk: Vec<RowChange> = texts
            .iter()
            .enumerate()
            .map(|(id, text)| {
                let values = [("id", Int(id as i64)), ("v", Text((*text).clone()))];
                change(DmlKind::Insert, &values, &[], &info)
            })
            .collect();
        let planned = plan(&chunk, false);
        let rows: Vec<usize> = planned
            .iter()
            .map(|p| p.statement.params.len() / 2)
            .collect();
        let sources: Vec<usize> = planned.iter().map(|p| p.source).collect();
        assert_eq!(rows, [2, 1, 1, 1], "two thirds fit, a third third does not");
        assert_eq!(sources, [0, 2, 3, 4]);
        for p in &planned {
            let placeholders = p.statement.sql.matches('?').count();
            assert_eq!(
                placeholders,
                p.statement.params.len(),
                "{}",
                p.statement.sql
            );
        }
    }

    #[test]
    fn safe_mode_on_a_keyless_table_deletes_the_written_row_first() {
        let info = table(&[]);
        let chunk = vec![
            change(DmlKind::Insert, &[("a", Int(1))], &[], &info),
            change(DmlKind::Update, &[("a", Int(2))], &[("a", Int(1))], &info),
        ];
        let planned = plan(&chunk, true);
        assert_eq!(
            sqls(&planned),
            [
                "DELETE FROM `d``b`.`t` WHERE `a` = ? LIMIT 1",
                "INSERT INTO `d``b`.`t`(`a`) VALUES (?)",
                "DELETE FROM `d``b`.`t` WHERE `a` = ? LIMIT 1",
                "DELETE FROM `d``b`.`t` WHERE `a` = ? LIMIT 1",
                "REPLACE INTO `d``b`.`t`(`a`) VALUES (?)",
            ]
        );
        assert_eq!(planned[2].statement.params, [Value::Int(1)]);
        assert_eq!(planned[3].statement.params, [Value::Int(2)]);
    }

    #[test]
    fn safe_mode_replaces_and_deletes_the_old_row_of_updates() {
        let info = table(&[("PRIMARY", &["id"])]);
        let chunk = vec![
            change(
                DmlKind::Insert,
                &[("id", Int(1)), ("v", Int(1))],
                &[],
                &info,
            ),
            change(
                DmlKind::Insert,
                &[("id", Int(2)), ("v", Int(1))],
                &[],
                &info,
            ),
            change(
                DmlKind::Update,
                &[("id", Int(3)), ("v", Int(2))],
                &[("id", Int(1)), ("v", Int(1))],
                &info,
            ),
            change(
                DmlKind::Delete,
                &[("id", Int(2)), ("v", Int(1))],
                &[],
                &info,
            ),
        ];
        let planned = plan(&chunk, true);
        assert_eq!(
            sqls(&planned),
            [
                "REPLACE INTO `d``b`.`t`(`id`,`v`) VALUES (?,?),(?,?)",
                "DELETE FROM `d``b`.`t` WHERE `id` = ? LIMIT 1",
                "REPLACE INTO `d``b`.`t`(`id`,`v`) VALUES (?,?)",
                "DELETE FROM `d``b`.`t` WHERE `id` = ? LIMIT 1",
            ]
        );
        assert_eq!(planned[1].statement.params, [Value::Int(1)]);
        assert_eq!(planned[2].statement.params, [Value::Int(3), Value::Int(2)]);
    }

    #[test]
    fn values_become_parameters_like_format_data() {
        let time = Time::parse("2024-02-29 13:45:01.5", TimeKind::Timestamp, 1).unwrap();
        let duration = Duration::parse("-01:02:03", 0).unwrap();
        let cases = [
            (Null, Value::NULL),
            (Int(i64::MIN), Value::Int(i64::MIN)),
            (ColumnValue::Uint(u64::MAX), Value::UInt(u64::MAX)),
            (ColumnValue::Float(1.5), Value::Float(1.5)),
            (ColumnValue::Double(-2.25), Value::Double(-2.25)),
            (
                ColumnValue::Decimal(Decimal::parse("-12.340").unwrap()),
                Value::Bytes(b"-12.340".to_vec()),
            ),
            (
                ColumnValue::Time(time),
                Value::Bytes(b"2024-02-29 13:45:01.5".to_vec()),
            ),
            (
                ColumnValue::Duration(duration),
                Value::Bytes(b"-01:02:03".to_vec()),
            ),
            (
                ColumnValue::Json(Json::parse_text(r#"{"a":[1,true]}"#).unwrap()),
                Value::Bytes(br#"{"a": [1, true]}"#.to_vec()),
            ),
            (
                ColumnValue::Enum {
                    index: 2,
                    name: "b".into(),
                },
                Value::UInt(2),
            ),
            (
                ColumnValue::Set {
                    bits: 5,
                    names: "a,c".into(),
                },
                Value::UInt(5),
            ),
            (
                ColumnValue::Bit {
                    value: 0x201,
                    width: 2,
                },
                Value::UInt(0x201),
            ),
            (
                ColumnValue::Bytes(vec![0, 0xff]),
                Value::Bytes(vec![0, 0xff]),
            ),
        ];
        for (value, param) in cases {
            assert_eq!(to_param(&value), param, "{value:?}");
        }
    }
}
