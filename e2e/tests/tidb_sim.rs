//! The upstream simulator (`tidb-sim`) against real etcd, pd-sim, two real pumps and MariaDB.
//!
//! What a drainer relies on is checked the way a drainer would use it: every pump's binlogs are
//! pulled and merged by commit ts; each DDL binlog's job is fetched by id from the served
//! `/ddl/history`; each DML mutation is decoded with the codec against the table schema of its
//! `schema_version` and replayed; the replayed tables must equal the truth row by row. Then
//! `serve` must answer the same history and register/deregister in etcd, and `check` must tell a
//! copy of the truth equal and a changed copy different.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use binlog_cluster::control::http_request;
use binlog_cluster::{NodeKind, NodeState, TlsSettings};
use binlog_proto::binlog::{Binlog, BinlogType, MutationType, PrewriteValue};
use e2e::tidb::sim::catalog::action;
use e2e::tidb::sim::truth::{RowRef, Truth};
use e2e::tidb::sim::values::same_value;
use e2e::tidb::sim::workload::Summary;
use e2e::tidb_sim::{TidbSimServer, check_databases, run_workload};
use e2e::{MariaDb, PumpProcess, World};
use etcd_client::GetOptions;
use prost::Message;
use serde_json::Value;
use tidb_codec::mutation::{DecodedRow, decode_delete, decode_insert, decode_update};
use tidb_codec::schema::DdlJob;
use tidb_codec::value::missing_column_value;
use tidb_codec::{ColumnValue, TableInfo};

const RUN_TIMEOUT: Duration = Duration::from_secs(240);

async fn start_online_pump(world: &World, id: &str) -> PumpProcess {
    let pump = world.start_pump(id, &[]).unwrap();
    assert!(
        world
            .wait_state(NodeKind::Pump, id, NodeState::Online)
            .await,
        "{id} registers online:\n{}",
        pump.log_tail()
    );
    pump
}

