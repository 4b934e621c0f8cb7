//! The column types the simulator creates, and the one place where a type's SQL text and its
//! TiDB `FieldType` are derived, so that the DDL text and the served `TableInfo` always agree.
//!
//! A kind maps to the `FieldType` TiDB stores for the column (reference tidb-schema-api.md §4.5:
//! type code, `Flen`/`Decimal` with TiDB's defaults for unspecified lengths, charset `binary` for
//! non-string types, `utf8mb4`/`utf8mb4_bin` for text, `Elems` for ENUM/SET) and back again, so a
//! catalog rebuilt from the DDL history knows the kinds of its columns. Nullability, defaults and
//! key flags belong to the column, not the kind (see [`crate::tidb::sim::catalog`]).

use tidb_codec::schema::{BINARY_CHARSET, FieldType, flag, type_code as tc};

/// The charset and collation of every text column, table and database the simulator creates
/// (TiDB's defaults).
pub const CHARSET: &str = "utf8mb4";
pub const COLLATION: &str = "utf8mb4_bin";

/// A column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// TINYINT … BIGINT; `bits` is 8, 16, 24, 32 or 64.
    Int {
        bits: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    Char(u16),
    Varchar(u16),
    Text,
    Blob,
    Varbinary(u16),
    Date,
    Datetime(u8),
    Timestamp(u8),
    Time(u8),
    Year,
    Enum(Vec<String>),
    Set(Vec<String>),
    Bit(u8),
    Json,
}

/// Display width TiDB gives a DATETIME/TIMESTAMP/TIME of the given fsp.
fn time_flen(base: i64, fsp: u8) -> i64 {
    if fsp == 0 {
        base
    } else {
        base + 1 + i64::from(fsp)
    }
}

fn int_code(bits: u8) -> u8 {
    match bits {
        8 => tc::TINY,
        16 => tc::SHORT,
        24 => tc::INT24,
        32 => tc::LONG,
        _ => tc::LONGLONG,
    }
}

fn int_name(bits: u8) -> &'static str {
    match bits {
        8 => "tinyint",
        16 => "smallint",
        24 => "mediumint",
        32 => "int",
        _ => "bigint",
    }
}

/// TiDB's default display width of an integer type (one less when unsigned, except BIGINT).
fn int_flen(bits: u8, unsigned: bool) -> i64 {
    let signed = match bits {
        8 => 4,
        16 => 6,
        24 => 9,
        32 => 11,
        _ => 20,
    };
    if unsigned && bits != 64 {
        signed - 1
    } else {
        signed
    }
}

