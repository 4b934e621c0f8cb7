//! Conversion between row datums and typed SQL column values, both ways, driven by the column's
//! [`FieldType`].
//!
//! * Decoding (drainer): [`datum_to_value`] turns a datum read from a row (flattened: times are
//!   packed uints, durations int nanoseconds, enum/set/bit uints) into a [`ColumnValue`];
//!   [`ColumnValue::format_datum`] gives the drainer's `formatData` form (reference drainer.md §3.4),
//!   used for SQL arguments and for pb-file/Kafka values.
//! * Encoding (upstream simulator): [`ColumnValue::parse`] reads a MySQL literal for a column,
//!   [`value_to_datum`] flattens the value into the datum TiDB puts in rows.
//! * Missing columns: [`missing_column_value`] follows the drainer's rule (origin default, else
//!   NULL, else first enum member, else the type's zero value).
//!
//! Time zones: TIMESTAMP values are packed in UTC and this module leaves them in UTC both ways; a
//! caller that needs a session zone shifts them with [`crate::time::Time::shift_seconds`].

use crate::datum::Datum;
use crate::decimal::Decimal;
use crate::error::{CodecError, Result};
use crate::json::Json;
use crate::schema::{ColumnInfo, FieldType, type_code as tc};
use crate::time::{Duration, Time, TimeKind};

/// A typed value of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValue {
    Null,
    /// Signed TINYINT … BIGINT, and YEAR.
    Int(i64),
    /// UNSIGNED TINYINT … BIGINT.
    Uint(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL, with the column's scale.
    Decimal(Decimal),
    /// DATE, DATETIME, TIMESTAMP (TIMESTAMP in UTC).
    Time(Time),
    /// TIME.
    Duration(Duration),
    /// CHAR/VARCHAR/TEXT with a non-binary charset.
    Text(String),
    /// BINARY/VARBINARY/BLOB (or text bytes that are not UTF-8).
    Bytes(Vec<u8>),
    /// ENUM: 1-based index (0 = the empty error value) and member name.
    Enum {
        index: u64,
        name: String,
    },
    /// SET: bitmask and comma-separated member names.
    Set {
        bits: u64,
        names: String,
    },
    /// BIT(M): value and byte width `(M + 7) / 8`.
    Bit {
        value: u64,
        width: usize,
    },
    Json(Json),
}

fn conversion_error(
    ft: &FieldType,
    what: impl Into<String>,
    reason: impl Into<String>,
) -> CodecError {
    CodecError::ValueConversion {
        what: what.into(),
        tp: ft.tp,
        type_name: ft.type_name(),
        reason: reason.into(),
    }
}

fn datum_error(ft: &FieldType, d: &Datum) -> CodecError {
    conversion_error(
        ft,
        format!("{} datum", d.kind_name()),
        "unexpected datum kind",
    )
}

fn bit_width(ft: &FieldType) -> usize {
    let bits = if ft.flen <= 0 { 1 } else { ft.flen.min(64) };
    // bits is 1..=64
    (bits as usize).div_ceil(8)
}

/// Integer bounds for a column: (min, max) as i128 so both signednesses fit.
fn int_bounds(ft: &FieldType) -> (i128, i128) {
    let bits: u32 = match ft.tp {
        tc::TINY => 8,
        tc::SHORT => 16,
        tc::INT24 => 24,
        tc::LONG => 32,
        _ => 64,
    };
    if ft.is_unsigned() {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    }
}

fn time_kind(ft: &FieldType) -> TimeKind {
    TimeKind::from_type_code(ft.tp).unwrap_or(TimeKind::Datetime)
}

fn enum_value(ft: &FieldType, index: u64) -> Result<ColumnValue> {
    let name = match index {
        0 => String::new(),
        i => ft
            .elems()
            .get(usize::try_from(i - 1).unwrap_or(usize::MAX))
            .cloned()
            .ok_or_else(|| {
                conversion_error(
                    ft,
                    format!("enum index {i}"),
                    format!("only {} members", ft.elems().len()),
                )
            })?,
    };
    Ok(ColumnValue::Enum { index, name })
}

fn set_value(ft: &FieldType, bits: u64) -> Result<ColumnValue> {
    let elems = ft.elems();
    if elems.len() < 64 && bits >> elems.len() != 0 {
        return Err(conversion_error(
            ft,
            format!("set bits {bits:#x}"),
            format!("only {} members", elems.len()),
        ));
    }
    let names: Vec<&str> = elems
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            u32::try_from(*i)
                .ok()
                .and_then(|i| 1u64.checked_shl(i))
                .is_some_and(|bit| bits & bit != 0)
        })
        .map(|(_, s)| s.as_str())
        .collect();
    Ok(ColumnValue::Set {
        bits,
        names: names.join(","),
    })
}

