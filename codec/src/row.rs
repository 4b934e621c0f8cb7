//! The "old" row format TiDB writes into binlog `TableMutation` rows (reference drainer.md §3.3).
//!
//! A row is a sequence of `(column id, value)` datum pairs in the value form of
//! [`crate::datum`]: the id as a varint datum, the value already *flattened* (times packed into
//! uints, durations as int nanoseconds, enum/set/bit as uints; see [`crate::value`]). An empty row is
//! the single byte `0x00`.
//!
//! * `inserted_rows[i]` = handle datum(s) ‖ row — an int handle is one varint datum, a clustered
//!   (common) handle is the primary-key column datums ([`encode_inserted_row`],
//!   [`decode_inserted_row`]);
//! * `updated_rows[i]` = old row ‖ new row over the same column ids ([`encode_updated_row`],
//!   [`split_updated_row`]);
//! * `deleted_rows[i]` = one row ([`encode_row`], [`decode_row`]), with column −1
//!   ([`EXTRA_HANDLE_ID`]) carrying the hidden row id when the table has no int or clustered PK.
//!
//! This module only knows datums and column ids; which column an id is comes from
//! [`crate::schema`], and what a datum means for a column from [`crate::value`].

use crate::datum::{self, Datum, flag};
use crate::error::{CodecError, Result};
use crate::reader::Reader;

/// Column id of the hidden `_tidb_rowid` handle column.
pub const EXTRA_HANDLE_ID: i64 = -1;

/// One decoded row: `(column id, value)` pairs in stored order.
pub type RowData = Vec<(i64, Datum)>;

/// The row handle that prefixes an inserted row.
#[derive(Clone, Debug, PartialEq)]
pub enum Handle {
    /// Integer handle: the int primary key (`pk_is_handle`) or the hidden row id.
    Int(i64),
    /// Clustered-index handle: the primary-key column datums, in index column order.
    Common(Vec<Datum>),
}

impl Handle {
    /// The handle as datums (TiDB's `Handle.Data()`).
    pub fn datums(&self) -> Vec<Datum> {
        match self {
            Handle::Int(h) => vec![Datum::Int(*h)],
            Handle::Common(d) => d.clone(),
        }
    }
}

/// TiDB's `EncodeOldRow`: `(id, value)` pairs as value-form datums; `0x00` for no columns.
pub fn encode_row(columns: &[(i64, Datum)]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_row_into(&mut buf, columns)?;
    Ok(buf)
}

/// Appends the encoding of [`encode_row`] to `buf`.
pub fn encode_row_into(buf: &mut Vec<u8>, columns: &[(i64, Datum)]) -> Result<()> {
    if columns.is_empty() {
        buf.push(flag::NIL);
        return Ok(());
    }
    for (id, value) in columns {
        datum::encode_value_into(buf, &Datum::Int(*id))?;
        datum::encode_value_into(buf, value)?;
    }
    Ok(())
}

/// Decodes a whole buffer holding exactly one row (empty input or `0x00` = no columns).
pub fn decode_row(buf: &[u8]) -> Result<RowData> {
    let mut r = Reader::new(buf);
    let row = read_row(&mut r, None)?;
    if !r.is_empty() {
        return Err(CodecError::CorruptedRow {
            offset: r.offset(),
            reason: "bytes left after an empty-row marker".to_string(),
        });
    }
    Ok(row)
}

/// Reads pairs until the input ends (or reads a lone `0x00` empty-row marker).
/// With `stop_at_repeat`, stops before a column id already seen (used for update rows).
fn read_row(r: &mut Reader<'_>, stop_at_repeat: Option<&mut Vec<i64>>) -> Result<RowData> {
    // A pair takes at least 2 bytes (id and NULL flag); most rows hold a few dozen columns, so
    // this avoids regrowing without reserving much for long values.
    let mut row = Vec::with_capacity((r.remaining().len() / 2).min(32));
    read_pairs(r, stop_at_repeat, |id, value| {
        row.push((id, value));
        Ok(())
    })?;
    Ok(row)
}

