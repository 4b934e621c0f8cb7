//! The drainer's configuration: the original's command-line flags (Go style or `--`), its TOML
//! keys (strict: an unknown key, in any table, is an error naming it), its `BINLOG_SERVER_<FLAG>`
//! environment overrides, validated and typed into one [`Config`] the rest of the drainer reads.
//!
//! Precedence, as in the original: flags > `BINLOG_SERVER_*` variables (for flags not given) >
//! the file (`-config`) > defaults. `disable-dispatch` / `disable-detect` win over their
//! `enable-*` twins (flag over file within each). Defaults are the original code's, not its
//! README's: `detect-interval` 5 (the README and sample file say 10), `txn-batch` 20, `-c` 16,
//! `cache-binlog-count` 8, `initial-commit-ts` −1 (PD's current time).
//!
//! Differences, on purpose:
//! - `addr` defaults to `127.0.0.1:8249` (the original binds its first non-loopback address);
//!   deployments pass `-addr`, and `advertise-addr` must be reachable (not empty, not 0.0.0.0).
//! - Malformed values the original would ignore or crash on (a non-numeric `MYSQL_PORT`, an
//!   invalid filter regex, an unknown binlog-filter event) are errors naming the setting.
//! - `ignore-schemas` entries are trimmed (`"a, b"` means `a` and `b`); do-lists are not
//!   lower-cased, as every pattern matches case-insensitively anyway.
//! - The Oracle sink and checkpoint, and Kafka broker discovery through ZooKeeper, are refused
//!   with an error (their keys still parse).

mod event_filter;
mod file;
mod flags;
mod sink;

use std::path::PathBuf;
use std::time::Duration;

use binlog_cluster::TlsSettings;

use crate::filter::{Filter, FilterConfig, TableName};
use file::{FileConfig, SecurityFile, TableNameFile};

pub use event_filter::{
    EVENT_NAMES, EventFilterConfig, EventFilterRule, SchemaTable, TableMigrateRule,
};
pub use flags::{ENV_PREFIX, Flags, env_name};
pub use sink::{
    CheckpointConfig, DEFAULT_CHECKPOINT_SCHEMA, DEFAULT_CHECKPOINT_TABLE, DbConnection, DbFlavor,
    FileSink, KafkaSink, MysqlSink, Password, SinkConfig, SyncMode,
};

pub use binlog_cluster::config_file::ConfigError;

/// The default listen address (see the module doc).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8249";
/// The default data dir.
pub const DEFAULT_DATA_DIR: &str = "data.drainer";
/// The default PD URL.
pub const DEFAULT_PD_URLS: &str = "http://127.0.0.1:2379";
/// The default `ignore-schemas`.
pub const DEFAULT_IGNORE_SCHEMAS: &str = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql";
/// `initial-commit-ts` meaning "PD's current time": history before the start is skipped.
pub const INITIAL_COMMIT_TS_NOW: i64 = -1;
const DEFAULT_DETECT_INTERVAL_SECS: i64 = 5;
const DEFAULT_RELAY_MAX_FILE_SIZE: i64 = 10 * 1024 * 1024;

/// How binlogs are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncerConfig {
    /// `txn-batch`: binlogs per downstream transaction.
    pub txn_batch: usize,
    /// Downstream workers: `worker-count` / `-c`, but 1 for the file and Kafka sinks and when
    /// dispatch is off, as in the original.
    pub worker_count: usize,
    /// `safe-mode`.
    pub safe_mode: bool,
    /// `enable-dispatch` (after `disable-dispatch`): split transactions across workers.
    pub enable_dispatch: bool,
    /// `enable-detect` (after `disable-detect`): causality detection between workers.
    pub enable_causality: bool,
    /// `load-schema-snapshot`.
    pub load_schema_snapshot: bool,
    /// `sql-mode`, validated and upper-cased (`None`: unset).
    pub sql_mode: Option<String>,
    /// `ignore-txn-commit-ts`: binlogs with these commit ts are dropped.
    pub ignore_txn_commit_ts: Vec<i64>,
    /// `cache-binlog-count`: binlogs buffered before the syncer.
    pub cache_binlog_count: usize,
    /// `sync-ddl` (default true): execute DDL downstream.
    pub sync_ddl: bool,
}

/// `[syncer.relay]` (parsed; the relay log is the lead's decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// `log-dir`; `None`: no relay log.
    pub log_dir: Option<PathBuf>,
    /// `max-file-size` in bytes.
    pub max_file_size: u64,
}

