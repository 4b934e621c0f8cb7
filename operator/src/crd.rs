//! The `BinlogCluster` custom resource (`binlog.tidb-rs.dev/v1alpha1`): its spec, generated into a
//! CRD by kube's `CustomResource` derive and schemars, with the status and scale subresources
//! (`kubectl scale binlogcluster/x --replicas=N` sets `.spec.pump.replicas`) and printer columns.
//!
//! The status types live in [`crate::status`]. Run `binlog-operator crd` to print the CRD YAML;
//! `crds/binlogclusters.yaml` is that output, and a test fails when it drifts from these types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, SecretKeySelector, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::BinlogClusterStatus;

/// The API group the project owns.
pub const GROUP: &str = "binlog.tidb-rs.dev";
/// The only served version.
pub const VERSION: &str = "v1alpha1";
/// Image repository used when `spec.image` is not set.
pub const DEFAULT_IMAGE: &str = "tidb-binlog-rs";
/// Size of a drainer's data volume when its checkpoint must live on disk (file and kafka
/// downstreams) and `storage` is not given.
pub const DEFAULT_DRAINER_STORAGE: &str = "10Gi";

/// A TiDB-Binlog deployment: a set of pumps (a StatefulSet) and any number of drainers (one
/// Deployment each), all registered in the PD given by `pd`.
// Each `printcolumn(...)` repeats `type_ = ...`; clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "binlog.tidb-rs.dev",
    version = "v1alpha1",
    kind = "BinlogCluster",
    plural = "binlogclusters",
    shortname = "bc",
    category = "tidb",
    namespaced,
    status = "BinlogClusterStatus",
    doc = "A TiDB-Binlog cluster: pumps (a StatefulSet) and drainers (one Deployment each).",
    scale(
        spec_replicas_path = ".spec.pump.replicas",
        status_replicas_path = ".status.pump.replicas",
        label_selector_path = ".status.pump.selector"
    ),
    printcolumn(
        name = "Ready Pumps",
        type_ = "integer",
        json_path = ".status.pump.readyReplicas",
        description = "pump pods that are ready"
    ),
    printcolumn(
        name = "Desired Pumps",
        type_ = "integer",
        json_path = ".spec.pump.replicas",
        description = "pumps asked for"
    ),
    printcolumn(
        name = "Ready Drainers",
        type_ = "integer",
        json_path = ".status.drainers.readyReplicas",
        description = "drainer pods that are ready"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "summary of the conditions"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BinlogClusterSpec {
    /// Where PD is. Pumps and drainers register in PD's embedded etcd and get timestamps from PD.
    pub pd: PdSpec,
    /// Image tag for pump and drainer (the image has `/pump` and `/drainer` at its root).
    /// Defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Image repository (default `tidb-binlog-rs`). If it already carries a tag (`repo:tag`) or a
    /// digest (`repo@sha256:…`) it is used as is and `version` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy of pump and drainer containers (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Cluster TLS. When set, PD is reached over https, and pumps and drainers serve TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// The pumps.
    pub pump: PumpSpec,
    /// The drainers, each replicating every pump's binlogs to one downstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drainers: Vec<DrainerSpec>,
    /// What happens to a drainer's volume (its checkpoint, and a file drainer's binlog files)
    /// once the drainer is offline after being removed from `drainers` or with the whole
    /// cluster: `Retain` (default) keeps the PersistentVolumeClaim, `Delete` deletes it.
    #[serde(default)]
    pub drainer_volume_retention: VolumeRetention,
}

/// What happens to a volume whose drainer is gone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VolumeRetention {
    /// Keep the PersistentVolumeClaim (a drainer of the same name reuses it).
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaim.
    Delete,
}

/// Where PD is: a list of URLs, or a Service (for example a TidbCluster's `<tc>-pd`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PdSpec {
    /// PD client URLs, e.g. `http://basic-pd.tidb:2379`.
    Urls(Vec<String>),
    /// A PD Service; the URL becomes `<scheme>://<name>.<namespace>.svc:<port>`, the scheme
    /// following `spec.tls`.
    Service(PdServiceRef),
}

