//! The operator's view of the binlog nodes: a snapshot of PD's registry (every pump and drainer
//! record) and the two commands it gives them, `close` over the node's HTTP API and, for a
//! drainer that is being removed while `paused`, rewriting its record to `offline`.
//!
//! [`BinlogNodes`] is the seam between the reconciler and the cluster: [`ClusterNodes`] goes
//! through `binlog-cluster` (etcd registry, control client) with a timeout on every call, and
//! reconcile tests substitute an in-memory registry. The registry is reached per call, so one
//! cluster's unreachable PD only ever costs that cluster's reconcile its timeouts.

use std::future::Future;
use std::time::Duration;

use binlog_cluster::{
    Action, ControlError, NodeKind, NodeState, NodeStatus, Registry, TlsSettings,
};

/// Upper bound on one snapshot (connect plus two listings), on top of the registry's own
/// per-request timeouts.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on one `close` request (the control client has its own 10 s limit).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// How to reach one cluster's PD: its client URLs and the TLS material for PD, etcd and the
/// nodes' HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pd_urls: Vec<String>,
    pub tls: TlsSettings,
}

/// Every pump and drainer record in the registry, offline ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub pumps: Vec<NodeStatus>,
    pub drainers: Vec<NodeStatus>,
}

impl Snapshot {
    /// The pump record with this node id.
    pub fn pump(&self, node_id: &str) -> Option<&NodeStatus> {
        self.pumps.iter().find(|node| node.node_id == node_id)
    }

    /// The drainer record with this node id.
    pub fn drainer(&self, node_id: &str) -> Option<&NodeStatus> {
        self.drainers.iter().find(|node| node.node_id == node_id)
    }
}

/// How a node took a `close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It accepted the close now.
    Accepted,
    /// It was already closing. A pump stops heartbeating when it starts closing, so its
    /// registry record can say `online` for as long as it waits for the drainers; a second close
    /// is refused with "state is closing", which means the first one is in progress.
    AlreadyClosing,
}

/// A registry read or a node command that failed; the message names the endpoint and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesError {
    #[error("cannot read the registry at {urls}: {cause}")]
    Registry { urls: String, cause: String },
    #[error("cannot {action} {kind} {node_id} at {host}: {cause}")]
    Command {
        action: &'static str,
        kind: NodeKind,
        node_id: String,
        host: String,
        cause: String,
    },
}

/// Reads the registry and commands nodes.
pub trait BinlogNodes: Send + Sync + 'static {
    /// All pump and drainer records.
    fn snapshot(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Snapshot, NodesError>> + Send;

    /// Asks `node` to go offline (`PUT /state/<nodeId>/close` to its registered host). A pump
    /// then waits until every drainer has consumed its binlogs; a drainer stops at once.
    fn close(
        &self,
        target: &Target,
        kind: NodeKind,
        node: &NodeStatus,
    ) -> impl Future<Output = Result<Closed, NodesError>> + Send;

    /// The drainers a closing pump says it waits for (`OfflineWaitingFor` in its `/status`);
    /// `None` while it reports no list (not closing, or not yet comparing checkpoints). The pump
    /// judges against its real target, which its registry record (frozen once it stops
    /// heartbeating to close) does not show.
    fn offline_waiting_for(
        &self,
        target: &Target,
        pump: &NodeStatus,
    ) -> impl Future<Output = Result<Option<Vec<String>>, NodesError>> + Send;

    /// Rewrites a stopped drainer's record to `offline`, so that pumps stop waiting for it.
    fn force_drainer_offline(
        &self,
        target: &Target,
        node: &NodeStatus,
    ) -> impl Future<Output = Result<(), NodesError>> + Send;
}

/// The real registry and nodes, through `binlog-cluster`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterNodes;

impl ClusterNodes {
    async fn connect(target: &Target) -> Result<Registry, NodesError> {
        Registry::connect(&target.pd_urls, &target.tls)
            .await
            .map_err(|err| registry_error(target, err))
    }
}

