//! The loader's errors, and how a driver error is judged: lost connection, worth retrying, or
//! final.

/// Why the loader could not start or had to stop. Cloneable so that every caller waiting on a
/// stopped loader gets the same answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoaderError {
    #[error("invalid loader configuration: {0}")]
    Config(String),
    #[error("cannot connect to the downstream {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("cannot read the downstream table {table} (txn commit ts {commit_ts}): {message}")]
    TableInfo {
        commit_ts: i64,
        table: String,
        message: String,
    },
    #[error(
        "row change of txn commit ts {commit_ts} failed {attempts} times, statement `{sql}`: {message}"
    )]
    Dml {
        commit_ts: i64,
        sql: String,
        message: String,
        attempts: u32,
    },
    #[error(
        "DDL of txn commit ts {commit_ts} failed, statement `{sql}`: {message} \
         (to skip it, set ignore-txn-commit-ts = [{commit_ts}])"
    )]
    Ddl {
        commit_ts: i64,
        sql: String,
        message: String,
    },
    #[error(
        "txn commit ts {commit_ts}, applied in parts (too big to hold whole, without dispatch), \
         failed part way, statement `{sql}`: {message}; it was rolled back (or, lost during \
         COMMIT, is replayed in safe mode) and is applied again from the checkpoint on restart"
    )]
    PartialTxn {
        commit_ts: i64,
        sql: String,
        message: String,
    },
    #[error("the loader has stopped")]
    Stopped,
    #[error("the loader task ended abnormally: {0}")]
    Crashed(String),
}

/// How a failed statement should be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection is gone or in an unknown state: drop it, reconnect, retry; a transaction
    /// in progress was rolled back by the server.
    Connection(String),
    /// The server refused for a passing reason (deadlock, lock wait timeout, …): roll back and
    /// retry on the same connection.
    Transient { code: u16, message: String },
    /// The server refused the statement itself; retrying is unlikely to help.
    Statement { code: u16, message: String },
}

impl Failure {
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Connection(message) => message.clone(),
            Failure::Transient { code, message } | Failure::Statement { code, message } => {
                format!("Error {code}: {message}")
            }
        }
    }

    pub(crate) fn timeout(what: &str, after: std::time::Duration) -> Failure {
        Failure::Connection(format!("{what} got no answer within {after:?}"))
    }
}

/// Server error codes worth retrying: the statement may succeed later unchanged.
const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1152, // aborted connection
    1158, 1159, 1160, 1161, // network read/write errors
    1205, // lock wait timeout
    1213, // deadlock
    1317, // query interrupted
    1927, // connection killed (MariaDB)
    8002, 8022, 8027, 8028, // TiDB: write conflict, txn retry, schema changed
    9001, 9002, 9003, 9004, 9005, 9006, 9007, // TiDB: PD/TiKV unavailable or busy, txn lock
];

/// Whether a failed driver call may succeed when tried again unchanged: the server could not be
/// reached, went away or is busy; not when it refused the statement itself.
pub fn is_retryable(err: &mysql_async::Error) -> bool {
    match err {
        mysql_async::Error::Server(server) => TRANSIENT_CODES.contains(&server.code),
        mysql_async::Error::Driver(mysql_async::DriverError::StmtParamsNumberExceedsLimit {
            ..
        }) => false,
        _ => true,
    }
}

impl From<mysql_async::Error> for Failure {
    fn from(err: mysql_async::Error) -> Failure {
        let retryable = is_retryable(&err);
        match err {
            mysql_async::Error::Server(server) if retryable => Failure::Transient {
                code: server.code,
                message: server.message,
            },
            mysql_async::Error::Server(server) => Failure::Statement {
                code: server.code,
                message: server.message,
            },
            mysql_async::Error::Driver(
                mysql_async::DriverError::StmtParamsNumberExceedsLimit { supplied },
            ) => Failure::Statement {
                code: 0,
                message: format!("{supplied} parameters exceed the protocol's limit"),
            },
            other => Failure::Connection(other.to_string()),
        }
    }
}

/// The first `max` characters of a statement, for messages (multi-row statements are long).
pub(crate) fn shorten(sql: &str, max: usize) -> String {
    match sql.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} bytes)", &sql[..cut], sql.len()),
        None => sql.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn classifies_driver_errors() {
        assert!(matches!(
            Failure::from(server(1213)),
            Failure::Transient { code: 1213, .. }
        ));
        assert!(matches!(
            Failure::from(server(1062)),
            Failure::Statement { code: 1062, .. }
        ));
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other("reset")));
        assert!(matches!(Failure::from(io), Failure::Connection(_)));
        assert!(matches!(
            Failure::from(mysql_async::Error::Driver(
                mysql_async::DriverError::ConnectionClosed
            )),
            Failure::Connection(_)
        ));
        assert!(is_retryable(&server(1213)) && !is_retryable(&server(1062)));
    }

    #[test]
    fn errors_name_commit_ts_and_statement() {
        let err = LoaderError::Ddl {
            commit_ts: 42,
            sql: "CREATE TABLE x(".into(),
            message: "Error 1064: syntax".into(),
        };
        let text = err.to_string();
        assert!(text.contains("42") && text.contains("CREATE TABLE x(") && text.contains("1064"));
        assert_eq!(shorten("abcdef", 3), "abc… (6 bytes)");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
