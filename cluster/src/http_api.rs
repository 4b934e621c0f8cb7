//! What the pump's and the drainer's HTTP APIs share: JSON replies with the original's content
//! type, compact or indented as the original writes each endpoint.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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
