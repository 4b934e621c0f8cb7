//! The pump's configuration: the original's TOML keys (strict: an unknown key is an error naming
//! it), its command-line flags (Go style or `--`), and `PUMP_<FLAG>` environment overrides.
//!
//! Precedence, as in the original: flags > environment (for flags not given) > TOML > defaults.

use std::path::PathBuf;
use std::time::Duration;

use binlog_cluster::TlsSettings;
use binlog_cluster::units::{parse_bytes, parse_go_duration};
use clap::Parser;
use serde::Deserialize;

pub use binlog_cluster::config_file::ConfigError;

/// Command-line flags; each can also come from `PUMP_<NAME>` (e.g. `PUMP_PD_URLS`).
#[derive(Debug, Default, Parser)]
#[command(
    name = "pump",
    about = "TiDB-Binlog pump: stores binlogs and serves them in commit-ts order",
    disable_version_flag = true
)]
pub struct Flags {
    /// Address to listen on (host:port)
    #[arg(long, env = "PUMP_ADDR")]
    pub addr: Option<String>,
    /// Address other nodes reach this pump at (host:port)
    #[arg(long = "advertise-addr", env = "PUMP_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Unix socket URL to also serve on (unix:///path/pump.sock)
    #[arg(long, env = "PUMP_SOCKET")]
    pub socket: Option<String>,
    /// PD URLs, comma separated
    #[arg(long = "pd-urls", env = "PUMP_PD_URLS")]
    pub pd_urls: Option<String>,
    /// Directory of the pump's data
    #[arg(long = "data-dir", env = "PUMP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the registry
    #[arg(long = "heartbeat-interval", env = "PUMP_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<u64>,
    /// Data retention: whole days, or a duration like 8h
    #[arg(long, env = "PUMP_GC")]
    pub gc: Option<String>,
    /// Node id (default: <data-dir>/.node, else hostname:port)
    #[arg(long = "node-id", env = "PUMP_NODE_ID")]
    pub node_id: Option<String>,
    /// Log level: debug, info, warn, error
    #[arg(short = 'L', env = "PUMP_L")]
    pub log_level: Option<String>,
    /// Log file (default: stderr)
    #[arg(long = "log-file", env = "PUMP_LOG_FILE")]
    pub log_file: Option<String>,
    /// Seconds of idleness after which a fake binlog advances this pump's watermark
    #[arg(long = "fake-binlog-interval", env = "PUMP_FAKE_BINLOG_INTERVAL")]
    pub fake_binlog_interval: Option<u64>,
    /// Prometheus Pushgateway address
    #[arg(long = "metrics-addr", env = "PUMP_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Seconds between pushes to the Pushgateway
    #[arg(long = "metrics-interval", env = "PUMP_METRICS_INTERVAL")]
    pub metrics_interval: Option<u64>,
    /// Largest gRPC message accepted, in bytes
    #[arg(long = "max-message-size", env = "PUMP_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Path of the TOML config file
    #[arg(long, env = "PUMP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the version and exit
    #[arg(short = 'V')]
    pub version: bool,
    /// Accepted for compatibility; no effect
    #[arg(long = "enable-debug", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    pub enable_debug: Option<bool>,
    /// Accepted for compatibility; no effect
    #[arg(long = "enable-tolerant", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    pub enable_tolerant: Option<bool>,
    /// Deprecated; ignored
    #[arg(long = "binlog-file-size", hide = true)]
    pub binlog_file_size: Option<String>,
    /// Deprecated; ignored
    #[arg(long = "enable-binlog-slice", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    pub enable_binlog_slice: Option<bool>,
    /// Deprecated; ignored
    #[arg(long = "binlog-slice-size", hide = true)]
    pub binlog_slice_size: Option<String>,
    /// Deprecated; ignored
    #[arg(long = "log-rotate", hide = true)]
    pub log_rotate: Option<String>,
}

impl Flags {
    /// Parses the process's arguments (Go style or `--`) and environment.
    pub fn from_env() -> Flags {
        use clap::CommandFactory;
        Flags::parse_from(binlog_cluster::flags::go_style_args(
            &Flags::command(),
            std::env::args_os(),
        ))
    }
}