/// Interprets a datum read from a row (or a handle) as a value of the column type `ft`.
pub fn datum_to_value(ft: &FieldType, d: &Datum) -> Result<ColumnValue> {
    if matches!(d, Datum::Null) {
        return Ok(ColumnValue::Null);
    }
    let unsigned = ft.is_unsigned();
    Ok(match ft.tp {
        tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG | tc::YEAR => match d {
            // An int handle of an UNSIGNED PK arrives as Int: -1 means 18446744073709551615.
            Datum::Int(i) if unsigned => ColumnValue::Uint(*i as u64),
            Datum::Int(i) => ColumnValue::Int(*i),
            Datum::Uint(u) if unsigned => ColumnValue::Uint(*u),
            Datum::Uint(u) => ColumnValue::Int(*u as i64),
            _ => return Err(datum_error(ft, d)),
        },
        tc::FLOAT => match d {
            Datum::Float(f) => ColumnValue::Float(*f as f32),
            _ => return Err(datum_error(ft, d)),
        },
        tc::DOUBLE => match d {
            Datum::Float(f) => ColumnValue::Double(*f),
            _ => return Err(datum_error(ft, d)),
        },
        tc::DECIMAL | tc::NEWDECIMAL => match d {
            Datum::Decimal { value, .. } => ColumnValue::Decimal(value.clone()),
            Datum::Bytes(b) => ColumnValue::Decimal(Decimal::parse(&String::from_utf8_lossy(b))?),
            _ => return Err(datum_error(ft, d)),
        },
        tc::DATE | tc::NEWDATE | tc::DATETIME | tc::TIMESTAMP => {
            let (kind, fsp) = (time_kind(ft), ft.fsp());
            match d {
                Datum::Uint(p) => ColumnValue::Time(Time::from_packed(*p, kind, fsp)?),
                Datum::Int(p) => ColumnValue::Time(Time::from_packed(*p as u64, kind, fsp)?),
                Datum::Time(t) => ColumnValue::Time(Time::from_packed(t.to_packed()?, kind, fsp)?),
                Datum::Bytes(b) => {
                    ColumnValue::Time(Time::parse(&String::from_utf8_lossy(b), kind, fsp)?)
                }
                _ => return Err(datum_error(ft, d)),
            }
        }
        tc::DURATION => match d {
            Datum::Int(n) | Datum::Duration(n) => {
                ColumnValue::Duration(Duration::new(*n, ft.fsp())?)
            }
            Datum::Uint(n) => ColumnValue::Duration(Duration::new(*n as i64, ft.fsp())?),
            Datum::Bytes(b) => {
                ColumnValue::Duration(Duration::parse(&String::from_utf8_lossy(b), ft.fsp())?)
            }
            _ => return Err(datum_error(ft, d)),
        },
        tp if tc::is_string(tp) => match d {
            Datum::Bytes(b) => string_value(ft, b.clone()),
            _ => return Err(datum_error(ft, d)),
        },
        tc::ENUM => match d {
            Datum::Uint(i) => enum_value(ft, *i)?,
            Datum::Int(i) => enum_value(ft, *i as u64)?,
            Datum::Bytes(b) => parse_enum(ft, &String::from_utf8_lossy(b))?,
            _ => return Err(datum_error(ft, d)),
        },
        tc::SET => match d {
            Datum::Uint(b) => set_value(ft, *b)?,
            Datum::Int(b) => set_value(ft, *b as u64)?,
            Datum::Bytes(b) => parse_set(ft, &String::from_utf8_lossy(b))?,
            _ => return Err(datum_error(ft, d)),
        },
        tc::BIT => {
            let width = bit_width(ft);
            let value = match d {
                Datum::Uint(v) => *v,
                Datum::Int(v) => *v as u64,
                Datum::Bytes(b) if b.len() <= 8 => {
                    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
                }
                _ => return Err(datum_error(ft, d)),
            };
            ColumnValue::Bit { value, width }
        }
        tc::JSON => match d {
            Datum::Json(j) => ColumnValue::Json(j.to_json()?),
            Datum::Bytes(b) => ColumnValue::Json(Json::parse_text(&String::from_utf8_lossy(b))?),
            _ => return Err(datum_error(ft, d)),
        },
        _ => {
            return Err(conversion_error(
                ft,
                format!("{} datum", d.kind_name()),
                "unsupported column type",
            ));
        }
    })
}

