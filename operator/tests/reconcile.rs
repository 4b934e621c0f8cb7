#![allow(clippy::unwrap_used)]
//! Reconciles against a fake Kubernetes API (`kube-fake-client`: an in-memory API server; the
//! only thing faked here besides the registry) and an in-memory registry standing in for PD's
//! etcd and the nodes' HTTP API (`MemoryNodes`; the real ones are exercised by the e2e test
//! `operator_scale_in`). The test plays the StatefulSet controller itself (`settle`), since the
//! fake API runs no controllers.
//!
//! Fake-API limits these tests respect: no watch (reconcile is called directly), server-side
//! apply is a JSON merge (removed fields are not asserted), DELETE ignores finalizers (deleting
//! clusters are seeded with a deletionTimestamp).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use binlog_cluster::{NodeKind, NodeState, NodeStatus};
use binlog_operator::crd::BinlogCluster;
use binlog_operator::metrics::Metrics;
use binlog_operator::names;
use binlog_operator::nodes::{BinlogNodes, Closed, NodesError, Snapshot, Target};
use binlog_operator::reconciler::{Context, reconcile};
use binlog_operator::status::{AVAILABLE, DEGRADED, PROGRESSING, Phase, SCALE_IN_BLOCKED};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};

const NS: &str = "tidb";

/// The registry and the nodes, in memory: `close` moves a node to `closing` (or, with
/// `silent_while_closing`, leaves its record as it is, as a real pump does) and a second close
/// is answered "already closing"; the test decides when a node reaches `offline`. Every command
/// is recorded in order.
#[derive(Clone, Default)]
struct MemoryNodes(Arc<Mutex<MemoryState>>);

#[derive(Default)]
struct MemoryState {
    snapshot: Snapshot,
    unreachable: Option<String>,
    commands: Vec<String>,
    /// Nodes that accepted a close.
    closing: Vec<String>,
    /// Like the real pump: a closing node stops heartbeating, so its record keeps `online`.
    silent_while_closing: bool,
    /// What closing pumps answer when asked whom they wait for.
    waiting_for: BTreeMap<String, Vec<String>>,
}

impl MemoryNodes {
    fn with(&self, change: impl FnOnce(&mut MemoryState)) {
        change(&mut self.0.lock().unwrap());
    }

    fn register(&self, kind: NodeKind, id: &str, state: NodeState, max_commit_ts: i64) {
        let mut node = NodeStatus::new(id, format!("{id}.svc:8250"), state);
        node.max_commit_ts = max_commit_ts;
        self.with(|s| {
            let nodes = match kind {
                NodeKind::Pump => &mut s.snapshot.pumps,
                NodeKind::Drainer => &mut s.snapshot.drainers,
            };
            nodes.retain(|n| n.node_id != id);
            nodes.push(node);
        });
    }

    fn set_state(&self, kind: NodeKind, id: &str, state: NodeState) {
        self.with(|s| {
            let nodes = match kind {
                NodeKind::Pump => &mut s.snapshot.pumps,
                NodeKind::Drainer => &mut s.snapshot.drainers,
            };
            nodes.iter_mut().find(|n| n.node_id == id).unwrap().state = state;
        });
    }

    fn commands(&self) -> Vec<String> {
        self.0.lock().unwrap().commands.clone()
    }
}

impl BinlogNodes for MemoryNodes {
    async fn snapshot(&self, target: &Target) -> Result<Snapshot, NodesError> {
        let state = self.0.lock().unwrap();
        match &state.unreachable {
            Some(cause) => Err(NodesError::Registry {
                urls: target.pd_urls.join(","),
                cause: cause.clone(),
            }),
            None => Ok(state.snapshot.clone()),
        }
    }

    async fn close(
        &self,
        _target: &Target,
        kind: NodeKind,
        node: &NodeStatus,
    ) -> Result<Closed, NodesError> {
        let mut already = false;
        self.with(|s| {
            already = s.closing.contains(&node.node_id);
            s.closing.push(node.node_id.clone());
            s.commands.push(format!("close {kind} {}", node.node_id));
        });
        if already {
            return Ok(Closed::AlreadyClosing);
        }
        if !self.0.lock().unwrap().silent_while_closing {
            self.set_state(kind, &node.node_id, NodeState::Closing);
        }
        Ok(Closed::Accepted)
    }

