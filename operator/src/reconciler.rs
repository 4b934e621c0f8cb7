//! One reconcile of one BinlogCluster: observe (Kubernetes objects and the registry), plan
//! ([`crate::planner`]), act (node commands, deletions, server-side apply of the desired objects),
//! report (status, Events). All decisions are in the planner; this module is the I/O around it.
//!
//! The finalizer [`names::FINALIZER`] is handled here rather than with kube's `finalizer()`
//! helper, because that helper treats a successful cleanup as finished: the deletion choreography
//! takes many passes (each pump must go offline in turn), and waiting is not an error.
//!
//! A whole reconcile is bounded by [`RECONCILE_TIMEOUT`] on top of the per-call timeouts of the
//! registry and node clients, and reconciles of different clusters run independently, so a
//! cluster whose PD is unreachable never holds up another.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binlog_cluster::{NodeKind, TlsSettings};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, ObjectReference, PersistentVolumeClaim, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::builders::{Desired, desired, pd_urls};
use crate::crd::BinlogCluster;
use crate::labels::{self, FIELD_MANAGER};
use crate::metrics::Metrics;
use crate::names;
use crate::nodes::{BinlogNodes, Closed, Snapshot, Target};
use crate::planner::{
    DrainerWorkload, Intent, Observed, Plan, PumpSet, Step, Volume, Wait, plan_apply, plan_cleanup,
    use_pump_view,
};
use crate::status::{self, BinlogClusterStatus, DEGRADED, Facts, SCALE_IN_BLOCKED};

/// Longest one reconcile may take, every call included.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(90);
/// Requeue while a scale-in, removal or deletion waits, or a command failed.
pub const WAIT_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue of a settled cluster, so status members follow the registry.
pub const RESYNC: Duration = Duration::from_secs(30);
/// First backoff after a failed reconcile; doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context<N> {
    pub client: Client,
    pub recorder: Recorder,
    pub nodes: N,
    pub metrics: Arc<Metrics>,
    /// Where TLS material read from a cluster's Secret is written for the registry client.
    pub tls_dir: PathBuf,
    /// Consecutive failed reconciles per cluster (`namespace/name`), for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Clusters whose last reconcile was waiting, for the gauge.
    waiting: Mutex<HashSet<String>>,
}

impl<N: BinlogNodes> Context<N> {
    pub fn new(client: Client, nodes: N, metrics: Arc<Metrics>, tls_dir: PathBuf) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            nodes,
            metrics,
            tls_dir,
            failures: Mutex::default(),
            waiting: Mutex::default(),
        }
    }
}

/// A reconcile that failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the BinlogCluster has no metadata.{0}")]
    Metadata(&'static str),
    #[error("the reconcile did not finish within {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// The `error` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Metadata(_) => "metadata",
            Error::Timeout(_) => "timeout",
        }
    }
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn key(cluster: &BinlogCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// Reconciles one cluster (the `Controller`'s reconcile function; tests call it directly).
pub async fn reconcile<N: BinlogNodes>(
    cluster: Arc<BinlogCluster>,
    ctx: Arc<Context<N>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = match tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_once(&cluster, &ctx)).await
    {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout(RECONCILE_TIMEOUT)),
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    if result.is_ok() {
        lock(&ctx.failures).remove(&key(&cluster));
    }
    result
}

