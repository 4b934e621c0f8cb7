//! Names, ports, paths and DNS addresses of the objects the operator manages, in one place so
//! the builders, the reconciler and the tests agree on them.
//!
//! | object | name |
//! |---|---|
//! | pump StatefulSet, headless Service, ConfigMap | `<cluster>-pump` |
//! | pump pod / node id | `<cluster>-pump-<ordinal>` |
//! | pump PVC | `data-<cluster>-pump-<ordinal>` |
//! | drainer Deployment, headless Service, ConfigMap, node id | `<cluster>-drainer-<name>` |
//! | drainer PVC | `data-<cluster>-drainer-<name>` |

/// The pump's gRPC and HTTP port.
pub const PUMP_PORT: i32 = 8250;
/// The drainer's gRPC and HTTP port.
pub const DRAINER_PORT: i32 = 8249;
/// PD's client port, used when `spec.pd` names a Service.
pub const PD_PORT: i32 = 2379;

/// Where the data volume is mounted (`-data-dir`).
pub const DATA_DIR: &str = "/data";
/// Name of the data volume and of the pump's volumeClaimTemplate.
pub const DATA_VOLUME: &str = "data";
/// Where pump.toml is mounted.
pub const PUMP_CONFIG_DIR: &str = "/etc/pump";
/// Key of pump.toml in its ConfigMap and file name under [`PUMP_CONFIG_DIR`].
pub const PUMP_CONFIG_FILE: &str = "pump.toml";
/// Where drainer.toml is mounted.
pub const DRAINER_CONFIG_DIR: &str = "/etc/drainer";
/// Key of drainer.toml in its ConfigMap and file name under [`DRAINER_CONFIG_DIR`].
pub const DRAINER_CONFIG_FILE: &str = "drainer.toml";
/// Where the cluster TLS secret (`ca.crt`, `tls.crt`, `tls.key`) is mounted.
pub const CLUSTER_TLS_DIR: &str = "/var/lib/binlog-tls";
/// Where a drainer's downstream TLS secret is mounted.
pub const DOWNSTREAM_TLS_DIR: &str = "/var/lib/downstream-tls";
/// Where a file drainer writes its binlog files (inside the data volume, apart from the savepoint).
pub const DRAINER_FILE_DIR: &str = "/data/pb";

/// Pod-template annotation holding the hash of the rendered config, so a config change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "binlog.tidb-rs.dev/config-hash";
/// PersistentVolumeClaim annotation marking the volume of a pump that went offline (value: when,
/// RFC 3339). A marked volume is deleted before its ordinal is created again, so a new pump never
/// starts on an old pump's data.
pub const SCALED_IN_ANNOTATION: &str = "binlog.tidb-rs.dev/scaled-in-at";
/// BinlogCluster annotation: with value `"true"`, deleting the cluster skips offlining pumps and
/// drainers (for when PD is gone for good); their registry records are left as they are.
pub const FORCE_DELETE_ANNOTATION: &str = "binlog.tidb-rs.dev/force-delete";
/// The finalizer that holds a BinlogCluster until its pumps and drainers are offline.
pub const FINALIZER: &str = "binlog.tidb-rs.dev/offline-nodes";

/// The pump StatefulSet, its headless Service and its ConfigMap.
pub fn pump(cluster: &str) -> String {
    format!("{cluster}-pump")
}

/// A pump pod; also its stable node id in the registry.
pub fn pump_pod(cluster: &str, ordinal: u32) -> String {
    format!("{cluster}-pump-{ordinal}")
}

/// The PVC the StatefulSet creates for a pump ordinal from the `data` claim template.
pub fn pump_pvc(cluster: &str, ordinal: u32) -> String {
    format!("{DATA_VOLUME}-{cluster}-pump-{ordinal}")
}

/// The ordinal of one of this cluster's pump pods (or node ids): `<cluster>-pump-<ordinal>`.
pub fn pump_ordinal(cluster: &str, pod: &str) -> Option<u32> {
    let ordinal = pod.strip_prefix(&pump(cluster))?.strip_prefix('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse().ok()
}

/// The ordinal of one of this cluster's pump volumes: `data-<cluster>-pump-<ordinal>`.
pub fn pump_pvc_ordinal(cluster: &str, pvc: &str) -> Option<u32> {
    pump_ordinal(cluster, pvc.strip_prefix(DATA_VOLUME)?.strip_prefix('-')?)
}

/// DNS name (host:port) a pump pod advertises, through the headless Service.
pub fn pump_advertise_addr(cluster: &str, namespace: &str, pod: &str) -> String {
    format!("{pod}.{}.{namespace}.svc:{PUMP_PORT}", pump(cluster))
}

/// A drainer's Deployment, headless Service, ConfigMap and stable node id.
pub fn drainer(cluster: &str, drainer: &str) -> String {
    format!("{cluster}-drainer-{drainer}")
}

/// The PVC holding a drainer's data dir (savepoint checkpoint, file output).
pub fn drainer_pvc(cluster: &str, drainer_name: &str) -> String {
    format!("{DATA_VOLUME}-{}", drainer(cluster, drainer_name))
}

/// DNS name (host:port) a drainer advertises: its own headless Service, which resolves to its pod.
pub fn drainer_advertise_addr(cluster: &str, namespace: &str, drainer_name: &str) -> String {
    format!(
        "{}.{namespace}.svc:{DRAINER_PORT}",
        drainer(cluster, drainer_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_documented_table() {
        assert_eq!(pump("demo"), "demo-pump");
        assert_eq!(pump_pod("demo", 2), "demo-pump-2");
        assert_eq!(pump_pvc("demo", 2), "data-demo-pump-2");
        assert_eq!(
            pump_advertise_addr("demo", "ns", "demo-pump-0"),
            "demo-pump-0.demo-pump.ns.svc:8250"
        );
        assert_eq!(drainer("demo", "mysql"), "demo-drainer-mysql");
        assert_eq!(drainer_pvc("demo", "mysql"), "data-demo-drainer-mysql");
        assert_eq!(
            drainer_advertise_addr("demo", "ns", "mysql"),
            "demo-drainer-mysql.ns.svc:8249"
        );
    }

    #[test]
    fn ordinals_come_back_only_from_this_clusters_names() {
        assert_eq!(pump_ordinal("demo", "demo-pump-12"), Some(12));
        assert_eq!(pump_ordinal("demo", "demo-pump-"), None);
        assert_eq!(pump_ordinal("demo", "demo-pump-x"), None);
        assert_eq!(pump_ordinal("demo", "demo-2-pump-1"), None);
        assert_eq!(pump_ordinal("demo", "other-pump-1"), None);
        assert_eq!(pump_pvc_ordinal("demo", "data-demo-pump-3"), Some(3));
        assert_eq!(pump_pvc_ordinal("demo", "demo-pump-3"), None);
    }
}
