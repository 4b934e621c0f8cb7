//! TiDB's table-schema model as its status API and DDL history serve it (reference
//! tidb-schema-api.md §2, §4): [`TableInfo`], [`ColumnInfo`], [`FieldType`], [`IndexInfo`],
//! [`PartitionInfo`], [`DbInfo`], [`DdlJob`]; the MySQL type codes ([`type_code`]) and flag bits
//! ([`flag`]).
//!
//! Deserialising tolerates unknown keys (TiDB adds some in almost every release) and keeps them in
//! each struct's `extra` map, so serialising gives back the same keys: modelled keys that were
//! absent stay absent (`Option` + skip), keys that were `null` stay `null`. The upstream simulator
//! serves this JSON; the drainer reads it.
//!
//! Only the JSON model lives here; nothing in this module talks HTTP.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// MySQL type codes (`FieldType.Tp`).
pub mod type_code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const DURATION: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIDB_VECTOR_FLOAT32: u8 = 0xe1;
    pub const JSON: u8 = 0xf5;
    pub const NEWDECIMAL: u8 = 0xf6;
    pub const ENUM: u8 = 0xf7;
    pub const SET: u8 = 0xf8;
    pub const TINY_BLOB: u8 = 0xf9;
    pub const MEDIUM_BLOB: u8 = 0xfa;
    pub const LONG_BLOB: u8 = 0xfb;
    pub const BLOB: u8 = 0xfc;
    pub const VAR_STRING: u8 = 0xfd;
    pub const STRING: u8 = 0xfe;
    pub const GEOMETRY: u8 = 0xff;

    /// Lower-case SQL name of a type code (`int`, `varchar`, …; TEXT and BLOB share codes and are
    /// named by their blob name here).
    pub fn name(tp: u8) -> &'static str {
        match tp {
            DECIMAL => "decimal",
            TINY => "tinyint",
            SHORT => "smallint",
            LONG => "int",
            FLOAT => "float",
            DOUBLE => "double",
            NULL => "null",
            TIMESTAMP => "timestamp",
            LONGLONG => "bigint",
            INT24 => "mediumint",
            DATE | NEWDATE => "date",
            DURATION => "time",
            DATETIME => "datetime",
            YEAR => "year",
            VARCHAR => "varchar",
            BIT => "bit",
            TIDB_VECTOR_FLOAT32 => "vector",
            JSON => "json",
            NEWDECIMAL => "decimal",
            ENUM => "enum",
            SET => "set",
            TINY_BLOB => "tinyblob",
            MEDIUM_BLOB => "mediumblob",
            LONG_BLOB => "longblob",
            BLOB => "blob",
            VAR_STRING => "var_string",
            STRING => "char",
            GEOMETRY => "geometry",
            _ => "unknown",
        }
    }

    /// TINYINT … BIGINT (not YEAR, not BIT).
    pub fn is_integer(tp: u8) -> bool {
        matches!(tp, TINY | SHORT | INT24 | LONG | LONGLONG)
    }

    /// CHAR/VARCHAR/TEXT/BLOB family.
    pub fn is_string(tp: u8) -> bool {
        matches!(
            tp,
            VARCHAR | VAR_STRING | STRING | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB
        )
    }
}

/// `FieldType.Flag` bits.
pub mod flag {
    pub const NOT_NULL: u64 = 1;
    pub const PRI_KEY: u64 = 1 << 1;
    pub const UNIQUE_KEY: u64 = 1 << 2;
    pub const MULTIPLE_KEY: u64 = 1 << 3;
    pub const BLOB: u64 = 1 << 4;
    pub const UNSIGNED: u64 = 1 << 5;
    pub const ZEROFILL: u64 = 1 << 6;
    pub const BINARY: u64 = 1 << 7;
    pub const ENUM: u64 = 1 << 8;
    pub const AUTO_INCREMENT: u64 = 1 << 9;
    pub const TIMESTAMP: u64 = 1 << 10;
    pub const SET: u64 = 1 << 11;
    pub const NO_DEFAULT_VALUE: u64 = 1 << 12;
    pub const ON_UPDATE_NOW: u64 = 1 << 13;
    pub const PART_KEY: u64 = 1 << 14;
    pub const NUM: u64 = 1 << 15;
    pub const GROUP: u64 = 1 << 15;
    pub const UNIQUE: u64 = 1 << 16;
    pub const BIN_CMP: u64 = 1 << 17;
    pub const PARSE_TO_JSON: u64 = 1 << 18;
    pub const IS_BOOLEAN: u64 = 1 << 19;
    pub const PREVENT_NULL_INSERT: u64 = 1 << 20;
    pub const ENUM_SET_AS_INT: u64 = 1 << 21;
    pub const DROP_COLUMN_INDEX: u64 = 1 << 22;
    pub const GENERATED_COLUMN: u64 = 1 << 23;
    pub const UNDERSCORE_CHARSET: u64 = 1 << 24;
}

