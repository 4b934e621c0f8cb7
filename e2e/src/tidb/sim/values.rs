//! Column values: random ones for the workload, and their passage to and from the truth
//! database (prepared-statement parameters out, binary-protocol values back).
//!
//! Generated values stay within what both MariaDB and TiDB store exactly: integers up to their
//! type's limits, decimals within precision, floats and doubles that are exact binary fractions
//! (plus the extreme finite values; FLOATs of six significant digits), dates in 1000–9999, TIMESTAMPs in 1970–2038 (the truth
//! session's zone is UTC, as TiDB packs them), times within ±838:59:59, text without trailing
//! spaces (CHAR drops them), JSON as canonical text. The workload still encodes what the truth
//! reads back, never what it meant to write, so a value MariaDB adjusts cannot make the binlog
//! and the truth disagree.

use mysql_async::Value;
use tidb_codec::schema::{FieldType, type_code as tc};
use tidb_codec::time::{Duration, Time, TimeKind};
use tidb_codec::{CodecError, ColumnValue, Decimal, Json};

use crate::tidb::sim::column_kind::ColumnKind;
use crate::tidb::sim::rng::SimRng;

const NANOS_PER_MICRO: i64 = 1_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;
/// The last second a TIMESTAMP holds (2038-01-19 03:14:07 UTC).
const MAX_TIMESTAMP_SECS: i64 = 2_147_483_647;

/// Characters text values are made of: quotes and backslashes, multi-byte and 4-byte UTF-8.
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Q', 'Z', '0', '1', '9', ' ', '\'', '"', '\\', '%', '_',
    ',', 'é', 'ß', '中', '文', '😀', '\n', '\t',
];

/// Inclusive bounds of an integer column.
pub fn int_bounds(bits: u8, unsigned: bool) -> (i128, i128) {
    let bits = u32::from(bits.clamp(8, 64));
    if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    }
}

fn text(rng: &mut SimRng, max_chars: usize) -> String {
    let len = rng.index(max_chars + 1);
    let s: String = (0..len)
        .filter_map(|_| rng.pick(ALPHABET).copied())
        .collect();
    s.trim_end_matches(' ').to_string()
}

fn bytes(rng: &mut SimRng, max_len: usize) -> Vec<u8> {
    let len = rng.index(max_len + 1);
    (0..len).map(|_| rng.below(256) as u8).collect()
}

fn decimal(rng: &mut SimRng, precision: u8, scale: u8) -> Decimal {
    let int_digits = usize::from(precision - scale);
    let digits = |rng: &mut SimRng, n: usize, all_nines: bool| -> String {
        (0..n)
            .map(|_| {
                if all_nines {
                    '9'
                } else {
                    char::from(b'0' + rng.below(10) as u8)
                }
            })
            .collect()
    };
    let all_nines = rng.chance(10);
    let n = if all_nines {
        int_digits
    } else {
        rng.index(int_digits + 1)
    };
    let mut s = String::new();
    if rng.chance(40) {
        s.push('-');
    }
    let int_part = digits(rng, n, all_nines);
    s.push_str(if int_part.is_empty() { "0" } else { &int_part });
    if scale > 0 {
        s.push('.');
        s.push_str(&digits(rng, usize::from(scale), all_nines));
    }
    // The text is well formed by construction; fall back to zero rather than fail the workload.
    // A negative zero would come back from the truth as plain zero: normalise it here.
    let d = Decimal::parse(&s).unwrap_or_else(|_| Decimal::zero());
    let d = if d.is_zero() { Decimal::zero() } else { d };
    d.round_to_frac(usize::from(scale))
}

fn binary_fraction(rng: &mut SimRng, mantissa_bits: u32, max_shift: u64) -> f64 {
    let m = rng.range_i64(-(1i64 << mantissa_bits), 1i64 << mantissa_bits);
    m as f64 / (1u64 << rng.below(max_shift + 1)) as f64
}