/// Pushing metrics to a Prometheus Pushgateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsPush {
    /// `-metrics-addr`.
    pub addr: String,
    /// `-metrics-interval`.
    pub interval: Duration,
}

/// The drainer's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Configured node id (`None`: hostname:port).
    pub node_id: Option<String>,
    /// Listen address.
    pub addr: String,
    /// Address registered for pumps to reach this drainer.
    pub advertise_addr: String,
    /// Data dir: file checkpoint, default binlog-file dir.
    pub data_dir: PathBuf,
    /// PD URLs, normalised to `scheme://host:port`.
    pub pd_urls: Vec<String>,
    /// How often the pump list is refreshed.
    pub detect_interval: Duration,
    /// Log level: debug, info, warn or error (`fatal` reads as error).
    pub log_level: String,
    /// Log file; `None`: stderr.
    pub log_file: Option<PathBuf>,
    /// Pushgateway, if configured.
    pub metrics: Option<MetricsPush>,
    /// Start ts without a checkpoint; [`INITIAL_COMMIT_TS_NOW`] means PD's current time.
    pub initial_commit_ts: i64,
    /// Ask pumps for gzip-compressed streams (`compressor = "gzip"`).
    pub gzip: bool,
    /// No new binlog for this long means "synced".
    pub synced_check_time: Duration,
    /// TLS towards PD, etcd and pumps, and of the drainer's own port.
    pub security: TlsSettings,
    /// How binlogs are applied.
    pub syncer: SyncerConfig,
    /// The schema/table filter (compiled by [`Filter::new`]; its patterns are known to compile).
    pub filter: FilterConfig,
    /// The binlog event filter.
    pub event_filter: EventFilterConfig,
    /// The downstream.
    pub sink: SinkConfig,
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointConfig,
    /// The relay log.
    pub relay: RelayConfig,
}

/// The `-V` text.
pub fn version_text() -> String {
    binlog_cluster::flags::version_text("drainer")
}

fn tls_settings(file: SecurityFile) -> TlsSettings {
    let path = |value: Option<String>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    TlsSettings {
        ssl_ca: path(file.ssl_ca),
        ssl_cert: path(file.ssl_cert),
        ssl_key: path(file.ssl_key),
        cert_allowed_cn: file.cert_allowed_cn.unwrap_or_default(),
    }
}

fn validate_host_port(key: &'static str, value: &str, listen: bool) -> Result<(), ConfigError> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::invalid(key, value, "expected host:port"))?;
    port.parse::<u16>()
        .map_err(|_| ConfigError::invalid(key, value, "expected host:port with a numeric port"))?;
    if !listen && (host.is_empty() || host == "0.0.0.0") {
        return Err(ConfigError::invalid(
            key,
            value,
            "the host must be an address pumps can reach, not empty or 0.0.0.0 (set advertise-addr)",
        ));
    }
    Ok(())
}

/// `flag`, else `file`: the value from the highest-precedence place that has one.
fn pick<T>(flag: &Option<T>, file: Option<T>) -> Option<T>
where
    T: Clone,
{
    flag.clone().or(file)
}

fn non_negative(key: &'static str, value: i64) -> Result<u64, ConfigError> {
    u64::try_from(value).map_err(|_| ConfigError::invalid(key, value, "must be >= 0"))
}

fn positive(key: &'static str, value: i64) -> Result<usize, ConfigError> {
    usize::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ConfigError::invalid(key, value, "must be > 0"))
}

const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "fatal"];

fn log_level(value: &str) -> Result<String, ConfigError> {
    let lower = value.trim().to_lowercase();
    match lower.as_str() {
        "fatal" => Ok("error".to_string()),
        level if LOG_LEVELS.contains(&level) => Ok(lower),
        _ => Err(ConfigError::invalid(
            "log-level",
            value,
            "expected debug, info, warn, error or fatal",
        )),
    }
}

/// SQL modes TiDB accepts in `sql_mode`.
const SQL_MODES: &[&str] = &[
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "NOT_USED",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
    "ALLOW_INVALID_DATES",
    "TIME_TRUNCATE_FRACTIONAL",
];

fn sql_mode(value: &str) -> Result<String, ConfigError> {
    let mut modes = Vec::new();
    for part in value.split(',') {
        let mode = part.trim().to_uppercase();
        if mode.is_empty() {
            continue;
        }
        if !SQL_MODES.contains(&mode.as_str()) {
            return Err(ConfigError::invalid(
                "syncer.sql-mode",
                value,
                format!(
                    "unknown SQL mode {mode}; expected e.g. \"STRICT_TRANS_TABLES,ANSI_QUOTES\""
                ),
            ));
        }
        modes.push(mode);
    }
    Ok(modes.join(","))
}

