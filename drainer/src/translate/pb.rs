//! Binlogs → the file sink's `pb_binlog` messages (reference drainer.md §6.1), readable by
//! Reparo: one `Event` per row event, each column a marshalled `column` whose values are the
//! `formatData` datum in the value codec. Updates put the old row in `value` and the new one in
//! `changed_value`. TIMESTAMP values are shown in the drainer host's zone, as the original's
//! were (see [`super::zone`]).

use binlog_proto::binlog::PrewriteValue;
use binlog_proto::pb_binlog;
use prost::Message;
use tidb_codec::datum::encode_value;
use tidb_codec::mutation::DecodedRow;
use tidb_codec::value::missing_column_value;
use tidb_codec::{ColumnInfo, ColumnValue, TableInfo};

use super::zone::ShownZone;
use super::{RowError, RowEvent, TableChange, TranslateError, row_events, table_changes};
use crate::schema::Catalog;

/// The DML message of one transaction, or `None` when no row survives `keep(database, table)`;
/// TIMESTAMP values shown in `zone`.
pub fn dml_binlog(
    commit_ts: i64,
    prewrite: &PrewriteValue,
    catalog: &Catalog,
    keep: impl Fn(&str, &str) -> bool,
    zone: ShownZone,
) -> Result<Option<pb_binlog::Binlog>, TranslateError> {
    let mut events = Vec::new();
    for change in table_changes(commit_ts, prewrite, catalog, keep)? {
        let TableChange {
            database,
            table,
            mutation,
        } = change;
        let row_error = |source: RowError| change.row_error(commit_ts, source);
        for event in row_events(table, mutation) {
            let (tp, row) = match event.map_err(row_error)? {
                RowEvent::Insert(row) => (
                    pb_binlog::EventType::Insert,
                    insert_columns(table, &row, zone).map_err(|e| row_error(e.into()))?,
                ),
                RowEvent::Update { old, new } => (
                    pb_binlog::EventType::Update,
                    update_columns(table, &old, &new, zone).map_err(|e| row_error(e.into()))?,
                ),
                RowEvent::Delete(row) => (
                    pb_binlog::EventType::Delete,
                    present_columns(table, &row, zone).map_err(|e| row_error(e.into()))?,
                ),
            };
            events.push(pb_binlog::Event {
                schema_name: Some(database.to_string()),
                table_name: Some(table.name.o.clone()),
                tp: Some(tp as i32),
                row,
            });
        }
    }
    if events.is_empty() {
        return Ok(None);
    }
    Ok(Some(pb_binlog::Binlog {
        tp: Some(pb_binlog::BinlogType::Dml as i32),
        commit_ts: Some(commit_ts),
        dml_data: Some(pb_binlog::DmlData { events }),
        ddl_query: None,
    }))
}

/// The DDL message: the statement prefixed with `use <db>;` unless it creates the database or
/// the database is unknown.
pub fn ddl_binlog(
    commit_ts: i64,
    database: &str,
    query: &str,
    creates_database: bool,
) -> pb_binlog::Binlog {
    let query = query.trim().trim_end_matches(';');
    let text = if database.is_empty() || creates_database {
        format!("{query};")
    } else {
        format!("use `{}`; {query};", database.replace('`', "``"))
    };
    pb_binlog::Binlog {
        tp: Some(pb_binlog::BinlogType::Ddl as i32),
        commit_ts: Some(commit_ts),
        dml_data: None,
        ddl_query: Some(text.into_bytes()),
    }
}

fn encoded(value: &ColumnValue, zone: ShownZone) -> Result<Vec<u8>, tidb_codec::CodecError> {
    let datum = match value {
        ColumnValue::Time(time) => ColumnValue::Time(zone.show_time(*time)).format_datum(),
        other => other.format_datum(),
    };
    encode_value(&[datum])
}

fn column(
    col: &ColumnInfo,
    value: &ColumnValue,
    changed: Option<&ColumnValue>,
    zone: ShownZone,
) -> Result<Vec<u8>, tidb_codec::CodecError> {
    let message = pb_binlog::Column {
        name: Some(col.name.o.clone()),
        tp: Some(vec![col.field_type.tp]),
        mysql_type: Some(col.field_type.type_name().to_string()),
        value: Some(encoded(value, zone)?),
        changed_value: changed.map(|v| encoded(v, zone)).transpose()?,
    };
    Ok(message.encode_to_vec())
}

/// Every column of the table; absent ones get their default or zero value.
fn insert_columns(
    table: &TableInfo,
    row: &DecodedRow,
    zone: ShownZone,
) -> Result<Vec<Vec<u8>>, tidb_codec::CodecError> {
    table
        .cols
        .iter()
        .map(|col| match row.values.get(col.id) {
            Some(value) => column(col, value, None, zone),
            None => column(col, &missing_column_value(col)?, None, zone),
        })
        .collect()
}

