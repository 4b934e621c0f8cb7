//! pd-sim against a real etcd: timestamps, cluster id, and the etcd API forwarded through it.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::HashSet;
use std::time::Duration;

use binlog_cluster::{PdClient, TlsSettings};
use e2e::{Etcd, PdSimProcess};
use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use futures::StreamExt;

struct World {
    _dir: tempfile::TempDir,
    etcd: Etcd,
    pd: PdSimProcess,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start().unwrap();
    let pd = PdSimProcess::start(etcd.url(), &dir.path().join("pd-sim.log")).unwrap();
    World {
        _dir: dir,
        etcd,
        pd,
    }
}

async fn draw_concurrently(pd: &PdClient, tasks: usize, per_task: usize) -> Vec<Vec<i64>> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pd = pd.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    seen.push(pd.get_ts().await.unwrap());
                }
                seen
            })
        })
        .collect();
    futures::future::join_all(handles)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_unique_and_increasing_across_callers_and_restarts() {
    let mut world = world();
    let urls = vec![world.pd.url()];
    let pd = PdClient::connect(&urls, &TlsSettings::default())
        .await
        .unwrap();

    let before = draw_concurrently(&pd, 32, 200).await;
    let mut all = HashSet::new();
    for sequence in &before {
        assert!(
            sequence.windows(2).all(|w| w[0] < w[1]),
            "each caller sees increasing timestamps"
        );
        all.extend(sequence.iter().copied());
    }
    assert_eq!(all.len(), 32 * 200, "no timestamp is handed out twice");
    let highest = *all.iter().max().unwrap();
    let physical = binlog_cluster::tso::physical_ms(highest);
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        (now_ms - physical).abs() < 10_000,
        "physical part is wall-clock milliseconds"
    );

    world.pd.restart().unwrap();
    // The same client finds the restarted PD by itself.
    let after = draw_concurrently(&pd, 8, 50).await;
    for sequence in &after {
        assert!(sequence[0] > highest, "a restarted pd-sim never goes back");
        assert!(sequence.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_id_survives_restarts() {
    let mut world = world();
    let urls = vec![world.pd.url()];
    let first = PdClient::connect(&urls, &TlsSettings::default())
        .await
        .unwrap()
        .cluster_id();
    assert_ne!(first, 0);
    world.pd.restart().unwrap();
    let second = PdClient::connect(&urls, &TlsSettings::default())
        .await
        .unwrap()
        .cluster_id();
    assert_eq!(first, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_and_lease_keep_alive_work_through_pd_sim() {
    let world = world();
    let mut through_pd = etcd_client::Client::connect([world.pd.url()], None)
        .await
        .unwrap();
    let mut direct = etcd_client::Client::connect([world.etcd.url()], None)
        .await
        .unwrap();

    // A watch opened through pd-sim sees writes made directly to etcd.
    let mut watch = through_pd
        .watch("/e2e/watch/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    direct.put("/e2e/watch/a", "1", None).await.unwrap();
    direct.put("/e2e/watch/b", "2", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch events arrive within 10 s")
            .unwrap()
            .unwrap();
        for event in response.events() {
            assert_eq!(event.event_type(), EventType::Put);
            seen.push(event.kv().unwrap().key_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ["/e2e/watch/a", "/e2e/watch/b"]);

    // A 2 s lease kept alive through pd-sim outlives its TTL.
    let lease = through_pd.lease_grant(2, None).await.unwrap().id();
    through_pd
        .put(
            "/e2e/leased",
            "x",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    let (mut keeper, mut responses) = through_pd.lease_keep_alive(lease).await.unwrap();
    for _ in 0..5 {
        keeper.keep_alive().await.unwrap();
        let answer = responses.message().await.unwrap().unwrap();
        assert!(answer.ttl() > 0, "the lease is still alive");
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let kept = direct.get("/e2e/leased", None).await.unwrap();
    assert_eq!(kept.kvs().len(), 1, "the leased key outlived its 2 s TTL");

    // Without keep-alives it expires.
    drop(keeper);
    drop(responses);
    let expired = e2e::wait_until(Duration::from_secs(10), || {
        futures::executor::block_on(direct.get("/e2e/leased", Some(GetOptions::new())))
            .map(|r| r.kvs().is_empty())
            .unwrap_or(false)
    });
    assert!(expired, "the key goes once keep-alives stop");
}
