//! TiDB's pump client (`e2e::tidb::pump_client`) against real pumps, real etcd and pd-sim:
//! selection, commits following their prewrite, failover when a pump dies or pauses, and the
//! errors TiDB would see.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use binlog_cluster::control::http_request;
use binlog_cluster::{NodeKind, NodeState, TlsSettings};
use binlog_proto::binlog::{Binlog, BinlogType};
use e2e::tidb::{ClientConfig, CommitOutcome, PumpClientError, Strategy, TidbPumpClient};
use e2e::{PumpProcess, World};

/// start ts → (commit ts, prewrite value), per pump.
type Committed = BTreeMap<String, BTreeMap<i64, (i64, Vec<u8>)>>;

async fn world() -> World {
    World::start().await.unwrap()
}

/// Fast probes for tests; everything else as in TiDB unless a test says otherwise.
fn test_config() -> ClientConfig {
    ClientConfig {
        check_interval: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

/// Starts a pump and waits until the registry says it is online (it listens before it
/// registers).
async fn start_online_pump(world: &World, id: &str, extra: &[&str]) -> PumpProcess {
    let pump = world.start_pump(id, extra).unwrap();
    assert!(
        world
            .wait_state(NodeKind::Pump, id, NodeState::Online)
            .await,
        "{id} registers online:\n{}",
        pump.log_tail()
    );
    pump
}

async fn connect_client(world: &World, config: ClientConfig) -> TidbPumpClient {
    TidbPumpClient::connect(&[world.pd_sim.url()], &TlsSettings::default(), config)
        .await
        .unwrap()
}

/// Every real commit a pump serves: start ts → (commit ts, prewrite value).
async fn served(world: &World, pump: &PumpProcess) -> BTreeMap<i64, (i64, Vec<u8>)> {
    let until = world.pd.get_ts().await.unwrap();
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
    pulled
        .into_iter()
        .filter(|p| p.start_ts != p.commit_ts)
        .map(|p| {
            assert_eq!(p.binlog.tp, BinlogType::Commit as i32);
            (
                p.start_ts,
                (
                    p.commit_ts,
                    p.binlog.prewrite_value.unwrap_or_default().to_vec(),
                ),
            )
        })
        .collect()
}

/// Checks that each pump serves exactly the transactions whose prewrite it took.
async fn assert_served(world: &World, pumps: &[&PumpProcess], expected: &Committed) {
    for pump in pumps {
        let want = expected.get(&pump.node_id).cloned().unwrap_or_default();
        assert_eq!(
            served(world, pump).await,
            want,
            "pump {} serves exactly the commits of the prewrites it took",
            pump.node_id
        );
    }
}

fn prewrite(start_ts: i64, value: &[u8]) -> Binlog {
    Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts,
        prewrite_key: Some(b"pk".to_vec()),
        prewrite_value: Some(value.to_vec().into()),
        ..Default::default()
    }
}

/// The same binlog turned into its commit, as TiDB does it.
fn commit_of(prewrite: &Binlog, commit_ts: i64) -> Binlog {
    Binlog {
        tp: BinlogType::Commit as i32,
        commit_ts,
        prewrite_value: None,
        ..prewrite.clone()
    }
}

async fn eventually(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// One whole transaction; returns the pump and records the commit in `committed`.
async fn transaction(
    world: &World,
    client: &TidbPumpClient,
    value: String,
    committed: &mut Committed,
) -> (String, u32) {
    let start = world.pd.get_ts().await.unwrap();
    let p = prewrite(start, value.as_bytes());
    let receipt = client.write_prewrite(&p).await.unwrap();
    let commit_ts = world.pd.get_ts().await.unwrap();
    assert_eq!(
        client.write_commit(&commit_of(&p, commit_ts)).await,
        CommitOutcome::Delivered {
            pump: receipt.pump.clone(),
            attempts: 1
        }
    );
    committed
        .entry(receipt.pump.clone())
        .or_default()
        .insert(start, (commit_ts, value.into_bytes()));
    (receipt.pump, receipt.attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_spreads_prewrites_and_each_commit_follows_its_prewrite() {
    let world = world().await;
    let mut pumps = Vec::new();
    for id in ["r-a", "r-b", "r-c"] {
        pumps.push(start_online_pump(&world, id, &[]).await);
    }
    let client = connect_client(&world, test_config()).await;
    assert_eq!(client.available_pumps(), ["r-a", "r-b", "r-c"]);
    assert!(client.unavailable_pumps().is_empty());

    let mut committed = Committed::new();
    let mut order = Vec::new();
    for i in 0..30 {
        let (pump, attempts) =
            transaction(&world, &client, format!("range txn {i}"), &mut committed).await;
        assert_eq!(attempts, 1);
        order.push(pump);
    }
    let expected_order: Vec<_> = (0..30)
        .map(|i| ["r-a", "r-b", "r-c"][i % 3].to_string())
        .collect();
    assert_eq!(
        order, expected_order,
        "round robin over the available pumps"
    );

    // A rolled-back transaction goes to its prewrite's pump too, and is never served.
    let start = world.pd.get_ts().await.unwrap();
    let p = prewrite(start, b"rolled back");
    let receipt = client.write_prewrite(&p).await.unwrap();
    assert_eq!(client.prewrite_pump(start), Some(receipt.pump.clone()));
    let rollback = Binlog {
        tp: BinlogType::Rollback as i32,
        prewrite_value: None,
        ..p
    };
    assert!(matches!(
        client.write_commit(&rollback).await,
        CommitOutcome::Delivered { pump, .. } if pump == receipt.pump
    ));
    assert_eq!(
        client.prewrite_pump(start),
        None,
        "forgotten after its commit"
    );

    // Hash: (start_ts + retry) mod len over the same available list.
    let hashed = connect_client(
        &world,
        ClientConfig {
            strategy: Strategy::Hash,
            ..test_config()
        },
    )
    .await;
    let available = hashed.available_pumps();
    for i in 0..9 {
        let start = world.pd.get_ts().await.unwrap();
        let value = format!("hash txn {i}");
        let p = prewrite(start, value.as_bytes());
        let receipt = hashed.write_prewrite(&p).await.unwrap();
        assert_eq!(
            receipt.pump,
            available[start.rem_euclid(3) as usize],
            "hash of {start}"
        );
        let commit_ts = world.pd.get_ts().await.unwrap();
        assert!(matches!(
            hashed.write_commit(&commit_of(&p, commit_ts)).await,
            CommitOutcome::Delivered { .. }
        ));
        committed
            .entry(receipt.pump)
            .or_default()
            .insert(start, (commit_ts, value.into_bytes()));
    }

    let stats = client.stats();
    assert_eq!(stats.prewrites_ok, 31);
    assert_eq!(stats.commits_delivered, 31);
    assert_eq!(stats.write_rpcs, 62, "no retries");
    assert_eq!(stats.commits_pending + stats.commits_given_up, 0);
    assert_served(&world, &pumps.iter().collect::<Vec<_>>(), &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pump_is_failed_over_and_its_commits_wait_for_it() {
    let world = world().await;
    let mut pumps = Vec::new();
    for id in ["f-a", "f-b", "f-c"] {
        pumps.push(start_online_pump(&world, id, &[]).await);
    }
    let client = connect_client(
        &world,
        ClientConfig {
            commit_retry_limit: Duration::from_secs(120),
            ..test_config()
        },
    )
    .await;
    let mut committed = Committed::new();
    for i in 0..15 {
        transaction(&world, &client, format!("before {i}"), &mut committed).await;
    }

    // Prewrites in flight when f-b dies: their commits can only go to f-b.
    let mut open = Vec::new();
    for i in 0..6 {
        let start = world.pd.get_ts().await.unwrap();
        let p = prewrite(start, format!("in flight {i}").as_bytes());
        let receipt = client.write_prewrite(&p).await.unwrap();
        open.push((p, receipt.pump));
    }
    pumps[1].kill();
    let stranded = open.iter().filter(|(_, pump)| pump == "f-b").count();
    assert!(stranded > 0, "some prewrites went to f-b");

    let mut commits = Vec::new();
    for (p, pump) in open {
        let commit_ts = world.pd.get_ts().await.unwrap();
        let value = p.prewrite_value.clone().unwrap().to_vec();
        let c = client.clone();
        let binlog = commit_of(&p, commit_ts);
        let task = tokio::spawn(async move { c.write_commit(&binlog).await });
        commits.push((pump, p.start_ts, commit_ts, value, task));
    }

    // Load while f-b is dead: no prewrite error reaches the caller, none lands on f-b.
    for i in 0..30 {
        let start = world.pd.get_ts().await.unwrap();
        let value = format!("during {i}");
        let p = prewrite(start, value.as_bytes());
        let receipt = client
            .write_prewrite(&p)
            .await
            .expect("prewrites succeed while other pumps are online");
        assert_ne!(receipt.pump, "f-b");
        let commit_ts = world.pd.get_ts().await.unwrap();
        let c = client.clone();
        let binlog = commit_of(&p, commit_ts);
        let task = tokio::spawn(async move { c.write_commit(&binlog).await });
        commits.push((receipt.pump, start, commit_ts, value.into_bytes(), task));
    }
    assert_eq!(client.stats().prewrites_failed, 0);

    // More than ten errors in a row take f-b out of the available set.
    assert!(
        eventually(Duration::from_secs(20), || !client
            .available_pumps()
            .contains(&"f-b".to_string()))
        .await,
        "f-b leaves the available set: {:?}",
        client.available_pumps()
    );
    assert_eq!(client.unavailable_pumps(), ["f-b"]);

    // Its commits are not lost: they are counted as pending, still retried.
    let total = 15 + commits.len() as u64;
    assert!(
        eventually(Duration::from_secs(10), || client.stats().commits_delivered
            == total - stranded as u64)
        .await,
        "{:?}",
        client.stats()
    );
    let stats = client.stats();
    assert_eq!(stats.commits_pending, stranded as u64, "{stats:?}");
    assert_eq!(stats.commits_given_up, 0);
    for (pump, _, _, _, task) in &commits {
        assert_eq!(task.is_finished(), pump != "f-b");
    }

    // f-b comes back: the pending commits are delivered, and a probe makes it available again.
    let restarted_at = Instant::now();
    tokio::task::block_in_place(|| pumps[1].restart()).unwrap();
    for (pump, start, commit_ts, value, task) in commits {
        let outcome = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("pending commits are delivered after the restart")
            .unwrap();
        match outcome {
            CommitOutcome::Delivered { pump: to, attempts } => {
                assert_eq!(to, pump);
                assert_eq!(
                    attempts > 1,
                    pump == "f-b",
                    "only f-b's commits were retried"
                );
            }
            other => panic!("commit of {start} on {pump}: {other:?}"),
        }
        committed
            .entry(pump)
            .or_default()
            .insert(start, (commit_ts, value));
    }
    assert!(
        eventually(Duration::from_secs(10), || client.available_pumps().len()
            == 3)
        .await,
        "the probe brings f-b back: {:?}",
        client.available_pumps()
    );
    println!(
        "f-b back {:?} after restart; stats {:?}",
        restarted_at.elapsed(),
        client.stats()
    );
    let stats = client.stats();
    assert!(stats.probes_ok >= 1);
    assert_eq!(stats.commits_pending, 0);
    assert_eq!(stats.commits_given_up, 0);
    assert_eq!(stats.commits_delivered, total);

    // And takes prewrites again.
    let mut landed = Vec::new();
    for i in 0..3 {
        landed.push(
            transaction(&world, &client, format!("after {i}"), &mut committed)
                .await
                .0,
        );
    }
    landed.sort();
    assert_eq!(landed, ["f-a", "f-b", "f-c"]);

    assert_served(&world, &pumps.iter().collect::<Vec<_>>(), &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_pump_leaves_the_available_set_through_the_watch() {
    let world = world().await;
    let mut pumps = Vec::new();
    for id in ["p-a", "p-b"] {
        pumps.push(start_online_pump(&world, id, &[]).await);
    }
    let client = connect_client(&world, test_config()).await;
    let mut committed = Committed::new();
    for i in 0..4 {
        transaction(&world, &client, format!("before {i}"), &mut committed).await;
    }
    assert_eq!(committed.len(), 2, "both pumps took prewrites");

    let (code, body) = http_request(
        &TlsSettings::default(),
        "PUT",
        &format!("{}/state/p-b/pause", pumps[1].http_url()),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body:?}");
    let mut paused = false;
    for _ in 0..200 {
        if world
            .registry
            .get(NodeKind::Pump, "p-b")
            .await
            .unwrap()
            .state
            == NodeState::Paused
        {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(paused, "the registry says paused");
    assert!(
        eventually(Duration::from_secs(10), || client.available_pumps()
            == ["p-a"])
        .await,
        "the watch moved p-b out: {:?}",
        client.available_pumps()
    );
    assert_eq!(client.unavailable_pumps(), ["p-b"]);

    let rpcs = client.stats().write_rpcs;
    for i in 0..10 {
        let (pump, attempts) =
            transaction(&world, &client, format!("after {i}"), &mut committed).await;
        assert_eq!(
            (pump.as_str(), attempts),
            ("p-a", 1),
            "nothing tried on p-b"
        );
    }
    assert_eq!(client.stats().write_rpcs - rpcs, 20);

    // A paused pump is not probed back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(client.available_pumps(), ["p-a"]);
    assert_eq!(client.stats().probes_ok, 0);
    assert_served(&world, &[&pumps[0]], &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_registered_pump_is_an_error() {
    let world = world().await;
    let err = TidbPumpClient::connect(
        &[world.pd_sim.url()],
        &TlsSettings::default(),
        ClientConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PumpClientError::NoPumpFound));
    assert_eq!(err.to_string(), "no pump found in pd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_binlog_fails_at_once_without_retries() {
    let world = world().await;
    let pump = start_online_pump(&world, "big", &["-max-message-size=65536"]).await;
    let client = connect_client(&world, test_config()).await;
    let mut committed = Committed::new();
    transaction(&world, &client, "small".into(), &mut committed).await;

    let before = client.stats();
    let started = Instant::now();
    let start = world.pd.get_ts().await.unwrap();
    let err = client
        .write_prewrite(&prewrite(start, &vec![7u8; 100_000]))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PumpClientError::TooLarge { ref pump, .. } if pump == "big"));
    let text = err.to_string();
    assert!(
        text.starts_with("binlog data is too large")
            && text.contains("ResourceExhausted")
            && text.contains("received message larger than max"),
        "{text}"
    );
    let after = client.stats();
    assert_eq!(after.write_rpcs - before.write_rpcs, 1, "one attempt only");
    assert_eq!(after.prewrites_failed, 1);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(client.prewrite_pump(start), None);

    // The pump stays available for binlogs that fit.
    let (pump_id, attempts) =
        transaction(&world, &client, "small again".into(), &mut committed).await;
    assert_eq!((pump_id.as_str(), attempts), ("big", 1));
    assert_served(&world, &[&pump], &committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_commits_are_counted_and_a_dead_cluster_fails_prewrites() {
    let world = world().await;
    let mut pump = start_online_pump(&world, "g-a", &[]).await;
    let client = connect_client(
        &world,
        ClientConfig {
            commit_retry_limit: Duration::from_secs(2),
            ..test_config()
        },
    )
    .await;

    // A commit whose prewrite this client never wrote is dropped, and counted.
    let stray = world.pd.get_ts().await.unwrap();
    let outcome = client
        .write_commit(&commit_of(&prewrite(stray, b"x"), stray + 1))
        .await;
    assert_eq!(outcome, CommitOutcome::UnknownPump);
    assert_eq!(client.stats().commits_unknown_pump, 1);

    // A commit whose pump died is retried up to the limit, then counted as given up.
    let start = world.pd.get_ts().await.unwrap();
    let p = prewrite(start, b"stranded");
    assert_eq!(client.write_prewrite(&p).await.unwrap().pump, "g-a");
    pump.kill();
    let commit_ts = world.pd.get_ts().await.unwrap();
    let started = Instant::now();
    let outcome = client.write_commit(&commit_of(&p, commit_ts)).await;
    let elapsed = started.elapsed();
    match outcome {
        CommitOutcome::GaveUp {
            pump,
            attempts,
            last_error,
        } => {
            assert_eq!(pump, "g-a");
            assert!(attempts >= 2, "{attempts}");
            assert!(last_error.contains("Unavailable"), "{last_error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10));
    let stats = client.stats();
    assert_eq!((stats.commits_given_up, stats.commits_pending), (1, 0));

    // With every pump dead, a prewrite gives up with TiDB's error.
    let start = world.pd.get_ts().await.unwrap();
    let err = client
        .write_prewrite(&prewrite(start, b"nowhere"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("write binlog failed, the last error rpc error: code = Unavailable"),
        "{err}"
    );
    assert!(client.available_pumps().is_empty());
    assert_eq!(client.unavailable_pumps(), ["g-a"]);
}
