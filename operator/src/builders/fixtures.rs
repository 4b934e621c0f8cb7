//! Test fixtures: a stored-looking BinlogCluster built from a YAML spec.

use kube::api::ObjectMeta;

use crate::crd::{BinlogCluster, BinlogClusterSpec};

/// A spec with three pumps and one drainer of each kind.
pub const SPEC: &str = r#"
pd: {urls: ["http://basic-pd.tidb:2379"]}
version: v9.9.9
pump:
  replicas: 3
  storage: {size: 20Gi, storageClassName: fast}
  config: |
    log-level = "debug"
    [storage]
    sync-log = true
  resources: {requests: {cpu: "1", memory: 2Gi}}
  tolerations: [{key: dedicated, operator: Equal, value: binlog, effect: NoSchedule}]
  nodeSelector: {disk: ssd}
drainers:
  - name: mysql
    downstream:
      mysql: {host: mysql.db, port: 3307, user: repl, passwordSecretRef: {name: mysql-pass, key: password}}
    initialCommitTs: 400000000000000000
    config: |
      [syncer]
      worker-count = 4
  - name: backup
    downstream: {file: {retentionDays: 7}}
    storage: {size: 100Gi}
  - name: events
    downstream: {kafka: {addrs: ["k1:9092", "k2:9092"], topic: binlog}}
"#;

/// Reads Kubernetes-style YAML into `T`. Goes through `serde_json::Value`: serde_yaml 0.9 wants
/// YAML tags (`!mysql`) for enums, while Kubernetes writes them as one-key maps (`mysql: {}`).
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let value: serde_json::Value = serde_yaml::from_str(text).unwrap();
    serde_json::from_value(value).unwrap()
}

pub fn cluster_from(spec_yaml: &str) -> BinlogCluster {
    let spec: BinlogClusterSpec = from_yaml(spec_yaml);
    let mut cluster = BinlogCluster::new("demo", spec);
    cluster.metadata = ObjectMeta {
        name: Some("demo".into()),
        namespace: Some("tidb".into()),
        uid: Some("0d1e2f30-0000-4000-8000-000000000001".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    cluster
}

pub fn cluster() -> BinlogCluster {
    cluster_from(SPEC)
}