/// Runs `tidb-sim run` off the async runtime.
async fn run_sim(world: &World, truth: &MariaDb, name: &str, extra: &[&str]) -> Summary {
    let pd = world.pd_sim.url();
    let url = truth.url();
    let log = world.dir.path().join(format!("{name}.log"));
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        run_workload(&pd, &url, &extra, &log, RUN_TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let (status, body) = http_request(&TlsSettings::default(), "GET", url)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get_json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Every real commit binlog of every pump, merged by commit ts.
async fn pull_all(world: &World, pumps: &[&PumpProcess]) -> Vec<Binlog> {
    let until = world.pd.get_ts().await.unwrap();
    let mut all = Vec::new();
    for pump in pumps {
        let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
        let pulled = client
            .pull_until(0, until, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            pulled.last().is_some_and(|p| p.commit_ts >= until),
            "pump {} served up to {until}",
            pump.node_id
        );
        all.extend(
            pulled
                .into_iter()
                .filter(|p| p.start_ts != p.commit_ts)
                .map(|p| p.binlog),
        );
    }
    all.sort_by_key(|b| b.commit_ts);
    all
}

/// Row values by column id.
type Row = BTreeMap<i64, ColumnValue>;

/// A drainer-like replay of the binlog stream: schemas from the served history, rows decoded
/// with the codec.
#[derive(Default)]
struct Replay {
    tables: HashMap<i64, TableInfo>,
    table_db: HashMap<i64, String>,
    version: i64,
    rows: HashMap<i64, BTreeMap<String, Row>>,
}

fn row_key(info: &TableInfo, row: &DecodedRow) -> String {
    let values: Vec<(i64, ColumnValue)> = row.values.clone().into_iter().collect();
    format!("{:?}", RowRef::of(info, &values, row.row_id).unwrap())
}

fn assert_same_row(context: &str, have: &Row, got: &Row) {
    let ids: BTreeSet<&i64> = have.keys().chain(got.keys()).collect();
    for id in ids {
        let (a, b) = (have.get(id), got.get(id));
        assert!(
            matches!((a, b), (Some(a), Some(b)) if same_value(a, b)),
            "{context}: column {id}: replayed {a:?}, binlog/truth {b:?}\n  replayed: {have:?}\n  other: {got:?}"
        );
    }
}

impl Replay {
    fn apply_job(&mut self, job: &DdlJob) {
        let info = job.history().and_then(|h| h.table_info()).cloned();
        let db = job.schema_name.clone().unwrap_or_default();
        match job.job_type {
            action::CREATE_SCHEMA => {}
            action::CREATE_TABLE => {
                let info = info.unwrap();
                self.rows.insert(info.id, BTreeMap::new());
                self.table_db.insert(info.id, db);
                self.tables.insert(info.id, info);
            }
            action::DROP_TABLE => {
                self.tables.remove(&job.table_id);
                self.rows.remove(&job.table_id);
            }
            action::TRUNCATE_TABLE => {
                let info = info.unwrap();
                self.tables.remove(&job.table_id);
                self.rows.remove(&job.table_id);
                self.rows.insert(info.id, BTreeMap::new());
                self.table_db.insert(info.id, db);
                self.tables.insert(info.id, info);
            }
            action::RENAME_TABLE => {
                self.table_db.insert(job.table_id, db);
                self.tables.insert(job.table_id, info.unwrap());
            }
            _ => {
                let new = info.unwrap();
                let old = self.tables.insert(new.id, new.clone()).unwrap();
                let rows = self.rows.get_mut(&new.id).unwrap();
                for row in rows.values_mut() {
                    // Rewritten columns (new id, same name) keep their values.
                    for col in &new.cols {
                        if let Some(before) = old.column_by_name(&col.name.l)
                            && before.id != col.id
                            && let Some(v) = row.remove(&before.id)
                        {
                            row.insert(col.id, v);
                        }
                    }
                    row.retain(|id, _| new.column_by_id(*id).is_some());
                    for col in &new.cols {
                        row.entry(col.id)
                            .or_insert_with(|| missing_column_value(col).unwrap());
                    }
                }
            }
        }
        self.version = job.schema_version();
    }

    fn apply_dml(&mut self, commit_ts: i64, value: &PrewriteValue) {
        assert_eq!(
            value.schema_version, self.version,
            "DML at {commit_ts} carries the schema version of the last DDL before it"
        );
        for m in &value.mutations {
            let info = self
                .tables
                .get(&m.table_id)
                .unwrap_or_else(|| panic!("DML at {commit_ts} on unknown table {}", m.table_id))
                .clone();
            let rows = self.rows.get_mut(&m.table_id).unwrap();
            let (mut ins, mut upd, mut del) = (
                m.inserted_rows.iter(),
                m.updated_rows.iter(),
                m.deleted_rows.iter(),
            );
            for tp in &m.sequence {
                let context = format!("{} at {commit_ts}", info.name.o);
                match MutationType::try_from(*tp).unwrap() {
                    MutationType::Insert => {
                        let row = decode_insert(&info, ins.next().unwrap()).unwrap();
                        assert_eq!(
                            row.values.len(),
                            info.cols.len(),
                            "{context}: every column decodes"
                        );
                        let key = row_key(&info, &row);
                        assert!(
                            rows.insert(key.clone(), row.values.into_iter().collect())
                                .is_none(),
                            "{context}: insert of an existing row {key}"
                        );
                    }
                    MutationType::Update => {
                        let (old, new) = decode_update(&info, upd.next().unwrap()).unwrap();
                        let key = row_key(&info, &old);
                        assert_eq!(key, row_key(&info, &new), "{context}: handle kept");
                        let have = rows
                            .get(&key)
                            .unwrap_or_else(|| panic!("{context}: update of a missing row {key}"));
                        assert_same_row(&context, have, &old.values.into_iter().collect());
                        rows.insert(key, new.values.into_iter().collect());
                    }
                    MutationType::DeleteRow => {
                        let old = decode_delete(&info, del.next().unwrap()).unwrap();
                        let key = row_key(&info, &old);
                        let have = rows
                            .remove(&key)
                            .unwrap_or_else(|| panic!("{context}: delete of a missing row {key}"));
                        assert_same_row(&context, &have, &old.values.into_iter().collect());
                    }
                    other => panic!("{context}: unexpected mutation type {other:?}"),
                }
            }
            assert!(ins.next().is_none() && upd.next().is_none() && del.next().is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_then_serve_and_check_against_the_binlog_stream() {
    let world = World::start().await.unwrap();
    let pump_a = start_online_pump(&world, "pump-a").await;
    let pump_b = start_online_pump(&world, "pump-b").await;
    let truth = MariaDb::start().unwrap();

    let summary = run_sim(
        &world,
        &truth,
        "run",
        &[
            "--txns=300",
            "--concurrency=4",
            "--seed=42",
            "--strategy=hash",
        ],
    )
    .await;
    eprintln!("tidb-sim run: {summary:?}");
    assert!(summary.committed > 150, "{summary:?}");
    assert!(summary.rolled_back > 0, "{summary:?}");
    assert!(summary.ddl > 7, "setup and random DDL: {summary:?}");
    assert_eq!(
        (summary.prewrite_failed, summary.commits_undelivered),
        (0, 0),
        "{summary:?}"
    );

    let mut server =
        TidbSimServer::start(&world.pd_sim.url(), &truth.url(), world.dir.path()).unwrap();
    let base = server.url();

    // Registered like a TiDB server, pointing at the status port.
    let mut kv = world.registry.etcd().kv_client();
    let infos = kv
        .get("/tidb/server/info/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(infos.kvs().len(), 1, "one TiDB server registered");
    let info: Value = serde_json::from_slice(infos.kvs()[0].value()).unwrap();
    assert_eq!(
        format!("{}:{}", info["ip"].as_str().unwrap(), info["status_port"]),
        server.status_addr
    );
    let topology = kv
        .get("/topology/tidb/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let keys: Vec<String> = topology
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            format!("/topology/tidb/127.0.0.1:{}/info", truth.port()),
            format!("/topology/tidb/127.0.0.1:{}/ttl", truth.port())
        ]
    );

    // The served history: every DDL, ascending by id, all synced.
    let history: Vec<DdlJob> =
        serde_json::from_value(get_json(&format!("{base}/ddl/history")).await).unwrap();
    assert_eq!(history.len() as u64, summary.ddl);
    assert!(history.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        history
            .windows(2)
            .all(|w| w[0].schema_version() < w[1].schema_version())
    );
    assert!(history.iter().all(|j| j.state == 6));
    let newest: Vec<DdlJob> =
        serde_json::from_value(get_json(&format!("{base}/ddl/history?limit=2")).await).unwrap();
    assert_eq!(
        newest.iter().map(|j| j.id).collect::<Vec<_>>(),
        [history[history.len() - 1].id, history[history.len() - 2].id]
    );
    let (status, body) = get(&format!("{base}/ddl/history?start_job_id=5")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "when 'start_job_id' is specified, it must work with a 'limit'"
        )
    );

    // The merged binlog stream: one commit per committed transaction and per DDL, in order.
    let binlogs = pull_all(&world, &[&pump_a, &pump_b]).await;
    assert!(
        binlogs.windows(2).all(|w| w[0].commit_ts < w[1].commit_ts),
        "strictly increasing commit ts"
    );
    assert!(binlogs.iter().all(|b| b.tp == BinlogType::Commit as i32));
    let ddl_binlogs: Vec<&Binlog> = binlogs.iter().filter(|b| b.ddl_job_id > 0).collect();
    assert_eq!(ddl_binlogs.len() as u64, summary.ddl);
    assert_eq!(binlogs.len() as u64 - summary.ddl, summary.committed);
    assert_eq!(binlogs.last().unwrap().commit_ts, summary.last_commit_ts);
    let ddl_ids: Vec<i64> = ddl_binlogs.iter().map(|b| b.ddl_job_id).collect();
    assert_eq!(
        ddl_ids,
        history.iter().map(|j| j.id).collect::<Vec<_>>(),
        "DDL binlogs in job order"
    );

    // Replay the stream as a drainer would.
    let mut replay = Replay::default();
    for binlog in &binlogs {
        if binlog.ddl_job_id > 0 {
            let found: Vec<DdlJob> = serde_json::from_value(
                get_json(&format!(
                    "{base}/ddl/history?start_job_id={}&limit=1",
                    binlog.ddl_job_id
                ))
                .await,
            )
            .unwrap();
            assert_eq!(found.len(), 1);
            let job = &found[0];
            assert_eq!(job.id, binlog.ddl_job_id);
            assert_eq!(
                job.query.as_deref().map(str::as_bytes),
                binlog.ddl_query.as_deref()
            );
            assert_eq!(i32::from(job.schema_state), binlog.ddl_schema_state);
            assert_eq!(
                job.history().unwrap().finished_ts,
                Some(binlog.start_ts as u64)
            );
            assert!(binlog.prewrite_value.is_none());
            replay.apply_job(job);
        } else {
            let value = PrewriteValue::decode(binlog.prewrite_value.as_deref().unwrap()).unwrap();
            replay.apply_dml(binlog.commit_ts, &value);
        }
    }
    assert_eq!(replay.version, summary.schema_version);

    // The replayed tables are the truth's, and the served schemas are the replayed ones.
    let truth_db = Truth::connect(&truth.url(), 2).unwrap();
    let mut total_rows = 0;
    for (id, info) in &replay.tables {
        let db = &replay.table_db[id];
        let served = get_json(&format!("{base}/schema/{db}/{}", info.name.o)).await;
        assert_eq!(
            served,
            serde_json::to_value(info).unwrap(),
            "{db}.{}",
            info.name.o
        );
        let by_id = get_json(&format!("{base}/schema?table_id={id}")).await;
        assert_eq!(by_id, served);
        let rows = truth_db.read_table(db, info).await.unwrap();
        let replayed = &replay.rows[id];
        assert_eq!(rows.len(), replayed.len(), "{db}.{} row count", info.name.o);
        for (row_ref, values) in rows {
            let key = format!("{row_ref:?}");
            let have = replayed
                .get(&key)
                .unwrap_or_else(|| panic!("{db}.{}: truth row {key} never replayed", info.name.o));
            let values: Row = values.into_iter().collect();
            assert_same_row(&format!("{db}.{}", info.name.o), have, &values);
            total_rows += 1;
        }
    }
    assert!(
        total_rows > 50,
        "the workload left data behind: {total_rows}"
    );
    let dbs = get_json(&format!("{base}/schema")).await;
    assert_eq!(dbs.as_array().unwrap().len(), 2);

    // check: a copy of the truth is equal; one changed row makes it differ, and is named.
    let copy = MariaDb::start().unwrap();
    let dump = std::process::Command::new("mariadb-dump")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            &format!("-P{}", truth.port()),
            "-uroot",
        ])
        .args(["--databases", "sim_a", "sim_b"])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut load = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            &format!("-P{}", copy.port()),
            "-uroot",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &dump.stdout).unwrap();
    drop(load.stdin.take());
    assert!(load.wait().unwrap().success());
    let (code, out) = check_databases(&truth.url(), &copy.url()).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("equal: "), "{out}");

    let changed = replay
        .tables
        .iter()
        .flat_map(|(id, info)| {
            let db = replay.table_db[id].clone();
            info.cols
                .iter()
                .filter(|c| !c.is_pk() && !c.is_not_null())
                .map(move |c| (db.clone(), info.name.o.clone(), c.name.o.clone()))
        })
        .find(|(db, table, col)| {
            let out = copy
                .query(&format!(
                    "UPDATE `{db}`.`{table}` SET `{col}` = NULL WHERE `{col}` IS NOT NULL LIMIT 1; SELECT ROW_COUNT();"
                ))
                .unwrap();
            out.trim() == "1"
        })
        .expect("some row has a non-null value to change");
    let (code, out) = check_databases(&truth.url(), &copy.url()).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}.{}", changed.0, changed.1)),
        "names the table: {out}"
    );
    assert!(
        out.contains("truth:") && out.contains("downstream:"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}=NULL", changed.2)),
        "shows the changed row: {out}"
    );

    // serve stops on SIGTERM and deregisters.
    let status = server.terminate().unwrap();
    assert!(status.success(), "{}", server.log_tail());
    let infos = kv
        .get("/tidb/server/info/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(infos.kvs().is_empty());
    let topology = kv
        .get("/topology/tidb/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(topology.kvs().is_empty());
}

/// The DDL history with the timestamps taken out (they come from PD and differ between runs).
fn without_timestamps(jobs: &[DdlJob]) -> Vec<Value> {
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for key in [
                    "start_ts",
                    "real_start_ts",
                    "FinishedTS",
                    "update_timestamp",
                ] {
                    m.remove(key);
                }
                m.values_mut().for_each(scrub);
            }
            Value::Array(a) => a.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    jobs.iter()
        .map(|j| {
            let mut v = serde_json::to_value(j).unwrap();
            scrub(&mut v);
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_ddl_and_a_later_run_continues_the_history() {
    let world = World::start().await.unwrap();
    let _pump = start_online_pump(&world, "pump-a").await;
    let truth = MariaDb::start().unwrap();
    let history = || async {
        let t = Truth::connect(&truth.url(), 1).unwrap();
        let jobs = t.load_history(0).await.unwrap();
        t.close().await;
        jobs
    };
    let status_addr = format!("--status-addr=127.0.0.1:{}", e2e::free_port());
    let args = [
        "--txns=150",
        "--concurrency=3",
        "--seed=9",
        "--ddl-percent=10",
    ];

    let first = run_sim(
        &world,
        &truth,
        "first",
        &[&args[..], &[status_addr.as_str()]].concat(),
    )
    .await;
    let first_jobs = history().await;
    assert_eq!(first_jobs.len() as u64, first.ddl);
    // `run --status-addr` registered while it ran and deregistered at the end.
    let mut kv = world.registry.etcd().kv_client();
    for prefix in ["/tidb/server/info/", "/topology/tidb/"] {
        let left = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(left.kvs().is_empty(), "{prefix} deregistered");
    }
    let version = kv
        .get("/tidb/ddl/global_schema_version", None)
        .await
        .unwrap();
    assert_eq!(
        version.kvs()[0].value_str().unwrap(),
        first.schema_version.to_string()
    );

    // The same seed on a fresh truth, at another concurrency: the same DDL, ids and versions.
    truth
        .query("DROP DATABASE sim_a; DROP DATABASE sim_b; DROP DATABASE tidb_sim;")
        .unwrap();
    let again = [
        "--txns=150",
        "--concurrency=1",
        "--seed=9",
        "--ddl-percent=10",
    ];
    let second = run_sim(&world, &truth, "second", &again).await;
    let second_jobs = history().await;
    assert_eq!(second.ddl, first.ddl);
    assert_eq!(
        without_timestamps(&second_jobs),
        without_timestamps(&first_jobs)
    );

    // Another run continues from the stored history: no setup again, ids and versions go on.
    let third = run_sim(
        &world,
        &truth,
        "third",
        &["--txns=60", "--seed=10", "--ddl-percent=20"],
    )
    .await;
    let third_jobs = history().await;
    assert_eq!(third_jobs.len() as u64, second.ddl + third.ddl);
    assert_eq!(
        without_timestamps(&third_jobs[..second_jobs.len()]),
        without_timestamps(&second_jobs)
    );
    let last_before = second_jobs.last().unwrap();
    for job in &third_jobs[second_jobs.len()..] {
        assert!(job.id > last_before.id && job.schema_version() > last_before.schema_version());
        assert_ne!(job.job_type, action::CREATE_SCHEMA, "no second setup");
    }
    assert!(third.committed > 0, "{third:?}");
}
