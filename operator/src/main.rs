//! `binlog-operator`: `crd` prints the BinlogCluster CRD YAML; `run` will run the controller.

use std::process::ExitCode;

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
    /// Run the controller (not implemented yet).
    Run,
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
        Command::Run => {
            eprintln!(
                "error: `binlog-operator run` is not implemented yet (the reconciler comes in a \
                 later change); only `binlog-operator crd` works today"
            );
            ExitCode::from(2)
        }
    }
}
