//! Opening downstream connections and setting up their sessions (reference drainer.md §4.6).
//!
//! Worker sessions write rows: `time_zone = '+00:00'` (TIMESTAMP values are passed in UTC, so
//! they land unchanged whatever the server's zone), the configured `sql_mode`, the TiDB-only
//! variables (tried once, dropped for good when the server does not know them) and the
//! configured parameters. The control session reads table metadata and runs DDL: it keeps the
//! server's time zone, or the configured `time_zone`, so that DDL literals such as TIMESTAMP
//! defaults read as they would on the original.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value};

use crate::config::LoaderConfig;
use crate::error::Failure;

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Worker,
    Control,
}

/// TiDB's variables the original sets where they exist.
const TIDB_VARIABLES: [(&str, &str); 3] = [
    ("allow_auto_random_explicit_insert", "1"),
    ("tidb_txn_mode", "optimistic"),
    ("tidb_placement_mode", "IGNORE"),
];

/// Unknown system variable; incorrect value or type for one.
const UNKNOWN_VARIABLE_CODES: [u16; 3] = [1193, 1231, 1232];

/// Opens connections that share one configuration.
#[derive(Debug)]
pub(crate) struct Sessions {
    opts: Opts,
    sql_mode: Option<String>,
    params: Vec<(String, String)>,
    read_timeout: Duration,
    /// Per entry of [`TIDB_VARIABLES`]: the server rejected it, do not try again.
    tidb_variable_rejected: [AtomicBool; 3],
}

/// A parameter value: integers go as numbers (numeric variables refuse strings), everything else
/// as text.
fn param_value(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => Value::Int(n),
        Err(_) => Value::Bytes(text.as_bytes().to_vec()),
    }
}

impl Sessions {
    pub(crate) fn new(config: &LoaderConfig) -> Sessions {
        Sessions {
            opts: config.connection_opts(),
            sql_mode: config.sql_mode.clone(),
            params: config.params.clone(),
            read_timeout: config.read_timeout,
            tidb_variable_rejected: Default::default(),
        }
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// A new connection with its session set up.
    pub(crate) async fn open(&self, role: Role) -> Result<Conn, Failure> {
        let mut conn = tokio::time::timeout(self.read_timeout, Conn::new(self.opts.clone()))
            .await
            .map_err(|_| Failure::timeout("connecting", self.read_timeout))??;
        match tokio::time::timeout(self.read_timeout, self.set_up(&mut conn, role)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::timeout("session setup", self.read_timeout)),
        }
    }

    async fn set_up(&self, conn: &mut Conn, role: Role) -> Result<(), Failure> {
        if role == Role::Worker {
            conn.query_drop("SET time_zone = '+00:00'").await?;
        }
        if let Some(mode) = &self.sql_mode {
            conn.exec_drop("SET SESSION sql_mode = ?", (mode.as_str(),))
                .await?;
        }
        for (i, (name, value)) in TIDB_VARIABLES.iter().enumerate() {
            if self.tidb_variable_rejected[i].load(Ordering::Relaxed) {
                continue;
            }
            let sql = format!("SET SESSION {name} = ?");
            match conn.exec_drop(sql, (param_value(value),)).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(err))
                    if UNKNOWN_VARIABLE_CODES.contains(&err.code) =>
                {
                    tracing::debug!(variable = name, error = %err, "downstream does not take this TiDB variable; not setting it");
                    self.tidb_variable_rejected[i].store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err.into()),
            }
        }
        for (name, value) in &self.params {
            if role == Role::Worker && name.eq_ignore_ascii_case("time_zone") {
                continue;
            }
            let sql = format!("SET SESSION {name} = ?");
            conn.exec_drop(sql, (param_value(value),)).await.map_err(
                |err| match Failure::from(err) {
                    Failure::Statement { code, message } => Failure::Statement {
                        code,
                        message: format!(
                            "setting [syncer.to.params] {name} = {value:?}: {message}"
                        ),
                    },
                    other => other,
                },
            )?;
        }
        Ok(())
    }
}

/// One long-lived connection of a given role, opened on first use and after a failure.
pub(crate) struct Link {
    sessions: std::sync::Arc<Sessions>,
    role: Role,
    conn: Option<Conn>,
}

impl Link {
    pub(crate) fn new(sessions: std::sync::Arc<Sessions>, role: Role) -> Link {
        Link {
            sessions,
            role,
            conn: None,
        }
    }

    /// The connection, opened (and set up) if there is none.
    pub(crate) async fn conn(&mut self) -> Result<&mut Conn, Failure> {
        match &mut self.conn {
            Some(conn) => Ok(conn),
            slot @ None => Ok(slot.insert(self.sessions.open(self.role).await?)),
        }
    }

    /// Gives the connection up after a failure that left it broken or in an unknown state (the
    /// server rolls back whatever transaction it had open).
    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        self.sessions.read_timeout()
    }
}
