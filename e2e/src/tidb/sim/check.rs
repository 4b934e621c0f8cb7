//! `tidb-sim check`: compares every user database of the truth with a downstream, table by table
//! and row by row.
//!
//! User databases are all but MariaDB's own (`mysql`, `information_schema`,
//! `performance_schema`, `sys`), the simulator's state (`tidb_sim`) and the drainer's checkpoint
//! database (`tidb_binlog`). Both sides must have the same databases, the same tables and the
//! same visible columns (the truth's INVISIBLE `_tidb_rowid` is not data), and the same rows.
//!
//! Rows are streamed from both sides in the same order — by the first NOT NULL unique key of the
//! truth's table (PRIMARY first), else by every column but JSON ones — and compared in runs of
//! equal order keys as multisets, so tables without a key compare correctly too. Memory holds one
//! run per side, not a table. Values are compared in a canonical form: numbers, times and bytes
//! as the binary protocol returns them, decimals without trailing fractional zeros, JSON as TiDB's
//! canonical text of the parsed document (key order and spacing do not matter).

use std::collections::BTreeSet;
use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::{BinaryProtocol, Conn, Opts, OptsBuilder, QueryResult, Value};
use tidb_codec::Json;

use crate::tidb::sim::sql;
use crate::tidb::sim::sql::ROW_ID_COLUMN;
use crate::tidb::sim::truth::{STATE_DB, row_into_values};

/// Databases that are never compared.
pub const SKIPPED_DATABASES: [&str; 6] = [
    "information_schema",
    "mysql",
    "performance_schema",
    "sys",
    STATE_DB,
    "tidb_binlog",
];

/// Which side a problem is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Truth,
    Downstream,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Truth => "truth",
            Side::Downstream => "downstream",
        })
    }
}

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("bad {side} URL {url}: {reason}")]
    Url {
        side: Side,
        url: String,
        reason: String,
    },
    #[error("{side}: {what}: {source}")]
    Query {
        side: Side,
        what: String,
        #[source]
        source: mysql_async::Error,
    },
}

/// The first difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `db` or `db.table`.
    pub place: String,
    pub what: String,
    /// The truth's row (or list), when the difference is about one.
    pub truth: Option<String>,
    pub downstream: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.place, self.what)?;
        writeln!(
            f,
            "  truth:      {}",
            self.truth.as_deref().unwrap_or("(none)")
        )?;
        write!(
            f,
            "  downstream: {}",
            self.downstream.as_deref().unwrap_or("(none)")
        )
    }
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Equal { tables: usize, rows: u64 },
    Differs(Difference),
}

/// A value in comparable form.
#[derive(Debug, Clone, PartialEq)]
enum Canon {
    Null,
    Int(i128),
    Float(f64),
    Bytes(Vec<u8>),
    Text(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl fmt::Display for Canon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Canon::Null => f.write_str("NULL"),
            Canon::Int(i) => write!(f, "{i}"),
            Canon::Float(x) => write!(f, "{x:?}"),
            Canon::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(
                    f,
                    "0x{}",
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                ),
            },
            Canon::Text(s) => write!(f, "{s:?}"),
            Canon::Date(y, mo, d, h, mi, s, us) => {
                write!(f, "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'")
            }
            Canon::Time(neg, days, h, m, s, us) => {
                let sign = if *neg { "-" } else { "" };
                write!(
                    f,
                    "'{sign}{}:{m:02}:{s:02}.{us:06}'",
                    u32::from(*h) + days * 24
                )
            }
        }
    }
}

/// How a column's values are made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Plain,
    Decimal,
    Json,
    Float,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: ValueKind,
    not_null: bool,
}

fn normalize_decimal(text: &str) -> String {
    let mut s = text.trim().to_string();
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" || s.is_empty() {
        s = "0".into();
    }
    s
}

