//! Pod-template pieces shared by the pump and drainer builders: scrape and config-hash
//! annotations, config and TLS volumes, the readiness probe, placement.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, ContainerPort, HTTPGetAction, KeyToPath, PodSpec, Probe,
    SecretVolumeSource, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::Placement;
use crate::names;

pub const CONFIG_VOLUME: &str = "config";
pub const CLUSTER_TLS_VOLUME: &str = "cluster-tls";
pub const DOWNSTREAM_TLS_VOLUME: &str = "downstream-tls";

/// Prometheus scrape hints for `port`'s `/metrics`, and the config hash.
pub fn annotations(port: i32, config_hash: String) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), port.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
        (names::CONFIG_HASH_ANNOTATION.to_string(), config_hash),
    ])
}

/// The ConfigMap `config_map`'s key `file` as a volume holding the file of the same name.
pub fn config_volume(config_map: String, file: &str) -> Volume {
    Volume {
        name: CONFIG_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            items: Some(vec![KeyToPath {
                key: file.to_string(),
                path: file.to_string(),
                mode: None,
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A Secret as a volume.
pub fn secret_volume(volume: &str, secret: &str) -> Volume {
    Volume {
        name: volume.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

pub fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

/// `GET /status` on `port`. With cluster TLS the server may demand a client certificate, which
/// the kubelet cannot present, so the probe falls back to a TCP connect.
pub fn readiness_probe(port: i32, tls: bool) -> Probe {
    let port = IntOrString::Int(port);
    let (http_get, tcp_socket) = if tls {
        (None, Some(TCPSocketAction { port, host: None }))
    } else {
        (
            Some(HTTPGetAction {
                path: Some("/status".to_string()),
                port,
                scheme: Some("HTTP".to_string()),
                ..HTTPGetAction::default()
            }),
            None,
        )
    };
    Probe {
        http_get,
        tcp_socket,
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// Applies affinity, tolerations and node selector to a pod spec.
pub fn place(mut spec: PodSpec, placement: &Placement) -> PodSpec {
    spec.affinity = placement.affinity.clone();
    spec.tolerations = (!placement.tolerations.is_empty()).then(|| placement.tolerations.clone());
    spec.node_selector =
        (!placement.node_selector.is_empty()).then(|| placement.node_selector.clone());
    spec
}
