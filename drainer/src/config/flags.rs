//! The drainer's command line, Go style (`-pd-urls=...`, `-c 16`) or with two dashes, and the
//! `BINLOG_SERVER_<FLAG>` environment variables (`-pd-urls` → `BINLOG_SERVER_PD_URLS`, `-c` →
//! `BINLOG_SERVER_C`), which count as flags for every flag not given on the command line.
//!
//! Unlike the original, where they arrive too late to matter, `BINLOG_SERVER_CONFIG` names the
//! config file (as `PUMP_CONFIG` does for the pump) and the `*_DISPATCH` / `*_DETECT` variables
//! take effect.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

/// Prefix of the environment variables standing in for flags.
pub const ENV_PREFIX: &str = "BINLOG_SERVER_";

/// Command-line flags. Every field is `None` (or `false`) when neither the flag nor its
/// environment variable is set, so the TOML file and the defaults can fill in.
#[derive(Debug, Default, Clone, PartialEq, Parser)]
#[command(
    name = "drainer",
    about = "TiDB-Binlog drainer: merges the pumps' binlogs and replicates them downstream",
    disable_version_flag = true
)]
pub struct Flags {
    /// Node id (default: hostname:port)
    #[arg(long = "node-id")]
    pub node_id: Option<String>,
    /// Address to listen on (host:port)
    #[arg(long)]
    pub addr: Option<String>,
    /// Address pumps reach this drainer at (default: addr)
    #[arg(long = "advertise-addr")]
    pub advertise_addr: Option<String>,
    /// Directory of the checkpoint and, by default, of the binlog files
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Seconds between refreshes of the pump list
    #[arg(long = "detect-interval", allow_negative_numbers = true)]
    pub detect_interval: Option<i64>,
    /// PD URLs, comma separated
    #[arg(long = "pd-urls")]
    pub pd_urls: Option<String>,
    /// Log level: debug, info, warn, error, fatal
    #[arg(short = 'L')]
    pub log_level: Option<String>,
    /// Path of the TOML config file
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the version and exit
    #[arg(short = 'V')]
    pub version: bool,
    /// Log file (default: stderr)
    #[arg(long = "log-file")]
    pub log_file: Option<String>,
    /// Deprecated; ignored
    #[arg(long = "log-rotate", hide = true)]
    pub log_rotate: Option<String>,
    /// Prometheus Pushgateway address
    #[arg(long = "metrics-addr")]
    pub metrics_addr: Option<String>,
    /// Seconds between pushes to the Pushgateway (0 disables pushing)
    #[arg(long = "metrics-interval", allow_negative_numbers = true)]
    pub metrics_interval: Option<i64>,
    /// Commit ts to start from when there is no checkpoint; -1 means PD's current time
    #[arg(long = "initial-commit-ts", allow_negative_numbers = true)]
    pub initial_commit_ts: Option<i64>,
    /// Compression of the pumps' streams: "" or gzip
    #[arg(long)]
    pub compressor: Option<String>,
    /// Binlogs per downstream transaction batch
    #[arg(long = "txn-batch", allow_negative_numbers = true)]
    pub txn_batch: Option<i64>,
    /// Downstream workers
    #[arg(short = 'c', allow_negative_numbers = true)]
    pub worker_count: Option<i64>,
    /// Downstream type: mysql, tidb, file (alias pb), kafka
    #[arg(long = "dest-db-type")]
    pub dest_db_type: Option<String>,
    /// Replay statements idempotently (UPDATE as DELETE + REPLACE)
    #[arg(long = "safe-mode", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub safe_mode: Option<bool>,
    /// Split transactions across workers (default true)
    #[arg(long = "enable-dispatch", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_dispatch: Option<bool>,
    /// Deprecated: the opposite of -enable-dispatch, and it wins over it
    #[arg(long = "disable-dispatch", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub disable_dispatch: Option<bool>,
    /// Detect conflicts between concurrent transactions (default true)
    #[arg(long = "enable-detect", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_detect: Option<bool>,
    /// Deprecated: the opposite of -enable-detect, and it wins over it
    #[arg(long = "disable-detect", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub disable_detect: Option<bool>,
    /// Schemas not replicated, comma separated
    #[arg(long = "ignore-schemas")]
    pub ignore_schemas: Option<String>,
    /// Mark replicated transactions for bidirectional replication (not supported: `true` is
    /// refused)
    #[arg(long = "loopback-control", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub loopback_control: Option<bool>,
    /// Replication channel id (accepted; it only means something with loopback control)
    #[arg(long = "channel-id", allow_negative_numbers = true)]
    pub channel_id: Option<i64>,
    /// Execute DDLs downstream (default true)
    #[arg(long = "sync-ddl", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub sync_ddl: Option<bool>,
    /// Relay log directory (empty: no relay log)
    #[arg(long = "relay-log-dir")]
    pub relay_log_dir: Option<String>,
    /// Largest relay log file, in bytes
    #[arg(long = "relay-max-file-size", allow_negative_numbers = true)]
    pub relay_max_file_size: Option<i64>,
    /// Load the schema from a snapshot instead of the DDL history
    #[arg(long = "load-schema-snapshot", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub load_schema_snapshot: Option<bool>,
    /// Binlogs buffered before the syncer
    #[arg(long = "cache-binlog-count", allow_negative_numbers = true)]
    pub cache_binlog_count: Option<i64>,
    /// Minutes without new binlogs after which the drainer reports itself synced
    #[arg(long = "synced-check-time", allow_negative_numbers = true)]
    pub synced_check_time: Option<i64>,
}

