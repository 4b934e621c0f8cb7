//! Desired-state builders: pure functions from a `BinlogCluster` to the Kubernetes objects that
//! should exist for it. No client, no I/O; the reconciler applies what these return with
//! server-side apply under [`crate::FIELD_MANAGER`].
//!
//! Every object carries the `app.kubernetes.io/{name,instance,component,managed-by}` labels and a
//! controller owner reference to the BinlogCluster, except PersistentVolumeClaims: those hold
//! binlogs, checkpoints and backup files and outlive the cluster object, like a StatefulSet's
//! claims (see [`drainer::drainer_pvc`]).

pub mod config;
pub mod drainer;
pub mod launcher;
mod pod;
pub mod pump;
pub mod service;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::{BinlogCluster, PdSpec};
use crate::names;

/// Why desired state could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The object lacks something only a stored object has.
    #[error("the BinlogCluster has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// The spec is unusable; the message lists every problem.
    #[error("invalid BinlogCluster spec: {0}")]
    InvalidSpec(String),
    /// A config passthrough is not valid TOML, or collides with a key the operator owns.
    #[error("{field}: {reason}")]
    InvalidConfig { field: String, reason: String },
}

/// Everything that should exist for one BinlogCluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub pump: PumpObjects,
    /// In spec order.
    pub drainers: Vec<DrainerObjects>,
}

/// The pump's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct PumpObjects {
    pub config_map: ConfigMap,
    pub service: Service,
    pub stateful_set: StatefulSet,
}

/// One drainer's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainerObjects {
    /// The drainer's `name` in the spec.
    pub name: String,
    pub config_map: ConfigMap,
    pub service: Service,
    pub deployment: Deployment,
    /// Present when the drainer's data dir must persist.
    pub pvc: Option<PersistentVolumeClaim>,
}

/// Validates the cluster and builds all its objects.
pub fn desired(cluster: &BinlogCluster) -> Result<Desired, BuildError> {
    let owner = Owner::of(cluster)?;
    let problems = crate::validate::problems(&owner.name, &cluster.spec);
    if !problems.is_empty() {
        return Err(BuildError::InvalidSpec(problems.join("; ")));
    }
    let pump = PumpObjects {
        config_map: config::pump_config_map(cluster)?,
        service: service::pump_service(cluster)?,
        stateful_set: pump::pump_stateful_set(cluster)?,
    };
    let drainers = cluster
        .spec
        .drainers
        .iter()
        .map(|drainer| {
            Ok(DrainerObjects {
                name: drainer.name.clone(),
                config_map: config::drainer_config_map(cluster, drainer)?,
                service: service::drainer_service(cluster, drainer)?,
                deployment: drainer::drainer_deployment(cluster, drainer)?,
                pvc: drainer::drainer_pvc(cluster, drainer)?,
            })
        })
        .collect::<Result<_, BuildError>>()?;
    Ok(Desired { pump, drainers })
}

/// The `--pd-urls` value: the URLs as given, or the PD Service's in-cluster URL (https with TLS).
pub fn pd_urls(cluster: &BinlogCluster) -> Result<String, BuildError> {
    Ok(match &cluster.spec.pd {
        PdSpec::Urls(urls) => urls.join(","),
        PdSpec::Service(service) => {
            let scheme = if cluster.spec.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let namespace = match &service.namespace {
                Some(namespace) => namespace.clone(),
                None => Owner::of(cluster)?.namespace,
            };
            let port = service.port.unwrap_or(names::PD_PORT);
            format!("{scheme}://{}.{namespace}.svc:{port}", service.name)
        }
    })
}

/// Name, namespace and controller owner reference of a stored BinlogCluster.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub name: String,
    pub namespace: String,
    pub reference: OwnerReference,
}

impl Owner {
    pub fn of(cluster: &BinlogCluster) -> Result<Self, BuildError> {
        let meta = cluster.meta();
        let name = meta
            .name
            .clone()
            .ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = meta
            .namespace
            .clone()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        let reference = cluster
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata("uid"))?;
        Ok(Owner {
            name,
            namespace,
            reference,
        })
    }

    /// Metadata of an object owned by the cluster.
    pub fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::cluster;
    use crate::crd::PdServiceRef;

    #[test]
    fn desired_has_the_pump_objects_and_one_set_per_drainer() {
        let desired = desired(&cluster()).unwrap();
        assert_eq!(
            desired.pump.stateful_set.metadata.name.as_deref(),
            Some("demo-pump")
        );
        let names: Vec<_> = desired.drainers.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["mysql", "backup", "events"]);
        let with_pvc: Vec<_> = desired.drainers.iter().map(|d| d.pvc.is_some()).collect();
        assert_eq!(with_pvc, [false, true, true]);
    }

    #[test]
    fn an_invalid_spec_builds_nothing() {
        let mut bc = cluster();
        bc.spec.drainers[1].name = "mysql".into();
        let err = desired(&bc).unwrap_err();
        assert!(
            matches!(&err, BuildError::InvalidSpec(m) if m.contains("used by two drainers")),
            "{err}"
        );
    }

    #[test]
    fn status_selector_string_selects_the_pump_pods() {
        let set = desired(&cluster()).unwrap().pump.stateful_set;
        let match_labels = set.spec.unwrap().selector.match_labels.unwrap();
        let selector = crate::labels::selector_string(&crate::labels::pump_selector("demo"));
        let parsed: BTreeMap<String, String> = selector
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(parsed, match_labels);
    }

    #[test]
    fn pd_service_in_another_namespace_with_a_custom_port() {
        let mut bc = cluster();
        bc.spec.pd = PdSpec::Service(PdServiceRef {
            name: "basic-pd".into(),
            namespace: Some("tidb-cluster".into()),
            port: Some(12379),
        });
        assert_eq!(
            pd_urls(&bc).unwrap(),
            "http://basic-pd.tidb-cluster.svc:12379"
        );
        bc.spec.pd = PdSpec::Urls(vec!["http://a:2379".into(), "http://b:2379".into()]);
        assert_eq!(pd_urls(&bc).unwrap(), "http://a:2379,http://b:2379");
    }
}
