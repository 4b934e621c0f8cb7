//! The drainer's Prometheus metrics under the original's names (`binlog_drainer_*`, reference
//! drainer.md §8.1). Gauges are refreshed from the components' status snapshots when scraped, so
//! the pipeline itself carries no metric handles.

use binlog_cluster::tso::physical_ms;
use prometheus::{Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::collector::CollectorStatus;

pub struct Metrics {
    registry: Registry,
    /// `binlog_drainer_checkpoint_tso` (physical ms of the saved checkpoint).
    checkpoint_tso: IntGauge,
    /// `binlog_drainer_pump_position{nodeID}` (physical ms of the last binlog from each pump).
    pump_position: IntGaugeVec,
    /// `binlog_drainer_disorder_binlog_count`.
    disorder: IntCounter,
    /// Ours: `binlog_drainer_schema_version`.
    schema_version: IntGauge,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    // Only fails for malformed names or duplicate registration, both fixed at compile time here.
    result.unwrap_or_else(|err| panic!("metric definition: {err}"))
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace("binlog")
        .subsystem("drainer")
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let checkpoint_tso = must(IntGauge::with_opts(opts(
            "checkpoint_tso",
            "save checkpoint tso of drainer.",
        )));
        let pump_position = must(IntGaugeVec::new(
            opts("pump_position", "position for each pump."),
            &["nodeID"],
        ));
        let disorder = must(IntCounter::with_opts(opts(
            "disorder_binlog_count",
            "number of binlogs dropped because they arrived below the merge position.",
        )));
        let schema_version = must(IntGauge::with_opts(opts(
            "schema_version",
            "schema version of the drainer's catalog.",
        )));
        must(registry.register(Box::new(checkpoint_tso.clone())));
        must(registry.register(Box::new(pump_position.clone())));
        must(registry.register(Box::new(disorder.clone())));
        must(registry.register(Box::new(schema_version.clone())));
        Metrics {
            registry,
            checkpoint_tso,
            pump_position,
            disorder,
            schema_version,
        }
    }

    /// Refreshes the gauges from status snapshots and renders the text exposition.
    pub fn render(
        &self,
        checkpoint_ts: i64,
        schema_version: i64,
        collector: &CollectorStatus,
    ) -> String {
        self.checkpoint_tso.set(physical_ms(checkpoint_ts));
        self.schema_version.set(schema_version);
        self.pump_position.reset();
        for (pump, ts) in &collector.positions {
            self.pump_position
                .with_label_values(&[pump.as_str()])
                .set(physical_ms(*ts));
        }
        let counted = self.disorder.get();
        if collector.disorder > counted {
            self.disorder.inc_by(collector.disorder - counted);
        }
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
