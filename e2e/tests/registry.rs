//! The node registry against real etcd, reached through pd-sim as components reach PD.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::time::Duration;

use binlog_cluster::registry::{REQUEST_TIMEOUT, node_key};
use binlog_cluster::{
    NodeKind, NodeState, NodeStatus, Registry, RegistryError, RegistryEvent, TlsSettings,
};
use e2e::{Etcd, PdSimProcess};
use futures::StreamExt;

const ORIGINAL: &str = r#"{"nodeId":"ip-172-16-5-71:8250","host":"172.16.5.71:8250","state":"online","isAlive":false,"score":0,"label":null,"maxCommitTS":412518831548007863,"updateTS":412518831338292471}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_list_and_watch_follow_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start().unwrap();
    let pd = PdSimProcess::start(etcd.url(), &dir.path().join("pd.log")).unwrap();
    let registry = Registry::connect(&[pd.url()], &TlsSettings::default())
        .await
        .unwrap();
    let mut raw = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();

    let (_, revision) = registry.list(NodeKind::Pump).await.unwrap();
    let mut events = registry.watch(NodeKind::Pump, revision + 1).await.unwrap();

    // A record in the original's exact JSON is read and written back byte for byte.
    let key = node_key(NodeKind::Pump, "ip-172-16-5-71:8250");
    raw.put(key.as_str(), ORIGINAL, None).await.unwrap();
    let status = registry
        .get(NodeKind::Pump, "ip-172-16-5-71:8250")
        .await
        .unwrap();
    registry.update(NodeKind::Pump, &status).await.unwrap();
    let stored = raw.get(key.as_str(), None).await.unwrap();
    assert_eq!(stored.kvs()[0].value_str().unwrap(), ORIGINAL);

    // Create refuses an existing key; update refuses a missing one.
    assert!(matches!(
        registry.create(NodeKind::Pump, &status).await,
        Err(RegistryError::AlreadyExists(_))
    ));
    let newcomer = NodeStatus::new("p2:8250", "127.0.0.1:8251", NodeState::Online);
    let missing = registry
        .update(NodeKind::Pump, &newcomer)
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "key /tidb-binlog/v1/pumps/p2:8250 in etcd not found"
    );
    registry.upsert(NodeKind::Pump, &newcomer).await.unwrap();

    // Records written by tidb-operator carry only three fields; nested keys are not nodes.
    raw.put(
        node_key(NodeKind::Pump, "pump-0").as_str(),
        r#"{"nodeId":"pump-0","host":"pump-0.svc:8250","state":"closing"}"#,
        None,
    )
    .await
    .unwrap();
    raw.put("/tidb-binlog/v1/pumps/nested/child", "not json", None)
        .await
        .unwrap();
    let (mut pumps, _) = registry.list(NodeKind::Pump).await.unwrap();
    pumps.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let ids: Vec<_> = pumps
        .iter()
        .map(|p| (p.node_id.as_str(), p.state))
        .collect();
    assert_eq!(
        ids,
        [
            ("ip-172-16-5-71:8250", NodeState::Online),
            ("p2:8250", NodeState::Online),
            ("pump-0", NodeState::Closing)
        ]
    );
    assert!(registry.list(NodeKind::Drainer).await.unwrap().0.is_empty());

    // The watch saw every write in order.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("watch events within 10 s")
            .unwrap();
        seen.push(event);
    }
    let ids: Vec<_> = seen
        .into_iter()
        .map(|event| match event {
            Ok(RegistryEvent::Put(status)) => status.node_id,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        [
            "ip-172-16-5-71:8250",
            "ip-172-16-5-71:8250",
            "p2:8250",
            "pump-0"
        ]
    );

    // An undecodable direct child fails the listing and names its key.
    raw.put(node_key(NodeKind::Drainer, "bad").as_str(), "{", None)
        .await
        .unwrap();
    let err = registry
        .list(NodeKind::Drainer)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("value of /tidb-binlog/v1/drainers/bad is not a node record"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_fails_within_the_timeout_and_is_named() {
    let port = e2e::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let result = async {
        let registry =
            Registry::connect(std::slice::from_ref(&url), &TlsSettings::default()).await?;
        registry.list(NodeKind::Pump).await
    }
    .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        started.elapsed() < REQUEST_TIMEOUT * 3,
        "gave up in {:?}",
        started.elapsed()
    );
}
