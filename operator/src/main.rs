//! `binlog-operator`: `crd` prints the BinlogCluster CRD YAML; `run` runs the controller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use binlog_operator::controller::{RunConfig, run};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "binlog-operator",
    version,
    about = "Kubernetes operator for BinlogCluster resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the BinlogCluster CustomResourceDefinition as YAML.
    Crd,
    /// Run the controller (in a pod, or with KUBECONFIG). Logging follows RUST_LOG (default info).
    Run {
        /// Namespaces to watch, comma-separated or repeated; all namespaces when not given.
        #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Address of the /metrics and /health server.
        #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// Directory for TLS material read from clusters' Secrets (kept owner-only).
        #[arg(long, env = "TLS_DIR", default_value = "/tmp/binlog-operator-tls")]
        tls_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match binlog_operator::crdgen::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: cannot render the CRD: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            namespaces,
            metrics_addr,
            tls_dir,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .init();
            let namespaces = namespaces
                .into_iter()
                .map(|ns| ns.trim().to_string())
                .filter(|ns| !ns.is_empty())
                .collect();
            let config = RunConfig {
                namespaces,
                metrics_addr,
                tls_dir,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
