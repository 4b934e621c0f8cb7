//! The offline choreography as a pure function: given what the spec asks for, the Kubernetes
//! objects that exist and the registry's records, decide the next steps and what the cluster
//! is waiting for. No I/O; the reconciler observes, calls [`plan_apply`] or [`plan_cleanup`],
//! and carries the plan out.
//!
//! Rules, in the order they are checked:
//! - **Pump scale-in**, one pump at a time, highest ordinal `k` first. The pump is closed
//!   (`PUT /state/<id>/close`), which makes it wait until every drainer has consumed its
//!   binlogs; only when the registry says `offline` (or the pod never registered) is its volume
//!   marked and the StatefulSet lowered to `k`. The next ordinal starts only once the
//!   StatefulSet has removed the previous pod. A pump whose volume is marked finishes leaving
//!   even if the replicas were raised again meanwhile: once closed, a pump cannot take writes
//!   again, so a fresh pump replaces it.
//! - **Pump scale-out**: a marked volume (from an earlier scale-in or deletion) is deleted
//!   before its ordinal is created again, so a new pump never starts on an old pump's data.
//! - **A drainer removed from the spec**: closed, and once `offline` its Deployment, Service,
//!   ConfigMap (and, with `drainerVolumeRetention: Delete`, its volume) are deleted. A `paused`
//!   drainer cannot be closed; being removed, its record is rewritten to `offline`.
//! - **Deletion**: every pump as in scale-in to zero while the drainers keep running, then every
//!   drainer as in removal, then the finalizer is released.
//!
//! Waiting is never blocking: the plan says what it waits for and the reconciler requeues.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use binlog_cluster::{NodeState, NodeStatus, tso};

use crate::crd::VolumeRetention;
use crate::names;
use crate::nodes::Snapshot;

/// A drainer whose last heartbeat is this much older than the newest record in the registry is
/// reported as stale: it probably died without going offline.
pub const STALE_AFTER_MS: i64 = 30_000;

/// What exists in Kubernetes and in the registry for one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The pump StatefulSet, if it exists.
    pub pump_set: Option<PumpSet>,
    /// Pump volumes (`data-<cluster>-pump-<ordinal>`) by ordinal.
    pub pump_volumes: BTreeMap<u32, Volume>,
    /// Drainer Deployments that exist, by drainer name.
    pub drainer_workloads: BTreeMap<String, DrainerWorkload>,
    /// Drainer volumes that exist, by drainer name.
    pub drainer_volumes: BTreeMap<String, Volume>,
    /// The registry, or why it could not be read.
    pub registry: Result<Snapshot, String>,
}

/// The parts of the pump StatefulSet the planner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PumpSet {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`: pods that exist.
    pub status_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// Whether every pod runs the current template.
    pub rolled_out: bool,
}

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Volume {
    /// Carries the scaled-in mark: its pump went offline, its data must not be reused.
    pub marked: bool,
    /// Has a deletion timestamp.
    pub deleting: bool,
}

/// A drainer Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainerWorkload {
    /// Its pod is ready and runs the current template.
    pub ready: bool,
}

/// What the spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// The BinlogCluster's name.
    pub cluster: String,
    /// `spec.pump.replicas`.
    pub pump_replicas: i32,
    /// Drainer names in the spec.
    pub drainers: BTreeSet<String>,
    /// What happens to a removed drainer's volume.
    pub retention: VolumeRetention,
}

/// One side effect, carried out in order before the objects are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Annotate `data-<cluster>-pump-<ordinal>` as belonging to an offline pump.
    MarkPumpVolume(u32),
    /// Delete a PersistentVolumeClaim.
    DeleteVolume(String),
    /// `PUT /state/<id>/close` to a pump.
    ClosePump(NodeStatus),
    /// `PUT /state/<id>/close` to a drainer.
    CloseDrainer(NodeStatus),
    /// Rewrite a stopped drainer's record to `offline`.
    ForceDrainerOffline(NodeStatus),
    /// Delete a drainer's Deployment, Service and ConfigMap.
    RemoveDrainer(String),
}