/// Retries a failed reconcile after an exponential backoff per cluster.
pub fn error_policy<N: BinlogNodes>(
    cluster: Arc<BinlogCluster>,
    error: &Error,
    ctx: Arc<Context<N>>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[error.metric_label()])
        .inc();
    let failures = {
        let mut failures = lock(&ctx.failures);
        let count = failures.entry(key(&cluster)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let backoff = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    tracing::warn!(cluster = %key(&cluster), %error, failures, ?backoff, "reconcile failed");
    Action::requeue(backoff)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn reconcile_once<N: BinlogNodes>(
    cluster: &BinlogCluster,
    ctx: &Context<N>,
) -> Result<Action, Error> {
    let name = cluster
        .metadata
        .name
        .clone()
        .ok_or(Error::Metadata("name"))?;
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .ok_or(Error::Metadata("namespace"))?;
    let clusters: Api<BinlogCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = cluster.metadata.deletion_timestamp.is_some();
    let finalized = cluster.finalizers().iter().any(|f| f == names::FINALIZER);
    if deleting && !finalized {
        return Ok(Action::await_change());
    }
    if !deleting && !finalized {
        add_finalizer(&clusters, cluster).await?;
    }

    let spec = &cluster.spec;
    let intent = Intent {
        cluster: name.clone(),
        pump_replicas: spec.pump.replicas,
        drainers: spec.drainers.iter().map(|d| d.name.clone()).collect(),
        retention: spec.drainer_volume_retention,
    };
    let built = desired(cluster);
    let invalid_spec = built.as_ref().err().map(ToString::to_string);
    let target = target(ctx, cluster, &namespace, &name).await;
    let observed = observe(ctx, cluster, &namespace, &name, &target).await?;
    let force = deleting
        && cluster
            .annotations()
            .get(names::FORCE_DELETE_ANNOTATION)
            .is_some_and(|value| value == "true");
    let mut plan = if force {
        Plan {
            finished: true,
            ..Plan::default()
        }
    } else if deleting {
        plan_cleanup(&intent, &observed)
    } else if built.is_ok() {
        plan_apply(&intent, &observed)
    } else {
        Plan::default()
    };

    if let (Ok(target), Ok(registry)) = (&target, &observed.registry) {
        ask_closing_pumps(ctx, target, registry, &mut plan).await;
    }
    let mut events = Vec::new();
    let failures = execute(ctx, &namespace, &name, &target, &plan, &mut events).await?;
    match (&built, deleting) {
        (Ok(desired), false) => apply(ctx, &namespace, desired, plan.pump_replicas).await?,
        (_, true) => set_pump_replicas(ctx, &namespace, &name, &observed, &plan).await?,
        (Err(_), false) => {}
    }
    if let (Some(replicas), Some(set)) = (plan.pump_replicas, observed.pump_set)
        && replicas < set.replicas
    {
        ctx.metrics
            .pumps_scaled_in
            .with_label_values(&[namespace.as_str()])
            .inc();
        events.push(event(
            EventType::Normal,
            "PumpScaledIn",
            "ScaleIn",
            format!(
                "pump {} is offline; pump StatefulSet lowered to {replicas} replicas",
                names::pump_pod(&name, replicas.max(0) as u32)
            ),
            node_ref(
                &namespace,
                NodeKind::Pump,
                &names::pump_pod(&name, replicas.max(0) as u32),
            ),
        ));
    }

    let previous = cluster.status.as_ref();
    let status = status::compute(&Facts {
        intent: &intent,
        generation: cluster.metadata.generation,
        deleting,
        invalid_spec: invalid_spec.as_deref(),
        observed: &observed,
        plan: &plan,
        failures: &failures,
        previous,
        now: Time(Timestamp::now()),
    });
    events.extend(transition_events(&namespace, previous, &status, &plan));
    if force {
        events.push(event(
            EventType::Warning,
            "ForceDeleted",
            "Delete",
            format!(
                "{} is set: deleted without offlining pumps and drainers; their registry \
                 records stay as they are (pumps {}, drainers {})",
                names::FORCE_DELETE_ANNOTATION,
                member_list(status.pump.as_ref().map(|p| &p.members)),
                member_list(status.drainers.as_ref().map(|d| &d.members)),
            ),
            None,
        ));
    }
    let release = deleting && plan.finished && failures.is_empty();
    if previous != Some(&status) && !release {
        write_status(&clusters, &name, &status).await?;
    }
    publish(ctx, cluster, events).await;

    let waiting = plan.offlining() || !failures.is_empty();
    {
        let mut set = lock(&ctx.waiting);
        if waiting {
            set.insert(key(cluster));
        } else {
            set.remove(&key(cluster));
        }
        ctx.metrics.waiting_clusters.set(set.len() as i64);
    }
    if release {
        remove_finalizer(&clusters, cluster).await?;
        lock(&ctx.waiting).remove(&key(cluster));
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(if waiting || deleting {
        WAIT_REQUEUE
    } else {
        RESYNC
    }))
}

/// Asks each pump the plan waits on whom it waits for, so the condition names the right
/// drainers. Best effort: without an answer the registry comparison stays.
async fn ask_closing_pumps<N: BinlogNodes>(
    ctx: &Context<N>,
    target: &Target,
    registry: &Snapshot,
    plan: &mut Plan,
) {
    let closing: Vec<String> = plan
        .waits
        .iter()
        .filter_map(|wait| match wait {
            Wait::PumpClosing { node_id, .. } => Some(node_id.clone()),
            _ => None,
        })
        .collect();
    for node_id in closing {
        let Some(pump) = registry.pump(&node_id) else {
            continue;
        };
        match ctx.nodes.offline_waiting_for(target, pump).await {
            Ok(Some(waiting_for)) => use_pump_view(plan, pump, registry, &waiting_for),
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(pump = %node_id, error = %err, "cannot ask a closing pump whom it waits for")
            }
        }
    }
}

fn member_list(members: Option<&Vec<status::Member>>) -> String {
    let members = members.map(Vec::as_slice).unwrap_or_default();
    if members.is_empty() {
        return "none".to_string();
    }
    members
        .iter()
        .map(|m| format!("{}={}", m.node_id, m.state))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn add_finalizer(
    clusters: &Api<BinlogCluster>,
    cluster: &BinlogCluster,
) -> Result<(), Error> {
    let mut finalizers = cluster.finalizers().to_vec();
    finalizers.push(names::FINALIZER.to_string());
    set_finalizers(clusters, cluster, &finalizers, "adding the finalizer").await
}

async fn remove_finalizer(
    clusters: &Api<BinlogCluster>,
    cluster: &BinlogCluster,
) -> Result<(), Error> {
    let finalizers: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != names::FINALIZER)
        .cloned()
        .collect();
    set_finalizers(clusters, cluster, &finalizers, "removing the finalizer").await
}

/// Writes the cluster's finalizer list. The resourceVersion makes the write conditional: a
/// concurrent change fails it (and the reconcile is retried) instead of dropping someone else's
/// finalizer.
async fn set_finalizers(
    clusters: &Api<BinlogCluster>,
    cluster: &BinlogCluster,
    finalizers: &[String],
    doing: &'static str,
) -> Result<(), Error> {
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": cluster.resource_version(),
        }
    });
    clusters
        .patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(kube_error(doing))?;
    Ok(())
}

