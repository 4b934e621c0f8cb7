//! One Deployment per drainer in the spec: `<cluster>-drainer-<name>`, one replica, strategy
//! Recreate (two pods must never run the same drainer), a stable `-node-id` equal to the
//! Deployment name so a rollout does not register a new node in PD, and a PVC when the data dir
//! holds the checkpoint or the output.
//!
//! The container runs, through the [`launcher`] that parks an offlined drainer,
//! `/drainer -pd-urls=<pd> -addr=0.0.0.0:8249
//! -advertise-addr=<cluster>-drainer-<name>.<ns>.svc:8249 -node-id=<cluster>-drainer-<name>
//! -config=/etc/drainer/drainer.toml -data-dir=/data -initial-commit-ts=<ts or -1>`.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::config::{config_hash, render_drainer_toml};
use super::{BuildError, Owner, launcher, pd_urls, pod, pump::claim};
use crate::crd::{BinlogCluster, Downstream, DrainerSpec};
use crate::labels;
use crate::names;

/// Environment variable the drainer reads the downstream password from when the config has none.
pub const PASSWORD_ENV: &str = "MYSQL_PSWD";

/// The drainer container's arguments (after `/drainer`).
pub fn drainer_args(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<Vec<String>, BuildError> {
    let owner = Owner::of(cluster)?;
    Ok(vec![
        format!("-pd-urls={}", pd_urls(cluster)?),
        format!("-addr=0.0.0.0:{}", names::DRAINER_PORT),
        format!(
            "-advertise-addr={}",
            names::drainer_advertise_addr(&owner.name, &owner.namespace, &drainer.name)
        ),
        format!("-node-id={}", names::drainer(&owner.name, &drainer.name)),
        format!(
            "-config={}/{}",
            names::DRAINER_CONFIG_DIR,
            names::DRAINER_CONFIG_FILE
        ),
        format!("-data-dir={}", names::DATA_DIR),
        format!(
            "-initial-commit-ts={}",
            drainer.initial_commit_ts.unwrap_or(-1)
        ),
    ])
}

/// The drainer's Deployment.
pub fn drainer_deployment(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<Deployment, BuildError> {
    let owner = Owner::of(cluster)?;
    let spec = &cluster.spec;
    let name = names::drainer(&owner.name, &drainer.name);
    let selector = labels::drainer_selector(&owner.name, &drainer.name);

    let data = match drainer.effective_storage() {
        Some(_) => Volume {
            name: names::DATA_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::drainer_pvc(&owner.name, &drainer.name),
                read_only: None,
            }),
            ..Volume::default()
        },
        None => Volume {
            name: names::DATA_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    };
    let mut volumes = vec![
        data,
        pod::config_volume(name.clone(), names::DRAINER_CONFIG_FILE),
    ];
    let mut mounts = vec![
        pod::mount(names::DATA_VOLUME, names::DATA_DIR, false),
        pod::mount(pod::CONFIG_VOLUME, names::DRAINER_CONFIG_DIR, true),
    ];
    if let Some(tls) = &spec.tls {
        volumes.push(pod::secret_volume(
            pod::CLUSTER_TLS_VOLUME,
            &tls.cluster_secret_name,
        ));
        mounts.push(pod::mount(
            pod::CLUSTER_TLS_VOLUME,
            names::CLUSTER_TLS_DIR,
            true,
        ));
    }
    let mut env = Vec::new();
    if let Downstream::Mysql(sql) | Downstream::Tidb(sql) = &drainer.downstream {
        if let Some(secret) = &sql.tls_secret_name {
            volumes.push(pod::secret_volume(pod::DOWNSTREAM_TLS_VOLUME, secret));
            mounts.push(pod::mount(
                pod::DOWNSTREAM_TLS_VOLUME,
                names::DOWNSTREAM_TLS_DIR,
                true,
            ));
        }
        if let Some(password) = &sql.password_secret_ref {
            env.push(EnvVar {
                name: PASSWORD_ENV.to_string(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(password.clone()),
                    ..EnvVarSource::default()
                }),
                value: None,
            });
        }
    }

    let container = Container {
        name: "drainer".to_string(),
        image: Some(spec.image()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(launcher::command(
            launcher::drainer_script(),
            launcher::DRAINER_LAUNCHER_NAME,
        )),
        args: Some(drainer_args(cluster, drainer)?),
        env: (!env.is_empty()).then_some(env),
        ports: Some(vec![pod::port("drainer", names::DRAINER_PORT)]),
        readiness_probe: Some(pod::readiness_probe(
            names::DRAINER_PORT,
            spec.tls.is_some(),
        )),
        resources: drainer.resources.clone(),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod_spec = pod::place(
        PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        },
        &drainer.placement,
    );

    Ok(Deployment {
        metadata: owner.meta(name, labels::with_managed_by(selector.clone())),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::with_managed_by(selector)),
                    annotations: Some(pod::annotations(
                        names::DRAINER_PORT,
                        config_hash(&render_drainer_toml(cluster, drainer)?),
                    )),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The PVC `data-<cluster>-drainer-<name>` when the drainer's data dir must persist (file and
/// kafka downstreams, or `storage` given); `None` otherwise (the data dir is an emptyDir).
///
/// It carries the cluster's labels but **no owner reference**: a file drainer's volume holds
/// the binlog files used for point-in-time recovery, and deleting the BinlogCluster must not
/// garbage-collect them. Once its drainer is offline (removed from the spec, or with the whole
/// cluster) the reconciler keeps or deletes it per `spec.drainerVolumeRetention`.
pub fn drainer_pvc(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<Option<PersistentVolumeClaim>, BuildError> {
    let owner = Owner::of(cluster)?;
    Ok(drainer.effective_storage().map(|storage| {
        let mut pvc = claim(
            &names::drainer_pvc(&owner.name, &drainer.name),
            &storage,
            labels::with_managed_by(labels::drainer_selector(&owner.name, &drainer.name)),
        );
        pvc.metadata.namespace = Some(owner.namespace.clone());
        pvc
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::cluster;

    fn deployment(index: usize) -> Deployment {
        let bc = cluster();
        drainer_deployment(&bc, &bc.spec.drainers[index]).unwrap()
    }

    fn container(deployment: &Deployment) -> Container {
        deployment
            .spec
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
    fn one_recreate_replica_per_drainer() {
        let d = deployment(0);
        assert_eq!(d.metadata.name.as_deref(), Some("demo-drainer-mysql"));
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.unwrap().type_.as_deref(),
            Some("Recreate"),
            "two pods must never run one drainer"
        );
        assert_eq!(
            spec.selector.match_labels.unwrap()[labels::DRAINER_LABEL],
            "mysql"
        );
    }

    #[test]
    fn labels_and_owner_reference() {
        let d = deployment(1);
        let labels = d.metadata.labels.unwrap();
        assert_eq!(labels[labels::NAME_LABEL], "tidb-binlog");
        assert_eq!(labels[labels::INSTANCE_LABEL], "demo");
        assert_eq!(labels[labels::COMPONENT_LABEL], "drainer");
        assert_eq!(labels[labels::MANAGED_BY_LABEL], crate::FIELD_MANAGER);
        let owner = &d.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "BinlogCluster");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn stable_node_id_and_command_line() {
        let c = container(&deployment(0));
        let command = c.command.unwrap();
        assert_eq!(command[..2], ["/bin/sh", "-c"]);
        assert_eq!(command[2], launcher::drainer_script());
        assert_eq!(
            c.args.unwrap(),
            [
                "-pd-urls=http://basic-pd.tidb:2379",
                "-addr=0.0.0.0:8249",
                "-advertise-addr=demo-drainer-mysql.tidb.svc:8249",
                "-node-id=demo-drainer-mysql",
                "-config=/etc/drainer/drainer.toml",
                "-data-dir=/data",
                "-initial-commit-ts=400000000000000000",
            ]
        );
        let args = container(&deployment(1)).args.unwrap();
        assert_eq!(
            args.last().map(String::as_str),
            Some("-initial-commit-ts=-1")
        );
    }

    #[test]
    fn port_probe_and_annotations() {
        let d = deployment(2);
        let c = container(&d);
        assert_eq!(c.ports.unwrap()[0].container_port, 8249);
        assert_eq!(
            c.readiness_probe.unwrap().http_get.unwrap().port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8249)
        );
        let annotations = d
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap();
        assert_eq!(annotations["prometheus.io/port"], "8249");
        assert!(annotations.contains_key(names::CONFIG_HASH_ANNOTATION));
    }

    #[test]
    fn password_comes_from_the_secret() {
        let env = container(&deployment(0)).env.unwrap();
        assert_eq!(env[0].name, PASSWORD_ENV);
        let secret = env[0]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("mysql-pass", "password")
        );
        assert!(container(&deployment(1)).env.is_none());
    }

    #[test]
    fn disk_only_where_the_checkpoint_or_output_lives_on_disk() {
        let bc = cluster();
        // mysql: checkpoint in the downstream -> emptyDir, no PVC.
        assert_eq!(drainer_pvc(&bc, &bc.spec.drainers[0]).unwrap(), None);
        let volumes = deployment(0)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .volumes
            .unwrap();
        assert!(volumes[0].empty_dir.is_some());

        // file: the requested 100Gi.
        let pvc = drainer_pvc(&bc, &bc.spec.drainers[1]).unwrap().unwrap();
        assert_eq!(
            pvc.metadata.name.as_deref(),
            Some("data-demo-drainer-backup")
        );
        assert_eq!(pvc.metadata.namespace.as_deref(), Some("tidb"));
        assert!(pvc.metadata.owner_references.is_none());
        assert_eq!(
            pvc.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
            "100Gi"
        );
        let volumes = deployment(1)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .volumes
            .unwrap();
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-demo-drainer-backup"
        );

        // kafka: savepoint on disk, default size.
        let pvc = drainer_pvc(&bc, &bc.spec.drainers[2]).unwrap().unwrap();
        assert_eq!(
            pvc.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
            crate::crd::DEFAULT_DRAINER_STORAGE
        );
    }

    #[test]
    fn drainer_config_change_rolls_only_that_drainer() {
        let hash = |bc: &BinlogCluster, i: usize| {
            drainer_deployment(bc, &bc.spec.drainers[i])
                .unwrap()
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
        let mut changed = cluster();
        changed.spec.drainers[0].config = Some("[syncer]\nworker-count = 8\n".into());
        assert_ne!(hash(&base, 0), hash(&changed, 0));
        assert_eq!(hash(&base, 1), hash(&changed, 1));
        assert_eq!(hash(&base, 2), hash(&changed, 2));
    }
}
