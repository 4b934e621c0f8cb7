//! The pump StatefulSet `<cluster>-pump`: one pod per pump, each with its own `data` volume
//! from the claim template, a stable DNS name through the headless Service, and its pod name as
//! its node id in PD's registry.
//!
//! The container runs, through the [`launcher`] that parks an offlined pump,
//! `/pump -pd-urls=<pd> -addr=0.0.0.0:8250 -advertise-addr=$(POD_NAME).<cluster>-pump.<ns>.svc:8250
//! -node-id=$(POD_NAME) -config=/etc/pump/pump.toml -data-dir=/data`, where `POD_NAME` comes from
//! the downward API and Kubernetes expands `$(POD_NAME)` in the arguments.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::config::{config_hash, render_pump_toml};
use super::{BuildError, Owner, launcher, pd_urls, pod};
use crate::crd::{BinlogCluster, StorageSpec};
use crate::labels;
use crate::names;

/// The name of the environment variable holding the pod name.
pub const POD_NAME_ENV: &str = "POD_NAME";

/// The pump container's arguments (after `/pump`).
pub fn pump_args(cluster: &BinlogCluster) -> Result<Vec<String>, BuildError> {
    let owner = Owner::of(cluster)?;
    let pod = format!("$({POD_NAME_ENV})");
    Ok(vec![
        format!("-pd-urls={}", pd_urls(cluster)?),
        format!("-addr=0.0.0.0:{}", names::PUMP_PORT),
        format!(
            "-advertise-addr={}",
            names::pump_advertise_addr(&owner.name, &owner.namespace, &pod)
        ),
        format!("-node-id={pod}"),
        format!(
            "-config={}/{}",
            names::PUMP_CONFIG_DIR,
            names::PUMP_CONFIG_FILE
        ),
        format!("-data-dir={}", names::DATA_DIR),
    ])
}