/// `SchemaState` values (`state` of tables, columns, indexes; `schema_state` of jobs).
pub mod schema_state {
    pub const NONE: u8 = 0;
    pub const DELETE_ONLY: u8 = 1;
    pub const WRITE_ONLY: u8 = 2;
    pub const WRITE_REORGANIZATION: u8 = 3;
    pub const DELETE_REORGANIZATION: u8 = 4;
    pub const PUBLIC: u8 = 5;
    pub const REPLICA_ONLY: u8 = 6;
    pub const GLOBAL_TXN_ONLY: u8 = 7;
}

/// Charset (and collation) name TiDB gives non-string and binary-string columns.
pub const BINARY_CHARSET: &str = "binary";

fn state_public() -> u8 {
    schema_state::PUBLIC
}

/// Deserialises a key that is present (even as `null`) into `Some`, so that absent ≠ null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A case-insensitive name: `{"O": original, "L": lower}` (a bare string is accepted too).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CIStr {
    pub o: String,
    pub l: String,
}

impl CIStr {
    pub fn new(name: &str) -> CIStr {
        CIStr {
            o: name.to_string(),
            l: name.to_lowercase(),
        }
    }
}

impl Serialize for CIStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CIStr", 2)?;
        st.serialize_field("O", &self.o)?;
        st.serialize_field("L", &self.l)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for CIStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Plain(String),
            Full {
                #[serde(rename = "O")]
                o: String,
                #[serde(rename = "L", default)]
                l: Option<String>,
            },
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Plain(s) => CIStr::new(&s),
            Repr::Full { o, l } => {
                let l = l.unwrap_or_else(|| o.to_lowercase());
                CIStr { o, l }
            }
        })
    }
}

/// A column's type (`type` of a ColumnInfo); keys are Go field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldType {
    #[serde(rename = "Tp")]
    pub tp: u8,
    #[serde(rename = "Flag", default)]
    pub flag: u64,
    /// Display width / max length; -1 = unspecified.
    #[serde(rename = "Flen", default)]
    pub flen: i64,
    /// Fraction digits (DECIMAL scale, fsp of time types); -1 = unspecified.
    #[serde(rename = "Decimal", default)]
    pub decimal: i64,
    #[serde(rename = "Charset", default)]
    pub charset: String,
    #[serde(rename = "Collate", default)]
    pub collate: String,
    /// ENUM/SET members in order (ENUM ordinal = index + 1, SET bit i = member i).
    #[serde(rename = "Elems", default)]
    pub elems: Option<Vec<String>>,
    /// Newer TiDB only (absent in v4.0–v5.2 JSON; `None` = key absent).
    #[serde(
        rename = "ElemsIsBinaryLit",
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub elems_is_binary_lit: Option<Option<Vec<bool>>>,
    /// Multi-valued-index helper column (newer TiDB only; `None` = key absent).
    #[serde(rename = "Array", default, skip_serializing_if = "Option::is_none")]
    pub array: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for FieldType {
    fn default() -> Self {
        FieldType {
            tp: type_code::NULL,
            flag: 0,
            flen: -1,
            decimal: -1,
            charset: BINARY_CHARSET.to_string(),
            collate: BINARY_CHARSET.to_string(),
            elems: None,
            elems_is_binary_lit: Some(None),
            array: Some(false),
            extra: Map::new(),
        }
    }
}

impl FieldType {
    /// A field type with the given code, charset/collation `binary`, no flags.
    pub fn new(tp: u8) -> FieldType {
        FieldType {
            tp,
            ..FieldType::default()
        }
    }