/// [`datum_to_value`] taking the datum, so that strings and decimals move rather than copy (the
/// drainer's hot path).
pub fn datum_into_value(ft: &FieldType, d: Datum) -> Result<ColumnValue> {
    match (ft.tp, d) {
        (tp, Datum::Bytes(b)) if tc::is_string(tp) => Ok(string_value(ft, b)),
        (tc::DECIMAL | tc::NEWDECIMAL, Datum::Decimal { value, .. }) => {
            Ok(ColumnValue::Decimal(value))
        }
        (_, d) => datum_to_value(ft, &d),
    }
}

/// A string column's bytes: binary strings as bytes, others as text unless they are not UTF-8.
fn string_value(ft: &FieldType, bytes: Vec<u8>) -> ColumnValue {
    if ft.is_binary_string() {
        return ColumnValue::Bytes(bytes);
    }
    if simdutf8::basic::from_utf8(&bytes).is_err() {
        return ColumnValue::Bytes(bytes);
    }
    // SAFETY: `bytes` was just validated as UTF-8. std's own check (`String::from_utf8`) goes a
    // byte at a time through non-ASCII text, ~4 ns a byte: 3.5% of the drainer's CPU on the
    // benchmark's mixed text, and more on the CJK text TiDB's users mostly store.
    #[allow(unsafe_code)]
    let text = unsafe { String::from_utf8_unchecked(bytes) };
    ColumnValue::Text(text)
}

/// Flattens a value into the datum TiDB stores in rows for a column of type `ft` (signed ints as
/// Int, unsigned as Uint, times packed into Uint, durations Int nanoseconds, enum/set/bit Uint,
/// decimals with the column's precision and scale, JSON binary). Range-checks ints against the
/// column width.
pub fn value_to_datum(ft: &FieldType, v: &ColumnValue) -> Result<Datum> {
    let mismatch =
        || conversion_error(ft, format!("{v:?}"), "value does not match the column type");
    if matches!(v, ColumnValue::Null) {
        return Ok(Datum::Null);
    }
    Ok(match ft.tp {
        tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG | tc::YEAR => {
            let n: i128 = match v {
                ColumnValue::Int(i) => i128::from(*i),
                ColumnValue::Uint(u) => i128::from(*u),
                _ => return Err(mismatch()),
            };
            let (lo, hi) = int_bounds(ft);
            if n < lo || n > hi {
                return Err(conversion_error(
                    ft,
                    n.to_string(),
                    format!("outside {lo}..={hi}"),
                ));
            }
            // In range, so the casts are lossless.
            if ft.is_unsigned() {
                Datum::Uint(n as u64)
            } else {
                Datum::Int(n as i64)
            }
        }
        tc::FLOAT => match v {
            ColumnValue::Float(f) => Datum::Float(f64::from(*f)),
            ColumnValue::Double(f) => Datum::Float(f64::from(*f as f32)),
            _ => return Err(mismatch()),
        },
        tc::DOUBLE => match v {
            ColumnValue::Double(f) => Datum::Float(*f),
            ColumnValue::Float(f) => Datum::Float(f64::from(*f)),
            _ => return Err(mismatch()),
        },
        tc::DECIMAL | tc::NEWDECIMAL => match v {
            ColumnValue::Decimal(d) => {
                let scale = usize::try_from(ft.decimal).ok().filter(|s| *s <= 30);
                let value = scale.map_or_else(|| d.clone(), |s| d.round_to_frac(s));
                match (u8::try_from(ft.flen), u8::try_from(ft.decimal)) {
                    (Ok(p @ 1..=65), Ok(f)) if f <= p && f <= 30 => Datum::Decimal {
                        value,
                        precision: p,
                        frac: f,
                    },
                    _ => Datum::decimal(value),
                }
            }
            _ => return Err(mismatch()),
        },
        tc::DATE | tc::NEWDATE | tc::DATETIME | tc::TIMESTAMP => match v {
            ColumnValue::Time(t) => Datum::Uint(t.to_packed()?),
            _ => return Err(mismatch()),
        },
        tc::DURATION => match v {
            ColumnValue::Duration(d) => Datum::Int(d.nanos),
            _ => return Err(mismatch()),
        },
        tp if tc::is_string(tp) => match v {
            ColumnValue::Text(s) => Datum::Bytes(s.as_bytes().to_vec()),
            ColumnValue::Bytes(b) => Datum::Bytes(b.clone()),
            _ => return Err(mismatch()),
        },
        tc::ENUM => match v {
            ColumnValue::Enum { index, .. } | ColumnValue::Uint(index) => {
                enum_value(ft, *index)?;
                Datum::Uint(*index)
            }
            _ => return Err(mismatch()),
        },
        tc::SET => match v {
            ColumnValue::Set { bits, .. } | ColumnValue::Uint(bits) => {
                set_value(ft, *bits)?;
                Datum::Uint(*bits)
            }
            _ => return Err(mismatch()),
        },
        tc::BIT => match v {
            ColumnValue::Bit { value, .. } | ColumnValue::Uint(value) => Datum::Uint(*value),
            _ => return Err(mismatch()),
        },
        tc::JSON => match v {
            ColumnValue::Json(j) => Datum::Json(j.to_binary()?),
            _ => return Err(mismatch()),
        },
        _ => {
            return Err(conversion_error(
                ft,
                format!("{v:?}"),
                "unsupported column type",
            ));
        }
    })
}

