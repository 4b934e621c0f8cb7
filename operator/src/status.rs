//! The `BinlogCluster` status: observed generation, conditions, a phase for `kubectl get`, pump
//! replica counts (read by the scale subresource) and the pump and drainer members as PD's
//! registry lists them.
//!
//! Only slowly-changing facts are stored: a member is `{nodeId, host, state}`, never the
//! per-heartbeat `maxCommitTS`/`updateTS`, which would make every status write trigger the next
//! reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the pumps and drainers asked for are ready and online.
pub const AVAILABLE: &str = "Available";
/// Condition type: the operator is moving the cluster towards the spec (rollout, scale-out,
/// scale-in, offline in progress).
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong that the operator cannot fix by itself (invalid spec,
/// pods not ready, PD unreachable).
pub const DEGRADED: &str = "Degraded";
/// Condition type: a scale-in, a drainer removal or the deletion of the cluster is waiting.
/// The message says on what, e.g. the pump being offlined and the drainers that have not yet
/// consumed its binlogs, or a drainer stuck in `paused`.
pub const SCALE_IN_BLOCKED: &str = "ScaleInBlocked";

/// Observed state of a `BinlogCluster`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinlogClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary of the conditions, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Available, Progressing, Degraded, ScaleInBlocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The pumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pump: Option<PumpStatus>,
    /// The drainers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drainers: Option<DrainersStatus>,
}

/// Summary of the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Nothing is ready yet.
    Pending,
    /// Moving towards the spec.
    Progressing,
    /// Everything asked for is ready.
    Available,
    /// A scale-in, drainer removal or deletion is waiting (see the ScaleInBlocked condition).
    ScaleInBlocked,
    /// Something needs attention (see the Degraded condition).
    Degraded,
    /// The cluster is being deleted: pumps, then drainers, are being offlined.
    Deleting,
}

/// The pumps' state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PumpStatus {
    /// Pump pods that exist (the scale subresource's status replicas).
    pub replicas: i32,
    /// Pump pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the pump pods, as a string (the scale subresource's label selector).
    #[serde(default)]
    pub selector: String,
    /// Pumps registered in PD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// The drainers' state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainersStatus {
    /// Drainer Deployments that exist.
    pub replicas: i32,
    /// Drainers whose pod is ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Drainers registered in PD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// A node as PD's registry (`/tidb-binlog/v1/{pumps,drainers}/<nodeId>`) records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub node_id: String,
    /// Advertised `host:port`.
    pub host: String,
    /// `online`, `pausing`, `paused`, `closing` or `offline`.
    pub state: String,
}
