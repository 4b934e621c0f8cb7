//! Checks on a `BinlogCluster` spec that the CRD schema cannot express: names that must become
//! valid object names, unique drainer names, sizes that must parse, thresholds that must fit the
//! volume. All problems are reported at once, so one status message can list them.

use std::collections::BTreeSet;

use crate::crd::{BinlogClusterSpec, Downstream, PdSpec};
use crate::disk::quantity_bytes;
use crate::names;

/// Longest Service / label value name Kubernetes accepts.
const MAX_NAME: usize = 63;
/// A StatefulSet's pods carry `controller-revision-hash=<sts>-<10 chars>`, a label value of at most
/// 63 characters, so the StatefulSet name must leave room for it.
const MAX_STATEFULSET_NAME: usize = 52;

/// Every problem with `spec` for a cluster named `cluster`; empty when it is usable.
pub fn problems(cluster: &str, spec: &BinlogClusterSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if names::pump(cluster).len() > MAX_STATEFULSET_NAME {
        problems.push(format!(
            "metadata.name: {cluster:?} is too long: {:?} must be at most {MAX_STATEFULSET_NAME} characters",
            names::pump(cluster)
        ));
    }
    match &spec.pd {
        PdSpec::Urls(urls) if urls.is_empty() => {
            problems.push("spec.pd.urls: at least one PD URL is needed".to_string())
        }
        PdSpec::Urls(urls) => {
            for url in urls.iter().filter(|url| !url.contains("://")) {
                problems.push(format!(
                    "spec.pd.urls: {url:?} needs a scheme, e.g. http://{url}"
                ));
            }
        }
        PdSpec::Service(service) if !is_dns_label(&service.name) => problems.push(format!(
            "spec.pd.service.name: {:?} is not a Service name",
            service.name
        )),
        PdSpec::Service(_) => {}
    }
    if spec.pump.replicas < 0 {
        problems.push(format!(
            "spec.pump.replicas: {} is negative",
            spec.pump.replicas
        ));
    }
    if spec.pump.gc_days == Some(0) {
        problems.push("spec.pump.gcDays: must be at least 1".to_string());
    }
    match quantity_bytes(&spec.pump.storage.size) {
        Err(err) => problems.push(format!("spec.pump.storage.size: {err}")),
        Ok(volume) => {
            if let Some(threshold) = &spec.pump.stop_write_at_available_space {
                match quantity_bytes(threshold) {
                    Err(err) => {
                        problems.push(format!("spec.pump.stopWriteAtAvailableSpace: {err}"))
                    }
                    Ok(bytes) if bytes >= volume => problems.push(format!(
                        "spec.pump.stopWriteAtAvailableSpace: {} is not below the volume size {}; \
                         the pump would refuse every write",
                        threshold.0, spec.pump.storage.size.0
                    )),
                    Ok(_) => {}
                }
            }
        }
    }

    let mut seen = BTreeSet::new();
    for (index, drainer) in spec.drainers.iter().enumerate() {
        let at = format!("spec.drainers[{index}]");
        if !is_dns_label(&drainer.name) {
            problems.push(format!(
                "{at}.name: {:?} must be lowercase letters, digits and '-', starting and ending \
                 with a letter or digit",
                drainer.name
            ));
        } else if names::drainer(cluster, &drainer.name).len() > MAX_NAME {
            problems.push(format!(
                "{at}.name: {:?} must be at most {MAX_NAME} characters",
                names::drainer(cluster, &drainer.name)
            ));
        }
        if !seen.insert(drainer.name.as_str()) {
            problems.push(format!(
                "{at}.name: {:?} is used by two drainers",
                drainer.name
            ));
        }
        if let Some(storage) = &drainer.storage
            && let Err(err) = quantity_bytes(&storage.size)
        {
            problems.push(format!("{at}.storage.size: {err}"));
        }
        match &drainer.downstream {
            Downstream::Mysql(sql) | Downstream::Tidb(sql) => {
                if sql.host.is_empty() {
                    problems.push(format!("{at}.downstream: host is empty"));
                }
                if !(1..=65535).contains(&sql.port) {
                    problems.push(format!(
                        "{at}.downstream: port {} is out of range",
                        sql.port
                    ));
                }
            }
            Downstream::Kafka(kafka) if kafka.addrs.is_empty() => {
                problems.push(format!(
                    "{at}.downstream.kafka.addrs: at least one broker is needed"
                ));
            }
            Downstream::Kafka(_) | Downstream::File(_) => {}
        }
    }
    problems
}

/// A DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, 1–63 chars.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> BinlogClusterSpec {
        crate::builders::fixtures::from_yaml(yaml)
    }

    const GOOD: &str = r#"
pd: {urls: ["http://pd:2379"]}
pump: {replicas: 3, storage: {size: 20Gi}}
drainers:
  - {name: a, downstream: {file: {}}}
"#;

    #[test]
    fn a_good_spec_has_no_problems() {
        assert_eq!(problems("demo", &spec(GOOD)), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = spec(
            r#"
pd: {urls: ["pd:2379"]}
pump: {replicas: 1, storage: {size: 1Gi}, stopWriteAtAvailableSpace: 10Gi, gcDays: 0}
drainers:
  - {name: Bad_Name, downstream: {file: {}}}
  - {name: dup, downstream: {kafka: {addrs: []}}}
  - {name: dup, downstream: {mysql: {host: "", user: root}}}
"#,
        );
        let found = problems("demo", &bad).join("\n");
        for needle in [
            "spec.pd.urls: \"pd:2379\" needs a scheme",
            "spec.pump.gcDays",
            "spec.pump.stopWriteAtAvailableSpace: 10Gi is not below the volume size 1Gi",
            "spec.drainers[0].name: \"Bad_Name\"",
            "spec.drainers[1].downstream.kafka.addrs",
            "spec.drainers[2].name: \"dup\" is used by two drainers",
            "spec.drainers[2].downstream: host is empty",
        ] {
            assert!(found.contains(needle), "missing {needle:?} in:\n{found}");
        }
    }

    #[test]
    fn names_that_would_not_fit_are_rejected() {
        let long = "x".repeat(50);
        assert!(!problems(&long, &spec(GOOD)).is_empty());
        assert!(is_dns_label("to-mysql-2"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(""));
    }
}
