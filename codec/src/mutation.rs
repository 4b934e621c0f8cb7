//! Whole-table row helpers for binlog `TableMutation` rows: encode typed values the way TiDB
//! writes them (for the upstream simulator) and decode them the way the drainer reads them.
//!
//! This ties [`crate::row`] (datum pairs), [`crate::schema`] (which column an id is, what the
//! handle is) and [`crate::value`] (datum ↔ typed value) together; it adds no format of its own.
//!
//! Encoding rules (reference drainer.md §3.3): an insert is prefixed by its handle (the int PK
//! value, the clustered PK column datums, or the hidden row id) and omits the int-PK handle column
//! and virtual generated columns; updates and deletes carry the given columns plus column −1
//! holding the row id when the table has neither an int-PK handle nor a clustered PK. Simplification:
//! TiDB also omits clustered-PK columns that need no restored data and NULL columns without any
//! default; we keep them, which the drainer's decoding accepts either way.
//!
//! Decoding rules: column ids unknown to the table are skipped; an int-PK handle fills the PK
//! column (UNSIGNED columns read −1 as 18446744073709551615); clustered handle datums fill PK
//! columns absent from the row unless the index column is a prefix; column −1 / the row-id handle
//! is returned separately.

use crate::datum::Datum;
use crate::error::{CodecError, Result};
use crate::row::{self, EXTRA_HANDLE_ID, Handle, RowData};
use crate::schema::{ColumnInfo, HandleColumns, TableInfo, type_code};
use crate::value::{ColumnValue, datum_into_value, value_to_datum};

/// A decoded row: values by column id (only columns the table knows), and the hidden row id when
/// the table uses one and the row carries it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DecodedRow {
    pub values: RowValues,
    pub row_id: Option<i64>,
}

/// A row's values by column id: a map, kept as a vector sorted by id, because a row is decoded,
/// read once column by column and dropped (no tree nodes to build, and rows arrive in id order
/// almost always). [`RowValues::take`] moves a value out and leaves the id without one.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RowValues {
    entries: Vec<(i64, Option<ColumnValue>)>,
}

impl RowValues {
    pub fn with_capacity(capacity: usize) -> RowValues {
        RowValues {
            entries: Vec::with_capacity(capacity),
        }
    }

    fn position(&self, id: i64) -> Result<usize, usize> {
        // Rows are decoded in id order, so the common insert is an append.
        match self.entries.last() {
            Some((last, _)) if *last < id => Err(self.entries.len()),
            None => Err(0),
            _ => self.entries.binary_search_by_key(&id, |(id, _)| *id),
        }
    }

    /// Sets the value of column `id`, replacing any.
    pub fn insert(&mut self, id: i64, value: ColumnValue) {
        match self.position(id) {
            Ok(at) => self.entries[at].1 = Some(value),
            Err(at) => self.entries.insert(at, (id, Some(value))),
        }
    }

    pub fn get(&self, id: i64) -> Option<&ColumnValue> {
        let at = self.position(id).ok()?;
        self.entries[at].1.as_ref()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.get(id).is_some()
    }

    /// Moves the value of column `id` out.
    pub fn take(&mut self, id: i64) -> Option<ColumnValue> {
        let at = self.position(id).ok()?;
        self.entries[at].1.take()
    }

    /// Number of columns with a value.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|(_, v)| v.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in column id order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ColumnValue)> {
        self.entries
            .iter()
            .filter_map(|(id, value)| value.as_ref().map(|value| (*id, value)))
    }
}

impl FromIterator<(i64, ColumnValue)> for RowValues {
    fn from_iter<I: IntoIterator<Item = (i64, ColumnValue)>>(pairs: I) -> RowValues {
        let mut values = RowValues::default();
        for (id, value) in pairs {
            values.insert(id, value);
        }
        values
    }
}

impl IntoIterator for RowValues {
    type Item = (i64, ColumnValue);
    type IntoIter = std::iter::FilterMap<
        std::vec::IntoIter<(i64, Option<ColumnValue>)>,
        fn((i64, Option<ColumnValue>)) -> Option<(i64, ColumnValue)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries
            .into_iter()
            .filter_map(|(id, value)| value.map(|value| (id, value)))
    }
}

fn unknown_column(table: &TableInfo, id: i64) -> CodecError {
    CodecError::CorruptedRow {
        offset: 0,
        reason: format!(
            "table {} (id {}) has no column id {id}",
            table.name.o, table.id
        ),
    }
}

fn column(table: &TableInfo, id: i64) -> Result<&ColumnInfo> {
    table
        .column_by_id(id)
        .ok_or_else(|| unknown_column(table, id))
}

fn needs_row_id(table: &TableInfo) -> bool {
    matches!(table.handle_columns(), HandleColumns::RowId)
}

/// Flattened datums for `values`, skipping virtual generated columns (and `skip_id`).
fn to_row(
    table: &TableInfo,
    values: &[(i64, ColumnValue)],
    skip_id: Option<i64>,
) -> Result<RowData> {
    let mut out = Vec::with_capacity(values.len() + 1);
    for (id, v) in values {
        if Some(*id) == skip_id {
            continue;
        }
        let col = column(table, *id)?;
        if col.is_virtual_generated() {
            continue;
        }
        out.push((*id, value_to_datum(&col.field_type, v)?));
    }
    Ok(out)
}

