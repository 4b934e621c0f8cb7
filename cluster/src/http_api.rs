//! What the pump's and the drainer's HTTP APIs share: JSON replies with the original's content
//! type, compact or indented as the original writes each endpoint, and the answer to a state
//! change request.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::control::Envelope;
use crate::node::Node;

/// `value` as a JSON reply (`null` if it cannot be serialised).
pub fn json<T: Serialize>(value: &T, pretty: bool) -> Response {
    let body = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.unwrap_or_else(|_| "null".to_string()),
    )
        .into_response()
}

/// The answer to `PUT /state/{nodeID}/{action}`, decided by [`Node::accept_action`].
pub fn state_change(node: &Node, node_id: &str, action: &str) -> Response {
    let envelope = match node.accept_action(node_id, action) {
        Ok(action) => Envelope::accepted(action.as_str()),
        Err(message) => Envelope::refused(message),
    };
    json(&envelope, true)
}
