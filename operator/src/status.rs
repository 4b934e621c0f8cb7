//! The `BinlogCluster` status: observed generation, conditions, a phase for `kubectl get`, pump
//! replica counts (read by the scale subresource) and the pump and drainer members as PD's
//! registry lists them.
//!
//! [`compute`] derives it from a reconcile's facts; the four conditions are Available (every
//! pump and drainer asked for is ready and online), Progressing (scaling, rolling out, removing
//! drainers, deleting), Degraded (invalid spec, registry unreachable, a node command failed) and
//! ScaleInBlocked (what a scale-in, drainer removal or deletion waits for, naming the drainers
//! that hold a pump back).
//!
//! Only slowly-changing facts are stored: a member is `{nodeId, host, state}`, never the
//! per-heartbeat `maxCommitTS`/`updateTS`, which would make every status write trigger the next
//! reconcile.

use std::collections::BTreeSet;

use binlog_cluster::{NodeState, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::labels::{pump_selector, selector_string};
use crate::names;
use crate::planner::{Intent, Observed, Plan, PumpSet, Step, Wait};

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

/// What a status is computed from: the spec's intent, what was observed, what the plan decided
/// and the previous status (whose condition transition times are kept when nothing changed).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub intent: &'a Intent,
    pub generation: Option<i64>,
    pub deleting: bool,
    /// Why the spec cannot be built, when it cannot.
    pub invalid_spec: Option<&'a str>,
    pub observed: &'a Observed,
    pub plan: &'a Plan,
    /// Node commands (close, force offline) that failed in this pass.
    pub failures: &'a [String],
    pub previous: Option<&'a BinlogClusterStatus>,
    pub now: Time,
}

/// At most this many problems are listed in a condition message.
const MAX_LISTED: usize = 5;

/// The status for `facts`. Deterministic: the same facts give the same status, so an unchanged
/// cluster is not rewritten (and does not trigger itself).
pub fn compute(facts: &Facts) -> BinlogClusterStatus {
    let intent = facts.intent;
    let observed = facts.observed;
    let previous = facts.previous;
    let set = observed.pump_set.unwrap_or_default();

    let pump_members = match &observed.registry {
        Ok(registry) => {
            let keep_below = set.replicas.max(intent.pump_replicas).max(0) as u32;
            let mut members: Vec<(u32, Member)> = registry
                .pumps
                .iter()
                .filter_map(|node| {
                    let ordinal = names::pump_ordinal(&intent.cluster, &node.node_id)?;
                    (node.state != NodeState::Offline || ordinal < keep_below)
                        .then(|| (ordinal, member(node)))
                })
                .collect();
            members.sort_by_key(|(ordinal, _)| *ordinal);
            members.into_iter().map(|(_, member)| member).collect()
        }
        Err(_) => previous
            .and_then(|status| status.pump.as_ref())
            .map(|pump| pump.members.clone())
            .unwrap_or_default(),
    };
    let drainer_names: BTreeSet<&String> = intent
        .drainers
        .iter()
        .chain(observed.drainer_workloads.keys())
        .collect();
    let drainer_members = match &observed.registry {
        Ok(registry) => drainer_names
            .iter()
            .filter_map(|name| registry.drainer(&names::drainer(&intent.cluster, name)))
            .map(member)
            .collect(),
        Err(_) => previous
            .and_then(|status| status.drainers.as_ref())
            .map(|drainers| drainers.members.clone())
            .unwrap_or_default(),
    };

    let conditions = vec![
        available(facts, set),
        progressing(facts, set),
        degraded(facts),
        blocked(facts),
    ]
    .into_iter()
    .map(|(type_, ok, reason, message)| condition(facts, type_, ok, reason, message))
    .collect::<Vec<_>>();
    let is_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    let phase = if facts.deleting {
        Phase::Deleting
    } else if is_true(DEGRADED) {
        Phase::Degraded
    } else if facts.plan.waits.iter().any(Wait::needs_attention) {
        Phase::ScaleInBlocked
    } else if is_true(PROGRESSING) {
        Phase::Progressing
    } else if is_true(AVAILABLE) {
        Phase::Available
    } else {
        Phase::Pending
    };

    BinlogClusterStatus {
        observed_generation: facts.generation,
        phase: Some(phase),
        conditions,
        pump: Some(PumpStatus {
            replicas: set.status_replicas,
            ready_replicas: set.ready_replicas,
            selector: selector_string(&pump_selector(&intent.cluster)),
            members: pump_members,
        }),
        drainers: Some(DrainersStatus {
            replicas: observed.drainer_workloads.len() as i32,
            ready_replicas: observed
                .drainer_workloads
                .values()
                .filter(|w| w.ready)
                .count() as i32,
            members: drainer_members,
        }),
    }
}

fn member(node: &NodeStatus) -> Member {
    Member {
        node_id: node.node_id.clone(),
        host: node.host.clone(),
        state: node.state.to_string(),
    }
}

type Verdict = (&'static str, bool, &'static str, String);

