//! The truth: a MariaDB database that every committed transaction and DDL is applied to, so a
//! test can compare a downstream with it row by row. It also keeps the simulator's own state.
//!
//! Layout:
//! - the user databases the workload creates (`sim_a`, `sim_b`, …), with the same tables as the
//!   simulated TiDB; tables whose TiDB handle is the hidden row id carry an INVISIBLE
//!   `_tidb_rowid` column here (TiDB keeps that id in its row keys; the truth needs it to name the
//!   row in later updates and deletes);
//! - `tidb_sim.ddl_history`: every finished DDL job (id, schema version, job JSON exactly as
//!   `/ddl/history` serves it). The catalog, the schema version and the global id counter are all
//!   rebuilt from it, so `serve`, `check` or a later `run` need nothing else.
//!
//! Sessions run at READ COMMITTED with `time_zone = '+00:00'` (TIMESTAMPs are UTC, as TiDB packs
//! them). Values go in as prepared-statement parameters and come back through the binary
//! protocol, so floats, times and decimals pass exactly.

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, TxOpts, Value};
use tidb_codec::schema::{DdlJob, HandleColumns};
use tidb_codec::{CodecError, ColumnValue, TableInfo};

use crate::tidb::sim::catalog::TableShape;
use crate::tidb::sim::ddl::PlannedDdl;
use crate::tidb::sim::mutations::RowValues;
use crate::tidb::sim::sql::{self, ROW_ID_COLUMN};
use crate::tidb::sim::values::{from_truth, to_param};

/// The database holding the simulator's own state. Never part of the replicated data.
pub const STATE_DB: &str = "tidb_sim";

/// MySQL error codes after which a transaction is abandoned rather than the run failed.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;

/// What went wrong talking to the truth database.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("bad truth URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("truth database: {what}: {source}")]
    Query {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("stored DDL job {job_id} is not a valid job: {source}")]
    BadJob {
        job_id: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("column {column} of {table} in the truth: {source}")]
    Value {
        table: String,
        column: String,
        #[source]
        source: CodecError,
    },
    #[error("row of {table} read from the truth has {got} columns, expected {expected}")]
    RowShape {
        table: String,
        got: usize,
        expected: usize,
    },
}

impl TruthError {
    /// A lock-wait timeout or deadlock: the transaction lost a conflict, as it would in TiDB.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            TruthError::Query {
                source: mysql_async::Error::Server(e),
                ..
            } if e.code == ER_LOCK_DEADLOCK || e.code == ER_LOCK_WAIT_TIMEOUT
        )
    }
}

fn query_error(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> TruthError {
    let what = what.into();
    move |source| TruthError::Query { what, source }
}

/// How to name one row of a table in the truth: its key column values, or its hidden row id.
#[derive(Debug, Clone, PartialEq)]
pub enum RowRef {
    Key(Vec<(String, ColumnValue)>),
    RowId(i64),
}

impl RowRef {
    /// The row of `values` in `info` (`row_id` for hidden-row-id tables).
    pub fn of(info: &TableInfo, values: &RowValues, row_id: Option<i64>) -> Option<RowRef> {
        let value = |id: i64| {
            values
                .iter()
                .find(|(c, _)| *c == id)
                .map(|(_, v)| v.clone())
        };
        match info.handle_columns() {
            HandleColumns::IntPk(c) => Some(RowRef::Key(vec![(c.name.o.clone(), value(c.id)?)])),
            HandleColumns::Common(cols) => cols
                .iter()
                .map(|c| Some((c.name.o.clone(), value(c.id)?)))
                .collect::<Option<Vec<_>>>()
                .map(RowRef::Key),
            HandleColumns::RowId => row_id.map(RowRef::RowId),
        }
    }

    fn condition(&self) -> (String, Vec<Value>) {
        match self {
            RowRef::Key(cols) => {
                let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
                (
                    sql::equals_all(&names),
                    cols.iter().map(|(_, v)| to_param(v)).collect(),
                )
            }
            RowRef::RowId(id) => (sql::equals_all(&[ROW_ID_COLUMN]), vec![Value::Int(*id)]),
        }
    }
}

fn column_list(info: &TableInfo) -> String {
    info.cols
        .iter()
        .map(|c| sql::ident(&c.name.o))
        .collect::<Vec<_>>()
        .join(",")
}

/// A row read from the truth as typed values of `info`'s columns.
fn row_values(info: &TableInfo, raw: Vec<Value>) -> Result<RowValues, TruthError> {
    if raw.len() != info.cols.len() {
        return Err(TruthError::RowShape {
            table: info.name.o.clone(),
            got: raw.len(),
            expected: info.cols.len(),
        });
    }
    info.cols
        .iter()
        .zip(raw)
        .map(|(c, v)| {
            from_truth(&c.field_type, v)
                .map(|value| (c.id, value))
                .map_err(|source| TruthError::Value {
                    table: info.name.o.clone(),
                    column: c.name.o.clone(),
                    source,
                })
        })
        .collect()
}

/// The values of a row. (`Row::unwrap` hands the values over; it panics only after `take`,
/// which the simulator never calls.)
pub(crate) fn row_into_values(row: Row) -> Vec<Value> {
    row.unwrap()
}

fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A connection pool to the truth.
#[derive(Clone)]
pub struct Truth {
    pool: Pool,
}

impl std::fmt::Debug for Truth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Truth").finish_non_exhaustive()
    }
}

