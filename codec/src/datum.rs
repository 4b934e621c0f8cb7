//! TiDB's datum codec (`util/codec`): one flag byte, then a payload whose shape the flag names.
//!
//! Two encodings exist for the same [`Datum`]:
//! * the **key** (comparable) form, whose bytes sort like the values: ints as sign-flipped
//!   big-endian (flag 3), uints big-endian (flag 4), bytes memcomparable in 8-byte groups (flag 1);
//! * the **value** form used inside rows: ints as zig-zag varints (flag 8), uints as LEB128
//!   uvarints (flag 9), bytes as varint length + raw bytes (flag 2).
//!
//! Floats (5), decimals (6), durations (7), times (4, packed), JSON (10), NULL (0) and the
//! key-range sentinel MAX (250) look the same in both. The decoders accept every flag in either
//! position, as TiDB's `DecodeOne` does. Decoding never yields [`Datum::Time`]: a packed time comes
//! back as [`Datum::Uint`], and the column type says what it means (see [`crate::value`]).
//!
//! Varints are exactly Go's `encoding/binary` `PutVarint`/`PutUvarint` (≤ 10 bytes, overflow is an
//! error). Floats are stored as their IEEE bits, big-endian, with the sign bit set for values ≥ 0
//! and all bits inverted for negative values (so `-0.0` comes back as `0.0`).

use crate::decimal::{self, Decimal};
use crate::error::{CodecError, Result};
use crate::json::{self, BinaryJson};
use crate::reader::Reader;
use crate::time::Time;

/// Flag bytes (`util/codec/codec.go`).
pub mod flag {
    pub const NIL: u8 = 0;
    pub const BYTES: u8 = 1;
    pub const COMPACT_BYTES: u8 = 2;
    pub const INT: u8 = 3;
    pub const UINT: u8 = 4;
    pub const FLOAT: u8 = 5;
    pub const DECIMAL: u8 = 6;
    pub const DURATION: u8 = 7;
    pub const VARINT: u8 = 8;
    pub const UVARINT: u8 = 9;
    pub const JSON: u8 = 10;
    pub const MAX: u8 = 250;
}

const SIGN_MASK: u64 = 0x8000_0000_0000_0000;
const GROUP_SIZE: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0;

/// One TiDB value as the codec sees it (TiDB's `types.Datum`, reduced to what the wire carries).
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Int(i64),
    Uint(u64),
    Float(f64),
    /// Strings and binary strings alike.
    Bytes(Vec<u8>),
    /// A decimal with the precision/frac it is encoded with (0/0 = the value's own).
    Decimal {
        value: Decimal,
        precision: u8,
        frac: u8,
    },
    /// A TIME value in nanoseconds.
    Duration(i64),
    /// An unflattened date-time; encodes as flag 4 with the packed value.
    Time(Time),
    Json(BinaryJson),
    /// Key-range upper sentinel (`maxFlag`); never part of a row.
    Max,
}

