//! The control client: `PUT http(s)://<host>/state/<nodeId>/{pause|close}`, the call binlogctl and
//! the operator use to ask a pump or drainer to pause or go offline.
//!
//! Nodes answer HTTP 200 with a `{"message","code","data"}` envelope; only `code == 200` means the
//! node accepted the action.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::state::Action;
use crate::tls::{TlsError, TlsSettings};

/// Timeout of one control call, connection included.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON envelope of the state API, as the original writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Human-readable outcome.
    pub message: String,
    /// 200 on success, 3 when the node refused.
    pub code: i64,
    /// Always null.
    pub data: Option<serde_json::Value>,
}

impl Envelope {
    /// The success code.
    pub const OK: i64 = 200;
    /// The code for a refused action.
    pub const REFUSED: i64 = 3;

    /// An accepted action: `apply action <action> success!`.
    pub fn accepted(action: &str) -> Envelope {
        Envelope {
            message: format!("apply action {action} success!"),
            code: Self::OK,
            data: None,
        }
    }

    /// A refused action with the node's reason.
    pub fn refused(message: impl Into<String>) -> Envelope {
        Envelope {
            message: message.into(),
            code: Self::REFUSED,
            data: None,
        }
    }
}

/// A control call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// TLS settings could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The node could not be reached or the exchange failed.
    #[error("{method} {url} failed: {message}")]
    Transport {
        /// The HTTP method.
        method: &'static str,
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node answered with something other than the envelope.
    #[error("{url} answered HTTP {status} with an unexpected body: {body}")]
    Unexpected {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body, truncated.
        body: String,
    },
    /// The node refused the action.
    #[error("{url} refused {action}: {message} (code {code})")]
    Refused {
        /// The URL called.
        url: String,
        /// The action asked for.
        action: Action,
        /// The node's message.
        message: String,
        /// The envelope code.
        code: i64,
    },
}

/// The URL of a state action on a node.
pub fn action_url(tls: &TlsSettings, host: &str, node_id: &str, action: Action) -> String {
    format!("{}://{host}/state/{node_id}/{action}", tls.scheme())
}

/// Asks the node at `host` (its registry `host`, `host:port`) to take `action`; succeeds only
/// when its envelope says `code == 200`.
pub async fn apply_action(
    tls: &TlsSettings,
    host: &str,
    node_id: &str,
    action: Action,
) -> Result<Envelope, ControlError> {
    let url = action_url(tls, host, node_id, action);
    let (status, body) = http_request(tls, "PUT", &url).await?;
    let envelope: Envelope =
        serde_json::from_slice(&body).map_err(|_| ControlError::Unexpected {
            url: url.clone(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        })?;
    if envelope.code != Envelope::OK {
        return Err(ControlError::Refused {
            url,
            action,
            message: envelope.message,
            code: envelope.code,
        });
    }
    Ok(envelope)
}

/// One HTTP/1.1 request with an empty body to `url` (`http://` or `https://`, no redirects);
/// returns the status and the whole body. Shared by the control client and status readers.
pub async fn http_request(
    tls: &TlsSettings,
    method: &'static str,
    url: &str,
) -> Result<(u16, Bytes), ControlError> {
    http_request_with_body(tls, method, url, Bytes::new()).await
}

/// Like [`http_request`], sending `body`.
pub async fn http_request_with_body(
    tls: &TlsSettings,
    method: &'static str,
    url: &str,
    body: Bytes,
) -> Result<(u16, Bytes), ControlError> {
    let transport = |message: String| ControlError::Transport {
        method,
        url: url.to_string(),
        message,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|err| transport(format!("invalid URL: {err}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| transport("URL has no host".into()))?
        .clone();
    let request = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str())
        .body(Full::new(body))
        .map_err(|err| transport(err.to_string()))?;
    let exchange = async {
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .map_err(|err| transport(format!("connect: {err}")))?;
        let _ = tcp.set_nodelay(true);
        match tls.rustls_client_config()? {
            None => send(TokioIo::new(tcp), request).await.map_err(transport),
            Some(config) => {
                let name = ServerName::try_from(authority.host().to_string())
                    .map_err(|err| transport(format!("invalid TLS server name: {err}")))?;
                let stream = TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|err| transport(format!("TLS handshake: {err}")))?;
                send(TokioIo::new(stream), request).await.map_err(transport)
            }
        }
    };
    tokio::time::timeout(CONTROL_TIMEOUT, exchange)
        .await
        .map_err(|_| transport(format!("no answer within {CONTROL_TIMEOUT:?}")))?
}

async fn send<IO>(io: IO, request: http::Request<Full<Bytes>>) -> Result<(u16, Bytes), String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| format!("HTTP handshake: {err}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("request: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("reading the body: {err}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_json_matches_the_original() {
        assert_eq!(
            serde_json::to_string(&Envelope::accepted("close")).unwrap(),
            r#"{"message":"apply action close success!","code":200,"data":null}"#
        );
    }

    #[test]
    fn urls_follow_the_tls_setting() {
        let plain = TlsSettings::default();
        assert_eq!(
            action_url(&plain, "10.0.0.1:8250", "p1", Action::Pause),
            "http://10.0.0.1:8250/state/p1/pause"
        );
        let tls = TlsSettings {
            ssl_ca: Some("/ca".into()),
            ..Default::default()
        };
        assert_eq!(
            action_url(&tls, "h:8249", "d", Action::Close),
            "https://h:8249/state/d/close"
        );
    }

    /// A one-shot HTTP server on loopback answering `body` to any request.
    async fn serve_once(body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await.unwrap();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn code_200_is_success() {
        let host =
            serve_once(r#"{"message":"apply action pause success!","code":200,"data":null}"#).await;
        let envelope = apply_action(&TlsSettings::default(), &host, "p1", Action::Pause)
            .await
            .unwrap();
        assert_eq!(envelope.message, "apply action pause success!");
    }

    #[tokio::test]
    async fn code_3_is_a_refusal_with_the_nodes_message() {
        let host = serve_once(
            r#"{"message":"this pump's state is paused, apply close failed!","code":3,"data":null}"#,
        )
        .await;
        let err = apply_action(&TlsSettings::default(), &host, "p1", Action::Close)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "http://{host}/state/p1/close refused close: this pump's state is paused, apply close failed! (code 3)"
            )
        );
    }

    #[tokio::test]
    async fn a_non_envelope_body_is_reported() {
        let host = serve_once("404 page not found").await;
        let err = apply_action(&TlsSettings::default(), &host, "p1", Action::Close)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ControlError::Unexpected { status: 200, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_dead_node_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = apply_action(&TlsSettings::default(), &host, "p1", Action::Pause)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("PUT http://{host}/state/p1/pause failed: connect")),
            "{err}"
        );
    }
}
