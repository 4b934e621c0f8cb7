//! The drainer's collector against real pumps: the merged stream is strictly ordered and
//! complete across a pump restart, a paused pump holds the merge (and is named), and an offline
//! pump is dropped.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use binlog_cluster::{NodeKind, NodeState, PdClient};
use binlog_drainer::collector::{self, CollectorSettings, CollectorStatus};
use binlog_drainer::puller::{PulledBinlog, PullerSettings};
use e2e::{PumpProcess, TestPumpClient, World};
use tokio::sync::{mpsc, watch};

/// Commits `count` transactions through `pump`; returns their commit ts.
async fn commit(pd: &PdClient, pump: &PumpProcess, count: usize) -> Vec<i64> {
    let mut client = TestPumpClient::connect(&pump.addr, pd.cluster_id())
        .await
        .unwrap();
    let mut commits = Vec::new();
    for i in 0..count {
        let start = pd.get_ts().await.unwrap();
        client
            .prewrite(start, format!("{i}").as_bytes())
            .await
            .unwrap();
        let ts = pd.get_ts().await.unwrap();
        client.commit(start, ts).await.unwrap();
        commits.push(ts);
    }
    commits
}

/// Receives merged binlogs until every commit in `want` arrived (or 30 s passed).
async fn receive_until(
    rx: &mut mpsc::Receiver<PulledBinlog>,
    seen: &mut Vec<PulledBinlog>,
    want: &BTreeSet<i64>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !want
        .iter()
        .all(|ts| seen.iter().any(|b| b.commit_ts == *ts))
    {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(binlog)) => seen.push(binlog),
            _ => break,
        }
    }
}

