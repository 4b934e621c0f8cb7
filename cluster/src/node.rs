//! A pump's or drainer's life as a node of the cluster: its identity, its in-memory state and
//! the registry record it publishes (with the original's "approach ts"), the heartbeat that
//! keeps that record fresh, and how it is asked to stop (a signal, or `PUT /state/<id>/<action>`).
//! Role-specific duties (a pump notifying drainers, a drainer's checkpoint) stay with the role.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::{Action, NodeKind, NodeState, NodeStatus, Registry, RegistryError, tso};

/// Why a node stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM / SIGINT: ends `paused`.
    Signal,
    /// `PUT /state/<id>/pause`: ends `paused`.
    Pause,
    /// `PUT /state/<id>/close`: ends `offline` once that is safe for the role.
    Close,
}

/// A node's identity and in-memory state, and how it publishes them.
pub struct Node {
    /// Pump or drainer.
    pub kind: NodeKind,
    /// The node id.
    pub id: String,
    /// The advertised `host:port`.
    pub host: String,
    registry: Registry,
    state: Mutex<NodeState>,
    /// The last real PD timestamp and when it was taken; heartbeats extrapolate from it.
    clock: Mutex<(i64, Instant)>,
    /// The first stop request wins; the role's stop choreography reads it once.
    stop: watch::Sender<Option<StopReason>>,
}

impl Node {
    /// A node whose state starts as `initial`.
    pub fn new(
        kind: NodeKind,
        id: String,
        host: String,
        registry: Registry,
        initial: NodeState,
    ) -> Node {
        Node {
            kind,
            id,
            host,
            registry,
            state: Mutex::new(initial),
            clock: Mutex::new((0, Instant::now())),
            stop: watch::channel(None).0,
        }
    }

    /// Reads a node's previous state from the registry: `offline` when it has no record.
    pub async fn previous_state(
        registry: &Registry,
        kind: NodeKind,
        id: &str,
    ) -> Result<NodeState, RegistryError> {
        match registry.get(kind, id).await {
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
        self.registry.upsert(self.kind, &status).await
    }

    /// Writes the state a stopping node leaves behind. `must` (after close: exiting claims
    /// `offline`) retries until it is written; otherwise a stuck PD gets 30 attempts, a second
    /// apart, so it cannot keep the process from stopping.
    pub async fn publish_final_state(&self, state: NodeState, max_commit_ts: i64, must: bool) {
        let attempts = if must { u32::MAX } else { 30 };
        for attempt in 1..=attempts {
            match self.publish_state(state, max_commit_ts).await {
                Ok(()) => return,
                Err(err) if attempt < attempts => {
                    tracing::error!(error = %err, %state, "cannot write the final state; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, %state, "giving up writing the final state; the registry keeps the last one");
                }
            }
        }
    }

    /// The registry handle.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Asks the node to stop; only the first request counts.
    pub fn request_stop(&self, reason: StopReason) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Resolves with the first stop request (at once if one was already made).
    pub async fn stop_requested(&self) -> StopReason {
        let mut requests = self.stop.subscribe();
        // The sender lives as long as this node, so the wait ends only with a request.
        let request = requests
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| *r);
        request.unwrap_or(StopReason::Signal)
    }

    /// Decides a `PUT /state/<node_id>/<action>` request: only this node, a known action, and
    /// only while it is `online` and not already stopping. An accepted action moves the
    /// in-memory state to its transient state and requests the stop; a refusal says why, in the
    /// original's words.
    pub fn accept_action(&self, node_id: &str, action: &str) -> Result<Action, String> {
        if node_id != self.id {
            return Err(format!(
                "invalide nodeID {node_id}, this {}'s nodeID is {}",
                self.kind, self.id
            ));
        }
        let action: Action = action.parse()?;
        match self.state() {
            NodeState::Online if !self.stopping() => {
                let _ = self.transition(action.transient_state());
                self.request_stop(match action {
                    Action::Pause => StopReason::Pause,
                    Action::Close => StopReason::Close,
                });
                Ok(action)
            }
            state => Err(format!(
                "this {}'s state is {state}, apply {action} failed!",
                self.kind
            )),
        }
    }
}

/// Heartbeat: publishes the record every `interval` until `stop` fires. Failures are logged only.
pub async fn heartbeat(
    node: &Node,
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
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
    }
}
