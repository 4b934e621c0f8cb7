//! The operator's Prometheus metrics and its small HTTP server: `GET /metrics` (text format) and
//! `GET /health` (200 while the process serves; the Deployment's liveness and readiness probe).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// All operator metrics, in a private registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `binlog_operator_reconciles_total{outcome="ok|error"}`.
    pub reconciles: IntCounterVec,
    /// `binlog_operator_reconcile_errors_total{error}`: failed reconciles by error kind.
    pub reconcile_errors: IntCounterVec,
    /// `binlog_operator_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `binlog_operator_node_commands_total{kind="pump|drainer",command="close|force-offline",outcome}`.
    pub node_commands: IntCounterVec,
    /// `binlog_operator_pumps_scaled_in_total`: pumps removed after going offline.
    pub pumps_scaled_in: IntCounterVec,
    /// `binlog_operator_waiting_clusters`: clusters whose last reconcile was waiting on a scale-in,
    /// drainer removal or deletion.
    pub waiting_clusters: IntGauge,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    // Only fails for malformed names or duplicate registration, both fixed at compile time here.
    result.unwrap_or_else(|err| panic!("metric definition: {err}"))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("binlog_operator");
        let reconciles = must(IntCounterVec::new(
            opts("reconciles_total", "Reconciles by outcome."),
            &["outcome"],
        ));
        let reconcile_errors = must(IntCounterVec::new(
            opts("reconcile_errors_total", "Failed reconciles by error kind."),
            &["error"],
        ));
        let reconcile_duration = must(Histogram::with_opts(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took.")
                .namespace("binlog_operator")
                .buckets(must(prometheus::exponential_buckets(0.005, 2.0, 14))),
        ));
        let node_commands = must(IntCounterVec::new(
            opts(
                "node_commands_total",
                "Commands sent to pumps and drainers (close, force-offline) by outcome.",
            ),
            &["kind", "command", "outcome"],
        ));
        let pumps_scaled_in = must(IntCounterVec::new(
            opts(
                "pumps_scaled_in_total",
                "Pumps removed from a StatefulSet after going offline.",
            ),
            &["namespace"],
        ));
        let waiting_clusters = must(IntGauge::with_opts(opts(
            "waiting_clusters",
            "Clusters whose scale-in, drainer removal or deletion is waiting.",
        )));
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(node_commands.clone()),
            Box::new(pumps_scaled_in.clone()),
            Box::new(waiting_clusters.clone()),
        ] {
            must(registry.register(collector));
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            node_commands,
            pumps_scaled_in,
            waiting_clusters,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// The `/metrics` and `/health` routes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/health", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// Serves [`router`] on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /health");
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_under_the_operator_namespace() {
        let metrics = Metrics::new();
        metrics.reconciles.with_label_values(&["ok"]).inc();
        metrics
            .node_commands
            .with_label_values(&["pump", "close", "ok"])
            .inc();
        let text = metrics.render();
        assert!(
            text.contains("binlog_operator_reconciles_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "binlog_operator_node_commands_total{command=\"close\",kind=\"pump\",outcome=\"ok\"} 1"
        ));
        assert!(text.contains("binlog_operator_waiting_clusters 0"));
    }
}