/// A PD client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdServiceRef {
    /// Service name, e.g. `basic-pd` for the TidbCluster `basic`.
    pub name: String,
    /// Namespace of the Service; defaults to the BinlogCluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Client port; defaults to 2379.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Cluster TLS material, as Secrets of type `kubernetes.io/tls` with a `ca.crt` key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret used by pumps and drainers (server certificate, client certificate to PD and to each
    /// other, and the CA). Mounted at `/var/lib/binlog-tls`, wired into `[security]`.
    pub cluster_secret_name: String,
}

/// A persistent volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `50Gi`.
    pub size: Quantity,
    /// StorageClass; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Where pods may run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// The pumps: a StatefulSet whose pods are the pump nodes (node id = pod name).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PumpSpec {
    /// Number of pumps. Lowering it offlines the highest ordinals first, one at a time, each
    /// only once every drainer has consumed its binlogs. Target of the scale subresource.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Each pump's data volume (binlogs are kept here until `gcDays` passes).
    pub storage: StorageSpec,
    /// CPU and memory of the pump container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// pump.toml content passed through. Keys the operator owns (`gc` when `gcDays` is set,
    /// `[storage] stop-write-at-available-space` when set here or defaulted, `[security]` when
    /// `spec.tls` is set) are overwritten; listen/advertise address, PD URLs, node id and
    /// data dir are command-line flags, which win over the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(flatten)]
    pub placement: Placement,
    /// Days binlogs are kept (pump `gc`). Unset: the value in `config`, else the pump's 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub gc_days: Option<u32>,
    /// Pump refuses writes when its volume has less free space than this. Unset: the value in
    /// `config`, else min(10 GiB, 10% of `storage.size`), so that a small volume is usable
    /// (the pump's own default of 10 GiB would refuse every write on a volume under 10 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_write_at_available_space: Option<Quantity>,
}

/// One drainer: a Deployment with one replica and a stable node id `<cluster>-drainer-<name>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainerSpec {
    /// Stable name (a DNS label). Renaming creates a new drainer and offlines the old one.
    pub name: String,
    /// Where binlogs go.
    pub downstream: Downstream,
    /// Commit timestamp to start from when the drainer has no checkpoint yet; -1 (default) is
    /// "now" (PD's current timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_commit_ts: Option<i64>,
    /// drainer.toml content passed through. `[syncer] db-type`, the `[syncer.to]` keys set by
    /// `downstream`, and `[security]` (with `spec.tls`) are owned by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// CPU and memory of the drainer container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The data volume (checkpoint for file and kafka downstreams, binlog files for file). File
    /// and kafka drainers always get one (default 10Gi); mysql and tidb drainers keep their
    /// checkpoint in the downstream and get one only if this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    #[serde(flatten)]
    pub placement: Placement,
}

/// A drainer's downstream (`[syncer] db-type` and `[syncer.to]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Downstream {
    /// MySQL (or MariaDB); checkpoint in the downstream table `tidb_binlog.checkpoint`.
    Mysql(SqlDownstream),
    /// TiDB; checkpoint in the downstream table `tidb_binlog.checkpoint`.
    Tidb(SqlDownstream),
    /// Binlog files (`pb` format, readable by Reparo) in the data volume under `/data/pb`;
    /// checkpoint in the data volume.
    File(FileDownstream),
    /// Kafka (one message per transaction); checkpoint in the data volume.
    Kafka(KafkaDownstream),
}

/// A MySQL-protocol downstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqlDownstream {
    pub host: String,
    #[serde(default = "default_sql_port")]
    pub port: i32,
    pub user: String,
    /// The password, from a Secret in the BinlogCluster's namespace (passed to the drainer in the
    /// `MYSQL_PSWD` environment variable, never written into the ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// Secret (`ca.crt`, `tls.crt`, `tls.key`) for TLS to the downstream (`[syncer.to.security]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

fn default_sql_port() -> i32 {
    3306
}

