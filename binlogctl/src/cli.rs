//! binlogctl's flags, exactly the original's, accepted Go-style (`-cmd pumps`) or with `--`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use binlog_cluster::{Action, NodeKind, TlsSettings};
use clap::Parser;

/// The flags.
#[derive(Debug, Parser)]
#[command(
    name = "binlogctl",
    about = "Inspect and command a TiDB-Binlog cluster through PD",
    disable_version_flag = true
)]
pub struct Args {
    /// Operator: generate_meta, pumps, drainers, update-pump, update-drainer, pause-pump,
    /// pause-drainer, offline-pump, offline-drainer, encrypt
    #[arg(long, default_value = "pumps")]
    pub cmd: String,

    /// Id of the node, for update-*, pause-* and offline-*
    #[arg(long = "node-id", default_value = "")]
    pub node_id: String,

    /// Directory where generate_meta writes the savepoint
    #[arg(long = "data-dir", default_value = "binlog_position")]
    pub data_dir: PathBuf,

    /// PD URLs, comma separated
    #[arg(long = "pd-urls", default_value = "http://127.0.0.1:2379")]
    pub pd_urls: String,

    /// Path of the CA certificate; TLS is on when set
    #[arg(long = "ssl-ca", default_value = "")]
    pub ssl_ca: String,

    /// Path of the client certificate
    #[arg(long = "ssl-cert", default_value = "")]
    pub ssl_cert: String,

    /// Path of the client key
    #[arg(long = "ssl-key", default_value = "")]
    pub ssl_key: String,

    /// Time zone (e.g. Asia/Shanghai) for the human-readable lines of generate_meta
    #[arg(long = "time-zone", default_value = "")]
    pub time_zone: String,

    /// New state for update-pump / update-drainer
    #[arg(long, default_value = "")]
    pub state: String,

    /// Also list offline nodes
    #[arg(
        long = "show-offline-nodes",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub show_offline_nodes: bool,

    /// Text to encrypt, for encrypt
    #[arg(long, default_value = "")]
    pub text: String,

    /// Print the version and exit
    #[arg(short = 'V')]
    pub version: bool,
}

impl Args {
    /// Parses the process arguments, Go style or `--` style.
    pub fn from_env() -> Args {
        use clap::CommandFactory;
        let args = binlog_cluster::flags::go_style_args(&Args::command(), std::env::args_os());
        Args::parse_from(args)
    }

    /// The TLS settings from `-ssl-*`.
    pub fn tls(&self) -> TlsSettings {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        TlsSettings {
            ssl_ca: path(&self.ssl_ca),
            ssl_cert: path(&self.ssl_cert),
            ssl_key: path(&self.ssl_key),
            cert_allowed_cn: Vec::new(),
        }
    }
}

/// What `-cmd` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Write `<data-dir>/savepoint` with a fresh PD timestamp.
    GenerateMeta,
    /// List nodes of a kind.
    List(NodeKind),
    /// Rewrite a node's state in the registry.
    UpdateState(NodeKind),
    /// Ask a node over HTTP to pause or close.
    Apply(NodeKind, Action),
    /// Encrypt `-text`.
    Encrypt,
}

/// Every `-cmd` value, in the order help lists them.
pub const COMMANDS: [&str; 10] = [
    "generate_meta",
    "pumps",
    "drainers",
    "update-pump",
    "update-drainer",
    "pause-pump",
    "pause-drainer",
    "offline-pump",
    "offline-drainer",
    "encrypt",
];

/// An unknown `-cmd`.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownCommand(pub String);

impl fmt::Display for UnknownCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown command {:?}, expected one of: {}",
            self.0,
            COMMANDS.join(", ")
        )
    }
}

impl std::error::Error for UnknownCommand {}

impl FromStr for Command {
    type Err = UnknownCommand;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use NodeKind::{Drainer, Pump};
        Ok(match s {
            "generate_meta" => Command::GenerateMeta,
            "pumps" => Command::List(Pump),
            "drainers" => Command::List(Drainer),
            "update-pump" => Command::UpdateState(Pump),
            "update-drainer" => Command::UpdateState(Drainer),
            "pause-pump" => Command::Apply(Pump, Action::Pause),
            "pause-drainer" => Command::Apply(Drainer, Action::Pause),
            "offline-pump" => Command::Apply(Pump, Action::Close),
            "offline-drainer" => Command::Apply(Drainer, Action::Close),
            "encrypt" => Command::Encrypt,
            other => return Err(UnknownCommand(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        use clap::CommandFactory;
        let argv = std::iter::once("binlogctl")
            .chain(args.iter().copied())
            .map(Into::into);
        Args::parse_from(binlog_cluster::flags::go_style_args(&Args::command(), argv))
    }

    #[test]
    fn go_style_and_double_dash_flags_parse_alike() {
        let go = parse(&[
            "-cmd",
            "update-pump",
            "-node-id=p1",
            "-state",
            "paused",
            "-pd-urls=http://a:1",
        ]);
        let dashes = parse(&[
            "--cmd=update-pump",
            "--node-id",
            "p1",
            "--state=paused",
            "--pd-urls",
            "http://a:1",
        ]);
        for args in [go, dashes] {
            assert_eq!(args.cmd, "update-pump");
            assert_eq!(args.node_id, "p1");
            assert_eq!(args.state, "paused");
            assert_eq!(args.pd_urls, "http://a:1");
        }
    }

    #[test]
    fn defaults_are_the_originals() {
        let args = parse(&[]);
        assert_eq!(args.cmd, "pumps");
        assert_eq!(args.data_dir, PathBuf::from("binlog_position"));
        assert_eq!(args.pd_urls, "http://127.0.0.1:2379");
        assert!(!args.show_offline_nodes);
        assert!(!args.version);
        assert!(!args.tls().enabled());
    }

    #[test]
    fn every_listed_command_parses() {
        for name in COMMANDS {
            assert!(name.parse::<Command>().is_ok(), "{name}");
        }
        assert_eq!(
            "pump".parse::<Command>().unwrap_err().to_string(),
            format!(
                "unknown command \"pump\", expected one of: {}",
                COMMANDS.join(", ")
            )
        );
    }
}
