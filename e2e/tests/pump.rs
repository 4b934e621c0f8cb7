//! The pump as TiDB and drainers see it: real pump processes against real etcd behind pd-sim.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::BTreeMap;
use std::time::Duration;

use binlog_cluster::control::http_request;
use binlog_cluster::{NodeKind, NodeState, NodeStatus, TlsSettings};
use binlog_proto::binlog::BinlogType;
use e2e::{PumpProcess, TestPumpClient, World, wait_until};

async fn world() -> World {
    World::start().await.unwrap()
}

/// Starts a pump in the world.
fn start_pump(world: &World, id: &str, extra: &[&str]) -> PumpProcess {
    world.start_pump(id, extra).unwrap()
}

async fn state_of(world: &World, kind: NodeKind, id: &str) -> NodeState {
    world.registry.get(kind, id).await.unwrap().state
}

async fn http(method: &'static str, url: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_request(&TlsSettings::default(), method, url)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// An HTTP/2 connection with prior knowledge to `addr`, ready for a request.
async fn http2_connect(addr: &str) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    send.ready().await.unwrap()
}

/// A GET over HTTP/2 with prior knowledge: the HTTP API answers on either protocol.
async fn http2_get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let mut send = http2_connect(addr).await;
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (
        head.status.as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Writes `count` transactions from `writers` concurrent clients: prewrite, then commit with a
/// later timestamp (so commits land out of start order), every fifth rolled back. Returns
/// commit ts → (start ts, prewrite value) of the committed ones.
async fn write_load(
    world: &World,
    pump: &PumpProcess,
    writers: usize,
    per_writer: usize,
) -> BTreeMap<i64, (i64, Vec<u8>)> {
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let pd = world.pd.clone();
            let addr = pump.addr.clone();
            tokio::spawn(async move {
                let mut client = TestPumpClient::connect(&addr, pd.cluster_id())
                    .await
                    .unwrap();
                let mut committed = BTreeMap::new();
                for i in 0..per_writer {
                    let start = pd.get_ts().await.unwrap();
                    let value = format!("writer {w} txn {i}").into_bytes();
                    client.prewrite(start, &value).await.unwrap();
                    if i % 5 == 4 {
                        client.rollback(start).await.unwrap();
                        continue;
                    }
                    let commit = pd.get_ts().await.unwrap();
                    client.commit(start, commit).await.unwrap();
                    committed.insert(commit, (start, value));
                }
                committed
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all
}

fn real_commits(pulled: &[e2e::pump::Pulled]) -> BTreeMap<i64, (i64, Vec<u8>)> {
    pulled
        .iter()
        .filter(|p| p.start_ts != p.commit_ts)
        .map(|p| {
            assert_eq!(p.binlog.tp, BinlogType::Commit as i32);
            assert_eq!(p.binlog.start_ts, p.start_ts);
            (
                p.commit_ts,
                (
                    p.start_ts,
                    p.binlog.prewrite_value.clone().unwrap_or_default().to_vec(),
                ),
            )
        })
        .collect()
}

fn assert_strictly_increasing(pulled: &[e2e::pump::Pulled]) {
    assert!(
        pulled.windows(2).all(|w| w[0].commit_ts < w[1].commit_ts),
        "commit ts must strictly increase"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_come_back_in_commit_order_with_prewrite_values_and_survive_restart() {
    let world = world().await;
    let mut pump = start_pump(&world, "pump-a", &[]);
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-a", NodeState::Online)
            .await
    );

    let committed = write_load(&world, &pump, 4, 40).await;
    assert_eq!(committed.len(), 4 * 32);
    let last = *committed.keys().last().unwrap();

    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    let pulled = client
        .pull_until(0, last, Duration::from_secs(5))
        .await
        .unwrap();
    assert_strictly_increasing(&pulled);
    assert_eq!(
        real_commits(&pulled),
        committed,
        "every commit, none of the rollbacks, each with its prewrite"
    );

    // Pulling from the middle is exclusive of the offset.
    let middle = *committed.keys().nth(60).unwrap();
    let rest = client
        .pull_until(middle, last, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(rest.iter().all(|p| p.commit_ts > middle));
    assert_eq!(
        real_commits(&rest).len(),
        committed.range(middle + 1..).count()
    );

    // SIGTERM leaves it paused; a restart serves everything again and goes back online.
    let status = pump.terminate().expect("pump exits on SIGTERM");
    assert!(status.success(), "{status}\n{}", pump.log_tail());
    assert_eq!(
        state_of(&world, NodeKind::Pump, "pump-a").await,
        NodeState::Paused
    );
    pump.restart().unwrap();
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-a", NodeState::Online)
            .await
    );
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    let again = client
        .pull_until(0, last, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(real_commits(&again), committed);

    // The registry record carries the watermark.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let record = world.registry.get(NodeKind::Pump, "pump-a").await.unwrap();
    assert!(
        record.max_commit_ts >= last,
        "heartbeat publishes MaxCommitTS"
    );
    assert_eq!(record.host, pump.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_no_acknowledged_binlog() {
    /// What a writer learned about one transaction before the pump died.
    enum Progress {
        /// A prewrite was sent; its outcome may be lost with the pump.
        Attempted { start: i64 },
        /// The prewrite was acknowledged and a commit ts chosen (committed "in TiKV").
        Prewritten { start: i64, commit: i64 },
        /// The commit was acknowledged too.
        Committed { start: i64, commit: i64 },
    }
    let world = world().await;
    let mut pump = start_pump(&world, "pump-k", &[]);
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pd = world.pd.clone();
            let addr = pump.addr.clone();
            let progress = progress_tx.clone();
            tokio::spawn(async move {
                let mut client = TestPumpClient::connect(&addr, pd.cluster_id())
                    .await
                    .unwrap();
                for i in 0.. {
                    let start = pd.get_ts().await.unwrap();
                    let _ = progress.send(Progress::Attempted { start });
                    if client
                        .prewrite(start, format!("{w}/{i}").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let commit = pd.get_ts().await.unwrap();
                    let _ = progress.send(Progress::Prewritten { start, commit });
                    if client.commit(start, commit).await.is_err() {
                        return;
                    }
                    let _ = progress.send(Progress::Committed { start, commit });
                }
            })
        })
        .collect();
    drop(progress_tx);
    // Let the load run, then kill the pump in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pump.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut acknowledged = BTreeMap::new();
    let mut in_flight = BTreeMap::new();
    let mut unknown = std::collections::BTreeSet::new();
    while let Ok(progress) = progress_rx.try_recv() {
        match progress {
            Progress::Attempted { start } => {
                unknown.insert(start);
            }
            Progress::Prewritten { start, commit } => {
                unknown.remove(&start);
                in_flight.insert(start, commit);
            }
            Progress::Committed { start, commit } => {
                in_flight.remove(&start);
                acknowledged.insert(commit, start);
            }
        }
    }
    assert!(
        acknowledged.len() > 50,
        "the load ran ({} acknowledged)",
        acknowledged.len()
    );

    pump.restart().unwrap();
    // A prewrite whose commit never arrived holds the watermark: it is never assumed rolled back.
    // TiDB re-sends such commits to the same pump; a prewrite whose acknowledgement was lost
    // belongs to a transaction that failed, whose rollback the pump must be told (the original
    // asks TiKV). Do both, as TiDB and TiKV would.
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    for (start, commit) in in_flight {
        client.commit(start, commit).await.unwrap();
        acknowledged.insert(commit, start);
    }
    for start in unknown {
        client.rollback(start).await.unwrap();
    }
    let last = *acknowledged.keys().last().unwrap();
    let pulled = client
        .pull_until(0, last, Duration::from_secs(10))
        .await
        .unwrap();
    assert_strictly_increasing(&pulled);
    let served: BTreeMap<i64, i64> = pulled.iter().map(|p| (p.commit_ts, p.start_ts)).collect();
    let (_, status) = http("GET", &format!("{}/status", pump.http_url())).await;
    for (commit, start) in &acknowledged {
        assert_eq!(
            served.get(commit),
            Some(start),
            "acknowledged commit {commit} is served after SIGKILL; unmatched prewrite: {}; last pulled {:?}; max {}",
            status["UnmatchedPrewrite"],
            pulled.last().map(|p| p.commit_ts),
            last,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_over_http_leaves_it_paused() {
    let world = world().await;
    let mut pump = start_pump(&world, "pump-p", &[]);
    assert!(
        world
            .wait_state(NodeKind::Pump, "pump-p", NodeState::Online)
            .await
    );

    let (code, body) = http(
        "PUT",
        &format!("{}/state/someone-else/pause", pump.http_url()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["code"], 3);
    assert_eq!(
        body["message"],
        "invalide nodeID someone-else, this pump's nodeID is pump-p"
    );
    let (_, body) = http("PUT", &format!("{}/state/pump-p/stop", pump.http_url())).await;
    assert_eq!(body["message"], "invalide action stop");

    let (_, body) = http("PUT", &format!("{}/state/pump-p/pause", pump.http_url())).await;
    assert_eq!(
        body,
        serde_json::json!({"message": "apply action pause success!", "code": 200, "data": null})
    );
    let status = pump
        .wait_exit(Duration::from_secs(30))
        .expect("pump exits after pause");
    assert!(status.success());
    assert_eq!(
        state_of(&world, NodeKind::Pump, "pump-p").await,
        NodeState::Paused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_a_lagging_drainer_then_goes_offline() {
    let world = world().await;
    let mut pump = start_pump(&world, "pump-c", &[]);
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    let start = world.pd.get_ts().await.unwrap();
    client.prewrite(start, b"v").await.unwrap();
    let commit = world.pd.get_ts().await.unwrap();
    client.commit(start, commit).await.unwrap();

    // A drainer (registered as the real one would be) whose checkpoint is behind this pump.
    let mut drainer = NodeStatus::new("drainer-1", "127.0.0.1:1", NodeState::Online);
    drainer.max_commit_ts = commit - 1;
    world
        .registry
        .upsert(NodeKind::Drainer, &drainer)
        .await
        .unwrap();

    let (_, body) = http("PUT", &format!("{}/state/pump-c/close", pump.http_url())).await;
    assert_eq!(body["code"], 200, "{body}");

    // While it waits: prewrites are refused, commits still accepted, /status names the drainer.
    let late_start = world.pd.get_ts().await.unwrap();
    let refused = client.prewrite(late_start, b"late").await.unwrap_err();
    assert_eq!(refused.message(), "no online: closing");
    client.commit(start, commit).await.unwrap();
    let named = wait_until(Duration::from_secs(15), || {
        let body =
            futures::executor::block_on(http("GET", &format!("{}/status", pump.http_url()))).1;
        body["OfflineWaitingFor"][0]["nodeId"] == "drainer-1"
    });
    assert!(named, "/status names the drainer holding the pump back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pump.wait_exit(Duration::ZERO).is_none(),
        "the pump waits for the lagging drainer"
    );
    assert_ne!(
        state_of(&world, NodeKind::Pump, "pump-c").await,
        NodeState::Offline
    );

    // The drainer catches up: the pump goes offline and exits 0.
    drainer.max_commit_ts = world.pd.get_ts().await.unwrap() + (10_000 << 18);
    world
        .registry
        .upsert(NodeKind::Drainer, &drainer)
        .await
        .unwrap();
    let status = pump
        .wait_exit(Duration::from_secs(30))
        .expect("pump exits once the drainer caught up");
    assert!(status.success(), "{}", pump.log_tail());
    assert_eq!(
        state_of(&world, NodeKind::Pump, "pump-c").await,
        NodeState::Offline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_online_drainer_keeps_a_new_pump_from_starting() {
    let world = world().await;
    let stale = NodeStatus::new(
        "drainer-dead",
        format!("127.0.0.1:{}", e2e::free_port()),
        NodeState::Online,
    );
    world
        .registry
        .upsert(NodeKind::Drainer, &stale)
        .await
        .unwrap();

    let dir = world.dir.path().join("pn");
    std::fs::create_dir_all(&dir).unwrap();
    let result = PumpProcess::start(&world.pd_sim.url(), &dir, "pump-n", &[]);
    // It binds its port before notifying, so it is seen listening, then gives up with code 2.
    let mut pump = result.unwrap();
    let status = pump
        .wait_exit(Duration::from_secs(30))
        .expect("pump gives up");
    assert_eq!(status.code(), Some(2), "{}", pump.log_tail());
    assert!(
        pump.log_tail().contains("notify drainer drainer-dead"),
        "{}",
        pump.log_tail()
    );
    assert_eq!(
        state_of(&world, NodeKind::Pump, "pump-n").await,
        NodeState::Offline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_writes_are_refused_clearly_and_the_pump_keeps_serving() {
    let world = world().await;
    let config = world.dir.path().join("pump.toml");
    std::fs::write(
        &config,
        "[storage]\nstop-write-at-available-space = \"1000 PiB\"\n",
    )
    .unwrap();
    let pump = start_pump(
        &world,
        "pump-d",
        &[
            &format!("-config={}", config.display()),
            "-max-message-size=65536",
        ],
    );
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();

    let start = world.pd.get_ts().await.unwrap();
    let err = client.prewrite(start, b"v").await.unwrap_err();
    assert!(
        err.message().starts_with("no available space, available: ")
            && err
                .message()
                .ends_with(", StopWriteAtAvailableSpace: 1125899906842624000"),
        "{}",
        err.message()
    );

    let err = client.write_raw(vec![0xff, 0xff, 0xff]).await.unwrap_err();
    assert!(
        err.message().starts_with("unmarshal binlog failed"),
        "{}",
        err.message()
    );

    let err = client.write_raw(vec![0u8; 100_000]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(
        err.message()
            .starts_with("grpc: received message larger than max ("),
        "{}",
        err.message()
    );

    let mut wrong = TestPumpClient::connect(&pump.addr, world.pd.cluster_id() + 1)
        .await
        .unwrap();
    let err = wrong.prewrite(start, b"v").await.unwrap_err();
    assert!(
        err.message().starts_with("cluster ID are mismatch"),
        "{}",
        err.message()
    );

    // Fake binlogs still pass, so the pump's watermark keeps moving while writes are refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let until = world.pd.get_ts().await.unwrap();
    let pulled = client
        .pull_until(0, until, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        pulled
            .iter()
            .any(|p| p.start_ts == p.commit_ts && p.commit_ts > start),
        "fake binlogs flow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_gc_and_a_stuck_prewrite_are_visible() {
    let world = world().await;
    let config = world.dir.path().join("pump.toml");
    std::fs::write(&config, "[storage]\nmax-txn-timeout = 1\n").unwrap();
    let socket = world.dir.path().join("pump.sock");
    let pump = start_pump(
        &world,
        "pump-h",
        &[
            &format!("-config={}", config.display()),
            "-gc=2s",
            &format!("-socket=unix://{}", socket.display()),
        ],
    );
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    let start = world.pd.get_ts().await.unwrap();
    client.prewrite(start, b"value").await.unwrap();
    let commit = world.pd.get_ts().await.unwrap();
    client.commit(start, commit).await.unwrap();

    // /status has the original's keys; /drainers an array; /metrics the original's names.
    let (_, status) = http("GET", &format!("{}/status", pump.http_url())).await;
    assert_eq!(status["status"]["pump-h"]["state"], "online", "{status}");
    assert!(status["CommitTS"].as_i64().unwrap() > commit);
    assert_eq!(status["Checkpoint"], serde_json::json!({}));
    assert_eq!(status["ErrMsg"], "");
    let (code, over_http2) = http2_get(&pump.addr, "/status").await;
    assert_eq!(code, 200);
    assert_eq!(
        over_http2["status"]["pump-h"]["state"], "online",
        "{over_http2}"
    );
    let (_, drainers) = http("GET", &format!("{}/drainers", pump.http_url())).await;
    assert_eq!(drainers, serde_json::json!([]));
    let metrics = http_text(&pump, "GET", "/metrics").await;
    assert!(
        metrics.contains("binlog_pump_rpc_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("binlog_pump_storage_max_commit_ts"),
        "{metrics}"
    );

    // /debug/binlog shows the commit merged with its prewrite.
    let text = http_text(&pump, "GET", &format!("/debug/binlog/{commit}")).await;
    assert!(
        text.contains(&format!("start_ts: {start}")) && text.contains("PrewriteValue"),
        "{text}"
    );

    // The same API answers on the unix socket.
    let mut unix = tokio::net::UnixStream::connect(&socket).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    unix.write_all(b"GET /drainers HTTP/1.1\r\nHost: pump\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    unix.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A prewrite without commit holds the watermark and is reported once past max-txn-timeout.
    let stuck = world.pd.get_ts().await.unwrap();
    client.prewrite(stuck, b"never committed").await.unwrap();
    let reported = wait_until(Duration::from_secs(10), || {
        pump.log_tail().contains("max-txn-timeout")
    });
    assert!(reported, "{}", pump.log_tail());
    let (_, status) = http("GET", &format!("{}/status", pump.http_url())).await;
    assert_eq!(status["UnmatchedPrewrite"]["startTS"], stuck);
    client.rollback(stuck).await.unwrap();

    // GC: after the retention, a pull from before the GC point is refused, not clamped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        http_text(&pump, "POST", "/debug/gc/trigger").await,
        "trigger gc success\n"
    );
    let cluster_id = world.pd.cluster_id();
    let refused = wait_until(Duration::from_secs(10), || {
        let mut client = client.clone();
        futures::executor::block_on(async move {
            client
                .inner
                .pull_binlogs(binlog_proto::binlog::PullBinlogReq {
                    cluster_id,
                    start_from: Some(binlog_proto::binlog::Pos {
                        suffix: 0,
                        offset: 0,
                    }),
                })
                .await
                .is_err_and(|status| status.code() == tonic::Code::OutOfRange)
        })
    });
    assert!(refused, "a pull below the GC point is an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_to_a_pushgateway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let world = world().await;
    let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_addr = gateway.local_addr().unwrap().to_string();
    let received = tokio::spawn(async move {
        let (mut socket, _) = gateway.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        while !String::from_utf8_lossy(&request).contains("binlog_pump_storage_max_commit_ts") {
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
        String::from_utf8_lossy(&request).into_owned()
    });
    let _pump = start_pump(
        &world,
        "pump-m",
        &[
            &format!("-metrics-addr={gateway_addr}"),
            "-metrics-interval=1",
        ],
    );
    let request = tokio::time::timeout(Duration::from_secs(20), received)
        .await
        .unwrap()
        .unwrap();
    assert!(
        request.starts_with("PUT /metrics/job/binlog/instance/pump-m HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains("binlog_pump_storage_max_commit_ts"),
        "{request}"
    );
}

#[test]
fn configuration_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = std::process::Command::new(e2e::bin_path("pump"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let config = dir.path().join("pump.toml");
    std::fs::write(
        &config,
        "addr = \"127.0.0.1:8250\"\n[storage]\nsynclog = true\n",
    )
    .unwrap();
    let (code, stderr) = run(&["-config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown field `synclog`"), "{stderr}");

    // Environment overrides are read for flags not given on the command line.
    let (code, stderr) = run(&[], &[("PUMP_ADVERTISE_ADDR", "0.0.0.0:8250")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("invalid advertise-addr \"0.0.0.0:8250\""),
        "{stderr}"
    );
    let (_, stderr) = run(
        &["--advertise-addr=127.0.0.1:1", "--gc=forever"],
        &[("PUMP_ADVERTISE_ADDR", "0.0.0.0:8250")],
    );
    assert!(
        stderr.contains("invalid gc \"forever\""),
        "flag wins over env: {stderr}"
    );

    let output = std::process::Command::new(e2e::bin_path("pump"))
        .arg("-V")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("Release Version: v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_pulls_and_empty_probes_work_like_the_original() {
    let world = world().await;
    let pump = start_pump(&world, "pump-z", &[]);
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();

    // TiDB probes an unavailable pump with an empty payload: accepted while online, stores nothing.
    client.write_raw(Vec::new()).await.unwrap();

    let start = world.pd.get_ts().await.unwrap();
    let value = vec![b'x'; 64 * 1024];
    client.prewrite(start, &value).await.unwrap();
    let commit = world.pd.get_ts().await.unwrap();
    client.commit(start, commit).await.unwrap();

    client.inner = client
        .inner
        .clone()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    // Compressed writes take another path through the server than plain ones.
    let gzip_start = world.pd.get_ts().await.unwrap();
    let gzip_value = vec![b'z'; 32 * 1024];
    client.prewrite(gzip_start, &gzip_value).await.unwrap();
    let gzip_commit = world.pd.get_ts().await.unwrap();
    client.commit(gzip_start, gzip_commit).await.unwrap();

    let pulled = client
        .pull_until(0, gzip_commit, Duration::from_secs(5))
        .await
        .unwrap();
    let commits = real_commits(&pulled);
    assert_eq!(commits.len(), 2, "the probe stored nothing");
    assert_eq!(commits[&commit], (start, value));
    assert_eq!(commits[&gzip_commit], (gzip_start, gzip_value));
}

/// The text the pump answers to `method` on `path`.
async fn http_text(pump: &PumpProcess, method: &'static str, path: &str) -> String {
    let (_, body) = http_request(
        &TlsSettings::default(),
        method,
        &format!("{}{path}", pump.http_url()),
    )
    .await
    .unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

/// The pump's gauge of open pull streams, read from `/metrics`.
async fn open_pull_streams(pump: &PumpProcess) -> i64 {
    http_text(pump, "GET", "/metrics")
        .await
        .lines()
        .find_map(|line| line.strip_prefix("binlog_pump_pull_streams "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(-1)
}

/// Waits (10 s at most) until the pump reports `want` open pull streams.
async fn wait_open_pull_streams(pump: &PumpProcess, want: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_pull_streams(pump).await;
        if open == want || tokio::time::Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A drainer that goes away mid-stream (its stream reset, or its connection closed) leaves no
/// reader behind on the pump: drainers reconnect after every error, and readers left waiting
/// for new data would pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_stream_the_client_drops_ends_on_the_pump() {
    let world = world().await;
    // No fake binlog for a minute: nothing but the reset itself can end the waiting reader.
    let pump = start_pump(&world, "pump-d", &["-fake-binlog-interval=60"]);
    let mut client = pump.client(world.pd.cluster_id()).await.unwrap();
    let start = world.pd.get_ts().await.unwrap();
    client.prewrite(start, b"value").await.unwrap();
    let commit = world.pd.get_ts().await.unwrap();
    client.commit(start, commit).await.unwrap();

    // Caught up: the stream waits on the pump for data after `commit`.
    let request = binlog_proto::binlog::PullBinlogReq {
        cluster_id: world.pd.cluster_id(),
        start_from: Some(binlog_proto::binlog::Pos {
            suffix: 0,
            offset: commit,
        }),
    };
    let stream = client.inner.pull_binlogs(request).await.unwrap();
    assert_eq!(wait_open_pull_streams(&pump, 1).await, 1);
    drop(stream);
    assert_eq!(
        wait_open_pull_streams(&pump, 0).await,
        0,
        "the reset stream ended"
    );

    // The same when the whole connection goes.
    let mut other = pump.client(world.pd.cluster_id()).await.unwrap();
    let stream = other.inner.pull_binlogs(request).await.unwrap();
    assert_eq!(wait_open_pull_streams(&pump, 1).await, 1);
    drop(stream);
    drop(other);
    assert_eq!(
        wait_open_pull_streams(&pump, 0).await,
        0,
        "the stream of the closed connection ended"
    );
}

/// A gRPC client ends its request stream with a frame of its own behind the message, which may
/// reach the pump after the binlog is stored. The pump answers only once the stream ended:
/// answering first made h2 reset the stream, the late frame then counted as a locally reset
/// stream, and after 1024 of them h2 closed the connection ("too_many_internal_resets"), failing
/// every write in flight on it. Here the end comes 300 ms after the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_answered_after_its_request_ends_so_the_stream_is_never_reset() {
    use prost::Message;

    let world = world().await;
    let pump = start_pump(&world, "pump-e", &[]);
    let mut send = http2_connect(&pump.addr).await;
    let request = http::Request::post(format!("http://{}/binlog.Pump/WriteBinlog", pump.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    let binlog = binlog_proto::binlog::Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts: world.pd.get_ts().await.unwrap(),
        prewrite_key: Some(b"pk".to_vec()),
        prewrite_value: Some(b"v".to_vec().into()),
        ..Default::default()
    };
    let message = binlog_proto::binlog::WriteBinlogReq {
        cluster_id: world.pd.cluster_id(),
        payload: binlog.encode_to_vec(),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    stream.send_data(framed.into(), false).unwrap();

    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .send_data(bytes::Bytes::new(), true)
        .expect("the pump has not reset the stream before its end");
    let (head, mut body) = response.await.unwrap().into_parts();
    assert_eq!(head.status, 200);
    let mut answer = Vec::new();
    while let Some(chunk) = body.data().await {
        answer.extend_from_slice(&chunk.unwrap());
    }
    let trailers = body.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    let reply = binlog_proto::binlog::WriteBinlogResp::decode(&answer[5..]).unwrap();
    assert_eq!(reply.errmsg, "");
}
