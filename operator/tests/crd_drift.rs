#![allow(clippy::unwrap_used)]
//! Fails when `crds/binlogclusters.yaml` no longer matches the Rust types.

use std::path::Path;

use binlog_operator::crdgen::{CRD_PATH, REGENERATE, crd_yaml};

#[test]
fn committed_crd_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {}: {err}\nregenerate it with:\n  {REGENERATE}",
            path.display()
        )
    });
    let generated = crd_yaml().unwrap();
    // Compare parsed documents, so that map key order (which a serde_json feature enabled
    // elsewhere in the workspace may change) does not matter; any content change does.
    let committed_value: serde_json::Value = serde_yaml::from_str(&committed).unwrap();
    let generated_value: serde_json::Value = serde_yaml::from_str(&generated).unwrap();
    assert!(
        committed_value == generated_value,
        "{CRD_PATH} has drifted from operator/src/crd.rs and status.rs.\n\
         Regenerate it from the workspace root with:\n  {REGENERATE}"
    );
}