/// What the cluster is waiting for before it can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A pump is closing; the drainers named have not consumed its binlogs yet.
    PumpClosing {
        node_id: String,
        blockers: Vec<Blocker>,
    },
    /// A pump to be offlined is stopped; only a running pump can be closed.
    PumpStopped { node_id: String, state: NodeState },
    /// The StatefulSet still has more pods than replicas.
    PodsTerminating { pods: i32, replicas: i32 },
    /// An old pump volume is being deleted before its ordinal is created again.
    VolumeDeleting(String),
    /// A drainer is going offline.
    DrainerClosing { node_id: String, state: NodeState },
    /// The registry could not be read, so no pump or drainer can be offlined.
    RegistryUnreachable(String),
}

/// A drainer that keeps a closing pump from going offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub node_id: String,
    pub reason: BlockReason,
}

/// Why a drainer holds a pump back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// Running; its checkpoint is this many milliseconds older than the newest heartbeat in
    /// the registry.
    Lagging { checkpoint_age_ms: i64 },
    /// Stopped (`paused` or `pausing`): it still counts, so the pump waits for it.
    Paused(NodeState),
    /// Registered as running but silent for this many milliseconds.
    Stale { silent_ms: i64 },
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Replicas the pump StatefulSet should have; `None` leaves it as it is.
    pub pump_replicas: Option<i32>,
    pub steps: Vec<Step>,
    pub waits: Vec<Wait>,
    /// Cleanup only: everything is offline, the finalizer can go.
    pub finished: bool,
}

impl Plan {
    /// Whether a scale-in, removal or deletion is under way (steps taken or waiting).
    pub fn offlining(&self) -> bool {
        !self.waits.is_empty()
            || self.steps.iter().any(|step| {
                matches!(
                    step,
                    Step::ClosePump(_)
                        | Step::CloseDrainer(_)
                        | Step::ForceDrainerOffline(_)
                        | Step::RemoveDrainer(_)
                )
            })
    }
}

/// Plans a reconcile of a live cluster.
pub fn plan_apply(intent: &Intent, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    plan_pumps(intent, intent.pump_replicas.max(0), observed, &mut plan);
    for name in observed.drainer_workloads.keys() {
        if !intent.drainers.contains(name) {
            plan_drainer_removal(intent, name, observed, &mut plan);
        }
    }
    plan
}

/// Plans a reconcile of a cluster being deleted.
pub fn plan_cleanup(intent: &Intent, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    plan_pumps(intent, 0, observed, &mut plan);
    let pumps_gone = match &observed.pump_set {
        None => true,
        Some(set) => set.replicas == 0 && set.status_replicas == 0,
    };
    if !pumps_gone || !plan.waits.is_empty() {
        return plan;
    }
    for (ordinal, volume) in &observed.pump_volumes {
        if !volume.marked && !volume.deleting {
            plan.steps.push(Step::MarkPumpVolume(*ordinal));
        }
    }
    let drainers: BTreeSet<&String> = intent
        .drainers
        .iter()
        .chain(observed.drainer_workloads.keys())
        .collect();
    let before = plan.waits.len();
    for name in drainers {
        plan_drainer_removal(intent, name, observed, &mut plan);
    }
    plan.finished = plan.waits.len() == before
        && !plan
            .steps
            .iter()
            .any(|step| matches!(step, Step::CloseDrainer(_) | Step::ForceDrainerOffline(_)));
    plan
}

fn plan_pumps(intent: &Intent, target: i32, observed: &Observed, plan: &mut Plan) {
    let Some(set) = observed.pump_set else {
        plan.pump_replicas = Some(scale_out_bound(intent, 0, target, observed, plan));
        return;
    };
    let current = set.replicas.max(0);
    plan.pump_replicas = Some(current);
    if current > 0 {
        let ordinal = (current - 1) as u32;
        let volume = observed.pump_volumes.get(&ordinal);
        if current > target || volume.is_some_and(|v| v.marked) {
            retire_pump(intent, ordinal, set, volume, observed, plan);
            return;
        }
    }
    if current < target {
        plan.pump_replicas = Some(scale_out_bound(intent, current, target, observed, plan));
    }
}