    async fn offline_waiting_for(
        &self,
        _target: &Target,
        pump: &NodeStatus,
    ) -> Result<Option<Vec<String>>, NodesError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .waiting_for
            .get(&pump.node_id)
            .cloned())
    }

    async fn force_drainer_offline(
        &self,
        _target: &Target,
        node: &NodeStatus,
    ) -> Result<(), NodesError> {
        self.with(|s| s.commands.push(format!("force-offline {}", node.node_id)));
        self.set_state(NodeKind::Drainer, &node.node_id, NodeState::Offline);
        Ok(())
    }
}

fn cluster_value(pumps: i32) -> Value {
    json!({
        "apiVersion": "binlog.tidb-rs.dev/v1alpha1",
        "kind": "BinlogCluster",
        "metadata": {
            "name": "demo",
            "namespace": NS,
            "uid": "0d1e2f30-0000-4000-8000-000000000001",
            "generation": 1,
        },
        "spec": {
            "pd": {"urls": ["http://pd.tidb:2379"]},
            "version": "v1.0.0",
            "pump": {"replicas": pumps, "storage": {"size": "20Gi"}},
            "drainers": [
                {"name": "mysql", "downstream": {"mysql": {
                    "host": "db", "user": "repl",
                    "passwordSecretRef": {"name": "db", "key": "password"}}}},
                {"name": "backup", "downstream": {"file": {}}},
            ],
        },
    })
}

fn finalized(mut value: Value) -> Value {
    value["metadata"]["finalizers"] = json!([names::FINALIZER]);
    value
}

struct Harness {
    client: Client,
    nodes: MemoryNodes,
    ctx: Arc<Context<MemoryNodes>>,
}

impl Harness {
    async fn new(cluster: Value) -> Harness {
        let cluster: BinlogCluster = serde_json::from_value(cluster).unwrap();
        let client = ClientBuilder::new()
            .with_resource::<BinlogCluster>()
            .with_object(cluster)
            .build()
            .await
            .unwrap();
        let nodes = MemoryNodes::default();
        let ctx = Arc::new(Context::new(
            client.clone(),
            nodes.clone(),
            Arc::new(Metrics::new()),
            std::env::temp_dir(),
        ));
        Harness { client, nodes, ctx }
    }