fn registry_error(target: &Target, cause: impl std::fmt::Display) -> NodesError {
    NodesError::Registry {
        urls: target.pd_urls.join(","),
        cause: cause.to_string(),
    }
}

impl BinlogNodes for ClusterNodes {
    async fn snapshot(&self, target: &Target) -> Result<Snapshot, NodesError> {
        let read = async {
            let registry = Self::connect(target).await?;
            let (pumps, _) = registry
                .list(NodeKind::Pump)
                .await
                .map_err(|err| registry_error(target, err))?;
            let (drainers, _) = registry
                .list(NodeKind::Drainer)
                .await
                .map_err(|err| registry_error(target, err))?;
            Ok(Snapshot { pumps, drainers })
        };
        tokio::time::timeout(SNAPSHOT_TIMEOUT, read)
            .await
            .map_err(|_| registry_error(target, format!("no answer within {SNAPSHOT_TIMEOUT:?}")))?
    }

    async fn close(
        &self,
        target: &Target,
        kind: NodeKind,
        node: &NodeStatus,
    ) -> Result<Closed, NodesError> {
        let command_error = |cause: String| NodesError::Command {
            action: "close",
            kind,
            node_id: node.node_id.clone(),
            host: node.host.clone(),
            cause,
        };
        let call =
            binlog_cluster::apply_action(&target.tls, &node.host, &node.node_id, Action::Close);
        match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(Closed::Accepted),
            Ok(Err(ControlError::Refused { message, .. }))
                if message.contains(&format!("state is {}", NodeState::Closing)) =>
            {
                Ok(Closed::AlreadyClosing)
            }
            Ok(Err(err)) => Err(command_error(err.to_string())),
            Err(_) => Err(command_error(format!(
                "no answer within {COMMAND_TIMEOUT:?}"
            ))),
        }
    }

    async fn offline_waiting_for(
        &self,
        target: &Target,
        pump: &NodeStatus,
    ) -> Result<Option<Vec<String>>, NodesError> {
        let command_error = |cause: String| NodesError::Command {
            action: "read the status of",
            kind: NodeKind::Pump,
            node_id: pump.node_id.clone(),
            host: pump.host.clone(),
            cause,
        };
        let url = format!("{}://{}/status", target.tls.scheme(), pump.host);
        let (code, body) = binlog_cluster::control::http_request(&target.tls, "GET", &url)
            .await
            .map_err(|err| command_error(err.to_string()))?;
        if code != 200 {
            return Err(command_error(format!("{url} answered HTTP {code}")));
        }
        let status: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|err| command_error(format!("{url} answered no JSON: {err}")))?;
        Ok(status["OfflineWaitingFor"].as_array().map(|drainers| {
            drainers
                .iter()
                .filter_map(|drainer| drainer["nodeId"].as_str().map(str::to_string))
                .collect()
        }))
    }

    async fn force_drainer_offline(
        &self,
        target: &Target,
        node: &NodeStatus,
    ) -> Result<(), NodesError> {
        let write = async {
            let registry = Self::connect(target).await?;
            let mut record = registry
                .get(NodeKind::Drainer, &node.node_id)
                .await
                .map_err(|err| registry_error(target, err))?;
            // Only a drainer that is still stopped is rewritten: one that came back online in
            // the meantime is closed properly on the next pass instead.
            if matches!(record.state, NodeState::Paused | NodeState::Pausing) {
                record.state = NodeState::Offline;
                registry
                    .update(NodeKind::Drainer, &record)
                    .await
                    .map_err(|err| registry_error(target, err))?;
            }
            Ok(())
        };
        tokio::time::timeout(COMMAND_TIMEOUT, write)
            .await
            .map_err(|_| registry_error(target, format!("no answer within {COMMAND_TIMEOUT:?}")))?
    }
}