/// Offlines pump `ordinal`, the highest; lowers the replicas once it is offline.
fn retire_pump(
    intent: &Intent,
    ordinal: u32,
    set: PumpSet,
    volume: Option<&Volume>,
    observed: &Observed,
    plan: &mut Plan,
) {
    let current = ordinal as i32 + 1;
    if set.status_replicas > current {
        plan.waits.push(Wait::PodsTerminating {
            pods: set.status_replicas,
            replicas: current,
        });
        return;
    }
    let registry = match &observed.registry {
        Ok(registry) => registry,
        Err(err) => {
            plan.waits.push(Wait::RegistryUnreachable(err.clone()));
            return;
        }
    };
    let mark = volume.is_some_and(|v| !v.marked && !v.deleting);
    let node_id = names::pump_pod(&intent.cluster, ordinal);
    match registry.pump(&node_id) {
        None => {
            // Never registered: it never accepted a write, so nothing can be lost.
            if mark {
                plan.steps.push(Step::MarkPumpVolume(ordinal));
            }
            plan.pump_replicas = Some(current - 1);
        }
        Some(record) => match record.state {
            NodeState::Offline => {
                if mark {
                    plan.steps.push(Step::MarkPumpVolume(ordinal));
                }
                plan.pump_replicas = Some(current - 1);
            }
            NodeState::Online => {
                // Marked first: if the operator stops after the close, the next pass still
                // knows this ordinal is leaving even when the replicas were raised meanwhile.
                if mark {
                    plan.steps.push(Step::MarkPumpVolume(ordinal));
                }
                plan.steps.push(Step::ClosePump(record.clone()));
                plan.waits.push(Wait::PumpClosing {
                    node_id,
                    blockers: blockers(record, registry, None),
                });
            }
            NodeState::Closing => {
                if mark {
                    plan.steps.push(Step::MarkPumpVolume(ordinal));
                }
                plan.waits.push(Wait::PumpClosing {
                    node_id,
                    blockers: blockers(record, registry, None),
                });
            }
            state @ (NodeState::Paused | NodeState::Pausing) => {
                plan.waits.push(Wait::PumpStopped { node_id, state });
            }
        },
    }
}

/// How far the replicas can rise from `from` towards `target`: up to the first ordinal whose old
/// volume must go first (its deletion is planned).
fn scale_out_bound(
    intent: &Intent,
    from: i32,
    target: i32,
    observed: &Observed,
    plan: &mut Plan,
) -> i32 {
    let mut bound = target;
    for ordinal in from.max(0)..target {
        let Some(volume) = observed.pump_volumes.get(&(ordinal as u32)) else {
            continue;
        };
        if !(volume.marked || volume.deleting) {
            continue;
        }
        let pvc = names::pump_pvc(&intent.cluster, ordinal as u32);
        if !volume.deleting {
            plan.steps.push(Step::DeleteVolume(pvc.clone()));
        }
        plan.waits.push(Wait::VolumeDeleting(pvc));
        bound = bound.min(ordinal);
    }
    bound
}

/// Closes drainer `name` and removes its objects once it is offline.
fn plan_drainer_removal(intent: &Intent, name: &str, observed: &Observed, plan: &mut Plan) {
    let registry = match &observed.registry {
        Ok(registry) => registry,
        Err(err) => {
            plan.waits.push(Wait::RegistryUnreachable(err.clone()));
            return;
        }
    };
    let node_id = names::drainer(&intent.cluster, name);
    let state = registry
        .drainer(&node_id)
        .map(|record| (record, record.state));
    match state {
        None | Some((_, NodeState::Offline)) => {
            if intent.retention == VolumeRetention::Delete
                && observed
                    .drainer_volumes
                    .get(name)
                    .is_some_and(|volume| !volume.deleting)
            {
                plan.steps.push(Step::DeleteVolume(names::drainer_pvc(
                    &intent.cluster,
                    name,
                )));
            }
            if observed.drainer_workloads.contains_key(name) {
                plan.steps.push(Step::RemoveDrainer(name.to_string()));
            }
        }
        Some((record, NodeState::Online)) => {
            plan.steps.push(Step::CloseDrainer(record.clone()));
            plan.waits.push(Wait::DrainerClosing {
                node_id,
                state: NodeState::Closing,
            });
        }
        Some((record, state @ NodeState::Paused)) => {
            plan.steps.push(Step::ForceDrainerOffline(record.clone()));
            plan.waits.push(Wait::DrainerClosing { node_id, state });
        }
        Some((_, state @ (NodeState::Closing | NodeState::Pausing))) => {
            plan.waits.push(Wait::DrainerClosing { node_id, state });
        }
    }
}

