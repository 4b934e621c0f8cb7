#![allow(clippy::unwrap_used)]
//! Offline checks of what users install: the kustomize manifests in `deploy/`, the Helm chart in
//! `charts/binlog-operator/` (there is no helm here, so the checks are home-made: files parse,
//! every `.Values` reference exists, template blocks balance), least-privilege RBAC identical in
//! both, and the example BinlogClusters in `deploy/examples/`, which must pass the CRD's OpenAPI
//! schema (JSON-Schema validation of the generated `openAPIV3Schema`, the same document the
//! apiserver validates against), deserialise into the Rust types and pass the operator's own
//! spec checks and builders.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use binlog_operator::crd::{BinlogCluster, Downstream};
use binlog_operator::crdgen::crd;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every document of a (multi-document) YAML text, as JSON values; empty documents skipped.
fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(value).unwrap()
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn read_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    docs(&text)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn every_deploy_manifest_parses_and_names_its_object() {
    let files = yaml_files(&root().join("deploy"));
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        for doc in read_docs(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            assert!(
                doc["apiVersion"].is_string() && !kind.is_empty(),
                "{}: a document without apiVersion/kind",
                file.display()
            );
            if kind != "Kustomization" {
                assert!(
                    doc["metadata"]["name"].is_string(),
                    "{}: {kind} without metadata.name",
                    file.display()
                );
            }
        }
    }
}

/// Resources of the kustomization in `dir`, recursively: every one must exist, and a directory
/// must itself be a kustomization.
fn check_kustomization(dir: &Path, seen: &mut Vec<PathBuf>) {
    let file = dir.join("kustomization.yaml");
    let kustomization = &read_docs(&file)[0];
    assert_eq!(kustomization["kind"], "Kustomization", "{}", file.display());
    for resource in kustomization["resources"].as_array().unwrap() {
        let path = dir.join(resource.as_str().unwrap());
        assert!(
            path.exists(),
            "{} lists {} which does not exist",
            file.display(),
            path.display()
        );
        if path.is_dir() {
            check_kustomization(&path, seen);
        } else {
            assert!(!read_docs(&path).is_empty(), "{} is empty", path.display());
            seen.push(path);
        }
    }
}

#[test]
fn kustomize_resources_exist() {
    let mut seen = Vec::new();
    check_kustomization(&root().join("deploy"), &mut seen);
    let names: BTreeSet<String> = seen
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "binlogclusters.yaml",
        "namespace.yaml",
        "rbac.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn kubectl_kustomize_renders_the_operator() {
    let Ok(output) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("deploy"))
        .output()
    else {
        eprintln!(
            "\n*** SKIPPED rendering with `kubectl kustomize deploy`: kubectl is not installed. \
             The structural checks in this file still ran. ***\n"
        );
        return;
    };
    assert!(
        output.status.success(),
        "kubectl kustomize deploy failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = docs(&String::from_utf8(output.stdout).unwrap());
    let kinds: BTreeSet<&str> = rendered
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "Service",
            "ServiceAccount",
        ])
    );
    let deployment = rendered.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["metadata"]["namespace"], "binlog-operator");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("binlog-operator:v{}", env!("CARGO_PKG_VERSION"))
    );
    let binding = rendered
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "binlog-operator");
}

fn deploy_rules() -> Value {
    let docs = read_docs(&root().join("deploy/operator/rbac.yaml"));
    docs.into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap()["rules"]
        .clone()
}

fn chart_file(path: &str) -> String {
    std::fs::read_to_string(root().join("charts/binlog-operator").join(path)).unwrap()
}

#[test]
fn rbac_rules_agree_and_stay_least_privilege() {
    let template = chart_file("templates/_rules.tpl");
    let body = template
        .split("{{- define \"binlog-operator.rules\" }}")
        .nth(1)
        .and_then(|rest| rest.split("{{- end }}").next())
        .expect("_rules.tpl defines binlog-operator.rules");
    let chart_rules = docs(body).remove(0);
    let rules = deploy_rules();
    assert_eq!(chart_rules, rules, "chart and kustomize RBAC differ");

    let verbs = |group: &str, resource: &str| -> BTreeSet<String> {
        rules
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["apiGroups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|g| g == group)
                    && r["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == resource)
            })
            .flat_map(|r| r["verbs"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let set = |verbs: &[&str]| verbs.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(verbs("", "secrets"), set(&["get"]));
    assert_eq!(verbs("events.k8s.io", "events"), set(&["create", "patch"]));
    assert_eq!(
        verbs("binlog.tidb-rs.dev", "binlogclusters"),
        set(&["get", "list", "watch", "patch"])
    );
    assert_eq!(
        verbs("apps", "statefulsets"),
        set(&["get", "list", "watch", "create", "patch"]),
        "the operator never deletes the pump StatefulSet itself"
    );
    for rule in rules.as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !rule[field].as_array().unwrap().iter().any(|v| v == "*"),
                "wildcard in {rule}"
            );
        }
        assert!(
            !rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "pods" || r == "nodes"),
            "{rule}"
        );
    }
}

