//! The operator scaling pumps in, against the real thing everywhere but Kubernetes: real etcd
//! behind `pd-sim`, real pump processes standing in for the StatefulSet's pods, real drainers,
//! `tidb-sim` traffic (the simulated TiDB writing binlogs to the pumps and its changes to a truth
//! MariaDB), and the operator's real reconciler with its real registry and node client.
//!
//! Only the Kubernetes API is faked: `kube-fake-client` (an in-memory API server without
//! controllers or watches), extended with the scale subresource the CRD declares (`WithScale`),
//! so the test scales the BinlogCluster exactly as `kubectl scale` does. The test plays the
//! StatefulSet controller (`StatefulSetStandIn`): when the operator lowers the replicas, the
//! pump processes above them are stopped like deleted pods, and the StatefulSet's status follows.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use binlog_cluster::{NodeKind, NodeState, NodeStatus, TlsSettings};
use binlog_operator::crd::BinlogCluster;
use binlog_operator::metrics::Metrics;
use binlog_operator::names;
use binlog_operator::nodes::ClusterNodes;
use binlog_operator::reconciler::{Context, reconcile};
use binlog_operator::status::{Phase, SCALE_IN_BLOCKED};
use e2e::tidb::sim::serve::{ServeConfig, serve};
use e2e::tidb::sim::workload::{self, WorkloadConfig};
use e2e::{Downstream, DrainerProcess, MariaDb, PumpProcess, World, free_port};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::client::Body;
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "tidb";
const CLUSTER: &str = "demo";
/// Reconcile passes a phase of a case may take before it is declared stuck (each pass sleeps
/// [`TICK`]; the bound is on the count, nothing asserts how long a pass took).
const MAX_TICKS: usize = 240;
const TICK: Duration = Duration::from_millis(250);

/// The apiserver's scale subresource for BinlogClusters, which the fake API lacks: `GET` and
/// `PATCH .../binlogclusters/<name>/scale` read and write the fields the CRD's `scale` section
/// names (so the test also checks those paths). Every other request goes to the fake API.
#[derive(Clone)]
struct WithScale {
    inner: Client,
    spec_replicas: String,
    status_replicas: String,
    selector: String,
}

impl WithScale {
    fn new(inner: Client) -> WithScale {
        let crd = binlog_operator::crdgen::crd();
        let scale = crd.spec.versions[0]
            .subresources
            .clone()
            .unwrap()
            .scale
            .unwrap();
        let pointer = |path: &str| path.replace('.', "/");
        WithScale {
            inner,
            spec_replicas: pointer(&scale.spec_replicas_path),
            status_replicas: pointer(&scale.status_replicas_path),
            selector: pointer(&scale.label_selector_path.unwrap()),
        }
    }

    async fn handle(self, request: http::Request<Body>) -> kube::Result<http::Response<Body>> {
        let path = request.uri().path().to_string();
        let Some(object) = path
            .strip_suffix("/scale")
            .filter(|p| p.contains("/binlogclusters/"))
        else {
            return self.inner.send(request).await;
        };
        let segments: Vec<&str> = object.split('/').collect();
        let (namespace, name) = (segments[segments.len() - 3], segments[segments.len() - 1]);
        let clusters: Api<BinlogCluster> = Api::namespaced(self.inner.clone(), namespace);
        if request.method() == http::Method::PATCH {
            let body = request.into_body().collect_bytes().await?;
            let scale: Value = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
            // `{"spec":{"pump":{"replicas":N}}}` from the pointer `/spec/pump/replicas`.
            let mut patch = scale["spec"]["replicas"].clone();
            for key in self
                .spec_replicas
                .split('/')
                .rev()
                .filter(|k| !k.is_empty())
            {
                patch = json!({ key: patch });
            }
            clusters
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        let cluster = serde_json::to_value(clusters.get(name).await?).unwrap();
        let scale = json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": cluster.pointer(&self.spec_replicas)},
            "status": {
                "replicas": cluster.pointer(&self.status_replicas).cloned().unwrap_or(json!(0)),
                "selector": cluster.pointer(&self.selector),
            },
        });
        Ok(http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&scale).unwrap()))
            .unwrap())
    }
}