fn available(facts: &Facts, set: PumpSet) -> Verdict {
    let intent = facts.intent;
    if facts.deleting {
        return (
            AVAILABLE,
            false,
            "Deleting",
            "the cluster is being deleted".into(),
        );
    }
    let wanted = intent.pump_replicas.max(0);
    let mut missing = Vec::new();
    if set.ready_replicas < wanted {
        missing.push(format!("{}/{wanted} pump pods ready", set.ready_replicas));
    }
    for name in &intent.drainers {
        if !facts
            .observed
            .drainer_workloads
            .get(name)
            .is_some_and(|workload| workload.ready)
        {
            missing.push(format!(
                "drainer {} is not ready",
                names::drainer(&intent.cluster, name)
            ));
        }
    }
    match &facts.observed.registry {
        Err(err) => missing.push(format!("the registry is unreachable: {err}")),
        Ok(registry) => {
            let pumps = (0..wanted as u32).map(|o| {
                (
                    names::pump_pod(&intent.cluster, o),
                    registry.pump(&names::pump_pod(&intent.cluster, o)),
                )
            });
            let drainers = intent.drainers.iter().map(|name| {
                let id = names::drainer(&intent.cluster, name);
                let record = registry.drainer(&id);
                (id, record)
            });
            for (kind, (id, record)) in pumps
                .map(|entry| ("pump", entry))
                .chain(drainers.map(|entry| ("drainer", entry)))
            {
                match record.map(|node| node.state) {
                    Some(NodeState::Online) => {}
                    Some(state) => missing.push(format!("{kind} {id} is {state}")),
                    None => missing.push(format!("{kind} {id} is not registered")),
                }
            }
        }
    }
    if missing.is_empty() {
        (
            AVAILABLE,
            true,
            "AllOnline",
            format!(
                "{wanted} pumps and {} drainers are ready and online",
                intent.drainers.len()
            ),
        )
    } else {
        (AVAILABLE, false, "NotAllOnline", list(&missing))
    }
}

fn progressing(facts: &Facts, set: PumpSet) -> Verdict {
    let intent = facts.intent;
    let plan = facts.plan;
    let exists = facts.observed.pump_set.is_some();
    let removing = plan.steps.iter().any(|step| {
        matches!(
            step,
            Step::CloseDrainer(_) | Step::ForceDrainerOffline(_) | Step::RemoveDrainer(_)
        )
    }) || plan
        .waits
        .iter()
        .any(|wait| matches!(wait, Wait::DrainerClosing { .. }));
    let (reason, message) = if facts.deleting {
        (
            "Deleting",
            "offlining pumps, then drainers, before the cluster goes".to_string(),
        )
    } else if exists && set.replicas > intent.pump_replicas.max(0)
        || plan.steps.iter().any(|s| matches!(s, Step::ClosePump(_)))
        || plan.waits.iter().any(|w| {
            matches!(
                w,
                Wait::PumpClosing { .. } | Wait::PumpStopped { .. } | Wait::PodsTerminating { .. }
            )
        })
    {
        (
            "ScalingIn",
            format!(
                "offlining pumps one at a time: {} → {}",
                set.replicas,
                intent.pump_replicas.max(0)
            ),
        )
    } else if !exists || set.replicas < intent.pump_replicas {
        (
            "ScalingOut",
            format!("adding pumps: {} → {}", set.replicas, intent.pump_replicas),
        )
    } else if removing {
        (
            "RemovingDrainer",
            "offlining drainers removed from the spec".to_string(),
        )
    } else if !set.rolled_out || set.status_replicas != set.replicas {
        ("RollingOut", "pump pods are being updated".to_string())
    } else {
        return (
            PROGRESSING,
            false,
            "Reconciled",
            "the cluster matches its spec".into(),
        );
    };
    (PROGRESSING, true, reason, message)
}

fn degraded(facts: &Facts) -> Verdict {
    if let Some(problem) = facts.invalid_spec {
        return (DEGRADED, true, "InvalidSpec", problem.to_string());
    }
    if let Err(err) = &facts.observed.registry {
        return (DEGRADED, true, "RegistryUnreachable", err.clone());
    }
    if !facts.failures.is_empty() {
        return (DEGRADED, true, "NodeCommandFailed", list(facts.failures));
    }
    (
        DEGRADED,
        false,
        "AsExpected",
        "nothing needs attention".into(),
    )
}

fn blocked(facts: &Facts) -> Verdict {
    let waits = &facts.plan.waits;
    let Some(first) = waits.first() else {
        return (
            SCALE_IN_BLOCKED,
            false,
            "NotWaiting",
            "no scale-in, drainer removal or deletion is waiting".into(),
        );
    };
    let reason = match first {
        Wait::PumpClosing { blockers, .. } if blockers.is_empty() => "WaitingForPumpOffline",
        Wait::PumpClosing { .. } => "WaitingForDrainers",
        Wait::PumpStopped { .. } => "PumpStopped",
        Wait::PodsTerminating { .. } => "PodsTerminating",
        Wait::VolumeDeleting(_) => "VolumeDeleting",
        Wait::DrainerClosing { .. } => "DrainerClosing",
        Wait::RegistryUnreachable(_) => "RegistryUnreachable",
    };
    let messages: Vec<String> = waits.iter().map(ToString::to_string).collect();
    (SCALE_IN_BLOCKED, true, reason, messages.join("; "))
}

fn list(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > MAX_LISTED {
        text.push_str(&format!("; and {} more", items.len() - MAX_LISTED));
    }
    text
}

fn condition(facts: &Facts, type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = facts
        .previous
        .and_then(|previous| previous.conditions.iter().find(|c| c.type_ == type_))
        .filter(|previous| previous.status == status)
        .map(|previous| previous.last_transition_time.clone())
        .unwrap_or_else(|| facts.now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: facts.generation,
        last_transition_time,
    }
}

impl BinlogClusterStatus {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