/// How to reach the cluster's PD, or why it cannot be reached.
async fn target<N: BinlogNodes>(
    ctx: &Context<N>,
    cluster: &BinlogCluster,
    namespace: &str,
    name: &str,
) -> Result<Target, String> {
    let tls = cluster.spec.tls.as_ref();
    let urls = pd_urls(cluster).map_err(|err| err.to_string())?;
    let pd_urls = binlog_cluster::urls::parse_pd_urls(&urls, tls.is_some())
        .map_err(|err| format!("spec.pd: {err}"))?;
    let tls = match tls {
        None => TlsSettings::default(),
        Some(tls) => tls_files(ctx, namespace, name, &tls.cluster_secret_name).await?,
    };
    Ok(Target { pd_urls, tls })
}

/// Writes the cluster TLS Secret's `ca.crt`, `tls.crt` and `tls.key` under the context's TLS
/// directory (owner-only) and returns settings pointing at them.
async fn tls_files<N: BinlogNodes>(
    ctx: &Context<N>,
    namespace: &str,
    name: &str,
    secret_name: &str,
) -> Result<TlsSettings, String> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get(secret_name)
        .await
        .map_err(|err| format!("cannot read TLS Secret {namespace}/{secret_name}: {err}"))?;
    let data = secret.data.unwrap_or_default();
    let dir = ctx.tls_dir.join(namespace).join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let mut paths = Vec::new();
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let bytes = data.get(key).ok_or_else(|| {
            format!("TLS Secret {namespace}/{secret_name} has no {key:?} (needs ca.crt, tls.crt, tls.key)")
        })?;
        let path = dir.join(key);
        write_private(&path, &bytes.0)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        paths.push(path);
    }
    let mut paths = paths.into_iter();
    Ok(TlsSettings {
        ssl_ca: paths.next(),
        ssl_cert: paths.next(),
        ssl_key: paths.next(),
        cert_allowed_cn: Vec::new(),
    })
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Reads the pump StatefulSet, the cluster's volumes and drainer Deployments, and the registry.
async fn observe<N: BinlogNodes>(
    ctx: &Context<N>,
    cluster: &BinlogCluster,
    namespace: &str,
    name: &str,
    target: &Result<Target, String>,
) -> Result<Observed, Error> {
    let client = &ctx.client;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pump_set = sets
        .get_opt(&names::pump(name))
        .await
        .map_err(kube_error(format!(
            "reading StatefulSet {}",
            names::pump(name)
        )))?
        .map(|set| pump_set(&set));

    let instance = format!("{}={name}", labels::INSTANCE_LABEL);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut pump_volumes = BTreeMap::new();
    let mut drainer_volumes = BTreeMap::new();
    for claim in claims
        .list(&ListParams::default().labels(&instance))
        .await
        .map_err(kube_error("listing PersistentVolumeClaims"))?
    {
        let volume = Volume {
            marked: claim
                .annotations()
                .contains_key(names::SCALED_IN_ANNOTATION),
            deleting: claim.metadata.deletion_timestamp.is_some(),
        };
        if let Some(ordinal) = names::pump_pvc_ordinal(name, &claim.name_any()) {
            pump_volumes.insert(ordinal, volume);
        } else if let Some(drainer) = claim.labels().get(labels::DRAINER_LABEL)
            && claim.name_any() == names::drainer_pvc(name, drainer)
        {
            drainer_volumes.insert(drainer.clone(), volume);
        }
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let uid = cluster.metadata.uid.clone();
    let mut drainer_workloads = BTreeMap::new();
    let drainers = format!(
        "{instance},{}={}",
        labels::COMPONENT_LABEL,
        labels::Component::Drainer.as_str()
    );
    for deployment in deployments
        .list(&ListParams::default().labels(&drainers))
        .await
        .map_err(kube_error("listing drainer Deployments"))?
    {
        let owned = deployment
            .owner_references()
            .iter()
            .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref());
        let Some(drainer) = deployment.labels().get(labels::DRAINER_LABEL).cloned() else {
            continue;
        };
        if owned {
            drainer_workloads.insert(drainer, drainer_workload(&deployment));
        }
    }

    let registry = match target {
        Ok(target) => ctx
            .nodes
            .snapshot(target)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.clone()),
    };
    Ok(Observed {
        pump_set,
        pump_volumes,
        drainer_workloads,
        drainer_volumes,
        registry,
    })
}