/// Microseconds with only `fsp` significant digits.
fn micros(rng: &mut SimRng, fsp: u8) -> u32 {
    let unit = 10u32.pow(6 - u32::from(fsp.min(6)));
    (rng.below(1_000_000) as u32 / unit) * unit
}

fn date_time(rng: &mut SimRng, kind: TimeKind, fsp: u8) -> ColumnValue {
    let year = rng.range_i64(1000, 9999) as u16;
    let month = rng.range_i64(1, 12) as u8;
    let day = rng.range_i64(1, 28) as u8;
    let (hour, minute, second, micro) = if kind == TimeKind::Date {
        (0, 0, 0, 0)
    } else {
        (
            rng.below(24) as u8,
            rng.below(60) as u8,
            rng.below(60) as u8,
            micros(rng, fsp),
        )
    };
    let fsp = if kind == TimeKind::Date { 0 } else { fsp };
    Time::new(kind, fsp, year, month, day, hour, minute, second, micro)
        .map(ColumnValue::Time)
        .unwrap_or(ColumnValue::Null)
}

/// A FLOAT: the single-precision value nearest to a decimal of at most six significant digits
/// (FLT_DIG), near the type's limits now and then. MariaDB prints FLOAT with six digits in text
/// (`mariadb-dump`, the text protocol), so such values survive any text round trip; longer ones
/// would not.
fn float(rng: &mut SimRng) -> f32 {
    let text = match rng.below(8) {
        0 => "3.40282e38".to_string(),
        1 => "-3.40282e38".to_string(),
        2 => "1.1755e-38".to_string(),
        _ => format!(
            "{}{}e{}",
            if rng.chance(50) { "-" } else { "" },
            rng.below(1_000_000),
            rng.range_i64(-37, 32)
        ),
    };
    text.parse().unwrap_or(0.0)
}