fn parse_enum(ft: &FieldType, text: &str) -> Result<ColumnValue> {
    if let Some(i) = ft.elems().iter().position(|e| e.eq_ignore_ascii_case(text)) {
        return enum_value(ft, i as u64 + 1);
    }
    match text.trim().parse::<u64>() {
        Ok(i) => enum_value(ft, i),
        Err(_) => Err(conversion_error(ft, text, "not an enum member")),
    }
}

fn parse_set(ft: &FieldType, text: &str) -> Result<ColumnValue> {
    if let Ok(bits) = text.trim().parse::<u64>() {
        return set_value(ft, bits);
    }
    let mut bits = 0u64;
    for name in text.split(',').filter(|s| !s.is_empty()) {
        let i = ft
            .elems()
            .iter()
            .position(|e| e.eq_ignore_ascii_case(name))
            .ok_or_else(|| conversion_error(ft, name, "not a set member"))?;
        if i >= 64 {
            return Err(conversion_error(ft, name, "set member beyond bit 63"));
        }
        bits |= 1 << i;
    }
    set_value(ft, bits)
}

impl ColumnValue {
    /// Reads a MySQL literal (as it would appear in a VALUES list, unquoted) for column type `ft`:
    /// numbers for int/float/year columns, decimal text (rounded to the column scale), date/time
    /// literals (rounded to the column fsp), enum member names or indexes, comma-separated set
    /// members or a bitmask, `b'0101'`/`0x1F`/decimal for BIT, JSON text. String columns take the
    /// text as is.
    pub fn parse(ft: &FieldType, text: &str) -> Result<ColumnValue> {
        let bad = |reason: &str| conversion_error(ft, text, reason);
        Ok(match ft.tp {
            tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG | tc::YEAR => {
                let t = text.trim();
                let v = if ft.is_unsigned() {
                    ColumnValue::Uint(t.parse().map_err(|_| bad("not an unsigned integer"))?)
                } else {
                    ColumnValue::Int(t.parse().map_err(|_| bad("not an integer"))?)
                };
                value_to_datum(ft, &v)?;
                v
            }
            tc::FLOAT => ColumnValue::Float(text.trim().parse().map_err(|_| bad("not a number"))?),
            tc::DOUBLE => {
                ColumnValue::Double(text.trim().parse().map_err(|_| bad("not a number"))?)
            }
            tc::DECIMAL | tc::NEWDECIMAL => {
                let d = Decimal::parse(text.trim())?;
                match usize::try_from(ft.decimal) {
                    Ok(s) if s <= 30 => ColumnValue::Decimal(d.round_to_frac(s)),
                    _ => ColumnValue::Decimal(d),
                }
            }
            tc::DATE | tc::NEWDATE | tc::DATETIME | tc::TIMESTAMP => {
                ColumnValue::Time(Time::parse(text, time_kind(ft), ft.fsp())?)
            }
            tc::DURATION => ColumnValue::Duration(Duration::parse(text, ft.fsp())?),
            tp if tc::is_string(tp) => {
                if ft.is_binary_string() {
                    ColumnValue::Bytes(text.as_bytes().to_vec())
                } else {
                    ColumnValue::Text(text.to_string())
                }
            }
            tc::ENUM => parse_enum(ft, text)?,
            tc::SET => parse_set(ft, text)?,
            tc::BIT => {
                let t = text.trim();
                let value = if let Some(b) = t.strip_prefix("b'").and_then(|s| s.strip_suffix('\''))
                {
                    u64::from_str_radix(b, 2).map_err(|_| bad("bad bit literal"))?
                } else if let Some(h) = t.strip_prefix("0x") {
                    u64::from_str_radix(h, 16).map_err(|_| bad("bad hex literal"))?
                } else {
                    t.parse().map_err(|_| bad("not a bit value"))?
                };
                let width = bit_width(ft);
                if width < 8 && value >> (width * 8) != 0 {
                    return Err(bad("too many bits"));
                }
                ColumnValue::Bit { value, width }
            }
            tc::JSON => ColumnValue::Json(Json::parse_text(text)?),
            _ => return Err(bad("unsupported column type")),
        })
    }

