#![allow(clippy::unwrap_used)]
//! End to end through the public API: TiDB table JSON → typed values → binlog row bytes (as the
//! upstream simulator writes them) → typed values again (as the drainer reads them).

use proptest::prelude::*;
use tidb_codec::datum::{Datum, decode_value, encode_value};
use tidb_codec::mutation::{
    decode_delete, decode_insert, decode_update, encode_delete, encode_insert, encode_update,
};
use tidb_codec::row::{EXTRA_HANDLE_ID, split_updated_row};
use tidb_codec::schema::TableInfo;
use tidb_codec::value::ColumnValue;

#[allow(clippy::too_many_arguments)]
fn col(
    id: i64,
    name: &str,
    tp: u8,
    flag: u64,
    flen: i64,
    decimal: i64,
    charset: &str,
    elems: &str,
) -> String {
    format!(
        r#"{{"id": {id}, "name": {{"O": "{name}", "L": "{name}"}}, "offset": {off}, "origin_default": null, "default": null,
            "type": {{"Tp": {tp}, "Flag": {flag}, "Flen": {flen}, "Decimal": {decimal}, "Charset": "{charset}", "Collate": "{charset}_bin", "Elems": {elems}}},
            "state": 5}}"#,
        off = id - 1
    )
}

/// A table of every supported type; `pk` picks the handle kind.
fn table(pk: &str) -> TableInfo {
    let (id_flag, pk_is_handle, common, index) = match pk {
        "int" => (3 | 32, true, false, "null".to_string()),
        "common" => (3, false, true, r#"[{"id": 1, "idx_name": {"O": "PRIMARY", "L": "primary"}, "tbl_name": {"O": "t", "L": "t"},
              "idx_cols": [{"name": {"O": "s", "L": "s"}, "offset": 4, "length": -1}, {"name": {"O": "tm", "L": "tm"}, "offset": 8, "length": -1}],
              "state": 5, "is_unique": true, "is_primary": true}]"#.to_string()),
        _ => (0, false, false, "null".to_string()),
    };
    let cols = [
        col(1, "id", 8, id_flag, 20, 0, "binary", "null"),
        col(2, "i", 3, 0, 11, 0, "binary", "null"),
        col(3, "f", 4, 0, 12, -1, "binary", "null"),
        col(4, "d", 5, 0, 22, -1, "binary", "null"),
        col(5, "s", 15, 0, 20, 0, "utf8mb4", "null"),
        col(6, "b", 252, 128, 65535, 0, "binary", "null"),
        col(7, "dec", 246, 0, 12, 3, "binary", "null"),
        col(8, "dt", 12, 0, 26, 6, "binary", "null"),
        col(9, "tm", 11, 0, 12, 2, "binary", "null"),
        col(10, "dy", 10, 0, 10, 0, "binary", "null"),
        col(11, "ts", 7, 0, 19, 0, "binary", "null"),
        col(12, "y", 13, 32 | 64, 4, 0, "binary", "null"),
        col(
            13,
            "e",
            247,
            0,
            -1,
            -1,
            "utf8mb4",
            r#"["red", "green", "blue"]"#,
        ),
        col(
            14,
            "st",
            248,
            0,
            -1,
            -1,
            "utf8mb4",
            r#"["a", "b", "c", "d"]"#,
        ),
        col(15, "bt", 16, 32, 12, 0, "binary", "null"),
        col(16, "j", 245, 0, -1, 0, "binary", "null"),
        col(17, "u", 8, 32, 20, 0, "binary", "null"),
    ];
    let json = format!(
        r#"{{"id": 100, "name": {{"O": "t", "L": "t"}}, "charset": "utf8mb4", "collate": "utf8mb4_bin",
            "cols": [{}], "index_info": {index}, "state": 5, "pk_is_handle": {pk_is_handle},
            "is_common_handle": {common}, "partition": null, "some_future_key": 1}}"#,
        cols.join(",")
    );
    serde_json::from_str(&json).unwrap()
}

const LITERALS: [&str; 17] = [
    "18446744073709551615",
    "-2147483648",
    "1.5",
    "-2.25e-300",
    "héllo wörld",
    "\u{0}\u{1}binary",
    "-123456789.125",
    "2024-02-29 13:45:01.123456",
    "-838:59:59.00",
    "2000-01-01",
    "2038-01-19 03:14:07",
    "2024",
    "green",
    "a,d",
    "b'101010101010'",
    r#"{"k": [1, 2.5, "x", null, true], "n": {"m": -1}}"#,
    "18446744073709551615",
];

fn values(t: &TableInfo, literals: &[&str]) -> Vec<(i64, ColumnValue)> {
    t.cols
        .iter()
        .zip(literals)
        .map(|(c, lit)| (c.id, ColumnValue::parse(&c.field_type, lit).unwrap()))
        .collect()
}

#[test]
fn every_type_round_trips_for_every_handle_kind() {
    for pk in ["int", "common", "rowid"] {
        let t = table(pk);
        let mut literals = LITERALS;
        if pk != "int" {
            // A signed BIGINT id column.
            literals[0] = "-5";
        }
        let vals = values(&t, &literals);
        let row_id = (pk == "rowid").then_some(77);

        let ins = encode_insert(&t, &vals, row_id).unwrap();
        let got = decode_insert(&t, &ins).unwrap();
        assert_eq!(got.values, vals.iter().cloned().collect(), "{pk}");
        assert_eq!(got.row_id, row_id, "{pk}");

        let mut new_vals = vals.clone();
        new_vals[1].1 = ColumnValue::Null;
        new_vals[4].1 = ColumnValue::Text("changed".into());
        let upd = encode_update(&t, &vals, &new_vals, row_id).unwrap();
        let (old, new) = decode_update(&t, &upd).unwrap();
        assert_eq!(old.values, vals.iter().cloned().collect(), "{pk}");
        assert_eq!(new.values, new_vals.iter().cloned().collect(), "{pk}");
        assert_eq!((old.row_id, new.row_id), (row_id, row_id));
        let (o, n) = split_updated_row(&upd).unwrap();
        assert_eq!(o.len(), n.len());
        assert_eq!(
            o.iter().any(|(id, _)| *id == EXTRA_HANDLE_ID),
            pk == "rowid"
        );

        let del = encode_delete(&t, &vals, row_id).unwrap();
        let got = decode_delete(&t, &del).unwrap();
        assert_eq!(got.values, vals.iter().cloned().collect(), "{pk}");
        assert_eq!(got.row_id, row_id);
    }
}

