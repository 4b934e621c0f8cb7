//! binlogctl as a user runs it, against real etcd behind pd-sim.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use binlog_cluster::registry::node_key;
use binlog_cluster::{NodeKind, tso};
use e2e::{Etcd, PdSimProcess, bin_path};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PUMP: &str = r#"{"nodeId":"pump-a:8250","host":"127.0.0.1:8250","state":"online","isAlive":false,"score":0,"label":null,"maxCommitTS":412518831548007863,"updateTS":412518831338292471}"#;

struct World {
    dir: tempfile::TempDir,
    etcd: Etcd,
    pd: PdSimProcess,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start().unwrap();
    let pd = PdSimProcess::start(etcd.url(), &dir.path().join("pd.log")).unwrap();
    World { dir, etcd, pd }
}

fn binlogctl(args: &[&str]) -> Output {
    Command::new(bin_path("binlogctl"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn put(world: &World, key: &str, value: &str) {
    let mut etcd = etcd_client::Client::connect([world.etcd.url()], None)
        .await
        .unwrap();
    etcd.put(key, value, None).await.unwrap();
}

async fn get(world: &World, key: &str) -> String {
    let mut etcd = etcd_client::Client::connect([world.etcd.url()], None)
        .await
        .unwrap();
    let response = etcd.get(key, None).await.unwrap();
    response.kvs()[0].value_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_meta_writes_a_savepoint_at_the_current_time() {
    let world = world();
    let data_dir = world.dir.path().join("meta");
    let pd_flag = format!("-pd-urls={}", world.pd.url());
    let output = binlogctl(&[
        &pd_flag,
        "-cmd",
        "generate_meta",
        "-data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(r#"["save meta"]"#),
        "{}",
        stdout(&output)
    );

    let content = std::fs::read_to_string(data_dir.join("savepoint")).unwrap();
    let ts: i64 = content
        .strip_prefix("commitTS = ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected savepoint {content:?}"))
        .parse()
        .unwrap();
    let drift_ms = chrono::Utc::now().timestamp_millis() - tso::physical_ms(ts);
    assert!(
        (0..10_000).contains(&drift_ms),
        "physical part is now (drift {drift_ms} ms)"
    );

    // With a time zone, the human-readable lines follow.
    let output = binlogctl(&[
        "--pd-urls",
        &world.pd.url(),
        "--cmd=generate_meta",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--time-zone",
        "Asia/Shanghai",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let content = std::fs::read_to_string(data_dir.join("savepoint")).unwrap();
    let lines: Vec<_> = content.lines().collect();
    assert_eq!(lines.len(), 3, "{content:?}");
    assert!(
        lines[1].ends_with("+0000 UTC") && lines[2].ends_with("+0800 CST"),
        "{content:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pumps_lists_records_in_the_originals_json() {
    let world = world();
    put(&world, &node_key(NodeKind::Pump, "pump-a:8250"), PUMP).await;
    put(
        &world,
        &node_key(NodeKind::Pump, "pump-b:8250"),
        r#"{"nodeId":"pump-b:8250","host":"127.0.0.1:8251","state":"offline","isAlive":false,"score":0,"label":null,"maxCommitTS":1,"updateTS":0}"#,
    )
    .await;
    let pd_flag = format!("-pd-urls={}", world.pd.url());

    let output = binlogctl(&[&pd_flag, "-cmd", "pumps"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(r#"["query node"] [type=pump] [node="{NodeID: pump-a:8250, Addr: 127.0.0.1:8250, State: online, MaxCommitTS: 412518831548007863, UpdateTime: 2019-11-13 08:40:57 +0000 UTC}"]"#),
        "{text}"
    );
    assert!(
        !text.contains("pump-b"),
        "offline nodes are hidden by default: {text}"
    );

    let output = binlogctl(&[&pd_flag, "-cmd", "pumps", "-show-offline-nodes"]);
    assert!(
        stdout(&output).contains("NodeID: pump-b:8250"),
        "{}",
        stdout(&output)
    );

    let output = binlogctl(&[&pd_flag, "-cmd", "drainers"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), "", "no drainers registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_pump_changes_the_state_and_nothing_else() {
    let world = world();
    let key = node_key(NodeKind::Pump, "pump-a:8250");
    put(&world, &key, PUMP).await;
    let pd_flag = format!("-pd-urls={}", world.pd.url());

    let output = binlogctl(&[
        &pd_flag,
        "-cmd",
        "update-pump",
        "-node-id",
        "pump-a:8250",
        "-state",
        "paused",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        get(&world, &key).await,
        PUMP.replace(r#""state":"online""#, r#""state":"paused""#)
    );

    // An illegal state is named, and nothing changes.
    let output = binlogctl(&[
        &pd_flag,
        "-cmd",
        "update-pump",
        "-node-id",
        "pump-a:8250",
        "-state",
        "stopped",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "state stopped is illegal, expected one of online, pausing, paused, closing, offline"
        ),
        "{}",
        stderr(&output)
    );
    assert!(get(&world, &key).await.contains(r#""state":"paused""#));

    // A node that does not exist is named.
    let output = binlogctl(&[
        &pd_flag,
        "-cmd",
        "update-drainer",
        "-node-id",
        "ghost",
        "-state",
        "offline",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("key /tidb-binlog/v1/drainers/ghost in etcd not found"),
        "{}",
        stderr(&output)
    );

    // The node id is required.
    let output = binlogctl(&[&pd_flag, "-cmd", "update-pump", "-state", "paused"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("update-pump needs -node-id"),
        "{}",
        stderr(&output)
    );
}

/// A stand-in node's HTTP API: answers every request with `body` and reports the request line.
async fn stand_in_node(body: &'static str) -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = socket.read(&mut buf).await.unwrap();
        let request_line = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let _ = tx.send(request_line);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_offline_call_the_nodes_state_api() {
    let world = world();
    let pd_flag = format!("-pd-urls={}", world.pd.url());

    let (addr, request) =
        stand_in_node(r#"{"message":"apply action pause success!","code":200,"data":null}"#).await;
    let record = format!(r#"{{"nodeId":"pump-a:8250","host":"{addr}","state":"online"}}"#);
    put(&world, &node_key(NodeKind::Pump, "pump-a:8250"), &record).await;
    let output = tokio::task::spawn_blocking({
        let pd_flag = pd_flag.clone();
        move || binlogctl(&[&pd_flag, "-cmd", "pause-pump", "-node-id", "pump-a:8250"])
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        request.await.unwrap(),
        "PUT /state/pump-a:8250/pause HTTP/1.1"
    );

    // A refusal (code 3) is an error carrying the node's message.
    let (addr, request) = stand_in_node(
        r#"{"message":"this drainer's state is paused, apply close failed!","code":3,"data":null}"#,
    )
    .await;
    let record = format!(r#"{{"nodeId":"d1","host":"{addr}","state":"paused"}}"#);
    put(&world, &node_key(NodeKind::Drainer, "d1"), &record).await;
    let output = tokio::task::spawn_blocking(move || {
        binlogctl(&[&pd_flag, "-cmd", "offline-drainer", "-node-id", "d1"])
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    assert_eq!(request.await.unwrap(), "PUT /state/d1/close HTTP/1.1");
    assert!(
        stderr(&output).contains(
            "refused close: this drainer's state is paused, apply close failed! (code 3)"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_commands_and_a_dead_pd_fail_clearly() {
    let output = binlogctl(&["-cmd", "pump"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "unknown command \"pump\", expected one of: generate_meta, pumps, drainers, update-pump"
        ),
        "{}",
        stderr(&output)
    );

    let output = binlogctl(&["-cmd", "encrypt"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("encrypt needs -text"),
        "{}",
        stderr(&output)
    );

    let dead = format!("http://127.0.0.1:{}", e2e::free_port());
    for command in ["pumps", "generate_meta"] {
        let started = Instant::now();
        let output = binlogctl(&["-pd-urls", &dead, "-cmd", command]);
        assert!(!output.status.success(), "{command} must fail");
        assert!(
            stderr(&output).contains(dead.trim_start_matches("http://")),
            "{command}: {}",
            stderr(&output)
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{command} gave up in {:?}",
            started.elapsed()
        );
    }

    let output = binlogctl(&["-pd-urls", "ftp://x:1", "-cmd", "pumps"]);
    assert!(
        stderr(&output).contains("invalid pd-urls entry \"ftp://x:1\": unsupported scheme"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn encrypt_output_decrypts_to_the_text() {
    let output = binlogctl(&["-cmd", "encrypt", "-text", "s3cret"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let sealed = text
        .split("[encrypted=")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("]\n"))
        .map(|s| s.trim_matches('"'))
        .unwrap_or_else(|| panic!("no encrypted field in {text}"));
    assert_eq!(binlog_cluster::secret::open(sealed).unwrap(), b"s3cret");
}

#[test]
fn version_flag_prints_the_release() {
    let output = binlogctl(&["-V"]);
    assert!(output.status.success());
    assert!(
        stdout(&output).starts_with("Release Version: v"),
        "{}",
        stdout(&output)
    );
}