impl Datum {
    /// Short name of the variant, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Datum::Null => "NULL",
            Datum::Int(_) => "int",
            Datum::Uint(_) => "uint",
            Datum::Float(_) => "float",
            Datum::Bytes(_) => "bytes",
            Datum::Decimal { .. } => "decimal",
            Datum::Duration(_) => "duration",
            Datum::Time(_) => "time",
            Datum::Json(_) => "json",
            Datum::Max => "max",
        }
    }

    /// A decimal datum encoded with the value's own precision and frac.
    pub fn decimal(value: Decimal) -> Datum {
        Datum::Decimal {
            value,
            precision: 0,
            frac: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Number primitives
// ---------------------------------------------------------------------------------------------

/// Comparable int: big-endian of the value with its sign bit flipped.
pub fn encode_int_comparable(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&((v as u64) ^ SIGN_MASK).to_be_bytes());
}

/// Inverse of [`encode_int_comparable`]; returns the value and 8.
pub fn decode_int_comparable(buf: &[u8]) -> Result<(i64, usize)> {
    let mut r = Reader::new(buf);
    Ok((read_int_comparable(&mut r)?, 8))
}

fn read_int_comparable(r: &mut Reader<'_>) -> Result<i64> {
    let b = r.take_array::<8>("comparable int")?;
    Ok((u64::from_be_bytes(b) ^ SIGN_MASK) as i64)
}

/// Big-endian u64.
pub fn encode_uint(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn read_uint(r: &mut Reader<'_>) -> Result<u64> {
    Ok(u64::from_be_bytes(r.take_array::<8>("comparable uint")?))
}

/// Comparable float: IEEE bits with the sign bit set when ≥ 0, all bits inverted when < 0.
pub fn encode_float_comparable(buf: &mut Vec<u8>, f: f64) {
    let bits = f.to_bits();
    let u = if f >= 0.0 { bits | SIGN_MASK } else { !bits };
    encode_uint(buf, u);
}

fn read_float(r: &mut Reader<'_>) -> Result<f64> {
    let u = u64::from_be_bytes(r.take_array::<8>("comparable float")?);
    let bits = if u & SIGN_MASK != 0 {
        u & !SIGN_MASK
    } else {
        !u
    };
    Ok(f64::from_bits(bits))
}

/// Go `binary.PutUvarint`: LEB128, 7 bits per byte, low bits first.
pub fn encode_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Go `binary.PutVarint`: zig-zag, then [`encode_uvarint`].
pub fn encode_varint(buf: &mut Vec<u8>, v: i64) {
    encode_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Go `binary.Uvarint` with its overflow rule; returns the value and bytes read.
pub fn decode_uvarint(buf: &[u8]) -> Result<(u64, usize)> {
    let mut r = Reader::new(buf);
    let v = read_uvarint(&mut r, "uvarint")?;
    Ok((v, r.consumed()))
}

/// Go `binary.Varint`; returns the value and bytes read.
pub fn decode_varint(buf: &[u8]) -> Result<(i64, usize)> {
    let mut r = Reader::new(buf);
    let v = read_varint(&mut r, "varint")?;
    Ok((v, r.consumed()))
}

pub(crate) fn read_uvarint(r: &mut Reader<'_>, what: &'static str) -> Result<u64> {
    let start = r.offset();
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for i in 0..10 {
        let b = r.u8(what)?;
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(CodecError::VarintOverflow {
                    offset: start,
                    what,
                });
            }
            return Ok(x | (u64::from(b) << shift));
        }
        x |= u64::from(b & 0x7F) << shift;
        shift += 7;
    }
    Err(CodecError::VarintOverflow {
        offset: start,
        what,
    })
}

pub(crate) fn read_varint(r: &mut Reader<'_>, what: &'static str) -> Result<i64> {
    let ux = read_uvarint(r, what)?;
    let x = (ux >> 1) as i64;
    Ok(if ux & 1 != 0 { !x } else { x })
}

// ---------------------------------------------------------------------------------------------
// Byte-string primitives
// ---------------------------------------------------------------------------------------------

/// Memcomparable bytes: 8-byte groups, each followed by a marker `0xFF - pad count`; the last group
/// is zero-padded, and a length that is a multiple of 8 (including 0) ends with an all-pad group
/// (marker 0xF7).
pub fn encode_bytes_memcomparable(buf: &mut Vec<u8>, data: &[u8]) {
    buf.reserve((data.len() / GROUP_SIZE + 1) * (GROUP_SIZE + 1));
    let mut idx = 0;
    loop {
        let remain = data.len() - idx;
        if remain >= GROUP_SIZE {
            buf.extend_from_slice(&data[idx..idx + GROUP_SIZE]);
            buf.push(MARKER);
            idx += GROUP_SIZE;
        } else {
            let pad = GROUP_SIZE - remain;
            buf.extend_from_slice(&data[idx..]);
            buf.extend(std::iter::repeat_n(PAD, pad));
            buf.push(MARKER - pad as u8);
            return;
        }
    }
}

/// Inverse of [`encode_bytes_memcomparable`]; returns the bytes and bytes read.
pub fn decode_bytes_memcomparable(buf: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut r = Reader::new(buf);
    let v = read_bytes_memcomparable(&mut r)?;
    Ok((v, r.consumed()))
}

fn read_bytes_memcomparable(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let group_offset = r.offset();
        let group = r.take(GROUP_SIZE + 1, "memcomparable bytes group")?;
        let marker = group[GROUP_SIZE];
        let pad = usize::from(MARKER - marker);
        if pad > GROUP_SIZE {
            return Err(CodecError::InvalidBytesGroup {
                offset: group_offset + GROUP_SIZE,
                reason: format!("marker {marker:#04x} implies {pad} pad bytes"),
            });
        }
        let real = GROUP_SIZE - pad;
        out.extend_from_slice(&group[..real]);
        if pad != 0 {
            if group[real..GROUP_SIZE].iter().any(|b| *b != PAD) {
                return Err(CodecError::InvalidBytesGroup {
                    offset: group_offset + real,
                    reason: "non-zero padding".to_string(),
                });
            }
            return Ok(out);
        }
    }
}