impl Truth {
    /// Connects to `url` (`mysql://user[:password]@host:port/`) with up to `max_connections`.
    pub fn connect(url: &str, max_connections: usize) -> Result<Truth, TruthError> {
        let opts = Opts::from_url(url).map_err(|e| TruthError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let constraints =
            PoolConstraints::new(0, max_connections.max(1)).ok_or_else(|| TruthError::Url {
                url: url.to_string(),
                reason: "invalid pool size".into(),
            })?;
        let opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .setup(vec![
                "SET time_zone = '+00:00'",
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            ])
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(Truth {
            pool: Pool::new(opts),
        })
    }

    async fn conn(&self) -> Result<mysql_async::Conn, TruthError> {
        self.pool.get_conn().await.map_err(query_error("connect"))
    }

    /// Creates the state database if it is missing.
    pub async fn ensure_state(&self) -> Result<(), TruthError> {
        let mut conn = self.conn().await?;
        for stmt in [
            format!("CREATE DATABASE IF NOT EXISTS {}", sql::ident(STATE_DB)),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (job_id BIGINT NOT NULL PRIMARY KEY, \
                 schema_version BIGINT NOT NULL, job LONGTEXT NOT NULL, \
                 UNIQUE KEY schema_version (schema_version))",
                sql::qualified(STATE_DB, "ddl_history")
            ),
        ] {
            conn.query_drop(&stmt).await.map_err(query_error(stmt))?;
        }
        Ok(())
    }

    /// History jobs with a schema version above `after`, by schema version. An absent state
    /// database reads as an empty history.
    pub async fn load_history(&self, after: i64) -> Result<Vec<DdlJob>, TruthError> {
        let mut conn = self.conn().await?;
        let exists: Option<String> = conn
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'ddl_history'",
                (STATE_DB,),
            )
            .await
            .map_err(query_error("look for the DDL history"))?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String)> = conn
            .exec(
                format!(
                    "SELECT job_id, job FROM {} WHERE schema_version > ? ORDER BY schema_version",
                    sql::qualified(STATE_DB, "ddl_history")
                ),
                (after,),
            )
            .await
            .map_err(query_error("read the DDL history"))?;
        rows.into_iter()
            .map(|(job_id, json)| {
                serde_json::from_str(&json).map_err(|source| TruthError::BadJob { job_id, source })
            })
            .collect()
    }

    /// Stores a finished job.
    pub async fn save_job(&self, job: &DdlJob) -> Result<(), TruthError> {
        let json = serde_json::to_string(job).map_err(|source| TruthError::BadJob {
            job_id: job.id,
            source,
        })?;
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!(
                "INSERT INTO {} (job_id, schema_version, job) VALUES (?, ?, ?)",
                sql::qualified(STATE_DB, "ddl_history")
            ),
            (job.id, job.schema_version(), json),
        )
        .await
        .map_err(query_error(format!("store DDL job {}", job.id)))
    }

    /// Runs a planned DDL's truth statement, in its database as the drainer would.
    pub async fn execute_ddl(&self, planned: &PlannedDdl) -> Result<(), TruthError> {
        let mut conn = self.conn().await?;
        if let Some(db) = &planned.use_db {
            let stmt = format!("USE {}", sql::ident(db));
            conn.query_drop(&stmt).await.map_err(query_error(stmt))?;
        }
        conn.query_drop(&planned.truth_query)
            .await
            .map_err(query_error(planned.truth_query.clone()))
    }

    /// The largest value of an integer column (the hidden row id included), if any row exists.
    pub async fn max_of(
        &self,
        db: &str,
        table: &str,
        column: &str,
    ) -> Result<Option<i128>, TruthError> {
        let stmt = format!(
            "SELECT MAX({}) FROM {}",
            sql::ident(column),
            sql::qualified(db, table)
        );
        let mut conn = self.conn().await?;
        let v: Option<Value> = conn.query_first(&stmt).await.map_err(query_error(stmt))?;
        Ok(v.as_ref().and_then(as_i128))
    }

    /// Every row of a table: how to name it and its values.
    pub async fn read_table(
        &self,
        db: &str,
        info: &TableInfo,
    ) -> Result<Vec<(RowRef, RowValues)>, TruthError> {
        let has_row_id = TableShape::of(info).has_row_id();
        let mut stmt = format!("SELECT {}", column_list(info));
        if has_row_id {
            stmt.push_str(&format!(", {}", sql::ident(ROW_ID_COLUMN)));
        }
        stmt.push_str(&format!(" FROM {}", sql::qualified(db, &info.name.o)));
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = conn.exec(&stmt, ()).await.map_err(query_error(stmt))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut raw = row_into_values(row);
            let row_id = if has_row_id {
                raw.pop().as_ref().and_then(as_i128)
            } else {
                None
            };
            let values = row_values(info, raw)?;
            let row_ref = RowRef::of(info, &values, row_id.map(|i| i as i64)).ok_or_else(|| {
                TruthError::RowShape {
                    table: info.name.o.clone(),
                    got: 0,
                    expected: 1,
                }
            })?;
            out.push((row_ref, values));
        }
        Ok(out)
    }

    /// Starts a transaction; dropping it unfinished rolls it back.
    pub async fn begin(&self) -> Result<TruthTxn, TruthError> {
        let tx = self
            .pool
            .start_transaction(TxOpts::default())
            .await
            .map_err(query_error("begin"))?;
        Ok(TruthTxn { tx })
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        if let Err(err) = self.pool.disconnect().await {
            tracing::debug!(error = %err, "closing the truth connections");
        }
    }
}

