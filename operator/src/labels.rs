//! Labels every object the operator creates carries, the selectors built from them, and the
//! single field-manager name used for server-side apply.
//!
//! Labels follow the `app.kubernetes.io/*` recommended set. The selector labels (name, instance,
//! component, and for drainers the drainer's own name) never change over an object's life, because
//! a StatefulSet's or Deployment's selector is immutable.

use std::collections::BTreeMap;

/// The field manager for every server-side apply, and the value of `app.kubernetes.io/managed-by`.
/// One stable string, so the apiserver attributes every field the operator owns to one manager.
pub const FIELD_MANAGER: &str = "binlog-operator";

/// `app.kubernetes.io/name` of every object: the application.
pub const APP_NAME: &str = "tidb-binlog";

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Tells one drainer's objects from another's (value: the drainer's `name` in the spec).
pub const DRAINER_LABEL: &str = "binlog.tidb-rs.dev/drainer";

/// What an object is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Pump,
    Drainer,
}

impl Component {
    /// The `app.kubernetes.io/component` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Pump => "pump",
            Component::Drainer => "drainer",
        }
    }
}

/// The labels that select a pump's pods (StatefulSet selector, Service selector).
pub fn pump_selector(cluster: &str) -> BTreeMap<String, String> {
    base(cluster, Component::Pump)
}

/// The labels that select one drainer's pod.
pub fn drainer_selector(cluster: &str, drainer: &str) -> BTreeMap<String, String> {
    let mut labels = base(cluster, Component::Drainer);
    labels.insert(DRAINER_LABEL.to_string(), drainer.to_string());
    labels
}

/// Selector labels plus `managed-by`: what goes on objects and pod templates.
pub fn with_managed_by(mut selector: BTreeMap<String, String>) -> BTreeMap<String, String> {
    selector.insert(MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string());
    selector
}

/// A label map as a selector string (`k=v,k=v`, keys sorted), as `status.pump.selector` needs it
/// for the scale subresource (`labelSelectorPath` must point at a string).
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn base(cluster: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), cluster.to_string()),
        (COMPONENT_LABEL.to_string(), component.as_str().to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_selector_string_is_sorted_and_stable() {
        assert_eq!(
            selector_string(&pump_selector("demo")),
            "app.kubernetes.io/component=pump,app.kubernetes.io/instance=demo,\
             app.kubernetes.io/name=tidb-binlog"
        );
    }

    #[test]
    fn drainer_selectors_differ_per_drainer() {
        assert_ne!(drainer_selector("demo", "a"), drainer_selector("demo", "b"));
        let labels = with_managed_by(drainer_selector("demo", "a"));
        assert_eq!(labels[MANAGED_BY_LABEL], FIELD_MANAGER);
        assert_eq!(labels[COMPONENT_LABEL], "drainer");
    }
}