fn pump_set(set: &StatefulSet) -> PumpSet {
    let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = set.status.clone().unwrap_or_default();
    let current_generation = status.observed_generation >= set.metadata.generation;
    PumpSet {
        replicas,
        status_replicas: status.replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        rolled_out: current_generation
            && status.updated_replicas.unwrap_or(0) >= replicas
            && status.update_revision == status.current_revision,
    }
}

fn drainer_workload(deployment: &Deployment) -> DrainerWorkload {
    let status = deployment.status.clone().unwrap_or_default();
    DrainerWorkload {
        ready: status.observed_generation >= deployment.metadata.generation
            && status.ready_replicas.unwrap_or(0) >= 1
            && status.updated_replicas.unwrap_or(0) >= 1,
    }
}

/// Carries out the plan's steps in order. Kubernetes errors fail the reconcile; node command
/// errors are collected (reported in Degraded and as Warning events) and retried next pass.
async fn execute<N: BinlogNodes>(
    ctx: &Context<N>,
    namespace: &str,
    name: &str,
    target: &Result<Target, String>,
    plan: &Plan,
    events: &mut Vec<Event>,
) -> Result<Vec<String>, Error> {
    let client = &ctx.client;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut failures = Vec::new();
    for step in &plan.steps {
        match step {
            Step::MarkPumpVolume(ordinal) => {
                let pvc = names::pump_pvc(name, *ordinal);
                let patch = json!({"metadata": {"annotations": {
                    names::SCALED_IN_ANNOTATION: Timestamp::now().to_string(),
                }}});
                match claims
                    .patch(&pvc, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(kube_error(format!("marking volume {pvc}"))(err)),
                }
            }
            Step::DeleteVolume(pvc) => {
                delete(&claims, pvc).await?;
                events.push(event(
                    EventType::Normal,
                    "DeletingVolume",
                    "Delete",
                    format!("deleting volume {pvc}: its pump or drainer is offline"),
                    object_ref("v1", "PersistentVolumeClaim", namespace, pvc),
                ));
            }
            Step::ClosePump(node) | Step::CloseDrainer(node) => {
                let kind = if matches!(step, Step::ClosePump(_)) {
                    NodeKind::Pump
                } else {
                    NodeKind::Drainer
                };
                let result = match target {
                    Ok(target) => ctx
                        .nodes
                        .close(target, kind, node)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err.clone()),
                };
                record_command(ctx, kind, "close", result.is_ok());
                match result {
                    // Already closing: announced when it was accepted.
                    Ok(Closed::AlreadyClosing) => {}
                    Ok(Closed::Accepted) => events.push(event(
                        EventType::Normal,
                        if kind == NodeKind::Pump {
                            "ClosingPump"
                        } else {
                            "ClosingDrainer"
                        },
                        "Offline",
                        format!(
                            "asked {kind} {} at {} to go offline",
                            node.node_id, node.host
                        ),
                        node_ref(namespace, kind, &node.node_id),
                    )),
                    Err(err) => {
                        events.push(event(
                            EventType::Warning,
                            "NodeCommandFailed",
                            "Offline",
                            err.clone(),
                            node_ref(namespace, kind, &node.node_id),
                        ));
                        failures.push(err);
                    }
                }
            }
            Step::ForceDrainerOffline(node) => {
                let result = match target {
                    Ok(target) => ctx
                        .nodes
                        .force_drainer_offline(target, node)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err.clone()),
                };
                record_command(ctx, NodeKind::Drainer, "force-offline", result.is_ok());
                match result {
                    Ok(()) => events.push(event(
                        EventType::Warning,
                        "DrainerMarkedOffline",
                        "Offline",
                        format!(
                            "drainer {} was removed from the spec while stopped ({}); its \
                             registry record was set to offline",
                            node.node_id, node.state
                        ),
                        node_ref(namespace, NodeKind::Drainer, &node.node_id),
                    )),
                    Err(err) => {
                        events.push(event(
                            EventType::Warning,
                            "NodeCommandFailed",
                            "Offline",
                            err.clone(),
                            node_ref(namespace, NodeKind::Drainer, &node.node_id),
                        ));
                        failures.push(err);
                    }
                }
            }
            Step::RemoveDrainer(drainer) => {
                let object = names::drainer(name, drainer);
                delete(
                    &Api::<Deployment>::namespaced(client.clone(), namespace),
                    &object,
                )
                .await?;
                delete(
                    &Api::<Service>::namespaced(client.clone(), namespace),
                    &object,
                )
                .await?;
                delete(
                    &Api::<ConfigMap>::namespaced(client.clone(), namespace),
                    &object,
                )
                .await?;
                events.push(event(
                    EventType::Normal,
                    "DrainerRemoved",
                    "Delete",
                    format!(
                        "drainer {object} is offline; its Deployment, Service and ConfigMap were \
                         deleted"
                    ),
                    node_ref(namespace, NodeKind::Drainer, &object),
                ));
            }
        }
    }
    Ok(failures)
}