/// One truth transaction; its row locks are held until [`TruthTxn::commit`] or
/// [`TruthTxn::rollback`].
pub struct TruthTxn {
    tx: mysql_async::Transaction<'static>,
}

impl TruthTxn {
    /// A random existing row (a plain consistent read: takes no lock), or `None` when the table
    /// is empty.
    pub async fn pick_row(
        &mut self,
        db: &str,
        info: &TableInfo,
        seed: u32,
    ) -> Result<Option<RowRef>, TruthError> {
        let key_cols: Vec<String> = match info.handle_columns() {
            HandleColumns::IntPk(c) => vec![c.name.o.clone()],
            HandleColumns::Common(cols) => cols.iter().map(|c| c.name.o.clone()).collect(),
            HandleColumns::RowId => vec![ROW_ID_COLUMN.to_string()],
        };
        let stmt = format!(
            "SELECT {} FROM {} ORDER BY RAND(?) LIMIT 1",
            key_cols
                .iter()
                .map(|c| sql::ident(c))
                .collect::<Vec<_>>()
                .join(","),
            sql::qualified(db, &info.name.o)
        );
        let row: Option<Row> = self
            .tx
            .exec_first(&stmt, (seed,))
            .await
            .map_err(query_error(stmt))?;
        let Some(row) = row else { return Ok(None) };
        let raw = row_into_values(row);
        Ok(Some(match info.handle_columns() {
            HandleColumns::RowId => RowRef::RowId(
                raw.first()
                    .and_then(as_i128)
                    .and_then(|i| i64::try_from(i).ok())
                    .unwrap_or_default(),
            ),
            _ => {
                let mut key = Vec::with_capacity(raw.len());
                for (name, v) in key_cols.into_iter().zip(raw) {
                    let col = info
                        .column_by_name(&name)
                        .ok_or_else(|| TruthError::RowShape {
                            table: info.name.o.clone(),
                            got: 0,
                            expected: 1,
                        })?;
                    let value =
                        from_truth(&col.field_type, v).map_err(|source| TruthError::Value {
                            table: info.name.o.clone(),
                            column: name.clone(),
                            source,
                        })?;
                    key.push((name, value));
                }
                RowRef::Key(key)
            }
        }))
    }

