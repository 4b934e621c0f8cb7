//! The drainer: pulls from every pump, merge-sorts by commit ts, tracks the upstream schema and
//! replicates to MySQL/TiDB, protobuf files or Kafka, with checkpoints.
//!
//! It talks to PD, the registry and pumps only through `binlog-cluster` and `binlog-proto`.
//!
//! So far: the [`collector`] (pump discovery, one [`puller`] per pump, the [`merge`]) and the
//! [`cistern`] service pumps notify.

pub mod binlogfile;
pub mod checkpoint;
pub mod cistern;
pub mod collector;
pub mod config;
pub mod event_filter;
pub mod filter;
pub mod merge;
pub mod metrics;
pub mod progress;
pub mod puller;
pub mod schema;
pub mod server;
pub mod sink;
pub mod syncer;
pub mod translate;
