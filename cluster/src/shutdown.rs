//! How a node stops: the stop flag every long-running task watches, the signals that stop it,
//! and the server loop that drains on stop.

use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio_rustls::rustls;

use crate::tls::TlsSettings;
use crate::tls_server::TlsListener;

/// Resolves once `stop` is set to true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here so callers' futures stay `Send`.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}

/// Resolves at the first SIGTERM, SIGINT, SIGHUP or SIGQUIT: the signals that stop a node (and
/// leave it `paused`), as in the original.
pub async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot install signal handlers; only a state change stops this node");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
        _ = quit.recv() => {}
    }
    tracing::info!("signal received");
}

/// Serves `router` (gRPC and HTTP on one port) on `listener` until `stop` is set, then finishes
/// the requests in flight.
pub async fn serve<L>(
    listener: L,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let shutdown = async move { stopped(&mut stop).await };
    if let Err(err) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %err, "server failed");
    }
}

/// Serves `router` on a bound TCP port, over TLS when `tls` is set, until `stop` is set. Every
/// connection gets [`set_nodelay`].
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    tls: Option<(Arc<rustls::ServerConfig>, TlsSettings)>,
    router: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    match tls {
        Some((config, settings)) => {
            serve(TlsListener::new(listener, config, settings), router, stop).await
        }
        None => serve(listener.tap_io(set_nodelay), router, stop).await,
    }
}

/// Sets `TCP_NODELAY` on a served connection: gRPC answers are small writes, and Nagle's
/// algorithm would hold them back until the client's delayed ACK (tens of milliseconds on Linux).
pub fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::warn!(error = %err, "cannot set TCP_NODELAY");
    }
}