    async fn select(
        &mut self,
        db: &str,
        info: &TableInfo,
        row: &RowRef,
        lock: bool,
    ) -> Result<Option<RowValues>, TruthError> {
        let (condition, params) = row.condition();
        let stmt = format!(
            "SELECT {} FROM {} WHERE {condition}{}",
            column_list(info),
            sql::qualified(db, &info.name.o),
            if lock { " FOR UPDATE" } else { "" }
        );
        let found: Option<Row> = self
            .tx
            .exec_first(&stmt, params)
            .await
            .map_err(query_error(stmt))?;
        found
            .map(|r| row_values(info, row_into_values(r)))
            .transpose()
    }

    /// Reads a row and locks it until the end of the transaction; `None` if it is gone.
    pub async fn lock_row(
        &mut self,
        db: &str,
        info: &TableInfo,
        row: &RowRef,
    ) -> Result<Option<RowValues>, TruthError> {
        self.select(db, info, row, true).await
    }

    /// Reads a row this transaction wrote (what the truth now holds for it).
    pub async fn read_row(
        &mut self,
        db: &str,
        info: &TableInfo,
        row: &RowRef,
    ) -> Result<Option<RowValues>, TruthError> {
        self.select(db, info, row, false).await
    }

    pub async fn insert(
        &mut self,
        db: &str,
        info: &TableInfo,
        values: &RowValues,
        row_id: Option<i64>,
    ) -> Result<(), TruthError> {
        let mut names: Vec<String> = values
            .iter()
            .filter_map(|(id, _)| info.column_by_id(*id).map(|c| sql::ident(&c.name.o)))
            .collect();
        let mut params: Vec<Value> = values.iter().map(|(_, v)| to_param(v)).collect();
        if let Some(id) = row_id {
            names.push(sql::ident(ROW_ID_COLUMN));
            params.push(Value::Int(id));
        }
        let stmt = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            sql::qualified(db, &info.name.o),
            names.join(","),
            sql::placeholders(params.len())
        );
        self.tx
            .exec_drop(&stmt, params)
            .await
            .map_err(query_error(stmt))
    }

    /// Sets columns (by name) of one row.
    pub async fn update(
        &mut self,
        db: &str,
        info: &TableInfo,
        row: &RowRef,
        changes: &[(String, ColumnValue)],
    ) -> Result<(), TruthError> {
        let (condition, mut params) = row.condition();
        let names: Vec<&str> = changes.iter().map(|(n, _)| n.as_str()).collect();
        let set = sql::equals_all(&names).replace(" AND ", ", ");
        let mut all: Vec<Value> = changes.iter().map(|(_, v)| to_param(v)).collect();
        all.append(&mut params);
        let stmt = format!(
            "UPDATE {} SET {set} WHERE {condition}",
            sql::qualified(db, &info.name.o)
        );
        self.tx
            .exec_drop(&stmt, all)
            .await
            .map_err(query_error(stmt))
    }

    pub async fn delete(
        &mut self,
        db: &str,
        info: &TableInfo,
        row: &RowRef,
    ) -> Result<(), TruthError> {
        let (condition, params) = row.condition();
        let stmt = format!(
            "DELETE FROM {} WHERE {condition}",
            sql::qualified(db, &info.name.o)
        );
        self.tx
            .exec_drop(&stmt, params)
            .await
            .map_err(query_error(stmt))
    }

    pub async fn commit(self) -> Result<(), TruthError> {
        self.tx.commit().await.map_err(query_error("commit"))
    }

    pub async fn rollback(self) -> Result<(), TruthError> {
        self.tx.rollback().await.map_err(query_error("rollback"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidb_codec::schema::{ColumnInfo, FieldType, flag, type_code};

    #[test]
    fn rows_are_named_by_handle() {
        let mut pk = FieldType::new(type_code::LONGLONG);
        pk.flag = flag::PRI_KEY | flag::NOT_NULL;
        let mut t = TableInfo::new(
            1,
            "t",
            vec![
                ColumnInfo::new(1, "id", 0, pk),
                ColumnInfo::new(2, "v", 1, FieldType::new(type_code::LONG)),
            ],
        );
        t.pk_is_handle = true;
        let values = vec![(1, ColumnValue::Int(5)), (2, ColumnValue::Null)];
        let r = RowRef::of(&t, &values, None).unwrap();
        assert_eq!(r, RowRef::Key(vec![("id".into(), ColumnValue::Int(5))]));
        assert_eq!(r.condition().0, "`id` = ?");
        t.pk_is_handle = false;
        assert_eq!(RowRef::of(&t, &values, None), None);
        let r = RowRef::of(&t, &values, Some(9)).unwrap();
        assert_eq!(
            r.condition(),
            ("`_tidb_rowid` = ?".into(), vec![Value::Int(9)])
        );
    }
}
