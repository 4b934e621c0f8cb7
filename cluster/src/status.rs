//! The node record stored in the registry, with the original's JSON keys and field order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::state::NodeState;
use crate::tso;

/// What kind of node a record describes; decides its registry prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A pump, under `/tidb-binlog/v1/pumps/`.
    Pump,
    /// A drainer, under `/tidb-binlog/v1/drainers/`.
    Drainer,
}

impl NodeKind {
    /// The registry path segment for this kind.
    pub const fn prefix(self) -> &'static str {
        match self {
            NodeKind::Pump => "pumps",
            NodeKind::Drainer => "drainers",
        }
    }

    /// The lowercase name used in logs (`type=pump`).
    pub const fn name(self) -> &'static str {
        match self {
            NodeKind::Pump => "pump",
            NodeKind::Drainer => "drainer",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Free-form labels; unused by the original but part of its JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Label key/value pairs, serialised in key order as Go does for maps.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One node's registry record.
///
/// Serialises to exactly the original's JSON (`nodeId`, `host`, `state`, `isAlive`, `score`,
/// `label`, `maxCommitTS`, `updateTS`, in that order). Deserialisation tolerates missing fields,
/// because tidb-operator rewrites records with only `nodeId`, `host` and `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node id: `hostname:port` unless configured.
    #[serde(default)]
    pub node_id: String,
    /// The advertised `host:port`, without a scheme.
    #[serde(default)]
    pub host: String,
    /// The node's state; a record without one is treated as offline.
    #[serde(default = "offline")]
    pub state: NodeState,
    /// Always false in the registry; liveness is judged from `update_ts`.
    #[serde(default)]
    pub is_alive: bool,
    /// Unused; always 0.
    #[serde(default)]
    pub score: i64,
    /// Unused; always null.
    #[serde(default)]
    pub label: Option<Label>,
    /// Pump: its commit-ts watermark. Drainer: its checkpoint commit ts.
    #[serde(default, rename = "maxCommitTS")]
    pub max_commit_ts: i64,
    /// Approximate PD timestamp of the last heartbeat.
    #[serde(default, rename = "updateTS")]
    pub update_ts: i64,
}

fn offline() -> NodeState {
    NodeState::Offline
}

impl NodeStatus {
    /// A fresh record as a node writes it when it registers.
    pub fn new(node_id: impl Into<String>, host: impl Into<String>, state: NodeState) -> Self {
        NodeStatus {
            node_id: node_id.into(),
            host: host.into(),
            state,
            is_alive: false,
            score: 0,
            label: None,
            max_commit_ts: 0,
            update_ts: 0,
        }
    }

    /// The record as the registry stores it.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, integers and a string map cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The original's one-line rendering, used by binlogctl:
/// `{NodeID: x, Addr: h:p, State: online, MaxCommitTS: n, UpdateTime: 2019-05-16 10:02:23 +0000 UTC}`.
impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{NodeID: {}, Addr: {}, State: {}, MaxCommitTS: {}, UpdateTime: {}}}",
            self.node_id,
            self.host,
            self.state,
            self.max_commit_ts,
            tso::go_time_string(&tso::rough_time(self.update_ts), "UTC"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{"nodeId":"ip-172-16-5-71:8250","host":"172.16.5.71:8250","state":"online","isAlive":false,"score":0,"label":null,"maxCommitTS":412518831548007863,"updateTS":412518831338292471}"#;

    #[test]
    fn original_json_round_trips_byte_for_byte() {
        let status: NodeStatus = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(status.node_id, "ip-172-16-5-71:8250");
        assert_eq!(status.state, NodeState::Online);
        assert_eq!(status.max_commit_ts, 412518831548007863);
        assert_eq!(status.to_json(), ORIGINAL);
    }

    #[test]
    fn a_fresh_record_serialises_like_the_original() {
        let mut status = NodeStatus::new("p1:8250", "127.0.0.1:8250", NodeState::Paused);
        status.max_commit_ts = 5;
        status.update_ts = 6;
        assert_eq!(
            status.to_json(),
            r#"{"nodeId":"p1:8250","host":"127.0.0.1:8250","state":"paused","isAlive":false,"score":0,"label":null,"maxCommitTS":5,"updateTS":6}"#
        );
    }

    #[test]
    fn labels_serialise_in_key_order() {
        let mut status = NodeStatus::new("a", "b", NodeState::Online);
        status.label = Some(Label {
            labels: [("zone".into(), "z1".into()), ("rack".into(), "r2".into())].into(),
        });
        assert!(
            status
                .to_json()
                .contains(r#""label":{"labels":{"rack":"r2","zone":"z1"}}"#)
        );
    }

    #[test]
    fn operator_written_records_with_missing_fields_are_read() {
        let status: NodeStatus = serde_json::from_str(
            r#"{"nodeId":"pump-0","host":"pump-0.svc:8250","state":"closing"}"#,
        )
        .unwrap();
        assert_eq!(status.state, NodeState::Closing);
        assert_eq!(status.max_commit_ts, 0);
        assert_eq!(status.label, None);
    }

    #[test]
    fn display_matches_binlogctl_output() {
        let status: NodeStatus = serde_json::from_str(ORIGINAL).unwrap();
        assert_eq!(
            status.to_string(),
            "{NodeID: ip-172-16-5-71:8250, Addr: 172.16.5.71:8250, State: online, \
             MaxCommitTS: 412518831548007863, UpdateTime: 2019-11-13 08:40:57 +0000 UTC}"
        );
    }
}