/// `gc` in TOML: whole days as an integer, or a duration string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Retention {
    Days(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SecurityFile {
    ssl_ca: Option<String>,
    ssl_cert: Option<String>,
    ssl_key: Option<String>,
    cert_allowed_cn: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// `[storage.kv]`: the original's goleveldb tuning. Accepted so existing files load; our index
/// needs none of it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct KvFile {
    #[serde(rename = "block-cache-capacity")]
    block_cache_capacity: Option<i64>,
    #[serde(rename = "block-restart-interval")]
    block_restart_interval: Option<i64>,
    #[serde(rename = "block-size")]
    block_size: Option<i64>,
    #[serde(rename = "compaction-L0-trigger")]
    compaction_l0_trigger: Option<i64>,
    #[serde(rename = "compaction-table-size")]
    compaction_table_size: Option<i64>,
    #[serde(rename = "compaction-total-size")]
    compaction_total_size: Option<i64>,
    #[serde(rename = "compaction-total-size-multiplier")]
    compaction_total_size_multiplier: Option<f64>,
    #[serde(rename = "write-buffer")]
    write_buffer: Option<i64>,
    #[serde(rename = "write-L0-pause-trigger")]
    write_l0_pause_trigger: Option<i64>,
    #[serde(rename = "write-L0-slowdown-trigger")]
    write_l0_slowdown_trigger: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    #[serde(rename = "sync-log")]
    sync_log: Option<bool>,
    #[allow(dead_code)] // accepted for compatibility: our write queue is bounded in bytes instead
    kv_chan_cap: Option<i64>,
    slow_write_threshold: Option<f64>,
    #[serde(rename = "stop-write-at-available-space")]
    stop_write_at_available_space: Option<Size>,
    /// Ours: seconds a prewrite may wait for its commit before it is reported.
    #[serde(rename = "max-txn-timeout")]
    max_txn_timeout: Option<u64>,
    #[allow(dead_code)] // accepted for compatibility; see `KvFile`
    kv: Option<KvFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    addr: Option<String>,
    advertise_addr: Option<String>,
    socket: Option<String>,
    pd_urls: Option<String>,
    data_dir: Option<PathBuf>,
    heartbeat_interval: Option<u64>,
    gc: Option<Retention>,
    node_id: Option<String>,
    log_level: Option<String>,
    log_file: Option<String>,
    gen_binlog_interval: Option<u64>,
    security: Option<SecurityFile>,
    storage: Option<StorageFile>,
}

/// `[storage]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// fdatasync every group commit before acknowledging.
    pub sync_log: bool,
    /// A write slower than this is logged.
    pub slow_write_threshold: Duration,
    /// Below this much free disk, writes other than fake binlogs are refused.
    pub stop_write_at_available_space: u64,
    /// A prewrite waiting longer than this for its commit is reported loudly.
    pub max_txn_timeout: Duration,
}

/// The pump's effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listen address.
    pub addr: String,
    /// Address registered for others to reach this pump.
    pub advertise_addr: String,
    /// Optional unix socket URL.
    pub socket: Option<String>,
    /// PD URLs, comma separated as given.
    pub pd_urls: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Data retention.
    pub gc: Duration,
    /// Configured node id, if any.
    pub node_id: Option<String>,
    /// Log level.
    pub log_level: String,
    /// Log file; empty means stderr.
    pub log_file: String,
    /// Idle time after which a fake binlog is written.
    pub fake_binlog_interval: Duration,
    /// TLS.
    pub security: TlsSettings,
    /// Storage settings.
    pub storage: StorageConfig,
    /// Pushgateway address, if any.
    pub metrics_addr: Option<String>,
    /// Push period.
    pub metrics_interval: Duration,
    /// Largest gRPC message accepted.
    pub max_message_size: usize,
}

/// The default listen address. The original binds its first non-loopback IPv4; we default to
/// loopback so nothing is exposed by accident, and deployments pass `-addr`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8250";
/// Default free-space floor: 10 GiB.
pub const DEFAULT_STOP_WRITE_AT: u64 = 10 * 1024 * 1024 * 1024;
/// Default gRPC receive limit of the original: `MaxInt - 4 MiB`, capped to what a `usize` holds.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = (i32::MAX as usize) - 4 * 1024 * 1024;

fn parse_retention(value: &Retention) -> Result<Duration, ConfigError> {
    let duration = match value {
        Retention::Days(days) if *days > 0 => Duration::from_secs(*days as u64 * 86_400),
        Retention::Days(days) => return Err(ConfigError::invalid("gc", days, "must be > 0")),
        Retention::Text(text) => match text.trim().parse::<i64>() {
            Ok(days) => return parse_retention(&Retention::Days(days)),
            Err(_) => parse_go_duration(text)
                .map_err(|err| ConfigError::invalid("gc", text, err.reason))?,
        },
    };
    if duration.is_zero() {
        return Err(ConfigError::invalid(
            "gc",
            format!("{value:?}"),
            "must be > 0",
        ));
    }
    Ok(duration)
}