fn json_scalar(rng: &mut SimRng) -> serde_json::Value {
    match rng.below(7) {
        0 => serde_json::Value::Null,
        1 => serde_json::Value::Bool(rng.chance(50)),
        2 => serde_json::json!(rng.range_i64(i64::MIN, i64::MAX)),
        3 => serde_json::json!(rng.range_i64(-1000, 1000)),
        4 => {
            // An odd numerator over a power of two: exact, and never integral (an integral float
            // would read back as an integer from JSON text).
            let odd = 2 * rng.range_i64(-(1 << 29), 1 << 29) + 1;
            let f = odd as f64 / (1u64 << (1 + rng.below(12))) as f64;
            serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        _ => serde_json::Value::String(text(rng, 12)),
    }
}

fn json_value(rng: &mut SimRng, depth: u32) -> serde_json::Value {
    if depth >= 2 {
        return json_scalar(rng);
    }
    match rng.below(3) {
        0 => {
            let n = rng.index(4);
            let members: serde_json::Map<String, serde_json::Value> = (0..n)
                .map(|i| {
                    (
                        format!("k{}{}", i, text(rng, 3)),
                        json_value(rng, depth + 1),
                    )
                })
                .collect();
            serde_json::Value::Object(members)
        }
        1 => serde_json::Value::Array(
            (0..rng.index(4))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => json_scalar(rng),
    }
}

/// A random value for a column of `kind`; NULL now and then when `nullable`. Limits of the
/// type come up often.
pub fn generate(rng: &mut SimRng, kind: &ColumnKind, nullable: bool) -> ColumnValue {
    if nullable && rng.chance(10) {
        return ColumnValue::Null;
    }
    match kind {
        ColumnKind::Int { bits, unsigned } => {
            let (lo, hi) = int_bounds(*bits, *unsigned);
            let v = match rng.below(6) {
                0 => lo,
                1 => hi,
                2 => 0,
                3 => rng.range_i128(-100, 100).clamp(lo, hi),
                _ => rng.range_i128(lo, hi),
            };
            if *unsigned {
                ColumnValue::Uint(v as u64)
            } else {
                ColumnValue::Int(v as i64)
            }
        }
        ColumnKind::Decimal { precision, scale } => {
            ColumnValue::Decimal(decimal(rng, *precision, *scale))
        }
        ColumnKind::Float => ColumnValue::Float(float(rng)),
        ColumnKind::Double => ColumnValue::Double(match rng.below(8) {
            0 => f64::MAX,
            1 => -f64::MAX,
            2 => f64::MIN_POSITIVE,
            _ => binary_fraction(rng, 52, 30),
        }),
        ColumnKind::Char(n) => ColumnValue::Text(text(rng, usize::from(*n))),
        ColumnKind::Varchar(n) => ColumnValue::Text(text(rng, usize::from(*n).min(40))),
        ColumnKind::Text => ColumnValue::Text(text(rng, 200)),
        ColumnKind::Blob => ColumnValue::Bytes(bytes(rng, 100)),
        ColumnKind::Varbinary(n) => ColumnValue::Bytes(bytes(rng, usize::from(*n).min(32))),
        ColumnKind::Date => date_time(rng, TimeKind::Date, 0),
        ColumnKind::Datetime(fsp) => date_time(rng, TimeKind::Datetime, *fsp),
        ColumnKind::Timestamp(fsp) => {
            let secs = match rng.below(6) {
                0 => 1,
                1 => MAX_TIMESTAMP_SECS,
                _ => rng.range_i64(1, MAX_TIMESTAMP_SECS),
            };
            let micro = if secs == MAX_TIMESTAMP_SECS {
                0
            } else {
                i64::from(micros(rng, *fsp))
            };
            Time::from_unix_micros(secs * 1_000_000 + micro, TimeKind::Timestamp, *fsp)
                .map(ColumnValue::Time)
                .unwrap_or(ColumnValue::Null)
        }
        ColumnKind::Time(fsp) => {
            let max_secs = 838 * 3600 + 59 * 60 + 59;
            let secs = match rng.below(6) {
                0 => -max_secs,
                1 => max_secs,
                _ => rng.range_i64(-max_secs, max_secs),
            };
            let micro = if secs.abs() == max_secs {
                0
            } else {
                i64::from(micros(rng, *fsp))
            };
            let nanos = secs * NANOS_PER_SEC + secs.signum() * micro * NANOS_PER_MICRO;
            Duration::new(nanos, *fsp)
                .map(ColumnValue::Duration)
                .unwrap_or(ColumnValue::Null)
        }
        ColumnKind::Year => ColumnValue::Uint(rng.range_i64(1901, 2155) as u64),
        ColumnKind::Enum(elems) => {
            let i = rng.index(elems.len());
            ColumnValue::Enum {
                index: i as u64 + 1,
                name: elems.get(i).cloned().unwrap_or_default(),
            }
        }
        ColumnKind::Set(elems) => {
            let bits = rng.below(1u64 << elems.len().min(63));
            let names: Vec<&str> = elems
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, e)| e.as_str())
                .collect();
            ColumnValue::Set {
                bits,
                names: names.join(","),
            }
        }
        ColumnKind::Bit(n) => {
            let max = if *n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            let value = match rng.below(4) {
                0 => 0,
                1 => max,
                _ => rng.next_u64() & max,
            };
            ColumnValue::Bit {
                value,
                width: usize::from(*n).div_ceil(8),
            }
        }
        ColumnKind::Json => ColumnValue::Json(Json::from_serde(&json_value(rng, 0))),
    }
}