/// The pump StatefulSet.
pub fn pump_stateful_set(cluster: &BinlogCluster) -> Result<StatefulSet, BuildError> {
    let owner = Owner::of(cluster)?;
    let spec = &cluster.spec;
    let name = names::pump(&owner.name);
    let selector = labels::pump_selector(&owner.name);
    let tls = spec.tls.as_ref();

    let mut mounts = vec![
        pod::mount(names::DATA_VOLUME, names::DATA_DIR, false),
        pod::mount(pod::CONFIG_VOLUME, names::PUMP_CONFIG_DIR, true),
    ];
    let mut volumes = vec![pod::config_volume(name.clone(), names::PUMP_CONFIG_FILE)];
    if let Some(tls) = tls {
        mounts.push(pod::mount(
            pod::CLUSTER_TLS_VOLUME,
            names::CLUSTER_TLS_DIR,
            true,
        ));
        volumes.push(pod::secret_volume(
            pod::CLUSTER_TLS_VOLUME,
            &tls.cluster_secret_name,
        ));
    }

    let container = Container {
        name: "pump".to_string(),
        image: Some(spec.image()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(launcher::command(
            launcher::pump_script(),
            launcher::PUMP_LAUNCHER_NAME,
        )),
        args: Some(pump_args(cluster)?),
        env: Some(vec![EnvVar {
            name: POD_NAME_ENV.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_string(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        }]),
        ports: Some(vec![pod::port("pump", names::PUMP_PORT)]),
        readiness_probe: Some(pod::readiness_probe(names::PUMP_PORT, tls.is_some())),
        resources: spec.pump.resources.clone(),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let pod_spec = pod::place(
        PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        },
        &spec.pump.placement,
    );

    Ok(StatefulSet {
        metadata: owner.meta(name.clone(), labels::with_managed_by(selector.clone())),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.pump.replicas),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::with_managed_by(selector.clone())),
                    annotations: Some(pod::annotations(
                        names::PUMP_PORT,
                        config_hash(&render_pump_toml(cluster)?),
                    )),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: Some(vec![claim(
                names::DATA_VOLUME,
                &spec.pump.storage,
                selector,
            )]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    })
}

/// A ReadWriteOnce claim of `storage`'s size and class. Shared with the drainer's PVC.
pub(super) fn claim(
    name: &str,
    storage: &StorageSpec,
    labels: BTreeMap<String, String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    storage.size.clone(),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::cluster;
    use crate::crd::{PdServiceRef, PdSpec, TlsSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn sts(bc: &BinlogCluster) -> StatefulSet {
        pump_stateful_set(bc).unwrap()
    }

    fn container(set: &StatefulSet) -> Container {
        set.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone()
    }

    #[test]
    fn replicas_service_and_selector() {
        let set = sts(&cluster());
        assert_eq!(set.metadata.name.as_deref(), Some("demo-pump"));
        assert_eq!(set.metadata.namespace.as_deref(), Some("tidb"));
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("demo-pump"));
        let selector = spec.selector.match_labels.clone().unwrap();
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "the selector must match the pod template"
        );
    }

    #[test]
    fn labels_and_owner_reference() {
        let set = sts(&cluster());
        let labels = set.metadata.labels.clone().unwrap();
        assert_eq!(labels[labels::NAME_LABEL], "tidb-binlog");
        assert_eq!(labels[labels::INSTANCE_LABEL], "demo");
        assert_eq!(labels[labels::COMPONENT_LABEL], "pump");
        assert_eq!(labels[labels::MANAGED_BY_LABEL], crate::FIELD_MANAGER);
        let owners = set.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "BinlogCluster");
        assert_eq!(owners[0].api_version, "binlog.tidb-rs.dev/v1alpha1");
        assert_eq!(owners[0].name, "demo");
        assert_eq!(owners[0].uid, "0d1e2f30-0000-4000-8000-000000000001");
        assert_eq!(owners[0].controller, Some(true));
    }

    #[test]
    fn command_line_uses_the_pod_name_as_node_id_and_dns_name() {
        let c = container(&sts(&cluster()));
        let command = c.command.unwrap();
        assert_eq!(command[..2], ["/bin/sh", "-c"]);
        assert_eq!(command[2], launcher::pump_script());
        assert_eq!(
            c.args.unwrap(),
            [
                "-pd-urls=http://basic-pd.tidb:2379",
                "-addr=0.0.0.0:8250",
                "-advertise-addr=$(POD_NAME).demo-pump.tidb.svc:8250",
                "-node-id=$(POD_NAME)",
                "-config=/etc/pump/pump.toml",
                "-data-dir=/data",
            ]
        );
        let env = c.env.unwrap();
        assert_eq!(env[0].name, "POD_NAME");
        assert_eq!(
            env[0]
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.name"
        );
        assert_eq!(c.image.as_deref(), Some("tidb-binlog-rs:v9.9.9"));
    }

    #[test]
    fn port_probe_and_scrape_annotations() {
        let set = sts(&cluster());
        let c = container(&set);
        assert_eq!(c.ports.unwrap()[0].container_port, 8250);
        let probe = c.readiness_probe.unwrap().http_get.unwrap();
        assert_eq!(probe.path.as_deref(), Some("/status"));
        assert_eq!(probe.port, IntOrString::Int(8250));
        let annotations = set
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "8250");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        assert_eq!(annotations[names::CONFIG_HASH_ANNOTATION].len(), 16);
    }

    #[test]
    fn volume_claim_template_has_the_requested_size_and_class() {
        let set = sts(&cluster());
        let spec = set.spec.unwrap();
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        assert!(
            claims[0].metadata.owner_references.is_none(),
            "claims outlive the cluster object"
        );
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "20Gi"
        );
        let mounts = spec.template.spec.unwrap().containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "data" && m.mount_path == "/data")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "config" && m.mount_path == "/etc/pump")
        );
    }

    #[test]
    fn placement_and_resources_reach_the_pod() {
        let set = sts(&cluster());
        let pod = set.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        let resources = pod.containers[0].resources.clone().unwrap();
        assert_eq!(resources.requests.unwrap()["memory"].0, "2Gi");
    }

    #[test]
    fn config_change_rolls_pods_and_a_scale_does_not() {
        let hash = |bc: &BinlogCluster| {
            sts(bc)
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[names::CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let base = cluster();
        let mut scaled = cluster();
        scaled.spec.pump.replicas = 5;
        assert_eq!(hash(&base), hash(&scaled));
        let mut reconfigured = cluster();
        reconfigured.spec.pump.config = Some("log-level = \"warn\"".into());
        assert_ne!(hash(&base), hash(&reconfigured));
    }

    #[test]
    fn tls_mounts_the_secret_and_uses_https_to_the_pd_service() {
        let mut bc = cluster();
        bc.spec.tls = Some(TlsSpec {
            cluster_secret_name: "demo-tls".into(),
        });
        bc.spec.pd = PdSpec::Service(PdServiceRef {
            name: "basic-pd".into(),
            namespace: None,
            port: None,
        });
        let set = sts(&bc);
        let c = container(&set);
        assert_eq!(
            c.args.as_ref().unwrap()[0],
            "-pd-urls=https://basic-pd.tidb.svc:2379"
        );
        let probe = c.readiness_probe.unwrap();
        assert!(probe.http_get.is_none() && probe.tcp_socket.is_some());
        let volumes = set.spec.unwrap().template.spec.unwrap().volumes.unwrap();
        let secret = volumes
            .iter()
            .find_map(|v| v.secret.as_ref())
            .expect("a secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("demo-tls"));
        assert!(
            c.volume_mounts
                .unwrap()
                .iter()
                .any(|m| m.mount_path == names::CLUSTER_TLS_DIR)
        );
    }

    #[test]
    fn objects_need_a_stored_cluster() {
        let mut bc = cluster();
        bc.metadata.uid = None;
        assert_eq!(
            pump_stateful_set(&bc).unwrap_err(),
            BuildError::MissingMetadata("uid")
        );
    }
}
