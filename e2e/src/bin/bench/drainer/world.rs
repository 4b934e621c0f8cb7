//! The world the drainer benchmarks share: etcd and pd-sim, two release pumps, the simulator's
//! truth MariaDB (only its schema and DDL history: the setup DDL of a fresh `tidb-sim run`),
//! its TiDB status API, the downstream MariaDB, a Kafka-protocol broker when the drainer writes
//! to Kafka, and at most one release drainer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use binlog_cluster::{NodeKind, NodeState, TlsSettings};
use e2e::tidb::sim::catalog::Catalog;
use e2e::tidb::sim::serve::{ServeConfig, serve};
use e2e::tidb::sim::truth::Truth;
use e2e::tidb::sim::workload::{self, WorkloadConfig};
use e2e::tidb::{ClientConfig, TidbPumpClient};
use e2e::{Downstream, DrainerProcess, KafkaBroker, MariaDb, PumpProcess, free_port};
use mysql_async::prelude::Queryable;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::data::{BenchTable, TxnWriter};

/// The drainer's node id.
const DRAINER_ID: &str = "bench-drainer";
/// The topic a drainer with the Kafka sink writes.
pub(super) const KAFKA_TOPIC: &str = "bench_obinlog";
/// How long a drainer may take to catch up before the benchmark gives up.
pub(super) const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// How the drainer is configured (`[syncer]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainerSettings {
    pub(crate) worker_count: usize,
    pub(crate) txn_batch: usize,
    /// `disable-dispatch = true`: each upstream transaction one downstream transaction.
    pub(crate) disable_dispatch: bool,
    /// The Kafka sink (to a broker the world starts) instead of MariaDB.
    pub(crate) kafka: bool,
}

/// Fields drop in order: the drainer first, the directory (inside `world`) last.
pub(super) struct DrainerWorld {
    pub(super) drainer: Option<DrainerProcess>,
    settings: DrainerSettings,
    status_api: (oneshot::Sender<()>, JoinHandle<()>),
    pub(super) writer: TxnWriter,
    /// Where drainers start without a checkpoint: before the setup DDL, so that they create the
    /// tables downstream.
    initial_commit_ts: i64,
    pub(super) downstream: MariaDb,
    kafka: Option<KafkaBroker>,
    pub(super) truth: MariaDb,
    _pumps: Vec<PumpProcess>,
    pub(super) world: e2e::World,
}

impl DrainerWorld {
    /// Starts everything but the drainer and runs the simulator's setup DDL (through the pumps).
    pub(super) async fn start(settings: DrainerSettings) -> anyhow::Result<DrainerWorld> {
        let world = e2e::World::start().await?;
        // The pumps' default reserve of 10 GiB free disk would refuse the backlogs on the
        // shared machines' often nearly full disks.
        let pump_config = world.dir.path().join("pump.toml");
        std::fs::write(
            &pump_config,
            "[storage]\nstop-write-at-available-space = \"1 gib\"\n",
        )?;
        let config_flag = format!("-config={}", pump_config.display());
        let mut pumps = Vec::new();
        for id in ["pump-0", "pump-1"] {
            pumps.push(world.start_pump(id, &[&config_flag])?);
            anyhow::ensure!(
                world
                    .wait_state(NodeKind::Pump, id, NodeState::Online)
                    .await,
                "{id} did not come online"
            );
        }
        let truth = MariaDb::start()?;
        let downstream = MariaDb::start()?;
        let kafka = if settings.kafka {
            Some(KafkaBroker::start()?)
        } else {
            None
        };
        let initial_commit_ts = world.pd.get_ts().await.context("PD ts")?;
        let pd_urls = vec![world.pd_sim.url()];
        let setup = WorkloadConfig::new(pd_urls.clone(), truth.url(), 0, 1, 1);
        workload::run(setup)
            .await
            .context("the simulator's setup DDL")?;

        let (stop, stopped) = oneshot::channel::<()>();
        let config = ServeConfig {
            pd_urls: pd_urls.clone(),
            truth_url: truth.url(),
            status_addr: format!("127.0.0.1:{}", free_port()).parse()?,
            tls: TlsSettings::default(),
        };
        let status_task = tokio::spawn(async move {
            if let Err(err) = serve(config, async {
                let _ = stopped.await;
            })
            .await
            {
                eprintln!("the simulated TiDB status API stopped: {err}");
            }
        });

        let history = Truth::connect(&truth.url(), 1)?;
        let jobs = history.load_history(0).await?;
        history.close().await;
        let catalog = Catalog::from_jobs(&jobs)?;
        let client =
            TidbPumpClient::connect(&pd_urls, &TlsSettings::default(), ClientConfig::default())
                .await?;
        let writer = TxnWriter {
            client,
            tables: Arc::new(BenchTable::all(&catalog)?),
            schema_version: catalog.schema_version(),
        };
        Ok(DrainerWorld {
            drainer: None,
            settings,
            status_api: (stop, status_task),
            writer,
            initial_commit_ts,
            downstream,
            kafka,
            truth,
            _pumps: pumps,
            world,
        })
    }

