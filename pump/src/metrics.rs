//! The pump's Prometheus metrics, under the original's names so existing dashboards and alerts
//! keep working, plus a few of ours (named `binlog_pump_*` too).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All pump metrics, registered in a private registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `binlog_pump_rpc_duration_seconds{method,label}`.
    pub rpc_duration: HistogramVec,
    /// Pre-resolved children of the two series every write touches: label lookups hash and
    /// lock on each call, which the write path does tens of thousands of times a second.
    pub write_binlog_succ: Histogram,
    /// `rpc_duration_seconds{method="WriteBinlog",label="fail"}`.
    pub write_binlog_fail: Histogram,
    /// `write_binlog_size{type="single"}`.
    pub write_size_single: Histogram,
    /// `binlog_pump_loss_binlog_count`: writes that failed.
    pub loss_binlog: IntCounter,
    /// `binlog_pump_storage_gc_ts` (physical ms).
    pub gc_ts: IntGauge,
    /// `binlog_pump_storage_done_gc_ts` (physical ms).
    pub done_gc_ts: IntGauge,
    /// `binlog_pump_storage_storage_size_bytes{type=capacity|available}`.
    pub storage_size: IntGaugeVec,
    /// `binlog_pump_storage_max_commit_ts` (physical ms).
    pub max_commit_ts: IntGauge,
    /// `binlog_pump_storage_error_count{type}`.
    pub storage_errors: IntCounterVec,
    /// `binlog_pump_storage_write_binlog_size{type}`.
    pub write_size: HistogramVec,
    /// Ours: seconds the oldest unmatched prewrite has waited for its commit (0 when none).
    pub oldest_unmatched_prewrite_seconds: IntGauge,
    /// Ours: open PullBinlogs streams.
    pub pull_streams: IntGauge,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    // Only fails for malformed names or duplicate registration, both fixed at compile time here.
    result.unwrap_or_else(|err| panic!("metric definition: {err}"))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let rpc_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "rpc_duration_seconds",
                "Bucketed histogram of processing time (s) of rpc queries.",
            )
            .namespace("binlog")
            .subsystem("pump")
            .buckets(must(prometheus::exponential_buckets(0.00005, 2.0, 22))),
            &["method", "label"],
        ));
        let loss_binlog = must(IntCounter::with_opts(
            Opts::new("loss_binlog_count", "Total loss binlog count")
                .namespace("binlog")
                .subsystem("pump"),
        ));
        let storage_gauge = |name: &str, help: &str| {
            must(IntGauge::with_opts(
                Opts::new(name, help)
                    .namespace("binlog")
                    .subsystem("pump_storage"),
            ))
        };
        let gc_ts = storage_gauge("gc_ts", "gc ts of storage");
        let done_gc_ts = storage_gauge(
            "done_gc_ts",
            "the metadata and vlog after this gc ts has been deleted",
        );
        let max_commit_ts = storage_gauge("max_commit_ts", "max commit ts of storage");
        let oldest_unmatched_prewrite_seconds = storage_gauge(
            "oldest_unmatched_prewrite_seconds",
            "seconds the oldest prewrite without commit has blocked the watermark",
        );
        let pull_streams = must(IntGauge::with_opts(
            Opts::new("pull_streams", "open PullBinlogs streams")
                .namespace("binlog")
                .subsystem("pump"),
        ));
        let storage_size = must(IntGaugeVec::new(
            Opts::new("storage_size_bytes", "storage size info")
                .namespace("binlog")
                .subsystem("pump_storage"),
            &["type"],
        ));
        let storage_errors = must(IntCounterVec::new(
            Opts::new("error_count", "storage error count")
                .namespace("binlog")
                .subsystem("pump_storage"),
            &["type"],
        ));
        let write_size = must(HistogramVec::new(
            HistogramOpts::new("write_binlog_size", "write binlog size")
                .namespace("binlog")
                .subsystem("pump_storage")
                .buckets(must(prometheus::exponential_buckets(16.0, 2.0, 20))),
            &["type"],
        ));
        for collector in [
            Box::new(rpc_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(loss_binlog.clone()),
            Box::new(gc_ts.clone()),
            Box::new(done_gc_ts.clone()),
            Box::new(max_commit_ts.clone()),
            Box::new(oldest_unmatched_prewrite_seconds.clone()),
            Box::new(pull_streams.clone()),
            Box::new(storage_size.clone()),
            Box::new(storage_errors.clone()),
            Box::new(write_size.clone()),
        ] {
            must(registry.register(collector));
        }
        Metrics {
            registry,
            write_binlog_succ: rpc_duration.with_label_values(&["WriteBinlog", "succ"]),
            write_binlog_fail: rpc_duration.with_label_values(&["WriteBinlog", "fail"]),
            write_size_single: write_size.with_label_values(&["single"]),
            rpc_duration,
            loss_binlog,
            gc_ts,
            done_gc_ts,
            storage_size,
            max_commit_ts,
            storage_errors,
            write_size,
            oldest_unmatched_prewrite_seconds,
            pull_streams,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_originals() {
        let metrics = Metrics::new();
        metrics
            .rpc_duration
            .with_label_values(&["WriteBinlog", "succ"])
            .observe(0.001);
        metrics
            .storage_size
            .with_label_values(&["available"])
            .set(1);
        metrics
            .storage_errors
            .with_label_values(&["write_binlog"])
            .inc();
        metrics
            .write_size
            .with_label_values(&["single"])
            .observe(10.0);
        let text = metrics.render();
        for name in [
            "binlog_pump_rpc_duration_seconds_bucket{label=\"succ\",method=\"WriteBinlog\"",
            "binlog_pump_loss_binlog_count 0",
            "binlog_pump_storage_gc_ts 0",
            "binlog_pump_storage_done_gc_ts 0",
            "binlog_pump_storage_max_commit_ts 0",
            "binlog_pump_storage_storage_size_bytes{type=\"available\"} 1",
            "binlog_pump_storage_error_count{type=\"write_binlog\"} 1",
            "binlog_pump_storage_write_binlog_size_bucket{type=\"single\"",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