    /// The zero value of a column type (0, 0.0, `0000-00-00`, `00:00:00`, empty string, enum
    /// index 0, empty set, `null` JSON).
    pub fn zero(ft: &FieldType) -> Result<ColumnValue> {
        Ok(match ft.tp {
            tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG | tc::YEAR => {
                if ft.is_unsigned() {
                    ColumnValue::Uint(0)
                } else {
                    ColumnValue::Int(0)
                }
            }
            tc::FLOAT => ColumnValue::Float(0.0),
            tc::DOUBLE => ColumnValue::Double(0.0),
            tc::DECIMAL | tc::NEWDECIMAL => ColumnValue::Decimal(
                Decimal::zero().round_to_frac(usize::from(
                    ft.fsp()
                        .max(u8::try_from(ft.decimal.clamp(0, 30)).unwrap_or(0)),
                )),
            ),
            tc::DATE | tc::NEWDATE | tc::DATETIME | tc::TIMESTAMP => {
                ColumnValue::Time(Time::zero(time_kind(ft), ft.fsp()))
            }
            tc::DURATION => ColumnValue::Duration(Duration::new(0, ft.fsp())?),
            tc::ENUM => ColumnValue::Enum {
                index: 0,
                name: String::new(),
            },
            tc::SET => ColumnValue::Set {
                bits: 0,
                names: String::new(),
            },
            tc::BIT => ColumnValue::Bit {
                value: 0,
                width: bit_width(ft),
            },
            tc::JSON => ColumnValue::Json(Json::Null),
            _ if ft.is_binary_string() => ColumnValue::Bytes(Vec::new()),
            _ => ColumnValue::Text(String::new()),
        })
    }

    /// TiDB's display text (`%v`): numbers, decimal text, `YYYY-MM-DD hh:mm:ss[.f]`,
    /// `[-]hh:mm:ss[.f]`, enum member, set members, JSON text; BIT as its number; bytes lossily as
    /// UTF-8. `None` for NULL.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            ColumnValue::Null => return None,
            ColumnValue::Int(i) => i.to_string(),
            ColumnValue::Uint(u) => u.to_string(),
            ColumnValue::Float(f) => go_float_text(format!("{f:e}"), f.to_string()),
            ColumnValue::Double(f) => go_float_text(format!("{f:e}"), f.to_string()),
            ColumnValue::Decimal(d) => d.to_string(),
            ColumnValue::Time(t) => t.to_string(),
            ColumnValue::Duration(d) => d.to_string(),
            ColumnValue::Text(s) => s.clone(),
            ColumnValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            ColumnValue::Enum { name, .. } => name.clone(),
            ColumnValue::Set { names, .. } => names.clone(),
            ColumnValue::Bit { value, .. } => value.to_string(),
            ColumnValue::Json(j) => j.to_text(),
        })
    }

    /// Big-endian bytes of a BIT value, `width` bytes long.
    pub fn bit_bytes(&self) -> Option<Vec<u8>> {
        match self {
            ColumnValue::Bit { value, width } => {
                let be = value.to_be_bytes();
                Some(be[8 - (*width).min(8)..].to_vec())
            }
            _ => None,
        }
    }

    /// The drainer's `formatData` datum (reference drainer.md §3.4): NULL stays NULL; ints, floats,
    /// strings and bytes pass through; decimal, date/time, TIME and JSON become their text;
    /// ENUM, SET and BIT become their number. Value-encoded, this is what pb-file and Kafka
    /// sinks store.
    pub fn format_datum(&self) -> Datum {
        match self {
            ColumnValue::Null => Datum::Null,
            ColumnValue::Int(i) => Datum::Int(*i),
            ColumnValue::Uint(u) => Datum::Uint(*u),
            ColumnValue::Float(f) => Datum::Float(f64::from(*f)),
            ColumnValue::Double(f) => Datum::Float(*f),
            ColumnValue::Text(s) => Datum::Bytes(s.as_bytes().to_vec()),
            ColumnValue::Bytes(b) => Datum::Bytes(b.clone()),
            ColumnValue::Enum { index, .. } => Datum::Uint(*index),
            ColumnValue::Set { bits, .. } => Datum::Uint(*bits),
            ColumnValue::Bit { value, .. } => Datum::Uint(*value),
            ColumnValue::Decimal(_)
            | ColumnValue::Time(_)
            | ColumnValue::Duration(_)
            | ColumnValue::Json(_) => Datum::Bytes(self.to_text().unwrap_or_default().into_bytes()),
        }
    }
}

