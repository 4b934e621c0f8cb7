//! TiDB's binary JSON (`types/json_binary.go`), converted to and from a JSON tree ([`Json`]),
//! `serde_json::Value`, and TiDB's JSON text.
//!
//! A binary JSON is a type code byte plus a value body. Bodies (all integers little-endian):
//! * literal `0x04`: one byte, `0x00` null, `0x01` true, `0x02` false;
//! * int64 `0x09` / uint64 `0x0a`: 8 bytes; float64 `0x0b`: the 8-byte IEEE bits;
//! * string `0x0c`: uvarint length + UTF-8 bytes;
//! * object `0x01`: `count u32 | size u32 | count × key entry (offset u32, length u16) |
//!   count × value entry (type u8, offset-or-inline u32) | key bytes | value bodies`; keys are sorted
//!   by their bytes, offsets count from the object's first byte, `size` is the whole object's length;
//! * array `0x03`: `count u32 | size u32 | count × value entry | value bodies`;
//! * value entries of literals hold the literal byte inline (first byte of the 4-byte slot);
//!   every other type stores the offset of its body;
//! * newer TiDB also writes opaque `0x0d` (MySQL type byte + uvarint length + bytes), date `0x0e`,
//!   datetime `0x0f`, timestamp `0x10` (8-byte packed time) and time `0x11` (8-byte nanoseconds +
//!   4-byte fsp). These decode into [`Json::Opaque`], [`Json::Date`] etc.; `serde_json` and text
//!   output show them as strings (opaque as `"base64:type<N>:<base64>"`, as TiDB prints them).
//!
//! Our encoder writes exactly this layout (TiDB's encoder inlines only literals, and so do we), so
//! `decode(encode(x)) == x`. The text form follows TiDB's `BinaryJSON.String`: `", "` between
//! elements and `": "` after keys.

use std::fmt::Write as _;

use crate::datum::{encode_uvarint, read_uvarint};
use crate::error::{CodecError, Result};
use crate::reader::Reader;
use crate::time::{Duration, Time, TimeKind};

/// Binary JSON type codes.
pub mod type_code {
    pub const OBJECT: u8 = 0x01;
    pub const ARRAY: u8 = 0x03;
    pub const LITERAL: u8 = 0x04;
    pub const INT64: u8 = 0x09;
    pub const UINT64: u8 = 0x0a;
    pub const FLOAT64: u8 = 0x0b;
    pub const STRING: u8 = 0x0c;
    pub const OPAQUE: u8 = 0x0d;
    pub const DATE: u8 = 0x0e;
    pub const DATETIME: u8 = 0x0f;
    pub const TIMESTAMP: u8 = 0x10;
    pub const TIME: u8 = 0x11;
}

/// Literal bytes (type code 0x04).
pub mod literal {
    pub const NULL: u8 = 0x00;
    pub const TRUE: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
}

const HEADER_SIZE: usize = 8;
const KEY_ENTRY_SIZE: usize = 6;
const VALUE_ENTRY_SIZE: usize = 5;
/// Deepest nesting accepted when decoding (MySQL and TiDB refuse documents deeper than 100).
const MAX_DEPTH: usize = 512;

/// A binary JSON as stored in a datum: type code and body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinaryJson {
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// A JSON document as TiDB models it.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    /// Members sorted by key bytes, keys unique (use [`Json::object`] to build one).
    Object(Vec<(String, Json)>),
    /// A MySQL value of another type (`mysql_type` is its type code), kept as raw bytes.
    Opaque {
        mysql_type: u8,
        data: Vec<u8>,
    },
    Date(Time),
    Datetime(Time),
    Timestamp(Time),
    Time(Duration),
}