/// How many template actions open a block (`if`, `range`, `with`, `define`, `block`) and how
/// many close one (`end`).
fn block_balance(template: &str) -> (usize, usize) {
    let (mut opens, mut ends) = (0, 0);
    for action in template.split("{{").skip(1) {
        let inner = action.split("}}").next().unwrap_or_default();
        let inner = inner.trim_matches(|c: char| c == '-' || c.is_whitespace());
        match inner.split_whitespace().next().unwrap_or_default() {
            "if" | "range" | "with" | "define" | "block" => opens += 1,
            "end" => ends += 1,
            _ => {}
        }
    }
    (opens, ends)
}

/// `.Values.a.b` paths used in a template.
fn value_paths(template: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find(".Values.") {
        rest = &rest[at + ".Values.".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        paths.push(path.trim_end_matches('.').to_string());
    }
    paths
}

#[test]
fn the_chart_is_consistent() {
    let chart = docs(&chart_file("Chart.yaml")).remove(0);
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "binlog-operator");
    assert_eq!(
        chart["appVersion"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "the chart deploys the operator version whose default pump/drainer tag it uses"
    );
    let values = docs(&chart_file("values.yaml")).remove(0);
    assert_eq!(values["watchNamespaces"], Value::Array(vec![]));
    assert_eq!(values["serviceMonitor"]["enabled"], false);

    let templates = root().join("charts/binlog-operator/templates");
    let mut used = 0;
    for entry in std::fs::read_dir(&templates).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{name}: unbalanced braces"
        );
        let (opens, ends) = block_balance(&text);
        assert_eq!(opens, ends, "{name}: blocks and ends do not balance");
        for path in value_paths(&text) {
            let mut node = &values;
            for key in path.split('.') {
                node = &node[key];
            }
            assert!(
                !node.is_null(),
                "{name} uses .Values.{path}, not in values.yaml"
            );
            used += 1;
        }
    }
    assert!(used >= 10, "only {used} value references found");
}

#[test]
fn the_chart_ships_the_current_crd() {
    let shipped = read_docs(&root().join("charts/binlog-operator/crds/binlogclusters.yaml"));
    assert_eq!(
        shipped,
        [serde_json::to_value(crd()).unwrap()],
        "charts/binlog-operator/crds/binlogclusters.yaml is stale: copy crds/binlogclusters.yaml \
         there after regenerating it"
    );
}

fn schema_validator() -> jsonschema::Validator {
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
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|err| format!("{}: {err}", err.instance_path()))
        .collect()
}

#[test]
fn examples_validate_against_the_crd_schema_and_the_operators_checks() {
    let validator = schema_validator();
    let mut downstreams = BTreeSet::new();
    let files = yaml_files(&root().join("deploy/examples"));
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let docs = read_docs(&file);
        let secrets: BTreeSet<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "Secret")
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        for doc in docs.iter().filter(|d| d["kind"] == "BinlogCluster") {
            let name = file.display();
            let errors = schema_errors(&validator, doc);
            assert!(errors.is_empty(), "{name} fails the CRD schema: {errors:?}");

            let mut cluster: BinlogCluster = serde_json::from_value(doc.clone())
                .unwrap_or_else(|err| panic!("{name} does not deserialise: {err}"));
            let problems = binlog_operator::validate::problems(
                &cluster.metadata.name.clone().unwrap(),
                &cluster.spec,
            );
            assert!(problems.is_empty(), "{name}: {problems:?}");
            cluster.metadata.uid = Some("0d1e2f30-0000-4000-8000-000000000009".into());
            binlog_operator::desired(&cluster)
                .unwrap_or_else(|err| panic!("{name} does not build: {err}"));

            for drainer in &cluster.spec.drainers {
                downstreams.insert(drainer.downstream.db_type());
                if let Downstream::Mysql(sql) | Downstream::Tidb(sql) = &drainer.downstream
                    && let Some(secret) = &sql.password_secret_ref
                {
                    assert!(
                        secrets.contains(secret.name.as_str()),
                        "{name}: Secret {} is not in the example",
                        secret.name
                    );
                }
            }
        }
    }
    assert!(
        downstreams.contains("mysql") && downstreams.contains("file"),
        "{downstreams:?}"
    );
}

#[test]
fn the_schema_check_rejects_broken_clusters() {
    let validator = schema_validator();
    let mut doc = read_docs(&root().join("deploy/examples/file.yaml")).remove(0);
    doc["spec"]["pump"]["replicas"] = Value::from(-1);
    doc["spec"]["drainers"][0]["downstream"] = serde_json::json!({"ftp": {}});
    doc["spec"]["pump"]
        .as_object_mut()
        .unwrap()
        .remove("storage");
    let errors = schema_errors(&validator, &doc).join("\n");
    for needle in [
        "/spec/pump/replicas",
        "/spec/drainers/0/downstream",
        "storage",
    ] {
        assert!(
            errors.contains(needle),
            "{needle:?} not reported in:\n{errors}"
        );
    }
}
