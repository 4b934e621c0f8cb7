//! `binlog-operator run`: a `kube` Controller per watched namespace (or one for the whole
//! cluster) on BinlogClusters, owning their StatefulSets, Deployments, Services and ConfigMaps,
//! plus the `/metrics` and `/health` server.
//!
//! **One active replica.** The offline choreography sends commands to pumps and drainers and
//! moves step by step; two operators acting on one cluster at once could close two pumps
//! together. The operator therefore runs as a single-replica Deployment with the `Recreate`
//! strategy (the chart and the kustomize manifests do exactly that), so a new pod starts only
//! after the old one is gone. There is no leader election: a restart costs one re-list, and every
//! step is idempotent (a close sent twice is refused harmlessly by a node already closing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams};
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Client, Resource};

use crate::crd::BinlogCluster;
use crate::labels::{FIELD_MANAGER, MANAGED_BY_LABEL};
use crate::metrics::{self, Metrics};
use crate::nodes::ClusterNodes;
use crate::reconciler::{Context, error_policy, reconcile};

/// How `binlog-operator run` is set up.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Namespaces to watch; empty means every namespace.
    pub namespaces: Vec<String>,
    /// Where `/metrics` and `/health` listen.
    pub metrics_addr: SocketAddr,
    /// Where TLS material from cluster Secrets is written for the registry client.
    pub tls_dir: PathBuf,
}

/// Runs the controllers until SIGTERM or Ctrl-C.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    for scope in &scopes {
        api::<BinlogCluster>(&client, scope.as_deref())
            .list(&ListParams::default().limit(1))
            .await
            .with_context(|| {
                format!(
                    "cannot list BinlogClusters{}: is the CRD installed (`binlog-operator crd | \
                     kubectl apply -f -`) and does the operator's RBAC allow it?",
                    scope
                        .as_deref()
                        .map(|ns| format!(" in namespace {ns}"))
                        .unwrap_or_default()
                )
            })?;
    }

    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(Context::new(
        client.clone(),
        ClusterNodes,
        metrics.clone(),
        config.tls_dir.clone(),
    ));
    let controllers = futures::future::join_all(
        scopes
            .iter()
            .map(|scope| controller(client.clone(), scope.as_deref(), ctx.clone())),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(metrics::serve(config.metrics_addr, metrics, async {
        let _ = stopped.await;
    }));
    tracing::info!(namespaces = ?config.namespaces, "binlog-operator running");
    controllers.await;
    let _ = stop.send(());
    server
        .await
        .context("the metrics server task failed")?
        .with_context(|| format!("cannot serve /metrics on {}", config.metrics_addr))
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

async fn controller(client: Client, namespace: Option<&str>, ctx: Arc<Context<ClusterNodes>>) {
    let children =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
    Controller::new(
        api::<BinlogCluster>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<StatefulSet>(&client, namespace), children.clone())
    .owns(api::<Deployment>(&client, namespace), children.clone())
    .owns(api::<Service>(&client, namespace), children.clone())
    .owns(api::<ConfigMap>(&client, namespace), children)
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((object, action)) => tracing::debug!(%object, ?action, "reconciled"),
            Err(err) => tracing::warn!(error = %err, "controller"),
        }
    })
    .await;
}
