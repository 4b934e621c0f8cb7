//! Headless Services: `<cluster>-pump` gives each pump pod a stable DNS name
//! (`<pod>.<cluster>-pump.<ns>.svc`), and `<cluster>-drainer-<name>` resolves to that drainer's
//! pod. Both publish not-ready addresses, so a pod's name resolves before it is ready (a pump
//! registers and notifies drainers during start-up).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildError, Owner};
use crate::crd::{BinlogCluster, DrainerSpec};
use crate::labels;
use crate::names;

/// The pumps' headless Service (port 8250).
pub fn pump_service(cluster: &BinlogCluster) -> Result<Service, BuildError> {
    let owner = Owner::of(cluster)?;
    let selector = labels::pump_selector(&owner.name);
    Ok(headless(
        &owner,
        names::pump(&owner.name),
        selector,
        "pump",
        names::PUMP_PORT,
    ))
}

/// One drainer's headless Service (port 8249).
pub fn drainer_service(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<Service, BuildError> {
    let owner = Owner::of(cluster)?;
    let selector = labels::drainer_selector(&owner.name, &drainer.name);
    Ok(headless(
        &owner,
        names::drainer(&owner.name, &drainer.name),
        selector,
        "drainer",
        names::DRAINER_PORT,
    ))
}

fn headless(
    owner: &Owner,
    name: String,
    selector: std::collections::BTreeMap<String, String>,
    port_name: &str,
    port: i32,
) -> Service {
    Service {
        metadata: owner.meta(name, labels::with_managed_by(selector.clone())),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(port_name.to_string()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::cluster;

    #[test]
    fn pump_service_is_headless_on_8250_and_publishes_not_ready() {
        let service = pump_service(&cluster()).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo-pump"));
        assert_eq!(service.metadata.namespace.as_deref(), Some("tidb"));
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let ports = spec.ports.unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 8250);
        assert_eq!(spec.selector.unwrap(), labels::pump_selector("demo"));
    }

    #[test]
    fn each_drainer_gets_its_own_service_on_8249() {
        let bc = cluster();
        let service = drainer_service(&bc, &bc.spec.drainers[0]).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo-drainer-mysql"));
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.ports.unwrap()[0].port, 8249);
        assert_eq!(
            spec.selector.unwrap()[labels::DRAINER_LABEL],
            "mysql",
            "the selector must not match other drainers' pods"
        );
    }
}
