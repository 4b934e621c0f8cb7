//! Binlogs → the Kafka sink's secondary binlog messages (`slave.binlog.Binlog`, reference
//! drainer.md §6.2), the format TiDB's binlog reader and the original arbiter consume: one message
//! per transaction, one `Table` per changed table with its column list and unique keys, and every
//! row positional over all the table's columns.
//!
//! TIMESTAMP values are shown in the drainer host's zone, as the original's were (see
//! [`super::zone`]). Where the original was weak: a column an update or delete image lacks gets
//! its default (the original emitted NULL), and `time_zone` gives the zone's offset at the commit
//! (`+08:00`), which a consumer can set as its session's (the original left it empty).

use binlog_cluster::tso;
use binlog_proto::binlog::PrewriteValue;
use binlog_proto::slave_binlog as secondary;
use tidb_codec::mutation::DecodedRow;
use tidb_codec::schema::{schema_state, type_code};
use tidb_codec::value::missing_column_value;
use tidb_codec::{CodecError, ColumnInfo, ColumnValue, TableInfo};

use super::zone::ShownZone;
use super::{RowError, RowEvent, TableChange, TranslateError, row_events, table_changes};
use crate::schema::Catalog;

/// The key name TiDB gives a primary key.
const PRIMARY: &str = "PRIMARY";

/// The DML message of one transaction, or `None` when no row survives `keep(database, table)`;
/// TIMESTAMP values shown in `zone`.
pub fn dml_binlog(
    commit_ts: i64,
    prewrite: &PrewriteValue,
    catalog: &Catalog,
    keep: impl Fn(&str, &str) -> bool,
    zone: ShownZone,
) -> Result<Option<secondary::Binlog>, TranslateError> {
    let mut tables = Vec::new();
    for change in table_changes(commit_ts, prewrite, catalog, keep)? {
        let TableChange {
            database,
            table,
            mutation,
        } = change;
        let row_error = |source: RowError| change.row_error(commit_ts, source);
        let row = |image: DecodedRow| full_row(table, image, zone).map_err(|e| row_error(e.into()));
        let mut mutations = Vec::new();
        for event in row_events(table, mutation) {
            mutations.push(match event.map_err(row_error)? {
                RowEvent::Insert(image) => {
                    mutation_of(secondary::MutationType::Insert, row(image)?, None)
                }
                RowEvent::Update { old, new } => {
                    mutation_of(secondary::MutationType::Update, row(new)?, Some(row(old)?))
                }
                RowEvent::Delete(image) => {
                    mutation_of(secondary::MutationType::Delete, row(image)?, None)
                }
            });
        }
        if mutations.is_empty() {
            continue;
        }
        tables.push(secondary::Table {
            schema_name: Some(database.to_string()),
            table_name: Some(table.name.o.clone()),
            column_info: table.cols.iter().map(column_info).collect(),
            mutations,
            unique_keys: unique_keys(table),
        });
    }
    if tables.is_empty() {
        return Ok(None);
    }
    Ok(Some(secondary::Binlog {
        r#type: Some(secondary::BinlogType::Dml as i32),
        commit_ts: Some(commit_ts),
        dml_data: Some(secondary::DmlData { tables }),
        ddl_data: None,
        time_zone: Some(zone.offset_text(tso::rough_time(commit_ts).timestamp())),
    }))
}

/// The DDL message: the statement as TiDB ran it, with the database and table it applies to.
pub fn ddl_binlog(commit_ts: i64, database: &str, table: &str, query: &str) -> secondary::Binlog {
    secondary::Binlog {
        r#type: Some(secondary::BinlogType::Ddl as i32),
        commit_ts: Some(commit_ts),
        dml_data: None,
        ddl_data: Some(secondary::DdlData {
            schema_name: Some(database.to_string()),
            table_name: Some(table.to_string()),
            ddl_query: Some(query.as_bytes().to_vec()),
        }),
        time_zone: None,
    }
}

fn mutation_of(
    tp: secondary::MutationType,
    row: secondary::Row,
    change_row: Option<secondary::Row>,
) -> secondary::TableMutation {
    secondary::TableMutation {
        r#type: tp as i32,
        row,
        change_row,
    }
}

fn column_info(col: &ColumnInfo) -> secondary::ColumnInfo {
    let ft = &col.field_type;
    secondary::ColumnInfo {
        name: Some(col.name.o.clone()),
        mysql_type: Some(ft.type_name().to_string()),
        is_primary_key: Some(col.is_pk()),
        flen: Some(i32::try_from(ft.flen).unwrap_or(i32::MAX)),
        decimal: Some(i32::try_from(ft.decimal).unwrap_or(i32::MAX)),
    }
}

/// The primary key (synthesised from the handle column when the table has one) and every public
/// unique index.
fn unique_keys(table: &TableInfo) -> Vec<secondary::Key> {
    let handle = table.pk_handle_column().map(|col| secondary::Key {
        name: Some(PRIMARY.to_string()),
        column_names: vec![col.name.o.clone()],
    });
    let mut indexes: Vec<_> = table
        .indexes()
        .iter()
        .filter(|index| {
            (index.is_unique || index.is_primary) && index.state == schema_state::PUBLIC
        })
        .collect();
    // The primary key first, as consumers pick the first usable key.
    indexes.sort_by_key(|index| !index.is_primary);
    handle
        .into_iter()
        .chain(indexes.into_iter().map(|index| secondary::Key {
            name: Some(if index.is_primary {
                PRIMARY.to_string()
            } else {
                index.idx_name.o.clone()
            }),
            column_names: index.idx_cols.iter().map(|c| c.name.o.clone()).collect(),
        }))
        .collect()
}