fn record_command<N>(ctx: &Context<N>, kind: NodeKind, command: &str, ok: bool) {
    ctx.metrics
        .node_commands
        .with_label_values(&[kind.name(), command, if ok { "ok" } else { "error" }])
        .inc();
}

async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        Err(err) => Err(kube_error(format!("deleting {} {name}", K::kind(&())))(err)),
    }
}

/// Server-side applies every desired object, the pump StatefulSet with `pump_replicas`.
async fn apply<N: BinlogNodes>(
    ctx: &Context<N>,
    namespace: &str,
    desired: &Desired,
    pump_replicas: Option<i32>,
) -> Result<(), Error> {
    let client = &ctx.client;
    apply_object(client, namespace, &desired.pump.config_map).await?;
    apply_object(client, namespace, &desired.pump.service).await?;
    for drainer in &desired.drainers {
        apply_object(client, namespace, &drainer.config_map).await?;
        apply_object(client, namespace, &drainer.service).await?;
        if let Some(pvc) = &drainer.pvc {
            create_if_missing(client, namespace, pvc).await?;
        }
    }
    let mut set = desired.pump.stateful_set.clone();
    if let (Some(spec), Some(replicas)) = (set.spec.as_mut(), pump_replicas) {
        spec.replicas = Some(replicas);
    }
    apply_object(client, namespace, &set).await?;
    for drainer in &desired.drainers {
        apply_object(client, namespace, &drainer.deployment).await?;
    }
    Ok(())
}

async fn apply_object<K>(client: &Client, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(kube_error(format!("applying {} {name}", K::kind(&()))))?;
    Ok(())
}

