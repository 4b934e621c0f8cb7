//! Translation of binlogs into what the sinks write, given the table definitions of the
//! [`crate::schema`] catalog (reference drainer.md §3.3, §4.1, §6.1).
//!
//! Pure: bytes and table definitions in, row changes out. [`row_events`] walks a
//! `TableMutation`'s sequence over its three row lists ([`take_next_row`] does the same one raw
//! row at a time, taking each out of the mutation to be decoded and freed); [`sql`] turns the
//! events into the loader's row changes, [`pb`] into the file sink's `pb_binlog` messages,
//! [`kafka`] into the Kafka sink's secondary binlog messages.

pub mod kafka;
pub mod pb;
pub mod sql;
pub mod zone;

use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
use prost::bytes::Bytes;
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
    #[error("the translated row is inconsistent: {0}")]
    Columns(#[from] binlog_loader::row::ColumnCountMismatch),
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
    let mut cursor = EventCursor::default();
    std::iter::from_fn(move || {
        let next = cursor.advance(&mutation.sequence)?;
        Some(next.and_then(|(kind, index)| {
            let rows = kind.rows(mutation);
            let row = rows
                .get(index)
                .ok_or_else(|| kind.overrun(index, rows.len()))?;
            kind.decode(table, row)
        }))
    })
}

/// Takes the next row event's raw row out of `mutation` (a slice of the pulled binlog's buffer,
/// which goes when its last slice does), with the list it came from, which says how to decode
/// it; `None` after the last event. Use one `cursor` per mutation, from its default.
pub(crate) fn take_next_row(
    mutation: &mut TableMutation,
    cursor: &mut EventCursor,
) -> Option<Result<(RowKind, Bytes), RowError>> {
    let next = cursor.advance(&mutation.sequence)?;
    Some(next.and_then(|(kind, index)| {
        let rows = kind.rows_mut(mutation);
        let available = rows.len();
        rows.get_mut(index)
            .map(std::mem::take)
            .map(|row| (kind, row))
            .ok_or_else(|| kind.overrun(index, available))
    }))
}

/// Where a walk over a mutation's `sequence` is: the next sequence entry, and the next row of
/// each of the three row lists.
#[derive(Debug, Clone, Default)]
pub struct EventCursor {
    sequence: usize,
    rows: [usize; 3],
}

impl EventCursor {
    /// The next event's row list and index in it; `None` at the end of `sequence`.
    fn advance(&mut self, sequence: &[i32]) -> Option<Result<(RowKind, usize), RowError>> {
        let tp = *sequence.get(self.sequence)?;
        self.sequence += 1;
        let kind = match MutationType::try_from(tp) {
            Ok(MutationType::Insert) => RowKind::Inserted,
            Ok(MutationType::Update) => RowKind::Updated,
            Ok(MutationType::DeleteRow) => RowKind::Deleted,
            _ => return Some(Err(RowError::UnsupportedType(tp))),
        };
        let index = self.rows[kind as usize];
        self.rows[kind as usize] += 1;
        Some(Ok((kind, index)))
    }
}

/// The three row lists of a `TableMutation`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowKind {
    Inserted,
    Updated,
    Deleted,
}

impl RowKind {
    fn rows(self, mutation: &TableMutation) -> &[Bytes] {
        match self {
            RowKind::Inserted => &mutation.inserted_rows,
            RowKind::Updated => &mutation.updated_rows,
            RowKind::Deleted => &mutation.deleted_rows,
        }
    }

    fn rows_mut(self, mutation: &mut TableMutation) -> &mut [Bytes] {
        match self {
            RowKind::Inserted => &mut mutation.inserted_rows,
            RowKind::Updated => &mut mutation.updated_rows,
            RowKind::Deleted => &mut mutation.deleted_rows,
        }
    }

    fn overrun(self, index: usize, available: usize) -> RowError {
        let kind = match self {
            RowKind::Inserted => "inserted",
            RowKind::Updated => "updated",
            RowKind::Deleted => "deleted",
        };
        RowError::SequenceOverrun {
            kind,
            index,
            available,
        }
    }

    fn decode(self, table: &TableInfo, row: &[u8]) -> Result<RowEvent, RowError> {
        Ok(match self {
            RowKind::Inserted => RowEvent::Insert(mutation::decode_insert(table, row)?),
            RowKind::Updated => {
                let (old, new) = mutation::decode_update(table, row)?;
                RowEvent::Update { old, new }
            }
            RowKind::Deleted => RowEvent::Delete(mutation::decode_delete(table, row)?),
        })
    }
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
/// table definition it was encoded with (see [`resolve_tables`]).
pub(crate) fn table_changes<'a>(
    commit_ts: i64,
    prewrite: &'a PrewriteValue,
    catalog: &'a Catalog,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<Vec<TableChange<'a>>, TranslateError> {
    let targets = resolve_tables(commit_ts, prewrite, catalog, keep)?;
    Ok(targets
        .into_iter()
        .zip(&prewrite.mutations)
        .filter_map(|(target, mutation)| {
            target.map(|(database, table)| TableChange {
                database,
                table,
                mutation,
            })
        })
        .collect())
}

/// For each mutation of a transaction, in order, its database and the table definition it was
/// encoded with, or `None` when `keep(database, table)` refuses the table or the table was dropped
/// or truncated since (a replay after a restart); a table the catalog never knew is an error.
/// The answers borrow only the catalog, so the caller may then consume the mutations.
pub(crate) fn resolve_tables<'c>(
    commit_ts: i64,
    prewrite: &PrewriteValue,
    catalog: &'c Catalog,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<Vec<Option<(&'c str, &'c TableInfo)>>, TranslateError> {
    prewrite
        .mutations
        .iter()
        .map(|mutation| {
            match catalog.table_for_change(mutation.table_id, prewrite.schema_version) {
                TableLookup::Found { database, table } => {
                    Ok(keep(database, &table.name.o).then_some((database, table)))
                }
                TableLookup::Gone => Ok(None),
                TableLookup::Unknown => Err(TranslateError::UnknownTable {
                    commit_ts,
                    table_id: mutation.table_id,
                    schema_version: prewrite.schema_version,
                }),
            }
        })
        .collect()
}

/// Approximate in-memory size of a mutation's row data, for byte budgets.
pub fn mutation_bytes(mutation: &TableMutation) -> usize {
    let rows = |rows: &[Bytes]| rows.iter().map(Bytes::len).sum::<usize>();
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
        (in_shop(&table), table)
    }

    /// A catalog at schema version 2 holding database `shop` (id 10) and `table` in it.
    pub(crate) fn in_shop(table: &TableInfo) -> Catalog {
        let db = serde_json::json!({"id": 10, "type": 1, "schema_id": 10, "state": 6,
            "binlog": {"SchemaVersion": 1, "DBInfo": {"id": 10, "db_name": {"O": "shop", "L": "shop"}, "state": 5}}});
        let create = serde_json::json!({"id": 12, "type": 3, "schema_id": 10, "table_id": table.id, "state": 6,
            "binlog": {"SchemaVersion": 2, "TableInfo": table}});
        let mut catalog = Catalog::new();
        catalog.apply(&serde_json::from_value(db).unwrap()).unwrap();
        catalog
            .apply(&serde_json::from_value(create).unwrap())
            .unwrap();
        catalog
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
                inserted_rows: vec![insert.into()],
                updated_rows: vec![update.into()],
                deleted_rows: vec![delete.into()],
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