/// The prepared-statement parameter that stores `value` in its column.
pub fn to_param(value: &ColumnValue) -> Value {
    match value {
        ColumnValue::Null => Value::NULL,
        ColumnValue::Int(i) => Value::Int(*i),
        ColumnValue::Uint(u) => Value::UInt(*u),
        ColumnValue::Float(f) => Value::Float(*f),
        ColumnValue::Double(f) => Value::Double(*f),
        ColumnValue::Decimal(d) => Value::Bytes(d.to_string().into_bytes()),
        ColumnValue::Time(t) => Value::Date(
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.microsecond,
        ),
        ColumnValue::Duration(d) => {
            let abs = d.nanos.unsigned_abs();
            let secs = abs / NANOS_PER_SEC as u64;
            let micros = (abs % NANOS_PER_SEC as u64) / NANOS_PER_MICRO as u64;
            Value::Time(
                d.nanos < 0,
                (secs / 86_400) as u32,
                (secs / 3600 % 24) as u8,
                (secs / 60 % 60) as u8,
                (secs % 60) as u8,
                micros as u32,
            )
        }
        ColumnValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        ColumnValue::Bytes(b) => Value::Bytes(b.clone()),
        ColumnValue::Enum { name, .. } => Value::Bytes(name.as_bytes().to_vec()),
        ColumnValue::Set { names, .. } => Value::Bytes(names.as_bytes().to_vec()),
        ColumnValue::Bit { value, .. } => Value::UInt(*value),
        ColumnValue::Json(j) => Value::Bytes(j.to_text().into_bytes()),
    }
}

fn conversion(ft: &FieldType, value: &Value, reason: &str) -> CodecError {
    CodecError::ValueConversion {
        what: format!("{value:?}"),
        tp: ft.tp,
        type_name: ft.type_name(),
        reason: reason.to_string(),
    }
}

/// The value of a column of type `ft` as the truth returned it (binary protocol, or text).
pub fn from_truth(ft: &FieldType, value: Value) -> Result<ColumnValue, CodecError> {
    Ok(match value {
        Value::NULL => ColumnValue::Null,
        Value::Int(i) if ft.is_unsigned() => ColumnValue::Uint(
            u64::try_from(i).map_err(|_| conversion(ft, &value, "negative unsigned"))?,
        ),
        Value::Int(i) => ColumnValue::Int(i),
        Value::UInt(u) if ft.tp == tc::BIT => ColumnValue::Bit {
            value: u,
            width: usize::try_from(ft.flen.clamp(1, 64))
                .unwrap_or(8)
                .div_ceil(8),
        },
        Value::UInt(u) if ft.is_unsigned() => ColumnValue::Uint(u),
        Value::UInt(u) => ColumnValue::Int(
            i64::try_from(u).map_err(|_| conversion(ft, &value, "out of the signed range"))?,
        ),
        Value::Float(f) if ft.tp == tc::FLOAT => ColumnValue::Float(f),
        Value::Float(f) => ColumnValue::Double(f64::from(f)),
        Value::Double(f) if ft.tp == tc::FLOAT => ColumnValue::Float(f as f32),
        Value::Double(f) => ColumnValue::Double(f),
        Value::Date(year, month, day, hour, minute, second, micro) => {
            let kind = TimeKind::from_type_code(ft.tp)
                .ok_or_else(|| conversion(ft, &value, "a date for a non-time column"))?;
            let fsp = if kind == TimeKind::Date { 0 } else { ft.fsp() };
            ColumnValue::Time(Time::new(
                kind, fsp, year, month, day, hour, minute, second, micro,
            )?)
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let secs = i64::from(days) * 86_400
                + i64::from(hours) * 3600
                + i64::from(minutes) * 60
                + i64::from(seconds);
            let nanos = secs * NANOS_PER_SEC + i64::from(micros) * NANOS_PER_MICRO;
            ColumnValue::Duration(Duration::new(
                if negative { -nanos } else { nanos },
                ft.fsp(),
            )?)
        }
        Value::Bytes(b) => match ft.tp {
            tc::BIT if b.len() <= 8 => ColumnValue::Bit {
                value: b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
                width: usize::try_from(ft.flen.clamp(1, 64))
                    .unwrap_or(8)
                    .div_ceil(8),
            },
            tp if tc::is_string(tp) && ft.is_binary_string() => ColumnValue::Bytes(b),
            tp if tc::is_string(tp) => match String::from_utf8(b) {
                Ok(s) => ColumnValue::Text(s),
                Err(e) => ColumnValue::Bytes(e.into_bytes()),
            },
            _ => ColumnValue::parse(ft, &String::from_utf8_lossy(&b))?,
        },
    })
}

