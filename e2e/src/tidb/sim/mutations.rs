//! The row changes of one DML transaction, collected the way TiDB builds its prewrite binlog:
//! one `TableMutation` per table (in order of first touch), rows encoded with the codec in the
//! old row format, and a `sequence` entry per row event in execution order.
//!
//! As in TiDB, an update that changes the row handle (the int primary key or the clustered key)
//! is a delete of the old row and an insert of the new one; any other update is one updated row
//! carrying all columns, old then new.

use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
use tidb_codec::datum::{encode_int_comparable, encode_key};
use tidb_codec::mutation::{encode_delete, encode_insert, encode_update, handle_of};
use tidb_codec::{CodecError, ColumnValue, Handle, TableInfo};

/// A row as `(column id, value)` pairs in column order.
pub type RowValues = Vec<(i64, ColumnValue)>;

/// TiDB's record key of a row: `t{table id}_r{handle}` with comparable encodings.
pub fn record_key(table_id: i64, handle: &Handle) -> Result<Vec<u8>, CodecError> {
    let mut key = b"t".to_vec();
    encode_int_comparable(&mut key, table_id);
    key.extend_from_slice(b"_r");
    match handle {
        Handle::Int(h) => encode_int_comparable(&mut key, *h),
        Handle::Common(datums) => key.extend(encode_key(datums)?),
    }
    Ok(key)
}

/// The mutations of one transaction.
#[derive(Debug, Default)]
pub struct TxnMutations {
    tables: Vec<TableMutation>,
    primary_key: Option<Vec<u8>>,
}