/// [`read_row`], handing each pair to `each` as it is decoded instead of collecting them.
fn read_pairs(
    r: &mut Reader<'_>,
    mut stop_at_repeat: Option<&mut Vec<i64>>,
    mut each: impl FnMut(i64, Datum) -> Result<()>,
) -> Result<()> {
    if r.peek() == Some(flag::NIL) {
        r.u8("empty-row marker")?;
        return Ok(());
    }
    let mut pairs = 0usize;
    while let Some(f) = r.peek() {
        let at = r.offset();
        if f == flag::NIL && pairs > 0 && stop_at_repeat.is_some() {
            // The second half of an update row may be an empty row.
            break;
        }
        let (id, len) = match datum::decode_one(r.remaining()) {
            Ok((d, n)) => (d, n),
            Err(e) => return Err(shift_offset(e, at)),
        };
        let id = match id {
            Datum::Int(i) => i,
            Datum::Uint(u) => u as i64,
            other => {
                return Err(CodecError::CorruptedRow {
                    offset: at,
                    reason: format!("column id is a {} datum", other.kind_name()),
                });
            }
        };
        if let Some(seen) = stop_at_repeat.as_deref_mut() {
            if seen.contains(&id) {
                break;
            }
            seen.push(id);
        }
        r.take(len, "column id")?;
        let value_at = r.offset();
        if r.is_empty() {
            return Err(CodecError::CorruptedRow {
                offset: value_at,
                reason: format!("column {id} has no value"),
            });
        }
        let value = datum::read_datum(r)?;
        pairs += 1;
        each(id, value)?;
    }
    Ok(())
}

/// Re-bases the offsets of an error from a sub-slice decode.
fn shift_offset(e: CodecError, by: usize) -> CodecError {
    use CodecError::*;
    match e {
        UnexpectedEof {
            offset,
            what,
            needed,
            available,
        } => UnexpectedEof {
            offset: offset + by,
            what,
            needed,
            available,
        },
        UnknownFlag { offset, flag } => UnknownFlag {
            offset: offset + by,
            flag,
        },
        InvalidBytesGroup { offset, reason } => InvalidBytesGroup {
            offset: offset + by,
            reason,
        },
        VarintOverflow { offset, what } => VarintOverflow {
            offset: offset + by,
            what,
        },
        InvalidLength {
            offset,
            what,
            length,
        } => InvalidLength {
            offset: offset + by,
            what,
            length,
        },
        InvalidDecimal { offset, reason } => InvalidDecimal {
            offset: offset + by,
            reason,
        },
        InvalidJson { offset, reason } => InvalidJson {
            offset: offset + by,
            reason,
        },
        other => other,
    }
}

/// `inserted_rows` element: the handle datum(s) followed by the row.
pub fn encode_inserted_row(handle: &Handle, columns: &[(i64, Datum)]) -> Result<Vec<u8>> {
    let mut buf = datum::encode_value(&handle.datums())?;
    encode_row_into(&mut buf, columns)?;
    Ok(buf)
}

/// Splits an `inserted_rows` element into its `handle_datums` leading handle datum(s) (1 for an
/// int handle, the PK column count for a clustered table — see
/// [`crate::schema::HandleColumns::datum_count`]) and the row.
pub fn decode_inserted_row(buf: &[u8], handle_datums: usize) -> Result<(Vec<Datum>, RowData)> {
    let mut handle = Vec::with_capacity(handle_datums);
    let mut row = Vec::new();
    read_inserted_row(
        buf,
        handle_datums,
        |datum| {
            handle.push(datum);
            Ok(())
        },
        |id, value| {
            row.push((id, value));
            Ok(())
        },
    )?;
    Ok((handle, row))
}