/// A volume's spec is mostly immutable, so it is created once and then left alone.
async fn create_if_missing(
    client: &Client,
    namespace: &str,
    pvc: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let name = pvc.name_any();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    if api
        .get_opt(&name)
        .await
        .map_err(kube_error(format!("reading volume {name}")))?
        .is_some()
    {
        return Ok(());
    }
    match api.create(&PostParams::default(), pvc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(kube_error(format!("creating volume {name}"))(err)),
    }
}

/// During deletion only the replicas of the pump StatefulSet change (the rest is left to the
/// garbage collector once the cluster is gone).
async fn set_pump_replicas<N: BinlogNodes>(
    ctx: &Context<N>,
    namespace: &str,
    name: &str,
    observed: &Observed,
    plan: &Plan,
) -> Result<(), Error> {
    let (Some(replicas), Some(set)) = (plan.pump_replicas, observed.pump_set) else {
        return Ok(());
    };
    if replicas == set.replicas {
        return Ok(());
    }
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({"spec": {"replicas": replicas}});
    sets.patch(
        &names::pump(name),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_error("lowering the pump replicas"))?;
    Ok(())
}

async fn write_status(
    clusters: &Api<BinlogCluster>,
    name: &str,
    status: &BinlogClusterStatus,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": BinlogCluster::api_version(&()),
        "kind": BinlogCluster::kind(&()),
        "status": status,
    });
    clusters
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_error("writing the status"))?;
    Ok(())
}

/// Events for what changed since the last status: a new wait (naming what holds it), a spec
/// that became invalid.
fn transition_events(
    namespace: &str,
    previous: Option<&BinlogClusterStatus>,
    status: &BinlogClusterStatus,
    plan: &Plan,
) -> Vec<Event> {
    let mut events = Vec::new();
    let message = |status: Option<&BinlogClusterStatus>, type_: &str| {
        status
            .and_then(|s| s.condition(type_))
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, note)) = message(Some(status), SCALE_IN_BLOCKED)
        && message(previous, SCALE_IN_BLOCKED).as_ref().map(|(_, m)| m) != Some(&note)
    {
        let type_ = if plan.waits.iter().any(|w| w.needs_attention()) {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let related = plan.waits.first().and_then(|wait| match wait {
            Wait::PumpClosing { node_id, .. } | Wait::PumpStopped { node_id, .. } => {
                node_ref(namespace, NodeKind::Pump, node_id)
            }
            Wait::DrainerClosing { node_id, .. } => node_ref(namespace, NodeKind::Drainer, node_id),
            Wait::VolumeDeleting(pvc) => object_ref("v1", "PersistentVolumeClaim", namespace, pvc),
            Wait::PodsTerminating { .. } | Wait::RegistryUnreachable(_) => None,
        });
        events.push(event(type_, &reason, "Wait", note, related));
    }
    if let Some((reason, note)) = message(Some(status), DEGRADED)
        && reason == "InvalidSpec"
        && message(previous, DEGRADED).as_ref().map(|(_, m)| m) != Some(&note)
    {
        events.push(event(EventType::Warning, &reason, "Validate", note, None));
    }
    events
}

/// An Event about the cluster; `related` names the pod, Deployment or volume it concerns (it
/// also keeps events about different nodes apart in the recorder's de-duplication, which keys on
/// reason and related object, not on the note).
fn event(
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    related: Option<ObjectReference>,
) -> Event {
    // The API caps an event's note at 1 KiB.
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: related,
    }
}

fn object_ref(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<ObjectReference> {
    Some(ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..ObjectReference::default()
    })
}

/// A pump's pod (its node id is the pod name) or a drainer's Deployment (named as its node id).
fn node_ref(namespace: &str, kind: NodeKind, node_id: &str) -> Option<ObjectReference> {
    match kind {
        NodeKind::Pump => object_ref("v1", "Pod", namespace, node_id),
        NodeKind::Drainer => object_ref("apps/v1", "Deployment", namespace, node_id),
    }
}

/// Events are best effort: a failure is logged and never fails the reconcile.
async fn publish<N>(ctx: &Context<N>, cluster: &BinlogCluster, events: Vec<Event>) {
    let reference = cluster.object_ref(&());
    for event in events {
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(cluster = %key(cluster), reason = %event.reason, error = %err, "cannot publish an event");
        }
    }
}
