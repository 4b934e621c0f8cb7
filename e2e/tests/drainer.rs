//! The drainer end to end: real etcd, pd-sim, two real pumps, the upstream simulator (TiDB's
//! binlog writes, DDL history and status API, a truth MariaDB) and a real drainer applying to a
//! second MariaDB (or writing to a real Kafka-protocol broker, whose topic a consumer replays
//! into it). Every case ends with the downstream equal to the truth, table by table.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::time::Duration;

use binlog_cluster::{NodeKind, NodeState, TlsSettings};
use e2e::tidb::sim::serve::{ServeConfig, serve};
use e2e::tidb::sim::workload::{self, Summary, WorkloadConfig};
use e2e::{Downstream, DrainerProcess, KafkaBroker, MariaDb, PumpProcess, World, free_port};
use tokio::sync::oneshot;

/// The whole pipeline but the drainer.
struct Pipeline {
    world: World,
    pumps: Vec<PumpProcess>,
    truth: MariaDb,
    downstream: MariaDb,
    _status_api: oneshot::Sender<()>,
}

impl Pipeline {
    async fn start() -> Pipeline {
        let world = World::start().await.unwrap();
        let mut pumps = Vec::new();
        for id in ["pump-0", "pump-1"] {
            pumps.push(world.start_pump(id, &[]).unwrap());
            assert!(
                world
                    .wait_state(NodeKind::Pump, id, NodeState::Online)
                    .await
            );
        }
        let truth = MariaDb::start().unwrap();
        let downstream = MariaDb::start().unwrap();
        // A TiDB status API over the truth's DDL history for the whole test.
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ServeConfig {
            pd_urls: vec![world.pd_sim.url()],
            truth_url: truth.url(),
            status_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            tls: TlsSettings::default(),
        };
        tokio::spawn(async move {
            if let Err(err) = serve(config, async {
                let _ = stopped.await;
            })
            .await
            {
                // Ends with the test world (etcd goes away first); a real failure shows as a stalled drainer.
                eprintln!("the simulated TiDB status API stopped: {err}");
            }
        });
        Pipeline {
            world,
            pumps,
            truth,
            downstream,
            _status_api: stop,
        }
    }

    fn drainer(&self, id: &str, syncer_toml: &str, extra: &[&str]) -> DrainerProcess {
        let downstream = Downstream::Mysql {
            port: self.downstream.port(),
        };
        self.world
            .start_drainer(id, &downstream, syncer_toml, extra)
            .unwrap()
    }

    /// A drainer writing to `topic` on `broker`.
    fn kafka_drainer(&self, id: &str, broker: &KafkaBroker, topic: &str) -> DrainerProcess {
        let downstream = Downstream::Kafka {
            addr: broker.addr().to_string(),
            topic: topic.to_string(),
        };
        self.world.start_drainer(id, &downstream, "", &[]).unwrap()
    }

    /// SIGTERMs `drainer` and asserts that it stops by itself (within the 30 s `terminate` waits)
    /// and is recorded `paused`; `stuck_on` says what it was waiting for, for the failure message.
    async fn stop_drainer(
        &self,
        drainer: &mut DrainerProcess,
        stuck_on: &str,
    ) -> std::process::ExitStatus {
        let Some(status) = drainer.terminate() else {
            panic!(
                "the drainer did not stop within 30 s of SIGTERM while {stuck_on}:\n{}",
                drainer.log_tail()
            );
        };
        assert!(
            self.world
                .wait_state(NodeKind::Drainer, &drainer.node_id, NodeState::Paused)
                .await
        );
        status
    }

    /// Replays the topic into the downstream as a consumer that skips resent commit ts would,
    /// then asserts the downstream equals the truth.
    async fn assert_topic_replays_to_truth(&self, broker: &KafkaBroker, topic: &str) {
        let binlogs = e2e::kafka::read_topic(broker.addr(), topic).await.unwrap();
        e2e::kafka::apply_binlogs(&self.downstream.url(), &binlogs)
            .await
            .unwrap();
        assert_downstream_equals_truth(self);
    }

    fn workload(&self, txns: u64, seed: u64) -> WorkloadConfig {
        WorkloadConfig::new(
            vec![self.world.pd_sim.url()],
            self.truth.url(),
            txns,
            4,
            seed,
        )
    }