impl TxnMutations {
    fn table(&mut self, id: i64) -> &mut TableMutation {
        let pos = match self.tables.iter().position(|t| t.table_id == id) {
            Some(pos) => pos,
            None => {
                self.tables.push(TableMutation {
                    table_id: id,
                    ..TableMutation::default()
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[pos]
    }

    /// The first row written becomes the transaction's primary key, as in TiDB's 2PC.
    fn note_key(
        &mut self,
        table: &TableInfo,
        values: &RowValues,
        row_id: Option<i64>,
    ) -> Result<(), CodecError> {
        if self.primary_key.is_none() {
            self.primary_key = Some(record_key(table.id, &handle_of(table, values, row_id)?)?);
        }
        Ok(())
    }

    pub fn insert(
        &mut self,
        table: &TableInfo,
        values: &RowValues,
        row_id: Option<i64>,
    ) -> Result<(), CodecError> {
        let row = encode_insert(table, values, row_id)?;
        self.note_key(table, values, row_id)?;
        let m = self.table(table.id);
        m.inserted_rows.push(row.into());
        m.sequence.push(MutationType::Insert as i32);
        Ok(())
    }

    pub fn update(
        &mut self,
        table: &TableInfo,
        old: &RowValues,
        new: &RowValues,
        row_id: Option<i64>,
    ) -> Result<(), CodecError> {
        if handle_of(table, old, row_id)? != handle_of(table, new, row_id)? {
            self.delete(table, old, row_id)?;
            return self.insert(table, new, row_id);
        }
        let row = encode_update(table, old, new, row_id)?;
        self.note_key(table, new, row_id)?;
        let m = self.table(table.id);
        m.updated_rows.push(row.into());
        m.sequence.push(MutationType::Update as i32);
        Ok(())
    }

    pub fn delete(
        &mut self,
        table: &TableInfo,
        old: &RowValues,
        row_id: Option<i64>,
    ) -> Result<(), CodecError> {
        let row = encode_delete(table, old, row_id)?;
        self.note_key(table, old, row_id)?;
        let m = self.table(table.id);
        m.deleted_rows.push(row.into());
        m.sequence.push(MutationType::DeleteRow as i32);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The record key of the first row written (empty when nothing was written).
    pub fn primary_key(&self) -> Vec<u8> {
        self.primary_key.clone().unwrap_or_default()
    }

    /// The prewrite value for a transaction that saw `schema_version`.
    pub fn into_prewrite_value(self, schema_version: i64) -> PrewriteValue {
        PrewriteValue {
            schema_version,
            mutations: self.tables,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidb::sim::catalog::Catalog;
    use crate::tidb::sim::column_kind::ColumnKind;
    use crate::tidb::sim::ddl::{ColumnSpec, DdlSpec, KeySpec, TableSpec};
    use tidb_codec::mutation::{decode_delete, decode_insert, decode_update};

    fn table(key: KeySpec) -> TableInfo {
        let mut c = Catalog::default();
        let db = c
            .plan(&DdlSpec::CreateDatabase { name: "d".into() }, 1)
            .unwrap();
        c.apply(&db.job).unwrap();
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![
                ColumnSpec {
                    name: "id".into(),
                    kind: ColumnKind::Int {
                        bits: 64,
                        unsigned: true,
                    },
                    not_null: true,
                    default: None,
                },
                ColumnSpec {
                    name: "v".into(),
                    kind: ColumnKind::Varchar(10),
                    not_null: false,
                    default: None,
                },
            ],
            key,
            indexes: vec![],
        };
        let p = c
            .plan(
                &DdlSpec::CreateTable {
                    db_id: db.job.schema_id,
                    table: spec,
                },
                1,
            )
            .unwrap();
        p.job.history().unwrap().table_info().unwrap().clone()
    }

    fn row(id: u64, v: &str) -> RowValues {
        vec![(1, ColumnValue::Uint(id)), (2, ColumnValue::Text(v.into()))]
    }

    #[test]
    fn handle_changes_become_delete_and_insert() {
        let t = table(KeySpec::IntHandle("id".into()));
        let mut m = TxnMutations::default();
        m.insert(&t, &row(u64::MAX, "a"), None).unwrap();
        m.update(&t, &row(u64::MAX, "a"), &row(u64::MAX, "b"), None)
            .unwrap();
        m.update(&t, &row(u64::MAX, "b"), &row(5, "b"), None)
            .unwrap();
        let key = m.primary_key();
        assert_eq!(&key[..1], b"t");
        assert_eq!(key.len(), 1 + 8 + 2 + 8);
        let pv = m.into_prewrite_value(9);
        assert_eq!(pv.schema_version, 9);
        let tm = &pv.mutations[0];
        assert_eq!(tm.sequence, [0, 1, 4, 0]);
        assert_eq!(
            (
                tm.inserted_rows.len(),
                tm.updated_rows.len(),
                tm.deleted_rows.len()
            ),
            (2, 1, 1)
        );
        let first = decode_insert(&t, &tm.inserted_rows[0]).unwrap();
        assert_eq!(
            first.values.get(1),
            Some(&ColumnValue::Uint(u64::MAX)),
            "handle -1 read back unsigned"
        );
        let (old, new) = decode_update(&t, &tm.updated_rows[0]).unwrap();
        assert_eq!(
            (old.values.get(2), new.values.get(2)),
            (
                Some(&ColumnValue::Text("a".into())),
                Some(&ColumnValue::Text("b".into()))
            )
        );
        let deleted = decode_delete(&t, &tm.deleted_rows[0]).unwrap();
        assert_eq!(deleted.values.get(1), Some(&ColumnValue::Uint(u64::MAX)));
    }

    #[test]
    fn row_id_tables_carry_the_row_id() {
        let t = table(KeySpec::None);
        let mut m = TxnMutations::default();
        m.insert(&t, &row(1, "a"), Some(77)).unwrap();
        m.update(&t, &row(1, "a"), &row(2, "a"), Some(77)).unwrap();
        m.delete(&t, &row(2, "a"), Some(77)).unwrap();
        assert!(
            m.insert(&t, &row(1, "a"), None).is_err(),
            "a row id is required"
        );
        let pv = m.into_prewrite_value(1);
        let tm = &pv.mutations[0];
        assert_eq!(tm.sequence, [0, 1, 4]);
        assert_eq!(
            decode_insert(&t, &tm.inserted_rows[0]).unwrap().row_id,
            Some(77)
        );
        let (old, new) = decode_update(&t, &tm.updated_rows[0]).unwrap();
        assert_eq!((old.row_id, new.row_id), (Some(77), Some(77)));
        assert_eq!(
            decode_delete(&t, &tm.deleted_rows[0]).unwrap().row_id,
            Some(77)
        );
    }
}
