//! The pump's duties as a node of the cluster (its record and heartbeat are
//! `binlog_cluster::node`): the drainer notification a new pump owes, and the offline wait (every
//! drainer must have consumed this pump's data).

use std::time::Duration;

use binlog_cluster::node::Node;
use binlog_cluster::{NodeKind, NodeState, RegistryError};
use binlog_proto::binlog::{NotifyReq, cistern_client::CisternClient};
use tonic::transport::Endpoint;

/// Time allowed for notifying every online drainer, as in the original.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// A drainer that keeps this pump from going offline, for `/status` and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaggingDrainer {
    /// The drainer's node id.
    #[serde(rename = "nodeId")]
    pub node_id: String,
    /// Its state in the registry.
    pub state: NodeState,
    /// Its checkpoint.
    #[serde(rename = "maxCommitTS")]
    pub max_commit_ts: i64,
}

/// Asks every `online` drainer to re-read the pump list now. Any failure fails the whole call (a
/// pump unknown to a running drainer would lose its data to it).
pub async fn notify_drainers(node: &Node, tls: &binlog_cluster::TlsSettings) -> Result<(), String> {
    let work = async {
        let (drainers, _) = node
            .registry()
            .list(NodeKind::Drainer)
            .await
            .map_err(|e| e.to_string())?;
        let grpc_tls = tls.grpc_client_config().map_err(|e| e.to_string())?;
        for drainer in drainers.iter().filter(|d| d.state == NodeState::Online) {
            notify_one(&drainer.host, tls.scheme(), grpc_tls.clone())
                .await
                .map_err(|err| {
                    format!(
                        "notify drainer {} at {}: {err}",
                        drainer.node_id, drainer.host
                    )
                })?;
            tracing::info!(drainer = %drainer.node_id, "notified drainer");
        }
        Ok(())
    };
    tokio::time::timeout(NOTIFY_TIMEOUT, work)
        .await
        .map_err(|_| format!("notifying drainers did not finish within {NOTIFY_TIMEOUT:?}"))?
}

/// The drainers (not offline) whose checkpoint is below `target`.
pub async fn lagging_drainers(
    node: &Node,
    target: i64,
) -> Result<Vec<LaggingDrainer>, RegistryError> {
    let (drainers, _) = node.registry().list(NodeKind::Drainer).await?;
    Ok(drainers
        .into_iter()
        .filter(|d| d.state != NodeState::Offline && d.max_commit_ts < target)
        .map(|d| LaggingDrainer {
            node_id: d.node_id,
            state: d.state,
            max_commit_ts: d.max_commit_ts,
        })
        .collect())
}

async fn notify_one(
    host: &str,
    scheme: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<(), String> {
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let mut last = String::new();
    for backoff in [
        Duration::from_secs(1),
        Duration::from_secs(2),
        Duration::ZERO,
    ] {
        let attempt = async {
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| binlog_cluster::error_text::error_chain(&e))?;
            CisternClient::new(channel)
                .notify(NotifyReq {})
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_string())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(err) => last = err,
        }
        tokio::time::sleep(backoff).await;
    }
    Err(last)
}
