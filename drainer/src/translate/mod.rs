//! Translation of binlogs into what the sinks write, given the table definitions of the
//! [`crate::schema`] catalog (reference drainer.md §3.3, §4.1, §6.1).
//!
//! Pure: bytes and table definitions in, row changes out. [`row_events`] walks a
//! `TableMutation`'s sequence over its three row lists; [`sql`] turns the events into the
//! loader's row changes, [`pb`] into the file sink's `pb_binlog` messages.

pub mod pb;
pub mod sql;

use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
use tidb_codec::mutation::{self, DecodedRow};
use tidb_codec::{CodecError, TableInfo};

use crate::schema::{Catalog, TableLookup};

/// Why a binlog could not be translated. Each names the table and commit ts where known.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("binlog at commit ts {commit_ts}: the prewrite value does not decode: {source}")]
    Prewrite {
        commit_ts: i64,
        source: prost::DecodeError,
    },
    #[error(
        "binlog at commit ts {commit_ts}: table id {table_id} is not in the schema catalog (schema version {schema_version})"
    )]
    UnknownTable {
        commit_ts: i64,
        table_id: i64,
        schema_version: i64,
    },
    #[error("binlog at commit ts {commit_ts}: table `{table}` (id {table_id}): {source}")]
    Row {
        commit_ts: i64,
        table: String,
        table_id: i64,
        source: RowError,
    },
}

/// What is wrong with one mutation's rows.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("row data does not decode: {0}")]
    Codec(#[from] CodecError),
    #[error("the sequence names {kind} row #{index}, but the mutation has only {available}")]
    SequenceOverrun {
        kind: &'static str,
        index: usize,
        available: usize,
    },
    #[error(
        "unsupported mutation type {0} in the sequence (only insert, update and delete-row are written by TiDB)"
    )]
    UnsupportedType(i32),
}

/// One row event of a mutation, decoded against its table.
#[derive(Debug, Clone, PartialEq)]
pub enum RowEvent {
    Insert(DecodedRow),
    Update { old: DecodedRow, new: DecodedRow },
    Delete(DecodedRow),
}

/// The mutation's row events in statement order (its `sequence`), each decoded on demand.
pub fn row_events<'a>(
    table: &'a TableInfo,
    mutation: &'a TableMutation,
) -> impl Iterator<Item = Result<RowEvent, RowError>> + 'a {
    let (mut inserts, mut updates, mut deletes) = (0usize, 0usize, 0usize);
    mutation.sequence.iter().map(move |&tp| {
        let take = |rows: &'a [Vec<u8>], cursor: &mut usize, kind: &'static str| {
            let row = rows.get(*cursor).ok_or(RowError::SequenceOverrun {
                kind,
                index: *cursor,
                available: rows.len(),
            })?;
            *cursor += 1;
            Ok::<_, RowError>(row.as_slice())
        };
        match MutationType::try_from(tp) {
            Ok(MutationType::Insert) => {
                let row = take(&mutation.inserted_rows, &mut inserts, "inserted")?;
                Ok(RowEvent::Insert(mutation::decode_insert(table, row)?))
            }
            Ok(MutationType::Update) => {
                let row = take(&mutation.updated_rows, &mut updates, "updated")?;
                let (old, new) = mutation::decode_update(table, row)?;
                Ok(RowEvent::Update { old, new })
            }
            Ok(MutationType::DeleteRow) => {
                let row = take(&mutation.deleted_rows, &mut deletes, "deleted")?;
                Ok(RowEvent::Delete(mutation::decode_delete(table, row)?))
            }
            _ => Err(RowError::UnsupportedType(tp)),
        }
    })
}

/// One mutation with the table it changes.
pub(crate) struct TableChange<'a> {
    pub database: &'a str,
    pub table: &'a TableInfo,
    pub mutation: &'a TableMutation,
}

impl TableChange<'_> {
    /// `source` with the transaction and table it happened in.
    pub fn row_error(&self, commit_ts: i64, source: RowError) -> TranslateError {
        TranslateError::Row {
            commit_ts,
            table: format!("{}.{}", self.database, self.table.name.o),
            table_id: self.mutation.table_id,
            source,
        }
    }
}