fn find(values: &[(i64, ColumnValue)], id: i64) -> Option<&ColumnValue> {
    values.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
}

fn missing_row_id(table: &TableInfo) -> CodecError {
    CodecError::CorruptedRow {
        offset: 0,
        reason: format!(
            "table {} has no int or clustered primary key: a row id is required",
            table.name.o
        ),
    }
}

/// The handle TiDB would prefix an insert of `values` with.
pub fn handle_of(
    table: &TableInfo,
    values: &[(i64, ColumnValue)],
    row_id: Option<i64>,
) -> Result<Handle> {
    match table.handle_columns() {
        HandleColumns::IntPk(col) => {
            let v = find(values, col.id).ok_or_else(|| CodecError::CorruptedRow {
                offset: 0,
                reason: format!("no value for int primary key column {}", col.name.o),
            })?;
            match value_to_datum(&col.field_type, v)? {
                Datum::Int(i) => Ok(Handle::Int(i)),
                // The handle is an int64; an UNSIGNED PK is stored by its bits.
                Datum::Uint(u) => Ok(Handle::Int(u as i64)),
                other => Err(CodecError::CorruptedRow {
                    offset: 0,
                    reason: format!("int primary key encodes as a {} datum", other.kind_name()),
                }),
            }
        }
        HandleColumns::Common(cols) => {
            let mut datums = Vec::with_capacity(cols.len());
            for col in cols {
                let v = find(values, col.id).ok_or_else(|| CodecError::CorruptedRow {
                    offset: 0,
                    reason: format!("no value for primary key column {}", col.name.o),
                })?;
                let d = value_to_datum(&col.field_type, v)?;
                // Handle datums come back from the key codec: TIME columns as duration datums.
                datums.push(match (col.field_type.tp, d) {
                    (type_code::DURATION, Datum::Int(n)) => Datum::Duration(n),
                    (_, d) => d,
                });
            }
            Ok(Handle::Common(datums))
        }
        HandleColumns::RowId => row_id.map(Handle::Int).ok_or_else(|| missing_row_id(table)),
    }
}

/// An `inserted_rows` element for `values` (column id → value). `row_id` is required when the
/// table has neither an int-PK handle nor a clustered PK, and ignored otherwise.
pub fn encode_insert(
    table: &TableInfo,
    values: &[(i64, ColumnValue)],
    row_id: Option<i64>,
) -> Result<Vec<u8>> {
    let handle = handle_of(table, values, row_id)?;
    let skip = table.pk_handle_column().map(|c| c.id);
    row::encode_inserted_row(&handle, &to_row(table, values, skip)?)
}

fn with_row_id(table: &TableInfo, mut row: RowData, row_id: Option<i64>) -> Result<RowData> {
    if needs_row_id(table) {
        let id = row_id.ok_or_else(|| missing_row_id(table))?;
        row.push((EXTRA_HANDLE_ID, Datum::Int(id)));
    }
    Ok(row)
}

/// An `updated_rows` element: old and new values over the same column ids (TiDB writes every
/// writable column), plus column −1 when the table needs a row id.
pub fn encode_update(
    table: &TableInfo,
    old: &[(i64, ColumnValue)],
    new: &[(i64, ColumnValue)],
    row_id: Option<i64>,
) -> Result<Vec<u8>> {
    let old = with_row_id(table, to_row(table, old, None)?, row_id)?;
    let new = with_row_id(table, to_row(table, new, None)?, row_id)?;
    row::encode_updated_row(&old, &new)
}

/// A `deleted_rows` element, plus column −1 when the table needs a row id.
pub fn encode_delete(
    table: &TableInfo,
    values: &[(i64, ColumnValue)],
    row_id: Option<i64>,
) -> Result<Vec<u8>> {
    row::encode_row(&with_row_id(table, to_row(table, values, None)?, row_id)?)
}

fn decode_pairs(table: &TableInfo, row: RowData) -> Result<DecodedRow> {
    let mut out = DecodedRow {
        values: RowValues::with_capacity(row.len() + 1),
        row_id: None,
    };
    for (id, d) in row {
        add_pair(table, &mut out, id, d)?;
    }
    Ok(out)
}

/// The hidden row id a column −1 datum holds.
fn row_id_of(datum: Datum) -> Option<i64> {
    match datum {
        Datum::Int(i) => Some(i),
        Datum::Uint(u) => Some(u as i64),
        _ => None,
    }
}

/// Adds one decoded `(column id, datum)` pair to `out`: the hidden row id, a value of a column
/// the table knows, or nothing.
fn add_pair(table: &TableInfo, out: &mut DecodedRow, id: i64, d: Datum) -> Result<()> {
    if id == EXTRA_HANDLE_ID {
        out.row_id = row_id_of(d);
    } else if let Some(col) = table.column_by_id(id) {
        out.values.insert(id, datum_into_value(&col.field_type, d)?);
    }
    Ok(())
}