    /// Stops the drainer, then the status API (deregistering it while etcd still runs); the
    /// rest stops when dropped.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_drainer()?;
        let (stop, task) = self.status_api;
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        Ok(())
    }

    pub(super) fn settings(&self) -> DrainerSettings {
        self.settings
    }

    /// Starts the drainer, or starts it again from its checkpoint after [`Self::stop_drainer`]
    /// (a fresh process, so its `VmHWM` starts afresh).
    pub(super) fn start_drainer(&mut self) -> anyhow::Result<u32> {
        match &mut self.drainer {
            Some(drainer) => drainer.restart()?,
            None => {
                let syncer = format!(
                    "worker-count = {}\ntxn-batch = {}\ndisable-dispatch = {}",
                    self.settings.worker_count,
                    self.settings.txn_batch,
                    self.settings.disable_dispatch
                );
                let downstream = match &self.kafka {
                    Some(broker) => Downstream::Kafka {
                        addr: broker.addr().to_string(),
                        topic: KAFKA_TOPIC.to_string(),
                    },
                    None => Downstream::Mysql {
                        port: self.downstream.port(),
                    },
                };
                let drainer = self.world.start_drainer(
                    DRAINER_ID,
                    &downstream,
                    &syncer,
                    &[&format!("-initial-commit-ts={}", self.initial_commit_ts)],
                )?;
                self.drainer = Some(drainer);
            }
        }
        self.drainer_pid()
    }

    /// Stops the drainer with SIGTERM: it applies what it has, saves its checkpoint and exits.
    pub(super) fn stop_drainer(&mut self) -> anyhow::Result<()> {
        if let Some(drainer) = &mut self.drainer
            && drainer.pid() != 0
        {
            anyhow::ensure!(
                drainer.terminate().is_some(),
                "the drainer did not stop on SIGTERM within 30 s:\n{}",
                drainer.log_tail()
            );
        }
        Ok(())
    }

    pub(super) fn drainer_pid(&self) -> anyhow::Result<u32> {
        self.drainer
            .as_ref()
            .map(DrainerProcess::pid)
            .filter(|pid| *pid != 0)
            .context("the drainer is not running")
    }

    /// The drainer's saved checkpoint (`GET /commit_ts`), if it answers.
    pub(super) async fn checkpoint_ts(&self) -> Option<i64> {
        let drainer = self.drainer.as_ref()?;
        let url = format!("{}/commit_ts", drainer.http_url());
        let (code, body) =
            binlog_cluster::control::http_request(&TlsSettings::default(), "GET", &url)
                .await
                .ok()?;
        if code != 200 {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
        value["data"]["ts"].as_i64()
    }

    /// Waits until the drainer's checkpoint reached `ts`, calling `sample` every `every`.
    pub(super) async fn wait_checkpoint(
        &self,
        ts: i64,
        every: Duration,
        mut sample: impl FnMut(Option<i64>),
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let checkpoint = self.checkpoint_ts().await;
            sample(checkpoint);
            if checkpoint.is_some_and(|c| c >= ts) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > CATCH_UP_LIMIT {
                let log = self
                    .drainer
                    .as_ref()
                    .map(DrainerProcess::log_tail)
                    .unwrap_or_default();
                return Err(anyhow!(
                    "the drainer's checkpoint stayed at {checkpoint:?}, below {ts}, for {} s:\n{log}",
                    CATCH_UP_LIMIT.as_secs()
                ));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The broker's `127.0.0.1:PORT`, in a world with one.
    pub(super) fn kafka_addr(&self) -> Option<String> {
        self.kafka.as_ref().map(|broker| broker.addr().to_string())
    }

    /// The broker's process id, in a world with one.
    pub(super) fn kafka_pid(&self) -> Option<u32> {
        self.kafka.as_ref().map(KafkaBroker::pid)
    }

    /// A connection to the downstream.
    pub(super) async fn downstream_conn(&self) -> anyhow::Result<mysql_async::Conn> {
        let opts = mysql_async::Opts::from_url(&self.downstream.url())?;
        mysql_async::Conn::new(opts)
            .await
            .context("connecting to the downstream MariaDB")
    }

    /// The downstream server's process id (from its pid file).
    pub(super) fn downstream_pid(&self) -> Option<u32> {
        let pid_file = self.downstream.data_dir().parent()?.join("mysqld.pid");
        std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    }
}

/// Runs a query that returns one number.
pub(super) async fn query_u64(conn: &mut mysql_async::Conn, sql: &str) -> anyhow::Result<u64> {
    conn.query_first::<u64, _>(sql)
        .await
        .with_context(|| format!("running {sql}"))?
        .with_context(|| format!("no result from {sql}"))
}