/// [`decode_inserted_row`], handing each handle datum to `handle` and each pair of the row to
/// `each` as they are decoded, so that a caller converting them at once collects nothing.
pub fn read_inserted_row(
    buf: &[u8],
    handle_datums: usize,
    mut handle: impl FnMut(Datum) -> Result<()>,
    each: impl FnMut(i64, Datum) -> Result<()>,
) -> Result<()> {
    let mut r = Reader::new(buf);
    for _ in 0..handle_datums {
        handle(datum::read_datum(&mut r)?)?;
    }
    let base = r.offset();
    let mut rest = Reader::with_base(r.remaining(), base);
    read_pairs(&mut rest, None, each)?;
    if !rest.is_empty() {
        return Err(CodecError::CorruptedRow {
            offset: rest.offset(),
            reason: "bytes left after an empty-row marker".to_string(),
        });
    }
    Ok(())
}

/// `updated_rows` element: old row ‖ new row. Both should carry the same column ids.
pub fn encode_updated_row(old: &[(i64, Datum)], new: &[(i64, Datum)]) -> Result<Vec<u8>> {
    let mut buf = encode_row(old)?;
    encode_row_into(&mut buf, new)?;
    Ok(buf)
}

/// Splits an `updated_rows` element into (old row, new row) by decoding datums: the first
/// sighting of a column id belongs to the old row, and the new row starts at the first id seen
/// again (as the Go drainer pairs them). Fails ("row data is corrupted") when the halves differ
/// in length or the new half repeats an id.
pub fn split_updated_row(buf: &[u8]) -> Result<(RowData, RowData)> {
    let mut r = Reader::new(buf);
    let mut seen = Vec::new();
    let old = read_row(&mut r, Some(&mut seen))?;
    let new_start = r.offset();
    let mut new_seen = Vec::new();
    let new = read_row(&mut r, Some(&mut new_seen))?;
    if !r.is_empty() {
        return Err(CodecError::CorruptedRow {
            offset: r.offset(),
            reason: "a column id appears a third time".to_string(),
        });
    }
    if old.len() != new.len() {
        return Err(CodecError::CorruptedRow {
            offset: new_start,
            reason: format!(
                "old row has {} columns, new row has {}",
                old.len(),
                new.len()
            ),
        });
    }
    Ok((old, new))
}

