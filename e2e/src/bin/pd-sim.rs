//! `pd-sim --addr 127.0.0.1:PORT --etcd http://127.0.0.1:ETCDPORT [--cluster-id N]`: the PD
//! stand-in for tests and the demo (see `e2e::pd_sim`).

use anyhow::Context;
use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pd-sim",
    about = "PD stand-in: TSO and GetMembers, everything else forwarded to etcd"
)]
struct Args {
    /// Address to listen on (loopback)
    #[arg(long, default_value = "127.0.0.1:2379")]
    addr: String,
    /// Client URL of the etcd to forward to
    #[arg(long)]
    etcd: String,
    /// Fixed cluster id (default: the one stored in etcd, or a new one)
    #[arg(long = "cluster-id")]
    cluster_id: Option<u64>,
    /// URL advertised as the leader's client URL (default: http://<addr>)
    #[arg(long = "advertise-url")]
    advertise_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let config = e2e::pd_sim::PdSimConfig {
        etcd_url: args.etcd,
        cluster_id: args.cluster_id,
        client_url: args
            .advertise_url
            .unwrap_or_else(|| format!("http://{}", args.addr)),
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    e2e::pd_sim::serve(listener, config, shutdown).await
}