fn quoted_list(elems: &[String]) -> String {
    elems
        .iter()
        .map(|e| format!("'{}'", e.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

impl ColumnKind {
    /// The SQL type as written in CREATE TABLE / ALTER TABLE (MySQL syntax MariaDB accepts).
    pub fn sql(&self) -> String {
        match self {
            ColumnKind::Int { bits, unsigned } => {
                let name = int_name(*bits);
                if *unsigned {
                    format!("{name} unsigned")
                } else {
                    name.to_string()
                }
            }
            ColumnKind::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            ColumnKind::Float => "float".into(),
            ColumnKind::Double => "double".into(),
            ColumnKind::Char(n) => format!("char({n})"),
            ColumnKind::Varchar(n) => format!("varchar({n})"),
            ColumnKind::Text => "text".into(),
            ColumnKind::Blob => "blob".into(),
            ColumnKind::Varbinary(n) => format!("varbinary({n})"),
            ColumnKind::Date => "date".into(),
            ColumnKind::Datetime(0) => "datetime".into(),
            ColumnKind::Datetime(fsp) => format!("datetime({fsp})"),
            ColumnKind::Timestamp(0) => "timestamp".into(),
            ColumnKind::Timestamp(fsp) => format!("timestamp({fsp})"),
            ColumnKind::Time(0) => "time".into(),
            ColumnKind::Time(fsp) => format!("time({fsp})"),
            ColumnKind::Year => "year".into(),
            ColumnKind::Enum(elems) => format!("enum({})", quoted_list(elems)),
            ColumnKind::Set(elems) => format!("set({})", quoted_list(elems)),
            ColumnKind::Bit(n) => format!("bit({n})"),
            ColumnKind::Json => "json".into(),
        }
    }

    /// The `FieldType` TiDB stores for a nullable column of this kind without key flags.
    pub fn field_type(&self) -> FieldType {
        let (tp, flen, decimal) = match self {
            ColumnKind::Int { bits, unsigned } => (int_code(*bits), int_flen(*bits, *unsigned), 0),
            ColumnKind::Decimal { precision, scale } => {
                (tc::NEWDECIMAL, i64::from(*precision), i64::from(*scale))
            }
            ColumnKind::Float => (tc::FLOAT, 12, -1),
            ColumnKind::Double => (tc::DOUBLE, 22, -1),
            ColumnKind::Char(n) => (tc::STRING, i64::from(*n), 0),
            ColumnKind::Varchar(n) | ColumnKind::Varbinary(n) => (tc::VARCHAR, i64::from(*n), 0),
            ColumnKind::Text | ColumnKind::Blob => (tc::BLOB, 65_535, 0),
            ColumnKind::Date => (tc::DATE, 10, 0),
            ColumnKind::Datetime(fsp) => (tc::DATETIME, time_flen(19, *fsp), i64::from(*fsp)),
            ColumnKind::Timestamp(fsp) => (tc::TIMESTAMP, time_flen(19, *fsp), i64::from(*fsp)),
            ColumnKind::Time(fsp) => (tc::DURATION, time_flen(10, *fsp), i64::from(*fsp)),
            ColumnKind::Year => (tc::YEAR, 4, 0),
            ColumnKind::Enum(elems) => {
                let longest = elems.iter().map(String::len).max().unwrap_or(0);
                (tc::ENUM, longest as i64, 0)
            }
            ColumnKind::Set(elems) => {
                let total: usize = elems.iter().map(String::len).sum::<usize>() + elems.len();
                (tc::SET, total.saturating_sub(1) as i64, 0)
            }
            ColumnKind::Bit(n) => (tc::BIT, i64::from(*n), 0),
            ColumnKind::Json => (tc::JSON, 4_294_967_295, 0),
        };
        let mut ft = FieldType::new(tp);
        ft.flen = flen;
        ft.decimal = decimal;
        match self {
            ColumnKind::Int { unsigned: true, .. } => ft.flag |= flag::UNSIGNED,
            ColumnKind::Year => ft.flag |= flag::UNSIGNED | flag::ZEROFILL,
            ColumnKind::Blob | ColumnKind::Varbinary(_) | ColumnKind::Json => {
                ft.flag |= flag::BINARY
            }
            ColumnKind::Char(_)
            | ColumnKind::Varchar(_)
            | ColumnKind::Text
            | ColumnKind::Enum(_)
            | ColumnKind::Set(_) => {
                ft.charset = CHARSET.into();
                ft.collate = COLLATION.into();
            }
            _ => {}
        }
        if let ColumnKind::Enum(elems) | ColumnKind::Set(elems) = self {
            ft.elems = Some(elems.clone());
        }
        ft
    }

    /// The kind of a column the simulator created, read back from its `FieldType`; `None` for
    /// types it never creates.
    pub fn from_field_type(ft: &FieldType) -> Option<ColumnKind> {
        let text = ft.charset != BINARY_CHARSET;
        let fsp = u8::try_from(ft.decimal.clamp(0, 6)).ok()?;
        let len = || u16::try_from(ft.flen).ok();
        Some(match ft.tp {
            tc::TINY | tc::SHORT | tc::INT24 | tc::LONG | tc::LONGLONG => ColumnKind::Int {
                bits: match ft.tp {
                    tc::TINY => 8,
                    tc::SHORT => 16,
                    tc::INT24 => 24,
                    tc::LONG => 32,
                    _ => 64,
                },
                unsigned: ft.is_unsigned(),
            },
            tc::NEWDECIMAL => ColumnKind::Decimal {
                precision: u8::try_from(ft.flen).ok()?,
                scale: u8::try_from(ft.decimal).ok()?,
            },
            tc::FLOAT => ColumnKind::Float,
            tc::DOUBLE => ColumnKind::Double,
            tc::STRING if text => ColumnKind::Char(len()?),
            tc::VARCHAR if text => ColumnKind::Varchar(len()?),
            tc::VARCHAR => ColumnKind::Varbinary(len()?),
            tc::BLOB if text => ColumnKind::Text,
            tc::BLOB => ColumnKind::Blob,
            tc::DATE => ColumnKind::Date,
            tc::DATETIME => ColumnKind::Datetime(fsp),
            tc::TIMESTAMP => ColumnKind::Timestamp(fsp),
            tc::DURATION => ColumnKind::Time(fsp),
            tc::YEAR => ColumnKind::Year,
            tc::ENUM => ColumnKind::Enum(ft.elems().to_vec()),
            tc::SET => ColumnKind::Set(ft.elems().to_vec()),
            tc::BIT => ColumnKind::Bit(u8::try_from(ft.flen).ok()?),
            tc::JSON => ColumnKind::Json,
            _ => return None,
        })
    }

    /// Whether a plain secondary index may cover the column whole: no prefix length needed, and
    /// within the 3072-byte key limit of TiDB and InnoDB even with a second column.
    pub fn is_indexable(&self) -> bool {
        match self {
            ColumnKind::Text | ColumnKind::Blob | ColumnKind::Json | ColumnKind::Float => false,
            ColumnKind::Varchar(n) => *n <= 255,
            _ => true,
        }
    }

    /// Whether MODIFY COLUMN to `to` is one the simulator runs, and whether TiDB then rewrites
    /// the data into a new column (new column id) or changes the type in place.
    pub fn modification(&self, to: &ColumnKind) -> Option<Modification> {
        match (self, to) {
            (
                ColumnKind::Int {
                    bits: a,
                    unsigned: ua,
                },
                ColumnKind::Int {
                    bits: b,
                    unsigned: ub,
                },
            ) if ua == ub && b > a => Some(Modification::InPlace),
            (ColumnKind::Varchar(a), ColumnKind::Varchar(b)) if b > a => {
                Some(Modification::InPlace)
            }
            (ColumnKind::Int { .. }, ColumnKind::Varchar(n)) if *n >= 20 => {
                Some(Modification::Reorganize)
            }
            _ => None,
        }
    }

    /// A kind this one can be modified to (what the workload's MODIFY COLUMN picks), if any.
    pub fn widened(&self, reorganize: bool) -> Option<ColumnKind> {
        match self {
            ColumnKind::Int { .. } if reorganize => Some(ColumnKind::Varchar(40)),
            ColumnKind::Int { bits, unsigned } if *bits < 64 => Some(ColumnKind::Int {
                bits: match bits {
                    8 => 16,
                    16 => 24,
                    24 => 32,
                    _ => 64,
                },
                unsigned: *unsigned,
            }),
            ColumnKind::Varchar(n) if *n < 1000 => Some(ColumnKind::Varchar(n + 16)),
            _ => None,
        }
    }

    /// Every kind, with a few lengths and precisions each: the menu tables are built from.
    pub fn all() -> Vec<ColumnKind> {
        let mut kinds = Vec::new();
        for bits in [8, 16, 24, 32, 64] {
            for unsigned in [false, true] {
                kinds.push(ColumnKind::Int { bits, unsigned });
            }
        }
        kinds.extend([
            ColumnKind::Decimal {
                precision: 20,
                scale: 6,
            },
            ColumnKind::Decimal {
                precision: 65,
                scale: 30,
            },
            ColumnKind::Decimal {
                precision: 10,
                scale: 0,
            },
            ColumnKind::Float,
            ColumnKind::Double,
            ColumnKind::Char(12),
            ColumnKind::Varchar(64),
            ColumnKind::Text,
            ColumnKind::Blob,
            ColumnKind::Varbinary(48),
            ColumnKind::Date,
            ColumnKind::Datetime(0),
            ColumnKind::Datetime(3),
            ColumnKind::Datetime(6),
            ColumnKind::Timestamp(0),
            ColumnKind::Timestamp(6),
            ColumnKind::Time(0),
            ColumnKind::Time(3),
            ColumnKind::Year,
            ColumnKind::Enum(["small", "medium", "large"].map(String::from).to_vec()),
            ColumnKind::Set(["red", "green", "blue", "alpha"].map(String::from).to_vec()),
            ColumnKind::Bit(1),
            ColumnKind::Bit(13),
            ColumnKind::Bit(64),
            ColumnKind::Json,
        ]);
        kinds
    }
}

/// How TiDB carries out a MODIFY COLUMN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modification {
    /// Metadata only: the column keeps its id.
    InPlace,
    /// The data is rewritten into a new column, which gets a new id and takes the old one's
    /// name and offset.
    Reorganize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_field_type() {
        for kind in ColumnKind::all() {
            let ft = kind.field_type();
            assert_eq!(
                ColumnKind::from_field_type(&ft),
                Some(kind.clone()),
                "{kind:?} -> {ft:?}"
            );
            let json = serde_json::to_value(&ft).unwrap();
            assert_eq!(
                json.as_object().unwrap().len(),
                9,
                "9 FieldType keys: {json}"
            );
        }
    }

    #[test]
    fn field_types_are_tidb_shaped() {
        let int = ColumnKind::Int {
            bits: 32,
            unsigned: false,
        }
        .field_type();
        assert_eq!((int.tp, int.flen, int.decimal, int.flag), (3, 11, 0, 0));
        assert_eq!(int.charset, "binary");
        let uint = ColumnKind::Int {
            bits: 32,
            unsigned: true,
        }
        .field_type();
        assert_eq!((uint.flen, uint.flag), (10, flag::UNSIGNED));
        let ubig = ColumnKind::Int {
            bits: 64,
            unsigned: true,
        };
        assert_eq!(ubig.field_type().flen, 20);
        assert_eq!(ubig.sql(), "bigint unsigned");
        let v = ColumnKind::Varchar(64).field_type();
        assert_eq!((v.tp, v.flen, v.charset.as_str()), (15, 64, "utf8mb4"));
        let b = ColumnKind::Varbinary(8).field_type();
        assert_eq!((b.tp, b.charset.as_str()), (15, "binary"));
        assert!(b.has_flag(flag::BINARY));
        let dt = ColumnKind::Datetime(3).field_type();
        assert_eq!((dt.tp, dt.flen, dt.decimal), (12, 23, 3));
        assert_eq!(ColumnKind::Datetime(3).sql(), "datetime(3)");
        let e = ColumnKind::Enum(vec!["a".into(), "bcd".into()]);
        assert_eq!(e.sql(), "enum('a','bcd')");
        assert_eq!(e.field_type().elems(), ["a", "bcd"]);
        assert_eq!(e.field_type().flen, 3);
        assert_eq!(ColumnKind::Text.field_type().type_name(), "text");
        assert_eq!(ColumnKind::Blob.field_type().type_name(), "blob");
    }

    #[test]
    fn modifications() {
        let int = ColumnKind::Int {
            bits: 32,
            unsigned: false,
        };
        let wide = int.widened(false).unwrap();
        assert_eq!(int.modification(&wide), Some(Modification::InPlace));
        let text = int.widened(true).unwrap();
        assert_eq!(int.modification(&text), Some(Modification::Reorganize));
        assert_eq!(text.modification(&int), None);
        let v = ColumnKind::Varchar(10);
        assert_eq!(
            v.modification(&v.widened(false).unwrap()),
            Some(Modification::InPlace)
        );
        assert_eq!(ColumnKind::Json.widened(false), None);
    }
}