    /// Runs a seeded workload of `txns` steps and waits until `drainer` has applied all of it.
    async fn replicate(&self, drainer: &DrainerProcess, txns: u64, seed: u64) -> Summary {
        let run = tokio::spawn(workload::run(self.workload(txns, seed)));
        self.finish(drainer, run, Duration::from_secs(120)).await
    }

    /// Waits for a workload started earlier, then until `drainer` has applied all of it.
    async fn finish(
        &self,
        drainer: &DrainerProcess,
        run: tokio::task::JoinHandle<Result<Summary, e2e::tidb::sim::SimError>>,
        limit: Duration,
    ) -> Summary {
        let summary = run.await.unwrap().unwrap();
        assert_ran(&summary);
        self.wait_checkpoint(drainer, summary.last_commit_ts, limit)
            .await;
        summary
    }

    /// Waits until the drainer's checkpoint reached `ts` (at most `limit`).
    async fn wait_checkpoint(&self, drainer: &DrainerProcess, ts: i64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = 0;
        while tokio::time::Instant::now() < deadline {
            last = checkpoint_ts(drainer).await.unwrap_or(last);
            if last >= ts {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "the drainer's checkpoint stayed at {last}, below {ts}; status: {}\nlog:\n{}",
            status(drainer).await,
            drainer.log_tail()
        );
    }
}

async fn get(url: &str) -> Option<String> {
    let (code, body) = binlog_cluster::control::http_request(&TlsSettings::default(), "GET", url)
        .await
        .ok()?;
    (code == 200).then(|| String::from_utf8_lossy(&body).into_owned())
}

async fn status(drainer: &DrainerProcess) -> String {
    get(&format!("{}/status", drainer.http_url()))
        .await
        .unwrap_or_default()
}

/// The drainer's `/status` once it contains `needle` (polled every 250 ms for up to 20 s), or the
/// last one read.
async fn status_once_it_says(drainer: &DrainerProcess, needle: &str) -> String {
    let mut body = String::new();
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        body = status(drainer).await;
        if body.contains(needle) {
            break;
        }
    }
    body
}

async fn checkpoint_ts(drainer: &DrainerProcess) -> Option<i64> {
    let body = get(&format!("{}/commit_ts", drainer.http_url())).await?;
    let value: serde_json::Value = serde_json::from_str(&body).ok()?;
    value["data"]["ts"].as_i64()
}

/// Replicated tables: every base table outside the system and bookkeeping databases.
fn user_tables(db: &MariaDb) -> Vec<String> {
    let listing = db
        .query(
            "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN \
             ('mysql', 'information_schema', 'performance_schema', 'sys', 'tidb_sim', 'tidb_binlog') \
             ORDER BY 1",
        )
        .unwrap();
    listing.lines().map(str::to_string).collect()
}

/// Every row of `table`, ordered by all its visible columns (the simulator's truth keeps TiDB's
/// hidden row id as an invisible column), as the client prints them.
fn rows(db: &MariaDb, table: &str) -> String {
    let (schema, name) = table.split_once('.').unwrap();
    let columns = db
        .query(&format!(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = '{name}' AND extra NOT LIKE '%INVISIBLE%'"
        ))
        .unwrap();
    let count: usize = columns.trim().parse().unwrap();
    let order: Vec<String> = (1..=count).map(|i| i.to_string()).collect();
    db.query(&format!(
        "SELECT * FROM `{schema}`.`{name}` ORDER BY {}",
        order.join(",")
    ))
    .unwrap()
}

/// Asserts the downstream holds exactly the truth's tables and rows.
fn assert_downstream_equals_truth(pipeline: &Pipeline) {
    let tables = user_tables(&pipeline.truth);
    assert!(!tables.is_empty(), "the workload created no tables");
    assert_eq!(
        user_tables(&pipeline.downstream),
        tables,
        "the downstream has other tables than the truth"
    );
    for table in &tables {
        let want = rows(&pipeline.truth, table);
        let got = rows(&pipeline.downstream, table);
        if want != got {
            let missing: Vec<&str> = want
                .lines()
                .filter(|l| !got.lines().any(|g| g == *l))
                .collect();
            let extra: Vec<&str> = got
                .lines()
                .filter(|l| !want.lines().any(|w| w == *l))
                .collect();
            panic!(
                "table {table} differs ({} rows upstream, {} downstream)\nonly in truth: {missing:#?}\nonly downstream: {extra:#?}",
                want.lines().count(),
                got.lines().count()
            );
        }
    }
}

