//! Where the drainer writes (`db-type` and `[syncer.to]`) and where its checkpoint lives
//! (`[syncer.to.checkpoint]`), resolved as the original resolves them: `MYSQL_HOST`,
//! `MYSQL_PORT`, `MYSQL_USER`, `MYSQL_PSWD` and `KAFKA_ADDRS` fill unset keys, an
//! `encrypted_password` replaces `password`.
//!
//! One difference, on purpose: the checkpoint's `encrypted_password` is decrypted from the
//! checkpoint's own field (the original decrypts the sink's by mistake).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use binlog_cluster::TlsSettings;
use binlog_cluster::units::parse_go_duration;

use super::file::{CheckpointFile, ToFile};
use super::{ConfigError, tls_settings};

/// A password from the configuration; shown as `***` in logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a plain-text password.
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// The plain text, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// How to reach a MySQL-protocol database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConnection {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (decrypted).
    pub password: Password,
    /// TLS towards the database; on iff `ssl-ca` is set.
    pub tls: TlsSettings,
}

/// Which MySQL-protocol downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFlavor {
    /// `db-type = "mysql"`.
    Mysql,
    /// `db-type = "tidb"`.
    Tidb,
}

/// `sync-mode`: which columns an UPDATE/DELETE carries downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every column (`sync-mode = 1`, or unset).
    Full,
    /// Only the columns needed (`sync-mode = 2`).
    Partial,
}

/// The MySQL/TiDB sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlSink {
    /// MySQL or TiDB.
    pub flavor: DbFlavor,
    /// The downstream.
    pub connection: DbConnection,
    /// Read timeout of downstream connections (`read-timeout`, default 1m).
    pub read_timeout: Duration,
    /// `sync-mode`.
    pub sync_mode: SyncMode,
    /// Merge the rows of a batch into multi-row statements (`merge`).
    pub merge: bool,
    /// Session variables set on every downstream connection (`[syncer.to.params]`).
    pub params: BTreeMap<String, String>,
}

/// The protobuf file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSink {
    /// Where the binlog files go (`dir`, default the data dir).
    pub dir: PathBuf,
    /// Files older than this are removed (`retention-time` days; `None`: kept forever).
    pub retention: Option<Duration>,
}

/// The Kafka sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSink {
    /// Brokers (`kafka-addrs`, else env `KAFKA_ADDRS`, else `127.0.0.1:9092`).
    pub addrs: Vec<String>,
    /// `kafka-version` (default `0.8.2.0`).
    pub version: String,
    /// `kafka-max-messages` (default 1024).
    pub max_messages: usize,
    /// `kafka-max-message-size` (default 1 GiB).
    pub max_message_size: usize,
    /// `kafka-client-id` (default `tidb_binlog`).
    pub client_id: String,
    /// `topic-name`; `None` means `<cluster-id>_obinlog`.
    pub topic_name: Option<String>,
}

/// Where the drainer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// MySQL or TiDB (`db-type = "mysql" | "tidb"`).
    Mysql(MysqlSink),
    /// Protobuf files (`db-type = "file" | "pb"`).
    File(FileSink),
    /// Kafka (`db-type = "kafka"`).
    Kafka(KafkaSink),
}

/// Where the checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointConfig {
    /// `<dir>/savepoint`.
    File {
        /// The data dir.
        dir: PathBuf,
    },
    /// The table `<schema>.<table>` of a MySQL-protocol database, one row per cluster id.
    Mysql {
        /// The database.
        connection: DbConnection,
        /// Schema (default `tidb_binlog`).
        schema: String,
        /// Table (default `checkpoint`).
        table: String,
    },
}

/// Default checkpoint schema.
pub const DEFAULT_CHECKPOINT_SCHEMA: &str = "tidb_binlog";
/// Default checkpoint table.
pub const DEFAULT_CHECKPOINT_TABLE: &str = "checkpoint";
const DEFAULT_KAFKA_ADDRS: &str = "127.0.0.1:9092";
const DEFAULT_KAFKA_VERSION: &str = "0.8.2.0";
const DEFAULT_KAFKA_MAX_MESSAGES: usize = 1024;
const DEFAULT_KAFKA_MAX_MESSAGE_SIZE: usize = 1 << 30;
const DEFAULT_KAFKA_CLIENT_ID: &str = "tidb_binlog";

/// The sink kind named by `db-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SinkKind {
    Mysql(DbFlavor),
    File,
    Kafka,
}

const EXPECTED_DB_TYPES: &str = "expected mysql, tidb, file (or its alias pb) or kafka";

