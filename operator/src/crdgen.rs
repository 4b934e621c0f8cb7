//! The `BinlogCluster` CustomResourceDefinition as YAML, as `binlog-operator crd` prints it and
//! `crds/binlogclusters.yaml` commits it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::crd::BinlogCluster;

/// Where the committed CRD lives, relative to the workspace root.
pub const CRD_PATH: &str = "crds/binlogclusters.yaml";

/// The command that regenerates [`CRD_PATH`] from the workspace root.
pub const REGENERATE: &str = "cargo run -q -p binlog-operator -- crd > crds/binlogclusters.yaml";

/// The CRD object.
pub fn crd() -> CustomResourceDefinition {
    BinlogCluster::crd()
}

/// The CRD as YAML, with a header saying it is generated.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&crd())?;
    Ok(format!(
        "# Generated from operator/src/crd.rs by `binlog-operator crd`; do not edit.\n\
         # Regenerate: {REGENERATE}\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scope_and_version() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("binlogclusters.binlog.tidb-rs.dev")
        );
        assert_eq!(crd.spec.group, "binlog.tidb-rs.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "BinlogCluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["bc".to_string()]));
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert!(crd.spec.versions[0].served && crd.spec.versions[0].storage);
    }

    #[test]
    fn scale_and_status_subresources() {
        let crd = crd();
        let subresources = crd.spec.versions[0].subresources.clone().unwrap();
        assert!(subresources.status.is_some());
        let scale = subresources.scale.unwrap();
        assert_eq!(scale.spec_replicas_path, ".spec.pump.replicas");
        assert_eq!(scale.status_replicas_path, ".status.pump.replicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.pump.selector")
        );
    }

    #[test]
    fn printer_columns() {
        let crd = crd();
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap();
        let found: Vec<(&str, &str, &str)> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("Ready Pumps", "integer", ".status.pump.readyReplicas"),
                ("Desired Pumps", "integer", ".spec.pump.replicas"),
                (
                    "Ready Drainers",
                    "integer",
                    ".status.drainers.readyReplicas"
                ),
                ("Phase", "string", ".status.phase"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ]
        );
    }

    #[test]
    fn schema_paths_the_subresources_point_at_exist() {
        let crd = crd();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let props = &schema["properties"];
        assert_eq!(
            props["spec"]["properties"]["pump"]["properties"]["replicas"]["type"],
            "integer"
        );
        let pump_status = &props["status"]["properties"]["pump"]["properties"];
        assert_eq!(pump_status["replicas"]["type"], "integer");
        assert_eq!(pump_status["selector"]["type"], "string");
        assert_eq!(
            props["spec"]["properties"]["pump"]["properties"]["replicas"]["minimum"].as_f64(),
            Some(0.0)
        );
        // The drainer downstream is one of mysql / tidb / file / kafka.
        let downstream = &props["spec"]["properties"]["drainers"]["items"]["properties"]["downstream"]
            ["properties"];
        for kind in ["mysql", "tidb", "file", "kafka"] {
            assert!(downstream.get(kind).is_some(), "no {kind} in {downstream}");
        }
    }

    #[test]
    fn yaml_round_trips() {
        let text = crd_yaml().unwrap();
        assert!(text.starts_with("# Generated"));
        let parsed: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed, crd());
    }
}