/// Every column of the table, in order; a column the image lacks gets its default or zero value.
/// The image's values move into the message.
fn full_row(
    table: &TableInfo,
    mut image: DecodedRow,
    zone: ShownZone,
) -> Result<secondary::Row, CodecError> {
    let columns = table
        .cols
        .iter()
        .map(|col| match image.values.take(col.id) {
            Some(value) => Ok(column(col, zone.show(value))),
            None => missing_column_value(col).map(|value| column(col, zone.show(value))),
        })
        .collect::<Result<_, _>>()?;
    Ok(secondary::Row { columns })
}

/// One value in the field its type calls for (§6.2): integers as int64 or uint64, floats as
/// double, decimals, times and years as text, character strings as string, binary strings, BIT
/// and JSON as bytes, ENUM and SET as their number.
fn column(col: &ColumnInfo, value: ColumnValue) -> secondary::Column {
    let mut column = secondary::Column::default();
    match value {
        ColumnValue::Int(year) if col.field_type.tp == type_code::YEAR => {
            column.string_value = Some(year.to_string())
        }
        ColumnValue::Null => column.is_null = Some(true),
        ColumnValue::Int(i) => column.int64_value = Some(i),
        ColumnValue::Uint(u) => column.uint64_value = Some(u),
        ColumnValue::Float(f) => column.double_value = Some(f64::from(f)),
        ColumnValue::Double(f) => column.double_value = Some(f),
        ColumnValue::Text(s) => column.string_value = Some(s),
        ColumnValue::Bytes(b) => column.bytes_value = Some(b),
        ColumnValue::Enum { index, .. } => column.uint64_value = Some(index),
        ColumnValue::Set { bits, .. } => column.uint64_value = Some(bits),
        ColumnValue::Bit { value, width } => {
            let bytes = value.to_be_bytes();
            column.bytes_value = Some(bytes[bytes.len() - width.clamp(1, 8)..].to_vec());
        }
        ColumnValue::Json(_) => {
            column.bytes_value = Some(value.to_text().unwrap_or_default().into_bytes())
        }
        ColumnValue::Decimal(_) | ColumnValue::Time(_) | ColumnValue::Duration(_) => {
            column.string_value = value.to_text()
        }
    }
    column
}

#[cfg(test)]
mod tests {
    use binlog_proto::slave_binlog as secondary;

    use super::{ddl_binlog, dml_binlog};
    use crate::translate::tests::{orders, prewrite};
    use crate::translate::zone::ShownZone;

    #[test]
    fn a_transaction_is_one_message_with_positional_typed_rows_and_keys() {
        let (catalog, table) = orders();
        let shanghai = ShownZone::Fixed(8 * 3600);
        let binlog = dml_binlog(100, &prewrite(&table), &catalog, |_, _| true, shanghai)
            .unwrap()
            .unwrap();
        assert_eq!(binlog.commit_ts, Some(100));
        assert_eq!(binlog.r#type(), secondary::BinlogType::Dml);
        assert_eq!(binlog.time_zone.as_deref(), Some("+08:00"));
        let tables = binlog.dml_data.unwrap().tables;
        assert_eq!(tables.len(), 1);
        let orders = &tables[0];
        assert_eq!(orders.schema_name.as_deref(), Some("shop"));
        let names: Vec<_> = orders
            .column_info
            .iter()
            .map(|c| c.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["id", "note", "qty"]);
        assert_eq!(orders.column_info[0].mysql_type.as_deref(), Some("bigint"));
        assert_eq!(orders.column_info[0].is_primary_key, Some(true));
        assert_eq!(orders.unique_keys.len(), 1);
        assert_eq!(orders.unique_keys[0].name.as_deref(), Some("PRIMARY"));
        assert_eq!(orders.unique_keys[0].column_names, ["id"]);

        let kinds: Vec<_> = orders.mutations.iter().map(|m| m.r#type()).collect();
        assert_eq!(
            kinds,
            [
                secondary::MutationType::Insert,
                secondary::MutationType::Update,
                secondary::MutationType::Delete
            ]
        );
        let insert = &orders.mutations[0];
        assert_eq!(insert.row.columns.len(), 3, "every column, positionally");
        assert_eq!(insert.row.columns[2].int64_value, Some(7), "qty's default");
        assert_eq!(insert.row.columns[0].int64_value, Some(1));
        let update = &orders.mutations[1];
        let (new, old) = (&update.row, update.change_row.as_ref().unwrap());
        assert_eq!(old.columns[1].is_null, Some(true), "the old note was NULL");
        assert_eq!(new.columns[1].string_value.as_deref(), Some("x"));
    }

    #[test]
    fn nothing_kept_means_no_message() {
        let (catalog, table) = orders();
        let binlog = dml_binlog(
            100,
            &prewrite(&table),
            &catalog,
            |_, _| false,
            ShownZone::Local,
        )
        .unwrap();
        assert!(binlog.is_none());
    }

    #[test]
    fn a_ddl_carries_its_statement_database_and_table() {
        let binlog = ddl_binlog(7, "shop", "orders", "ALTER TABLE orders ADD c INT");
        assert_eq!(binlog.r#type(), secondary::BinlogType::Ddl);
        let ddl = binlog.ddl_data.unwrap();
        assert_eq!(ddl.schema_name.as_deref(), Some("shop"));
        assert_eq!(ddl.table_name.as_deref(), Some("orders"));
        assert_eq!(
            ddl.ddl_query.as_deref(),
            Some(&b"ALTER TABLE orders ADD c INT"[..])
        );
    }
}
