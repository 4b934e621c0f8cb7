//! TiDB's datum and row encoding (as carried inside binlog mutations) and the table-schema model
//! that both the drainer and the upstream simulator need.
//!
//! Pure data transformation: this crate knows nothing of gRPC, etcd, files or SQL connections.
//! Every decoder takes bytes and returns values or a [`CodecError`] that names what was wrong and
//! where (byte offset, flag byte); every encoder is the exact inverse for the values it accepts.
//!
//! Modules, one per concept:
//! * [`datum`] — the datum codec (flag byte + payload), key (memcomparable) and value forms.
//! * [`decimal`] — MySQL/TiDB binary DECIMAL (`MyDecimal.ToBin`/`FromBin`), exact decimal strings.
//! * [`time`] — packed DATE/DATETIME/TIMESTAMP (`ToPackedUint`) and TIME durations, MySQL literals.
//! * [`json`] — TiDB's binary JSON format, to and from `serde_json::Value` and TiDB's JSON text.
//! * [`row`] — the "old" row format of binlog `TableMutation` rows, handles, update-row splitting.
//! * [`schema`] — TiDB's `TableInfo`/`ColumnInfo`/`FieldType`/`IndexInfo` JSON model, type codes, flags.
//! * [`value`] — conversion between row datums and typed SQL column values, both directions.
//! * [`mutation`] — whole-table helpers: encode typed rows TiDB-style, decode them drainer-style.

pub mod datum;
pub mod decimal;
pub mod error;
pub mod json;
pub mod mutation;
pub mod row;
pub mod schema;
pub mod time;
pub mod value;

mod reader;

pub use datum::Datum;
pub use decimal::Decimal;
pub use error::{CodecError, Result};
pub use json::{BinaryJson, Json};
pub use row::Handle;
pub use schema::{ColumnInfo, FieldType, IndexInfo, TableInfo};
pub use time::{Duration, Time, TimeKind};
pub use value::ColumnValue;