fn canon(kind: ValueKind, value: Value) -> Canon {
    match (kind, value) {
        (_, Value::NULL) => Canon::Null,
        (_, Value::Int(i)) => Canon::Int(i128::from(i)),
        (_, Value::UInt(u)) => Canon::Int(i128::from(u)),
        (_, Value::Float(x)) => Canon::Float(f64::from(x)),
        (_, Value::Double(x)) => Canon::Float(x),
        (_, Value::Date(y, mo, d, h, mi, s, us)) => Canon::Date(y, mo, d, h, mi, s, us),
        (_, Value::Time(neg, days, h, m, s, us)) => Canon::Time(neg, days, h, m, s, us),
        (ValueKind::Decimal, Value::Bytes(b)) => {
            Canon::Text(normalize_decimal(&String::from_utf8_lossy(&b)))
        }
        (ValueKind::Json, Value::Bytes(b)) => {
            match Json::parse_text(&String::from_utf8_lossy(&b)) {
                Ok(j) => Canon::Text(j.to_text()),
                Err(_) => Canon::Bytes(b),
            }
        }
        (ValueKind::Float, Value::Bytes(b)) => {
            match String::from_utf8_lossy(&b).trim().parse::<f64>() {
                Ok(x) => Canon::Float(x),
                Err(_) => Canon::Bytes(b),
            }
        }
        (_, Value::Bytes(b)) => Canon::Bytes(b),
    }
}

type CanonRow = Vec<Canon>;

fn show_row(columns: &[Column], row: &CanonRow) -> String {
    let cells: Vec<String> = columns
        .iter()
        .zip(row)
        .map(|(c, v)| format!("{}={v}", c.name))
        .collect();
    format!("({})", cells.join(", "))
}

/// A sort key for rows inside a run (multiset comparison).
fn row_key(row: &CanonRow) -> String {
    format!("{row:?}")
}

fn query_error(side: Side, what: String) -> impl FnOnce(mysql_async::Error) -> CheckError {
    move |source| CheckError::Query { side, what, source }
}

struct Db {
    side: Side,
    conn: Conn,
}

impl Db {
    async fn connect(side: Side, url: &str) -> Result<Db, CheckError> {
        let opts = Opts::from_url(url).map_err(|e| CheckError::Url {
            side,
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .setup(vec!["SET time_zone = '+00:00'"]);
        let conn = Conn::new(opts).await.map_err(|source| CheckError::Query {
            side,
            what: "connect".into(),
            source,
        })?;
        Ok(Db { side, conn })
    }

    fn error(&self, what: String) -> impl FnOnce(mysql_async::Error) -> CheckError + use<> {
        query_error(self.side, what)
    }

    async fn databases(&mut self) -> Result<BTreeSet<String>, CheckError> {
        let err = self.error("list databases".into());
        let names: Vec<String> = self
            .conn
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await
            .map_err(err)?;
        Ok(names
            .into_iter()
            .filter(|n| !SKIPPED_DATABASES.contains(&n.to_lowercase().as_str()))
            .collect())
    }

    async fn tables(&mut self, db: &str) -> Result<BTreeSet<String>, CheckError> {
        let err = self.error(format!("list tables of {db}"));
        let names: Vec<String> = self
            .conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                (db,),
            )
            .await
            .map_err(err)?;
        Ok(names.into_iter().collect())
    }

    /// Visible columns in order, with how to compare them.
    async fn columns(&mut self, db: &str, table: &str) -> Result<Vec<Column>, CheckError> {
        let err = self.error(format!("columns of {db}.{table}"));
        let rows: Vec<(String, String, String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await
            .map_err(err)?;
        // MariaDB's JSON is LONGTEXT with a json_valid() check named after the column.
        let err = self.error(format!("check constraints of {db}.{table}"));
        let checks: Vec<String> = self
            .conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (db, table),
            )
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .filter(|(name, _, _, extra)| {
                !extra.to_uppercase().contains("INVISIBLE") && name != ROW_ID_COLUMN
            })
            .map(|(name, data_type, nullable, _)| {
                let json_check = format!("json_valid({})", sql::ident(&name));
                let kind = match data_type.to_lowercase().as_str() {
                    "json" => ValueKind::Json,
                    _ if checks.iter().any(|c| c.contains(&json_check)) => ValueKind::Json,
                    "decimal" => ValueKind::Decimal,
                    "float" | "double" => ValueKind::Float,
                    _ => ValueKind::Plain,
                };
                Column {
                    name,
                    kind,
                    not_null: nullable.eq_ignore_ascii_case("NO"),
                }
            })
            .collect())
    }