/// A file downstream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileDownstream {
    /// Days binlog files are kept (`[syncer.to] retention-time`); 0 or unset keeps them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// A Kafka downstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaDownstream {
    /// Broker addresses, `host:port`.
    pub addrs: Vec<String>,
    /// Topic; the drainer's default is `<cluster-id>_obinlog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl BinlogClusterSpec {
    /// The pump and drainer image: `spec.image` as is when it names a tag or digest, else
    /// `<spec.image or tidb-binlog-rs>:<spec.version or the operator's version>`.
    pub fn image(&self) -> String {
        let repository = self.image.as_deref().unwrap_or(DEFAULT_IMAGE);
        let last_segment = repository.rsplit('/').next().unwrap_or(repository);
        if last_segment.contains(':') || repository.contains('@') {
            return repository.to_string();
        }
        let tag = self
            .version
            .clone()
            .unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")));
        format!("{repository}:{tag}")
    }
}

impl Downstream {
    /// `[syncer] db-type`.
    pub fn db_type(&self) -> &'static str {
        match self {
            Downstream::Mysql(_) => "mysql",
            Downstream::Tidb(_) => "tidb",
            Downstream::File(_) => "file",
            Downstream::Kafka(_) => "kafka",
        }
    }

    /// Whether the drainer keeps its checkpoint (and, for file, its output) in its data dir,
    /// so that the data dir must be a persistent volume.
    pub fn needs_disk(&self) -> bool {
        matches!(self, Downstream::File(_) | Downstream::Kafka(_))
    }
}

impl DrainerSpec {
    /// The data volume this drainer gets, if any (see [`DrainerSpec::storage`]).
    pub fn effective_storage(&self) -> Option<StorageSpec> {
        match (&self.storage, self.downstream.needs_disk()) {
            (Some(storage), _) => Some(storage.clone()),
            (None, true) => Some(StorageSpec {
                size: Quantity(DEFAULT_DRAINER_STORAGE.to_string()),
                storage_class_name: None,
            }),
            (None, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: Option<&str>, version: Option<&str>) -> BinlogClusterSpec {
        BinlogClusterSpec {
            pd: PdSpec::Urls(vec!["http://pd:2379".into()]),
            version: version.map(String::from),
            image: image.map(String::from),
            image_pull_policy: None,
            tls: None,
            pump: PumpSpec {
                replicas: 1,
                storage: StorageSpec {
                    size: Quantity("1Gi".into()),
                    storage_class_name: None,
                },
                resources: None,
                config: None,
                placement: Placement::default(),
                gc_days: None,
                stop_write_at_available_space: None,
            },
            drainers: vec![],
            drainer_volume_retention: VolumeRetention::Retain,
        }
    }

    #[test]
    fn image_from_repository_and_version() {
        assert_eq!(spec(None, Some("v1.2.3")).image(), "tidb-binlog-rs:v1.2.3");
        assert_eq!(
            spec(Some("registry:5000/me/binlog"), Some("dev")).image(),
            "registry:5000/me/binlog:dev"
        );
        assert_eq!(
            spec(Some("me/binlog:pinned"), Some("ignored")).image(),
            "me/binlog:pinned"
        );
        assert_eq!(
            spec(Some("me/binlog@sha256:abc"), None).image(),
            "me/binlog@sha256:abc"
        );
        assert!(spec(None, None).image().starts_with("tidb-binlog-rs:v"));
    }

    #[test]
    fn spec_reads_from_yaml() {
        let yaml = r#"
pd: {service: {name: basic-pd}}
pump:
  replicas: 3
  storage: {size: 50Gi, storageClassName: fast}
  gcDays: 3
  nodeSelector: {disk: ssd}
drainers:
  - name: to-mysql
    downstream: {mysql: {host: db, user: root, passwordSecretRef: {name: db, key: password}}}
  - name: backup
    downstream: {file: {}}
  - name: events
    downstream: {kafka: {addrs: ["k:9092"], topic: t}}
"#;
        let spec: BinlogClusterSpec = crate::builders::fixtures::from_yaml(yaml);
        assert_eq!(spec.pump.replicas, 3);
        assert_eq!(spec.pump.placement.node_selector["disk"], "ssd");
        let Downstream::Mysql(sql) = &spec.drainers[0].downstream else {
            panic!("not mysql: {:?}", spec.drainers[0].downstream)
        };
        assert_eq!(sql.port, 3306);
        assert_eq!(spec.drainers[0].effective_storage(), None);
        assert_eq!(
            spec.drainers[1].effective_storage().unwrap().size.0,
            DEFAULT_DRAINER_STORAGE
        );
        assert!(spec.drainers[2].downstream.needs_disk());
    }
}