#[test]
fn text_forms_match_tidb() {
    let t = table("int");
    let vals = values(&t, &LITERALS);
    let text: Vec<Option<String>> = vals.iter().map(|(_, v)| v.to_text()).collect();
    let expected = [
        "18446744073709551615",
        "-2147483648",
        "1.5",
        "-2.25e-300",
        "héllo wörld",
        "\u{0}\u{1}binary",
        "-123456789.125",
        "2024-02-29 13:45:01.123456",
        "-838:59:59.00",
        "2000-01-01",
        "2038-01-19 03:14:07",
        "2024",
        "green",
        "a,d",
        "2730",
        r#"{"k": [1, 2.5, "x", null, true], "n": {"m": -1}}"#,
        "18446744073709551615",
    ];
    for (got, want) in text.iter().zip(expected) {
        assert_eq!(got.as_deref(), Some(want));
    }
}

#[test]
fn int_handle_row_omits_pk_and_starts_with_handle() {
    let t = table("int");
    let vals = values(&t, &LITERALS);
    let ins = encode_insert(&t, &vals, None).unwrap();
    let datums = decode_value(&ins).unwrap();
    // Handle = u64::MAX as an int64 handle (-1): varint datum 08 01.
    assert_eq!(&ins[..2], [8, 1]);
    assert_eq!(datums[0], Datum::Int(-1));
    // Then pairs for columns 2..=17: the PK column 1 is not repeated.
    let ids: Vec<Datum> = datums[1..].iter().step_by(2).cloned().collect();
    assert_eq!(ids, (2..=17).map(Datum::Int).collect::<Vec<_>>());
}

#[test]
fn clustered_key_columns_a_row_lacks_come_from_the_handle_unless_indexed_by_prefix() {
    let t = table("common");
    let mut literals = LITERALS;
    literals[0] = "-5";
    let vals = values(&t, &literals);
    // The handle's datums (s, tm), then (id, value) pairs: the pair of column 5 (s) is dropped,
    // as TiDB does for key columns that need no restored data.
    let datums = decode_value(&encode_insert(&t, &vals, None).unwrap()).unwrap();
    let (handle, pairs) = datums.split_at(2);
    let mut kept = handle.to_vec();
    for pair in pairs.chunks(2).filter(|pair| pair[0] != Datum::Int(5)) {
        kept.extend_from_slice(pair);
    }
    let lacking = encode_value(&kept).unwrap();
    let s = vals.iter().find(|(id, _)| *id == 5).map(|(_, v)| v);

    let got = decode_insert(&t, &lacking).unwrap();
    assert_eq!(got.values.get(5), s, "filled from the handle");
    assert_eq!(got.values.len(), vals.len());

    // With a prefix index on s the handle holds a prefix only: s stays missing.
    let mut prefixed = t.clone();
    if let Some(Some(indexes)) = &mut prefixed.index_info {
        indexes[0].idx_cols[0].length = 3;
    }
    let got = decode_insert(&prefixed, &lacking).unwrap();
    assert_eq!(got.values.get(5), None);
    assert_eq!(got.values.len(), vals.len() - 1);
}

#[test]
fn unknown_column_ids_are_skipped_when_decoding() {
    let t = table("rowid");
    let bytes = tidb_codec::row::encode_row(&[
        (2, Datum::Int(5)),
        (999, Datum::Int(1)),
        (-1, Datum::Int(3)),
    ])
    .unwrap();
    let got = decode_delete(&t, &bytes).unwrap();
    assert_eq!(got.values.len(), 1);
    assert_eq!(got.values.get(2), Some(&ColumnValue::Int(5)));
    assert_eq!(got.row_id, Some(3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_rows_round_trip(
        id in any::<u64>(), i in any::<i32>(), d in -1e300f64..1e300, s in "\\PC{0,20}",
        b in proptest::collection::vec(any::<u8>(), 0..30), cents in any::<i32>(),
        nulls in proptest::collection::vec(any::<bool>(), 17),
    ) {
        let t = table("int");
        let mut vals = values(&t, &LITERALS);
        vals[0].1 = ColumnValue::Uint(id);
        vals[1].1 = ColumnValue::Int(i64::from(i));
        vals[3].1 = ColumnValue::Double(d);
        vals[4].1 = ColumnValue::Text(s);
        vals[5].1 = ColumnValue::Bytes(b);
        let c = i64::from(cents);
        vals[6].1 = ColumnValue::parse(&t.cols[6].field_type, &format!("{}{}.{:03}", if c < 0 { "-" } else { "" }, c.abs() / 1000, c.abs() % 1000)).unwrap();
        for (k, null) in nulls.iter().enumerate().skip(1) {
            if *null { vals[k].1 = ColumnValue::Null; }
        }
        let ins = encode_insert(&t, &vals, None).unwrap();
        prop_assert_eq!(decode_insert(&t, &ins).unwrap().values, vals.iter().cloned().collect());
    }
}