    /// `Array: true` marks a multi-valued-index helper column (effective type JSON).
    pub fn is_array(&self) -> bool {
        self.array.unwrap_or(false)
    }

    pub fn has_flag(&self, bits: u64) -> bool {
        self.flag & bits == bits
    }

    pub fn is_unsigned(&self) -> bool {
        self.has_flag(flag::UNSIGNED)
    }

    pub fn is_not_null(&self) -> bool {
        self.has_flag(flag::NOT_NULL)
    }

    pub fn is_pk(&self) -> bool {
        self.has_flag(flag::PRI_KEY)
    }

    /// String-family type whose charset is `binary` (BINARY, VARBINARY, BLOB).
    pub fn is_binary_string(&self) -> bool {
        type_code::is_string(self.tp) && self.charset == BINARY_CHARSET
    }

    /// Lower-case SQL type name (TEXT types are told from BLOB ones by charset).
    pub fn type_name(&self) -> &'static str {
        let text = self.charset != BINARY_CHARSET;
        match self.tp {
            type_code::TINY_BLOB if text => "tinytext",
            type_code::MEDIUM_BLOB if text => "mediumtext",
            type_code::LONG_BLOB if text => "longtext",
            type_code::BLOB if text => "text",
            type_code::STRING if !text => "binary",
            type_code::VARCHAR | type_code::VAR_STRING if !text => "varbinary",
            tp => type_code::name(tp),
        }
    }

    /// Fractional-seconds precision of a time type, 0 when unspecified.
    pub fn fsp(&self) -> u8 {
        u8::try_from(self.decimal.clamp(0, 6)).unwrap_or(0)
    }

    /// ENUM/SET members (empty when none).
    pub fn elems(&self) -> &[String] {
        self.elems.as_deref().unwrap_or(&[])
    }
}

/// One column of a table (`cols[*]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub id: i64,
    pub name: CIStr,
    #[serde(default)]
    pub offset: usize,
    /// Default for rows written before the column existed. `None` = key absent.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_default: Option<Value>,
    /// Base64 raw default of BIT columns.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_default_bit: Option<Value>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_bit: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_is_expr: Option<bool>,
    /// Non-empty for generated columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_expr_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_stored: Option<bool>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default = "state_public")]
    pub state: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ColumnInfo {
    /// A public column with the given id, name, offset and type, and TiDB's usual keys
    /// (`origin_default`/`default` null, not generated, not hidden, version 2).
    pub fn new(id: i64, name: &str, offset: usize, field_type: FieldType) -> ColumnInfo {
        ColumnInfo {
            id,
            name: CIStr::new(name),
            offset,
            origin_default: Some(Value::Null),
            origin_default_bit: Some(Value::Null),
            default: Some(Value::Null),
            default_bit: Some(Value::Null),
            default_is_expr: Some(false),
            generated_expr_string: Some(String::new()),
            generated_stored: Some(false),
            field_type,
            state: schema_state::PUBLIC,
            comment: Some(String::new()),
            hidden: Some(false),
            version: Some(2),
            extra: Map::new(),
        }
    }

    pub fn is_unsigned(&self) -> bool {
        self.field_type.is_unsigned()
    }

    pub fn is_pk(&self) -> bool {
        self.field_type.is_pk()
    }

    pub fn is_not_null(&self) -> bool {
        self.field_type.is_not_null()
    }

    pub fn is_public(&self) -> bool {
        self.state == schema_state::PUBLIC
    }

    /// Write-only, write-reorganization or public: the states in which TiDB writes the column.
    pub fn is_writable(&self) -> bool {
        matches!(
            self.state,
            schema_state::WRITE_ONLY | schema_state::WRITE_REORGANIZATION | schema_state::PUBLIC
        )
    }

    pub fn is_generated(&self) -> bool {
        self.generated_expr_string
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    }

    /// Generated and not stored: never present in row data.
    pub fn is_virtual_generated(&self) -> bool {
        self.is_generated() && !self.generated_stored.unwrap_or(false)
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden.unwrap_or(false)
    }

    /// `origin_default` unless absent or null.
    pub fn origin_default_value(&self) -> Option<&Value> {
        self.origin_default.as_ref().filter(|v| !v.is_null())
    }

    /// `default` unless absent or null.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref().filter(|v| !v.is_null())
    }
}