/// The environment variable standing in for the flag `name` (`pd-urls`, `L`, ...).
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_uppercase().replace('-', "_"))
}

impl Flags {
    /// Parses `args` (the program name first) and, for every flag not among them, its
    /// `BINLOG_SERVER_*` variable as given by `env` (empty values count as unset, as in the
    /// original). A malformed value, from either place, is an error naming the flag.
    pub fn parse_args<I, T>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Flags, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let command = Flags::command();
        let mut argv =
            binlog_cluster::flags::go_style_args(&command, args.into_iter().map(Into::into));
        let given = command.clone().try_get_matches_from(&argv)?;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "version" || given.value_source(id) == Some(ValueSource::CommandLine) {
                continue;
            }
            let (name, dashes) = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => (long.to_string(), "--"),
                (None, Some(short)) => (short.to_string(), "-"),
                (None, None) => continue,
            };
            if let Some(value) = env(&env_name(&name)).filter(|value| !value.is_empty()) {
                argv.push(format!("{dashes}{name}={value}").into());
            }
        }
        Flags::from_arg_matches(&command.try_get_matches_from(argv)?)
    }

    /// The process's arguments and environment; prints usage and exits (code 2) when they are
    /// malformed, as the original does.
    pub fn from_env() -> Flags {
        Flags::parse_args(std::env::args_os(), |name| std::env::var(name).ok())
            .unwrap_or_else(|err| err.exit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Flags, clap::Error> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Flags::parse_args(
            std::iter::once("drainer").chain(args.iter().copied()),
            |name| env.get(name).cloned(),
        )
    }

    #[test]
    fn go_style_and_double_dash_flags() {
        let flags = parse(
            &[
                "-pd-urls=http://pd:2379",
                "-c",
                "4",
                "--txn-batch",
                "7",
                "-L",
                "debug",
                "-initial-commit-ts",
                "-1",
                "-safe-mode",
                "-disable-dispatch=false",
                "-dest-db-type",
                "pb",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(flags.pd_urls.as_deref(), Some("http://pd:2379"));
        assert_eq!(flags.worker_count, Some(4));
        assert_eq!(flags.txn_batch, Some(7));
        assert_eq!(flags.log_level.as_deref(), Some("debug"));
        assert_eq!(flags.initial_commit_ts, Some(-1));
        assert_eq!(flags.safe_mode, Some(true));
        assert_eq!(flags.disable_dispatch, Some(false));
        assert_eq!(flags.enable_dispatch, None);
        assert_eq!(flags.dest_db_type.as_deref(), Some("pb"));
    }

    #[test]
    fn env_fills_flags_not_given_and_never_overrides_them() {
        let flags = parse(
            &["-addr", "127.0.0.1:1"],
            &[
                ("BINLOG_SERVER_ADDR", "127.0.0.1:2"),
                ("BINLOG_SERVER_PD_URLS", "http://env:2379"),
                ("BINLOG_SERVER_C", "3"),
                ("BINLOG_SERVER_L", "warn"),
                ("BINLOG_SERVER_SAFE_MODE", "1"),
                ("BINLOG_SERVER_INITIAL_COMMIT_TS", "-1"),
                ("BINLOG_SERVER_NODE_ID", ""),
            ],
        )
        .unwrap();
        assert_eq!(flags.addr.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(flags.pd_urls.as_deref(), Some("http://env:2379"));
        assert_eq!(flags.worker_count, Some(3));
        assert_eq!(flags.log_level.as_deref(), Some("warn"));
        assert_eq!(flags.safe_mode, Some(true));
        assert_eq!(flags.initial_commit_ts, Some(-1));
        assert_eq!(flags.node_id, None, "an empty variable counts as unset");
    }

    #[test]
    fn bad_values_name_the_flag_or_variable() {
        let err = parse(&["-c", "many"], &[]).unwrap_err().to_string();
        assert!(err.contains("'-c <WORKER_COUNT>'"), "{err}");
        let err = parse(&[], &[("BINLOG_SERVER_TXN_BATCH", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--txn-batch"), "{err}");
        let err = parse(&["--no-such-flag"], &[]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(err.to_string().contains("--no-such-flag"), "{err}");
    }

    #[test]
    fn version_flag() {
        assert!(parse(&["-V"], &[]).unwrap().version);
        assert!(!parse(&[], &[("BINLOG_SERVER_V", "true")]).unwrap().version);
    }

    #[test]
    fn variable_names_follow_the_original() {
        assert_eq!(env_name("pd-urls"), "BINLOG_SERVER_PD_URLS");
        assert_eq!(env_name("c"), "BINLOG_SERVER_C");
        assert_eq!(env_name("L"), "BINLOG_SERVER_L");
    }
}