/// The byte boundary between the old and the new half of an `updated_rows` element.
pub fn updated_row_split_offset(buf: &[u8]) -> Result<usize> {
    let mut r = Reader::new(buf);
    let mut seen = Vec::new();
    read_row(&mut r, Some(&mut seen))?;
    Ok(r.offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use proptest::prelude::*;

    #[test]
    fn row_vectors() {
        // (1, Int 10), (2, "ab"): 08 02 | 08 14 | 08 04 | 02 04 'a' 'b'.
        let row = vec![(1, Datum::Int(10)), (2, Datum::Bytes(b"ab".to_vec()))];
        let bytes = encode_row(&row).unwrap();
        assert_eq!(bytes, [8, 2, 8, 20, 8, 4, 2, 4, b'a', b'b']);
        assert_eq!(decode_row(&bytes).unwrap(), row);
        assert_eq!(encode_row(&[]).unwrap(), [0]);
        assert_eq!(decode_row(&[0]).unwrap(), vec![]);
        assert_eq!(decode_row(&[]).unwrap(), vec![]);
    }

    #[test]
    fn inserted_rows() {
        let row = vec![(2, Datum::Bytes(b"x".to_vec()))];
        let bytes = encode_inserted_row(&Handle::Int(-1), &row).unwrap();
        // Handle -1 as varint datum = 08 01, then the row.
        assert_eq!(&bytes[..2], [8, 1]);
        assert_eq!(
            decode_inserted_row(&bytes, 1).unwrap(),
            (vec![Datum::Int(-1)], row.clone())
        );

        let pk = vec![Datum::Bytes(b"k1".to_vec()), Datum::Int(7)];
        let bytes = encode_inserted_row(&Handle::Common(pk.clone()), &row).unwrap();
        assert_eq!(decode_inserted_row(&bytes, 2).unwrap(), (pk, row));

        // An insert whose every column is omitted: handle + 0x00.
        let bytes = encode_inserted_row(&Handle::Int(5), &[]).unwrap();
        assert_eq!(bytes, [8, 10, 0]);
        assert_eq!(
            decode_inserted_row(&bytes, 1).unwrap(),
            (vec![Datum::Int(5)], vec![])
        );
    }

    #[test]
    fn updated_rows() {
        let old = vec![(1, Datum::Int(1)), (2, Datum::Null), (-1, Datum::Int(9))];
        let new = vec![
            (1, Datum::Int(2)),
            (2, Datum::Bytes(b"n".to_vec())),
            (-1, Datum::Int(9)),
        ];
        let bytes = encode_updated_row(&old, &new).unwrap();
        assert_eq!(split_updated_row(&bytes).unwrap(), (old.clone(), new));
        assert_eq!(
            updated_row_split_offset(&bytes).unwrap(),
            encode_row(&old).unwrap().len()
        );
        assert_eq!(split_updated_row(&[0, 0]).unwrap(), (vec![], vec![]));

        // Unequal halves.
        let short = encode_updated_row(&old, &[(1, Datum::Int(2))]).unwrap();
        assert!(matches!(
            split_updated_row(&short),
            Err(CodecError::CorruptedRow { .. })
        ));
        // Third sighting of an id.
        let mut triple = encode_updated_row(&old, &old).unwrap();
        triple.extend(encode_row(&old[..1]).unwrap());
        assert!(matches!(
            split_updated_row(&triple),
            Err(CodecError::CorruptedRow { .. })
        ));
    }

    #[test]
    fn corrupt_rows_name_offsets() {
        // Column id then nothing.
        assert_eq!(
            decode_row(&[8, 2]),
            Err(CodecError::CorruptedRow {
                offset: 2,
                reason: "column 1 has no value".to_string()
            })
        );
        // Column id that is a bytes datum.
        assert!(matches!(
            decode_row(&[2, 2, b'a', 8, 2]),
            Err(CodecError::CorruptedRow { offset: 0, .. })
        ));
        // Bad flag in a value at offset 2.
        assert_eq!(
            decode_row(&[8, 2, 99]),
            Err(CodecError::UnknownFlag {
                offset: 2,
                flag: 99
            })
        );
        // Bad flag in the second column id, at offset 4.
        assert_eq!(
            decode_row(&[8, 2, 8, 4, 77]),
            Err(CodecError::UnknownFlag {
                offset: 4,
                flag: 77
            })
        );
    }

    fn any_value() -> impl Strategy<Value = Datum> {
        prop_oneof![
            Just(Datum::Null),
            any::<i64>().prop_map(Datum::Int),
            any::<u64>().prop_map(Datum::Uint),
            (-1e10f64..1e10).prop_map(Datum::Float),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Datum::Bytes),
            (-1_000_000i64..1_000_000).prop_map(|v| Datum::Decimal {
                value: Decimal::parse(&format!("{}.{:02}", v / 100, (v % 100).abs())).unwrap(),
                precision: 12,
                frac: 2,
            }),
        ]
    }

    fn any_row() -> impl Strategy<Value = RowData> {
        proptest::collection::btree_map(-1i64..200, any_value(), 0..10)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn row_round_trip(row in any_row()) {
            prop_assert_eq!(decode_row(&encode_row(&row).unwrap()).unwrap(), row);
        }

        #[test]
        fn update_round_trip(old in any_row(), values in proptest::collection::vec(any_value(), 10)) {
            let new: RowData = old.iter().zip(values).map(|((id, _), v)| (*id, v)).collect();
            let bytes = encode_updated_row(&old, &new).unwrap();
            prop_assert_eq!(split_updated_row(&bytes).unwrap(), (old, new));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..3) {
            let _ = decode_row(&bytes);
            let _ = split_updated_row(&bytes);
            let _ = decode_inserted_row(&bytes, n);
            let _ = crate::decimal::decode_decimal(&bytes);
        }

        #[test]
        fn insert_round_trip(h in any::<i64>(), row in any_row()) {
            let bytes = encode_inserted_row(&Handle::Int(h), &row).unwrap();
            prop_assert_eq!(decode_inserted_row(&bytes, 1).unwrap(), (vec![Datum::Int(h)], row));
        }
    }
}
