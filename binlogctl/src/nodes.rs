//! The node commands: list nodes, rewrite a node's state in the registry, and ask a node over
//! HTTP to pause or go offline.

use anyhow::{Context, bail};
use binlog_cluster::{Action, NodeKind, NodeState, Registry, TlsSettings, apply_action};

use crate::output::info_line;

/// Lines for every node of `kind`; offline nodes only when asked for.
pub async fn list(
    registry: &Registry,
    kind: NodeKind,
    show_offline: bool,
) -> anyhow::Result<Vec<String>> {
    let (nodes, _) = registry.list(kind).await?;
    Ok(nodes
        .iter()
        .filter(|node| show_offline || node.state != NodeState::Offline)
        .map(|node| {
            info_line(
                "nodes.rs",
                "query node",
                &[("type", kind.name()), ("node", &node.to_string())],
            )
        })
        .collect())
}

fn require_node_id(node_id: &str, command: &str) -> anyhow::Result<()> {
    if node_id.is_empty() {
        bail!(
            "{command} needs -node-id: the id of the node to act on (see -cmd {}s)",
            command.split('-').nth(1).unwrap_or("pump")
        );
    }
    Ok(())
}

/// Rewrites only the `state` of a node's record; no process is contacted.
pub async fn update_state(
    registry: &Registry,
    kind: NodeKind,
    node_id: &str,
    state: &str,
) -> anyhow::Result<String> {
    require_node_id(node_id, &format!("update-{}", kind.name()))?;
    let state: NodeState = state.parse()?;
    let mut status = registry
        .get(kind, node_id)
        .await
        .with_context(|| format!("cannot read {kind} {node_id}"))?;
    status.state = state;
    registry
        .update(kind, &status)
        .await
        .with_context(|| format!("cannot update {kind} {node_id}"))?;
    Ok(info_line(
        "nodes.rs",
        "update node state",
        &[("type", kind.name()), ("node", &status.to_string())],
    ))
}

/// Asks the node to pause or close through its HTTP API.
pub async fn apply(
    registry: &Registry,
    tls: &TlsSettings,
    kind: NodeKind,
    node_id: &str,
    action: Action,
) -> anyhow::Result<String> {
    let verb = match action {
        Action::Pause => "pause",
        Action::Close => "offline",
    };
    require_node_id(node_id, &format!("{verb}-{}", kind.name()))?;
    let status = registry
        .get(kind, node_id)
        .await
        .with_context(|| format!("cannot read {kind} {node_id}"))?;
    let envelope = apply_action(tls, &status.host, node_id, action).await?;
    Ok(info_line(
        "nodes.rs",
        "apply action success",
        &[
            ("type", kind.name()),
            ("node", node_id),
            ("action", action.as_str()),
            ("message", &envelope.message),
        ],
    ))
}