fn assert_ran(summary: &Summary) {
    assert!(summary.committed > 0, "{summary:?}");
    assert!(summary.ddl > 0, "{summary:?}");
    assert_eq!(summary.commits_undelivered, 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn downstream_equals_truth_after_a_seeded_run() {
    let pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer("drainer-0", "txn-batch = 10\nworker-count = 4", &[]);
    assert!(
        pipeline
            .world
            .wait_state(NodeKind::Drainer, "drainer-0", NodeState::Online)
            .await
    );
    let summary = pipeline.replicate(&drainer, 300, 7).await;
    assert_downstream_equals_truth(&pipeline);
    let body = status(&drainer).await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        status["LastTS"].as_i64().unwrap() >= summary.last_commit_ts,
        "{body}"
    );
    assert!(status["PumpPos"]["pump-0"].as_i64().is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drainer_killed_at_random_moments_loses_and_doubles_nothing() {
    let pipeline = Pipeline::start().await;
    let mut drainer = pipeline.drainer("drainer-k", "txn-batch = 5\nworker-count = 8", &[]);
    let run = tokio::spawn(workload::run(pipeline.workload(400, 11)));
    for pause_ms in [700u64, 1900, 1300] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        drainer.kill();
        drainer.restart().unwrap();
    }
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_close_leave_the_drainer_paused_then_offline() {
    let pipeline = Pipeline::start().await;
    let world = &pipeline.world;
    let mut drainer = pipeline.drainer("drainer-s", "", &[]);
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-s", NodeState::Online)
            .await
    );
    let paused = binlog_cluster::control::apply_action(
        &TlsSettings::default(),
        &drainer.addr,
        "drainer-s",
        binlog_cluster::Action::Pause,
    )
    .await;
    assert!(paused.is_ok(), "{paused:?}");
    assert!(
        drainer
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-s", NodeState::Paused)
            .await
    );

    drainer.restart().unwrap();
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-s", NodeState::Online)
            .await
    );
    let refused = binlog_cluster::control::apply_action(
        &TlsSettings::default(),
        &drainer.addr,
        "someone-else",
        binlog_cluster::Action::Close,
    )
    .await;
    assert!(
        refused.is_err(),
        "a close for another node id must be refused"
    );
    binlog_cluster::control::apply_action(
        &TlsSettings::default(),
        &drainer.addr,
        "drainer-s",
        binlog_cluster::Action::Close,
    )
    .await
    .unwrap();
    assert!(
        drainer
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-s", NodeState::Offline)
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pump_restarted_mid_run_loses_nothing() {
    let mut pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer("drainer-r", "", &[]);
    let run = tokio::spawn(workload::run(pipeline.workload(300, 13)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A rolling restart: SIGTERM (the pump answers what it accepted, then stops paused), start
    // again. (A SIGKILL can leave a durable prewrite whose acknowledgement was lost; TiDB then
    // commits it through another pump, and only TiKV could tell the first pump it is resolved.)
    assert!(pipeline.pumps[1].terminate().is_some());
    pipeline.pumps[1].restart().unwrap();
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pump_taken_offline_mid_run_goes_offline_only_after_the_drainer_has_its_data() {
    let mut pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer("drainer-o", "", &[]);
    let run = tokio::spawn(workload::run(pipeline.workload(300, 17)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_close = pipeline
        .world
        .registry
        .get(NodeKind::Pump, "pump-1")
        .await
        .unwrap();
    let output = std::process::Command::new(e2e::bin_path("binlogctl"))
        .args([
            &format!("-pd-urls={}", pipeline.world.pd_sim.url()),
            "-cmd=offline-pump",
            "-node-id=pump-1",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exit = pipeline.pumps[1].wait_exit(Duration::from_secs(90));
    assert!(
        exit.is_some_and(|s| s.success()),
        "pump-1 did not close:\n{}",
        pipeline.pumps[1].log_tail()
    );
    let pump = pipeline
        .world
        .registry
        .get(NodeKind::Pump, "pump-1")
        .await
        .unwrap();
    assert_eq!(pump.state, NodeState::Offline);
    // The drainer had consumed everything pump-1 held when it was asked to close.
    let drainer_record = pipeline
        .world
        .registry
        .get(NodeKind::Drainer, "drainer-o")
        .await
        .unwrap();
    assert!(
        drainer_record.max_commit_ts >= before_close.max_commit_ts,
        "{drainer_record:?} vs {before_close:?}"
    );
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disable_dispatch_and_filters_replicate_exactly_the_kept_tables() {
    let pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer(
        "drainer-f",
        "disable-dispatch = true\nreplicate-do-db = [\"sim_a\"]",
        &[],
    );
    pipeline.replicate(&drainer, 250, 19).await;
    let kept: Vec<String> = user_tables(&pipeline.truth)
        .into_iter()
        .filter(|t| t.starts_with("sim_a."))
        .collect();
    assert!(!kept.is_empty());
    assert_eq!(
        user_tables(&pipeline.downstream),
        kept,
        "sim_b must not be replicated"
    );
    for table in &kept {
        assert_eq!(
            rows(&pipeline.truth, table),
            rows(&pipeline.downstream, table),
            "table {table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_file_sink_writes_every_transaction_in_commit_order() {
    use binlog_drainer::binlogfile::BinlogReader;
    use binlog_proto::pb_binlog;
    use prost::Message;

    let pipeline = Pipeline::start().await;
    let drainer = pipeline
        .world
        .start_drainer("drainer-pb", &Downstream::Files, "", &[])
        .unwrap();
    let summary = pipeline.replicate(&drainer, 200, 23).await;
    let (mut dml, mut ddl, mut last) = (0u64, 0u64, 0i64);
    for record in BinlogReader::open(&drainer.data_dir, 0, None).unwrap() {
        let record = record.unwrap();
        let binlog = pb_binlog::Binlog::decode(record.payload.as_slice()).unwrap();
        let ts = binlog.commit_ts.unwrap();
        assert!(
            ts > last,
            "binlog files out of commit order: {ts} after {last}"
        );
        last = ts;
        match binlog.tp() {
            pb_binlog::BinlogType::Dml => {
                dml += 1;
                for event in binlog.dml_data.unwrap().events {
                    assert!(event.schema_name.unwrap().starts_with("sim_"));
                    for column in event.row {
                        pb_binlog::Column::decode(column.as_slice()).unwrap();
                    }
                }
            }
            pb_binlog::BinlogType::Ddl => ddl += 1,
        }
    }
    assert_eq!(dml, summary.committed, "{summary:?}");
    assert_eq!(ddl, summary.ddl, "{summary:?}");
    assert!(last >= summary.last_commit_ts);
}

/// The Kafka sink against a real Kafka-protocol broker: every transaction and DDL is one
/// message on partition 0 in commit order, and a consumer applying the messages to an empty
/// database (as TiDB's reader and the arbiter do) ends with it equal to the truth. The drainer
/// runs in UTC+8 (`TZ=CST-8`): TIMESTAMP values are shown in that zone, as the original showed
/// them in its host's, and each message's `time_zone` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kafka_sink_streams_transactions_a_consumer_can_replay_to_equal_the_truth() {
    let pipeline = Pipeline::start().await;
    let broker = KafkaBroker::start().unwrap();
    let topic = "binlog-e2e";
    let mut drainer = pipeline.kafka_drainer("drainer-kafka", &broker, topic);
    drainer.set_env("TZ", "CST-8");
    drainer.restart().unwrap();
    let summary = pipeline.replicate(&drainer, 300, 29).await;

    let binlogs = e2e::kafka::read_topic(broker.addr(), topic).await.unwrap();
    let mut last = 0;
    for binlog in &binlogs {
        assert!(
            binlog.commit_ts() > last,
            "messages out of commit order: {} after {last}",
            binlog.commit_ts()
        );
        last = binlog.commit_ts();
    }
    let ddl = binlogs.iter().filter(|b| b.ddl_data.is_some()).count() as u64;
    let dml = binlogs.len() as u64 - ddl;
    assert!(
        binlogs
            .iter()
            .filter(|b| b.dml_data.is_some())
            .all(|b| b.time_zone() == "+08:00"),
        "DML messages must say their TIMESTAMPs are in the drainer's zone, UTC+8"
    );
    assert_eq!(dml, summary.committed, "{summary:?}");
    assert_eq!(ddl, summary.ddl, "{summary:?}");

    let resends = e2e::kafka::apply_binlogs(&pipeline.downstream.url(), &binlogs)
        .await
        .unwrap();
    assert_eq!(resends, 0);
    assert_downstream_equals_truth(&pipeline);
}

/// A drainer whose Kafka broker is not up yet starts anyway, comes online and says in `/status`
/// that it cannot reach the broker; once the broker is up, everything reaches the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kafka_sink_waits_for_a_broker_that_is_not_up_yet() {
    let pipeline = Pipeline::start().await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let topic = "binlog-late";
    let downstream = Downstream::Kafka {
        addr: addr.clone(),
        topic: topic.to_string(),
    };
    let drainer = pipeline
        .world
        .start_drainer("drainer-kafka-w", &downstream, "", &[])
        .unwrap();
    assert!(
        pipeline
            .world
            .wait_state(NodeKind::Drainer, "drainer-kafka-w", NodeState::Online)
            .await
    );
    let body = status_once_it_says(&drainer, "cannot reach brokers").await;
    assert!(
        body.contains(&addr) && body.contains(topic),
        "an unreachable broker must show in /status: {body}"
    );
    let broker = KafkaBroker::start_at(port).unwrap();
    pipeline.replicate(&drainer, 150, 37).await;
    pipeline.assert_topic_replays_to_truth(&broker, topic).await;
}

/// A drainer whose Kafka broker never answers still stops on SIGTERM, recorded `paused`: the
/// producer, stuck connecting, is given up on after a while instead of holding the stop forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drainer_whose_kafka_broker_never_answers_stops_on_sigterm() {
    let pipeline = Pipeline::start().await;
    let downstream = Downstream::Kafka {
        addr: format!("127.0.0.1:{}", free_port()),
        topic: "binlog-nowhere".to_string(),
    };
    let mut drainer = pipeline
        .world
        .start_drainer("drainer-kafka-x", &downstream, "", &[])
        .unwrap();
    let world = &pipeline.world;
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-kafka-x", NodeState::Online)
            .await
    );
    status_once_it_says(&drainer, "cannot reach brokers").await;
    let status = pipeline
        .stop_drainer(&mut drainer, "its broker never answered")
        .await;
    assert!(
        status.success(),
        "the drainer did not stop cleanly on SIGTERM ({status}):\n{}",
        drainer.log_tail()
    );
}

/// A DDL the broker never acknowledged does not keep the drainer from stopping, and is not
/// lost by the stop: the checkpoint, kept in a file while the broker is gone, stays right before
/// the DDL (not past it with the DDL in the saved catalog), so the restarted drainer sends it
/// again. The broker goes away while the drainer is idle, so the first binlog of the workload, a
/// `CREATE DATABASE`, is the one caught; a new broker on the same port then gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ddl_the_broker_never_acknowledged_is_sent_again_after_a_stop() {
    let pipeline = Pipeline::start().await;
    let broker = KafkaBroker::start().unwrap();
    let addr = broker.addr().to_string();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let topic = "binlog-ddl-stop";
    let mut drainer = pipeline.kafka_drainer("drainer-kafka-d", &broker, topic);
    let world = &pipeline.world;
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-kafka-d", NodeState::Online)
            .await
    );
    drop(broker);
    let run = tokio::spawn(workload::run(pipeline.workload(150, 47)));
    let body = status_once_it_says(&drainer, "Kafka: ").await;
    assert!(
        body.contains("Kafka: "),
        "the drainer does not say it cannot write to Kafka: {body}"
    );
    pipeline
        .stop_drainer(&mut drainer, "its broker was gone")
        .await;
    let broker = KafkaBroker::start_at(port).unwrap();
    drainer.restart().unwrap();
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;
    pipeline.assert_topic_replays_to_truth(&broker, topic).await;
}

/// The Kafka sink through faults: the broker frozen mid-run (the drainer says so in `/status`
/// and waits), then the drainer SIGKILLed twice. Nothing is lost: a consumer that skips resent
/// commit ts (as TiDB's reader does) still replays the topic to a database equal to the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kafka_sink_loses_nothing_when_the_drainer_is_killed_or_the_broker_hangs() {
    let pipeline = Pipeline::start().await;
    let broker = KafkaBroker::start().unwrap();
    let topic = "binlog-faults";
    let mut drainer = pipeline.kafka_drainer("drainer-kafka-k", &broker, topic);
    let run = tokio::spawn(workload::run(pipeline.workload(400, 31)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    broker.freeze().unwrap();
    let body = status_once_it_says(&drainer, "unacknowledged").await;
    broker.resume().unwrap();
    assert!(
        body.contains("unacknowledged for") && body.contains(topic),
        "a hung broker must show in /status: {body}"
    );
    for pause_ms in [600u64, 900] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        drainer.kill();
        drainer.restart().unwrap();
    }
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;

    pipeline.assert_topic_replays_to_truth(&broker, topic).await;
}

fn binlogctl(world: &World, args: &[&str]) -> std::process::Output {
    std::process::Command::new(e2e::bin_path("binlogctl"))
        .arg(format!("-pd-urls={}", world.pd_sim.url()))
        .args(args)
        .output()
        .unwrap()
}

/// The original suite's `status` case: pause and offline a pump and the drainer through
/// binlogctl, then a stale `online` drainer record keeps a new pump from joining.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_state_scenario_of_the_original_test_suite() {
    let mut pipeline = Pipeline::start().await;
    let world = &pipeline.world;
    let mut drainer = pipeline.drainer("drainer-st", "", &[]);
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-st", NodeState::Online)
            .await
    );

    let paused = binlogctl(world, &["-cmd=pause-pump", "-node-id=pump-0"]);
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-0", NodeState::Paused)
            .await
    );
    pipeline.pumps[0].restart().unwrap();
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-0", NodeState::Online)
            .await
    );
    let offline = binlogctl(world, &["-cmd=offline-pump", "-node-id=pump-0"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-0", NodeState::Offline)
            .await
    );

    let paused = binlogctl(world, &["-cmd=pause-drainer", "-node-id=drainer-st"]);
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-st", NodeState::Paused)
            .await
    );
    drainer.restart().unwrap();
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-st", NodeState::Online)
            .await
    );
    let offline = binlogctl(world, &["-cmd=offline-drainer", "-node-id=drainer-st"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(
        world
            .wait_state(NodeKind::Drainer, "drainer-st", NodeState::Offline)
            .await
    );
    assert!(drainer.wait_exit(Duration::from_secs(30)).is_some());

    // Nobody serves drainer-st any more, but its record claims it is online: a new pump must
    // notify it, fails, and stays offline.
    let forced = binlogctl(
        world,
        &[
            "-cmd=update-drainer",
            "-node-id=drainer-st",
            "-state=online",
        ],
    );
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let mut newcomer = world.start_pump("pump-new", &[]).unwrap();
    let exit = newcomer.wait_exit(Duration::from_secs(60));
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(2),
        "{}",
        newcomer.log_tail()
    );
    let record = world
        .registry
        .get(NodeKind::Pump, "pump-new")
        .await
        .unwrap();
    assert_eq!(record.state, NodeState::Offline);
}

/// `[syncer.to.security]`: the drainer reaches a downstream that accepts TLS connections only,
/// for its rows and for its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_drainer_reaches_a_tls_only_downstream() {
    let mut pipeline = Pipeline::start().await;
    let pki = e2e::pki::Pki::new().unwrap();
    pipeline.downstream = MariaDb::start_tls(e2e::mariadb::ServerTls {
        ca: pki.ca.clone(),
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
    })
    .unwrap();
    let downstream = Downstream::MysqlTls {
        port: pipeline.downstream.port(),
        ca: pki.ca.clone(),
    };
    let drainer = pipeline
        .world
        .start_drainer("drainer-tls", &downstream, "", &[])
        .unwrap();
    pipeline.replicate(&drainer, 120, 29).await;
    assert_downstream_equals_truth(&pipeline);
}

/// `[syncer.binlog-filter-rule]` on `sim_b.*` ignoring every DML event: its tables follow the
/// upstream's DDL but stay empty, while `sim_a` replicates fully.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binlog_filter_rules_drop_the_ignored_events() {
    let pipeline = Pipeline::start().await;
    let rules = "[syncer.binlog-filter-rule.no-rows]\nignore-event = [\"all dml\"]\n\
                 [[syncer.table-migrate-rule]]\nbinlog-filter-rule = [\"no-rows\"]\n\
                 [syncer.table-migrate-rule.source]\nschema = \"sim_b\"\ntable = \"*\"";
    let drainer = pipeline.drainer("drainer-ev", rules, &[]);
    pipeline.replicate(&drainer, 200, 31).await;
    let tables = user_tables(&pipeline.truth);
    assert_eq!(user_tables(&pipeline.downstream), tables);
    for table in &tables {
        let got = rows(&pipeline.downstream, table);
        if table.starts_with("sim_b.") {
            assert_eq!(got, "", "rows of {table} must have been filtered out");
        } else {
            assert_eq!(rows(&pipeline.truth, table), got, "table {table}");
        }
    }
}

/// The downstream dies mid-run and comes back: the drainer waits, says why in `/status`, and
/// then applies everything, with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_downstream_is_waited_for_without_loss() {
    let mut pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer("drainer-dd", "", &[]);
    let run = tokio::spawn(workload::run(pipeline.workload(300, 37)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline.downstream.kill();
    let trouble = status_once_it_says(&drainer, "Trouble").await;
    assert!(
        trouble.contains("Trouble"),
        "the drainer does not report the dead downstream: {trouble}\ndrainer log:\n{}",
        drainer.log_tail()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.downstream.restart().unwrap();
    pipeline
        .finish(&drainer, run, Duration::from_secs(180))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

/// A frozen downstream (SIGSTOP: connections open, nothing answered) does not keep the drainer
/// from stopping: on SIGTERM it gives up on the binlog being handled, on what the loader holds
/// and on the final checkpoint after a few seconds each, well within the 30 s Kubernetes gives a
/// pod, and is recorded `paused`. Twice, at different moments of a workload; once the downstream
/// runs again, the restarted drainer applies everything, with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_downstream_does_not_keep_the_drainer_from_stopping() {
    let pipeline = Pipeline::start().await;
    let mut drainer = pipeline.drainer("drainer-fz", "", &[]);
    let run = tokio::spawn(workload::run(pipeline.workload(400, 43)));
    for pause_ms in [1200u64, 700] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        pipeline.downstream.freeze().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        pipeline
            .stop_drainer(&mut drainer, "its downstream was frozen")
            .await;
        pipeline.downstream.resume().unwrap();
        drainer.restart().unwrap();
    }
    pipeline
        .finish(&drainer, run, Duration::from_secs(180))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

/// A DDL the downstream is slow to run (it waits for a metadata lock another session holds) does
/// not keep the drainer from stopping, and is not lost by the stop although the checkpoint store
/// still answers: the checkpoint and the saved catalog stay right before the DDL (not past it
/// with the DDL in the catalog, which would make the restart skip it as already applied), so
/// the restarted drainer runs it once the lock is gone. The statement the stopped drainer left
/// waiting is killed first, as a server would drop it, so only the restart can have run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ddl_cut_short_by_a_stop_runs_again_after_the_restart() {
    use mysql_async::prelude::Queryable;

    let pipeline = Pipeline::start().await;
    let mut drainer = pipeline.drainer("drainer-ddl", "", &[]);
    pipeline.replicate(&drainer, 40, 51).await;
    // Reading every table inside an open transaction holds their metadata locks: row changes
    // still go through, a DDL on any of them waits.
    let mut holder = mysql_async::Conn::from_url(pipeline.downstream.url())
        .await
        .unwrap();
    holder.query_drop("BEGIN").await.unwrap();
    for table in user_tables(&pipeline.downstream) {
        let (schema, name) = table.split_once('.').unwrap();
        holder
            .query_drop(format!("SELECT 1 FROM `{schema}`.`{name}` LIMIT 1"))
            .await
            .unwrap();
    }
    let run = tokio::spawn(workload::run(pipeline.workload(300, 52)));
    let waiting = "SELECT COUNT(*) FROM information_schema.processlist \
                   WHERE state LIKE '%metadata lock%'";
    let mut blocked = false;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if pipeline.downstream.query(waiting).unwrap().trim() != "0" {
            blocked = true;
            break;
        }
    }
    assert!(
        blocked,
        "no DDL of the workload waited for the held locks:\n{}",
        drainer.log_tail()
    );
    pipeline.stop_drainer(&mut drainer, "a DDL waited").await;
    // The stopped drainer's DDL may still be waiting; the server must not run it after all.
    let stuck = pipeline
        .downstream
        .query("SELECT id FROM information_schema.processlist WHERE state LIKE '%metadata lock%'")
        .unwrap();
    for id in stuck.lines() {
        let _ = pipeline.downstream.query(&format!("KILL QUERY {id}"));
    }
    holder.query_drop("COMMIT").await.unwrap();
    drop(holder);
    drainer.restart().unwrap();
    pipeline
        .finish(&drainer, run, Duration::from_secs(180))
        .await;
    assert_downstream_equals_truth(&pipeline);
    // The DDL caught may have changed only an index, or one a later DDL undid, which the end
    // state does not show: the restarted drainer must have run it rather than skipped it.
    let log = drainer.log_text();
    assert!(
        !log.contains("not executed again"),
        "the restarted drainer skipped a DDL the downstream never ran:\n{log}"
    );
    let indexes = "SELECT CONCAT(table_schema, '.', table_name, '.', index_name) \
                   FROM information_schema.statistics WHERE table_schema LIKE 'sim\\_%' \
                   AND index_name <> '_tidb_rowid' GROUP BY 1 ORDER BY 1";
    assert_eq!(
        pipeline.truth.query(indexes).unwrap(),
        pipeline.downstream.query(indexes).unwrap(),
        "the downstream's indexes differ from the truth's"
    );
}

/// The downstream is down while the drainer saves its progress there (the checkpoint every few
/// seconds, the push limit every 10 s of commit ts): the drainer waits for the downstream, says
/// why in `/status`, and loses nothing, instead of stopping on the failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_downstream_down_while_the_drainer_saves_its_progress_is_waited_for() {
    let mut pipeline = Pipeline::start().await;
    let drainer = pipeline.drainer("drainer-pl", "", &[]);
    let started = tokio::time::Instant::now();
    pipeline.replicate(&drainer, 40, 41).await;
    pipeline.downstream.kill();
    // Past the push limit saved with the first transaction (10 s of commit ts ahead of it).
    tokio::time::sleep_until(started + Duration::from_secs(13)).await;
    let run = tokio::spawn(workload::run(pipeline.workload(40, 42)));
    let trouble = status_once_it_says(&drainer, "failed, retrying").await;
    assert!(
        trouble.contains("failed, retrying"),
        "the drainer does not say it waits to save its progress: {trouble}\ndrainer log:\n{}",
        drainer.log_tail()
    );
    pipeline.downstream.restart().unwrap();
    pipeline
        .finish(&drainer, run, Duration::from_secs(120))
        .await;
    assert_downstream_equals_truth(&pipeline);
}