pub(super) fn sink_kind(db_type: &str) -> Result<SinkKind, ConfigError> {
    match db_type {
        "mysql" => Ok(SinkKind::Mysql(DbFlavor::Mysql)),
        "tidb" => Ok(SinkKind::Mysql(DbFlavor::Tidb)),
        "file" | "pb" => Ok(SinkKind::File),
        "kafka" => Ok(SinkKind::Kafka),
        "flash" => Err(ConfigError::invalid(
            "db-type",
            db_type,
            format!("the flash sink is no longer supported; {EXPECTED_DB_TYPES}"),
        )),
        "oracle" => Err(ConfigError::invalid(
            "db-type",
            db_type,
            format!("the oracle sink is not supported; {EXPECTED_DB_TYPES}"),
        )),
        _ => Err(ConfigError::invalid("db-type", db_type, EXPECTED_DB_TYPES)),
    }
}

fn port(key: &'static str, value: i64) -> Result<u16, ConfigError> {
    u16::try_from(value)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| ConfigError::invalid(key, value, "expected a port number 1-65535"))
}

fn decrypt(key: &'static str, sealed: &str) -> Result<Password, ConfigError> {
    let plain = binlog_cluster::secret::open(sealed)
        .map_err(|source| ConfigError::Secret { key, source })?;
    String::from_utf8(plain).map(Password).map_err(|_| {
        ConfigError::invalid(key, "<encrypted>", "decrypts to bytes that are not UTF-8")
    })
}

/// A non-empty string value.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// The MySQL/TiDB sink's connection: keys, else `MYSQL_*` variables, else defaults.
fn sink_connection(
    to: &ToFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DbConnection, ConfigError> {
    let env_value = |name: &str| env(name).filter(|v| !v.is_empty());
    let host = given(&to.host)
        .map(str::to_string)
        .or_else(|| env_value("MYSQL_HOST"))
        .unwrap_or_else(|| "localhost".to_string());
    let port = match to.port.filter(|p| *p != 0) {
        Some(value) => port("syncer.to.port", value)?,
        None => match env_value("MYSQL_PORT") {
            Some(text) => text
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    ConfigError::invalid("MYSQL_PORT", &text, "expected a port number 1-65535")
                })?,
            None => 3306,
        },
    };
    let user = given(&to.user)
        .map(str::to_string)
        .or_else(|| env_value("MYSQL_USER"))
        .unwrap_or_else(|| "root".to_string());
    let password = match given(&to.encrypted_password) {
        Some(sealed) => decrypt("syncer.to.encrypted_password", sealed)?,
        None => Password(
            given(&to.password)
                .map(str::to_string)
                .or_else(|| env_value("MYSQL_PSWD"))
                .unwrap_or_default(),
        ),
    };
    Ok(DbConnection {
        host,
        port,
        user,
        password,
        tls: tls_settings(to.security.clone().unwrap_or_default()),
    })
}