fn validate_host_port(
    key: &'static str,
    value: &str,
    allow_any_host: bool,
) -> Result<(), ConfigError> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::invalid(key, value, "expected host:port"))?;
    port.parse::<u16>()
        .map_err(|_| ConfigError::invalid(key, value, "expected host:port with a numeric port"))?;
    if !allow_any_host && (host.is_empty() || host == "0.0.0.0") {
        return Err(ConfigError::invalid(
            key,
            value,
            "the host must be an address others can reach, not empty or 0.0.0.0 (set advertise-addr)",
        ));
    }
    Ok(())
}

impl Config {
    /// The filesystem path of `socket` (`unix:///dir/pump.sock` → `/dir/pump.sock`).
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.socket
            .as_deref()
            .map(|url| PathBuf::from(url.strip_prefix("unix://").unwrap_or(url)))
    }

    /// Reads the TOML file named by `-config` (if any) and applies flags over it.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => binlog_cluster::config_file::read_toml(path)?,
            None => FileConfig::default(),
        };
        Self::merge(flags, file)
    }

    fn merge(flags: &Flags, file: FileConfig) -> Result<Config, ConfigError> {
        let storage_file = file.storage.unwrap_or_default();
        let security_file = file.security.unwrap_or_default();
        let addr = flags
            .addr
            .clone()
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        validate_host_port("addr", &addr, true)?;
        let advertise_addr = flags
            .advertise_addr
            .clone()
            .or(file.advertise_addr)
            .unwrap_or_else(|| addr.clone());
        validate_host_port("advertise-addr", &advertise_addr, false)?;
        let gc = match (&flags.gc, &file.gc) {
            (Some(text), _) => parse_retention(&Retention::Text(text.clone()))?,
            (None, Some(value)) => parse_retention(value)?,
            (None, None) => Duration::from_secs(7 * 86_400),
        };
        let heartbeat = flags
            .heartbeat_interval
            .or(file.heartbeat_interval)
            .unwrap_or(2);
        let fake_interval = flags
            .fake_binlog_interval
            .or(file.gen_binlog_interval)
            .unwrap_or(3);
        let stop_write_at = match storage_file.stop_write_at_available_space {
            None => DEFAULT_STOP_WRITE_AT,
            Some(Size::Bytes(bytes)) => bytes,
            Some(Size::Text(text)) => parse_bytes(&text).map_err(|err| {
                ConfigError::invalid("storage.stop-write-at-available-space", &text, err.reason)
            })?,
        };
        let slow_write = storage_file.slow_write_threshold.unwrap_or(1.0);
        if !(slow_write.is_finite() && slow_write > 0.0) {
            return Err(ConfigError::invalid(
                "storage.slow_write_threshold",
                slow_write,
                "must be a positive number of seconds",
            ));
        }
        let path = |value: Option<String>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
        let socket = flags
            .socket
            .clone()
            .or(file.socket)
            .filter(|s| !s.is_empty());
        if let Some(socket) = &socket {
            let path = socket.strip_prefix("unix://").unwrap_or(socket);
            if path.split('/').filter(|s| !s.is_empty()).count() < 2 {
                return Err(ConfigError::invalid(
                    "socket",
                    socket,
                    "expected unix:///dir/file.sock",
                ));
            }
        }
        Ok(Config {
            addr,
            advertise_addr,
            socket,
            pd_urls: flags
                .pd_urls
                .clone()
                .or(file.pd_urls)
                .unwrap_or_else(|| "http://127.0.0.1:2379".to_string()),
            data_dir: flags
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| "data.pump".into()),
            // The original turns a 0 interval into the default.
            heartbeat_interval: Duration::from_secs(if heartbeat == 0 { 2 } else { heartbeat }),
            gc,
            node_id: flags
                .node_id
                .clone()
                .or(file.node_id)
                .filter(|id| !id.trim().is_empty()),
            log_level: flags
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            log_file: flags.log_file.clone().or(file.log_file).unwrap_or_default(),
            fake_binlog_interval: Duration::from_secs(fake_interval.max(1)),
            security: TlsSettings {
                ssl_ca: path(security_file.ssl_ca),
                ssl_cert: path(security_file.ssl_cert),
                ssl_key: path(security_file.ssl_key),
                cert_allowed_cn: security_file.cert_allowed_cn.unwrap_or_default(),
            },
            storage: StorageConfig {
                sync_log: storage_file.sync_log.unwrap_or(true),
                slow_write_threshold: Duration::from_secs_f64(slow_write),
                stop_write_at_available_space: stop_write_at,
                max_txn_timeout: Duration::from_secs(storage_file.max_txn_timeout.unwrap_or(600)),
            },
            metrics_addr: flags.metrics_addr.clone().filter(|a| !a.is_empty()),
            metrics_interval: Duration::from_secs(flags.metrics_interval.unwrap_or(15)),
            max_message_size: flags.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        use clap::CommandFactory;
        let argv = std::iter::once("pump")
            .chain(args.iter().copied())
            .map(Into::into);
        Flags::try_parse_from(binlog_cluster::flags::go_style_args(
            &Flags::command(),
            argv,
        ))
        .unwrap()
    }

    fn from_toml(text: &str, args: &[&str]) -> Result<Config, ConfigError> {
        let file: FileConfig =
            binlog_cluster::config_file::parse_toml(text, std::path::Path::new("pump.toml"))?;
        Config::merge(&flags(args), file)
    }

    #[test]
    fn defaults_match_the_original() {
        let config = from_toml("", &[]).unwrap();
        assert_eq!(config.addr, DEFAULT_ADDR);
        assert_eq!(config.advertise_addr, DEFAULT_ADDR);
        assert_eq!(config.pd_urls, "http://127.0.0.1:2379");
        assert_eq!(config.data_dir, PathBuf::from("data.pump"));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(config.gc, Duration::from_secs(7 * 86_400));
        assert_eq!(config.fake_binlog_interval, Duration::from_secs(3));
        assert!(config.storage.sync_log);
        assert_eq!(
            config.storage.stop_write_at_available_space,
            DEFAULT_STOP_WRITE_AT
        );
        assert_eq!(config.storage.max_txn_timeout, Duration::from_secs(600));
        assert!(!config.security.enabled());
    }

    #[test]
    fn the_original_sample_file_loads() {
        let config = from_toml(
            r#"
addr = "192.168.0.11:8250"
advertise-addr = "192.168.0.11:8250"
gc = 7
data-dir = "data.pump"
heartbeat-interval = 2
pd-urls = "http://192.168.0.16:2379,http://192.168.0.15:2379"
gen-binlog-interval = 5

[security]
ssl-ca = ""
ssl-cert = ""
ssl-key = ""

[storage]
sync-log = true
kv_chan_cap = 1048576
slow_write_threshold = 1.0
stop-write-at-available-space = "10 gib"

[storage.kv]
block-cache-capacity = 8388608
compaction-L0-trigger = 8
write-L0-pause-trigger = 24
"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.addr, "192.168.0.11:8250");
        assert_eq!(config.fake_binlog_interval, Duration::from_secs(5));
        assert_eq!(
            config.storage.stop_write_at_available_space,
            10 * 1024 * 1024 * 1024
        );
        assert!(!config.security.enabled(), "empty ssl-ca means TLS off");
    }

    #[test]
    fn flags_win_over_the_file() {
        let config = from_toml(
            "addr = \"127.0.0.1:1\"\ngc = 3\ngen-binlog-interval = 9",
            &[
                "-addr",
                "127.0.0.1:2",
                "-gc=8h",
                "-fake-binlog-interval",
                "1",
                "-L",
                "debug",
            ],
        )
        .unwrap();
        assert_eq!(config.addr, "127.0.0.1:2");
        assert_eq!(config.gc, Duration::from_secs(8 * 3600));
        assert_eq!(config.fake_binlog_interval, Duration::from_secs(1));
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = from_toml("addr = \"127.0.0.1:1\"\nstop-write = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `stop-write`"), "{err}");
        let err = from_toml("[storage]\nsynclog = true\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `synclog`"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = from_toml("gc = 0", &[]).unwrap_err().to_string();
        assert_eq!(err, "invalid gc \"0\": must be > 0");
        let err = from_toml("gc = \"8 hours\"", &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid gc \"8 hours\": unknown unit"),
            "{err}"
        );
        let err = from_toml("[storage]\nstop-write-at-available-space = \"lots\"", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid storage.stop-write-at-available-space \"lots\""),
            "{err}"
        );
        let err = from_toml("addr = \"0.0.0.0:8250\"", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid advertise-addr \"0.0.0.0:8250\""),
            "{err}"
        );
        assert!(
            from_toml(
                "addr = \"0.0.0.0:8250\"\nadvertise-addr = \"pump-0.svc:8250\"",
                &[]
            )
            .is_ok()
        );
        let err = from_toml("socket = \"unix://x.sock\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid socket"), "{err}");
    }
}
