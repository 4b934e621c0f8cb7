//! How a node stops: the stop flag every long-running task watches, the signals that stop it,
//! and the server loop that drains on stop.

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