/// The mutations of a transaction on the tables `keep(database, table)` accepts, each with the
/// table definition it was encoded with. Mutations of tables dropped or truncated since
/// (replayed after a restart) are skipped; a table the catalog never knew is an error.
pub(crate) fn table_changes<'a>(
    commit_ts: i64,
    prewrite: &'a PrewriteValue,
    catalog: &'a Catalog,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<Vec<TableChange<'a>>, TranslateError> {
    let mut changes = Vec::with_capacity(prewrite.mutations.len());
    for mutation in &prewrite.mutations {
        match catalog.table_for_change(mutation.table_id, prewrite.schema_version) {
            TableLookup::Found { database, table } => {
                if keep(database, &table.name.o) {
                    changes.push(TableChange {
                        database,
                        table,
                        mutation,
                    });
                }
            }
            TableLookup::Gone => {}
            TableLookup::Unknown => {
                return Err(TranslateError::UnknownTable {
                    commit_ts,
                    table_id: mutation.table_id,
                    schema_version: prewrite.schema_version,
                });
            }
        }
    }
    Ok(changes)
}

/// Approximate in-memory size of a mutation's row data, for byte budgets.
pub fn mutation_bytes(mutation: &TableMutation) -> usize {
    let rows = |rows: &[Vec<u8>]| rows.iter().map(Vec::len).sum::<usize>();
    rows(&mutation.inserted_rows) + rows(&mutation.updated_rows) + rows(&mutation.deleted_rows)
}

#[cfg(test)]
pub(crate) mod tests {
    use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
    use tidb_codec::schema::{flag, type_code};
    use tidb_codec::{ColumnInfo, ColumnValue, FieldType, TableInfo, mutation};

    use crate::schema::Catalog;

    /// `shop.orders(id bigint primary key, note varchar(20) null, qty int not null default 7)`,
    /// table id 11, in a catalog at schema version 2.
    pub(crate) fn orders() -> (Catalog, TableInfo) {
        let mut id = FieldType::new(type_code::LONGLONG);
        id.flag = flag::PRI_KEY | flag::NOT_NULL;
        let mut note = FieldType::new(type_code::VARCHAR);
        note.charset = "utf8mb4".into();
        let mut qty = FieldType::new(type_code::LONG);
        qty.flag = flag::NOT_NULL;
        let mut table = TableInfo::new(
            11,
            "orders",
            vec![
                ColumnInfo::new(1, "id", 0, id),
                ColumnInfo::new(2, "note", 1, note),
                ColumnInfo::new(3, "qty", 2, qty),
            ],
        );
        table.pk_is_handle = true;
        table.cols[2].origin_default = Some(serde_json::json!("7"));
        let db = serde_json::json!({"id": 10, "type": 1, "schema_id": 10, "state": 6,
            "binlog": {"SchemaVersion": 1, "DBInfo": {"id": 10, "db_name": {"O": "shop", "L": "shop"}, "state": 5}}});
        let create = serde_json::json!({"id": 12, "type": 3, "schema_id": 10, "table_id": 11, "state": 6,
            "binlog": {"SchemaVersion": 2, "TableInfo": table}});
        let mut catalog = Catalog::new();
        catalog.apply(&serde_json::from_value(db).unwrap()).unwrap();
        catalog
            .apply(&serde_json::from_value(create).unwrap())
            .unwrap();
        (catalog, table)
    }

    /// Insert id 1 (note NULL, qty omitted), update it to note "x", delete id 2.
    pub(crate) fn prewrite(table: &TableInfo) -> PrewriteValue {
        let insert = mutation::encode_insert(
            table,
            &[(1, ColumnValue::Int(1)), (2, ColumnValue::Null)],
            None,
        )
        .unwrap();
        let old = [
            (1, ColumnValue::Int(1)),
            (2, ColumnValue::Null),
            (3, ColumnValue::Int(7)),
        ];
        let new = [
            (1, ColumnValue::Int(1)),
            (2, ColumnValue::Text("x".into())),
            (3, ColumnValue::Int(7)),
        ];
        let update = mutation::encode_update(table, &old, &new, None).unwrap();
        let delete = mutation::encode_delete(
            table,
            &[
                (1, ColumnValue::Int(2)),
                (2, ColumnValue::Null),
                (3, ColumnValue::Int(5)),
            ],
            None,
        )
        .unwrap();
        PrewriteValue {
            schema_version: 2,
            mutations: vec![TableMutation {
                table_id: 11,
                inserted_rows: vec![insert],
                updated_rows: vec![update],
                deleted_rows: vec![delete],
                sequence: vec![
                    MutationType::Insert as i32,
                    MutationType::Update as i32,
                    MutationType::DeleteRow as i32,
                ],
                ..TableMutation::default()
            }],
        }
    }
}