impl Default for ColumnInfo {
    fn default() -> Self {
        ColumnInfo::new(0, "", 0, FieldType::default())
    }
}

/// A column of an index (`idx_cols[*]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexColumn {
    pub name: CIStr,
    /// Offset of the column in the table's `cols`.
    pub offset: usize,
    /// Prefix length; -1 = the whole column.
    #[serde(default = "minus_one")]
    pub length: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn minus_one() -> i64 {
    -1
}

impl IndexColumn {
    pub fn is_prefix(&self) -> bool {
        self.length >= 0
    }
}

/// An index (`index_info[*]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexInfo {
    pub id: i64,
    pub idx_name: CIStr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbl_name: Option<CIStr>,
    #[serde(default)]
    pub idx_cols: Vec<IndexColumn>,
    #[serde(default = "state_public")]
    pub state: u8,
    #[serde(default)]
    pub is_unique: bool,
    #[serde(default)]
    pub is_primary: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One partition (`partition.definitions[*]`); `id` is a physical table id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionDefinition {
    pub id: i64,
    pub name: CIStr,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Partitioning of a table (`partition`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// 1 range, 2 hash, 3 list, 4 key, 5 system time.
    #[serde(rename = "type", default)]
    pub partition_type: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// `false` ⇒ treat the table as not partitioned.
    #[serde(default)]
    pub enable: bool,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub definitions: Option<Option<Vec<PartitionDefinition>>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PartitionInfo {
    pub fn definitions(&self) -> &[PartitionDefinition] {
        self.definitions
            .as_ref()
            .and_then(|d| d.as_deref())
            .unwrap_or(&[])
    }
}

/// How a table's rows are identified, from its schema.
#[derive(Clone, Debug, PartialEq)]
pub enum HandleColumns<'a> {
    /// `pk_is_handle`: the single integer PK column is the handle.
    IntPk(&'a ColumnInfo),
    /// `is_common_handle`: the clustered PK columns (index order) are the handle.
    Common(Vec<&'a ColumnInfo>),
    /// Neither: the hidden `_tidb_rowid` (column id -1) is the handle.
    RowId,
}

impl HandleColumns<'_> {
    /// How many datums prefix an `inserted_rows` element: the PK column count for a clustered
    /// table, otherwise 1.
    pub fn datum_count(&self) -> usize {
        match self {
            HandleColumns::Common(cols) => cols.len().max(1),
            _ => 1,
        }
    }
}

/// A table (`TableInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub id: i64,
    pub name: CIStr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collate: Option<String>,
    /// In offset order; may include non-public and hidden columns.
    #[serde(default)]
    pub cols: Vec<ColumnInfo>,
    /// `null` when the table has no indexes.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub index_info: Option<Option<Vec<IndexInfo>>>,
    #[serde(default = "state_public")]
    pub state: u8,
    #[serde(default)]
    pub pk_is_handle: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_common_handle: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_col_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idx_id: Option<i64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub partition: Option<Option<PartitionInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u16>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TableInfo {
    /// A public, non-partitioned table with TiDB's usual keys (`index_info`/`partition` null).
    pub fn new(id: i64, name: &str, cols: Vec<ColumnInfo>) -> TableInfo {
        let max_col_id = cols.iter().map(|c| c.id).max().unwrap_or(0);
        TableInfo {
            id,
            name: CIStr::new(name),
            charset: Some("utf8mb4".to_string()),
            collate: Some("utf8mb4_bin".to_string()),
            cols,
            index_info: Some(None),
            state: schema_state::PUBLIC,
            pk_is_handle: false,
            is_common_handle: Some(false),
            max_col_id: Some(max_col_id),
            max_idx_id: Some(0),
            partition: Some(None),
            version: Some(5),
            extra: Map::new(),
        }
    }

    pub fn indexes(&self) -> &[IndexInfo] {
        self.index_info
            .as_ref()
            .and_then(|i| i.as_deref())
            .unwrap_or(&[])
    }

    pub fn partition_info(&self) -> Option<&PartitionInfo> {
        self.partition.as_ref().and_then(|p| p.as_ref())
    }

    /// Partitioned and enabled (TiDB ignores a disabled partition info).
    pub fn is_partitioned(&self) -> bool {
        self.partition_info().is_some_and(|p| p.enable)
    }

    /// Ids whose rows belong to this table: the partition ids of a partitioned table plus the
    /// logical id (binlog mutations use the logical id).
    pub fn physical_ids(&self) -> Vec<i64> {
        let mut ids = vec![self.id];
        if let Some(p) = self.partition_info().filter(|p| p.enable) {
            ids.extend(p.definitions().iter().map(|d| d.id));
        }
        ids
    }

    pub fn is_common_handle(&self) -> bool {
        self.is_common_handle.unwrap_or(false)
    }

    pub fn column_by_id(&self, id: i64) -> Option<&ColumnInfo> {
        self.column_position(id).and_then(|i| self.cols.get(i))
    }

    /// Where in `cols` the column with id `id` is. TiDB numbers a table's columns 1, 2, … as
    /// they are added, so that is looked at first: rows name every column by id, and scanning
    /// for each of them made decoding a row quadratic in its width.
    pub fn column_position(&self, id: i64) -> Option<usize> {
        let guess = usize::try_from(id.wrapping_sub(1)).ok();
        match guess.and_then(|i| self.cols.get(i)) {
            Some(col) if col.id == id => guess,
            _ => self.cols.iter().position(|c| c.id == id),
        }
    }

    /// By name, case-insensitively.
    pub fn column_by_name(&self, name: &str) -> Option<&ColumnInfo> {
        let l = name.to_lowercase();
        self.cols.iter().find(|c| c.name.l == l)
    }

    /// Columns in state public.
    pub fn public_columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.cols.iter().filter(|c| c.is_public())
    }

    /// Columns TiDB writes (write-only, write-reorganization, public).
    pub fn writable_columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.cols.iter().filter(|c| c.is_writable())
    }

    /// The public primary-key index, if any (absent for an int handle PK).
    pub fn primary_index(&self) -> Option<&IndexInfo> {
        self.indexes().iter().find(|i| i.is_primary)
    }

    /// The int-PK handle column when `pk_is_handle`.
    pub fn pk_handle_column(&self) -> Option<&ColumnInfo> {
        if !self.pk_is_handle {
            return None;
        }
        self.cols.iter().find(|c| c.is_pk())
    }

    /// Which columns form the row handle.
    pub fn handle_columns(&self) -> HandleColumns<'_> {
        if let Some(c) = self.pk_handle_column() {
            return HandleColumns::IntPk(c);
        }
        if self.is_common_handle()
            && let Some(pk) = self.primary_index()
        {
            let cols: Vec<&ColumnInfo> = pk
                .idx_cols
                .iter()
                .filter_map(|ic| {
                    self.cols
                        .get(ic.offset)
                        .filter(|c| c.name.l == ic.name.l)
                        .or_else(|| self.column_by_name(&ic.name.l))
                })
                .collect();
            return HandleColumns::Common(cols);
        }
        HandleColumns::RowId
    }
}