/// Resolves `[syncer.to]` for the sink `kind`.
pub(super) fn resolve_sink(
    kind: SinkKind,
    to: &ToFile,
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SinkConfig, ConfigError> {
    match kind {
        SinkKind::Mysql(flavor) => {
            let read_timeout = match given(&to.read_timeout) {
                Some(text) => parse_go_duration(text).map_err(|err| {
                    ConfigError::invalid("syncer.to.read-timeout", text, err.reason)
                })?,
                None => Duration::from_secs(60),
            };
            let sync_mode = match to.sync_mode.unwrap_or(0) {
                0 | 1 => SyncMode::Full,
                2 => SyncMode::Partial,
                other => {
                    return Err(ConfigError::invalid(
                        "syncer.to.sync-mode",
                        other,
                        "expected 1 (full columns) or 2 (partial columns)",
                    ));
                }
            };
            Ok(SinkConfig::Mysql(MysqlSink {
                flavor,
                connection: sink_connection(to, env)?,
                read_timeout,
                sync_mode,
                merge: to.merge.unwrap_or(false),
                params: to.params.clone().unwrap_or_default(),
            }))
        }
        SinkKind::File => {
            let retention = match to.retention_time.unwrap_or(0) {
                0 => None,
                days if days > 0 => Some(Duration::from_secs(days as u64 * 86_400)),
                days => {
                    return Err(ConfigError::invalid(
                        "syncer.to.retention-time",
                        days,
                        "expected whole days >= 0 (0 keeps files forever)",
                    ));
                }
            };
            Ok(SinkConfig::File(FileSink {
                dir: to
                    .dir
                    .clone()
                    .filter(|dir| !dir.as_os_str().is_empty())
                    .unwrap_or_else(|| data_dir.to_owned()),
                retention,
            }))
        }
        SinkKind::Kafka => resolve_kafka(to, env).map(SinkConfig::Kafka),
    }
}

fn resolve_kafka(
    to: &ToFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<KafkaSink, ConfigError> {
    let addrs_text = match given(&to.kafka_addrs) {
        Some(addrs) => addrs.to_string(),
        None if given(&to.zookeeper_addrs).is_some() => {
            return Err(ConfigError::invalid(
                "syncer.to.zookeeper-addrs",
                to.zookeeper_addrs.as_deref().unwrap_or_default(),
                "finding Kafka brokers through ZooKeeper is not supported; set syncer.to.kafka-addrs",
            ));
        }
        None => env("KAFKA_ADDRS")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_KAFKA_ADDRS.to_string()),
    };
    let addrs: Vec<String> = addrs_text
        .split(',')
        .map(str::trim)
        .filter(|addr| !addr.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(ConfigError::invalid(
            "syncer.to.kafka-addrs",
            &addrs_text,
            "expected host:port[,host:port...]",
        ));
    }
    let max_messages = match to.kafka_max_messages {
        Some(n) if n > 0 => n as usize,
        _ => DEFAULT_KAFKA_MAX_MESSAGES,
    };
    let max_message_size = match to.kafka_max_message_size {
        None | Some(0) => DEFAULT_KAFKA_MAX_MESSAGE_SIZE,
        Some(n) if n > 0 && n <= i64::from(i32::MAX) => n as usize,
        Some(n) => {
            return Err(ConfigError::invalid(
                "syncer.to.kafka-max-message-size",
                n,
                "expected bytes, 1 to 2147483647",
            ));
        }
    };
    Ok(KafkaSink {
        addrs,
        version: given(&to.kafka_version)
            .unwrap_or(DEFAULT_KAFKA_VERSION)
            .to_string(),
        max_messages,
        max_message_size,
        client_id: given(&to.kafka_client_id)
            .unwrap_or(DEFAULT_KAFKA_CLIENT_ID)
            .to_string(),
        topic_name: given(&to.topic_name).map(str::to_string),
    })
}

/// Resolves `[syncer.to.checkpoint]`: its `type`, else the sink's (file and Kafka sinks keep a
/// file checkpoint). A MySQL checkpoint uses its own `host` (and user, password, port, security)
/// when `host` is set, else the sink's connection settings; unset parts default to
/// `127.0.0.1:3306`, user `root`.
pub(super) fn resolve_checkpoint(
    checkpoint: Option<&CheckpointFile>,
    to: &ToFile,
    sink: &SinkConfig,
    data_dir: &Path,
) -> Result<CheckpointConfig, ConfigError> {
    let empty = CheckpointFile::default();
    let checkpoint = checkpoint.unwrap_or(&empty);
    let use_mysql = match given(&checkpoint.kind) {
        Some("mysql" | "tidb") => true,
        Some("file") => false,
        Some(other) => {
            return Err(ConfigError::invalid(
                "syncer.to.checkpoint.type",
                other,
                "expected mysql, tidb or file",
            ));
        }
        None => matches!(sink, SinkConfig::Mysql(_)),
    };
    if !use_mysql {
        return Ok(CheckpointConfig::File {
            dir: data_dir.to_owned(),
        });
    }
    let connection = if given(&checkpoint.host).is_some() {
        let password = match given(&checkpoint.encrypted_password) {
            Some(sealed) => decrypt("syncer.to.checkpoint.encrypted_password", sealed)?,
            None => Password(checkpoint.password.clone().unwrap_or_default()),
        };
        DbConnection {
            host: checkpoint.host.clone().unwrap_or_default(),
            port: match checkpoint.port.filter(|p| *p != 0) {
                Some(value) => port("syncer.to.checkpoint.port", value)?,
                None => 3306,
            },
            user: given(&checkpoint.user).unwrap_or("root").to_string(),
            password,
            tls: tls_settings(checkpoint.security.clone().unwrap_or_default()),
        }
    } else if let SinkConfig::Mysql(mysql) = sink {
        mysql.connection.clone()
    } else {
        let password = match given(&to.encrypted_password) {
            Some(sealed) => decrypt("syncer.to.encrypted_password", sealed)?,
            None => Password(to.password.clone().unwrap_or_default()),
        };
        DbConnection {
            host: given(&to.host).unwrap_or("127.0.0.1").to_string(),
            port: match to.port.filter(|p| *p != 0) {
                Some(value) => port("syncer.to.port", value)?,
                None => 3306,
            },
            user: given(&to.user).unwrap_or("root").to_string(),
            password,
            tls: tls_settings(to.security.clone().unwrap_or_default()),
        }
    };
    Ok(CheckpointConfig::Mysql {
        connection,
        schema: given(&checkpoint.schema)
            .unwrap_or(DEFAULT_CHECKPOINT_SCHEMA)
            .to_string(),
        table: given(&checkpoint.table)
            .unwrap_or(DEFAULT_CHECKPOINT_TABLE)
            .to_string(),
    })
}
