//! The stop flag every long-running task of a node watches.

/// Resolves once `stop` is set to true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here so callers' futures stay `Send`.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}
