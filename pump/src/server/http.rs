//! The pump's HTTP API, served on the gRPC port: `/status`, `/state/{nodeID}/{action}`,
//! `/drainers`, `/debug/gc/trigger` and `/metrics`, with the original's paths and JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use binlog_cluster::http_api::{json, state_change};
use binlog_cluster::{NodeKind, NodeStatus};
use serde::Serialize;

use super::Shared;
use crate::node::LaggingDrainer;

/// The HTTP routes.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/status", get(status))
        .route("/state/{node_id}/{action}", put(apply_action))
        .route("/drainers", get(drainers))
        .route("/debug/gc/trigger", post(trigger_gc))
        .route("/debug/binlog/{ts}", get(debug_binlog))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// A prewrite still waiting for its commit, shown in `/status`.
#[derive(Serialize)]
struct UnmatchedPrewrite {
    #[serde(rename = "startTS")]
    start_ts: i64,
    #[serde(rename = "waitedSeconds")]
    waited_seconds: u64,
}

/// `/status`: the original's four keys first, then ours when they have something to say.
#[derive(Serialize)]
struct StatusBody {
    status: Option<BTreeMap<String, NodeStatus>>,
    #[serde(rename = "CommitTS")]
    commit_ts: i64,
    #[serde(rename = "Checkpoint")]
    checkpoint: BTreeMap<String, i64>,
    #[serde(rename = "ErrMsg")]
    err_msg: String,
    #[serde(rename = "OfflineWaitingFor", skip_serializing_if = "Option::is_none")]
    offline_waiting_for: Option<Vec<LaggingDrainer>>,
    #[serde(rename = "UnmatchedPrewrite", skip_serializing_if = "Option::is_none")]
    unmatched_prewrite: Option<UnmatchedPrewrite>,
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let pumps = shared.node.registry().list(NodeKind::Pump).await;
    let commit_ts = shared.pd.get_ts().await;
    let mut body = StatusBody {
        status: None,
        commit_ts: 0,
        checkpoint: BTreeMap::new(),
        err_msg: String::new(),
        offline_waiting_for: shared
            .offline_wait
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        unmatched_prewrite: shared.storage.oldest_unmatched_prewrite().map(|oldest| {
            UnmatchedPrewrite {
                start_ts: oldest.start_ts,
                waited_seconds: oldest.waited.as_secs(),
            }
        }),
    };
    match (pumps, commit_ts) {
        (Ok((pumps, _)), Ok(ts)) => {
            body.status = Some(pumps.into_iter().map(|p| (p.node_id.clone(), p)).collect());
            body.commit_ts = ts;
        }
        (Err(err), _) => body.err_msg = err.to_string(),
        (_, Err(err)) => body.err_msg = err.to_string(),
    }
    json(&body, false)
}

async fn apply_action(
    State(shared): State<Arc<Shared>>,
    Path((node_id, action)): Path<(String, String)>,
) -> Response {
    state_change(&shared.node, &node_id, &action)
}

async fn drainers(State(shared): State<Arc<Shared>>) -> Response {
    match shared.node.registry().list(NodeKind::Drainer).await {
        Ok((drainers, _)) => json(&drainers, false),
        Err(err) => {
            tracing::warn!(error = %err, "cannot list drainers");
            json(&Option::<Vec<NodeStatus>>::None, false)
        }
    }
}

async fn trigger_gc(State(shared): State<Arc<Shared>>) -> &'static str {
    if shared.gc_running.load(Ordering::Acquire) {
        "gc is working\n"
    } else {
        shared.gc_trigger.notify_one();
        "trigger gc success\n"
    }
}

/// The binlog served at commit ts `ts` (merged with its prewrite), in a readable text form.
async fn debug_binlog(State(shared): State<Arc<Shared>>, Path(ts): Path<String>) -> String {
    let Ok(ts) = ts.parse::<i64>() else {
        return format!("invalid parameter ts: {ts}");
    };
    let storage = shared.storage.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut pull = storage.pull(ts.saturating_sub(1))?;
        Ok::<_, crate::storage::StorageError>(
            pull.next().transpose()?.filter(|b| b.commit_ts == ts),
        )
    })
    .await;
    match found {
        Ok(Ok(Some(pulled))) => render_binlog(&pulled.payload),
        Ok(Ok(None)) => format!(
            "no binlog with commit ts {ts} (at or below the watermark {})",
            shared.storage.max_commit_ts()
        ),
        Ok(Err(err)) => format!("cannot read binlog {ts}: {err}"),
        Err(err) => format!("cannot read binlog {ts}: {err}"),
    }
}

fn render_binlog(payload: &[u8]) -> String {
    use binlog_proto::binlog::{Binlog, PrewriteValue};
    use prost::Message;
    match Binlog::decode(payload) {
        Ok(binlog) => {
            let mut text = format!("{binlog:#?}");
            if let Some(value) = &binlog.prewrite_value {
                text.push_str("\n\n PrewriteValue: \n");
                match PrewriteValue::decode(&value[..]) {
                    Ok(value) => text.push_str(&format!("{value:#?}")),
                    Err(err) => text.push_str(&format!("undecodable: {err}")),
                }
            }
            text
        }
        Err(err) => format!("stored payload is not a binlog: {err}"),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}