fn status_of(status: &Mutex<CollectorStatus>) -> CollectorStatus {
    status.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_pumps_in_commit_order_across_restart_pause_and_offline() {
    let world = World::start().await.unwrap();
    let (dir, pd_sim, pd, registry) = (&world.dir, &world.pd_sim, &world.pd, &world.registry);
    let mut pump_a = PumpProcess::start(&pd_sim.url(), dir.path(), "pump-a", &[]).unwrap();
    let mut pump_b = PumpProcess::start(&pd_sim.url(), dir.path(), "pump-b", &[]).unwrap();
    // A pump the collector does not know yet is added at the merge position, like the original;
    // real pumps notify drainers before serving. No drainer is registered here, so wait until both
    // pumps are registered before the collector starts.
    let registered = e2e::wait_until(Duration::from_secs(20), || {
        futures::executor::block_on(registry.list(NodeKind::Pump)).is_ok_and(|(pumps, _)| {
            pumps
                .iter()
                .filter(|p| p.state == NodeState::Online)
                .count()
                == 2
        })
    });
    assert!(registered, "both pumps registered online");

    let (out, mut merged) = mpsc::channel(16);
    let (_notify_tx, notifications) = mpsc::channel(1);
    let status = Arc::new(Mutex::new(CollectorStatus::default()));
    let (stop_tx, stop) = watch::channel(false);
    let settings = CollectorSettings {
        puller: PullerSettings {
            cluster_id: pd.cluster_id(),
            tls: None,
            gzip: true,
        },
        detect_interval: Duration::from_millis(500),
    };
    let collector = tokio::spawn(collector::run(
        registry.clone(),
        settings,
        0,
        out,
        notifications,
        status.clone(),
        stop,
    ));

    // Interleaved writes to both pumps come out merged, complete and strictly ordered.
    let (a, b) = tokio::join!(commit(pd, &pump_a, 60), commit(pd, &pump_b, 60));
    let mut want: BTreeSet<i64> = a.into_iter().chain(b).collect();
    let mut seen = Vec::new();
    receive_until(&mut merged, &mut seen, &want).await;

    // A pump restarts mid-run: nothing is lost, nothing doubled.
    pump_b.kill();
    pump_b.restart().unwrap();
    let (a, b) = tokio::join!(commit(pd, &pump_a, 30), commit(pd, &pump_b, 30));
    want.extend(a.into_iter().chain(b));
    receive_until(&mut merged, &mut seen, &want).await;

    assert!(
        seen.windows(2).all(|w| w[0].commit_ts < w[1].commit_ts),
        "strictly increasing commit ts"
    );
    let commits: BTreeSet<i64> = seen
        .iter()
        .filter(|b| !b.is_fake())
        .map(|b| b.commit_ts)
        .collect();
    assert_eq!(commits, want, "every commit exactly once");
    assert!(
        seen.iter().any(PulledBinlog::is_fake),
        "fake binlogs advance idle pumps"
    );
    assert!(
        seen.iter()
            .filter(|b| !b.is_fake())
            .all(|b| b.binlog.prewrite_value.is_some())
    );

    // A paused (stopped) pump holds the merge and is named.
    let status_code = pump_b.terminate().unwrap();
    assert!(status_code.success());
    let named = e2e::wait_until(Duration::from_secs(10), || {
        status_of(&status).waiting_for == ["pump-b"]
    });
    assert!(named, "{:?}", status_of(&status));
    let held = commit(pd, &pump_a, 5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(binlog) = merged.try_recv() {
        assert!(
            binlog.commit_ts < held[0],
            "nothing newer passes a paused pump"
        );
    }

    // Once it is offline, the merge goes on without it.
    let mut record = registry.get(NodeKind::Pump, "pump-b").await.unwrap();
    record.state = NodeState::Offline;
    registry.update(NodeKind::Pump, &record).await.unwrap();
    let mut after = Vec::new();
    receive_until(&mut merged, &mut after, &held.iter().copied().collect()).await;
    assert!(
        held.iter()
            .all(|ts| after.iter().any(|b| b.commit_ts == *ts)),
        "the merge resumed"
    );
    let dropped = e2e::wait_until(Duration::from_secs(5), || {
        !status_of(&status).pumps.contains_key("pump-b")
    });
    assert!(dropped, "{:?}", status_of(&status));

    stop_tx.send(true).unwrap();
    collector.await.unwrap().unwrap();
    pump_a.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pump_notifies_the_drainer_which_pulls_from_it_at_once() {
    use binlog_cluster::NodeStatus;
    use binlog_drainer::cistern::CisternService;

    let world = World::start().await.unwrap();
    let (dir, pd_sim, pd, registry) = (&world.dir, &world.pd_sim, &world.pd, &world.registry);

    // A collector that would only look again in an hour: only a notification can bring the pump in.
    let (out, mut merged) = mpsc::channel(16);
    let (notify_tx, notifications) = mpsc::channel(4);
    let status = Arc::new(Mutex::new(CollectorStatus::default()));
    let (_stop_tx, stop) = watch::channel(false);
    let settings = CollectorSettings {
        puller: PullerSettings {
            cluster_id: pd.cluster_id(),
            tls: None,
            gzip: false,
        },
        detect_interval: Duration::from_secs(3600),
    };
    tokio::spawn(collector::run(
        registry.clone(),
        settings,
        0,
        out,
        notifications,
        status.clone(),
        stop,
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let drainer_addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CisternService::new(notify_tx))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    registry
        .upsert(
            NodeKind::Drainer,
            &NodeStatus::new("drainer-1", drainer_addr, NodeState::Online),
        )
        .await
        .unwrap();

    let pump = PumpProcess::start(&pd_sim.url(), dir.path(), "pump-new", &[]).unwrap();
    let pulled = e2e::wait_until(Duration::from_secs(10), || {
        status_of(&status).pumps.contains_key("pump-new")
    });
    assert!(
        pulled,
        "the notification made the collector pick the pump up: {:?}\n{}",
        status_of(&status),
        pump.log_tail()
    );

    let want: BTreeSet<i64> = commit(pd, &pump, 3).await.into_iter().collect();
    let mut seen = Vec::new();
    receive_until(&mut merged, &mut seen, &want).await;
    let got: BTreeSet<i64> = seen
        .iter()
        .filter(|b| !b.is_fake())
        .map(|b| b.commit_ts)
        .collect();
    assert_eq!(got, want);
}
