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
    /// URL advertised as the leader's client URL (default: http(s)://<addr>)
    #[arg(long = "advertise-url")]
    advertise_url: Option<String>,
    /// CA certificate; with --ssl-cert and --ssl-key, serve TLS
    #[arg(long = "ssl-ca")]
    ssl_ca: Option<std::path::PathBuf>,
    /// Server certificate
    #[arg(long = "ssl-cert")]
    ssl_cert: Option<std::path::PathBuf>,
    /// Server key
    #[arg(long = "ssl-key")]
    ssl_key: Option<std::path::PathBuf>,
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
    let tls = args.ssl_ca.is_some().then(|| binlog_cluster::TlsSettings {
        ssl_ca: args.ssl_ca.clone(),
        ssl_cert: args.ssl_cert.clone(),
        ssl_key: args.ssl_key.clone(),
        cert_allowed_cn: Vec::new(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = e2e::pd_sim::PdSimConfig {
        etcd_url: args.etcd,
        cluster_id: args.cluster_id,
        client_url: args
            .advertise_url
            .unwrap_or_else(|| format!("{scheme}://{}", args.addr)),
        tls,
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