/// Decodes an `inserted_rows` element, filling handle columns from the handle.
pub fn decode_insert(table: &TableInfo, bytes: &[u8]) -> Result<DecodedRow> {
    let mut values = RowValues::with_capacity(table.cols.len() + 1);
    let row_id = decode_insert_each(table, bytes, |index, value| {
        values.insert(table.cols[index].id, value);
    })?;
    Ok(DecodedRow { values, row_id })
}

/// [`decode_insert`] without collecting: each value goes to `put` with its column's index in
/// `table.cols` as soon as it is converted (every insert of every transaction comes through
/// here, so the caller places values where it keeps them). Handle columns come last and may
/// repeat a column the row carried, with the same value: a later value replaces an earlier
/// one. Returns the hidden row id, when the table uses one and the row carries it.
pub fn decode_insert_each(
    table: &TableInfo,
    bytes: &[u8],
    mut put: impl FnMut(usize, ColumnValue),
) -> Result<Option<i64>> {
    let handle_columns = table.handle_columns();
    let index_of = |id: i64| table.column_position(id);
    let mut row_id = None;
    // An int handle (or row id) is one datum; only a clustered handle needs a list.
    let mut first_handle = None;
    let mut common_handle = Vec::new();
    // Which clustered-handle columns (by position in the handle) the row carried; a key has at
    // most 16 columns, and one past 64 would only be filled again from the handle.
    let mut carried = 0u64;
    row::read_inserted_row(
        bytes,
        handle_columns.datum_count(),
        |datum| {
            match handle_columns {
                HandleColumns::Common(_) => common_handle.push(datum),
                _ => first_handle = Some(datum),
            }
            Ok(())
        },
        |id, datum| {
            if id == EXTRA_HANDLE_ID {
                row_id = row_id_of(datum);
                return Ok(());
            }
            let Some(index) = index_of(id) else {
                return Ok(());
            };
            if let HandleColumns::Common(cols) = &handle_columns
                && let Some(k) = cols.iter().position(|c| c.id == id)
                && k < 64
            {
                carried |= 1 << k;
            }
            put(
                index,
                datum_into_value(&table.cols[index].field_type, datum)?,
            );
            Ok(())
        },
    )?;
    match &handle_columns {
        HandleColumns::IntPk(col) => {
            if let (Some(h), Some(index)) = (first_handle, index_of(col.id)) {
                put(index, datum_into_value(&col.field_type, h)?);
            }
        }
        HandleColumns::Common(cols) => {
            let was_carried = |k: usize| k < 64 && carried & (1 << k) != 0;
            // The row usually carries its key columns; the index is looked at only when not.
            if (0..cols.len()).any(|k| !was_carried(k)) {
                let prefix: Vec<bool> = table
                    .primary_index()
                    .map(|ix| ix.idx_cols.iter().map(|c| c.is_prefix()).collect())
                    .unwrap_or_default();
                for (k, (col, h)) in cols.iter().zip(common_handle).enumerate() {
                    if !was_carried(k)
                        && !prefix.get(k).copied().unwrap_or(false)
                        && let Some(index) = index_of(col.id)
                    {
                        put(index, datum_into_value(&col.field_type, h)?);
                    }
                }
            }
        }
        HandleColumns::RowId => {
            row_id = match first_handle {
                Some(Datum::Int(i)) => Some(i),
                _ => None,
            };
        }
    }
    Ok(row_id)
}

/// Decodes an `updated_rows` element into (old, new).
pub fn decode_update(table: &TableInfo, bytes: &[u8]) -> Result<(DecodedRow, DecodedRow)> {
    let (old, new) = row::split_updated_row(bytes)?;
    Ok((decode_pairs(table, old)?, decode_pairs(table, new)?))
}

/// Decodes a `deleted_rows` element.
pub fn decode_delete(table: &TableInfo, bytes: &[u8]) -> Result<DecodedRow> {
    decode_pairs(table, row::decode_row(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::RowValues;
    use crate::value::ColumnValue::{Int, Null};

    #[test]
    fn row_values_behave_as_a_map_by_column_id() {
        let mut values: RowValues = [(3, Int(3)), (1, Int(1)), (2, Null)].into_iter().collect();
        values.insert(1, Int(10));
        values.insert(5, Int(5));
        let pairs: Vec<_> = values.iter().map(|(id, v)| (id, v.clone())).collect();
        assert_eq!(pairs, [(1, Int(10)), (2, Null), (3, Int(3)), (5, Int(5))]);
        assert_eq!(values.len(), 4);
        assert_eq!(values.take(2), Some(Null), "a NULL is a value");
        assert_eq!(values.take(2), None, "taken once");
        assert!(!values.contains(2) && values.contains(3) && !values.contains(4));
        assert_eq!(values.get(4), None);
        assert_eq!(values.len(), 3);
        let rest: Vec<_> = values.into_iter().collect();
        assert_eq!(rest, [(1, Int(10)), (3, Int(3)), (5, Int(5))]);
    }
}
