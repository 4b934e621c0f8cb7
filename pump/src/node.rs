//! The pump as a node of the cluster: its registry record, heartbeats, the drainer notification a
//! new pump owes, and the offline wait (every drainer must have consumed this pump's data).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use binlog_cluster::{NodeKind, NodeState, NodeStatus, Registry, RegistryError, tso};
use binlog_proto::binlog::{NotifyReq, cistern_client::CisternClient};
use tonic::transport::Endpoint;

/// Time allowed for notifying every online drainer, as in the original.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// The pump's identity and in-memory state, and how it publishes them.
pub struct PumpNode {
    /// The node id.
    pub id: String,
    /// The advertised `host:port`.
    pub host: String,
    registry: Registry,
    state: Mutex<NodeState>,
    /// The last real PD timestamp and when it was taken; heartbeats extrapolate from it.
    clock: Mutex<(i64, Instant)>,
}

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

impl PumpNode {
    /// A node whose state starts as `initial`.
    pub fn new(id: String, host: String, registry: Registry, initial: NodeState) -> PumpNode {
        PumpNode {
            id,
            host,
            registry,
            state: Mutex::new(initial),
            clock: Mutex::new((0, Instant::now())),
        }
    }

    /// Reads this node's previous state from the registry: `offline` when it has no record.
    pub async fn previous_state(registry: &Registry, id: &str) -> Result<NodeState, RegistryError> {
        match registry.get(NodeKind::Pump, id).await {
            Ok(status) => Ok(status.state),
            Err(RegistryError::NotFound(_)) => Ok(NodeState::Offline),
            Err(err) => Err(err),
        }
    }

    /// The in-memory state.
    pub fn state(&self) -> NodeState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the in-memory state if the state machine allows the move; returns the state before.
    pub fn transition(&self, next: NodeState) -> Result<NodeState, NodeState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = *state;
        if before.can_transition_to(next) {
            *state = next;
            Ok(before)
        } else {
            Err(before)
        }
    }

    /// Records a fresh PD timestamp as the base of heartbeat extrapolation.
    pub fn set_clock(&self, ts: i64) {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = (ts, Instant::now());
    }

    /// The original's "approach ts": the last real timestamp moved on by the whole seconds since.
    pub fn approach_ts(&self) -> i64 {
        let (ts, taken) = *self.clock.lock().unwrap_or_else(|e| e.into_inner());
        if ts == 0 {
            return 0;
        }
        ts + tso::compose(taken.elapsed().as_secs() as i64 * 1000, 0)
    }

    /// Writes the record with the in-memory state, `max_commit_ts` and an approximate ts.
    pub async fn publish(&self, max_commit_ts: i64) -> Result<(), RegistryError> {
        self.publish_state(self.state(), max_commit_ts).await
    }

    /// Writes the record with an explicit state.
    pub async fn publish_state(
        &self,
        state: NodeState,
        max_commit_ts: i64,
    ) -> Result<(), RegistryError> {
        let mut status = NodeStatus::new(&self.id, &self.host, state);
        status.max_commit_ts = max_commit_ts;
        status.update_ts = self.approach_ts();
        self.registry.upsert(NodeKind::Pump, &status).await
    }

    /// Asks every `online` drainer to re-read the pump list now. Any failure fails the whole call
    /// (a pump unknown to a running drainer would lose its data to it).
    pub async fn notify_drainers(&self, tls: &binlog_cluster::TlsSettings) -> Result<(), String> {
        let work = async {
            let (drainers, _) = self
                .registry
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
        &self,
        target: i64,
    ) -> Result<Vec<LaggingDrainer>, RegistryError> {
        let (drainers, _) = self.registry.list(NodeKind::Drainer).await?;
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

    /// The registry handle.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Heartbeat: publishes the record every `interval` until `stop` fires. Failures are logged only.
pub async fn heartbeat(
    node: &PumpNode,
    interval: Duration,
    max_commit_ts: impl Fn() -> i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = node.publish(max_commit_ts()).await {
                    tracing::warn!(error = %err, "send heartbeat failed");
                }
            }
            _ = binlog_cluster::shutdown::stopped(&mut stop) => return,
        }
    }
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