/// Whether two values of one column are the same value: equal, or (after a MODIFY COLUMN that
/// changed the type) equal as TiDB's text.
pub fn same_value(a: &ColumnValue, b: &ColumnValue) -> bool {
    a == b || (a.to_text().is_some() && a.to_text() == b.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidb_codec::value::{datum_to_value, value_to_datum};

    #[test]
    fn generated_values_fit_their_columns_and_round_trip() {
        let mut rng = SimRng::new(3);
        for kind in ColumnKind::all() {
            let ft = kind.field_type();
            for _ in 0..200 {
                let v = generate(&mut rng, &kind, true);
                let datum =
                    value_to_datum(&ft, &v).unwrap_or_else(|e| panic!("{kind:?} {v:?}: {e}"));
                assert_eq!(datum_to_value(&ft, &datum).unwrap(), v, "{kind:?}");
                if let ColumnValue::Text(s) = &v {
                    assert!(!s.ends_with(' '));
                }
                // What the truth hands back for the parameter is the same value.
                let back = match to_param(&v) {
                    Value::Bytes(b) if !tc::is_string(ft.tp) && ft.tp != tc::BIT => {
                        from_truth(&ft, Value::Bytes(b)).unwrap()
                    }
                    Value::UInt(u) if ft.tp == tc::BIT => from_truth(&ft, Value::UInt(u)).unwrap(),
                    other => from_truth(&ft, other).unwrap(),
                };
                assert_eq!(back, v, "{kind:?}");
            }
        }
    }

    #[test]
    fn limits_show_up() {
        let mut rng = SimRng::new(5);
        let kind = ColumnKind::Int {
            bits: 64,
            unsigned: true,
        };
        let values: Vec<ColumnValue> = (0..200).map(|_| generate(&mut rng, &kind, false)).collect();
        assert!(values.contains(&ColumnValue::Uint(u64::MAX)));
        assert!(values.contains(&ColumnValue::Uint(0)));
        assert!(!values.contains(&ColumnValue::Null));
        let ts = ColumnKind::Timestamp(6);
        let ft = ts.field_type();
        for _ in 0..200 {
            if let ColumnValue::Time(t) = generate(&mut rng, &ts, false) {
                let m = t.to_unix_micros().unwrap();
                assert!(
                    (1_000_000..=MAX_TIMESTAMP_SECS * 1_000_000).contains(&m),
                    "{t}"
                );
                assert_eq!(t.fsp, ft.fsp());
            }
        }
    }

    #[test]
    fn truth_values() {
        let bit = ColumnKind::Bit(13).field_type();
        assert_eq!(
            from_truth(&bit, Value::Bytes(vec![0x12, 0x34])).unwrap(),
            ColumnValue::Bit {
                value: 0x1234,
                width: 2
            }
        );
        let time = ColumnKind::Time(3).field_type();
        let v = from_truth(&time, Value::Time(true, 1, 2, 3, 4, 500_000)).unwrap();
        assert_eq!(v.to_text().unwrap(), "-26:03:04.500");
        assert_eq!(to_param(&v), Value::Time(true, 1, 2, 3, 4, 500_000));
        let year = ColumnKind::Year.field_type();
        assert_eq!(
            from_truth(&year, Value::Int(2024)).unwrap(),
            ColumnValue::Uint(2024)
        );
        assert!(same_value(
            &ColumnValue::Int(12),
            &ColumnValue::Text("12".into())
        ));
        assert!(!same_value(
            &ColumnValue::Null,
            &ColumnValue::Text(String::new())
        ));
    }
}