/// Compact bytes: zig-zag varint length, then the raw bytes.
pub fn encode_compact_bytes(buf: &mut Vec<u8>, data: &[u8]) {
    encode_varint(buf, data.len() as i64);
    buf.extend_from_slice(data);
}

/// Inverse of [`encode_compact_bytes`]; returns the bytes and bytes read.
pub fn decode_compact_bytes(buf: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut r = Reader::new(buf);
    let v = read_compact_bytes(&mut r)?;
    Ok((v, r.consumed()))
}

fn read_compact_bytes(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let offset = r.offset();
    let len = read_varint(r, "compact bytes length")?;
    let n = usize::try_from(len)
        .ok()
        .filter(|n| *n <= r.remaining().len())
        .ok_or(CodecError::InvalidLength {
            offset,
            what: "compact bytes",
            length: len,
        })?;
    Ok(r.take(n, "compact bytes")?.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Datums
// ---------------------------------------------------------------------------------------------

fn encode_datum(buf: &mut Vec<u8>, d: &Datum, comparable: bool) -> Result<()> {
    match d {
        Datum::Null => buf.push(flag::NIL),
        Datum::Int(v) => {
            if comparable {
                buf.push(flag::INT);
                encode_int_comparable(buf, *v);
            } else {
                buf.push(flag::VARINT);
                encode_varint(buf, *v);
            }
        }
        Datum::Uint(v) => {
            if comparable {
                buf.push(flag::UINT);
                encode_uint(buf, *v);
            } else {
                buf.push(flag::UVARINT);
                encode_uvarint(buf, *v);
            }
        }
        Datum::Float(f) => {
            buf.push(flag::FLOAT);
            encode_float_comparable(buf, *f);
        }
        Datum::Bytes(b) => {
            if comparable {
                buf.push(flag::BYTES);
                encode_bytes_memcomparable(buf, b);
            } else {
                buf.push(flag::COMPACT_BYTES);
                encode_compact_bytes(buf, b);
            }
        }
        Datum::Decimal {
            value,
            precision,
            frac,
        } => {
            buf.push(flag::DECIMAL);
            decimal::encode_decimal(buf, value, *precision, *frac)?;
        }
        Datum::Duration(n) => {
            buf.push(flag::DURATION);
            encode_int_comparable(buf, *n);
        }
        Datum::Time(t) => {
            let packed = t.to_packed()?;
            buf.push(flag::UINT);
            encode_uint(buf, packed);
        }
        Datum::Json(j) => {
            buf.push(flag::JSON);
            buf.push(j.type_code);
            buf.extend_from_slice(&j.value);
        }
        Datum::Max => buf.push(flag::MAX),
    }
    Ok(())
}

/// Appends one datum in the value (non-comparable) form.
pub fn encode_value_into(buf: &mut Vec<u8>, d: &Datum) -> Result<()> {
    encode_datum(buf, d, false)
}

/// Appends one datum in the key (comparable) form.
pub fn encode_key_into(buf: &mut Vec<u8>, d: &Datum) -> Result<()> {
    encode_datum(buf, d, true)
}

/// TiDB's `codec.EncodeValue`: the datums in value form, concatenated.
pub fn encode_value(datums: &[Datum]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for d in datums {
        encode_value_into(&mut buf, d)?;
    }
    Ok(buf)
}

/// TiDB's `codec.EncodeKey`: the datums in comparable form, concatenated.
pub fn encode_key(datums: &[Datum]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for d in datums {
        encode_key_into(&mut buf, d)?;
    }
    Ok(buf)
}

/// TiDB's `codec.DecodeOne`: the first datum of `buf` and the bytes it took.
pub fn decode_one(buf: &[u8]) -> Result<(Datum, usize)> {
    let mut r = Reader::new(buf);
    let d = read_datum(&mut r)?;
    Ok((d, r.consumed()))
}

/// Decodes every datum in `buf` (value form; any flag accepted).
pub fn decode_value(buf: &[u8]) -> Result<Vec<Datum>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(read_datum(&mut r)?);
    }
    Ok(out)
}