/// Writable columns decoded in both images: old in `value`, new in `changed_value`.
fn update_columns(
    table: &TableInfo,
    old: &DecodedRow,
    new: &DecodedRow,
    zone: ShownZone,
) -> Result<Vec<Vec<u8>>, tidb_codec::CodecError> {
    table
        .cols
        .iter()
        .filter(|col| col.is_writable())
        .filter_map(|col| {
            let before = old.values.get(col.id)?;
            let after = new.values.get(col.id)?;
            Some(column(col, before, Some(after), zone))
        })
        .collect()
}

/// The columns present in the row.
fn present_columns(
    table: &TableInfo,
    row: &DecodedRow,
    zone: ShownZone,
) -> Result<Vec<Vec<u8>>, tidb_codec::CodecError> {
    table
        .cols
        .iter()
        .filter_map(|col| {
            row.values
                .get(col.id)
                .map(|value| column(col, value, None, zone))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
    use binlog_proto::pb_binlog;
    use prost::Message;
    use tidb_codec::datum::{Datum, decode_value};
    use tidb_codec::schema::{flag, type_code};
    use tidb_codec::{ColumnInfo, ColumnValue, FieldType, TableInfo, Time, TimeKind, mutation};

    use super::{ddl_binlog, dml_binlog};
    use crate::translate::tests::{in_shop, orders, prewrite};
    use crate::translate::zone::ShownZone;

    fn column(bytes: &[u8]) -> pb_binlog::Column {
        pb_binlog::Column::decode(bytes).unwrap()
    }

    #[test]
    fn events_carry_named_typed_value_encoded_columns() {
        let (catalog, table) = orders();
        let binlog = dml_binlog(
            100,
            &prewrite(&table),
            &catalog,
            |_, _| true,
            ShownZone::Local,
        )
        .unwrap()
        .unwrap();
        assert_eq!(binlog.commit_ts, Some(100));
        let events = binlog.dml_data.unwrap().events;
        assert_eq!(events.len(), 3);
        let insert = &events[0];
        assert_eq!(insert.schema_name.as_deref(), Some("shop"));
        assert_eq!(insert.tp, Some(pb_binlog::EventType::Insert as i32));
        let id = column(&insert.row[0]);
        assert_eq!(id.name.as_deref(), Some("id"));
        assert_eq!(id.mysql_type.as_deref(), Some("bigint"));
        assert_eq!(
            decode_value(id.value.as_deref().unwrap()).unwrap(),
            [Datum::Int(1)]
        );
        let update = &events[1];
        let note = column(&update.row[1]);
        assert_eq!(
            decode_value(note.value.as_deref().unwrap()).unwrap(),
            [Datum::Null]
        );
        assert_eq!(
            decode_value(note.changed_value.as_deref().unwrap()).unwrap(),
            [Datum::Bytes(b"x".to_vec())]
        );
    }

    /// `shop.visits(id bigint primary key, at timestamp)`: one row inserted at 20:30 UTC.
    #[test]
    fn timestamps_are_shown_in_the_zone_asked_for() {
        let mut id = FieldType::new(type_code::LONGLONG);
        id.flag = flag::PRI_KEY | flag::NOT_NULL;
        let mut table = TableInfo::new(
            11,
            "visits",
            vec![
                ColumnInfo::new(1, "id", 0, id),
                ColumnInfo::new(2, "at", 1, FieldType::new(type_code::TIMESTAMP)),
            ],
        );
        table.pk_is_handle = true;
        let catalog = in_shop(&table);
        let at = Time::parse("2026-12-31 20:30:00", TimeKind::Timestamp, 0).unwrap();
        let insert = mutation::encode_insert(
            &table,
            &[(1, ColumnValue::Int(1)), (2, ColumnValue::Time(at))],
            None,
        )
        .unwrap();
        let prewrite = PrewriteValue {
            schema_version: 2,
            mutations: vec![TableMutation {
                table_id: 11,
                inserted_rows: vec![insert.into()],
                sequence: vec![MutationType::Insert as i32],
                ..TableMutation::default()
            }],
        };
        let shown = |zone| {
            let binlog = dml_binlog(100, &prewrite, &catalog, |_, _| true, zone)
                .unwrap()
                .unwrap();
            let event = &binlog.dml_data.unwrap().events[0];
            decode_value(column(&event.row[1]).value.as_deref().unwrap()).unwrap()
        };
        assert_eq!(
            shown(ShownZone::Fixed(8 * 3600)),
            [Datum::Bytes(b"2027-01-01 04:30:00".to_vec())]
        );
        assert_eq!(
            shown(ShownZone::Fixed(0)),
            [Datum::Bytes(b"2026-12-31 20:30:00".to_vec())]
        );
    }

    #[test]
    fn ddl_statements_run_in_their_database() {
        let binlog = ddl_binlog(7, "shop", "ALTER TABLE orders ADD c INT;", false);
        assert_eq!(
            binlog.ddl_query.as_deref(),
            Some(&b"use `shop`; ALTER TABLE orders ADD c INT;"[..])
        );
        let create = ddl_binlog(8, "shop", "CREATE DATABASE shop", true);
        assert_eq!(
            create.ddl_query.as_deref(),
            Some(&b"CREATE DATABASE shop;"[..])
        );
    }
}