/// A database (`DBInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbInfo {
    pub id: i64,
    pub db_name: CIStr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collate: Option<String>,
    #[serde(default = "state_public")]
    pub state: u8,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A DDL job's `binlog` member (`HistoryInfo`; capitalised Go keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct HistoryInfo {
    #[serde(rename = "SchemaVersion", default)]
    pub schema_version: i64,
    #[serde(
        rename = "DBInfo",
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub db_info: Option<Option<DbInfo>>,
    #[serde(
        rename = "TableInfo",
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub table_info: Option<Option<TableInfo>>,
    #[serde(
        rename = "FinishedTS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_ts: Option<u64>,
    #[serde(
        rename = "MultipleTableInfos",
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub multiple_table_infos: Option<Option<Vec<TableInfo>>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HistoryInfo {
    pub fn db_info(&self) -> Option<&DbInfo> {
        self.db_info.as_ref().and_then(|d| d.as_ref())
    }
    pub fn table_info(&self) -> Option<&TableInfo> {
        self.table_info.as_ref().and_then(|t| t.as_ref())
    }
    pub fn multiple_table_infos(&self) -> &[TableInfo] {
        self.multiple_table_infos
            .as_ref()
            .and_then(|t| t.as_deref())
            .unwrap_or(&[])
    }
}

