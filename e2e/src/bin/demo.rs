//! The local demo: starts a real etcd, the PD stand-in and two real pumps, writes transactions
//! through them the way TiDB does, pulls them back the way a drainer does, and drives binlogctl
//! (list, pause, offline, generate_meta, encrypt), printing each command and its output.
//!
//! Run it through `scripts/demo`, which installs what it needs and builds the binaries first.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use binlog_cluster::{PdClient, TlsSettings};
use e2e::{Etcd, PdSimProcess, PumpProcess, bin_path};

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

/// Writes `count` transactions (prewrite, then commit) through `pump`; returns the last commit ts.
async fn write_transactions(
    pd: &PdClient,
    pump: &PumpProcess,
    count: usize,
) -> anyhow::Result<i64> {
    let mut client = pump.client(pd.cluster_id()).await?;
    let mut last = 0;
    for i in 0..count {
        let start = pd.get_ts().await?;
        client
            .prewrite(start, format!("row {i}").as_bytes())
            .await?;
        last = pd.get_ts().await?;
        client.commit(start, last).await?;
    }
    Ok(last)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("binlog-demo").tempdir()?;
    println!(
        "== starting etcd and pd-sim (the PD stand-in) in {}",
        dir.path().display()
    );
    let etcd = Etcd::start()?;
    let pd_sim = PdSimProcess::start(etcd.url(), &dir.path().join("pd-sim.log"))?;
    let pd_url = pd_sim.url();
    let pd = PdClient::connect(std::slice::from_ref(&pd_url), &TlsSettings::default()).await?;
    println!(
        "etcd: {}  PD: {pd_url}  cluster id: {}",
        etcd.url(),
        pd.cluster_id()
    );

    println!("\n== starting two pumps");
    let mut pump0 = PumpProcess::start(&pd_url, dir.path(), "pump-0", &[])?;
    let mut pump1 = PumpProcess::start(&pd_url, dir.path(), "pump-1", &[])?;
    println!("pump-0 on {}, pump-1 on {}", pump0.addr, pump1.addr);

    println!(
        "\n== writing 200 transactions through each pump, as TiDB does (prewrite, then commit)"
    );
    let last0 = write_transactions(&pd, &pump0, 200).await?;
    write_transactions(&pd, &pump1, 200).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    binlogctl(&pd_url, &["-cmd", "pumps"])?;

    println!("\n== pulling pump-0's binlogs back, as a drainer does");
    let mut client = pump0.client(pd.cluster_id()).await?;
    let pulled = client.pull_until(0, last0, Duration::from_secs(5)).await?;
    let commits = pulled.iter().filter(|p| p.start_ts != p.commit_ts).count();
    let ordered = pulled.windows(2).all(|w| w[0].commit_ts < w[1].commit_ts);
    println!(
        "pulled {commits} commits and {} fake binlogs; strictly ordered by commit ts: {ordered}",
        pulled.len() - commits
    );

    binlogctl(&pd_url, &["-cmd", "pause-pump", "-node-id", "pump-1"])?;
    pump1
        .wait_exit(Duration::from_secs(30))
        .context("pump-1 did not stop after pause")?;
    binlogctl(&pd_url, &["-cmd", "offline-pump", "-node-id", "pump-0"])?;
    pump0
        .wait_exit(Duration::from_secs(30))
        .context("pump-0 did not go offline")?;
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