/// The drainers a closing pump waits for: every drainer not offline whose checkpoint is below
/// the pump's, as the pump itself decides (so drainers of other clusters count too). When the
/// pump said whom it waits for (`waiting_for`, from its `/status`), exactly those; otherwise the
/// registry's records are compared, which can miss a drainer, because a closing pump stops
/// heartbeating and its record keeps an older `maxCommitTS` than the one it waits for.
pub fn blockers(
    pump: &NodeStatus,
    registry: &Snapshot,
    waiting_for: Option<&[String]>,
) -> Vec<Blocker> {
    let newest_ms = registry
        .pumps
        .iter()
        .chain(&registry.drainers)
        .map(|node| tso::physical_ms(node.update_ts))
        .max()
        .unwrap_or(0);
    registry
        .drainers
        .iter()
        .filter(|drainer| {
            drainer.state != NodeState::Offline
                && match waiting_for {
                    Some(ids) => ids.contains(&drainer.node_id),
                    None => drainer.max_commit_ts < pump.max_commit_ts,
                }
        })
        .map(|drainer| {
            let silent_ms = newest_ms - tso::physical_ms(drainer.update_ts);
            let reason = match drainer.state {
                state @ (NodeState::Paused | NodeState::Pausing) => BlockReason::Paused(state),
                _ if drainer.update_ts > 0 && silent_ms > STALE_AFTER_MS => {
                    BlockReason::Stale { silent_ms }
                }
                _ => BlockReason::Lagging {
                    checkpoint_age_ms: newest_ms - tso::physical_ms(drainer.max_commit_ts),
                },
            };
            Blocker {
                node_id: drainer.node_id.clone(),
                reason,
            }
        })
        .collect()
}

/// Replaces the blockers of the wait on closing pump `pump` by the drainers the pump itself
/// reported waiting for.
pub fn use_pump_view(
    plan: &mut Plan,
    pump: &NodeStatus,
    registry: &Snapshot,
    waiting_for: &[String],
) {
    for wait in &mut plan.waits {
        if let Wait::PumpClosing {
            node_id,
            blockers: found,
        } = wait
            && *node_id == pump.node_id
        {
            *found = blockers(pump, registry, Some(waiting_for));
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            BlockReason::Lagging { checkpoint_age_ms } => write!(
                f,
                "{} (running, checkpoint {} old)",
                self.node_id,
                seconds(checkpoint_age_ms)
            ),
            BlockReason::Paused(state) => write!(
                f,
                "{} ({state}: a stopped drainer still counts; start it again, or close it with \
                 binlogctl if it is gone for good)",
                self.node_id
            ),
            BlockReason::Stale { silent_ms } => write!(
                f,
                "{} (registered online but silent for {}: stale; if it is gone for good, close \
                 it with binlogctl)",
                self.node_id,
                seconds(silent_ms)
            ),
        }
    }
}

fn seconds(ms: i64) -> String {
    format!("{}s", ms.max(0) / 1000)
}