fn table_names(
    key: &'static str,
    tables: Option<Vec<TableNameFile>>,
) -> Result<Vec<TableName>, ConfigError> {
    tables
        .unwrap_or_default()
        .into_iter()
        .map(|table| {
            if table.db_name.is_empty() {
                return Err(ConfigError::invalid(key, "", "empty schema name (db-name)"));
            }
            if table.tbl_name.is_empty() {
                return Err(ConfigError::invalid(
                    key,
                    &table.db_name,
                    "empty table name (tbl-name)",
                ));
            }
            Ok(TableName::new(table.db_name, table.tbl_name))
        })
        .collect()
}

/// `disable` beats `enable`; flags (and their variables) beat the file within each.
fn enabled(
    disable_flag: Option<bool>,
    disable_file: Option<bool>,
    enable_flag: Option<bool>,
    enable_file: Option<bool>,
) -> bool {
    match (disable_flag.or(disable_file), enable_flag.or(enable_file)) {
        (Some(disable), _) => !disable,
        (None, Some(enable)) => enable,
        (None, None) => true,
    }
}

impl Config {
    /// Reads the TOML file named by `-config` (if any), then applies the flags (and
    /// `BINLOG_SERVER_*` variables, already folded into `flags`) and the process environment's
    /// `MYSQL_*` / `KAFKA_ADDRS` defaults.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => binlog_cluster::config_file::read_toml(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(flags, file, &|name| std::env::var(name).ok())
    }

    fn resolve(
        flags: &Flags,
        file: FileConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let syncer = file.syncer.unwrap_or_default();
        // Ignoring it would be worse than refusing it: two drainers replicating in opposite
        // directions without marks echo each other's changes without end.
        if pick(&flags.loopback_control, syncer.loopback_control) == Some(true) {
            return Err(ConfigError::invalid(
                "syncer.loopback-control",
                "true",
                "bidirectional replication marks are not supported: replicate in one direction \
                 only, with loopback-control = false",
            ));
        }
        let to = syncer.to.unwrap_or_default();
        let security = tls_settings(file.security.unwrap_or_default());

        let addr = pick(&flags.addr, file.addr)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        validate_host_port("addr", &addr, true)?;
        let advertise_addr = pick(&flags.advertise_addr, file.advertise_addr)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| addr.clone());
        validate_host_port("advertise-addr", &advertise_addr, false)?;

        let data_dir = pick(&flags.data_dir, file.data_dir)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let pd_text = pick(&flags.pd_urls, file.pd_urls)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_PD_URLS.to_string());
        let pd_urls = binlog_cluster::urls::parse_pd_urls(&pd_text, security.enabled())
            .map_err(|err| ConfigError::invalid("pd-urls", &err.url, err.to_string()))?;

        let detect = pick(&flags.detect_interval, file.detect_interval)
            .filter(|secs| *secs != 0)
            .unwrap_or(DEFAULT_DETECT_INTERVAL_SECS);
        let detect_interval = Duration::from_secs(non_negative("detect-interval", detect)?.max(1));

        let metrics_addr = flags.metrics_addr.clone().filter(|a| !a.is_empty());
        let metrics_interval =
            non_negative("metrics-interval", flags.metrics_interval.unwrap_or(15))?;
        let metrics = metrics_addr
            .filter(|_| metrics_interval > 0)
            .map(|addr| MetricsPush {
                addr,
                interval: Duration::from_secs(metrics_interval),
            });

        let initial_commit_ts =
            pick(&flags.initial_commit_ts, file.initial_commit_ts).unwrap_or(INITIAL_COMMIT_TS_NOW);
        if initial_commit_ts < INITIAL_COMMIT_TS_NOW {
            return Err(ConfigError::invalid(
                "initial-commit-ts",
                initial_commit_ts,
                "expected a commit ts >= 0, or -1 for PD's current time",
            ));
        }
        let compressor = pick(&flags.compressor, file.compressor).unwrap_or_default();
        let gzip = match compressor.as_str() {
            "" => false,
            "gzip" => true,
            other => {
                return Err(ConfigError::invalid(
                    "compressor",
                    other,
                    "expected \"\" or gzip",
                ));
            }
        };
        let synced_minutes = non_negative(
            "synced-check-time",
            pick(&flags.synced_check_time, file.synced_check_time).unwrap_or(5),
        )?;

        let db_type = pick(&flags.dest_db_type, syncer.db_type).unwrap_or_else(|| "mysql".into());
        let kind = sink::sink_kind(&db_type)?;
        let sink = sink::resolve_sink(kind, &to, &data_dir, env)?;
        let checkpoint = sink::resolve_checkpoint(to.checkpoint.as_ref(), &to, &sink, &data_dir)?;

        let enable_dispatch = enabled(
            flags.disable_dispatch,
            syncer.disable_dispatch,
            flags.enable_dispatch,
            syncer.enable_dispatch,
        );
        let enable_causality = enabled(
            flags.disable_detect,
            syncer.disable_detect,
            flags.enable_detect,
            syncer.enable_detect,
        );
        let configured_workers = positive(
            "worker-count",
            pick(&flags.worker_count, syncer.worker_count).unwrap_or(16),
        )?;
        let worker_count = match sink {
            SinkConfig::File(_) | SinkConfig::Kafka(_) => 1,
            SinkConfig::Mysql(_) if !enable_dispatch => 1,
            SinkConfig::Mysql(_) => configured_workers,
        };

        let ignore_schemas = pick(&flags.ignore_schemas, syncer.ignore_schemas)
            .unwrap_or_else(|| DEFAULT_IGNORE_SCHEMAS.to_string());
        let mut ignore_dbs = Vec::new();
        for name in ignore_schemas.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(ConfigError::invalid(
                    "ignore-schemas",
                    &ignore_schemas,
                    "empty schema name; expected comma-separated names",
                ));
            }
            ignore_dbs.push(name.to_string());
        }
        let do_dbs = syncer.replicate_do_db.unwrap_or_default();
        if do_dbs.iter().any(|db| db.is_empty()) {
            return Err(ConfigError::invalid(
                "syncer.replicate-do-db",
                "",
                "empty schema name",
            ));
        }
        let filter = FilterConfig {
            do_dbs,
            do_tables: table_names("syncer.replicate-do-table", syncer.replicate_do_table)?,
            ignore_dbs,
            ignore_tables: table_names("syncer.ignore-table", syncer.ignore_table)?,
        };
        Filter::new(&filter)
            .map_err(|err| ConfigError::invalid(err.setting, &err.pattern, err.reason))?;

        let relay_size = pick(
            &flags.relay_max_file_size,
            syncer.relay.as_ref().and_then(|r| r.max_file_size),
        )
        .unwrap_or(DEFAULT_RELAY_MAX_FILE_SIZE);
        let relay = RelayConfig {
            log_dir: pick(
                &flags.relay_log_dir,
                syncer.relay.and_then(|relay| relay.log_dir),
            )
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
            max_file_size: positive("relay-max-file-size", relay_size)? as u64,
        };

        Ok(Config {
            node_id: pick(&flags.node_id, file.node_id)
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty()),
            addr,
            advertise_addr,
            data_dir,
            pd_urls,
            detect_interval,
            log_level: log_level(
                &pick(&flags.log_level, file.log_level).unwrap_or_else(|| "info".into()),
            )?,
            log_file: pick(&flags.log_file, file.log_file)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            metrics,
            initial_commit_ts,
            gzip,
            synced_check_time: Duration::from_secs(synced_minutes * 60),
            security,
            syncer: SyncerConfig {
                txn_batch: positive(
                    "txn-batch",
                    pick(&flags.txn_batch, syncer.txn_batch).unwrap_or(20),
                )?,
                worker_count,
                safe_mode: pick(&flags.safe_mode, syncer.safe_mode).unwrap_or(false),
                enable_dispatch,
                enable_causality,
                load_schema_snapshot: pick(
                    &flags.load_schema_snapshot,
                    syncer.load_schema_snapshot,
                )
                .unwrap_or(false),
                sql_mode: syncer.sql_mode.as_deref().map(sql_mode).transpose()?,
                ignore_txn_commit_ts: syncer.ignore_txn_commit_ts.unwrap_or_default(),
                cache_binlog_count: positive(
                    "cache-binlog-count",
                    flags.cache_binlog_count.unwrap_or(8),
                )?,
                sync_ddl: pick(&flags.sync_ddl, syncer.sync_ddl).unwrap_or(true),
            },
            filter,
            event_filter: event_filter::resolve(
                syncer.case_sensitive,
                syncer.binlog_filter_rule,
                syncer.table_migrate_rule,
            )?,
            sink,
            checkpoint,
            relay,
        })
    }
}

#[cfg(test)]
mod tests;