impl tower::Service<http::Request<Body>> for WithScale {
    type Response = http::Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = kube::Result<http::Response<Body>>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<kube::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().handle(request))
    }
}

/// A BinlogCluster (already carrying the operator's finalizer) with `pumps` pumps and the given
/// drainers, against `pd_url`.
fn cluster(pd_url: &str, pumps: i32, drainers: Value) -> BinlogCluster {
    serde_json::from_value(json!({
        "apiVersion": "binlog.tidb-rs.dev/v1alpha1",
        "kind": "BinlogCluster",
        "metadata": {
            "name": CLUSTER,
            "namespace": NS,
            "uid": "0d1e2f30-0000-4000-8000-0000000000e2",
            "generation": 1,
            "finalizers": [names::FINALIZER],
        },
        "spec": {
            "pd": {"urls": [pd_url]},
            "pump": {"replicas": pumps, "storage": {"size": "20Gi"}},
            "drainers": drainers,
        },
    }))
    .unwrap()
}

/// The operator and the fake Kubernetes API it works against.
struct Operator {
    client: Client,
    ctx: Arc<Context<ClusterNodes>>,
}

impl Operator {
    async fn start(cluster: BinlogCluster, dir: &std::path::Path) -> Operator {
        let fake = ClientBuilder::new()
            .with_resource::<BinlogCluster>()
            .with_object(cluster)
            .build()
            .await
            .unwrap();
        let client = Client::new(WithScale::new(fake), "default");
        let ctx = Arc::new(Context::new(
            client.clone(),
            ClusterNodes,
            Arc::new(Metrics::new()),
            dir.join("operator-tls"),
        ));
        Operator { client, ctx }
    }

    fn clusters(&self) -> Api<BinlogCluster> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn reconcile(&self) {
        let cluster = self.clusters().get(CLUSTER).await.unwrap();
        reconcile(Arc::new(cluster), self.ctx.clone())
            .await
            .unwrap();
    }

    /// `kubectl scale binlogcluster/demo --replicas=N`.
    async fn scale(&self, replicas: i32) {
        let scale = self
            .clusters()
            .patch_scale(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(replicas));
    }

    async fn status(&self) -> binlog_operator::BinlogClusterStatus {
        self.clusters()
            .get(CLUSTER)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }

    async fn events(&self) -> Vec<(String, String, String)> {
        Api::<Event>::namespaced(self.client.clone(), NS)
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
}

/// The StatefulSet controller, played by the test: pump processes are the pods.
struct StatefulSetStandIn {
    pods: BTreeMap<u32, PumpProcess>,
}

impl StatefulSetStandIn {
    /// Starts the pods of the StatefulSet the operator created, with the `pump.toml` of the
    /// ConfigMap it created (its stop-write threshold sized for the volume, for instance).
    async fn start(world: &World, operator: &Operator) -> StatefulSetStandIn {
        let sets: Api<StatefulSet> = Api::namespaced(operator.client.clone(), NS);
        let set = sets.get(&names::pump(CLUSTER)).await.unwrap();
        let replicas = set.spec.unwrap().replicas.unwrap() as u32;
        let config_maps: Api<ConfigMap> = Api::namespaced(operator.client.clone(), NS);
        let config = config_maps.get(&names::pump(CLUSTER)).await.unwrap();
        let path = world.dir.path().join(names::PUMP_CONFIG_FILE);
        std::fs::write(&path, &config.data.unwrap()[names::PUMP_CONFIG_FILE]).unwrap();
        let config_flag = format!("-config={}", path.display());
        let mut pods = BTreeMap::new();
        for ordinal in 0..replicas {
            let id = names::pump_pod(CLUSTER, ordinal);
            pods.insert(ordinal, world.start_pump(&id, &[&config_flag]).unwrap());
            assert!(
                world
                    .wait_state(NodeKind::Pump, &id, NodeState::Online)
                    .await
            );
        }
        StatefulSetStandIn { pods }
    }

