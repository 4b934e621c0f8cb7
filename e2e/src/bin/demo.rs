//! The local demo: starts a real etcd and the PD stand-in, registers the cluster's nodes the way
//! pumps and drainers do, and drives binlogctl against it, printing each command and its output.
//!
//! Run it through `scripts/demo`, which installs what it needs and builds the binaries first.

use std::process::Command;

use anyhow::Context;
use binlog_cluster::{NodeKind, NodeState, NodeStatus, PdClient, Registry, TlsSettings};
use e2e::{Etcd, PdSimProcess, bin_path};

fn binlogctl(pd_url: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new(bin_path("binlogctl"));
    command.arg(format!("-pd-urls={pd_url}")).args(args);
    println!("\n$ binlogctl -pd-urls={pd_url} {}", args.join(" "));
    let output = command.output().context("running binlogctl")?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(output.status.success(), "binlogctl {args:?} failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("binlog-demo").tempdir()?;
    println!(
        "== starting etcd and pd-sim (the PD stand-in) in {}",
        dir.path().display()
    );
    let etcd = Etcd::start()?;
    let pd = PdSimProcess::start(etcd.url(), &dir.path().join("pd-sim.log"))?;
    let pd_url = pd.url();
    println!("etcd: {}  PD: {pd_url}", etcd.url());

    let tls = TlsSettings::default();
    let pd_client = PdClient::connect(std::slice::from_ref(&pd_url), &tls).await?;
    println!("cluster id: {}", pd_client.cluster_id());

    println!("\n== registering two pumps and a drainer as the real nodes do");
    let registry = Registry::connect(std::slice::from_ref(&pd_url), &tls).await?;
    for (kind, id, port) in [
        (NodeKind::Pump, "pump-0", 8250),
        (NodeKind::Pump, "pump-1", 8251),
        (NodeKind::Drainer, "drainer-0", 8249),
    ] {
        let mut status = NodeStatus::new(id, format!("127.0.0.1:{port}"), NodeState::Online);
        status.max_commit_ts = pd_client.get_ts().await?;
        status.update_ts = status.max_commit_ts;
        registry.upsert(kind, &status).await?;
    }

    binlogctl(&pd_url, &["-cmd", "pumps"])?;
    binlogctl(&pd_url, &["-cmd", "drainers"])?;
    binlogctl(
        &pd_url,
        &[
            "-cmd",
            "update-pump",
            "-node-id",
            "pump-1",
            "-state",
            "offline",
        ],
    )?;
    binlogctl(&pd_url, &["-cmd", "pumps"])?;
    binlogctl(&pd_url, &["-cmd", "pumps", "-show-offline-nodes"])?;
    let meta_dir = dir.path().join("meta");
    binlogctl(
        &pd_url,
        &[
            "-cmd",
            "generate_meta",
            "-data-dir",
            &meta_dir.display().to_string(),
            "-time-zone",
            "UTC",
        ],
    )?;
    println!("\n$ cat {}/savepoint", meta_dir.display());
    println!("{}", std::fs::read_to_string(meta_dir.join("savepoint"))?);
    binlogctl(&pd_url, &["-cmd", "encrypt", "-text", "secret-password"])?;

    println!("\n== done; stopping pd-sim and etcd");
    Ok(())
}