impl Json {
    /// An object from members in any order; keys are sorted by bytes and the last duplicate wins.
    pub fn object(members: impl IntoIterator<Item = (String, Json)>) -> Json {
        let mut v: Vec<(String, Json)> = members.into_iter().collect();
        // Stable sort keeps insertion order among duplicates; keep the last of each run.
        v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut out: Vec<(String, Json)> = Vec::with_capacity(v.len());
        for (k, val) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = val,
                _ => out.push((k, val)),
            }
        }
        Json::Object(out)
    }

    /// Parses JSON text (integers become Int, else Uint if they fit, else Float; as TiDB does).
    pub fn parse_text(text: &str) -> Result<Json> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CodecError::JsonText(e.to_string()))?;
        Ok(Json::from_serde(&v))
    }

    /// From a `serde_json::Value`.
    pub fn from_serde(v: &serde_json::Value) -> Json {
        use serde_json::Value;
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Json::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Json::Uint(u)
                } else {
                    Json::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => Json::String(s.clone()),
            Value::Array(a) => Json::Array(a.iter().map(Json::from_serde).collect()),
            Value::Object(m) => {
                Json::object(m.iter().map(|(k, v)| (k.clone(), Json::from_serde(v))))
            }
        }
    }

    /// To a `serde_json::Value`. Non-finite floats become null; opaque, date and time values
    /// become strings as in [`Json::to_text`].
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Uint(u) => Value::from(*u),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_serde).collect()),
            Json::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_serde())).collect())
            }
            Json::Opaque { .. }
            | Json::Date(_)
            | Json::Datetime(_)
            | Json::Timestamp(_)
            | Json::Time(_) => Value::String(self.scalar_string().unwrap_or_default()),
        }
    }

    /// String form of the string-like scalars (opaque, dates, times).
    fn scalar_string(&self) -> Option<String> {
        match self {
            Json::Opaque { mysql_type, data } => {
                Some(format!("base64:type{mysql_type}:{}", base64(data)))
            }
            Json::Date(t) | Json::Datetime(t) | Json::Timestamp(t) => Some(t.to_string()),
            Json::Time(d) => Some(d.to_string()),
            _ => None,
        }
    }

    /// TiDB's JSON text: `{"a": 1, "b": [true, null]}`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Json::Float(f) => write_float(out, *f),
            Json::String(s) => write_string(out, s),
            Json::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_text(out);
                }
                out.push(']');
            }
            Json::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(out, k);
                    out.push_str(": ");
                    v.write_text(out);
                }
                out.push('}');
            }
            other => write_string(out, &other.scalar_string().unwrap_or_default()),
        }
    }

    /// Encodes to TiDB's binary JSON. Fails only for an object key longer than 65535 bytes or a
    /// document larger than 4 GiB.
    pub fn to_binary(&self) -> Result<BinaryJson> {
        let mut value = Vec::new();
        let type_code = self.append_body(&mut value)?;
        Ok(BinaryJson { type_code, value })
    }

    fn type_code(&self) -> u8 {
        match self {
            Json::Null | Json::Bool(_) => type_code::LITERAL,
            Json::Int(_) => type_code::INT64,
            Json::Uint(_) => type_code::UINT64,
            Json::Float(_) => type_code::FLOAT64,
            Json::String(_) => type_code::STRING,
            Json::Array(_) => type_code::ARRAY,
            Json::Object(_) => type_code::OBJECT,
            Json::Opaque { .. } => type_code::OPAQUE,
            Json::Date(_) => type_code::DATE,
            Json::Datetime(_) => type_code::DATETIME,
            Json::Timestamp(_) => type_code::TIMESTAMP,
            Json::Time(_) => type_code::TIME,
        }
    }

    /// Appends the body and returns its type code.
    fn append_body(&self, buf: &mut Vec<u8>) -> Result<u8> {
        match self {
            Json::Null => buf.push(literal::NULL),
            Json::Bool(true) => buf.push(literal::TRUE),
            Json::Bool(false) => buf.push(literal::FALSE),
            Json::Int(i) => buf.extend_from_slice(&i.to_le_bytes()),
            Json::Uint(u) => buf.extend_from_slice(&u.to_le_bytes()),
            Json::Float(f) => buf.extend_from_slice(&f.to_bits().to_le_bytes()),
            Json::String(s) => {
                encode_uvarint(buf, s.len() as u64);
                buf.extend_from_slice(s.as_bytes());
            }
            Json::Opaque { mysql_type, data } => {
                buf.push(*mysql_type);
                encode_uvarint(buf, data.len() as u64);
                buf.extend_from_slice(data);
            }
            Json::Date(t) | Json::Datetime(t) | Json::Timestamp(t) => {
                buf.extend_from_slice(&t.to_packed()?.to_le_bytes());
            }
            Json::Time(d) => {
                buf.extend_from_slice(&d.nanos.to_le_bytes());
                buf.extend_from_slice(&u32::from(d.fsp).to_le_bytes());
            }
            Json::Array(items) => {
                let start = buf.len();
                put_u32(buf, items.len())?;
                buf.extend_from_slice(&[0; 4]);
                let entries = buf.len();
                buf.resize(entries + items.len() * VALUE_ENTRY_SIZE, 0);
                for (i, item) in items.iter().enumerate() {
                    append_value_entry(buf, start, entries + i * VALUE_ENTRY_SIZE, item)?;
                }
                let size = buf.len() - start;
                set_u32(buf, start + 4, size)?;
            }
            Json::Object(members) => {
                let start = buf.len();
                let n = members.len();
                put_u32(buf, n)?;
                buf.extend_from_slice(&[0; 4]);
                let key_entries = buf.len();
                let value_entries = key_entries + n * KEY_ENTRY_SIZE;
                buf.resize(value_entries + n * VALUE_ENTRY_SIZE, 0);
                for (i, (key, _)) in members.iter().enumerate() {
                    let len = u16::try_from(key.len()).map_err(|_| CodecError::InvalidJson {
                        offset: buf.len() - start,
                        reason: format!("object key of {} bytes exceeds 65535", key.len()),
                    })?;
                    let off = buf.len() - start;
                    set_u32(buf, key_entries + i * KEY_ENTRY_SIZE, off)?;
                    buf[key_entries + i * KEY_ENTRY_SIZE + 4..key_entries + i * KEY_ENTRY_SIZE + 6]
                        .copy_from_slice(&len.to_le_bytes());
                    buf.extend_from_slice(key.as_bytes());
                }
                for (i, (_, value)) in members.iter().enumerate() {
                    append_value_entry(buf, start, value_entries + i * VALUE_ENTRY_SIZE, value)?;
                }
                let size = buf.len() - start;
                set_u32(buf, start + 4, size)?;
            }
        }
        Ok(self.type_code())
    }
}

