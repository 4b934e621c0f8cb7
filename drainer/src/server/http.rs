//! The drainer's HTTP API, served on the gRPC port (reference drainer.md §8.1): `/status`,
//! `/commit_ts`, `/state/{nodeID}/{pause|close}` and `/metrics`, with the original's JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use binlog_cluster::http_api::{json, state_change};
use binlog_cluster::{Envelope, NodeState};
use serde::Serialize;

use super::Shared;

pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/status", get(status))
        .route("/commit_ts", get(commit_ts))
        .route("/state/{node_id}/{action}", put(apply_action))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// `/status`: the original's four keys first, then ours when they have something to say.
#[derive(Serialize)]
struct StatusBody {
    #[serde(rename = "PumpPos")]
    pump_pos: Option<BTreeMap<String, i64>>,
    #[serde(rename = "Synced")]
    synced: bool,
    #[serde(rename = "LastTS")]
    last_ts: i64,
    #[serde(rename = "TsMap")]
    ts_map: String,
    #[serde(rename = "State")]
    state: NodeState,
    #[serde(rename = "SchemaVersion")]
    schema_version: i64,
    #[serde(rename = "WaitingForPumps", skip_serializing_if = "Vec::is_empty")]
    waiting_for_pumps: Vec<String>,
    #[serde(rename = "Trouble", skip_serializing_if = "Option::is_none")]
    trouble: Option<String>,
}

/// `Synced` as the original means it: nothing was applied for `synced_check_time`.
fn synced(
    last_applied: Option<std::time::Instant>,
    started: std::time::Instant,
    check: Duration,
) -> bool {
    last_applied.unwrap_or(started).elapsed() > check
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let collector = shared
        .collector
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let syncer = shared
        .syncer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let schema = shared
        .schema
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let collector_error = collector.error.clone();
    let body = StatusBody {
        pump_pos: (!collector.pumps.is_empty() || !collector.positions.is_empty())
            .then_some(collector.positions),
        synced: synced(
            syncer.last_applied,
            shared.started,
            shared.synced_check_time,
        ),
        last_ts: syncer.checkpoint_ts,
        ts_map: String::new(),
        state: shared.node.state(),
        schema_version: schema.schema_version,
        waiting_for_pumps: collector.waiting_for,
        trouble: schema
            .waiting_for_job
            .map(|w| {
                format!(
                    "waiting for DDL job {} (commit ts {}): {}",
                    w.job_id, w.commit_ts, w.error
                )
            })
            .or(syncer.trouble)
            .or_else(|| shared.sink.trouble())
            .or(collector_error),
    };
    json(&body, false)
}

#[derive(Serialize)]
struct CommitTs {
    ts: i64,
}

async fn commit_ts(State(shared): State<Arc<Shared>>) -> Response {
    let ts = shared
        .syncer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .checkpoint_ts;
    let envelope = serde_json::json!({
        "message": "get drainer's latest ts success!",
        "code": Envelope::OK,
        "data": CommitTs { ts },
    });
    json(&envelope, true)
}

async fn apply_action(
    State(shared): State<Arc<Shared>>,
    Path((node_id, action)): Path<(String, String)>,
) -> Response {
    state_change(&shared.node, &node_id, &action)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let collector = shared
        .collector
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let checkpoint_ts = shared
        .syncer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .checkpoint_ts;
    let schema_version = shared
        .schema
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .schema_version;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared
            .metrics
            .render(checkpoint_ts, schema_version, &collector),
    )
        .into_response()
}