impl Wait {
    /// Whether the wait ends only when someone acts: a stopped pump, a stopped or silent drainer,
    /// an unreachable registry. (A lagging drainer or a pod terminating resolve by themselves.)
    pub fn needs_attention(&self) -> bool {
        match self {
            Wait::PumpClosing { blockers, .. } => blockers
                .iter()
                .any(|b| !matches!(b.reason, BlockReason::Lagging { .. })),
            Wait::PumpStopped { .. } | Wait::RegistryUnreachable(_) => true,
            Wait::PodsTerminating { .. }
            | Wait::VolumeDeleting(_)
            | Wait::DrainerClosing { .. } => false,
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::PumpClosing { node_id, blockers } if blockers.is_empty() => write!(
                f,
                "pump {node_id} is going offline; waiting for it to confirm that every drainer \
                 consumed its binlogs"
            ),
            Wait::PumpClosing { node_id, blockers } => {
                write!(
                    f,
                    "pump {node_id} is going offline; waiting for drainers to consume its \
                     binlogs: "
                )?;
                for (index, blocker) in blockers.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{blocker}")?;
                }
                Ok(())
            }
            Wait::PumpStopped { node_id, state } => write!(
                f,
                "pump {node_id} must go offline but is {state}; only a running pump can be \
                 closed (delete its pod to restart it)"
            ),
            Wait::PodsTerminating { pods, replicas } => write!(
                f,
                "waiting for the pump StatefulSet to remove pods ({pods} exist, {replicas} wanted)"
            ),
            Wait::VolumeDeleting(pvc) => write!(
                f,
                "deleting volume {pvc} of an offline pump before its ordinal is created again"
            ),
            Wait::DrainerClosing { node_id, state } => {
                write!(f, "drainer {node_id} is going offline (now {state})")
            }
            Wait::RegistryUnreachable(err) => write!(
                f,
                "cannot offline pumps or drainers while the registry is unreachable: {err}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "demo";

    fn node(id: &str, state: NodeState, max_commit_ms: i64, update_ms: i64) -> NodeStatus {
        let mut node = NodeStatus::new(id, format!("{id}:1"), state);
        node.max_commit_ts = tso::compose(max_commit_ms, 0);
        node.update_ts = tso::compose(update_ms, 0);
        node
    }

    fn intent(pumps: i32, drainers: &[&str]) -> Intent {
        Intent {
            cluster: CLUSTER.into(),
            pump_replicas: pumps,
            drainers: drainers.iter().map(|d| d.to_string()).collect(),
            retention: VolumeRetention::Retain,
        }
    }

    /// Three pumps running and online, one drainer `a` online and caught up.
    fn observed() -> Observed {
        Observed {
            pump_set: Some(PumpSet {
                replicas: 3,
                status_replicas: 3,
                ready_replicas: 3,
                rolled_out: true,
            }),
            pump_volumes: (0..3).map(|o| (o, Volume::default())).collect(),
            drainer_workloads: BTreeMap::from([("a".into(), DrainerWorkload { ready: true })]),
            drainer_volumes: BTreeMap::new(),
            registry: Ok(Snapshot {
                pumps: (0..3)
                    .map(|o| node(&format!("demo-pump-{o}"), NodeState::Online, 1000, 5000))
                    .collect(),
                drainers: vec![node("demo-drainer-a", NodeState::Online, 1000, 5000)],
            }),
        }
    }

    fn set_pump(observed: &mut Observed, ordinal: u32, state: NodeState) {
        let registry = observed.registry.as_mut().unwrap();
        let id = format!("demo-pump-{ordinal}");
        registry
            .pumps
            .iter_mut()
            .find(|p| p.node_id == id)
            .unwrap()
            .state = state;
    }

    fn set_replicas(observed: &mut Observed, replicas: i32, pods: i32) {
        let set = observed.pump_set.as_mut().unwrap();
        set.replicas = replicas;
        set.status_replicas = pods;
    }

    #[test]
    fn steady_state_changes_nothing() {
        let plan = plan_apply(&intent(3, &["a"]), &observed());
        assert_eq!(plan.pump_replicas, Some(3));
        assert!(plan.steps.is_empty() && plan.waits.is_empty(), "{plan:?}");
        assert!(!plan.offlining());
    }

    #[test]
    fn scale_in_closes_the_highest_pump_and_keeps_the_replicas() {
        let plan = plan_apply(&intent(1, &["a"]), &observed());
        assert_eq!(
            plan.pump_replicas,
            Some(3),
            "replicas drop only once offline"
        );
        let Step::ClosePump(pump) = &plan.steps[1] else {
            panic!("{plan:?}")
        };
        assert_eq!(plan.steps[0], Step::MarkPumpVolume(2));
        assert_eq!(pump.node_id, "demo-pump-2");
        assert!(
            matches!(&plan.waits[0], Wait::PumpClosing { node_id, .. } if node_id == "demo-pump-2")
        );
    }

    #[test]
    fn a_closing_pump_is_waited_for_without_a_second_close() {
        let mut obs = observed();
        set_pump(&mut obs, 2, NodeState::Closing);
        obs.pump_volumes.get_mut(&2).unwrap().marked = true;
        let plan = plan_apply(&intent(1, &["a"]), &obs);
        assert!(plan.steps.is_empty(), "{plan:?}");
        assert_eq!(plan.pump_replicas, Some(3));
        assert_eq!(plan.waits.len(), 1);
    }

    #[test]
    fn replicas_drop_once_the_pump_is_offline_then_the_next_pump_waits_for_the_pod() {
        let mut obs = observed();
        set_pump(&mut obs, 2, NodeState::Offline);
        obs.pump_volumes.get_mut(&2).unwrap().marked = true;
        let plan = plan_apply(&intent(1, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(2));
        assert!(plan.steps.is_empty() && plan.waits.is_empty(), "{plan:?}");

        // The StatefulSet was lowered but its pod 2 still exists: pump 1 is not touched yet.
        set_replicas(&mut obs, 2, 3);
        let plan = plan_apply(&intent(1, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(2));
        assert!(plan.steps.is_empty());
        assert_eq!(
            plan.waits,
            [Wait::PodsTerminating {
                pods: 3,
                replicas: 2
            }]
        );

        set_replicas(&mut obs, 2, 2);
        let plan = plan_apply(&intent(1, &["a"]), &obs);
        assert!(
            matches!(&plan.steps[1], Step::ClosePump(p) if p.node_id == "demo-pump-1"),
            "{plan:?}"
        );
    }

    #[test]
    fn an_unregistered_pump_is_dropped_at_once_and_its_volume_marked() {
        let mut obs = observed();
        obs.registry
            .as_mut()
            .unwrap()
            .pumps
            .retain(|p| p.node_id != "demo-pump-2");
        let plan = plan_apply(&intent(2, &["a"]), &obs);
        assert_eq!(plan.steps, [Step::MarkPumpVolume(2)]);
        assert_eq!(plan.pump_replicas, Some(2));
    }

    #[test]
    fn a_stopped_pump_cannot_be_closed_and_says_so() {
        let mut obs = observed();
        set_pump(&mut obs, 2, NodeState::Paused);
        let plan = plan_apply(&intent(2, &["a"]), &obs);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.pump_replicas, Some(3));
        assert!(
            plan.waits[0]
                .to_string()
                .contains("demo-pump-2 must go offline but is paused")
        );
    }

    #[test]
    fn without_the_registry_nothing_is_offlined() {
        let mut obs = observed();
        obs.registry = Err("connection refused".into());
        let plan = plan_apply(&intent(1, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(3));
        assert!(plan.steps.is_empty());
        assert!(plan.waits[0].to_string().contains("connection refused"));
        // Scale-out needs no registry.
        let plan = plan_apply(&intent(5, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(5));
    }

    #[test]
    fn a_started_scale_in_finishes_even_when_replicas_go_back_up() {
        let mut obs = observed();
        set_pump(&mut obs, 2, NodeState::Closing);
        obs.pump_volumes.get_mut(&2).unwrap().marked = true;
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(3));
        assert!(matches!(plan.waits[0], Wait::PumpClosing { .. }));

        set_pump(&mut obs, 2, NodeState::Offline);
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(2));

        // Next pass: back up to 3, on a fresh volume.
        set_replicas(&mut obs, 2, 2);
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert_eq!(plan.steps, [Step::DeleteVolume("data-demo-pump-2".into())]);
        assert_eq!(
            plan.pump_replicas,
            Some(2),
            "not before the old volume is gone"
        );
        obs.pump_volumes.get_mut(&2).unwrap().deleting = true;
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.pump_replicas, Some(2));
        obs.pump_volumes.remove(&2);
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(3));
        assert!(plan.waits.is_empty());
    }

    #[test]
    fn scale_out_rises_up_to_the_first_old_volume() {
        let mut obs = observed();
        set_replicas(&mut obs, 1, 1);
        obs.pump_volumes.get_mut(&2).unwrap().marked = true;
        let plan = plan_apply(&intent(4, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(2));
        assert_eq!(plan.steps, [Step::DeleteVolume("data-demo-pump-2".into())]);
        // An unmarked volume (not from a scale-in) is reused.
        obs.pump_volumes.get_mut(&2).unwrap().marked = false;
        let plan = plan_apply(&intent(4, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(4));
    }

    #[test]
    fn a_new_cluster_deletes_marked_volumes_left_by_an_old_one_first() {
        let mut obs = observed();
        obs.pump_set = None;
        obs.pump_volumes.get_mut(&0).unwrap().marked = true;
        let plan = plan_apply(&intent(3, &["a"]), &obs);
        assert_eq!(plan.pump_replicas, Some(0));
        assert_eq!(plan.steps, [Step::DeleteVolume("data-demo-pump-0".into())]);
        obs.pump_volumes.clear();
        assert_eq!(plan_apply(&intent(3, &["a"]), &obs).pump_replicas, Some(3));
    }

    #[test]
    fn blockers_name_lagging_paused_and_stale_drainers() {
        let pump = node("demo-pump-2", NodeState::Closing, 100_000, 200_000);
        let registry = Snapshot {
            pumps: vec![pump.clone()],
            drainers: vec![
                node("lagging", NodeState::Online, 40_000, 199_000),
                node("paused", NodeState::Paused, 90_000, 100_000),
                node("stale", NodeState::Online, 90_000, 150_000),
                node("caught-up", NodeState::Online, 100_000, 199_000),
                node("gone", NodeState::Offline, 1, 1),
            ],
        };
        let found = blockers(&pump, &registry, None);
        assert_eq!(
            found,
            [
                Blocker {
                    node_id: "lagging".into(),
                    reason: BlockReason::Lagging {
                        checkpoint_age_ms: 160_000
                    }
                },
                Blocker {
                    node_id: "paused".into(),
                    reason: BlockReason::Paused(NodeState::Paused)
                },
                Blocker {
                    node_id: "stale".into(),
                    reason: BlockReason::Stale { silent_ms: 50_000 }
                },
            ]
        );
        let message = Wait::PumpClosing {
            node_id: "demo-pump-2".into(),
            blockers: found,
        }
        .to_string();
        for needle in [
            "pump demo-pump-2 is going offline",
            "lagging (running, checkpoint 160s old)",
            "paused (paused: a stopped drainer still counts",
            "stale (registered online but silent for 50s",
        ] {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
    }

    #[test]
    fn the_pumps_own_list_wins_over_its_frozen_record() {
        // The pump's record stopped at 100s when it began closing; the paused drainer's
        // checkpoint (120s) is newer, but the pump really waits for it.
        let pump = node("demo-pump-2", NodeState::Online, 100_000, 100_000);
        let registry = Snapshot {
            pumps: vec![pump.clone()],
            drainers: vec![
                node("paused", NodeState::Paused, 120_000, 120_000),
                node("live", NodeState::Online, 150_000, 150_000),
            ],
        };
        assert!(blockers(&pump, &registry, None).is_empty());
        let mut plan = Plan {
            waits: vec![Wait::PumpClosing {
                node_id: "demo-pump-2".into(),
                blockers: vec![],
            }],
            ..Plan::default()
        };
        use_pump_view(&mut plan, &pump, &registry, &["paused".to_string()]);
        let Wait::PumpClosing { blockers, .. } = &plan.waits[0] else {
            panic!("{plan:?}")
        };
        assert_eq!(
            blockers,
            &[Blocker {
                node_id: "paused".into(),
                reason: BlockReason::Paused(NodeState::Paused)
            }]
        );
        assert!(plan.waits[0].needs_attention());
    }

    #[test]
    fn a_removed_drainer_is_closed_then_its_objects_deleted() {
        let mut obs = observed();
        let plan = plan_apply(&intent(3, &[]), &obs);
        assert!(
            matches!(&plan.steps[..], [Step::CloseDrainer(d)] if d.node_id == "demo-drainer-a"),
            "{plan:?}"
        );
        assert!(plan.offlining());

        obs.registry.as_mut().unwrap().drainers[0].state = NodeState::Closing;
        let plan = plan_apply(&intent(3, &[]), &obs);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.waits.len(), 1);

        obs.registry.as_mut().unwrap().drainers[0].state = NodeState::Offline;
        obs.drainer_volumes.insert("a".into(), Volume::default());
        let plan = plan_apply(&intent(3, &[]), &obs);
        assert_eq!(
            plan.steps,
            [Step::RemoveDrainer("a".into())],
            "volume retained"
        );
        let mut delete = intent(3, &[]);
        delete.retention = VolumeRetention::Delete;
        let plan = plan_apply(&delete, &obs);
        assert_eq!(
            plan.steps,
            [
                Step::DeleteVolume("data-demo-drainer-a".into()),
                Step::RemoveDrainer("a".into())
            ]
        );
    }

    #[test]
    fn a_paused_drainer_being_removed_is_rewritten_offline() {
        let mut obs = observed();
        obs.registry.as_mut().unwrap().drainers[0].state = NodeState::Paused;
        let plan = plan_apply(&intent(3, &[]), &obs);
        assert!(
            matches!(&plan.steps[..], [Step::ForceDrainerOffline(d)] if d.node_id == "demo-drainer-a")
        );
    }

    #[test]
    fn deletion_offlines_pumps_first_while_drainers_run_then_drainers_then_finishes() {
        let mut obs = observed();
        let cleanup = |obs: &Observed| plan_cleanup(&intent(3, &["a"]), obs);

        let plan = cleanup(&obs);
        assert!(matches!(&plan.steps[1], Step::ClosePump(p) if p.node_id == "demo-pump-2"));
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::CloseDrainer(_))),
            "drainers keep running while pumps go offline"
        );
        assert!(!plan.finished);

        for ordinal in (0..3).rev() {
            set_pump(&mut obs, ordinal, NodeState::Offline);
            obs.pump_volumes.get_mut(&ordinal).unwrap().marked = true;
            let plan = cleanup(&obs);
            assert_eq!(plan.pump_replicas, Some(ordinal as i32));
            set_replicas(&mut obs, ordinal as i32, ordinal as i32);
        }

        let plan = cleanup(&obs);
        assert!(
            matches!(&plan.steps[..], [Step::CloseDrainer(d)] if d.node_id == "demo-drainer-a"),
            "{plan:?}"
        );
        assert!(!plan.finished);

        obs.registry.as_mut().unwrap().drainers[0].state = NodeState::Offline;
        let plan = cleanup(&obs);
        assert_eq!(plan.steps, [Step::RemoveDrainer("a".into())]);
        assert!(plan.finished);
    }

    #[test]
    fn deletion_marks_every_pump_volume_so_a_new_cluster_does_not_reuse_it() {
        let mut obs = observed();
        obs.pump_set = None;
        obs.registry.as_mut().unwrap().drainers.clear();
        obs.drainer_workloads.clear();
        let plan = plan_cleanup(&intent(3, &[]), &obs);
        assert_eq!(
            plan.steps,
            [
                Step::MarkPumpVolume(0),
                Step::MarkPumpVolume(1),
                Step::MarkPumpVolume(2)
            ]
        );
        assert!(plan.finished);
    }
}