    /// Deletes the pods above the StatefulSet's replicas (SIGTERM, as the kubelet does) and
    /// writes the StatefulSet's status. Returns the replicas the operator asked for.
    async fn sync(&mut self, operator: &Operator) -> i32 {
        let sets: Api<StatefulSet> = Api::namespaced(operator.client.clone(), NS);
        let set = sets.get(&names::pump(CLUSTER)).await.unwrap();
        let replicas = set.spec.as_ref().unwrap().replicas.unwrap();
        let removed: Vec<u32> = self
            .pods
            .keys()
            .copied()
            .filter(|o| *o as i32 >= replicas)
            .collect();
        for ordinal in removed {
            let mut pod = self.pods.remove(&ordinal).unwrap();
            pod.terminate();
        }
        let pods = self.pods.len() as i32;
        let status = json!({"status": {
            "replicas": pods, "readyReplicas": pods, "updatedReplicas": pods,
            "observedGeneration": set.metadata.generation,
            "currentRevision": "r1", "updateRevision": "r1",
        }});
        sets.patch_status(
            &names::pump(CLUSTER),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
        replicas
    }
}

async fn pump_record(world: &World, ordinal: u32) -> NodeStatus {
    world
        .registry
        .get(NodeKind::Pump, &names::pump_pod(CLUSTER, ordinal))
        .await
        .unwrap()
}

async fn drainer_record(world: &World, id: &str) -> NodeStatus {
    world.registry.get(NodeKind::Drainer, id).await.unwrap()
}

/// A simulated TiDB's status API (schema history for the drainer) for the whole test.
fn serve_status_api(world: &World, truth: &MariaDb) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServeConfig {
        pd_urls: vec![world.pd_sim.url()],
        truth_url: truth.url(),
        status_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        tls: TlsSettings::default(),
    };
    tokio::spawn(async move {
        if let Err(err) = serve(config, async {
            let _ = stopped.await;
        })
        .await
        {
            eprintln!("the simulated TiDB status API stopped: {err}");
        }
    });
    stop
}

async fn checkpoint_ts(drainer: &DrainerProcess) -> Option<i64> {
    let url = format!("{}/commit_ts", drainer.http_url());
    let (code, body) = binlog_cluster::control::http_request(&TlsSettings::default(), "GET", &url)
        .await
        .ok()?;
    let value: Value = serde_json::from_slice(&body).ok().filter(|_| code == 200)?;
    value["data"]["ts"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_3_to_1_offlines_pump_2_then_pump_1_each_after_the_drainer_has_its_binlogs() {
    let world = World::start().await.unwrap();
    let truth = MariaDb::start().unwrap();
    let downstream = MariaDb::start().unwrap();
    let _status_api = serve_status_api(&world, &truth);
    let drainer_id = names::drainer(CLUSTER, "mysql");
    let drainer = world
        .start_drainer(
            &drainer_id,
            &Downstream::Mysql {
                port: downstream.port(),
            },
            "txn-batch = 10\nworker-count = 4",
            &[],
        )
        .unwrap();
    assert!(
        world
            .wait_state(NodeKind::Drainer, &drainer_id, NodeState::Online)
            .await
    );
    let spec_drainers = json!([{"name": "mysql", "downstream": {"mysql": {
        "host": "127.0.0.1", "port": downstream.port(), "user": "root"}}}]);
    let operator = Operator::start(
        cluster(&world.pd_sim.url(), 3, spec_drainers),
        world.dir.path(),
    )
    .await;
    operator.reconcile().await;
    let mut pods = StatefulSetStandIn::start(&world, &operator).await;
    assert_eq!(pods.sync(&operator).await, 3);

    // Traffic through all three pumps while they are scaled in.
    let run = tokio::spawn(workload::run(WorkloadConfig::new(
        vec![world.pd_sim.url()],
        truth.url(),
        300,
        4,
        29,
    )));
    operator.scale(1).await;

    let mut offline_order = Vec::new();
    let mut replicas = 3;
    // Each pump's last record while still online: what it held when it was asked to close.
    let mut before_close: BTreeMap<u32, NodeStatus> = BTreeMap::new();
    for tick in 0.. {
        assert!(
            tick < MAX_TICKS,
            "the scale-in did not finish; status: {:?}\ndrainer log:\n{}",
            operator.status().await,
            drainer.log_tail()
        );
        for ordinal in 1..3 {
            let record = pump_record(&world, ordinal).await;
            if record.state == NodeState::Online {
                before_close.insert(ordinal, record);
            }
        }
        operator.reconcile().await;
        let asked = pods.sync(&operator).await;
        let states = [
            pump_record(&world, 0).await.state,
            pump_record(&world, 1).await.state,
            pump_record(&world, 2).await.state,
        ];
        assert_eq!(states[0], NodeState::Online, "pump-0 stays");
        if states[1] != NodeState::Online {
            assert_eq!(
                states[2],
                NodeState::Offline,
                "pump-1 is closed only once pump-2 is offline"
            );
        }
        if asked < replicas {
            // Lowered by one, and only over a pump that is offline.
            assert_eq!(asked, replicas - 1);
            let record = pump_record(&world, asked as u32).await;
            assert_eq!(
                record.state,
                NodeState::Offline,
                "replicas lowered to {asked} while {} is {}",
                record.node_id,
                record.state
            );
            let held = before_close[&(asked as u32)].max_commit_ts;
            let consumed = drainer_record(&world, &drainer_id).await.max_commit_ts;
            assert!(
                consumed >= held,
                "{} held binlogs up to {held} when closed, went offline, but the drainer's \
                 checkpoint is {consumed}",
                record.node_id
            );
            offline_order.push(record.node_id.clone());
            replicas = asked;
        }
        if replicas == 1 {
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    assert_eq!(offline_order, ["demo-pump-2", "demo-pump-1"]);

    let summary = run.await.unwrap().unwrap();
    assert!(summary.committed > 0, "{summary:?}");
    assert_eq!(summary.commits_undelivered, 0, "{summary:?}");
    let mut caught_up = false;
    for _ in 0..MAX_TICKS {
        if checkpoint_ts(&drainer)
            .await
            .is_some_and(|ts| ts >= summary.last_commit_ts)
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    assert!(caught_up, "drainer log:\n{}", drainer.log_tail());
    let (code, report) = e2e::tidb_sim::check_databases(&truth.url(), &downstream.url()).unwrap();
    assert_eq!(
        code, 0,
        "the downstream lacks committed transactions:\n{report}"
    );

    operator.reconcile().await;
    let status = operator.status().await;
    let members: Vec<(String, String)> = status
        .pump
        .clone()
        .unwrap()
        .members
        .into_iter()
        .map(|m| (m.node_id, m.state))
        .collect();
    assert_eq!(members, [("demo-pump-0".to_string(), "online".to_string())]);
    assert_eq!(status.condition(SCALE_IN_BLOCKED).unwrap().status, "False");
    let scaled_in: Vec<String> = operator
        .events()
        .await
        .into_iter()
        .filter(|(_, reason, _)| reason == "PumpScaledIn")
        .map(|(_, _, note)| note)
        .collect();
    assert_eq!(scaled_in.len(), 2, "{scaled_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_drainer_blocks_the_scale_in_and_the_condition_names_it() {
    let world = World::start().await.unwrap();
    // Drainers read TiDB's schema history even without traffic.
    let truth = MariaDb::start().unwrap();
    let _status_api = serve_status_api(&world, &truth);
    let running_id = names::drainer(CLUSTER, "live");
    let paused_id = names::drainer(CLUSTER, "backup");
    let _running = world
        .start_drainer(&running_id, &Downstream::Files, "", &[])
        .unwrap();
    let mut paused = world
        .start_drainer(&paused_id, &Downstream::Files, "", &[])
        .unwrap();
    for id in [&running_id, &paused_id] {
        assert!(
            world
                .wait_state(NodeKind::Drainer, id, NodeState::Online)
                .await
        );
    }
    binlog_cluster::control::apply_action(
        &TlsSettings::default(),
        &paused.addr,
        &paused_id,
        binlog_cluster::Action::Pause,
    )
    .await
    .unwrap();
    assert!(paused.wait_exit(Duration::from_secs(30)).is_some());
    assert!(
        world
            .wait_state(NodeKind::Drainer, &paused_id, NodeState::Paused)
            .await
    );

    let spec_drainers = json!([
        {"name": "live", "downstream": {"file": {}}},
        {"name": "backup", "downstream": {"file": {}}},
    ]);
    let operator = Operator::start(
        cluster(&world.pd_sim.url(), 2, spec_drainers),
        world.dir.path(),
    )
    .await;
    operator.reconcile().await;
    let mut pods = StatefulSetStandIn::start(&world, &operator).await;
    assert_eq!(pods.sync(&operator).await, 2);
    operator.scale(1).await;

    // The pump is closed, and waits for the paused drainer: the condition names it.
    let mut named = None;
    let mut last = None;
    for _ in 0..MAX_TICKS {
        operator.reconcile().await;
        assert_eq!(
            pods.sync(&operator).await,
            2,
            "no replica may go while blocked"
        );
        let status = operator.status().await;
        if let Some(condition) = status.condition(SCALE_IN_BLOCKED)
            && condition.reason == "WaitingForDrainers"
            && condition.message.contains(&format!("{paused_id} (paused"))
            // The running drainer may lag for a moment; once it caught up only the paused one
            // is named.
            && !condition.message.contains(&running_id)
        {
            named = Some((condition.message.clone(), status.phase));
            break;
        }
        last = Some(status);
        tokio::time::sleep(TICK).await;
    }
    let Some((message, phase)) = named else {
        let (pumps, _) = world.registry.list(NodeKind::Pump).await.unwrap();
        let (drainers, _) = world.registry.list(NodeKind::Drainer).await.unwrap();
        panic!(
            "the condition never named the paused drainer; last status: {last:#?}\n\
             pumps: {pumps:#?}\ndrainers: {drainers:#?}"
        );
    };
    assert!(
        message.contains("pump demo-pump-1 is going offline"),
        "{message}"
    );
    assert_eq!(phase, Some(Phase::ScaleInBlocked));
    // The pump agrees (its registry record keeps `online` while it waits: it stops
    // heartbeating when it starts closing).
    let url = format!("{}/status", pods.pods[&1].http_url());
    let (_, body) = binlog_cluster::control::http_request(&TlsSettings::default(), "GET", &url)
        .await
        .unwrap();
    let pump_status: Value = serde_json::from_slice(&body).unwrap();
    let waiting_for: Vec<&str> = pump_status["OfflineWaitingFor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["nodeId"].as_str().unwrap())
        .collect();
    assert_eq!(waiting_for, [paused_id.as_str()]);
    // Its record stopped with its last heartbeat: a lower bound of what it holds.
    let held_when_blocked = pump_record(&world, 1).await.max_commit_ts;
    let warned = operator
        .events()
        .await
        .into_iter()
        .any(|(kind, reason, note)| {
            kind == "Warning" && reason == "WaitingForDrainers" && note.contains(&paused_id)
        });
    assert!(warned, "an Event names the paused drainer");

    // Once the drainer runs again and catches up, the scale-in completes.
    paused.restart().unwrap();
    let mut done = false;
    for _ in 0..MAX_TICKS {
        operator.reconcile().await;
        if pods.sync(&operator).await == 1 {
            done = true;
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    assert!(done, "status: {:?}", operator.status().await);
    assert_eq!(pump_record(&world, 1).await.state, NodeState::Offline);
    assert!(
        drainer_record(&world, &paused_id).await.max_commit_ts >= held_when_blocked,
        "the paused drainer caught up with what pump-1 held before it went offline"
    );
}