    /// The first unique key (PRIMARY first) made only of visible NOT NULL columns.
    async fn unique_key(
        &mut self,
        db: &str,
        table: &str,
        columns: &[Column],
    ) -> Result<Option<Vec<String>>, CheckError> {
        let err = self.error(format!("keys of {db}.{table}"));
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
                (db, table),
            )
            .await
            .map_err(err)?;
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for (index, column) in rows {
            match keys.last_mut() {
                Some((name, cols)) if *name == index => cols.push(column),
                _ => keys.push((index, vec![column])),
            }
        }
        let usable = |c: &String| columns.iter().any(|x| &x.name == c && x.not_null);
        Ok(keys
            .into_iter()
            .map(|(_, cols)| cols)
            .find(|cols| cols.iter().all(usable)))
    }
}

/// Reads ordered rows and hands them out in runs of equal order keys.
struct RowRuns<'a> {
    result: QueryResult<'a, 'static, BinaryProtocol>,
    pending: Option<CanonRow>,
    kinds: Vec<ValueKind>,
    order: Vec<usize>,
    side: Side,
    done: bool,
}

impl RowRuns<'_> {
    async fn read(&mut self) -> Result<Option<CanonRow>, CheckError> {
        if let Some(row) = self.pending.take() {
            return Ok(Some(row));
        }
        if self.done {
            return Ok(None);
        }
        let side = self.side;
        let row = self
            .result
            .next()
            .await
            .map_err(|source| CheckError::Query {
                side,
                what: "read rows".into(),
                source,
            })?;
        match row {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(row) => Ok(Some(
                self.kinds
                    .iter()
                    .zip(row_into_values(row))
                    .map(|(k, v)| canon(*k, v))
                    .collect(),
            )),
        }
    }

    fn key(&self, row: &CanonRow) -> Vec<Canon> {
        self.order
            .iter()
            .filter_map(|i| row.get(*i).cloned())
            .collect()
    }

    async fn next_run(&mut self) -> Result<Vec<CanonRow>, CheckError> {
        let Some(first) = self.read().await? else {
            return Ok(Vec::new());
        };
        let key = self.key(&first);
        let mut run = vec![first];
        while let Some(row) = self.read().await? {
            if self.key(&row) == key {
                run.push(row);
            } else {
                self.pending = Some(row);
                break;
            }
        }
        run.sort_by_key(row_key);
        Ok(run)
    }
}

fn listed(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Compares one table; `Ok(Err(rows))` when equal.
async fn compare_table(
    truth: &mut Db,
    down: &mut Db,
    db: &str,
    table: &str,
) -> Result<Result<u64, Difference>, CheckError> {
    let place = format!("{db}.{table}");
    let columns = truth.columns(db, table).await?;
    let down_columns = down.columns(db, table).await?;
    let names = |cols: &[Column]| cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if names(&columns) != names(&down_columns) {
        return Ok(Err(Difference {
            place,
            what: "the tables have different columns".into(),
            truth: Some(names(&columns).join(", ")),
            downstream: Some(names(&down_columns).join(", ")),
        }));
    }
    let kinds: Vec<ValueKind> = columns
        .iter()
        .zip(&down_columns)
        .map(|(a, b)| {
            if a.kind == ValueKind::Json || b.kind == ValueKind::Json {
                ValueKind::Json
            } else {
                a.kind
            }
        })
        .collect();
    let order_names = match truth.unique_key(db, table, &columns).await? {
        Some(key) => key,
        None => columns
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k != ValueKind::Json)
            .map(|(c, _)| c.name.clone())
            .collect(),
    };
    let order: Vec<usize> = order_names
        .iter()
        .filter_map(|n| columns.iter().position(|c| &c.name == n))
        .collect();
    let select = format!(
        "SELECT {} FROM {}{}",
        columns
            .iter()
            .map(|c| sql::ident(&c.name))
            .collect::<Vec<_>>()
            .join(","),
        sql::qualified(db, table),
        if order_names.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                order_names
                    .iter()
                    .map(|n| sql::ident(n))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    );
    let truth_err = truth.error(format!("read {place}"));
    let down_err = down.error(format!("read {place}"));
    let mut a = RowRuns {
        result: truth
            .conn
            .exec_iter(select.as_str(), ())
            .await
            .map_err(truth_err)?,
        pending: None,
        kinds: kinds.clone(),
        order: order.clone(),
        side: Side::Truth,
        done: false,
    };
    let mut b = RowRuns {
        result: down
            .conn
            .exec_iter(select.as_str(), ())
            .await
            .map_err(down_err)?,
        pending: None,
        kinds,
        order,
        side: Side::Downstream,
        done: false,
    };
    let mut rows = 0u64;
    let difference = loop {
        let (ra, rb) = (a.next_run().await?, b.next_run().await?);
        if ra.is_empty() && rb.is_empty() {
            break None;
        }
        if ra == rb {
            rows += ra.len() as u64;
            continue;
        }
        let first = ra
            .iter()
            .zip(&rb)
            .find(|(x, y)| x != y)
            .map(|(x, y)| (Some(x), Some(y)))
            .unwrap_or((ra.get(rb.len()), rb.get(ra.len())));
        break Some(Difference {
            place: place.clone(),
            what: "rows differ (first differing row on each side, in key order)".into(),
            truth: first.0.map(|r| show_row(&columns, r)),
            downstream: first.1.map(|r| show_row(&columns, r)),
        });
    };
    // Drain what is left so both connections stay usable.
    drop(a.result.drop_result().await);
    drop(b.result.drop_result().await);
    Ok(match difference {
        Some(d) => Err(d),
        None => Ok(rows),
    })
}