    /// Every pump and drainer of the demo cluster registered online with `max_commit_ts`.
    fn all_online(&self, pumps: u32) {
        for ordinal in 0..pumps {
            self.nodes.register(
                NodeKind::Pump,
                &names::pump_pod("demo", ordinal),
                NodeState::Online,
                100,
            );
        }
        for drainer in ["mysql", "backup"] {
            self.nodes.register(
                NodeKind::Drainer,
                &names::drainer("demo", drainer),
                NodeState::Online,
                100,
            );
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn cluster(&self) -> Option<BinlogCluster> {
        self.api::<BinlogCluster>().get_opt("demo").await.unwrap()
    }

    async fn reconcile(&self) {
        let cluster = self.cluster().await.expect("the cluster exists");
        reconcile(Arc::new(cluster), self.ctx.clone())
            .await
            .unwrap();
    }

    async fn pump_replicas(&self) -> i32 {
        let set = self.api::<StatefulSet>().get("demo-pump").await.unwrap();
        set.spec.unwrap().replicas.unwrap()
    }

    /// Plays the StatefulSet and Deployment controllers: pods for every ordinal below the
    /// replicas exist and are ready (creating their volumes from the claim template), the
    /// drainer Deployments are ready.
    async fn settle(&self) {
        let sets = self.api::<StatefulSet>();
        if let Some(set) = sets.get_opt("demo-pump").await.unwrap() {
            let replicas = set.spec.as_ref().unwrap().replicas.unwrap();
            let claims = self.api::<PersistentVolumeClaim>();
            let template = set
                .spec
                .as_ref()
                .unwrap()
                .volume_claim_templates
                .clone()
                .unwrap();
            for ordinal in 0..replicas as u32 {
                let name = names::pump_pvc("demo", ordinal);
                if claims.get_opt(&name).await.unwrap().is_none() {
                    let mut pvc = template[0].clone();
                    pvc.metadata.name = Some(name);
                    pvc.metadata.namespace = Some(NS.into());
                    claims.create(&PostParams::default(), &pvc).await.unwrap();
                }
            }
            let status = json!({"status": {
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                "observedGeneration": set.metadata.generation,
                "currentRevision": "r1", "updateRevision": "r1",
            }});
            sets.patch_status("demo-pump", &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
        let deployments = self.api::<Deployment>();
        for deployment in deployments.list(&ListParams::default()).await.unwrap() {
            let status = json!({"status": {
                "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                "observedGeneration": deployment.metadata.generation,
            }});
            deployments
                .patch_status(
                    &deployment.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .unwrap();
        }
    }

    async fn names<K>(&self) -> Vec<String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let mut names: Vec<String> = self
            .api::<K>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .iter()
            .map(|o| o.name_any())
            .collect();
        names.sort();
        names
    }

    async fn events(&self) -> Vec<(String, String, String)> {
        self.api::<Event>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn condition(&self, type_: &str) -> (String, String, String) {
        let cluster = self.cluster().await.unwrap();
        let status = cluster.status.unwrap();
        let c = status.condition(type_).unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
}

#[tokio::test]
async fn a_new_cluster_gets_its_finalizer_objects_and_status() {
    let h = Harness::new(cluster_value(3)).await;
    h.all_online(3);
    h.reconcile().await;

    let cluster = h.cluster().await.unwrap();
    assert_eq!(cluster.finalizers(), [names::FINALIZER]);
    assert_eq!(
        h.names::<ConfigMap>().await,
        ["demo-drainer-backup", "demo-drainer-mysql", "demo-pump"]
    );
    assert_eq!(
        h.names::<Service>().await,
        ["demo-drainer-backup", "demo-drainer-mysql", "demo-pump"]
    );
    assert_eq!(
        h.names::<Deployment>().await,
        ["demo-drainer-backup", "demo-drainer-mysql"]
    );
    assert_eq!(
        h.names::<PersistentVolumeClaim>().await,
        ["data-demo-drainer-backup"],
        "only the file drainer keeps its data on a volume"
    );
    assert_eq!(h.pump_replicas().await, 3);
    let set = h.api::<StatefulSet>().get("demo-pump").await.unwrap();
    let owner = &set.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("BinlogCluster", Some(true))
    );

    let status = cluster.status.unwrap();
    let pump = status.pump.unwrap();
    assert_eq!(
        pump.selector,
        "app.kubernetes.io/component=pump,app.kubernetes.io/instance=demo,\
         app.kubernetes.io/name=tidb-binlog"
    );
    // No pod is ready yet: not available, scaling out.
    assert_eq!(h.condition(AVAILABLE).await.0, "False");
    assert_eq!(h.condition(PROGRESSING).await.1, "ScalingOut");

    h.settle().await;
    h.reconcile().await;
    let (available, reason, message) = h.condition(AVAILABLE).await;
    assert_eq!(
        (available.as_str(), reason.as_str()),
        ("True", "AllOnline"),
        "{message}"
    );
    assert_eq!(h.condition(PROGRESSING).await.0, "False");
    let cluster = h.cluster().await.unwrap();
    let status = cluster.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.observed_generation, cluster.metadata.generation);
}

#[tokio::test]
async fn status_lists_members_from_the_registry_and_is_not_rewritten_when_nothing_changed() {
    let h = Harness::new(finalized(cluster_value(2))).await;
    h.all_online(2);
    h.nodes
        .register(NodeKind::Pump, "demo-pump-1", NodeState::Paused, 100);
    h.nodes
        .register(NodeKind::Pump, "someone-elses-pump", NodeState::Online, 100);
    h.reconcile().await;
    h.settle().await;
    h.reconcile().await;

    let status = h.cluster().await.unwrap().status.unwrap();
    let members: Vec<(String, String, String)> = status
        .pump
        .unwrap()
        .members
        .into_iter()
        .map(|m| (m.node_id, m.host, m.state))
        .collect();
    assert_eq!(
        members,
        [
            (
                "demo-pump-0".into(),
                "demo-pump-0.svc:8250".into(),
                "online".into()
            ),
            (
                "demo-pump-1".into(),
                "demo-pump-1.svc:8250".into(),
                "paused".into()
            ),
        ]
    );
    let drainers: Vec<String> = status
        .drainers
        .unwrap()
        .members
        .into_iter()
        .map(|m| format!("{}={}", m.node_id, m.state))
        .collect();
    assert_eq!(
        drainers,
        ["demo-drainer-backup=online", "demo-drainer-mysql=online"]
    );
    let (available, _, message) = h.condition(AVAILABLE).await;
    assert_eq!(available, "False");
    assert!(message.contains("pump demo-pump-1 is paused"), "{message}");

    // Heartbeats move maxCommitTS, which the status does not hold: nothing to write.
    h.nodes
        .register(NodeKind::Pump, "demo-pump-0", NodeState::Online, 999);
    h.settle().await;
    let before = h.cluster().await.unwrap().resource_version();
    h.reconcile().await;
    assert_eq!(h.cluster().await.unwrap().resource_version(), before);
}

fn template_hash<T: serde::Serialize>(object: &T) -> String {
    let value = serde_json::to_value(object).unwrap();
    value["spec"]["template"]["metadata"]["annotations"][names::CONFIG_HASH_ANNOTATION]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_config_change_rolls_only_the_pods_it_concerns() {
    let h = Harness::new(finalized(cluster_value(3))).await;
    h.all_online(3);
    h.reconcile().await;
    let set_hash = template_hash(&h.api::<StatefulSet>().get("demo-pump").await.unwrap());
    let mysql_hash = template_hash(
        &h.api::<Deployment>()
            .get("demo-drainer-mysql")
            .await
            .unwrap(),
    );

    let patch = json!({"spec": {"pump": {"config": "log-level = \"warn\"\n"}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.reconcile().await;

    let set = h.api::<StatefulSet>().get("demo-pump").await.unwrap();
    assert_ne!(template_hash(&set), set_hash, "pump pods roll");
    assert_eq!(
        template_hash(
            &h.api::<Deployment>()
                .get("demo-drainer-mysql")
                .await
                .unwrap()
        ),
        mysql_hash,
        "drainer pods do not"
    );
    let config = h.api::<ConfigMap>().get("demo-pump").await.unwrap();
    assert!(config.data.unwrap()["pump.toml"].contains("log-level = \"warn\""));
}

#[tokio::test]
async fn scale_in_offlines_the_highest_pump_before_lowering_the_replicas() {
    let h = Harness::new(finalized(cluster_value(3))).await;
    h.all_online(3);
    h.reconcile().await;
    h.settle().await;

    let patch = json!({"spec": {"pump": {"replicas": 1}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    for (ordinal, remaining) in [(2u32, 2), (1, 1)] {
        let pod = names::pump_pod("demo", ordinal);
        h.reconcile().await;
        assert_eq!(
            h.nodes.commands().last().map(String::as_str),
            Some(format!("close pump {pod}").as_str())
        );
        assert_eq!(
            h.pump_replicas().await,
            remaining + 1,
            "replicas wait for offline"
        );
        let (blocked, reason, message) = h.condition(SCALE_IN_BLOCKED).await;
        assert_eq!(blocked, "True");
        assert_eq!(reason, "WaitingForPumpOffline");
        assert!(message.contains(&pod), "{message}");

        h.reconcile().await;
        assert_eq!(h.pump_replicas().await, remaining + 1, "still closing");
        h.nodes.set_state(NodeKind::Pump, &pod, NodeState::Offline);
        h.reconcile().await;
        assert_eq!(h.pump_replicas().await, remaining);
        let pvc = h
            .api::<PersistentVolumeClaim>()
            .get(&names::pump_pvc("demo", ordinal))
            .await
            .unwrap();
        assert!(pvc.annotations().contains_key(names::SCALED_IN_ANNOTATION));
        h.settle().await;
    }
    assert_eq!(
        h.nodes.commands(),
        ["close pump demo-pump-2", "close pump demo-pump-1"]
    );
    h.reconcile().await;
    assert_eq!(h.condition(SCALE_IN_BLOCKED).await.0, "False");
    let events = h.events().await;
    assert!(
        events.iter().any(|(t, reason, note)| t == "Normal"
            && reason == "PumpScaledIn"
            && note.contains("demo-pump-1 is offline")),
        "{events:?}"
    );

    // Back to 2: the old volume of ordinal 1 goes before the ordinal comes back.
    let patch = json!({"spec": {"pump": {"replicas": 2}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.reconcile().await;
    assert_eq!(h.pump_replicas().await, 1);
    assert!(
        h.api::<PersistentVolumeClaim>()
            .get_opt("data-demo-pump-1")
            .await
            .unwrap()
            .is_none()
    );
    h.reconcile().await;
    assert_eq!(h.pump_replicas().await, 2);
}

#[tokio::test]
async fn a_paused_drainer_holding_a_pump_back_is_named_in_the_condition_and_an_event() {
    let h = Harness::new(finalized(cluster_value(2))).await;
    h.all_online(2);
    h.reconcile().await;
    h.settle().await;
    h.nodes
        .register(NodeKind::Pump, "demo-pump-1", NodeState::Closing, 500);
    h.nodes.register(
        NodeKind::Drainer,
        "demo-drainer-backup",
        NodeState::Paused,
        100,
    );
    let patch = json!({"spec": {"pump": {"replicas": 1}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.reconcile().await;

    let (blocked, reason, message) = h.condition(SCALE_IN_BLOCKED).await;
    assert_eq!(
        (blocked.as_str(), reason.as_str()),
        ("True", "WaitingForDrainers")
    );
    assert!(message.contains("demo-drainer-backup (paused"), "{message}");
    assert!(message.contains("demo-drainer-mysql (running"), "{message}");
    assert_eq!(
        h.cluster().await.unwrap().status.unwrap().phase,
        Some(Phase::ScaleInBlocked)
    );
    assert_eq!(h.pump_replicas().await, 2);
    let events = h.events().await;
    assert!(
        events.iter().any(|(t, reason, note)| t == "Warning"
            && reason == "WaitingForDrainers"
            && note.contains("demo-drainer-backup")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_removed_drainer_is_offlined_before_its_objects_go() {
    let h = Harness::new(finalized(cluster_value(1))).await;
    h.all_online(1);
    h.reconcile().await;
    h.settle().await;

    let patch = json!({"spec": {"drainers": [
        {"name": "mysql", "downstream": {"mysql": {"host": "db", "user": "repl"}}},
    ]}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.reconcile().await;
    assert_eq!(h.nodes.commands(), ["close drainer demo-drainer-backup"]);
    assert_eq!(
        h.names::<Deployment>().await,
        ["demo-drainer-backup", "demo-drainer-mysql"],
        "kept until offline"
    );
    let (_, reason, message) = h.condition(SCALE_IN_BLOCKED).await;
    assert_eq!(reason, "DrainerClosing");
    assert!(message.contains("demo-drainer-backup"), "{message}");
    assert_eq!(h.condition(PROGRESSING).await.1, "RemovingDrainer");

    h.nodes
        .set_state(NodeKind::Drainer, "demo-drainer-backup", NodeState::Offline);
    h.reconcile().await;
    assert_eq!(h.names::<Deployment>().await, ["demo-drainer-mysql"]);
    assert_eq!(
        h.names::<Service>().await,
        ["demo-drainer-mysql", "demo-pump"]
    );
    assert_eq!(
        h.names::<ConfigMap>().await,
        ["demo-drainer-mysql", "demo-pump"]
    );
    assert!(
        h.names::<PersistentVolumeClaim>()
            .await
            .contains(&"data-demo-drainer-backup".to_string()),
        "the default retention keeps the file drainer's volume"
    );
}

#[tokio::test]
async fn with_delete_retention_a_removed_drainers_volume_goes_too() {
    let mut value = finalized(cluster_value(1));
    value["spec"]["drainerVolumeRetention"] = json!("Delete");
    let h = Harness::new(value).await;
    h.all_online(1);
    h.reconcile().await;
    let patch = json!({"spec": {"drainers": []}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.nodes
        .set_state(NodeKind::Drainer, "demo-drainer-backup", NodeState::Offline);
    h.nodes
        .set_state(NodeKind::Drainer, "demo-drainer-mysql", NodeState::Paused);
    h.reconcile().await;
    assert_eq!(h.nodes.commands(), ["force-offline demo-drainer-mysql"]);
    assert!(h.names::<PersistentVolumeClaim>().await.is_empty());
    assert_eq!(h.names::<Deployment>().await, ["demo-drainer-mysql"]);
    h.reconcile().await;
    assert!(h.names::<Deployment>().await.is_empty());
}

fn deleting(mut value: Value) -> Value {
    value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    value
}

#[tokio::test]
async fn deletion_offlines_pumps_highest_first_then_drainers_then_releases_the_finalizer() {
    // Create the objects first, then start the deletion: the fake API cannot add a
    // deletionTimestamp to a stored object, so a new fake API is seeded with the children and a
    // deleting copy of the cluster.
    let h = Harness::new(finalized(cluster_value(3))).await;
    h.all_online(3);
    h.reconcile().await;
    h.settle().await;
    let live = h.cluster().await.unwrap();
    let h = seeded_deleting_harness(&h, &live).await;

    let mut guard = 0;
    while h.cluster().await.is_some() {
        guard += 1;
        assert!(
            guard < 40,
            "deletion did not finish: {:?}",
            h.nodes.commands()
        );
        h.reconcile().await;
        h.settle().await;
        // Each node the operator closed goes offline before the next pass.
        for command in h.nodes.commands() {
            let (kind, id) = match command.split(' ').collect::<Vec<_>>()[..] {
                ["close", "pump", id] => (NodeKind::Pump, id.to_string()),
                ["close", "drainer", id] => (NodeKind::Drainer, id.to_string()),
                _ => continue,
            };
            h.nodes.set_state(kind, &id, NodeState::Offline);
        }
    }
    assert_eq!(
        h.nodes.commands(),
        [
            "close pump demo-pump-2",
            "close pump demo-pump-1",
            "close pump demo-pump-0",
            "close drainer demo-drainer-backup",
            "close drainer demo-drainer-mysql",
        ]
    );
    for ordinal in 0..3 {
        let pvc = h
            .api::<PersistentVolumeClaim>()
            .get(&names::pump_pvc("demo", ordinal))
            .await
            .unwrap();
        assert!(
            pvc.annotations().contains_key(names::SCALED_IN_ANNOTATION),
            "pump volumes are kept but marked, so a new cluster does not reuse them"
        );
    }
}

/// A harness whose fake API holds `live`'s children (StatefulSet, volumes) and a deleting copy
/// of `live` with the finalizer.
async fn seeded_deleting_harness(old: &Harness, live: &BinlogCluster) -> Harness {
    let mut value = deleting(serde_json::to_value(live).unwrap());
    value["metadata"]["resourceVersion"] = Value::Null;
    value["status"] = Value::Null;
    let cluster: BinlogCluster = serde_json::from_value(value).unwrap();
    let set = old.api::<StatefulSet>().get("demo-pump").await.unwrap();
    let claims = old
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let deployments = old
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let strip = |meta: &mut kube::api::ObjectMeta| meta.resource_version = None;
    let mut builder = ClientBuilder::new()
        .with_resource::<BinlogCluster>()
        .with_object(cluster);
    let mut set = set;
    strip(&mut set.metadata);
    builder = builder.with_object(set);
    for mut claim in claims {
        strip(&mut claim.metadata);
        builder = builder.with_object(claim);
    }
    for mut deployment in deployments {
        strip(&mut deployment.metadata);
        builder = builder.with_object(deployment);
    }
    let client = builder.build().await.unwrap();
    let ctx = Arc::new(Context::new(
        client.clone(),
        old.nodes.clone(),
        Arc::new(Metrics::new()),
        std::env::temp_dir(),
    ));
    Harness {
        client,
        nodes: old.nodes.clone(),
        ctx,
    }
}

#[tokio::test]
async fn force_deletion_releases_the_finalizer_with_a_warning() {
    let mut value = deleting(finalized(cluster_value(1)));
    value["metadata"]["annotations"] = json!({names::FORCE_DELETE_ANNOTATION: "true"});
    let h = Harness::new(value).await;
    h.nodes
        .with(|s| s.unreachable = Some("connection refused".into()));
    h.reconcile().await;
    assert!(h.cluster().await.is_none(), "the finalizer was released");
    assert!(h.nodes.commands().is_empty());
    let events = h.events().await;
    assert!(
        events
            .iter()
            .any(|(t, reason, _)| t == "Warning" && reason == "ForceDeleted"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_degrades_but_never_lowers_replicas() {
    let h = Harness::new(finalized(cluster_value(3))).await;
    h.all_online(3);
    h.reconcile().await;
    h.settle().await;
    h.nodes
        .with(|s| s.unreachable = Some("connection refused".into()));
    let patch = json!({"spec": {"pump": {"replicas": 1}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.reconcile().await;
    assert_eq!(h.pump_replicas().await, 3);
    let (degraded, reason, message) = h.condition(DEGRADED).await;
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "RegistryUnreachable")
    );
    assert!(
        message.contains("connection refused") && message.contains("pd.tidb:2379"),
        "{message}"
    );
    assert_eq!(h.condition(SCALE_IN_BLOCKED).await.1, "RegistryUnreachable");
    // Members seen before are kept rather than dropped.
    let members = h
        .cluster()
        .await
        .unwrap()
        .status
        .unwrap()
        .pump
        .unwrap()
        .members;
    assert_eq!(members.len(), 3);
}

#[tokio::test]
async fn an_invalid_spec_creates_nothing_and_says_why() {
    let mut value = cluster_value(1);
    value["spec"]["drainers"][1]["name"] = json!("mysql");
    let h = Harness::new(value).await;
    h.all_online(1);
    h.reconcile().await;
    assert!(h.names::<StatefulSet>().await.is_empty());
    let (degraded, reason, message) = h.condition(DEGRADED).await;
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        message.contains("\"mysql\" is used by two drainers"),
        "{message}"
    );
    let events: BTreeMap<String, String> = h
        .events()
        .await
        .into_iter()
        .map(|(_, reason, note)| (reason, note))
        .collect();
    assert!(events.contains_key("InvalidSpec"), "{events:?}");
}

#[tokio::test]
async fn a_pump_whose_record_still_says_online_while_closing_is_not_closed_twice_over() {
    let h = Harness::new(finalized(cluster_value(2))).await;
    h.all_online(2);
    h.nodes.with(|s| s.silent_while_closing = true);
    h.reconcile().await;
    h.settle().await;
    let patch = json!({"spec": {"pump": {"replicas": 1}}});
    h.api::<BinlogCluster>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    for _ in 0..3 {
        h.reconcile().await;
    }
    assert_eq!(h.pump_replicas().await, 2);
    let (degraded, _, message) = h.condition(DEGRADED).await;
    assert_eq!(
        degraded, "False",
        "an already-closing pump is no failure: {message}"
    );
    let (blocked, _, message) = h.condition(SCALE_IN_BLOCKED).await;
    assert_eq!(blocked, "True");
    assert!(
        message.contains("demo-pump-1 is going offline"),
        "{message}"
    );
    // The pump's own list names the drainer its frozen record cannot show.
    h.nodes.with(|s| {
        s.waiting_for
            .insert("demo-pump-1".into(), vec!["demo-drainer-mysql".into()]);
    });
    h.reconcile().await;
    let (_, reason, message) = h.condition(SCALE_IN_BLOCKED).await;
    assert_eq!(reason, "WaitingForDrainers");
    assert!(message.contains("demo-drainer-mysql (running"), "{message}");
    // Announced once: a repeat would be folded into the same Event as a series.
    let announced: Vec<Event> = h
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ClosingPump"))
        .collect();
    assert_eq!(announced.len(), 1);
    assert!(announced[0].series.is_none(), "{:?}", announced[0].series);
    h.nodes
        .set_state(NodeKind::Pump, "demo-pump-1", NodeState::Offline);
    h.reconcile().await;
    assert_eq!(h.pump_replicas().await, 1);
}