/// A DDL the downstream refuses stops the drainer with an error naming its commit ts and
/// statement; once the operator fixes the downstream by hand, `ignore-txn-commit-ts` skips it and
/// replication resumes where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_ddl_stops_the_drainer_until_skipped() {
    let pipeline = Pipeline::start().await;
    let down = &pipeline.downstream;
    // `limited` may do anything with sim_b and the checkpoint, but may not create sim_a.
    down.query(
        "CREATE USER 'limited'@'127.0.0.1'; \
         GRANT SELECT ON *.* TO 'limited'@'127.0.0.1'; \
         GRANT ALL ON `tidb_binlog`.* TO 'limited'@'127.0.0.1'; \
         GRANT ALL ON `sim_b`.* TO 'limited'@'127.0.0.1';",
    )
    .unwrap();
    let downstream = Downstream::MysqlAs {
        port: down.port(),
        user: "limited".into(),
    };
    let mut drainer = pipeline
        .world
        .start_drainer("drainer-ddl", &downstream, "", &[])
        .unwrap();
    let summary = workload::run(pipeline.workload(150, 41)).await.unwrap();
    assert_ran(&summary);
    let exit = drainer.wait_exit(Duration::from_secs(60));
    assert!(exit.is_some_and(|s| !s.success()), "the drainer must stop");
    let log = drainer.log_tail();
    let line = log
        .lines()
        .find(|l| l.contains("ignore-txn-commit-ts = ["))
        .unwrap_or_else(|| panic!("no error naming the DDL:\n{log}"));
    assert!(line.contains("CREATE DATABASE"), "{line}");
    let ts: i64 = line
        .rsplit("ignore-txn-commit-ts = [")
        .next()
        .and_then(|rest| rest.split(']').next())
        .and_then(|ts| ts.parse().ok())
        .unwrap();

    // The operator creates the database by hand and tells the drainer to skip that DDL.
    down.query("CREATE DATABASE `sim_a`; GRANT ALL ON `sim_a`.* TO 'limited'@'127.0.0.1';")
        .unwrap();
    drop(drainer);
    let drainer = pipeline
        .world
        .start_drainer(
            "drainer-ddl",
            &downstream,
            &format!("ignore-txn-commit-ts = [{ts}]"),
            &[],
        )
        .unwrap();
    pipeline
        .wait_checkpoint(&drainer, summary.last_commit_ts, Duration::from_secs(120))
        .await;
    assert_downstream_equals_truth(&pipeline);
}