/// Compares every user database of the truth with the downstream.
pub async fn compare(truth_url: &str, downstream_url: &str) -> Result<CheckOutcome, CheckError> {
    let mut truth = Db::connect(Side::Truth, truth_url).await?;
    let mut down = Db::connect(Side::Downstream, downstream_url).await?;
    let dbs = truth.databases().await?;
    let down_dbs = down.databases().await?;
    if dbs != down_dbs {
        return Ok(CheckOutcome::Differs(Difference {
            place: "(databases)".into(),
            what: "the servers have different user databases".into(),
            truth: Some(listed(&dbs)),
            downstream: Some(listed(&down_dbs)),
        }));
    }
    let (mut tables, mut rows) = (0usize, 0u64);
    for db in &dbs {
        let names = truth.tables(db).await?;
        let down_names = down.tables(db).await?;
        if names != down_names {
            return Ok(CheckOutcome::Differs(Difference {
                place: db.clone(),
                what: "the databases have different tables".into(),
                truth: Some(listed(&names)),
                downstream: Some(listed(&down_names)),
            }));
        }
        for table in &names {
            match compare_table(&mut truth, &mut down, db, table).await? {
                Ok(n) => {
                    tables += 1;
                    rows += n;
                }
                Err(d) => return Ok(CheckOutcome::Differs(d)),
            }
        }
    }
    for db in [truth, down] {
        let _ = db.conn.disconnect().await;
    }
    Ok(CheckOutcome::Equal { tables, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_values() {
        assert_eq!(normalize_decimal("1.500"), "1.5");
        assert_eq!(normalize_decimal("-0.000"), "0");
        assert_eq!(normalize_decimal("12"), "12");
        assert_eq!(
            canon(
                ValueKind::Json,
                Value::Bytes(br#"{"b":[1,2],"a":null}"#.to_vec())
            ),
            canon(
                ValueKind::Json,
                Value::Bytes(br#"{"a": null, "b": [1, 2]}"#.to_vec())
            )
        );
        assert_ne!(
            canon(ValueKind::Json, Value::Bytes(b"[1]".to_vec())),
            canon(ValueKind::Json, Value::Bytes(b"[2]".to_vec()))
        );
        assert_eq!(
            canon(ValueKind::Float, Value::Float(0.5)),
            Canon::Float(0.5)
        );
        assert_eq!(
            canon(ValueKind::Plain, Value::UInt(7)),
            canon(ValueKind::Plain, Value::Int(7))
        );
        let cols = vec![
            Column {
                name: "a".into(),
                kind: ValueKind::Plain,
                not_null: true,
            },
            Column {
                name: "b".into(),
                kind: ValueKind::Plain,
                not_null: false,
            },
        ];
        assert_eq!(
            show_row(&cols, &vec![Canon::Int(1), Canon::Bytes(b"x".to_vec())]),
            "(a=1, b=\"x\")"
        );
        let d = Difference {
            place: "d.t".into(),
            what: "rows differ".into(),
            truth: Some("(a=1)".into()),
            downstream: None,
        };
        assert_eq!(
            d.to_string(),
            "d.t: rows differ\n  truth:      (a=1)\n  downstream: (none)"
        );
    }
}