fn put_u32(buf: &mut Vec<u8>, v: usize) -> Result<()> {
    let v = u32::try_from(v).map_err(|_| too_large(v))?;
    buf.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn set_u32(buf: &mut [u8], at: usize, v: usize) -> Result<()> {
    let v = u32::try_from(v).map_err(|_| too_large(v))?;
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    Ok(())
}

fn too_large(v: usize) -> CodecError {
    CodecError::InvalidJson {
        offset: 0,
        reason: format!("size {v} exceeds the 32-bit binary JSON limit"),
    }
}

fn append_value_entry(buf: &mut Vec<u8>, doc_start: usize, entry: usize, v: &Json) -> Result<()> {
    buf[entry] = v.type_code();
    match v {
        Json::Null => buf[entry + 1] = literal::NULL,
        Json::Bool(true) => buf[entry + 1] = literal::TRUE,
        Json::Bool(false) => buf[entry + 1] = literal::FALSE,
        _ => {
            let off = buf.len() - doc_start;
            set_u32(buf, entry + 1, off)?;
            v.append_body(buf)?;
        }
    }
    Ok(())
}

impl BinaryJson {
    /// Decodes the whole document; fails if the body is malformed or has trailing bytes.
    pub fn to_json(&self) -> Result<Json> {
        let n = binary_len_at(self.type_code, &self.value, 0)?;
        if n != self.value.len() {
            return Err(CodecError::InvalidJson {
                offset: n,
                reason: format!("{} trailing bytes", self.value.len() - n),
            });
        }
        decode_body(self.type_code, &self.value, 0, 0)
    }

    /// TiDB's JSON text of the document.
    pub fn to_text(&self) -> Result<String> {
        Ok(self.to_json()?.to_text())
    }
}

/// Length of the body of type `type_code` at the start of `buf` (TiDB's `PeekBytesAsJSON`).
pub fn binary_len(type_code: u8, buf: &[u8]) -> Result<usize> {
    binary_len_at(type_code, buf, 0)
}

pub(crate) fn binary_len_at(type_code: u8, buf: &[u8], base: usize) -> Result<usize> {
    let mut r = Reader::with_base(buf, base);
    let n = match type_code {
        type_code::LITERAL => 1,
        type_code::INT64
        | type_code::UINT64
        | type_code::FLOAT64
        | type_code::DATE
        | type_code::DATETIME
        | type_code::TIMESTAMP => 8,
        type_code::TIME => 12,
        type_code::STRING => {
            let len = read_uvarint(&mut r, "json string length")?;
            r.consumed()
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        }
        type_code::OPAQUE => {
            r.u8("json opaque type")?;
            let len = read_uvarint(&mut r, "json opaque length")?;
            r.consumed()
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        }
        type_code::OBJECT | type_code::ARRAY => {
            let header = r.take_array::<HEADER_SIZE>("json container header")?;
            let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if size < HEADER_SIZE {
                return Err(CodecError::InvalidJson {
                    offset: base + 4,
                    reason: format!("container size {size} is smaller than its header"),
                });
            }
            size
        }
        other => {
            return Err(CodecError::InvalidJson {
                offset: base.saturating_sub(1),
                reason: format!("unknown type code {other:#04x}"),
            });
        }
    };
    if n > buf.len() {
        return Err(CodecError::UnexpectedEof {
            offset: base,
            what: "json value",
            needed: n,
            available: buf.len(),
        });
    }
    Ok(n)
}

fn le_u32(buf: &[u8], at: usize, base: usize) -> Result<usize> {
    let b = buf
        .get(at..at + 4)
        .ok_or_else(|| CodecError::UnexpectedEof {
            offset: base + at,
            what: "json u32",
            needed: 4,
            available: buf.len().saturating_sub(at),
        })?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn le_u64(buf: &[u8], base: usize) -> Result<u64> {
    let mut r = Reader::with_base(buf, base);
    Ok(u64::from_le_bytes(r.take_array::<8>("json 8-byte scalar")?))
}

/// Decodes a body that starts at `buf[0]` (absolute offset `base`); `buf` may extend past it.
fn decode_body(tc: u8, buf: &[u8], base: usize, depth: usize) -> Result<Json> {
    let bad = |offset: usize, reason: String| CodecError::InvalidJson { offset, reason };
    if depth > MAX_DEPTH {
        return Err(bad(base, "nesting too deep".to_string()));
    }
    Ok(match tc {
        type_code::LITERAL => match buf.first() {
            Some(&literal::NULL) => Json::Null,
            Some(&literal::TRUE) => Json::Bool(true),
            Some(&literal::FALSE) => Json::Bool(false),
            Some(b) => return Err(bad(base, format!("unknown literal {b:#04x}"))),
            None => return Err(bad(base, "missing literal".to_string())),
        },
        type_code::INT64 => Json::Int(le_u64(buf, base)? as i64),
        type_code::UINT64 => Json::Uint(le_u64(buf, base)?),
        type_code::FLOAT64 => Json::Float(f64::from_bits(le_u64(buf, base)?)),
        type_code::STRING => {
            let mut r = Reader::with_base(buf, base);
            let len = read_uvarint(&mut r, "json string length")?;
            let len = usize::try_from(len).map_err(|_| bad(base, "string too long".into()))?;
            let bytes = r.take(len, "json string")?;
            Json::String(
                String::from_utf8(bytes.to_vec())
                    .map_err(|e| bad(base, format!("string is not UTF-8: {e}")))?,
            )
        }
        type_code::OPAQUE => {
            let mut r = Reader::with_base(buf, base);
            let mysql_type = r.u8("json opaque type")?;
            let len = read_uvarint(&mut r, "json opaque length")?;
            let len = usize::try_from(len).map_err(|_| bad(base, "opaque too long".into()))?;
            Json::Opaque {
                mysql_type,
                data: r.take(len, "json opaque")?.to_vec(),
            }
        }
        type_code::DATE | type_code::DATETIME | type_code::TIMESTAMP => {
            let packed = le_u64(buf, base)?;
            let (kind, fsp) = match tc {
                type_code::DATE => (TimeKind::Date, 0),
                type_code::DATETIME => (TimeKind::Datetime, 6),
                _ => (TimeKind::Timestamp, 6),
            };
            let t = Time::from_packed(packed, kind, fsp).map_err(|e| bad(base, e.to_string()))?;
            match kind {
                TimeKind::Date => Json::Date(t),
                TimeKind::Datetime => Json::Datetime(t),
                TimeKind::Timestamp => Json::Timestamp(t),
            }
        }
        type_code::TIME => {
            let nanos = le_u64(buf, base)? as i64;
            let fsp = le_u32(buf, 8, base)?;
            let fsp = u8::try_from(fsp).map_err(|_| bad(base + 8, format!("fsp {fsp}")))?;
            Json::Time(Duration::new(nanos, fsp).map_err(|e| bad(base, e.to_string()))?)
        }
        type_code::ARRAY | type_code::OBJECT => {
            let size = binary_len_at(tc, buf, base)?;
            let doc = &buf[..size];
            let count = le_u32(doc, 0, base)?;
            let is_object = tc == type_code::OBJECT;
            let entry_bytes = if is_object {
                KEY_ENTRY_SIZE + VALUE_ENTRY_SIZE
            } else {
                VALUE_ENTRY_SIZE
            };
            if count.saturating_mul(entry_bytes) > size - HEADER_SIZE {
                return Err(bad(
                    base,
                    format!("{count} entries do not fit in {size} bytes"),
                ));
            }
            let value_entries = HEADER_SIZE + if is_object { count * KEY_ENTRY_SIZE } else { 0 };
            let mut values = Vec::with_capacity(count);
            for i in 0..count {
                let e = value_entries + i * VALUE_ENTRY_SIZE;
                let vtc = doc[e];
                let v = if vtc == type_code::LITERAL {
                    decode_body(vtc, &doc[e + 1..], base + e + 1, depth + 1)?
                } else {
                    let off = le_u32(doc, e + 1, base)?;
                    if off >= size {
                        return Err(bad(
                            base + e + 1,
                            format!("value offset {off} beyond {size}"),
                        ));
                    }
                    let body = &doc[off..];
                    binary_len_at(vtc, body, base + off)?;
                    decode_body(vtc, body, base + off, depth + 1)?
                };
                values.push(v);
            }
            if is_object {
                let mut members = Vec::with_capacity(count);
                for (i, v) in values.into_iter().enumerate() {
                    let e = HEADER_SIZE + i * KEY_ENTRY_SIZE;
                    let off = le_u32(doc, e, base)?;
                    let len = usize::from(u16::from_le_bytes([doc[e + 4], doc[e + 5]]));
                    let key = doc
                        .get(off..off + len)
                        .ok_or_else(|| bad(base + e, format!("key {off}+{len} beyond {size}")))?;
                    let key = String::from_utf8(key.to_vec())
                        .map_err(|err| bad(base + off, format!("key is not UTF-8: {err}")))?;
                    members.push((key, v));
                }
                Json::Object(members)
            } else {
                Json::Array(values)
            }
        }
        other => return Err(bad(base, format!("unknown type code {other:#04x}"))),
    })
}

/// Go-style float text, as TiDB's `marshalFloat64To` (ES6 number-to-string rules): shortest
/// round-trip digits, exponent form below 1e-6 or from 1e21 on; integral values get `.0` so that
/// they re-parse as doubles (MySQL prints them that way).
fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust prints `1e21` / `1.5e-7`; Go prints `1e+21` / `1.5e-07` and TiDB trims the zero.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&s),
        }
        return;
    }
    let s = format!("{f}");
    out.push_str(&s);
    if !s.contains('.') {
        out.push_str(".0");
    }
}