/// A DDL job from TiDB's DDL history (`/ddl/history`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DdlJob {
    pub id: i64,
    /// ActionType.
    #[serde(rename = "type")]
    pub job_type: u8,
    #[serde(default)]
    pub schema_id: i64,
    #[serde(default)]
    pub table_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// JobState (6 synced, 4 done, 3 rollback done, 5 cancelled, …).
    #[serde(default)]
    pub state: i64,
    #[serde(default)]
    pub schema_state: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub binlog: Option<Option<HistoryInfo>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DdlJob {
    pub fn history(&self) -> Option<&HistoryInfo> {
        self.binlog.as_ref().and_then(|b| b.as_ref())
    }

    /// `SchemaVersion` of the finished job, 0 if unknown.
    pub fn schema_version(&self) -> i64 {
        self.history().map_or(0, |h| h.schema_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of reference tidb-schema-api.md §4.12 with a few extra and unknown keys.
    const JOB: &str = r#"{"id": 112, "type": 3, "schema_id": 2, "table_id": 111, "schema_name": "test", "table_name": "t",
 "state": 6, "err": null, "err_count": 0, "row_count": 0, "raw_args": null, "schema_state": 5,
 "snapshot_ver": 0, "real_start_ts": 0, "start_ts": 0, "dependency_id": 0,
 "query": "CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR(10))",
 "binlog": {"SchemaVersion": 57, "DBInfo": null, "FinishedTS": 0, "MultipleTableInfos": null,
   "TableInfo": {"id": 111, "name": {"O": "t", "L": "t"}, "charset": "utf8mb4", "collate": "utf8mb4_bin",
     "cols": [
       {"id": 1, "name": {"O": "a", "L": "a"}, "offset": 0, "origin_default": null, "default": null,
        "type": {"Tp": 3, "Flag": 3, "Flen": 11, "Decimal": 0, "Charset": "binary", "Collate": "binary",
                 "Elems": null, "ElemsIsBinaryLit": null, "Array": false},
        "state": 5, "hidden": false, "version": 2, "future_key": {"x": [1]}},
       {"id": 2, "name": {"O": "b", "L": "b"}, "offset": 1, "origin_default": null, "default": "x",
        "type": {"Tp": 15, "Flag": 0, "Flen": 10, "Decimal": 0, "Charset": "utf8mb4",
                 "Collate": "utf8mb4_bin", "Elems": null, "ElemsIsBinaryLit": null, "Array": false},
        "state": 5, "hidden": false, "version": 2}],
     "index_info": null, "state": 5, "pk_is_handle": true, "is_common_handle": false,
     "max_col_id": 2, "max_idx_id": 0, "partition": null, "version": 5, "ShardRowIDBits": 0}},
 "version": 1, "priority": 0}"#;

    #[test]
    fn job_round_trips_exactly() {
        let job: DdlJob = serde_json::from_str(JOB).unwrap();
        assert_eq!(job.schema_version(), 57);
        let t = job.history().unwrap().table_info().unwrap();
        assert_eq!(t.id, 111);
        assert_eq!(t.cols[1].default_value(), Some(&Value::String("x".into())));
        assert_eq!(t.cols[0].extra["future_key"], serde_json::json!({"x": [1]}));
        assert_eq!(t.handle_columns(), HandleColumns::IntPk(&t.cols[0]));
        assert_eq!(t.handle_columns().datum_count(), 1);
        assert_eq!(t.pk_handle_column().map(|c| c.id), Some(1));
        let original: Value = serde_json::from_str(JOB).unwrap();
        assert_eq!(serde_json::to_value(&job).unwrap(), original);
    }

    #[test]
    fn v4_field_type_and_bare_name() {
        let ft: FieldType = serde_json::from_str(
            r#"{"Tp": 247, "Flag": 32, "Flen": 1, "Decimal": 0, "Charset": "utf8", "Collate": "utf8_bin", "Elems": ["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(ft.elems(), ["a", "b"]);
        assert!(ft.is_unsigned());
        assert_eq!(ft.type_name(), "enum");
        let def: PartitionDefinition =
            serde_json::from_str(r#"{"id": 7, "name": "P0", "less_than": ["10"]}"#).unwrap();
        assert_eq!(
            def.name,
            CIStr {
                o: "P0".into(),
                l: "p0".into()
            }
        );
    }

    #[test]
    fn common_handle_and_partitions() {
        let json = r#"{"id": 50, "name": {"O": "T", "L": "t"},
          "cols": [
            {"id": 1, "name": {"O": "a", "L": "a"}, "offset": 0, "type": {"Tp": 15, "Flag": 3, "Flen": 20, "Decimal": 0, "Charset": "utf8mb4", "Collate": "utf8mb4_bin", "Elems": null}, "state": 5},
            {"id": 2, "name": {"O": "b", "L": "b"}, "offset": 1, "type": {"Tp": 8, "Flag": 4099, "Flen": 20, "Decimal": 0, "Charset": "binary", "Collate": "binary", "Elems": null}, "state": 5},
            {"id": 3, "name": {"O": "c", "L": "c"}, "offset": 2, "type": {"Tp": 3, "Flag": 0, "Flen": 11, "Decimal": 0, "Charset": "binary", "Collate": "binary", "Elems": null}, "state": 2, "generated_expr_string": "`b`+1", "generated_stored": false}],
          "index_info": [{"id": 1, "idx_name": {"O": "PRIMARY", "L": "primary"}, "tbl_name": {"O": "", "L": ""},
             "idx_cols": [{"name": {"O": "b", "L": "b"}, "offset": 1, "length": -1}, {"name": {"O": "a", "L": "a"}, "offset": 0, "length": -1}],
             "state": 5, "is_unique": true, "is_primary": true, "index_type": 1}],
          "state": 5, "pk_is_handle": false, "is_common_handle": true,
          "partition": {"type": 2, "expr": "`b`", "columns": null, "enable": true, "num": 2,
             "definitions": [{"id": 51, "name": {"O": "p0", "L": "p0"}, "less_than": null}, {"id": 52, "name": {"O": "p1", "L": "p1"}}]}}"#;
        let t: TableInfo = serde_json::from_str(json).unwrap();
        match t.handle_columns() {
            HandleColumns::Common(cols) => {
                assert_eq!(cols.iter().map(|c| c.id).collect::<Vec<_>>(), [2, 1]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.handle_columns().datum_count(), 2);
        assert_eq!(t.physical_ids(), [50, 51, 52]);
        assert_eq!(t.public_columns().count(), 2);
        assert_eq!(t.writable_columns().count(), 3);
        assert!(t.cols[2].is_virtual_generated());
        assert!(t.cols[1].is_pk() && t.cols[1].is_not_null());
        let back: Value = serde_json::to_value(&t).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(json).unwrap());
    }

    #[test]
    fn columns_are_found_by_id_after_columns_were_dropped_and_moved() {
        let col =
            |id: i64, name: &str| ColumnInfo::new(id, name, 0, FieldType::new(type_code::LONG));
        // Column 3 was dropped, column 6 added, then moved first.
        let t = TableInfo::new(
            7,
            "t",
            vec![
                col(6, "f"),
                col(1, "a"),
                col(2, "b"),
                col(4, "d"),
                col(5, "e"),
            ],
        );
        let found: Vec<Option<usize>> = [6, 1, 2, 4, 5, 3, 0, -1, i64::MIN, i64::MAX]
            .into_iter()
            .map(|id| t.column_position(id))
            .collect();
        assert_eq!(
            found,
            [
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                None,
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(t.column_by_id(4).map(|c| c.name.o.as_str()), Some("d"));
    }

    #[test]
    fn built_tables_serialise_like_tidb() {
        let mut a = FieldType::new(type_code::LONG);
        a.flag = flag::PRI_KEY | flag::NOT_NULL;
        a.flen = 11;
        a.decimal = 0;
        let mut t = TableInfo::new(7, "t1", vec![ColumnInfo::new(1, "a", 0, a)]);
        t.pk_is_handle = true;
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["name"], serde_json::json!({"O": "t1", "L": "t1"}));
        assert_eq!(v["index_info"], Value::Null);
        assert_eq!(v["partition"], Value::Null);
        assert_eq!(v["cols"][0]["type"]["Tp"], 3);
        assert_eq!(v["cols"][0]["origin_default"], Value::Null);
        let back: TableInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.handle_columns(), HandleColumns::IntPk(&back.cols[0]));
        let no_pk = TableInfo::new(8, "t2", vec![]);
        assert_eq!(no_pk.handle_columns(), HandleColumns::RowId);
    }
}