/// Decodes every datum in `buf` (key form; any flag accepted — same as [`decode_value`]).
pub fn decode_key(buf: &[u8]) -> Result<Vec<Datum>> {
    decode_value(buf)
}

pub(crate) fn read_datum(r: &mut Reader<'_>) -> Result<Datum> {
    let flag_offset = r.offset();
    let f = r.u8("datum flag")?;
    Ok(match f {
        flag::NIL => Datum::Null,
        flag::INT => Datum::Int(read_int_comparable(r)?),
        flag::UINT => Datum::Uint(read_uint(r)?),
        flag::VARINT => Datum::Int(read_varint(r, "varint datum")?),
        flag::UVARINT => Datum::Uint(read_uvarint(r, "uvarint datum")?),
        flag::FLOAT => Datum::Float(read_float(r)?),
        flag::BYTES => Datum::Bytes(read_bytes_memcomparable(r)?),
        flag::COMPACT_BYTES => Datum::Bytes(read_compact_bytes(r)?),
        flag::DECIMAL => {
            let (value, precision, frac, n) =
                decimal::decode_decimal_at(r.remaining(), r.offset())?;
            r.take(n, "decimal")?;
            Datum::Decimal {
                value,
                precision,
                frac,
            }
        }
        flag::DURATION => Datum::Duration(read_int_comparable(r)?),
        flag::JSON => {
            let type_offset = r.offset();
            let type_code = r.u8("json type code")?;
            let n = json::binary_len_at(type_code, r.remaining(), type_offset + 1)?;
            let value = r.take(n, "json value")?.to_vec();
            Datum::Json(BinaryJson { type_code, value })
        }
        flag::MAX => Datum::Max,
        other => {
            return Err(CodecError::UnknownFlag {
                offset: flag_offset,
                flag: other,
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;
    use crate::time::TimeKind;
    use proptest::prelude::*;

    #[test]
    fn varints_match_go() {
        // Values and bytes from Go's encoding/binary documentation/tests.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7F]),
            (64, &[0x80, 0x01]),
            (
                i64::MAX,
                &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
            (
                i64::MIN,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for (v, bytes) in cases {
            let mut buf = Vec::new();
            encode_varint(&mut buf, *v);
            assert_eq!(&buf, bytes, "varint {v}");
            assert_eq!(decode_varint(bytes).unwrap(), (*v, bytes.len()));
        }
        let mut buf = Vec::new();
        encode_uvarint(&mut buf, 300);
        assert_eq!(buf, [0xAC, 0x02]);
        encode_uvarint(&mut buf, u64::MAX);
        assert_eq!(buf.len(), 12);
        // An 11-byte varint and a 10th byte > 1 both overflow.
        assert!(matches!(
            decode_uvarint(&[0xFF; 11]),
            Err(CodecError::VarintOverflow { offset: 0, .. })
        ));
        assert!(
            decode_uvarint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]).is_err()
        );
        assert!(matches!(
            decode_uvarint(&[0x80]),
            Err(CodecError::UnexpectedEof { offset: 1, .. })
        ));
    }

    #[test]
    fn value_form_vectors() {
        // Int 1 -> varint flag 8, zig-zag 2.  Uint 300 -> uvarint flag 9, AC 02.
        // "ab" -> compactBytes flag 2, varint(2) = 04, 'a' 'b'.  NULL -> 00.
        let bytes = encode_value(&[
            Datum::Int(1),
            Datum::Uint(300),
            Datum::Bytes(b"ab".to_vec()),
            Datum::Null,
        ])
        .unwrap();
        assert_eq!(bytes, [8, 2, 9, 0xAC, 0x02, 2, 4, b'a', b'b', 0]);
        // Duration 1s -> flag 7 + comparable int of 1e9 = 0x80000000_3B9ACA00.
        let d = encode_value(&[Datum::Duration(1_000_000_000)]).unwrap();
        assert_eq!(d, [7, 0x80, 0, 0, 0, 0x3B, 0x9A, 0xCA, 0x00]);
        // Float 1.0 -> 0x3FF0... with the sign bit set -> BF F0 00..; -1.0 -> !0xBFF0.. = 40 0F FF..
        assert_eq!(
            encode_value(&[Datum::Float(1.0)]).unwrap(),
            [5, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            encode_value(&[Datum::Float(-1.0)]).unwrap(),
            [5, 0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        // Decimal 1.5 as DECIMAL(5,2): flag 6, 05 02, 80 01 32 (see decimal.rs).
        let dec = Datum::Decimal {
            value: Decimal::parse("1.5").unwrap(),
            precision: 5,
            frac: 2,
        };
        assert_eq!(
            encode_value(std::slice::from_ref(&dec)).unwrap(),
            [6, 5, 2, 0x80, 0x01, 0x32]
        );
    }

    #[test]
    fn key_form_vectors() {
        // Int -1 -> FF..FF ^ sign = 7F FF .. FF; Uint 1 -> 00..01.
        assert_eq!(
            encode_key(&[Datum::Int(-1)]).unwrap(),
            [3, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            encode_key(&[Datum::Uint(1)]).unwrap(),
            [4, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        // Memcomparable: "" -> 8 pads + F7; "abc" -> abc + 5 pads + FA;
        // 8 bytes -> group + FF, then an empty group + F7.
        assert_eq!(
            encode_key(&[Datum::Bytes(vec![])]).unwrap(),
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0xF7]
        );
        assert_eq!(
            encode_key(&[Datum::Bytes(b"abc".to_vec())]).unwrap(),
            [1, b'a', b'b', b'c', 0, 0, 0, 0, 0, 0xFA]
        );
        let eight = encode_key(&[Datum::Bytes(b"12345678".to_vec())]).unwrap();
        assert_eq!(&eight[1..10], b"12345678\xFF");
        assert_eq!(&eight[10..], [0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(encode_key(&[Datum::Max]).unwrap(), [250]);
    }

    #[test]
    fn time_and_json_datums() {
        let t = Time::parse("2024-02-29 13:45:01.123456", TimeKind::Datetime, 6).unwrap();
        let packed = t.to_packed().unwrap();
        let bytes = encode_value(&[Datum::Time(t)]).unwrap();
        assert_eq!(bytes[0], flag::UINT);
        assert_eq!(decode_value(&bytes).unwrap(), vec![Datum::Uint(packed)]);

        let j = Json::parse_text(r#"{"a":[1,"x",null]}"#)
            .unwrap()
            .to_binary()
            .unwrap();
        let bytes = encode_value(&[Datum::Json(j.clone()), Datum::Int(7)]).unwrap();
        assert_eq!(
            decode_value(&bytes).unwrap(),
            vec![Datum::Json(j), Datum::Int(7)]
        );
    }

    #[test]
    fn decode_errors_name_offset_and_flag() {
        assert_eq!(
            decode_value(&[0, 11]),
            Err(CodecError::UnknownFlag {
                offset: 1,
                flag: 11
            })
        );
        assert!(matches!(
            decode_value(&[8, 2, 3, 0, 0]),
            Err(CodecError::UnexpectedEof { offset: 3, .. })
        ));
        // compact bytes claiming 5 bytes with 1 available.
        assert!(matches!(
            decode_value(&[2, 10, b'a']),
            Err(CodecError::InvalidLength {
                offset: 1,
                length: 5,
                ..
            })
        ));
        // Memcomparable group with marker 0xF0 (15 pads) and with non-zero padding.
        assert!(matches!(
            decode_value(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0]),
            Err(CodecError::InvalidBytesGroup { offset: 9, .. })
        ));
        assert!(matches!(
            decode_value(&[1, b'a', 0, 1, 0, 0, 0, 0, 0, 0xF9]),
            Err(CodecError::InvalidBytesGroup { offset: 3, .. })
        ));
    }

    fn any_datum() -> impl Strategy<Value = Datum> {
        prop_oneof![
            Just(Datum::Null),
            any::<i64>().prop_map(Datum::Int),
            any::<u64>().prop_map(Datum::Uint),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Datum::Float),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Datum::Bytes),
            any::<i64>().prop_map(Datum::Duration),
            (any::<bool>(), "[0-9]{1,20}", "[0-9]{0,10}").prop_map(|(n, i, f)| {
                let s = format!("{}{}.{}", if n { "-" } else { "" }, i, f);
                Datum::decimal(Decimal::parse(&s).unwrap())
            }),
            Just(Datum::Max),
        ]
    }

    /// What decoding gives back: -0.0 becomes 0.0; a decimal's 0/0 header is resolved.
    fn normalise(d: Datum) -> Datum {
        match d {
            Datum::Float(f) => Datum::Float(if f == 0.0 { 0.0 } else { f }),
            Datum::Decimal {
                value,
                precision: 0,
                ..
            } => {
                let (precision, frac) = value.precision_and_frac();
                Datum::Decimal {
                    value,
                    precision,
                    frac,
                }
            }
            other => other,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn value_round_trip(ds in proptest::collection::vec(any_datum(), 0..8)) {
            let bytes = encode_value(&ds).unwrap();
            let back = decode_value(&bytes).unwrap();
            prop_assert_eq!(back, ds.into_iter().map(normalise).collect::<Vec<_>>());
        }

        #[test]
        fn key_round_trip(ds in proptest::collection::vec(any_datum(), 0..8)) {
            let bytes = encode_key(&ds).unwrap();
            let back = decode_key(&bytes).unwrap();
            prop_assert_eq!(back, ds.into_iter().map(normalise).collect::<Vec<_>>());
        }

        #[test]
        fn decode_one_reports_length(d in any_datum(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = encode_value(std::slice::from_ref(&d)).unwrap();
            let n = bytes.len();
            bytes.extend_from_slice(&tail);
            let (back, used) = decode_one(&bytes).unwrap();
            prop_assert_eq!(used, n);
            prop_assert_eq!(back, normalise(d));
        }

        #[test]
        fn key_bytes_sort_like_values(a in proptest::collection::vec(any::<u8>(), 0..20), b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let ka = encode_key(&[Datum::Bytes(a.clone())]).unwrap();
            let kb = encode_key(&[Datum::Bytes(b.clone())]).unwrap();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn key_ints_and_floats_sort_like_values(a in any::<i64>(), b in any::<i64>(), x in -1e300f64..1e300, y in -1e300f64..1e300) {
            let ka = encode_key(&[Datum::Int(a)]).unwrap();
            let kb = encode_key(&[Datum::Int(b)]).unwrap();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            let kx = encode_key(&[Datum::Float(x)]).unwrap();
            let ky = encode_key(&[Datum::Float(y)]).unwrap();
            prop_assert_eq!(x.partial_cmp(&y), Some(kx.cmp(&ky)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_value(&bytes);
        }
    }
}