/// JSON string quoting: `"` and `\` escaped, control characters as `\n`, `\t`, … or `\u00XX`.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bin(text: &str) -> BinaryJson {
        Json::parse_text(text).unwrap().to_binary().unwrap()
    }

    #[test]
    fn scalar_vectors() {
        assert_eq!(
            bin("null"),
            BinaryJson {
                type_code: 4,
                value: vec![0]
            }
        );
        assert_eq!(bin("true").value, [1]);
        assert_eq!(bin("false").value, [2]);
        assert_eq!(
            bin("-2"),
            BinaryJson {
                type_code: 9,
                value: (-2i64).to_le_bytes().to_vec()
            }
        );
        assert_eq!(bin("18446744073709551615").type_code, type_code::UINT64);
        assert_eq!(
            bin("1.5"),
            BinaryJson {
                type_code: 0x0b,
                value: 1.5f64.to_bits().to_le_bytes().to_vec()
            }
        );
        assert_eq!(
            bin("\"ab\""),
            BinaryJson {
                type_code: 0x0c,
                value: vec![2, b'a', b'b']
            }
        );
    }

    #[test]
    fn container_vectors() {
        // [1, null]: count=2, size = 8 header + 2*5 entries + 8 (int body) = 26.
        // entry0: type 09, offset 18; entry1: type 04, inline literal 00.
        let mut expected = vec![2, 0, 0, 0, 26, 0, 0, 0];
        expected.extend_from_slice(&[0x09, 18, 0, 0, 0]);
        expected.extend_from_slice(&[0x04, 0, 0, 0, 0]);
        expected.extend_from_slice(&1i64.to_le_bytes());
        assert_eq!(
            bin("[1, null]"),
            BinaryJson {
                type_code: 3,
                value: expected
            }
        );

        // {"b":true,"a":"x"} sorts to a, b. count=2; key entries at 8, value entries at 20,
        // keys at 30 ("a"), 31 ("b"); string body "x" (01 78) at 32; size 34.
        let mut expected = vec![2, 0, 0, 0, 34, 0, 0, 0];
        expected.extend_from_slice(&[30, 0, 0, 0, 1, 0, 31, 0, 0, 0, 1, 0]);
        expected.extend_from_slice(&[0x0c, 32, 0, 0, 0, 0x04, 1, 0, 0, 0]);
        expected.extend_from_slice(b"ab");
        expected.extend_from_slice(&[1, b'x']);
        let got = bin(r#"{"b":true,"a":"x"}"#);
        assert_eq!(
            got,
            BinaryJson {
                type_code: 1,
                value: expected
            }
        );
        assert_eq!(got.to_text().unwrap(), r#"{"a": "x", "b": true}"#);
        assert_eq!(binary_len(1, &got.value).unwrap(), 34);
    }

    #[test]
    fn text_format() {
        let j =
            Json::parse_text(r#"{"k":[1,-2,1.5,2.0,1e300,1e-7,"q\"\n\u0001"],"e":{}}"#).unwrap();
        assert_eq!(
            j.to_text(),
            r#"{"e": {}, "k": [1, -2, 1.5, 2.0, 1e+300, 1e-7, "q\"\n\u0001"]}"#
        );
        let opaque = Json::Opaque {
            mysql_type: 0xfd,
            data: b"hello".to_vec(),
        };
        assert_eq!(opaque.to_text(), r#""base64:type253:aGVsbG8=""#);
    }

    #[test]
    fn newer_scalars_round_trip() {
        let t = Time::parse("2024-02-29 13:45:01.5", TimeKind::Datetime, 6).unwrap();
        let d = Duration::parse("-12:00:01.25", 6).unwrap();
        let doc = Json::Array(vec![
            Json::Datetime(t),
            Json::Time(d),
            Json::Opaque {
                mysql_type: 0xfc,
                data: vec![0, 1, 2],
            },
        ]);
        let b = doc.to_binary().unwrap();
        assert_eq!(b.to_json().unwrap(), doc);
        assert_eq!(
            doc.to_text(),
            r#"["2024-02-29 13:45:01.500000", "-12:00:01.250000", "base64:type252:AAEC"]"#
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(
            BinaryJson {
                type_code: 3,
                value: vec![1, 0, 0, 0, 200, 0, 0, 0]
            }
            .to_json()
            .is_err()
        );
        assert!(
            BinaryJson {
                type_code: 3,
                value: vec![9, 0, 0, 0, 8, 0, 0, 0]
            }
            .to_json()
            .is_err()
        );
        assert!(
            BinaryJson {
                type_code: 0x42,
                value: vec![]
            }
            .to_json()
            .is_err()
        );
        assert!(
            BinaryJson {
                type_code: 4,
                value: vec![7]
            }
            .to_json()
            .is_err()
        );
        assert!(
            BinaryJson {
                type_code: 4,
                value: vec![0, 0]
            }
            .to_json()
            .is_err()
        );
        // Value offset pointing outside the array.
        assert!(
            BinaryJson {
                type_code: 3,
                value: vec![1, 0, 0, 0, 13, 0, 0, 0, 9, 99, 0, 0, 0]
            }
            .to_json()
            .is_err()
        );
    }

    fn any_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::Int),
            any::<u64>().prop_map(Json::Uint),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Json::Float),
            ".{0,12}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::vec((".{0,6}", inner), 0..6).prop_map(Json::object),
            ]
        })
    }

    /// Text/serde round trips cannot tell Int from Uint for small non-negative numbers.
    fn normalise_numbers(j: Json) -> Json {
        match j {
            Json::Uint(u) if i64::try_from(u).is_ok() => Json::Int(u as i64),
            Json::Array(a) => Json::Array(a.into_iter().map(normalise_numbers).collect()),
            Json::Object(m) => Json::Object(
                m.into_iter()
                    .map(|(k, v)| (k, normalise_numbers(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn binary_round_trip(j in any_json()) {
            let b = j.to_binary().unwrap();
            prop_assert_eq!(binary_len(b.type_code, &b.value).unwrap(), b.value.len());
            prop_assert_eq!(b.to_json().unwrap(), j);
        }

        #[test]
        fn serde_round_trip(j in any_json()) {
            let j = normalise_numbers(j);
            prop_assert_eq!(Json::from_serde(&j.to_serde()), j);
        }

        #[test]
        fn text_round_trip(j in any_json()) {
            let j = normalise_numbers(j);
            prop_assert_eq!(Json::parse_text(&j.to_text()).unwrap(), j);
        }

        #[test]
        fn garbage_never_panics(tc in 0u8..0x14, bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BinaryJson { type_code: tc, value: bytes }.to_json();
        }
    }
}