/// Go's `%v` of a float (`strconv` 'g' with the shortest digits): exponent form when the decimal
/// exponent is below -4 or at least 6 (`1e+06`, `2.5e-05`), plain digits otherwise. Takes Rust's
/// shortest `{:e}` and `{}` renderings of the same value.
fn go_float_text(sci: String, plain: String) -> String {
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return plain; // inf / NaN
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return plain;
    };
    if (-4..6).contains(&exp) {
        return plain;
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Value for a column absent from a row (drainer's `getDefaultOrZeroValue`): the origin default
/// (a literal, or base64 raw bytes for BIT), else NULL if nullable, else the first member of a
/// NOT NULL enum, else the type's zero value. TIMESTAMP defaults of column version ≥ 1 are UTC,
/// consistent with this module.
pub fn missing_column_value(col: &ColumnInfo) -> Result<ColumnValue> {
    let ft = &col.field_type;
    if ft.tp == tc::BIT
        && let Some(serde_json::Value::String(b64)) = col.origin_default_bit.as_ref()
    {
        let bytes =
            base64_decode(b64).ok_or_else(|| conversion_error(ft, b64.as_str(), "bad base64"))?;
        let value = bytes
            .iter()
            .take(8)
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        return Ok(ColumnValue::Bit {
            value,
            width: bit_width(ft),
        });
    }
    if let Some(def) = col.origin_default_value() {
        let text = match def {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return ColumnValue::parse(ft, &text);
    }
    if !ft.is_not_null() {
        return Ok(ColumnValue::Null);
    }
    if ft.tp == tc::ENUM && !ft.elems().is_empty() {
        return enum_value(ft, 1);
    }
    ColumnValue::zero(ft)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut nbits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::flag;
    use proptest::prelude::*;

    fn ft(tp: u8, flag: u64, flen: i64, decimal: i64) -> FieldType {
        let mut f = FieldType::new(tp);
        f.flag = flag;
        f.flen = flen;
        f.decimal = decimal;
        if tc::is_string(tp) {
            f.charset = "utf8mb4".into();
            f.collate = "utf8mb4_bin".into();
        }
        f
    }

    fn with_elems(mut f: FieldType, elems: &[&str]) -> FieldType {
        f.elems = Some(elems.iter().map(|s| s.to_string()).collect());
        f
    }

    #[test]
    fn unsigned_handle_and_ints() {
        let ubig = ft(tc::LONGLONG, flag::UNSIGNED, 20, 0);
        assert_eq!(
            datum_to_value(&ubig, &Datum::Int(-1)).unwrap(),
            ColumnValue::Uint(u64::MAX)
        );
        assert_eq!(
            value_to_datum(&ubig, &ColumnValue::Uint(u64::MAX)).unwrap(),
            Datum::Uint(u64::MAX)
        );
        let tiny = ft(tc::TINY, 0, 4, 0);
        assert!(value_to_datum(&tiny, &ColumnValue::Int(128)).is_err());
        assert!(ColumnValue::parse(&tiny, "-129").is_err());
        assert_eq!(
            ColumnValue::parse(&tiny, "-128").unwrap(),
            ColumnValue::Int(-128)
        );
        let year = ft(tc::YEAR, flag::UNSIGNED | flag::ZEROFILL, 4, 0);
        assert_eq!(
            datum_to_value(&year, &Datum::Int(2024)).unwrap(),
            ColumnValue::Uint(2024)
        );
    }

    #[test]
    fn times_and_durations() {
        let dt = ft(tc::DATETIME, 0, 26, 6);
        let v = ColumnValue::parse(&dt, "2024-02-29 13:45:01.123456").unwrap();
        let d = value_to_datum(&dt, &v).unwrap();
        assert!(matches!(d, Datum::Uint(_)));
        assert_eq!(datum_to_value(&dt, &d).unwrap(), v);
        assert_eq!(
            v.format_datum(),
            Datum::Bytes(b"2024-02-29 13:45:01.123456".to_vec())
        );
        let date = ft(tc::DATE, 0, 10, 0);
        assert_eq!(
            datum_to_value(&date, &d).unwrap().to_text().unwrap(),
            "2024-02-29"
        );
        let time = ft(tc::DURATION, 0, 10, 0);
        let v = ColumnValue::parse(&time, "-838:59:59").unwrap();
        assert_eq!(
            value_to_datum(&time, &v).unwrap(),
            Datum::Int(-3_020_399_000_000_000)
        );
        assert_eq!(
            datum_to_value(&time, &Datum::Int(-3_020_399_000_000_000))
                .unwrap()
                .to_text()
                .unwrap(),
            "-838:59:59"
        );
    }

    #[test]
    fn enum_set_bit() {
        let e = with_elems(ft(tc::ENUM, 0, -1, -1), &["small", "big"]);
        assert_eq!(
            datum_to_value(&e, &Datum::Uint(2)).unwrap(),
            ColumnValue::Enum {
                index: 2,
                name: "big".into()
            }
        );
        assert!(datum_to_value(&e, &Datum::Uint(3)).is_err());
        assert_eq!(
            value_to_datum(&e, &ColumnValue::parse(&e, "SMALL").unwrap()).unwrap(),
            Datum::Uint(1)
        );
        assert_eq!(
            ColumnValue::parse(&e, "2").unwrap().format_datum(),
            Datum::Uint(2)
        );

        let s = with_elems(ft(tc::SET, 0, -1, -1), &["a", "b", "c"]);
        let v = datum_to_value(&s, &Datum::Uint(0b101)).unwrap();
        assert_eq!(
            v,
            ColumnValue::Set {
                bits: 5,
                names: "a,c".into()
            }
        );
        assert_eq!(ColumnValue::parse(&s, "c,a").unwrap(), v);
        assert_eq!(ColumnValue::parse(&s, "").unwrap().to_text().unwrap(), "");
        assert!(datum_to_value(&s, &Datum::Uint(8)).is_err());

        let b = ft(tc::BIT, flag::UNSIGNED, 10, 0);
        let v = datum_to_value(&b, &Datum::Uint(0x201)).unwrap();
        assert_eq!(v.bit_bytes().unwrap(), [0x02, 0x01]);
        assert_eq!(ColumnValue::parse(&b, "b'1000000001'").unwrap(), v);
        assert_eq!(ColumnValue::parse(&b, "0x201").unwrap(), v);
        assert!(ColumnValue::parse(&b, "0x10000").is_err());
        assert_eq!(v.format_datum(), Datum::Uint(0x201));
    }

    proptest! {
        #[test]
        fn string_columns_hold_text_exactly_when_it_is_utf8(bytes in proptest::collection::vec(any::<u8>(), 0..64), text in "\\PC{0,40}") {
            let column = ft(tc::VARCHAR, 0, 255, 0);
            for raw in [bytes, text.into_bytes()] {
                let expected = match String::from_utf8(raw.clone()) {
                    Ok(text) => ColumnValue::Text(text),
                    Err(_) => ColumnValue::Bytes(raw.clone()),
                };
                prop_assert_eq!(datum_to_value(&column, &Datum::Bytes(raw)).unwrap(), expected);
            }
        }
    }

    #[test]
    fn strings_decimal_json() {
        let text = ft(tc::VARCHAR, 0, 10, 0);
        let bin = FieldType {
            charset: "binary".into(),
            collate: "binary".into(),
            ..ft(tc::VARCHAR, flag::BINARY, 10, 0)
        };
        let d = Datum::Bytes("héllo".as_bytes().to_vec());
        assert_eq!(
            datum_to_value(&text, &d).unwrap(),
            ColumnValue::Text("héllo".into())
        );
        assert_eq!(
            datum_to_value(&bin, &d).unwrap(),
            ColumnValue::Bytes("héllo".as_bytes().to_vec())
        );
        assert_eq!(
            datum_to_value(&text, &Datum::Bytes(vec![0xff])).unwrap(),
            ColumnValue::Bytes(vec![0xff])
        );

        let dec = ft(tc::NEWDECIMAL, 0, 10, 4);
        let v = ColumnValue::parse(&dec, "-1234.567").unwrap();
        let datum = value_to_datum(&dec, &v).unwrap();
        let bytes = crate::datum::encode_value(std::slice::from_ref(&datum)).unwrap();
        assert_eq!(&bytes[..3], [6, 10, 4]);
        let (back, _) = crate::datum::decode_one(&bytes).unwrap();
        assert_eq!(
            datum_to_value(&dec, &back).unwrap().to_text().unwrap(),
            "-1234.5670"
        );
        assert_eq!(v.format_datum(), Datum::Bytes(b"-1234.5670".to_vec()));

        let j = ft(tc::JSON, 0, -1, 0);
        let v = ColumnValue::parse(&j, r#"{"b":[1,2],"a":null}"#).unwrap();
        let datum = value_to_datum(&j, &v).unwrap();
        assert_eq!(
            datum_to_value(&j, &datum).unwrap().to_text().unwrap(),
            r#"{"a": null, "b": [1, 2]}"#
        );
    }

    #[test]
    fn float_text_like_go() {
        let t = |v: f64| ColumnValue::Double(v).to_text().unwrap();
        assert_eq!(t(1.5), "1.5");
        assert_eq!(t(123456.0), "123456");
        assert_eq!(t(1e6), "1e+06");
        assert_eq!(t(1234567.0), "1.234567e+06");
        assert_eq!(t(0.0001), "0.0001");
        assert_eq!(t(0.00001234), "1.234e-05");
        assert_eq!(t(-2.25e-300), "-2.25e-300");
        assert_eq!(t(0.0), "0");
        assert_eq!(ColumnValue::Float(0.1).to_text().unwrap(), "0.1");
        assert_eq!(ColumnValue::Float(3.4e38).to_text().unwrap(), "3.4e+38");
    }

    #[test]
    fn missing_columns() {
        let mut c = ColumnInfo::new(3, "c", 2, ft(tc::LONG, 0, 11, 0));
        assert_eq!(missing_column_value(&c).unwrap(), ColumnValue::Null);
        c.field_type.flag = flag::NOT_NULL;
        assert_eq!(missing_column_value(&c).unwrap(), ColumnValue::Int(0));
        c.origin_default = Some(serde_json::Value::String("42".into()));
        assert_eq!(missing_column_value(&c).unwrap(), ColumnValue::Int(42));
        let e = ColumnInfo::new(
            4,
            "e",
            3,
            with_elems(ft(tc::ENUM, flag::NOT_NULL, -1, -1), &["x", "y"]),
        );
        assert_eq!(
            missing_column_value(&e).unwrap(),
            ColumnValue::Enum {
                index: 1,
                name: "x".into()
            }
        );
        let mut b = ColumnInfo::new(5, "b", 4, ft(tc::BIT, flag::UNSIGNED, 16, 0));
        b.origin_default_bit = Some(serde_json::Value::String("AQI=".into()));
        assert_eq!(
            missing_column_value(&b).unwrap(),
            ColumnValue::Bit {
                value: 0x0102,
                width: 2
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ints_round_trip_through_rows(v in any::<i64>(), u in any::<u64>()) {
            let s = ft(tc::LONGLONG, 0, 20, 0);
            let us = ft(tc::LONGLONG, flag::UNSIGNED, 20, 0);
            let d = value_to_datum(&s, &ColumnValue::Int(v)).unwrap();
            prop_assert_eq!(datum_to_value(&s, &d).unwrap(), ColumnValue::Int(v));
            let d = value_to_datum(&us, &ColumnValue::Uint(u)).unwrap();
            prop_assert_eq!(datum_to_value(&us, &d).unwrap(), ColumnValue::Uint(u));
        }

        #[test]
        fn text_round_trips_through_datums(
            ms in 0i64..253_402_300_799_000, fsp in 0u8..=6, secs in -3_020_399i64..=3_020_399,
            dec_int in "[0-9]{1,8}", dec_frac in "[0-9]{3}", neg in any::<bool>(),
        ) {
            let dt = ft(tc::DATETIME, 0, 26, i64::from(fsp));
            let t = Time::from_unix_micros(ms * 1000, TimeKind::Datetime, fsp).unwrap().round_to_fsp(fsp).unwrap();
            let v = ColumnValue::parse(&dt, &t.to_string()).unwrap();
            prop_assert_eq!(datum_to_value(&dt, &value_to_datum(&dt, &v).unwrap()).unwrap(), v);

            let tm = ft(tc::DURATION, 0, 10, 0);
            let v = ColumnValue::Duration(Duration::new(secs * 1_000_000_000, 0).unwrap());
            let text = v.to_text().unwrap();
            prop_assert_eq!(ColumnValue::parse(&tm, &text).unwrap(), v.clone());
            prop_assert_eq!(datum_to_value(&tm, &value_to_datum(&tm, &v).unwrap()).unwrap(), v);

            let dec = ft(tc::NEWDECIMAL, 0, 11, 3);
            let text = format!("{}{}.{}", if neg { "-" } else { "" }, dec_int, dec_frac);
            let v = ColumnValue::parse(&dec, &text).unwrap();
            let bytes = crate::datum::encode_value(&[value_to_datum(&dec, &v).unwrap()]).unwrap();
            let (back, _) = crate::datum::decode_one(&bytes).unwrap();
            prop_assert_eq!(datum_to_value(&dec, &back).unwrap(), v);
        }
    }
}
