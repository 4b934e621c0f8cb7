//! `tidb-sim`, the upstream simulator: behaves like a TiDB server with binlog enabled (see
//! `e2e::tidb::sim`).
//!
//! ```text
//! tidb-sim run   --pd-urls URL --truth mysql://root@127.0.0.1:PORT/ [--txns N] [--concurrency C]
//!                [--seed S] [--status-addr HOST:PORT] [--strategy range|hash]
//!                [--ddl-percent P] [--rollback-percent P]
//! tidb-sim serve --pd-urls URL --truth mysql://… --status-addr HOST:PORT
//! tidb-sim check --truth mysql://… --downstream mysql://…
//! ```
//!
//! `run` prints one line `tidb-sim summary: {json}` on stdout when it is done and exits 0; any
//! failure exits non-zero with the error. `serve` runs until SIGTERM/SIGINT, then deregisters and
//! exits 0. `check` exits 0 when truth and downstream are equal, 1 with the first difference when
//! they are not, 2 when it could not compare.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use e2e::tidb::Strategy;
use e2e::tidb::sim::check::{CheckOutcome, compare};
use e2e::tidb::sim::serve::{ServeConfig, serve};
use e2e::tidb::sim::workload::{self, WorkloadConfig};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "tidb-sim",
    about = "Upstream simulator: a TiDB server with binlog enabled"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a seeded workload of DDL and transactions, writing binlogs to the pumps and the
    /// changes to the truth database
    Run {
        /// PD client URLs, comma separated
        #[arg(long = "pd-urls", value_delimiter = ',', required = true)]
        pd_urls: Vec<String>,
        /// The truth MariaDB (mysql://user@host:port/)
        #[arg(long)]
        truth: String,
        /// Workload steps (transactions and DDL) after the setup of a fresh truth
        #[arg(long, default_value_t = 500)]
        txns: u64,
        /// Concurrent transactions
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seed of every workload decision
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also serve TiDB's status API here (and register in etcd) while running
        #[arg(long = "status-addr")]
        status_addr: Option<SocketAddr>,
        /// Pump selection: range or hash
        #[arg(long, default_value = "range")]
        strategy: String,
        /// Percentage of steps that are DDL
        #[arg(long = "ddl-percent", default_value_t = 5)]
        ddl_percent: u32,
        /// Percentage of transactions rolled back after their prewrite binlog
        #[arg(long = "rollback-percent", default_value_t = 3)]
        rollback_percent: u32,
    },
    /// Serve TiDB's status API from the truth's DDL history, registered in etcd, until
    /// SIGTERM/SIGINT
    Serve {
        /// PD client URLs, comma separated
        #[arg(long = "pd-urls", value_delimiter = ',', required = true)]
        pd_urls: Vec<String>,
        /// The truth MariaDB (mysql://user@host:port/)
        #[arg(long)]
        truth: String,
        /// Where the status API listens
        #[arg(long = "status-addr")]
        status_addr: SocketAddr,
    },
    /// Compare every user database of the truth with a downstream
    Check {
        /// The truth MariaDB
        #[arg(long)]
        truth: String,
        /// The downstream MariaDB/MySQL
        #[arg(long)]
        downstream: String,
    },
}

fn strategy(name: &str) -> anyhow::Result<Strategy> {
    match name {
        "range" | "hash" => Ok(Strategy::from_name(name)),
        other => anyhow::bail!("unknown strategy {other:?}: expected range or hash"),
    }
}

async fn shutdown_signal() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "no SIGTERM handler; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            pd_urls,
            truth,
            txns,
            concurrency,
            seed,
            status_addr,
            strategy: name,
            ddl_percent,
            rollback_percent,
        } => {
            let mut config = WorkloadConfig::new(pd_urls, truth, txns, concurrency, seed);
            config.strategy = strategy(&name)?;
            config.status_addr = status_addr;
            config.ddl_percent = ddl_percent;
            config.rollback_percent = rollback_percent;
            let summary = workload::run(config).await.context("tidb-sim run failed")?;
            if summary.prewrite_failed > 0 || summary.commits_undelivered > 0 {
                tracing::warn!(
                    prewrite_failed = summary.prewrite_failed,
                    commits_undelivered = summary.commits_undelivered,
                    "some binlogs did not reach a pump"
                );
            }
            println!("tidb-sim summary: {}", serde_json::to_string(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            pd_urls,
            truth,
            status_addr,
        } => {
            let config = ServeConfig {
                pd_urls,
                truth_url: truth,
                status_addr,
                tls: Default::default(),
            };
            serve(config, shutdown_signal())
                .await
                .context("tidb-sim serve failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { truth, downstream } => match compare(&truth, &downstream).await {
            Ok(CheckOutcome::Equal { tables, rows }) => {
                println!("equal: {tables} tables, {rows} rows");
                Ok(ExitCode::SUCCESS)
            }
            Ok(CheckOutcome::Differs(difference)) => {
                println!("DIFFERENT\n{difference}");
                Ok(ExitCode::from(1))
            }
            Err(err) => {
                eprintln!("tidb-sim check could not compare: {err}");
                Ok(ExitCode::from(2))
            }
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
